"""The analysis table: sampled models joined with their results for one recipe (pandas)."""

from __future__ import annotations

import json

import pandas as pd

from regspace.errors import RegspaceError

RESULT_COLUMNS = [
    "model_id",
    "recipe_hash",
    "status",
    "error",
    "min_error",
    "test_error",
    "train_loss",
    "epochs",
    "reason",
    "train_seconds",
    "images_per_second",
    "peak_memory_mb",
    "device",
    "device_kind",
    "precision",
    "dataset",
    "recipe",
    "seed",
    "split",
    "val_errors",
]


def choose_recipe(hashes: list[str], recipe_hash: str | None) -> str | None:
    """The recipe asked for (a unique prefix is enough), or else the one with the most results."""
    if not hashes:
        return recipe_hash
    from collections import Counter

    counts = Counter(hashes)
    if recipe_hash is not None:
        matches = [h for h in counts if h.startswith(recipe_hash)]
        if len(matches) != 1:
            raise RegspaceError(
                f"recipe {recipe_hash!r} matches {len(matches)} recipes in the store",
                hint=f"known: {', '.join(sorted(counts))}",
            )
        return matches[0]
    return max(counts, key=lambda h: counts[h])


ANALYSIS_MODEL_COLUMNS = ["model_id", "space", "flops", "params", "acts", "multiplicity"]


def load_table(
    store,
    *,
    spaces: list[str] | None = None,
    recipe_hash: str | None = None,
    error: str = "error",
    model_columns: list[str] | None = None,
    epoch: int | None = None,
    first_draws: int | None = None,
) -> pd.DataFrame:
    """One row per (space, model): design columns, complexity, multiplicity, and the recipe's result.

    A population is i.i.d. draws: ``multiplicity`` (how many draws gave the network) weights every
    statistic, as if the network's row appeared that many times (see :func:`counts`).

    ``error`` picks the sweep error: 'error' (final validation error, the default) or 'min_error'.
    ``model_columns`` limits the model columns read (all by default; EDFs need ANALYSIS_MODEL_COLUMNS).
    ``epoch`` k: the errors as they stood after epoch k (from the stored learning curves; no training).
    ``first_draws`` m: each space's population is its first m draws in sampling order (equal n per space,
    e.g. a study stopped part-way).
    The frame's ``attrs`` record the recipe hash, the recipe (a dict) and the spaces in sampled order.
    """

    if error not in ("error", "min_error"):
        raise RegspaceError(f"unknown error column {error!r}: use error or min_error")
    models = store.read("models", model_columns)
    if models.empty:
        raise RegspaceError(f"store {store.path} holds no models", hint="run `regspace sample` first")
    if spaces:
        missing = [s for s in spaces if s not in set(models.space)]
        if missing:
            raise RegspaceError(
                f"no models of space(s) {', '.join(missing)} in the store",
                hint=f"it holds {', '.join(sorted(models.space.unique()))}",
            )
        models = models[models.space.isin(spaces)]
    if first_draws is not None:
        models = _first_draws(store, models, first_draws)
    hashes = store.read_arrow("results", ["recipe_hash"]).column("recipe_hash").to_pylist()
    chosen = choose_recipe(hashes, recipe_hash)
    results = store.results_for(chosen or "", RESULT_COLUMNS)  # one result per model: the store's rule
    recipe_json = next((r for r in results.column("recipe").to_pylist() if r), None) if results.num_rows else None
    results = results.drop_columns(["recipe", "split"]).to_pandas()
    _fill_device_columns(results)
    df = models.merge(results, on="model_id", how="left")
    df["status"] = df["status"].fillna("pending")
    warnings = mixed_settings(results[results.status == "ok"], chosen)
    if epoch is not None:
        warnings += _errors_at_epoch(df, epoch, error)
    df["sweep_error"] = df[error]
    order = list(dict.fromkeys(models.space))
    df["space"] = pd.Categorical(df["space"], categories=order, ordered=True)
    df = df.sort_values(["space"], kind="stable").reset_index(drop=True)
    df["space"] = df["space"].astype(str)
    df.attrs["recipe_hash"] = chosen
    df.attrs["error"] = error  # which error every statistic and figure uses (labels say so)
    df.attrs["recipe"] = json.loads(recipe_json) if recipe_json else None
    df.attrs["spaces"] = order if not spaces else [s for s in order if s in spaces]
    df.attrs["warnings"] = warnings
    df.attrs["epoch"] = epoch
    df.attrs["first_draws"] = first_draws
    return df


