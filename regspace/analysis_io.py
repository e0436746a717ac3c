"""Analysis inputs read from a store, and the fidelity check's record in it.

``regspace.analysis`` computes on DataFrames and dicts only; this module is its one door to a store:
it reads the analysis table (models joined with one recipe's results) and keeps a fidelity check's
selection in the store's side file ``fidelity.json`` (through :meth:`Store.write_json`). It sits
beside the store, above the analysis, so the analysis never imports the store and the store never
imports the analysis; the CLI, the report and the study all read through here.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from regspace import population
from regspace.analysis import fidelity as _fidelity
from regspace.analysis import findings as _findings
from regspace.analysis.table import assemble, check_error, choose_recipe
from regspace.errors import RegspaceError, StoreError

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
    "inference_images_per_second",
]
ANALYSIS_MODEL_COLUMNS = ["model_id", "space", "flops", "params", "acts", "multiplicity", "regime"]
# What compare reads of a model: the EDFs' columns, the parameters the good ranges scan (findings.PARAMS)
# and the stage lists e_fit fits; not the rest (draw lists, hparams text, versions: a third of the read).
COMPARE_MODEL_COLUMNS = [
    *ANALYSIS_MODEL_COLUMNS,
    *_findings.PARAMS,
    "stage_widths",
    "stage_depths",
    "stage_bottleneck_ratios",
    "stage_group_widths",
]
FIDELITY_FILE = "fidelity.json"  # in the store: which models, which short and long recipes
FIT_CACHE_FILE = "efit_cache.json"  # in the store: e_fit fits by model id, under one fit definition


def load_table(
    store,
    *,
    spaces: list[str] | None = None,
    recipe_hash: str | None = None,
    error: str = "error",
    model_columns: list[str] | None = None,
    epoch: int | None = None,
    first_draws: int | None = None,
    seeds: list[int] | None = None,
) -> pd.DataFrame:
    """One row per (space, model): design columns, complexity, multiplicity, and the recipe's result (the
    mean over the model's ok seeds when it was trained with several: analysis.seeds.per_design).

    A population is i.i.d. draws: ``multiplicity`` (how many draws gave the network) weights every
    statistic, as if the network's row appeared that many times (see :func:`analysis.table.counts`).

    ``error`` picks the sweep error: 'error' (final validation error, the default) or 'min_error'.
    ``model_columns`` limits the model columns read (all by default; EDFs need ANALYSIS_MODEL_COLUMNS).
    ``epoch`` k: the errors as they stood after epoch k (from the stored learning curves; no training).
    ``first_draws`` m: each space's population is its first m draws in sampling order (equal n per space,
    e.g. a study stopped part-way). The models of a study's flops regime are a population of their own,
    named "<space>@<regime>" in ``space`` (``regime`` keeps the band).
    ``seeds``: only the results of these training seeds (None: every seed the store holds).
    The frame's ``attrs`` record the recipe hash, the recipe (a dict) and the spaces in sampled order
    (:func:`analysis.table.assemble`). Raises RegspaceError for an empty store, unknown spaces or an
    ambiguous recipe prefix.
    """
    check_error(error)
    # a study's regimes are populations of their own: "<space>@<regime>" (population.by_population)
    models = population.by_population(store.read("models", model_columns))
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
        models = population.cut_to_first_draws(models, population.by_population(store.draw_rows()), first_draws)
    hashes = store.read_arrow("results", ["recipe_hash"]).column("recipe_hash").to_pylist()
    chosen = choose_recipe(hashes, recipe_hash)
    results = store.results_for(chosen or "", RESULT_COLUMNS)  # one result per model and seed: the store's rule
    if seeds is not None:
        results = results.filter(pc.is_in(results.column("seed"), pa.array(seeds, pa.int64())))
    recipe_json = next((r for r in results.column("recipe").to_pylist() if r), None) if results.num_rows else None
    results = results.drop_columns(["recipe", "split"]).to_pandas()
    recipe = json.loads(recipe_json) if recipe_json else None
    return assemble(models, results, recipe_hash=chosen, recipe=recipe, spaces=spaces, error=error, epoch=epoch,
                    first_draws=first_draws)  # fmt: skip


# -- e_fit fits kept beside the results ---------------------------------------------------------------


def read_fit_cache(store) -> dict:
    """The store's analysis cache, or {} when there is none, the file cannot be read, or it was made under
    another :func:`analysis.fit.fit_definition`: e_fit fits (model id -> :func:`analysis.fit.fit_widths`'s
    dict) and the Findings' models-needed answers (:func:`analysis.findings.power_key` -> int or None).
    A fit is keyed by model id alone: an id names one design (widths, depths, b, g, ...), and a fit depends
    on nothing else, so the recipe does not enter the key; a power key hashes all of its inputs."""
    from regspace.analysis.fit import fit_definition

    try:
        have = store.read_json(FIT_CACHE_FILE)
    except StoreError:
        return {}  # a damaged cache only costs the fits again
    if not isinstance(have, dict) or have.get("definition") != fit_definition():
        return {}
    return dict(have.get("fits") or {})


def write_fit_cache(store, cache: dict) -> bool:
    """Add ``cache``'s fits to the store's (merged with any written meanwhile by another run); False when
    the store cannot be written (a read-only copy: the fits are simply computed again next time)."""
    from regspace.analysis.fit import fit_definition

    merged = {**read_fit_cache(store), **cache}
    try:
        store.write_json(FIT_CACHE_FILE, {"definition": fit_definition(), "fits": merged}, indent=None)
    except StoreError:
        return False
    return True


def compare_store(store, table: pd.DataFrame, **options) -> dict:
    """:func:`analysis.compare.compare` of ``table`` (read from ``store``) with the store's e_fit cache:
    the Findings' fits are read from it, and any new ones written back. The numbers are those of
    ``compare(table, **options)``: a cached fit is the dict the fit returned, through JSON (exact)."""
    from regspace.analysis.compare import compare

    return _with_cache(store, lambda cache: compare(table, fit_cache=cache, **options))


def store_fits(store, frame: pd.DataFrame, *, limit: int | None = None) -> pd.DataFrame | None:
    """:func:`analysis.fit.fit_frame` of ``frame`` (rows with model_id and stage_* lists) with the store's
    e_fit cache: cached fits are read, new ones written back. ``limit``: None (fit every model the cache
    lacks) when more than ``limit`` models lack a fit (an exact fit costs about 0.1–0.5 s a model)."""
    from regspace.analysis.fit import fit_frame

    def fits(cache):
        if limit is not None and len(set(frame["model_id"]) - set(cache)) > limit:
            return None
        return fit_frame(frame, cache)

    return _with_cache(store, fits)


def _with_cache(store, work):
    """``work(cache)`` with the store's analysis cache (:func:`read_fit_cache`), whose new entries are then
    written back (:func:`write_fit_cache`)."""
    cache = read_fit_cache(store)
    known = set(cache)
    result = work(cache)
    if set(cache) - known:
        write_fit_cache(store, {k: cache[k] for k in set(cache) - known})
    return result


# -- the fidelity check's record -------------------------------------------------------------------


def record_fidelity(
    store, *, short_hash: str, long_recipe, models: dict[str, list[str]], seed: int, top: dict | None = None
) -> dict:
    """Write the store's fidelity selection for this long recipe, or read it back when the record already holds
    this very selection (a rerun that chose the same models rewrites nothing).

    ``long_recipe``: a Recipe (its hash and fields are recorded); ``models``: space -> model ids (every
    model retrained). ``top``: a top-K check's {"top": ids, "control": ids, "k", and with flops regimes
    "regimes": {regime: {"top", "control"}}} (analysis.fidelity.select_top_by_regime), recorded under its own
    key ``<long hash>-top<K>`` beside a random check of the same long recipe. Returns the entry: {"short",
    "long", "long_recipe", "models", "seed"} (+ "select", "top", "control", "regimes")."""
    have = store.read_json(FIDELITY_FILE) or {}
    key = fidelity_key(long_recipe.hash, None if top is None else top.get("k", len(top["top"])))
    entry = {"short": short_hash, "long": long_recipe.hash, "long_recipe": long_recipe.to_dict(), "models": models,
             "seed": seed}  # fmt: skip
    if top is not None:
        entry.update(select="top", top=list(top["top"]), control=list(top["control"]))
        if top.get("regimes"):  # chosen per flops regime (analysis.fidelity.select_top_by_regime)
            entry["regimes"] = top["regimes"]
    entry = json.loads(json.dumps(entry))  # as the record holds it (lists, string keys)
    old = have.get("checks", {}).get(key)
    # The same selection is left as recorded: a recipe written by an older version lacks later fields
    # but has the same hash, and a rerun must not rewrite a committed store for that.
    if old is not None and {k: v for k, v in old.items() if k != "long_recipe"} == {
        k: v for k, v in entry.items() if k != "long_recipe"
    }:
        return old
    have.setdefault("checks", {})[key] = entry
    have["latest"] = key
    store.write_json(FIDELITY_FILE, have, indent=1)
    return entry


def kept_selection(store, *, short_hash: str, long_hash: str) -> dict[str, list[str]] | None:
    """The models (space → ids) of the recorded random check of ``long_hash`` on ``short_hash``, or None: what
    a new random selection keeps (analysis.fidelity.select's ``keep``), so that a rerun retrains nothing."""
    e = (store.read_json(FIDELITY_FILE) or {}).get("checks", {}).get(fidelity_key(long_hash))
    return e["models"] if e is not None and e["short"] == short_hash else None


def fidelity_key(long_hash: str, top: int | None = None) -> str:
    """A check's key in the record: the long recipe's hash, with ``-top<K>`` for a top-K check."""
    return long_hash if top is None else f"{long_hash}-top{top}"


def short_errors(store, short_hash: str, error: str = "error") -> dict[str, float]:
    """model id → its brief error under ``short_hash`` (the mean over its ok seeds), ok models only: what a
    top-K check ranks (analysis.fidelity.select_top)."""
    from regspace.analysis.seeds import per_design

    t = store.results_for(short_hash, ["model_id", "seed", "status", error]).to_pandas()
    d = per_design(t, error)[0]
    d = d[(d.status == "ok") & d[error].notna()]
    return dict(zip(d.model_id, d[error].astype(float)))


def recorded_fidelity(store, long_hash: str | None = None) -> dict | None:
    """The store's fidelity selection (the latest one, or the one of ``long_hash``), or None."""
    have = store.read_json(FIDELITY_FILE)
    if have is None:
        return None
    checks = have.get("checks", {})
    if long_hash is None:
        return checks.get(have.get("latest"))
    if long_hash in checks:
        return checks[long_hash]
    matches = [k for k in checks if k.startswith(long_hash)]  # a unique prefix is enough
    return checks[matches[0]] if len(matches) == 1 else None


def fidelity_result(store, entry: dict, *, error: str = "error", n_boot: int = 2000) -> dict:
    """The analysis of a recorded fidelity check, from the store's results (see
    :func:`analysis.fidelity.check_result`), each model's errors the mean over its seeds
    (analysis.seeds.per_design). Raises RegspaceError when fewer than 3 models have both."""
    from regspace.analysis.seeds import per_design

    cols = ["model_id", "seed", "status", error, "val_errors"]

    def errors(recipe_hash):
        t = store.results_for(recipe_hash, cols).to_pandas()
        return per_design(t.rename(columns={error: "error"}) if error != "error" else t)[0]

    short, long = errors(entry["short"]), errors(entry["long"])
    return _fidelity.check_result(short, long, entry, n_boot=n_boot)


def analysed_fidelity(
    store, *, short_hash: str | None, error: str = "error", long_hash: str | None = None
) -> dict | None:
    """The store's fidelity check (the latest, or the one of ``long_hash``) of the short recipe
    ``short_hash``, analysed; None if there is none, or too few models have both results yet."""
    entry = recorded_fidelity(store, long_hash)
    if entry is None or entry["short"] != short_hash:
        return None
    try:
        return fidelity_result(store, entry, error=error)
    except RegspaceError:
        return None
