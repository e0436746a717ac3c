"""The GPU path, end to end, on a CUDA machine: every model trains `ok` with its test error, and how busy
several workers per GPU keep it.

Samples 16 models (8 X_c, 8 RegNetX; mnist preset, 2M–4M flops, seed 0), then for 1, 2 and 4 workers per
device trains all 16 with the quick recipe on GPU 0 (`regspace train --devices 0 --workers-per-device N`)
into a fresh store. Asserts that every model is `ok`, has a test error, and ran on cuda; prints
models/hour (baseline: 1 worker per device, same invocation), the mean GPU utilisation that nvidia-smi
reported every 0.5 s while training, and peak memory per model (`peak_memory_mb`).

    python benchmarks/bench_gpu.py [--models 16] [--per-device 1,2,4] [--cache DIR]

A machine without network needs the decoded dataset: copy regspace's cache (`~/.cache/regspace`, made by
any training run here) into the working tree and pass it as --cache (it becomes $REGSPACE_CACHE).
Exits with a message, not a failure, where there is no CUDA.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd


def regspace(*args, env=None) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "regspace", *map(str, args)], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"regspace {' '.join(map(str, args))} failed:\n{p.stderr[-3000:]}")
    return p


class Utilisation:
    """nvidia-smi's GPU utilisation of one GPU, sampled every 0.5 s in a thread."""

    def __init__(self, gpu: int = 0):
        self.gpu, self.samples, self.stop = gpu, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            p = subprocess.run(
                ["nvidia-smi", f"--id={self.gpu}", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
            )
            if p.returncode == 0 and p.stdout.strip().isdigit():
                self.samples.append(int(p.stdout.strip()))
            self.stop.wait(0.5)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples) if self.samples else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=16)
    ap.add_argument("--per-device", default="1,2,4")
    ap.add_argument("--cache", help="regspace's dataset cache to use ($REGSPACE_CACHE)")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(f"no CUDA here (torch {torch.__version__}): this benchmark needs a GPU; nothing measured")
        return
    env = {**os.environ}
    if args.cache:
        env["REGSPACE_CACHE"] = str(Path(args.cache).resolve())
    print(f"GPU 0: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; {args.models} models, quick recipe")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for per in [int(x) for x in args.per_device.split(",")]:
            store = Path(d) / f"s{per}"
            for space in ("X_c", "RegNetX"):
                regspace(
                    "sample",
                    "--store",
                    store,
                    "--space",
                    space,
                    "-n",
                    args.models // 2,
                    "--preset",
                    "mnist",
                    "--flops",
                    "2M:4M",
                    "--seed",
                    "0",
                    env=env,
                )
            t = time.perf_counter()
            with Utilisation(0) as util:
                regspace("train", "--store", store, "--devices", "0", "--workers-per-device", per, env=env)
            wall = time.perf_counter() - t
            r = pd.read_parquet(store / "results")
            bad = r[(r.status != "ok") | r.test_error.isna() | (r.device_kind != "cuda")]
            assert len(r) == args.models and bad.empty, bad[["model_id", "status", "reason", "device"]].to_string()
            rows.append(
                (
                    per,
                    args.models / wall * 3600,
                    util.mean,
                    r.peak_memory_mb.median(),
                    r.peak_memory_mb.max(),
                    r.precision.iloc[0],
                    wall,
                )
            )
    base = rows[0][1]
    print(
        f"{'workers/GPU':>11} {'models/h':>9} {'vs 1':>6} {'GPU util %':>10} {'peak MiB med':>12} {'max':>7} "
        f"{'precision':>10} {'wall s':>7}"
    )
    for per, mph, util, med, mx, prec, wall in rows:
        print(f"{per:11d} {mph:9.0f} {mph / base:5.2f}x {util:10.0f} {med:12.0f} {mx:7.0f} {prec:>10} {wall:7.0f}")
    print(f"every model ok with a test error, on cuda ({len(rows) * args.models} trainings)")


if __name__ == "__main__":
    main()
