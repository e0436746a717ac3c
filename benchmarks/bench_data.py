"""Memory-mapped vs in-memory datasets: batch and training throughput, and the prepare rate.

Baseline: the in-memory layout (the whole split held in the worker), measured in the same run,
alternating with the mapped layout. Three figures:

1. batches: images/s of the quick recipe's training batches (gather + flip/crop + normalise), one
   thread, over the Fashion-MNIST training split, from each layout; ratio mapped / in-memory.
2. training: images/s of fit_one for two sampled designs with the quick recipe on a 12,800-image
   subset (one epoch), from each layout; ratio mapped / in-memory (goal >= 0.9).
3. prepare: images/s of `data prepare` on a generated folder of JPEGs (96×96, resized to 32),
   with 1 decoding process and with one per core.

    python benchmarks/bench_data.py [--repeats 3] [--images 4000]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from regspace.data import prepare
from regspace.design import Context
from regspace.train.fit import batches_for, fit_one, prepare_tensors
from regspace.train.recipe import RECIPES
from regspace.train.records import Task


def designs():
    from bench_train import sampled_design  # the same sampling helper (benchmarks/ is on sys.path)

    return [(space, sampled_design(space, "2M:4M")[0]) for space in ("X_c", "RegNetX")]


def batch_rate(data, recipe) -> float:
    batches = batches_for(data, "train", recipe, 1, seed=0)
    t = time.perf_counter()
    n = sum(len(y) for _, y in batches)
    return n / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=20000, help="images in the generated folder (5 shards of 4,096)")
    ap.add_argument("--only-prepare", action="store_true", help="measure only the prepare rate (3.)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cache = tempfile.mkdtemp(prefix="regspace-bench-data-")
    os.environ["REGSPACE_CACHE"] = cache
    recipe = RECIPES["quick"]
    cpu = torch.device("cpu")
    print(f"# bench_data {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread")
    if not args.only_prepare:
        measure_layouts(args, recipe, cpu)
    measure_prepare(args, cache)


def measure_layouts(args, recipe, cpu):
    layouts = {}
    for name, limit in (("memory", float("inf")), ("mapped", 0)):
        ds = prepare(recipe.dataset, resolution=28, map_above=limit, progress=False)
        layouts[name] = ds
    print(f"# baseline: the in-memory layout, same process, alternating with the mapped layout ({recipe.dataset})")

    # 1. batches over the full training split (55,000 images)
    full = {
        k: prepare_tensors(ds.arrays(), recipe.replace(train_size=None), cpu, recipe.dataset, 10)
        for k, ds in layouts.items()
    }
    rates = {k: [] for k in full}
    for _ in range(args.repeats):
        for k in full:
            rates[k].append(batch_rate(full[k], recipe))
    m, p = statistics.median(rates["memory"]), statistics.median(rates["mapped"])
    print(f"batches\tin-memory {m:,.0f} images/s\tmapped {p:,.0f} images/s\tratio {p / m:.2f}")

    # 2. training one epoch on 12,800 images
    small = recipe.replace(train_size=12_800, test_size=0, epochs=1)
    subset = {k: prepare_tensors(ds.arrays(), small, cpu, recipe.dataset, 10) for k, ds in layouts.items()}
    ratios = []
    for space, design in designs():
        task = Task(space, design, Context(28, 1, 10))
        got = {k: [] for k in subset}
        for _ in range(args.repeats):
            for k in subset:
                r = fit_one(task, small, subset[k], device=cpu)
                assert r.status == "ok", r.reason
                got[k].append(r.images_per_second)
        m, p = statistics.median(got["memory"]), statistics.median(got["mapped"])
        ratios.append(p / m)
        print(f"training {space}\tin-memory {m:,.0f} images/s\tmapped {p:,.0f} images/s\tratio {p / m:.2f}")
    print(f"training geomean ratio mapped / in-memory: {float(np.exp(np.mean(np.log(ratios)))):.2f} (goal >= 0.9)")


def measure_prepare(args, cache):
    """3. the prepare rate"""
    from PIL import Image

    root = Path(cache) / "folder"
    rng = np.random.default_rng(0)
    per_class = args.images // 10
    base = rng.integers(0, 256, (16, 96, 96, 3), dtype=np.uint8)
    for c in range(10):
        d = root / "train" / f"class{c}"
        d.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.roll(base[i % 16], i, axis=1)).save(d / f"{i}.jpg", quality=90)
    n = per_class * 10
    # As a user runs it: the whole command in a fresh process. (Called from this script instead, each
    # forkserver child would re-import this script, torch and all, and the figure would measure that.)
    for workers in (1, os.cpu_count() or 1):
        env = {**os.environ, "REGSPACE_CACHE": str(Path(cache) / f"prep{workers}")}
        cmd = [sys.executable, "-m", "regspace", "data", "prepare", f"imagefolder:{root}", "--resolution", "32"]
        t = time.perf_counter()
        subprocess.run([*cmd, "--workers", str(workers)], env=env, check=True, capture_output=True)
        dt = time.perf_counter() - t
        print(
            f"prepare (whole command)\t{n} JPEGs 96x96 -> 32x32\t{workers} process(es)\t"
            f"{n / dt:,.0f} images/s ({dt:.1f} s)"
        )


if __name__ == "__main__":
    main()
