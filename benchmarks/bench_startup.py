"""Start-up time of commands that do not train: whole command, best of 5, beside a bare interpreter.

These commands must not import torch or lightning (tests/test_cli.py checks the imports); this prints
what that buys in seconds.

    python benchmarks/bench_startup.py
"""

import subprocess
import sys
import tempfile
import time


def best_of(cmd, reps=5) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    bare = best_of([sys.executable, "-c", "pass"])
    regspace = [sys.executable, "-m", "regspace"]
    with tempfile.TemporaryDirectory() as d:
        store = f"{d}/s"
        subprocess.run(
            [*regspace, "sample", "--store", store, "--space", "X_c", "-n", "50"], check=True, capture_output=True
        )
        commands = {
            "--help": ["--help"],
            "spaces": ["spaces"],
            "status": ["status", "--store", store],
            "describe RegNetX-200MF": ["describe", "RegNetX-200MF"],
        }
        print(f"{'python -c pass':30} {bare:6.2f} s")
        for label, args in commands.items():
            t = best_of([*regspace, *args])
            print(f"{'regspace ' + label:30} {t:6.2f} s  ({t - bare:+.2f} s over a bare interpreter)")


if __name__ == "__main__":
    main()
