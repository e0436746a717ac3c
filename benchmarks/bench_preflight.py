"""What the device check (regspace.train.fit.preflight) adds to a CPU worker's start-up.

A training worker is forked from a forkserver that has imported torch and regspace.train.fit; before it
says it is ready it runs the check (one forward+backward of a tiny network) and loads its data, then
trains. This forks such workers, half with the check and half without (alternating), and times in
each: the check, the data load of the `quick` recipe, and the first training step of a small X_c model
(batch 128). The first step pays the process's one-time torch set-up whether or not a check ran before
it, so the check's real cost is (check + first step) with it minus the first step without it.

    python benchmarks/bench_preflight.py [--forks 6]
"""

import argparse
import multiprocessing as mp
import statistics
import time

import torch
import torch.nn.functional as F

from regspace.blocks.network import build_model
from regspace.train.fit import preflight, prepare_tensors
from regspace.train.recipe import RECIPES
from regspace.train.records import Task

ROW = {
    "model_id": "bench", "space": "X_c", "stage_widths": [16, 32, 64, 128], "stage_depths": [1, 1, 2, 3],
    "stage_bottleneck_ratios": [1.0] * 4, "stage_group_widths": [8, 8, 8, 8], "se_ratio": 0.0, "stem": "cifar",
    "resolution": 28, "in_channels": 1, "num_classes": 10, "flops": 1, "params": 1, "acts": 1,
}  # fmt: skip


def one_worker(precision: str, check: bool, dataset, out):
    torch.set_num_threads(1)
    device = torch.device("cpu")
    t = time.perf_counter()
    if check:
        preflight(device, precision)
    checked = time.perf_counter() - t
    recipe = RECIPES["quick"]
    t = time.perf_counter()
    prepare_tensors(dataset.arrays(), recipe, device, recipe.dataset, dataset.num_classes)
    load = time.perf_counter() - t
    task = Task.from_row(ROW)
    model = build_model(task.design, task.context)
    x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
    t = time.perf_counter()
    dtype = {"bf16-mixed": torch.bfloat16}.get(precision)
    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        loss = F.cross_entropy(model(x).float(), y)
    loss.backward()
    first = time.perf_counter() - t
    out.put((checked, load, first))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--forks", type=int, default=6)
    args = ap.parse_args()
    from regspace.data import prepare

    dataset = prepare(RECIPES["quick"].dataset, resolution=28)
    ctx = mp.get_context("fork")
    for precision in ("32-true", "bf16-mixed"):
        runs = {True: [], False: []}
        for k in range(2 * args.forks):
            check = k % 2 == 0
            q = ctx.Queue()
            p = ctx.Process(target=one_worker, args=(precision, check, dataset, q))
            p.start()
            runs[check].append(q.get())
            p.join()
        med = {c: [statistics.median(r[i] for r in runs[c]) for i in range(3)] for c in runs}
        check_ms = med[True][0] * 1e3
        added = (med[True][0] + med[True][2] - med[False][2]) * 1e3
        start = (med[False][1] + med[False][2]) * 1e3
        print(
            f"{precision:10s}: check {check_ms:5.1f} ms; check + first step − first step without check = "
            f"{added:5.1f} ms; start-up without check (data load + first step) {start:6.1f} ms; "
            f"added / start-up = {added / start:.3f} (medians of {args.forks} forked workers each)"
        )


if __name__ == "__main__":
    main()
