"""Sampler throughput per space: candidate draws/s and accepted draws/s (vectorised), and the wall
time of the whole `regspace sample` command (import included).

Baseline, run in the same process: regspace's own numpy code called with one candidate at a time
(batch size 1). It is NOT the reference implementation: that one builds each candidate as a model
through its config system. Its figure, quoted beside the table, was measured on this project's 2-core
machine when issue 9 was filed (not by this script): the reference's sweep set-up took a median 110 s
wall on its default 2 processes to draw 500 RegNetX at 360M–400M (100,000 candidates, about 2.2 ms of
CPU each).

    python benchmarks/bench_sample.py [--preset imagenet] [--flops 360M:400M] [-n 500]
"""

import argparse
import subprocess
import sys
import tempfile
import time

import numpy as np

from regspace.presets import PRESETS, Budget
from regspace.sampler import sample
from regspace.spaces import SPACES


def one_at_a_time(space, preset, budget, seconds=1.0):
    """Baseline: draw, derive and measure candidates one by one; returns candidates/s."""
    rng = np.random.default_rng(0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        raw = space.draw(rng, 1)
        batch, valid = space.derive(raw, preset.stem)
        if valid[0]:
            d = batch.design(0)
            cx = d.complexity(preset.context)
            budget.flops.contains(cx.flops)
        n += 1
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="imagenet")
    ap.add_argument("--flops", default="360M:400M")
    ap.add_argument("-n", type=int, default=500)
    args = ap.parse_args()
    preset = PRESETS[args.preset]
    budget = Budget.parse(flops=args.flops)
    print(f"preset {args.preset}, flops {args.flops}, n = {args.n}")
    header = (
        f"{'space':8} {'draws/s':>12} {'accepted/s':>11} {'accept %':>9} {'batch-1 draws/s':>16} "
        f"{'speed-up':>9} {'command s':>10}"
    )
    print(header)
    walls = {}
    for name, space in SPACES.items():
        t = time.perf_counter()
        r = sample(space, args.n, budget=budget, stem=preset.stem, context=preset.context, seed=0)
        dt = time.perf_counter() - t
        base = one_at_a_time(space, preset, budget)
        with tempfile.TemporaryDirectory() as d:
            cmd = [
                sys.executable,
                "-m",
                "regspace",
                "sample",
                "--space",
                name,
                "-n",
                str(args.n),
                "--preset",
                args.preset,
                "--flops",
                args.flops,
                "--seed",
                "0",
                "--store",
                f"{d}/s",
            ]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            wall = time.perf_counter() - t
        walls[name] = wall
        print(
            f"{name:8} {r.drawn / dt:12,.0f} {r.n / dt:11,.0f} {100 * r.acceptance_rate:9.3f} {base:16,.0f} "
            f"{r.drawn / dt / base:8.0f}x {wall:10.2f}"
        )
    print("baseline 'batch-1': regspace's numpy code, one candidate per call (not the reference implementation)")
    if args.preset == "imagenet" and args.flops == "360M:400M" and args.n == 500:
        print(
            f"reference implementation (quoted from issue 9, measured there on this machine, not here): 110 s "
            f"median wall for 500 RegNetX on 2 processes; regspace's whole command: {walls['RegNetX']:.2f} s "
            f"({110 / walls['RegNetX']:.0f}x)"
        )


if __name__ == "__main__":
    main()
