"""Designs written as text, for `regspace describe` and friends.

Accepted forms:
- a reference model name: ``RegNetX-200MF`` … ``RegNetY-32GF`` (case-insensitive);
- ``regnet:d=13,w0=24,wa=36.44,wm=2.49,g=8,b=1,se=0`` (b, g, se optional: 1, 8, 0);
- ``anynet:d=1,1,4,7;w=24,56,152,368;b=1;g=8;se=0.25`` (up to 7 stages; s, b, g, k, e: one shared value
  or one per stage): ``s`` stage strides (1 or 2; default 2), ``b`` bottleneck ratios (below 1: inverted),
  ``g`` group widths (1: depthwise), ``k`` and ``e`` MBConv's kernel and expansion (default 3, 1),
  ``block=V|R|X|Y|MB`` (by default Y when se > 0, else X), ``stem=cifar|imagenet|resnet`` and ``stem_w``
  (the stem and its width; default: the preset's), ``head`` (a 1×1 head conv's width; 0: none),
  ``act=relu|silu`` (default relu; silu for MB).
"""

from __future__ import annotations

import re

from regspace.blocks import get_block
from regspace.design import MAX_STAGES, UNUSED, Context, Design, Stem, block_of, get_stem
from regspace.errors import UsageProblem
from regspace.schema import design_row
from regspace.spaces.regnet import regnet_design
from regspace.zoo import near_miss, zoo_name, zoo_params, zoo_parse

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _number(text: str, key: str, spec: str) -> float:
    text = text.strip()
    if not _NUMBER.match(text):
        raise UsageProblem(f"in {spec!r}: {key}={text!r} is not a number")
    return float(text)


def _int(text: str, key: str, spec: str) -> int:
    v = _number(text, key, spec)
    if not v.is_integer():
        raise UsageProblem(f"in {spec!r}: {key} must be an integer, got {text}")
    return int(v)


def _pairs(body: str, sep: str, spec: str) -> dict[str, str]:
    out = {}
    for item in body.split(sep):
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq or not key or not value.strip():
            raise UsageProblem(f"cannot read {item.strip()!r} in {spec!r}: expected key=value")
        if key in out:
            raise UsageProblem(f"in {spec!r}: {key} is given twice")
        out[key] = value
    return out


def parse_design(spec: str, *, stem: Stem) -> tuple[Design, dict]:
    """A design from its text form; also returns the generating parameters (for RegNet forms)."""
    text = spec.strip()
    if zoo_name(text):
        return zoo_parse(text, stem=stem)
    kind, colon, body = text.partition(":")
    kind = kind.strip().lower()
    if not colon or kind not in ("regnet", "anynet"):
        if not colon and (kind.startswith("regnet") or near_miss(text)):
            zoo_params(text)  # raises with a did-you-mean (closest by name and size) for near-miss names
        raise UsageProblem(
            f"cannot read design {spec!r}",
            hint="use a reference name such as RegNetX-200MF, regnet:d=..,w0=..,wa=..,wm=..,g=.. "
            "or anynet:d=..;w=..;b=..;g=..",
        )
    if kind == "regnet":
        kv = _pairs(body, ",", spec)
        allowed = {"d", "w0", "wa", "wm", "g", "b", "se"}
        unknown = set(kv) - allowed
        missing = {"d", "w0", "wa", "wm"} - set(kv)
        if unknown or missing:
            raise UsageProblem(
                f"in {spec!r}: "
                + (
                    f"unknown key(s) {', '.join(sorted(unknown))}"
                    if unknown
                    else f"missing {', '.join(sorted(missing))}"
                ),
                hint="regnet: takes d, w0, wa, wm and optionally g, b, se",
            )
        d = _int(kv["d"], "d", spec)
        w0 = _int(kv["w0"], "w0", spec)
        wa, wm = _number(kv["wa"], "wa", spec), _number(kv["wm"], "wm", spec)
        g = _int(kv.get("g", "8"), "g", spec)
        b = _number(kv.get("b", "1"), "b", spec)
        se = _number(kv.get("se", "0"), "se", spec)
        _check_positive(spec, g=g, b=b)
        if d > 1000:
            raise UsageProblem(f"in {spec!r}: d={d} is too deep (at most 1000 blocks)")
        return regnet_design(d, w0, wa, wm, b=b, g=g, se_ratio=se, stem=stem), {
            "d": d,
            "w0": w0,
            "wa": wa,
            "wm": wm,
            "b": b,
            "g": g,
        }
    return _parse_anynet(body, spec, stem)


# anynet: keys with one value per stage or one shared value: (value reader, default text).
_STAGE_KEYS = {"s": (int, "2"), "b": (float, "1"), "g": (int, "1"), "k": (int, "3"), "e": (float, "1")}
_ANYNET_KEYS = {"d", "w", *_STAGE_KEYS, "se", "block", "stem", "stem_w", "head", "act"}


