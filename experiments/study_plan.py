"""A study's populations and training time, before training: what a study file's header states.

    python experiments/study_plan.py experiments/regimes.toml [--reference experiments/results/ladder/store]

Samples the study into a temporary store exactly as `regspace study run` would (same seeds, regimes, budget
and preset; nothing is trained) and prints, per population, the draws, the distinct networks and the share
of candidates that met the space's constraints and the budget. Then an estimate of the training time: each
distinct network's seconds = its flops × the median seconds per flop of the reference store's ok results of
the same space (else of every space there, said so), summed over the study's seeds and divided by the
workers. The reference's seconds are what its runs took on their machine (``train_seconds``, one process per
worker), so the estimate holds for a machine as loaded as that one was.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from regspace.population import by_population
from regspace.store import Store
from regspace.study import load_study, open_store, sample_study


def seconds_per_flop(reference: Path) -> dict[str, float]:
    """Median train_seconds / flops of the reference store's ok results, per space and over all ("*")."""
    store = Store.open(reference)
    results = store.read("results", ["model_id", "status", "train_seconds"])
    models = store.read("models", ["model_id", "space", "flops"]).drop_duplicates("model_id")
    d = results[results.status == "ok"].merge(models, on="model_id")
    rate = d.train_seconds / d.flops
    out = {s: float(np.median(rate[d.space == s])) for s in d.space.unique()}
    out["*"] = float(np.median(rate))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study")
    ap.add_argument("--reference", action="append", default=None,
                    help="store(s) whose train_seconds set the time (default: the ladder's)")  # fmt: skip
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    refs = [Path(r) for r in (args.reference or ["experiments/results/ladder/store"])]
    rates: dict[str, float] = {}
    for r in reversed(refs):  # the first reference wins for a space several hold
        rates.update(seconds_per_flop(r))
    with tempfile.TemporaryDirectory() as tmp:
        study = load_study(args.study, output=tmp)
        store = open_store(study)
        for line in sample_study(store, study):
            print(line.replace(str(store.path), "the study's store"))
        models = by_population(store.read("models", ["model_id", "space", "flops", "multiplicity", "regime"]))
        total = 0.0
        for pop in study.populations:
            g = models[models.space == pop].drop_duplicates("model_id")
            base = pop.split("@")[0]
            rate, which = (rates[base], base) if base in rates else (rates["*"], "all reference spaces")
            secs = float(g.flops.sum()) * rate * study.seeds
            total += secs
            print(f"{pop}: {int(g.multiplicity.sum())} draws, {len(g)} distinct networks, median flops "
                  f"{np.median(g.flops) / 1e6:.2f}M; {len(g) * study.seeds} runs ≈ {secs / 3600:.2f} h of one worker "
                  f"(seconds per flop of {which})")  # fmt: skip
        print(f"total ≈ {total / 3600 / args.workers:.2f} h with {args.workers} workers (reference: "
              f"{', '.join(map(str, refs))})")  # fmt: skip


if __name__ == "__main__":
    main()
