"""Recipe fields drawn per model (NDS §5): their laws, their draws, and how they enter a model's identity.

NDS samples each model's learning rate and weight decay together with its architecture, so a space's
error distribution is not tied to one hand-picked schedule. Here a study's ``[recipe]`` (``lr = {dist =
"log_uniform", low = 0.05, high = 1}``) or a space file's ``[hparams.lr]`` table declares a law for a field
of :data:`regspace.schema.HPARAM_COLUMNS`; every accepted draw then carries its own values:

- drawn from the candidate's batch generator right after the space's own parameters, so the values are
  i.i.d., seeded with the design, and a space without laws draws exactly what it drew before;
- stored in the models table (one column per field, and ``hparams``: the laws as JSON);
- part of the model id (:func:`salted_ids`): the same network with another learning rate is another model
  (it trains once per value), and a network drawn twice with equal values is one model of multiplicity 2;
- named by the recipe (:attr:`regspace.train.recipe.Recipe.sampled`): its hash covers the laws, so a
  result of a drawn-lr recipe is never read as one of the fixed-lr recipe (whose hash is unchanged).

Laws are :class:`~regspace.spaces.distributions.Param` values: ``uniform`` and ``log_uniform`` without ``q``
are continuous; with ``q`` (or ``choice``) they follow the reference's quantised laws. No torch, no store.
"""

from __future__ import annotations

import json

import numpy as np

from regspace.design import hash_id
from regspace.errors import UsageProblem
from regspace.schema import HPARAM_COLUMNS
from regspace.spaces.distributions import Param, param_from_dict

Laws = tuple[Param, ...]  # sorted by field name; () when nothing is drawn


def laws_from_tables(tables: dict, where: str) -> Laws:
    """The laws a TOML table declares: {field: {dist, low, high[, q] | values}}. Raises UsageProblem (one
    line naming ``where`` and the field) for a field that cannot be drawn or a malformed law."""
    laws = []
    for name, spec in tables.items():
        if name not in HPARAM_COLUMNS:
            drawable = ", ".join(HPARAM_COLUMNS)
            raise UsageProblem(f"{where}: {name} cannot be drawn per model; drawable fields: {drawable}")
        if not isinstance(spec, dict):
            example = '{dist = "log_uniform", low = 0.05, high = 1}'
            raise UsageProblem(f"{where}: {name} must be a table such as {example}")
        try:
            p = param_from_dict(name, spec, default_q=None)
        except UsageProblem as e:
            raise UsageProblem(f"{where}: {e.line()}") from None
        values = p.values if p.kind == "choice" else (p.low, p.high)
        if any(isinstance(v, str | bool) or not isinstance(v, int | float) for v in values):
            raise UsageProblem(f"{where}: {name} takes numbers, got {list(values)!r}")
        laws.append(p)
    return tuple(sorted(laws, key=lambda p: p.name))


def to_json(laws: Laws) -> str:
    """The laws as canonical JSON ("" when none): what the recipe hashes and the models table stores."""
    if not laws:
        return ""
    out = {}
    for p in laws:
        d = {"dist": p.kind}
        if p.kind == "choice":
            d["values"] = [float(v) for v in p.values]
        else:
            d.update(low=float(p.low), high=float(p.high))
            if p.q is not None:
                d["q"] = float(p.q)
        out[p.name] = d
    return json.dumps(out, sort_keys=True)


def from_json(text: str | None) -> Laws:
    """The laws of :func:`to_json`'s text (None or "": none)."""
    if not text:
        return ()
    return laws_from_tables(json.loads(text), "drawn recipe fields")


def describe(laws: Laws) -> str:
    """One line: "lr log-uniform [0.05, 1]; weight_decay …" ("" when none)."""
    return "; ".join(f"{p.name} {p.describe()}" for p in laws)


def draw(laws: Laws, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """n values of each field (float64 arrays), drawn in the laws' (sorted) order from ``rng``."""
    return {p.name: np.asarray(p.draw(rng, n), dtype=np.float64) for p in laws}


def salted_ids(ids: list[str], values: dict[str, np.ndarray]) -> list[str]:
    """Model ids of networks ``ids`` trained with the drawn ``values`` (one per id, each field): the network's
    id when nothing is drawn, else a hash of it and the exact values (repr of the float: round-trips)."""
    if not values:
        return ids
    names = sorted(values)
    return [hash_id(mid + "".join(f"|{k}={float(values[k][i])!r}" for k in names)) for i, mid in enumerate(ids)]