def _errors_at_epoch(df: pd.DataFrame, epoch: int, error: str) -> list[str]:
    """Replace ``error`` by its value after ``epoch`` (min_error: the best of the first ``epoch``), read from
    the learning curves. Models without a curve that long are left without an error; returns warnings."""
    import numpy as np

    if epoch < 1:
        raise RegspaceError(f"--epoch must be at least 1 (got {epoch})")
    ok = (df.status == "ok").to_numpy()
    curves = df["val_errors"].to_numpy() if "val_errors" in df else np.full(len(df), None)
    lengths = np.array([len(c) if c is not None and not isinstance(c, float) else 0 for c in curves])
    trained_epochs = df["epochs"].to_numpy(float)
    if ok.any() and not (trained_epochs[ok] >= epoch).any():
        raise RegspaceError(
            f"no model was trained for {epoch} epochs (at most {int(np.nanmax(trained_epochs[ok]))})",
            hint="choose a smaller --epoch",
        )
    pick = (lambda c: float(c[epoch - 1])) if error == "error" else (lambda c: float(np.min(c[:epoch])))
    df[error] = [pick(c) if n >= epoch else np.nan for c, n in zip(curves, lengths)]
    no_curve = int((ok & (lengths == 0)).sum())
    out = []
    if no_curve:
        out.append(
            f"{no_curve} result(s) have no learning curve (trained by a regspace before store schema 4): "
            f"left out of the errors at epoch {epoch}"
        )
    return out


def _first_draws(store, models: pd.DataFrame, m: int) -> pd.DataFrame:
    """``models`` with each space cut to its first ``m`` draws in sampling order (seed, then draw index):
    multiplicities count only those draws, and networks with none are dropped."""
    from collections import Counter

    if m < 1:
        raise RegspaceError(f"--draws must be at least 1 (got {m})")
    raw = store.read_arrow("models", ["space", "model_id", "seed", "draw_index", "draw_indices"], dedupe=False)
    by_space: dict[str, list] = {}
    for r in raw.to_pylist():
        idx = r["draw_indices"] or [r["draw_index"] or 0]  # schema-1 rows: one draw each
        by_space.setdefault(r["space"], []).extend((r["seed"] or 0, i, r["model_id"]) for i in idx)
    kept: Counter = Counter()
    for space, items in by_space.items():
        for _, _, mid in sorted(set(items))[:m]:
            kept[(space, mid)] += 1
    mult = [kept.get((s, mid), 0) for s, mid in zip(models.space, models.model_id)]
    out = models.assign(multiplicity=mult)
    return out[out.multiplicity > 0]


def _fill_device_columns(results: pd.DataFrame) -> None:
    """Results of schema 1 keep the device kind and precision only inside the `device` text
    ("cuda:0 NVIDIA H200 (bf16-mixed)", "cpu AMD EPYC …, 1 thread(s) (32-true)"): read them from there."""
    text = results["device"].fillna("")
    kind = text.str.extract(r"^(cpu|cuda)", expand=False)
    precision = text.str.extract(r"\(([\w-]+)\)\s*$", expand=False)
    results["device_kind"] = results["device_kind"].fillna(kind)
    results["precision"] = results["precision"].fillna(precision)


def mixed_settings(ok: pd.DataFrame, recipe_hash: str | None) -> list[str]:
    """One line per setting that differs across one recipe's results (they compare models trained differently)."""
    out = []
    for col, what in (("precision", "precisions"), ("device_kind", "device kinds")):
        counts = ok[col].dropna().value_counts()
        if len(counts) > 1:
            parts = ", ".join(f"{n} {v}" for v, n in counts.items())
            out.append(f"results of recipe {recipe_hash} mix {what} ({parts}): errors may differ by device, not design")
    return out


def trained(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with a finished training (status ok) and a finite sweep error."""
    return df[(df.status == "ok") & df.sweep_error.notna()]


def per_block(df: pd.DataFrame, column: str = "stage_widths"):
    """Per-block values of a per-stage list column (e.g. widths), one numpy array per row."""
    import numpy as np

    return [np.repeat(np.asarray(v), np.asarray(d)) for v, d in zip(df[column], df["stage_depths"])]


def counts(df: pd.DataFrame):
    """Each row's multiplicity (draws of its network) as an int array; 1 where unknown."""
    import numpy as np

    if "multiplicity" not in df:
        return np.ones(len(df), dtype=np.int64)
    return df["multiplicity"].fillna(1).to_numpy(np.int64)


def draws(values, m):
    """A per-network array repeated by multiplicity: the population of draws."""
    import numpy as np

    return np.repeat(np.asarray(values), np.asarray(m, dtype=np.int64))
