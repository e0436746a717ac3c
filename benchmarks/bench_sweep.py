"""Sweep throughput: models per hour for a quick sweep with the default --workers versus --workers 1.

Samples the same models (X_c and RegNetX, mnist preset, 3M–6M flops) into two fresh stores and runs
`regspace train` on each, timing the whole command (worker start-up included).

    python benchmarks/bench_sweep.py [--models 32] [-- extra train options, e.g. --epochs 1]
"""

import argparse
import subprocess
import sys
import tempfile
import time

import pandas as pd


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "regspace", *map(str, args)], check=True, capture_output=True, text=True
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=32)
    ap.add_argument("extra", nargs="*", help="extra `regspace train` options")
    args = ap.parse_args()
    half = args.models // 2
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for label, opts in (("default workers", []), ("--workers 1", ["--workers", "1"])):
            store = f"{d}/{label.replace(' ', '_')}"
            for space in ("X_c", "RegNetX"):
                run("sample", "--store", store, "--space", space, "-n", half, "--preset", "mnist", "--flops", "3M:6M")
            t = time.perf_counter()
            out = run("train", "--store", store, *opts, *args.extra).stdout.strip()
            dt = time.perf_counter() - t
            trained = len(pd.read_parquet(f"{store}/results"))
            rows.append((label, trained / dt * 3600, dt, trained, out))
    base = rows[1][1]
    for label, rate, dt, trained, out in rows:
        print(
            f"{label:16} {rate:7.0f} models/hour  ({trained} models in {dt:.0f} s; x{rate / base:.2f} vs --workers 1)"
        )
        print(f"{'':16} {out}")


if __name__ == "__main__":
    main()
