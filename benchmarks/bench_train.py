"""Training throughput: regspace's Lightning path against a minimal hand-written loop, same process.

For three representative sampled designs it trains one epoch both ways — same model, same uint8
data tensor, same batch size, dtype (bf16 autocast where the CPU has it), channels_last and thread
count — and prints images/s for each and their ratio (target >= 0.9). It also prints the achieved
GFLOP/s (2 flops per multiply-add, forward + backward ~ 3x forward) against fp32 and bf16 matmul
peaks measured here with the same thread count. With --precision it also trains each design through
regspace's path with fp32 defaults (precision 32-true, contiguous memory) and prints the speed-up of
the recipe's choice (bf16 autocast + channels_last where the CPU has bf16) over them.

    python benchmarks/bench_train.py [--threads 1] [--images 6144] [--batch-size 128] [--precision]
"""

import argparse
import math
import time

import torch
import torch.nn.functional as F

from regspace.blocks.network import build_model
from regspace.data import prepare
from regspace.design import STEMS, Context, Design
from regspace.presets import PRESETS, Budget
from regspace.sampler import sample
from regspace.spaces import get_space
from regspace.train.fit import autocast_dtype, fit_one, lr_factor, prepare_tensors, resolve_precision
from regspace.train.pipeline import Batches
from regspace.train.recipe import RECIPES
from regspace.train.records import Task


def sampled_design(space: str, flops: str, seed: int = 7) -> tuple[Design, int]:
    """The first model the mnist preset samples from ``space`` at this budget: (design, flops)."""
    p = PRESETS["mnist"]
    r = sample(get_space(space), 1, budget=Budget.parse(flops=flops), stem=p.stem, context=p.context, seed=seed)
    c = r.columns
    design = Design(
        tuple(c["stage_widths"][0]),
        tuple(c["stage_depths"][0]),
        tuple(c["stage_bottleneck_ratios"][0]),
        tuple(c["stage_group_widths"][0]),
        get_space(space).se_ratio,
        STEMS["cifar"],
    )
    return design, int(c["flops"][0])


def representative_designs():
    out = []
    for space, flops in (("X_c", "3M:6M"), ("RegNetX", "3M:6M"), ("RegNetY", "20M:28M")):
        design, f = sampled_design(space, flops)
        out.append((space, design, f))
    return out


def hand_loop(design, ctx, data, recipe, precision) -> float:
    """The same work with nothing but torch: returns training images/s over one epoch."""
    torch.manual_seed(recipe.seed)
    model = build_model(design, ctx, zero_init_final_gamma=recipe.zero_init_final_gamma, conv_init=recipe.conv_init)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(
        model.parameters(), lr=recipe.scaled_lr, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay
    )
    x, y = data.train
    batches = Batches(
        x,
        y,
        batch_size=recipe.batch_size,
        mean=data.mean,
        std=data.std,
        in_channels=ctx.in_channels,
        shuffle=True,
        drop_last=True,
        seed=recipe.seed,
    )
    total = len(batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, 0))
    dtype = autocast_dtype(precision)
    n, t = 0, time.perf_counter()
    for xb, yb in batches:
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(xb).float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        n += len(yb)
    return n / (time.perf_counter() - t)


def matmul_peak(dtype, threads, n=2048, reps=5) -> float:
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    t = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images", type=int, default=6144, help="training images per epoch")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--precision", action="store_true", help="also time fp32 defaults against the recipe's choice")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recipe = RECIPES["quick"].replace(
        epochs=1, train_size=args.images, val_size=512, test_size=0, batch_size=args.batch_size
    )
    precision = resolve_precision(recipe, "cpu")
    ds = prepare(recipe.dataset)
    data = prepare_tensors(ds.arrays(), recipe, torch.device("cpu"), recipe.dataset, ds.num_classes)
    ctx = Context(28, 1, 10)
    fp32, bf16 = matmul_peak(torch.float32, args.threads), matmul_peak(torch.bfloat16, args.threads)
    print(f"{args.threads} thread(s), batch {args.batch_size}, {args.images} images, precision {precision}")
    print(f"matmul peak: fp32 {fp32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s")
    print(
        f"{'design':8} {'flops':>8} {'regspace img/s':>15} {'hand loop img/s':>16} {'ratio':>6} {'GFLOP/s':>8} "
        f"{'% bf16 peak':>11}"
    )
    ratios, speedups = [], []
    designs = representative_designs()
    for space, design, flops in designs:
        # warm-up both paths: oneDNN kernels, allocator, Lightning's first-fit set-up
        hand_loop(design, ctx, data, recipe, precision)
        fit_one(Task("bench", design, ctx), recipe, data, device=torch.device("cpu"))
        ours = fit_one(Task("bench", design, ctx), recipe, data, device=torch.device("cpu")).images_per_second
        hand = hand_loop(design, ctx, data, recipe, precision)
        gflops = 6 * flops * ours / 1e9
        ratios.append(ours / hand)
        print(
            f"{space:8} {flops / 1e6:7.1f}M {ours:15.0f} {hand:16.0f} {ours / hand:6.2f} {gflops:8.1f} "
            f"{100 * gflops / bf16:10.1f}%"
        )
    print(f"geometric-mean ratio regspace / hand loop: {geomean(ratios):.3f}")
    if not args.precision:
        return
    fp32_recipe = recipe.replace(precision="32-true", channels_last=False)
    print(f"\n{'design':8} {'fp32 img/s':>11} {precision + ' + channels_last img/s':>34} {'speed-up':>9}")
    for space, design, _ in designs:
        fit_one(Task("bench", design, ctx), fp32_recipe, data, device=torch.device("cpu"))  # warm-up
        slow = fit_one(Task("bench", design, ctx), fp32_recipe, data, device=torch.device("cpu")).images_per_second
        fast = fit_one(Task("bench", design, ctx), recipe, data, device=torch.device("cpu")).images_per_second
        speedups.append(fast / slow)
        print(f"{space:8} {slow:11.0f} {fast:34.0f} {fast / slow:8.2f}x")
    print(f"geometric-mean speed-up over fp32 defaults: {geomean(speedups):.2f}x")


def geomean(xs) -> float:
    return math.exp(sum(map(math.log, xs)) / len(xs))


if __name__ == "__main__":
    main()
