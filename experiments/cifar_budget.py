"""Where do the paper's 360M–400M ImageNet shapes land at CIFAR / MNIST resolution?

Samples designs from a space at the imagenet preset (360M–400M flops, 224×224), re-measures the very
same designs (widths, depths, b, g) with the cifar stem at 32×32×3 and 28×28×1, and prints the
quantiles of their flops. The cifar and mnist presets' default budgets are read off this table:
a budget around the middle of these distributions samples models of roughly the paper's shapes.

    python experiments/cifar_budget.py [--space X_c] [-n 2000]
"""

import argparse

import numpy as np

from regspace.design import STEMS, Context
from regspace.presets import PRESETS
from regspace.sampler import sample
from regspace.spaces import get_space
from regspace.units import format_quantity


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="X_c")
    ap.add_argument("-n", type=int, default=2000)
    args = ap.parse_args()
    space = get_space(args.space)
    p = PRESETS["imagenet"]
    r = sample(space, args.n, budget=p.budget, stem=p.stem, context=p.context, seed=0)
    from regspace.design import DesignBatch

    batch = DesignBatch(
        np.array(r.columns["stage_widths"]),
        np.array(r.columns["stage_depths"]),
        np.array(r.columns["stage_bottleneck_ratios"]),
        np.array(r.columns["stage_group_widths"]),
        space.se_ratio,
        STEMS["cifar"],
    )
    qs = [5, 25, 40, 50, 60, 75, 95]
    print(f"{args.n} {space.name} designs sampled at imagenet 360M–400M; flops of the same designs:")
    print("context".ljust(28) + "".join(f"{q}%".rjust(9) for q in qs))
    for label, ctx in (
        ("cifar stem 32x32x3, 10 cls", Context(32, 3, 10)),
        ("cifar stem 28x28x1, 10 cls", Context(28, 1, 10)),
    ):
        f = batch.complexity(ctx).flops
        print(label.ljust(28) + "".join(format_quantity(v).rjust(9) for v in np.percentile(f, qs)))


if __name__ == "__main__":
    main()
