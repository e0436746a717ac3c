"""At the paper's budget, is `regspace sample`'s population the reference law's?

Samples N draws with the CLI's library call (imagenet preset, 360M–400M flops, seed 0) and compares
them, feature by feature, with an independent simulation of the law (tests/test_population.py's
`simulate`: raw draws, the space's constraints by rejection, the budget, no de-duplication) by
two-sample KS tests. Also reports how many distinct networks the draws hold.

    python experiments/population_check.py [--spaces RegNetX,X_a,X_c] [-n 5000]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_population import features, sampled, simulate  # noqa: E402

from regspace.presets import PRESETS, Budget  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spaces", default="RegNetX,X_a,X_c")
    ap.add_argument("-n", type=int, default=5000)
    args = ap.parse_args()
    preset, budget = PRESETS["imagenet"], Budget.parse(flops="360M:400M")
    print(f"imagenet preset, flops 360M:400M, {args.n} draws per space, seed 0")
    for name in args.spaces.split(","):
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            ours = sampled(Path(d), name, args.n, budget, preset, seed=0)
        theirs = simulate(name, args.n, budget, preset, seed=0)
        ps = {f: stats.ks_2samp(ours[f].to_numpy(float), theirs[f].to_numpy(float)).pvalue for f in features(name)}
        worst = min(ps, key=ps.get)
        print(
            f"{name:8} distinct networks {ours.model_id.nunique():5d} of {args.n} draws; KS p-values: "
            + ", ".join(f"{f} {p:.2f}" for f, p in ps.items())
            + f"; smallest: {worst} {ps[worst]:.3f} ({time.perf_counter() - t:.0f} s)"
        )


if __name__ == "__main__":
    main()
