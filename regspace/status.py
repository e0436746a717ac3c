"""What a store holds: per space, how many models are sampled, trained, failed, pending."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict


def store_status(store, *, recipe_hash: str | None = None) -> list[dict]:
    """One row per (space, recipe): draws, and counts of sampled / ok / diverged / failed / pending models.

    With no results yet, one row per space with every model pending. ``recipe_hash`` restricts the
    results considered to that recipe.
    """
    models = store.read_arrow("models", ["space", "model_id", "multiplicity"])
    results = store.read_arrow("results", ["model_id", "recipe_hash", "status", "error"])
    by_space: dict[str, set[str]] = defaultdict(set)
    draws: Counter = Counter()
    order: list[str] = []
    for s, m, k in zip(*(models.column(c).to_pylist() for c in ("space", "model_id", "multiplicity"))):
        if s not in by_space:
            order.append(s)
        by_space[s].add(m)
        draws[s] += k
    status: dict[str, dict[str, str]] = defaultdict(dict)
    errors: dict[str, dict[str, float]] = defaultdict(dict)
    for m, r, st, e in zip(*(results.column(c).to_pylist() for c in ("model_id", "recipe_hash", "status", "error"))):
        if recipe_hash is None or r == recipe_hash:
            status[r][m] = st
            if st == "ok" and e is not None:
                errors[r][m] = e
    recipes = sorted(status) or [recipe_hash]
    rows = []
    for space in order:
        ids = by_space[space]
        for r in recipes:
            seen = status.get(r, {})
            counts = Counter(seen[m] for m in ids if m in seen)
            errs = sorted(errors.get(r, {})[m] for m in ids if m in errors.get(r, {}))
            rows.append(
                {
                    "space": space,
                    "recipe": r,
                    "draws": draws[space],
                    "sampled": len(ids),
                    "ok": counts.get("ok", 0),
                    "diverged": counts.get("diverged", 0),
                    "failed": counts.get("failed", 0),
                    "pending": len(ids) - sum(counts.values()),
                    "min_error": errs[0] if errs else None,
                    "median_error": statistics.median(errs) if errs else None,
                }
            )
    return rows
