"""Re-tune the `quick` recipe on an objective that sees the EDF's right tail.

The first tuning (tune_quick.py) scored lr by the *median* error of 4 designs, so models that fail to
learn because of the lr went unseen. Here every candidate recipe trains the same 16 designs — 4 from
each of X_a, X_c, X_e and RegNetX at the ladder's budget (mnist preset, 2M–4M flops): per space the
deepest-and-narrowest, the widest-and-shallowest and two drawn at random — and is scored by what an
EDF shows: median, mean, 90th percentile, worst, and the share of models above 2× the median.

    python experiments/tune_tail.py [--out experiments/results/tune_tail.json]

Two designs train at once, one thread each (the fastest layout on 2 cores). Each candidate's row is
written as soon as it finishes, so a rerun skips finished candidates.
"""

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np

# Candidates: "before" is the recipe as it was (lr 0.4, conv init divided by groups); the rest use
# the reference init. "more steps, same cost" halves the batch (twice the steps over the same images)
# at half the per-step rate, since lr scales linearly with the batch.
CANDIDATES = {
    "before (grouped init)": {"conv_init": "grouped"},
    "lr 0.4 (reference init)": {},
    "lr 0.4, warm-up 0.5 ep": {"warmup_epochs": 0.5},
    "lr 0.4, clip 5": {"grad_clip": 5.0},
    "lr 0.2, warm-up 0.5 ep": {"lr": 0.2, "warmup_epochs": 0.5},
    "batch 64 (2x steps), warm-up 0.5 ep": {"batch_size": 64, "warmup_epochs": 0.5},
}


def designs(per_space: int = 4, seed: int = 11):
    from regspace.presets import PRESETS, Budget
    from regspace.sampler import sample
    from regspace.spaces import get_space

    p = PRESETS["mnist"]
    out = []
    rng = np.random.default_rng(seed)
    for name in ("X_a", "X_c", "X_e", "RegNetX"):
        r = sample(get_space(name), 200, budget=Budget.parse(flops="2M:4M"), stem=p.stem, context=p.context, seed=seed)
        depth = np.array([sum(d) for d in r.columns["stage_depths"]])
        width = np.array([np.mean(w) for w in r.columns["stage_widths"]])
        shape = depth / width  # deep and narrow: high; wide and shallow: low
        picks = [int(np.argmax(shape)), int(np.argmin(shape))]
        rest = [i for i in range(r.n) if i not in picks]
        picks += [int(i) for i in rng.choice(rest, per_space - 2, replace=False)]
        for i in picks:
            out.append(
                {
                    k: [float(v) if k == "stage_bottleneck_ratios" else int(v) for v in r.columns[k][i]]
                    for k in ("stage_widths", "stage_depths", "stage_bottleneck_ratios", "stage_group_widths")
                }
                | {"space": name, "flops": int(r.columns["flops"][i])}
            )
    return out


def train_one(args):
    d, overrides = args
    import torch

    torch.set_num_threads(1)
    from regspace.data import prepare
    from regspace.design import STEMS, Context, Design
    from regspace.train.fit import fit_one, prepare_tensors
    from regspace.train.recipe import RECIPES
    from regspace.train.records import Task

    recipe = RECIPES["quick"].replace(**overrides)
    ds = prepare(recipe.dataset)
    data = prepare_tensors(ds.arrays(), recipe, torch.device("cpu"), recipe.dataset, ds.num_classes)
    design = Design(
        tuple(d["stage_widths"]),
        tuple(d["stage_depths"]),
        tuple(d["stage_bottleneck_ratios"]),
        tuple(d["stage_group_widths"]),
        0.0,
        STEMS["cifar"],
    )
    r = fit_one(Task("tune", design, Context(28, 1, 10)), recipe, data, device=torch.device("cpu"))
    # a diverged or failed model is the worst outcome: chance error (90 %)
    return (r.error if r.status == "ok" else 90.0), r.train_seconds or 0.0, r.status


def summarise(errors) -> dict:
    e = np.asarray(errors, float)
    med = float(np.median(e))
    return {
        "median": med,
        "mean": float(e.mean()),
        "p90": float(np.percentile(e, 90)),
        "max": float(e.max()),
        "share_above_2x_median": float(np.mean(e > 2 * med)),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="experiments/results/tune_tail.json")
    ap.add_argument("--time", nargs=2, metavar="CANDIDATE", help="time two candidates alone on 4 of the designs")
    args = ap.parse_args()
    if args.time:
        return time_candidates(Path(args.out), args.time)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = json.loads(out.read_text()) if out.exists() else {"designs": designs(), "candidates": {}}
    ds = state["designs"]
    pool = mp.get_context("forkserver").Pool(2)
    for name, overrides in CANDIDATES.items():
        if name in state["candidates"]:
            continue
        t = time.perf_counter()
        got = pool.map(train_one, [(d, overrides) for d in ds])
        errors = [g[0] for g in got]
        row = {
            "overrides": overrides,
            "errors": errors,
            "status": [g[2] for g in got],
            "train_seconds": sum(g[1] for g in got),
            "wall_seconds": time.perf_counter() - t,
            **summarise(errors),
        }
        state["candidates"][name] = row
        out.write_text(json.dumps(state, indent=1))
        print(
            f"{name:38s} median {row['median']:.2f} mean {row['mean']:.2f} p90 {row['p90']:.2f} "
            f"max {row['max']:.2f} >2x {100 * row['share_above_2x_median']:.0f}% "
            f"train {row['train_seconds']:.0f} s",
            flush=True,
        )
    pool.close()
    print_table(state)


def time_candidates(out: Path, names) -> None:
    """Training seconds of two candidates on the same 4 designs (one per space), run back to back on an
    otherwise idle machine: the tuning run above shared the machine with other work, so its seconds are
    not comparable between candidates."""
    ds = json.loads(out.read_text())["designs"][2::4]  # a random design of each space
    pool = mp.get_context("forkserver").Pool(2)
    for name in names:
        t = time.perf_counter()
        got = pool.map(train_one, [(d, CANDIDATES[name]) for d in ds])
        print(
            f"{name:38s} train {sum(g[1] for g in got):6.0f} s over {len(ds)} models "
            f"(wall {time.perf_counter() - t:.0f} s, 2 at a time)",
            flush=True,
        )
    pool.close()


def print_table(state):
    print("| candidate | median | mean | p90 | worst | > 2× median | train s (16 models) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in state["candidates"].items():
        print(
            f"| {name} | {r['median']:.2f} | {r['mean']:.2f} | {r['p90']:.2f} | {r['max']:.2f} | "
            f"{100 * r['share_above_2x_median']:.0f} % | {r['train_seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