def _parse_anynet(body: str, spec: str, stem: Stem) -> tuple[Design, dict]:
    kv = _pairs(body, ";", spec)
    unknown = set(kv) - _ANYNET_KEYS
    missing = {"d", "w"} - set(kv)
    if unknown or missing:
        raise UsageProblem(
            f"in {spec!r}: "
            + (f"unknown key(s) {', '.join(sorted(unknown))}" if unknown else f"missing {', '.join(sorted(missing))}"),
            hint="anynet: takes d, w (one value per stage); s, b, g, k, e (shared or per stage); se, block, "
            "stem, stem_w, head, act",
        )
    depths = [_int(x, "d", spec) for x in kv["d"].split(",")]
    widths = [_int(x, "w", spec) for x in kv["w"].split(",")]
    n = len(depths)
    if len(widths) != n:
        raise UsageProblem(f"in {spec!r}: {n} depths but {len(widths)} widths")
    if n > MAX_STAGES or sum(depths) > 1000 or max(widths) > 1 << 16:
        raise UsageProblem(f"in {spec!r}: design too large (at most {MAX_STAGES} stages, 1000 blocks, width 65536)")
    stage = {}
    for key, (kind, default) in _STAGE_KEYS.items():
        read = _int if kind is int else _number
        vals = [read(x, key, spec) for x in kv.get(key, default).split(",")]
        if len(vals) not in (1, n):
            raise UsageProblem(f"in {spec!r}: give one shared {key} or one per stage ({n})")
        stage[key] = vals * n if len(vals) == 1 else vals
    se = _number(kv.get("se", "0"), "se", spec)
    _check_positive(
        spec,
        **{f"d{i + 1}": v for i, v in enumerate(depths)},
        **{f"w{i + 1}": v for i, v in enumerate(widths)},
        **{key: min(vals) for key, vals in stage.items()},
    )
    if "stem" in kv or "stem_w" in kv:
        width = _int(kv["stem_w"], "stem_w", spec) if "stem_w" in kv else None
        if width is not None and width < 1:
            raise UsageProblem(f"in {spec!r}: stem_w must be positive, got {width}")
        stem = get_stem(kv["stem"].strip() if "stem" in kv else stem.name, width)
    head = _int(kv.get("head", "0"), "head", spec)
    if head < 0:
        raise UsageProblem(f"in {spec!r}: head must be 0 (no head conv) or positive, got {head}")
    block = kv["block"].strip() if "block" in kv else None
    act = kv["act"].strip().lower() if "act" in kv else None
    kind = get_block(block_of(block, se))
    unused = sorted(set(kv) & set(UNUSED) - kind.uses)
    if unused:  # a value the network would silently ignore: say so rather than guess what was meant
        raise UsageProblem(f"in {spec!r}: block {kind.name} has no {' or '.join(unused)}; leave it out")
    design = Design.from_sampled(
        widths,
        depths,
        stage["b"],
        stage["g"],
        se_ratio=se,
        stem=stem,
        block=block,
        strides=stage["s"],
        kernels=stage["k"],
        expansions=stage["e"],
        head_width=head,
        activation=act,
    )
    return design, {}


def _check_positive(spec: str, **values) -> None:
    for k, v in values.items():
        if v <= 0:
            raise UsageProblem(f"in {spec!r}: {k} must be positive, got {v:g}")


def details(design: Design, stem: Stem) -> str:
    """What a design sets beyond widths, depths, b, g and block, in the text form's keys, with only the
    values that differ from the defaults (and a stem other than ``stem``, the command's): '' for none."""
    out = []
    if design.stem != stem:
        out.append(f"stem={design.stem.name};stem_w={design.stem.width}")
    for key, values, default in (("s", design.strides, 2), ("k", design.kernels, 3), ("e", design.expansions, 1)):
        if any(v != default for v in values):
            out.append(f"{key}=" + ",".join(format(v, "g") for v in values))
    if design.se_ratio and design.block == "MB":
        out.append(f"se={design.se_ratio:g}")
    if design.head_width:
        out.append(f"head={design.head_width}")
    if design.activation != "relu":
        out.append(f"act={design.activation}")
    return ";".join(out)


def describe(specs: list[str], *, stem: Stem, context: Context, problems: list | None = None) -> list[dict]:
    """Everything regspace derives from each design: stages, complexity, model id, and ``details`` (what
    :func:`details` gives). A design that cannot be read raises UsageProblem, or, when ``problems`` is a
    list, is left out and appended to it as (spec, the UsageProblem), so the valid ones are still described."""
    out = []
    for spec in specs:
        try:
            design, params = parse_design(spec, stem=stem)
        except UsageProblem as e:
            if problems is None:
                raise
            problems.append((spec, e))
            continue
        cx = design.complexity(context)
        row = {
            "name": zoo_name(spec) or spec.strip(),
            "model_id": design.model_id(context),
            **design_row(design),
            "depth": design.depth,
            "resolution": context.resolution,
            "in_channels": context.in_channels,
            "num_classes": context.num_classes,
            "flops": cx.flops,
            "params": cx.params,
            "acts": cx.acts,
            "details": details(design, stem),
        }
        if params:
            row["regnet"] = params
        out.append(row)
    return out


def describe_pycls(specs: list[str], *, stem: Stem, context: Context) -> str:
    """Each design as pycls's config (regspace.pycls_config), YAML documents separated by ``---``, each
    headed by a comment naming the design and its complexity. Raises UsageProblem naming the design when
    one cannot be read or pycls cannot build it."""
    from regspace.pycls_config import pycls_config, to_yaml

    docs = []
    for spec in specs:
        design, params = parse_design(spec, stem=stem)
        try:
            config = pycls_config(design, context, params or None)
        except UsageProblem as e:
            raise UsageProblem(f"{spec.strip()}: {e}") from None
        cx = design.complexity(context)
        size = f"{cx.flops:,} flops, {cx.params:,} params at {context.resolution}x{context.resolution}"
        docs.append(to_yaml(config, f"{zoo_name(spec) or spec.strip()}: {size} (regspace describe --format pycls)"))
    return "---\n".join(docs)
