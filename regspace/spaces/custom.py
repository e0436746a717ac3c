"""User-defined design spaces from a TOML file (docs/design.md §2), in the papers' vocabulary.

Example (an X_c variant with narrower widths and a default budget)::

    name = "X_c_narrow"
    base = "X_c"                 # optional: start from a built-in space
    block = "X"                  # or "Y" (SE, ratio 0.25); or set se_ratio
    stages = 4                   # AnyNet only, 1..4
    shared = ["b", "g"]          # AnyNet: parameters shared by all stages
    increasing = ["w"]           # AnyNet: parameters non-decreasing over stages
    [params.w]
    dist = "uniform"             # uniform | log_uniform | power2_uniform | power2_or_log_uniform | choice
    low = 8
    high = 512
    q = 8
    [budget]                     # the default complexity constraints for this space
    flops = "20M:30M"

A RegNet space sets ``family = "regnet"`` (or a RegNet base) and parameters d, w0, wa, wm, b, g,
plus ``num_stages``.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from regspace.blocks import block_names
from regspace.errors import UsageProblem
from regspace.presets import Budget
from regspace.spaces.anynet import STAGE_PARAMS, AnyNetSpace
from regspace.spaces.base import Space
from regspace.spaces.builtin import SPACES, builtin_space
from regspace.spaces.distributions import param_from_dict
from regspace.spaces.regnet import RegNetSpace

MAX_STAGES = 4  # the store's per-stage columns d1..d4, w1..w4, b1..b4, g1..g4

_TOP_KEYS = {
    "name",
    "base",
    "family",
    "block",
    "se_ratio",
    "stages",
    "num_stages",
    "shared",
    "increasing",
    "params",
    "budget",
    "description",
}


def get_space(name: str) -> Space:
    """A built-in space by name or alias (case-insensitive), or a space defined in a .toml file."""
    if name.lower().endswith(".toml") or Path(name).is_file():
        return load_space_file(name)
    return builtin_space(name)


def load_space_file(path: str) -> Space:
    p = Path(path)
    if not p.is_file():
        raise UsageProblem(f"space file {path} does not exist")
    try:
        spec = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageProblem(f"space file {path} is not valid TOML: {e}") from None
    return space_from_dict(spec, source=str(path))


def space_from_dict(spec: dict, *, source: str = "space") -> Space:
    unknown = set(spec) - _TOP_KEYS
    if unknown:
        raise UsageProblem(
            f"{source}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_TOP_KEYS))}"
        )
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise UsageProblem(f"{source}: a space needs a name")
    if name in SPACES:
        raise UsageProblem(f"{source}: {name!r} is a built-in space; give yours another name")
    base = get_space(spec["base"]) if "base" in spec else None
    family = spec.get("family", base.family if base else "anynet")
    if family not in ("anynet", "regnet"):
        raise UsageProblem(f"{source}: family must be 'anynet' or 'regnet', got {family!r}")
    if base is not None and base.family != family:
        raise UsageProblem(f"{source}: base {base.name} is a {base.family} space, not {family}")
    if "block" in spec and spec["block"] not in block_names():
        raise UsageProblem(f"{source}: block must be {' or '.join(repr(b) for b in block_names())}")
    block = spec.get("block", base.block if base else None)
    se_ratio = float(
        spec.get("se_ratio", {"X": 0.0, "Y": 0.25}.get(spec.get("block", ""), base.se_ratio if base else 0.0))
    )
    cls = AnyNetSpace if family == "anynet" else RegNetSpace
    template = base if base is not None else cls(name=name, title=name, se_ratio=se_ratio, dof=0)
    fields = {
        "name": name,
        "title": name,
        "se_ratio": se_ratio,
        # X and Y follow the se ratio (an explicit se_ratio wins over block, as before the block field);
        # any other kind is kept as given or inherited.
        "block": None if block in (None, "X", "Y") else block,
        "aliases": (),
        "description": spec.get("description", f"user-defined ({source})"),
    }
    params = spec.get("params", {})
    if not isinstance(params, dict):
        raise UsageProblem(f"{source}: [params] must be a table")
    allowed = {p.name for p in template.params()}
    for pname, pspec in params.items():
        if pname not in allowed:
            raise UsageProblem(
                f"{source}: unknown parameter {pname!r} for a {family} space; use {', '.join(sorted(allowed))}"
            )
        if not isinstance(pspec, dict):
            raise UsageProblem(f"{source}: params.{pname} must be a table")
        fields[pname] = param_from_dict(pname, pspec)
    if family == "anynet":
        stages = int(spec.get("stages", template.stages))
        if not 1 <= stages <= MAX_STAGES:
            raise UsageProblem(f"{source}: stages must be between 1 and {MAX_STAGES}")
        shared = frozenset(spec.get("shared", template.shared))
        increasing = frozenset(spec.get("increasing", template.increasing))
        for group, label in ((shared, "shared"), (increasing, "increasing")):
            bad = group - set(STAGE_PARAMS)
            if bad:
                raise UsageProblem(f"{source}: {label} names unknown parameter(s) {', '.join(sorted(bad))}")
        fields.update(stages=stages, shared=shared, increasing=increasing)
        per_stage = [p for p in STAGE_PARAMS if p not in shared]
        fields["dof"] = len(per_stage) * stages + len(shared & set(STAGE_PARAMS))
    else:
        fields["num_stages"] = int(spec.get("num_stages", template.num_stages))
        fields["dof"] = sum(
            1
            for p in template.params()
            if (fields.get(p.name, p).kind != "choice" or len(fields.get(p.name, p).values) > 1)
        )
    budget = spec.get("budget")
    if budget is not None:
        if not isinstance(budget, dict) or set(budget) - {"flops", "params", "acts"}:
            raise UsageProblem(f'{source}: [budget] takes flops, params and acts ranges such as "20M:30M"')
        fields["budget"] = Budget.parse(**{k: str(v) for k, v in budget.items()})
    return dataclasses.replace(template, **fields)
