"""What a population is: the i.i.d. draws of a space, and everything counted over them (docs/design.md,
"Populations").

A space's population is the sequence of accepted draws of its seeded streams. A network drawn k times
counts k times (its *multiplicity*) but trains once. The store keeps one row per (space, network) and
sampling call, with that call's draws (:data:`regspace.schema.DRAW_COLUMNS`); every definition over
those rows lives here, once:

- :func:`group_by_network`: one sampling call's draws, one row per network (multiplicity, draw indices);
- :func:`merge_draws`: a network's rows of every call merged into one (multiplicity summed);
- :func:`draw_order`: each space's draws in sampling order, seed first, then draw index;
- :func:`first_draws`, :func:`cut_to_first_draws`: the population cut to its first m draws;
- :func:`next_draw`: where a (space, seed) stream resumes; :func:`draw_count`: a space's draws;
- :func:`status_counts`, :func:`finished_prefix`, :func:`space_status`: results counted by status;
- :func:`population_name`, :func:`split_population`, :func:`same_regime`, :func:`by_population`: a study's
  flops regimes.

A study with flops regimes draws each (space, regime) as its own population: its rows carry the
regime's budget string in ``regime``, and :func:`by_population` renames their space to
``<space>@<regime>`` so that everything above, keyed by space, keeps the regimes apart. Rows without
a regime keep their space's name: a store without regimes reads as before.

Pure functions over pyarrow tables, pandas frames and row lists; no store I/O (the store passes its
tables in; ``rows`` below is ``Store.read_arrow("models", DRAW_COLUMNS, dedupe=False)`` or a superset),
no pandas import (frames are only passed through), no torch.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regspace.errors import RegspaceError
from regspace.schema import MODEL_KEY, SETTLED, run_key

COUNTED = ("ok", "diverged", "failed", "pending")  # the statuses counted per space; pending: no result yet
REGIME_MARK = "@"  # population name of a space's regime: "<space>@<regime>", e.g. "RegNetX@2M:4M"


# -- populations of a study's regimes -------------------------------------------------------------------
def population_name(space: str, regime: str | None) -> str:
    """The population of ``space`` in flops regime ``regime`` (None: the space's one population)."""
    return space if not regime else f"{space}{REGIME_MARK}{regime}"


def split_population(name: str) -> tuple[str, str | None]:
    """(space, regime) of a population name: the inverse of :func:`population_name`."""
    space, mark, regime = name.partition(REGIME_MARK)
    return (space, regime) if mark else (name, None)


def same_regime(a: str, b: str) -> bool:
    """Whether populations ``a`` and ``b`` were drawn under one budget (the same regime, or neither has one):
    only those are compared with each other; across regimes the budget differs, which trends read."""
    return split_population(a)[1] == split_population(b)[1]


def by_population(rows):
    """``rows`` (a pyarrow table or a pandas frame with ``space`` and, optionally, ``regime``) with each
    row's space renamed to its population (:func:`population_name`); unchanged without regimes."""
    names = rows.column_names if isinstance(rows, pa.Table) else list(rows.columns)
    if "regime" not in names:
        return rows
    if isinstance(rows, pa.Table):
        regimes = rows.column("regime")
        if regimes.null_count == rows.num_rows:
            return rows
        spaces = [population_name(s, r) for s, r in zip(rows.column("space").to_pylist(), regimes.to_pylist())]
        return rows.set_column(names.index("space"), "space", pa.array(spaces, type=pa.string()))
    if rows["regime"].isna().all():
        return rows
    spaces = [population_name(s, None if r != r else r) for s, r in zip(rows["space"], rows["regime"])]
    return rows.assign(space=spaces)


# -- multiplicity ---------------------------------------------------------------------------------------
def group_by_network(draws: dict) -> dict:
    """One sampling call's accepted draws (columns: ``model_id``, ``draw_index`` and any others, each a
    list or numpy array of length N) as one row per distinct network, in order of first draw: the
    columns of its first draw, ``multiplicity`` (int64 array: its draws) and ``draw_indices`` (lists)."""
    ids = draws["model_id"]
    first: dict[str, int] = {}
    members: dict[str, list[int]] = {}
    for i, mid in enumerate(ids):
        first.setdefault(mid, i)
        members.setdefault(mid, []).append(int(draws["draw_index"][i]))
    keep = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    cols = {k: v[keep] if isinstance(v, np.ndarray) else [v[i] for i in keep] for k, v in draws.items()}
    cols["multiplicity"] = np.array([len(members[m]) for m in first], dtype=np.int64)
    cols["draw_indices"] = [members[m] for m in first]
    return cols


def merge_draws(table: pa.Table) -> pa.Table:
    """One row per (space, model_id) of a models table (which needs MODEL_KEY, ``multiplicity`` and
    ``draw_indices``): its first row written, ``multiplicity`` summed (a null counts 1: one draw) and
    ``draw_indices`` joined and sorted. Rows keep the order of their first row."""
    n = table.num_rows
    if n == 0:
        return table
    key = list(MODEL_KEY)
    i = table.schema.get_field_index("multiplicity")
    table = table.set_column(i, "multiplicity", pc.fill_null(table.column("multiplicity"), 1))
    indexed = table.select(key).append_column("_o", pa.array(range(n), type=pa.int64()))
    groups = indexed.group_by(key, use_threads=False).aggregate([("_o", "min"), ("_o", "list")])
    if groups.num_rows == n:
        return table
    first = groups.column("_o_min")
    order = pc.sort_indices(first)
    first = first.take(order).to_pylist()
    members = groups.column("_o_list").take(order).to_pylist()
    mult = table.column("multiplicity").to_pylist()
    draws = table.column("draw_indices").to_pylist()
    total = [sum(mult[i] for i in rows) for rows in members]
    joined = [sorted(x for i in rows for x in (draws[i] or [])) for rows in members]
    out = table.take(pa.array(first, type=pa.int64()))
    out = out.set_column(out.schema.get_field_index("multiplicity"), "multiplicity", pa.array(total, type=pa.int64()))
    i = out.schema.get_field_index("draw_indices")
    return out.set_column(i, "draw_indices", pa.array(joined, type=pa.list_(pa.int64())))


def draw_count(models: pa.Table, space: str) -> int:
    """How many accepted draws ``models`` (columns ``space``, ``multiplicity``; merged or not) holds for
    ``space``: the population's size, repeats included."""
    t = models.filter(pc.equal(models.column("space"), space))
    return int(pc.sum(t.column("multiplicity")).as_py() or 0)


# -- draw order -----------------------------------------------------------------------------------------
def _draws(rows: pa.Table) -> dict[str, set]:
    """Per space (in order of first row), its draws as (seed, draw index, model id). A row written twice
    gives its draws once; a schema-1 row (no draw indices) is one draw at its draw_index."""
    cols = [rows.column(c).to_pylist() for c in ("space", "model_id", "seed", "draw_index", "draw_indices")]
    out: dict[str, set] = {}
    for space, mid, seed, first, indices in zip(*cols):
        items = out.setdefault(space, set())
        for i in indices or [first or 0]:
            items.add((seed or 0, i, mid))
    return out


def draw_order(rows: pa.Table, spaces: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Per space, the model id of each draw in sampling order: by seed, then draw index.

    ``rows``: model rows with columns space, model_id, seed, draw_index, draw_indices (raw or merged).
    ``spaces``: the spaces wanted, in that order (one with no rows gets an empty list); None: every space
    of ``rows``, in order of first row. A network drawn k times appears k times.
    """
    by_space = _draws(rows)
    wanted = list(by_space) if spaces is None else list(spaces)
    return {s: [mid for _, _, mid in sorted(by_space.get(s, ()))] for s in wanted}


def first_draws(rows: pa.Table, m: int) -> dict[tuple[str, str], int]:
    """The multiplicity of each (space, model_id) among its space's first ``m`` draws (sampling order);
    networks with none are absent."""
    return {(space, mid): k for space, ids in draw_order(rows).items() for mid, k in Counter(ids[:m]).items()}


def cut_to_first_draws(models, rows: pa.Table, m: int):
    """``models`` (a frame with space, model_id, multiplicity; one row per network) with each space cut to
    its first ``m`` draws: multiplicities count only those draws, and networks with none are dropped.
    Raises RegspaceError if ``m`` < 1."""
    if m < 1:
        raise RegspaceError(f"--draws must be at least 1 (got {m})")
    kept = first_draws(rows, m)
    mult = [kept.get((s, mid), 0) for s, mid in zip(models.space, models.model_id)]
    out = models.assign(multiplicity=mult)
    return out[out.multiplicity > 0]


def next_draw(rows: pa.Table, space: str, seed: int) -> int:
    """The first candidate of the (space, seed) stream that no row of ``rows`` (columns space, seed,
    draw_index, draw_indices; raw rows) has used: sampling resumes there."""
    t = rows.filter(pc.and_(pc.equal(rows.column("space"), space), pc.equal(rows.column("seed"), seed)))
    if t.num_rows == 0:
        return 0
    last = max(
        pc.max(t.column("draw_index")).as_py() or 0, pc.max(pc.list_flatten(t.column("draw_indices"))).as_py() or 0
    )
    return int(last) + 1


# -- counts by status -----------------------------------------------------------------------------------
def status_counts(ids: Iterable[str], status: Mapping[str, str]) -> dict[str, int]:
    """How many of ``ids`` have each status (:data:`COUNTED`): ``status`` maps a model id to its result's
    status; an id with none is pending. Pass a space's networks to count networks, its draws (from
    :func:`draw_order`) to count draws."""
    counts = dict.fromkeys(COUNTED, 0)
    for mid in ids:
        st = status.get(mid, "pending")
        counts[st] = counts.get(st, 0) + 1  # (a status the schema does not know is not pending either)
    return counts


def finished_prefix(ids: list[str], status: Mapping[str, str]) -> int:
    """How many of the first draws ``ids`` (sampling order) in a row have a result that is not trained
    again (SETTLED or failed): the complete prefix, which an analysis of equal n per space may use."""
    return next((i for i, mid in enumerate(ids) if status.get(mid) not in (*SETTLED, "failed")), len(ids))


def space_status(models: pa.Table, results: pa.Table, *, recipe_hash: str | None = None) -> list[dict]:
    """One row per (space, recipe): draws, and counts of sampled (distinct networks) / ok / diverged /
    failed / pending networks, with the min and median error of the ok ones.

    ``models``: merged model rows (space, model_id, multiplicity). ``results``: one result per (model,
    recipe and seed) (model_id, recipe_hash, seed, status, error); a seed other than 0 is a row of its own,
    its recipe named by schema.run_key. With no results, one row per space with every
    network pending. ``recipe_hash`` restricts the results considered to that recipe.
    """
    by_space: dict[str, set[str]] = {}
    draws: Counter = Counter()
    for s, m, k in zip(*(models.column(c).to_pylist() for c in ("space", "model_id", "multiplicity"))):
        by_space.setdefault(s, set()).add(m)
        draws[s] += k
    status: dict[str, dict[str, str]] = defaultdict(dict)
    errors: dict[str, dict[str, float]] = defaultdict(dict)
    seeds = results.column("seed").to_pylist() if "seed" in results.column_names else [0] * results.num_rows
    cols = (results.column(c).to_pylist() for c in ("model_id", "recipe_hash", "status", "error"))
    for (m, h, st, e), s in zip(zip(*cols), seeds):
        if recipe_hash is None or h == recipe_hash:
            r = run_key(h, s)  # each training seed of a recipe is counted on its own
            status[r][m] = st
            if st == "ok" and e is not None:
                errors[r][m] = e
    recipes = sorted(status) or [recipe_hash]
    rows = []
    for space, ids in by_space.items():
        for r in recipes:
            counts = status_counts(ids, status.get(r, {}))
            errs = sorted(errors.get(r, {})[m] for m in ids if m in errors.get(r, {}))
            rows.append(
                {
                    "space": space,
                    "recipe": r,
                    "draws": draws[space],
                    "sampled": len(ids),
                    "ok": counts["ok"],
                    "diverged": counts["diverged"],
                    "failed": counts["failed"],
                    "pending": counts["pending"],
                    "min_error": errs[0] if errs else None,
                    "median_error": statistics.median(errs) if errs else None,
                }
            )
    return rows
