"""Synthetic stores: sampled models with made-up errors, for testing and timing the analyses.

The error of a model is a known function of its design plus noise, so analyses can be checked
against the truth: ``error = base + slope · |log2(flops / optimum)| + noise`` by default.
"""

from __future__ import annotations

import datetime

import numpy as np

from regspace.populate import sample_to_store
from regspace.presets import PRESETS, Budget
from regspace.spaces import get_space
from regspace.store import Store


def make_synthetic_store(
    path,
    spaces=("X_a", "RegNetX"),
    n: int = 200,
    *,
    seed: int = 0,
    preset: str = "mnist",
    flops: str = "1M:8M",
    error_fn=None,
    recipe_hash: str = "synthetic000",
    diverged: float = 0.0,
) -> Store:
    """Sample ``n`` models per space and give each a result computed by ``error_fn(models_frame, rng)``."""
    store = Store.create(path)
    p = PRESETS[preset]
    budget = Budget.parse(flops=flops)
    for i, name in enumerate(spaces):
        sample_to_store(store, get_space(name), n, preset=p, budget=budget, seed=seed + i)
    models = store.models()
    rng = np.random.default_rng(seed)
    if error_fn is None:

        def error_fn(df, rng):
            offset = np.where(df.space == spaces[0], 2.0, 0.0)
            return 10 + offset + 3 * np.abs(np.log2(df.flops / 3e6)) + rng.normal(0, 0.5, len(df))

    errors = np.asarray(error_fn(models, rng), dtype=float)
    status = np.where(rng.random(len(models)) < diverged, "diverged", "ok")
    now = datetime.datetime.now(datetime.timezone.utc)
    store.append(
        "results",
        {
            "model_id": models.model_id.tolist(),
            "recipe_hash": [recipe_hash] * len(models),
            "status": status.tolist(),
            "error": np.where(status == "ok", errors, np.nan),
            "min_error": np.where(status == "ok", errors - 0.1, np.nan),
            "test_error": np.where(status == "ok", errors + 0.2, np.nan),
            "epochs": np.full(len(models), 3),
            "dataset": ["synthetic"] * len(models),
            "recipe": ['{"name": "synthetic", "dataset": "synthetic", "epochs": 3}'] * len(models),
            "finished_at": [now] * len(models),
        },
    )
    return store
