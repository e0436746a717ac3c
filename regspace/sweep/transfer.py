"""Between a store and a sweep: enqueue store rows, report result rows, collect into a store.

A trial carries light attributes (TRIAL_FIELDS, for the dashboard and for counting) and its whole
models-table row as the ``model`` payload. A network drawn again after it was enqueued is not enqueued
twice (it trains once): its draws go into one sweep attribute per sampling call (DRAWS_ATTR), and
``collect`` rebuilds the store's population, repeat draws and all. Each enqueue call also leaves a
profile (PROFILE_ATTR) of what it added, so that a worker plans its slots without reading the rows.
"""

from __future__ import annotations

import datetime
import json
import sys

from regspace.schema import DRAW_COLUMNS, MODEL_ROW_KEY, MODELS_SCHEMA, RESULT_KEY, result_seed
from regspace.sweep.adapter import MODEL_ATTR, Claim, Sweep
from regspace.sweep.backends import jsonable, redact

DRAWS_ATTR = "regspace_draws:"  # sweep attributes holding repeat draws of enqueued networks
PROFILE_ATTR = "regspace_profile:"  # sweep attributes: what one enqueue call added (see profiles)
TRIAL_FIELDS = ("model_id", "space", "flops", "params", "acts")  # light trial attributes (dashboard, profile)


def enqueue(sweep: Sweep, rows: list[dict]) -> int:
    """Enqueue store rows (dicts of the models table) in bulk; returns how many new models were enqueued.

    A model already in the sweep is not enqueued again (it trains once), but the row's draws are
    kept in one sweep attribute per call, so `collect` counts them (multiplicity)."""
    have = sweep.model_ids()
    new, repeats = [], []
    for row in rows:
        if row["model_id"] in have:
            repeats.append({k: jsonable(row[k]) for k in DRAW_COLUMNS})
            continue
        attrs = {k: jsonable(row.get(k)) for k in TRIAL_FIELDS}
        attrs[MODEL_ATTR] = json.dumps({k: jsonable(v) for k, v in row.items()})
        new.append(attrs)
        have.add(row["model_id"])
    if new:
        first = rows[0]
        key = f"{PROFILE_ATTR}{first['space']}:{first.get('seed')}:{first.get('draw_index')}:{len(new)}"
        sweep.set_attr(key, json.dumps(_profile(new)), "recording the sweep's profile")
        sweep.add_waiting(new)
    if repeats:
        key = f"{DRAWS_ATTR}{repeats[0]['space']}:{repeats[0]['seed']}:{repeats[0]['draw_index']}"
        sweep.set_attr(key, json.dumps(repeats), "recording repeat draws")
    return len(new)


def repeat_draws(sweep: Sweep) -> list[dict]:
    """The draws of networks enqueued earlier (rows of DRAW_COLUMNS), from every sampling call."""
    return [row for k, v in sweep.attrs().items() if k.startswith(DRAWS_ATTR) for row in json.loads(v)]


def profiles(sweep: Sweep) -> list[dict]:
    """What a worker needs to know of the sweep's models before training (input resolutions, classes,
    the largest acts and params, how many): one profile per enqueue call, read from the sweep's
    attributes. Sweeps of queue schema 2 have none: their model rows are read instead."""
    found = [json.loads(v) for k, v in sweep.attrs().items() if k.startswith(PROFILE_ATTR)]
    if found:
        return [p for prof in found for p in prof]
    models, _, _ = sweep.finished({})
    return models


def report(sweep: Sweep, claim: Claim, row: dict) -> bool:
    """Report a results-table row into its trial: the trial's value is the error of an ``ok`` model;
    any other status fails the trial. False when the trial went to another worker meanwhile."""
    return sweep.report(claim, row, row["error"] if row["status"] == "ok" else None)


def collect(sweep: Sweep, store) -> tuple[int, int]:
    """Copy the sweep's new models and results into ``store``; returns (models added, results added).
    Incremental: the store remembers how far it collected from this sweep."""
    mark_key = f"{redact(sweep.url)}|{sweep.study.study_name}"
    mark = store.collect_mark(mark_key)
    rows, result_rows, new_mark = sweep.finished(mark)
    models_have = store.read_arrow("models", list(MODEL_ROW_KEY), dedupe=False)
    results_have = store.read_arrow("results", list(RESULT_KEY))
    names = set(MODELS_SCHEMA.names)
    # a repeat draw is its network's row with that call's draws
    by_id = {r["model_id"]: r for r in rows}
    draws = repeat_draws(sweep)
    missing = {d["model_id"] for d in draws} - set(by_id)
    if missing:  # networks collected earlier: their rows come from the store
        for r in store.read_arrow("models").to_pylist():
            if r["model_id"] in missing:
                by_id.setdefault(r["model_id"], r)
    rows += [{**by_id[d["model_id"]], **d} for d in draws if d["model_id"] in by_id]
    models = _new_rows(rows, MODEL_ROW_KEY, models_have, "sampled_at")
    models = [{k: v for k, v in row.items() if k in names} for row in models]
    usable = [r for r in result_rows if r.get("model_id") and r.get("recipe_hash") and r.get("status")]
    if len(usable) < len(result_rows):  # e.g. a trial someone finished by hand through Optuna
        print(
            f"regspace: warning: {len(result_rows) - len(usable)} trial result(s) in the sweep are not "
            "regspace results (no model id, recipe hash or status); they were not collected",
            file=sys.stderr,
        )
    for r in usable:  # keyed as the store reads its rows back (a trial's row may carry no seed)
        r["seed"] = result_seed(r.get("seed"), json.loads(r["recipe"]) if r.get("recipe") else {})
    results = _new_rows(usable, RESULT_KEY, results_have, "finished_at")
    if models:
        store.append_rows("models", models)
    if results:
        store.append_rows("results", results)
    if new_mark:
        store.set_collect_mark(mark_key, new_mark)
    return len(models), len(results)


def _profile(attrs: list[dict]) -> list[dict]:
    """What workers need to plan before training, per (resolution, classes, channels): the largest
    acts and params, and how many models."""
    out: dict[tuple, dict] = {}
    for a in attrs:
        m = json.loads(a[MODEL_ATTR])
        key = (m.get("resolution"), m.get("num_classes"), m.get("in_channels"))
        p = out.setdefault(
            key,
            {"resolution": key[0], "num_classes": key[1], "in_channels": key[2], "acts": 0, "params": 0, "count": 0},
        )
        p["acts"], p["params"] = max(p["acts"], int(m["acts"])), max(p["params"], int(m["params"]))
        p["count"] += 1
        p["space"] = m.get("space")
    return list(out.values())


def _new_rows(rows: list[dict], key: tuple, have, time_field: str) -> list[dict]:
    """Rows (decoded from trial attributes) minus those whose key the store already has."""
    seen = set(zip(*(have.column(k).to_pylist() for k in key)))
    out = []
    for row in rows:
        k = tuple(row.get(c) for c in key)
        if k in seen:
            continue
        seen.add(k)
        if row.get(time_field) and isinstance(row[time_field], str):
            row[time_field] = datetime.datetime.fromisoformat(row[time_field])
        out.append(row)
    return out
