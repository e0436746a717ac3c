"""Read-side speed on a big store: `compare --json` and `plot-edf` on 100,000 results.

Builds a synthetic store (X_a and X_c, 50,000 models each, errors made up; regspace.synthetic),
compacts it, then times each whole command (interpreter start and imports included), best of 3.

    python benchmarks/bench_analysis.py [--per-space 50000]
"""

import argparse
import subprocess
import sys
import tempfile
import time

from regspace.synthetic import make_synthetic_store


def timed(*args) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "regspace", *map(str, args)], check=True, capture_output=True)
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-space", type=int, default=50_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        store = make_synthetic_store(f"{d}/s", ("X_a", "X_c"), n=args.per_space, flops="1M:2G")
        store.compact("models", min_parts=2)
        n = len(store.read_arrow("results", ["model_id"]))
        print(f"synthetic store: {n:,} results, built in {time.perf_counter() - t:.1f} s")
        print(f"compare --json            {timed('compare', '--store', f'{d}/s', '--json'):.2f} s")
        print(f"plot-edf -o edf.png       {timed('plot-edf', '--store', f'{d}/s', '-o', f'{d}/edf.png'):.2f} s")
        print(
            "plot-edf --normalize flops "
            f"{timed('plot-edf', '--store', f'{d}/s', '--normalize', 'flops', '-o', f'{d}/e2.png'):.2f} s"
        )
        print(f"status                    {timed('status', '--store', f'{d}/s'):.2f} s")


if __name__ == "__main__":
    main()
