"""What a store holds: per space, how many models are sampled, trained, failed, pending."""

from __future__ import annotations

from regspace.population import by_population, space_status


def store_status(store, *, recipe_hash: str | None = None) -> list[dict]:
    """One row per (space, recipe): draws, and counts of sampled / ok / diverged / failed / pending models,
    with the min and median error (:func:`regspace.population.space_status` over the store's tables).

    With no results yet, one row per space with every model pending. ``recipe_hash`` restricts the
    results considered to that recipe. The seeds of a recipe get a row each (schema.run_key names them).
    """
    models = by_population(store.read_arrow("models", ["space", "model_id", "multiplicity", "regime"]))
    results = store.read_arrow("results", ["model_id", "recipe_hash", "seed", "status", "error"])
    return space_status(models, results, recipe_hash=recipe_hash)
