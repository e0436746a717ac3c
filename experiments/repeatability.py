"""How repeatable is one model's error? Same seed twice, and a different seed, on the quick recipe.

Trains the same models (sampled from X_c and RegNetX, mnist preset, 2M–4M flops) three times into
three stores — seed 0, seed 0 again, seed 1 — with the default workers, and prints the per-model
differences. Same-seed runs on the CPU are expected to agree to run-to-run nondeterminism (thread
scheduling in reductions); a new seed (initialisation and data order) shows the seed noise that an
error EDF averages over.

    python experiments/repeatability.py [-n 4]
"""

import argparse
import subprocess
import sys
import tempfile

import pandas as pd


def regspace(*args):
    subprocess.run([sys.executable, "-m", "regspace", *map(str, args)], check=True, capture_output=True, text=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=4, help="models per space")
    args = ap.parse_args()
    errors = {}
    with tempfile.TemporaryDirectory() as d:
        for label, seed in (("seed0", 0), ("seed0_again", 0), ("seed1", 1)):
            store = f"{d}/{label}"
            for space in ("X_c", "RegNetX"):
                regspace(
                    "sample",
                    "--store",
                    store,
                    "--space",
                    space,
                    "-n",
                    args.n,
                    "--preset",
                    "mnist",
                    "--flops",
                    "2M:4M",
                    "--seed",
                    5,
                )
            regspace("train", "--store", store, "--seed", seed)
            r = pd.read_parquet(f"{store}/results")
            errors[label] = r.set_index("model_id").error
    df = pd.DataFrame(errors)
    df["same_seed_diff"] = (df.seed0 - df.seed0_again).abs()
    df["new_seed_diff"] = (df.seed0 - df.seed1).abs()
    print(df.round(2).to_string())
    print(f"same seed: max |Δ| {df.same_seed_diff.max():.2f} points, mean {df.same_seed_diff.mean():.2f}")
    print(f"new seed:  max |Δ| {df.new_seed_diff.max():.2f} points, mean {df.new_seed_diff.mean():.2f}")


if __name__ == "__main__":
    main()
