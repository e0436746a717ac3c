"""What measuring inference throughput adds to training one model (issue 24 §1, DDS Fig. 12).

For sampled RegNetX designs at three flops regimes (mnist preset, 28×28×1), it times, in the same
process and thread count: ``fit.inference_speed`` (2 warm-up + 5 timed forward passes of 64 images, the
measurement every result now records) and one training step (forward + backward + SGD, batch 128,
the quick recipe's), and prints the measurement's cost as a share of the quick recipe's training
(3 epochs of 10,000 images = 234 steps).

    python benchmarks/bench_inference.py [--threads 1]
"""

import argparse
import time

import torch
import torch.nn.functional as F

from regspace.blocks.network import build_model
from regspace.presets import PRESETS, Budget
from regspace.sampler import sample
from regspace.schema import design_from_row
from regspace.spaces import get_space
from regspace.train.fit import inference_speed, resolve_precision
from regspace.train.recipe import RECIPES

QUICK_STEPS = 3 * (10_000 // 128)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    p, recipe = PRESETS["mnist"], RECIPES["quick"]
    precision = resolve_precision(recipe, "cpu")
    device = torch.device("cpu")
    print(f"threads {args.threads}, precision {precision}")
    for flops in ("2M:4M", "8M:16M", "25M:28M"):
        r = sample(get_space("RegNetX"), 1, budget=Budget.parse(flops=flops), stem=p.stem, context=p.context, seed=3)
        row = {k: v[0] for k, v in r.columns.items()}
        row["stem"] = p.stem.name
        model = build_model(design_from_row(row), p.context).to(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        ips = inference_speed(model, p.context, precision, device, channels_last=True)
        measure = time.perf_counter() - t0
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x = torch.randn(128, 1, 28, 28).to(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (128,))
        steps = []
        for i in range(4):
            t = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i:  # the first step warms up
                steps.append(time.perf_counter() - t)
        train = sum(steps) / len(steps) * QUICK_STEPS
        print(
            f"RegNetX {flops} ({row['flops'] / 1e6:.1f}M flops): inference {ips:,.0f} images/s; measuring it "
            f"{measure:.3f} s; quick training ~{train:.1f} s; cost {100 * measure / train:.2f} % of training"
        )


if __name__ == "__main__":
    main()
