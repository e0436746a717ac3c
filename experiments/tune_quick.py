"""Tune the `quick` recipe's learning rate and weight decay once, as pycls's cifar_optim sweep did.

A small Optuna (TPE) study: each trial trains the same few designs — sampled from X_c and RegNetX
at the demo budget (mnist preset, 3M–6M flops) — with the quick recipe and a candidate (lr, wd),
and scores the trial by their median validation error. Two designs train at once, one thread each.

    python experiments/tune_quick.py [--trials 16] [--designs 4] [--out experiments/results]

Writes tune_quick.json (every trial) and prints the best (lr, wd); the chosen values are then
written into regspace/train/recipe.py by hand, and experiments/README.md records the run.
"""

import argparse
import json
import multiprocessing as mp
import statistics
import time
from pathlib import Path


def designs(n: int):
    from regspace.presets import PRESETS, Budget
    from regspace.sampler import sample
    from regspace.spaces import get_space

    p = PRESETS["mnist"]
    out = []
    for name in ("X_c", "RegNetX"):
        r = sample(
            get_space(name), n // 2, budget=Budget.parse(flops="3M:6M"), stem=p.stem, context=p.context, seed=123
        )
        for i in range(r.n):
            out.append(
                {
                    k: r.columns[k][i]
                    for k in ("stage_widths", "stage_depths", "stage_bottleneck_ratios", "stage_group_widths")
                }
                | {"se_ratio": 0.0, "space": name}
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
        d["se_ratio"],
        STEMS["cifar"],
    )
    r = fit_one(Task("tune", design, Context(28, 1, 10)), recipe, data, device=torch.device("cpu"))
    return r.error if r.status == "ok" else 90.0


def main():
    import optuna

    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--designs", type=int, default=4)
    ap.add_argument("--out", default="experiments/results")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = designs(args.designs)
    pool = mp.get_context("forkserver").Pool(2)
    trials = []

    def objective(trial):
        lr = trial.suggest_float("lr", 0.05, 2.0, log=True)
        wd = trial.suggest_float("weight_decay", 1e-5, 2e-3, log=True)
        t = time.perf_counter()
        errors = pool.map(train_one, [(d, {"lr": lr, "weight_decay": wd}) for d in ds])
        score = statistics.median(errors)
        trials.append(
            {"lr": lr, "weight_decay": wd, "errors": errors, "median": score, "seconds": time.perf_counter() - t}
        )
        print(f"trial {trial.number:2d}: lr {lr:.3f} wd {wd:.2e} -> median error {score:.2f}% {errors}", flush=True)
        return score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=0))
    # start from the reference CIFAR sweep's region and the previous default
    study.enqueue_trial({"lr": 0.2, "weight_decay": 5e-4})
    study.enqueue_trial({"lr": 0.4, "weight_decay": 5e-4})
    study.optimize(objective, n_trials=args.trials)
    best = study.best_params
    print(f"best: lr {best['lr']:.3f}, weight decay {best['weight_decay']:.2e}, median error {study.best_value:.2f}%")
    (out / "tune_quick.json").write_text(
        json.dumps(
            {"designs": ds, "trials": trials, "best": best, "best_median_error": study.best_value},
            indent=1,
            default=int,
        )
    )
    pool.close()


if __name__ == "__main__":
    main()
