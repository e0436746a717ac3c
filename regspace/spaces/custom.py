"""User-defined design spaces from a TOML file (docs/design.md §2), in the papers' vocabulary.

Example (an X_c variant with narrower widths and a default budget)::

    name = "X_c_narrow"
    base = "X_c"                 # optional: start from any built-in space (its family follows)
    family = "anynet"            # anynet | regnet | nds | mbconv; without a base, the family's first
                                 # built-in space gives the defaults (X_a, RegNet, Vanilla, MB_a)
    block = "X"                  # V | R | X | Y (SE, ratio 0.25) | MB; or set se_ratio
    stages = 4                   # per-stage families, 1..7 (a regnet space sets num_stages)
    strides = [2, 2, 2, 2]       # optional: one per stage, 1 or 2 (default 2, NDS 1, 2, 2, MBConv B0's)
    shared = ["b", "g"]          # per-stage families: parameters shared by all stages
    increasing = ["w"]           # per-stage families: parameters non-decreasing over stages
    activation = "relu"          # relu | silu (default: the block's), or draw it: [params.act]
    head_width = 0               # a 1×1 head conv of this width before pooling (0: none)
    [params.w]
    dist = "uniform"             # uniform | log_uniform | power2_uniform | power2_or_log_uniform | choice
    low = 8
    high = 512
    q = 8
    [params.act]                 # the activation drawn per model, i.i.d. like the other parameters
    values = ["relu", "silu"]
    [budget]                     # the default complexity constraints for this space
    flops = "20M:30M"
    [hparams.lr]                 # optional: recipe fields drawn per model (NDS §5; regspace.spaces.hparams):
    dist = "log_uniform"         # lr, weight_decay, momentum, label_smoothing; continuous without q
    low = 0.05
    high = 1.0

The parameters are those of the family's space class: anynet d, w, b, g; regnet d, w0, wa, wm, b, g; nds d,
w and, for X and Y blocks, b and g (NDS's *number* of groups); mbconv d, w, e, k (and ``stem_width``). A
block that does not read b and g (V, R) leaves them neutral; MB reads e and k, which only mbconv draws.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from regspace.blocks import block_names, get_block
from regspace.design import ACTIVATIONS, MAX_STAGES, UNUSED
from regspace.errors import UsageProblem
from regspace.presets import Budget
from regspace.spaces.base import Space
from regspace.spaces.builtin import SPACES, builtin_space
from regspace.spaces.distributions import param_from_dict
from regspace.spaces.hparams import laws_from_tables

_TOP_KEYS = {
    "name",
    "base",
    "family",
    "block",
    "se_ratio",
    "stages",
    "num_stages",
    "strides",
    "shared",
    "increasing",
    "activation",
    "head_width",
    "stem_width",
    "params",
    "budget",
    "description",
    "hparams",
}
# The SE ratio a block implies when the file names the block but no se_ratio (MB keeps its base's).
_BLOCK_SE = {"V": 0.0, "R": 0.0, "X": 0.0, "Y": 0.25}


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


def families() -> dict[str, Space]:
    """Each family of the built-in spaces, with its first built-in space (the defaults of a file
    that names the family but no base): {'anynet': X_a, 'regnet': RegNet, 'nds': Vanilla, 'mbconv': MB_a}."""
    out: dict[str, Space] = {}
    for space in SPACES.values():
        out.setdefault(space.family, space)
    return out


def _field_names(space: Space) -> set[str]:
    return {f.name for f in dataclasses.fields(space)}


def space_from_dict(spec: dict, *, source: str = "space") -> Space:
    """The space a TOML table declares. Raises UsageProblem, one line naming ``source`` and the key."""
    try:
        return _space_from_dict(spec, source)
    except UsageProblem as e:
        line = e.line()
        raise UsageProblem(line if line.startswith(f"{source}: ") else f"{source}: {line}") from None


def _space_from_dict(spec: dict, source: str) -> Space:
    unknown = set(spec) - _TOP_KEYS
    if unknown:
        raise UsageProblem(f"unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_TOP_KEYS))}")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise UsageProblem("a space needs a name")
    if name in SPACES:
        raise UsageProblem(f"{name!r} is a built-in space; give yours another name")
    fams = families()
    base = None
    if "base" in spec:
        try:
            base = get_space(str(spec["base"]))
        except UsageProblem as e:
            raise UsageProblem(f"base: {e.line()}") from None
    family = spec.get("family", base.family if base else "anynet")
    if family not in fams:
        raise UsageProblem(f"family must be one of {', '.join(repr(f) for f in fams)}, got {family!r}")
    if base is not None and base.family != family:
        raise UsageProblem(f"base {base.name} is a {base.family} space, not {family}")
    template = base if base is not None else fams[family]

    if "block" in spec and spec["block"] not in block_names():
        raise UsageProblem(f"block must be {' or '.join(repr(b) for b in block_names())}, got {spec['block']!r}")
    block = spec.get("block", template.block)
    se_ratio = spec.get("se_ratio", _BLOCK_SE.get(spec.get("block", ""), template.se_ratio))
    if not isinstance(se_ratio, int | float) or isinstance(se_ratio, bool):
        raise UsageProblem(f"se_ratio must be a number, got {se_ratio!r}")
    se_ratio = float(se_ratio)
    # X and Y follow the se ratio (an explicit se_ratio wins over block, as before the block field).
    block = ("Y" if se_ratio > 0 else "X") if block in ("X", "Y") else block
    problem = get_block(block).check(se_ratio)
    if problem:
        raise UsageProblem(f"se_ratio: {problem}")
    template = template.for_block(block)
    _check_block_fits(block, template, family, fams)
    drawn = [p.name for p in template.params()]

    fields = {
        "name": name,
        "title": name,
        "se_ratio": se_ratio,
        # X and Y are left to the se ratio (None); any other kind is named.
        "block": None if block in ("X", "Y") else block,
        "aliases": (),
        "description": spec.get("description", f"user-defined ({source})"),
    }
    params = spec.get("params", {})
    if not isinstance(params, dict):
        raise UsageProblem("[params] must be a table")
    for pname, pspec in params.items():
        if pname not in drawn and pname != "act":
            owners = [f for f, s in fams.items() if pname in {p.name for p in s.params()}]
            where = f"; {pname} is drawn by family {' or '.join(owners)}" if owners else ""
            if pname in UNUSED and pname not in get_block(block).uses:
                readers = [k for k in block_names() if pname in get_block(k).uses]
                where = f"; block {block} does not read {pname} ({', '.join(readers)} do)" + where
            raise UsageProblem(
                f"params.{pname}: unknown parameter for family {family} with block {block}; "
                f"use {', '.join(drawn + ['act'])}{where}"
            )
        if not isinstance(pspec, dict):
            raise UsageProblem(f"params.{pname} must be a table")
        try:
            param = param_from_dict(pname, pspec)
        except UsageProblem as e:
            raise UsageProblem(f"params.{pname}: {e.line().removeprefix(f'parameter {pname}: ')}") from None
        _check_values(pname, param)
        fields[pname] = param

    if "activation" in spec:
        if "act" in params:
            raise UsageProblem("activation: give either activation or [params.act], not both")
        if spec["activation"] not in ACTIVATIONS:
            raise UsageProblem(f"activation must be {' or '.join(map(repr, ACTIVATIONS))}, got {spec['activation']!r}")
        fields["activation"] = spec["activation"]
    if "head_width" in spec:
        fields["head_width"] = _integer(spec, "head_width", 0)
    if "stem_width" in spec:
        if "stem_width" not in _field_names(template):
            having = [f for f, s in fams.items() if "stem_width" in _field_names(s)]
            raise UsageProblem(
                f"stem_width: family {family} takes the preset's stem; family {' or '.join(having)} sets its own"
            )
        fields["stem_width"] = _integer(spec, "stem_width", 1)

    per_stage = "stages" in _field_names(template)
    stages_key, other = ("stages", "num_stages") if per_stage else ("num_stages", "stages")
    if other in spec:
        raise UsageProblem(f"{other}: family {family} sets {stages_key}, not {other}")
    stages = _integer(spec, stages_key, 1) if stages_key in spec else getattr(template, stages_key)
    if stages > MAX_STAGES:
        raise UsageProblem(f"{stages_key} must be between 1 and {MAX_STAGES}, got {stages}")
    fields[stages_key] = stages
    fields["strides"] = _strides(spec, template, stages, stages_key)

    act = fields.get("act", template.act)
    choice = 1 if act is not None and len(act.values) > 1 else 0
    if per_stage:
        for label in ("shared", "increasing"):
            value = spec.get(label, getattr(template, label))
            if not isinstance(value, list | tuple | frozenset) or set(value) - set(drawn):
                raise UsageProblem(f"{label} must be a list of parameters among {', '.join(drawn)}, got {value!r}")
            fields[label] = frozenset(value)
        shared = fields["shared"]
        fields["dof"] = sum(1 if p in shared else stages for p in drawn) + choice
    else:
        for label in ("shared", "increasing"):
            if label in spec:
                raise UsageProblem(f"{label}: family {family} has no per-stage parameters")
        laws = [fields.get(p.name, p) for p in template.params()]
        fields["dof"] = choice + sum(1 for p in laws if p.kind != "choice" or len(p.values) > 1)
    budget = spec.get("budget")
    if budget is not None:
        if not isinstance(budget, dict) or set(budget) - {"flops", "params", "acts"}:
            raise UsageProblem('[budget] takes flops, params and acts ranges such as "20M:30M"')
        fields["budget"] = Budget.parse(**{k: str(v) for k, v in budget.items()})
    if "hparams" in spec:
        if not isinstance(spec["hparams"], dict):
            raise UsageProblem("[hparams] must be a table of recipe fields, e.g. [hparams.lr]")
        fields["hparams"] = laws_from_tables(spec["hparams"], "hparams")
    return dataclasses.replace(template, **fields)


def _check_block_fits(block: str, template: Space, family: str, fams: dict[str, Space]) -> None:
    """A block reads its per-stage parameters (BlockKind.uses) from what the family draws; the others it
    leaves neutral, so V and R fit every family, X and Y those with b and g, MB only mbconv."""
    missing = get_block(block).uses - {p.name for p in template.params()}
    if missing:
        fits = [f for f, s in fams.items() if not get_block(block).uses - {p.name for p in s.for_block(block).params()}]
        raise UsageProblem(
            f"block: {block} reads {', '.join(sorted(missing))}, which family {family} does not draw; "
            "use family = " + " or ".join(f'"{f}"' for f in fits)
        )


# The smallest value each parameter may take (a design checks the rest); k must also be odd.
_LOWEST = {"d": 1, "w": 1, "g": 1, "k": 1, "w0": 1}
_POSITIVE = {"b", "e", "wa", "wm"}


def _check_values(name: str, p) -> None:
    if name == "act":
        if p.kind != "choice":
            raise UsageProblem(f'params.act: the activation is a choice: values = ["relu", "silu"], not {p.kind}')
        bad = [v for v in p.values if v not in ACTIVATIONS]
        if bad:
            raise UsageProblem(f"params.act: activations must be among {', '.join(ACTIVATIONS)}, got {bad[0]!r}")
        return
    values = list(p.values) if p.kind == "choice" else [p.low]
    if any(isinstance(v, str | bool) for v in values):
        raise UsageProblem(f"params.{name}: values must be numbers, got {values!r}")
    if name in _LOWEST and min(values) < _LOWEST[name] or name in _POSITIVE and min(values) <= 0:
        bound = f">= {_LOWEST[name]}" if name in _LOWEST else "> 0"
        raise UsageProblem(f"params.{name}: values must be {bound}, got {min(values):g}")
    if name == "k" and p.kind == "choice" and any(int(v) != v or v % 2 == 0 for v in values):
        raise UsageProblem(f"params.k: kernel sizes must be odd integers, got {values!r}")


def _integer(spec: dict, key: str, low: int) -> int:
    value = spec[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise UsageProblem(f"{key} must be an integer >= {low}, got {value!r}")
    return value


def _strides(spec: dict, template: Space, stages: int, stages_key: str) -> tuple[int, ...]:
    if "strides" not in spec:
        strides = tuple(template.strides)
        if strides and len(strides) != stages:
            raise UsageProblem(
                f"strides: {template.name} has {len(strides)} stage strides ({', '.join(map(str, strides))}) but this "
                f"space has {stages_key} = {stages}; give strides, one per stage"
            )
        return strides
    strides = spec["strides"]
    if not isinstance(strides, list) or any(s not in (1, 2) or isinstance(s, bool) for s in strides):
        raise UsageProblem(f"strides must be a list of 1s and 2s, one per stage, got {strides!r}")
    if len(strides) != stages:
        raise UsageProblem(f"strides has {len(strides)} values, but the space has {stages_key} = {stages}")
    return tuple(strides)
