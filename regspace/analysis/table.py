"""The analysis table's pure parts: choosing the recipe, errors at an epoch, and row helpers (pandas).

The table itself is read from a store by :func:`regspace.analysis_io.load_table`; nothing here reads
or writes a store.
"""

from __future__ import annotations

import pandas as pd

from regspace.errors import RegspaceError

ERRORS = ("error", "min_error")  # the sweep errors a table can use: final, or best-epoch validation error


def check_error(error: str) -> None:
    """Raises RegspaceError unless ``error`` names a sweep error column."""
    if error not in ERRORS:
        raise RegspaceError(f"unknown error column {error!r}: use error or min_error")


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


def assemble(
    models: pd.DataFrame,
    results: pd.DataFrame,
    *,
    recipe_hash: str | None,
    recipe: dict | None,
    spaces: list[str] | None = None,
    error: str = "error",
    epoch: int | None = None,
    first_draws: int | None = None,
) -> pd.DataFrame:
    """The analysis table from its parts: ``models`` (one row per (space, model), in sampled order, with
    their multiplicity) left-joined with ``results`` (one row per model and seed, of recipe ``recipe_hash``),
    the seeds of a model averaged into one row first (:func:`regspace.analysis.seeds.per_design`).

    Models without a result get status 'pending'; ``sweep_error`` is the column ``error``, or its value
    after ``epoch`` (:func:`errors_at_epoch`). Rows stay in the models' space order. The frame's ``attrs``
    record the recipe hash, the recipe (a dict), the spaces in sampled order, the error, the epoch, the
    first-draws cut, the seeds per design and the warnings (settings mixed within the recipe's results,
    missing curves, seed runs lost).
    """
    from regspace.analysis.seeds import per_design

    check_error(error)
    fill_device_columns(results)
    warnings = mixed_settings(results[results.status == "ok"], recipe_hash)
    if epoch is not None:  # each seed's run cut at the epoch, then averaged
        warnings += errors_at_epoch(results, epoch, error)
    results, seeds = per_design(results, error)
    if seeds["lost"]:
        warnings.append(f"{seeds['lost']} seed run(s) diverged or failed beside an ok seed of their design: "
                        "left out of their designs' mean errors")  # fmt: skip
    df = models.merge(results, on="model_id", how="left")
    df["status"] = df["status"].fillna("pending")
    df["sweep_error"] = df[error]
    order = list(dict.fromkeys(models.space))
    df["space"] = pd.Categorical(df["space"], categories=order, ordered=True)
    df = df.sort_values(["space"], kind="stable").reset_index(drop=True)
    df["space"] = df["space"].astype(str)
    df.attrs["recipe_hash"] = recipe_hash
    df.attrs["error"] = error  # which error every statistic and figure uses (labels say so)
    df.attrs["recipe"] = recipe
    df.attrs["spaces"] = order if not spaces else [s for s in order if s in spaces]
    df.attrs["warnings"] = warnings
    df.attrs["epoch"] = epoch
    df.attrs["first_draws"] = first_draws
    df.attrs["seeds"] = seeds  # ok seeds per design (min, max): the errors are their means
    return df


def errors_at_epoch(df: pd.DataFrame, epoch: int, error: str) -> list[str]:
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


def fill_device_columns(results: pd.DataFrame) -> None:
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


def space_errors(df: pd.DataFrame, spaces: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Trained rows per space, in the table's space order."""
    spaces = spaces or df.attrs.get("spaces") or list(dict.fromkeys(df.space))
    ok = trained(df)
    return {s: ok[ok.space == s] for s in spaces}


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
