"""Designs written as text, for `regspace describe` and friends.

Accepted forms:
- a reference model name: ``RegNetX-200MF`` … ``RegNetY-32GF`` (case-insensitive);
- ``regnet:d=13,w0=24,wa=36.44,wm=2.49,g=8,b=1,se=0`` (b, g, se optional: 1, 8, 0);
- ``anynet:d=1,1,4,7;w=24,56,152,368;b=1;g=8;se=0.25`` (b, g: one shared value or one per stage);
  ``block=X|Y|…`` (any registered block kind; by default Y when se > 0, else X).
"""

from __future__ import annotations

import re

from regspace.design import Context, Design, Stem
from regspace.errors import UsageProblem
from regspace.schema import design_row
from regspace.spaces.regnet import regnet_design
from regspace.zoo import zoo_name, zoo_params

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
        p = zoo_params(text)
        return regnet_design(
            p["d"], p["w0"], p["wa"], p["wm"], b=p["b"], g=p["g"], se_ratio=p["se_ratio"], stem=stem
        ), {k: p[k] for k in ("d", "w0", "wa", "wm", "b", "g")}
    kind, colon, body = text.partition(":")
    kind = kind.strip().lower()
    if not colon or kind not in ("regnet", "anynet"):
        if kind.startswith("regnet") and not colon:
            zoo_params(text)  # raises with a did-you-mean for near-miss zoo names
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
    kv = _pairs(body, ";", spec)
    allowed = {"d", "w", "b", "g", "se", "block"}
    unknown = set(kv) - allowed
    missing = {"d", "w"} - set(kv)
    if unknown or missing:
        raise UsageProblem(
            f"in {spec!r}: "
            + (f"unknown key(s) {', '.join(sorted(unknown))}" if unknown else f"missing {', '.join(sorted(missing))}"),
            hint="anynet: takes d, w (one value per stage), b, g (shared or per stage), se, block",
        )
    depths = [_int(x, "d", spec) for x in kv["d"].split(",")]
    widths = [_int(x, "w", spec) for x in kv["w"].split(",")]
    bs = [_number(x, "b", spec) for x in kv.get("b", "1").split(",")]
    gs = [_int(x, "g", spec) for x in kv.get("g", "1").split(",")]
    se = _number(kv.get("se", "0"), "se", spec)
    n = len(depths)
    if len(widths) != n:
        raise UsageProblem(f"in {spec!r}: {n} depths but {len(widths)} widths")
    for name, vals in (("b", bs), ("g", gs)):
        if len(vals) not in (1, n):
            raise UsageProblem(f"in {spec!r}: give one shared {name} or one per stage ({n})")
    if n > 64 or sum(depths) > 1000 or max(widths) > 1 << 16:
        raise UsageProblem(f"in {spec!r}: design too large (at most 64 stages, 1000 blocks, width 65536)")
    _check_positive(
        spec,
        **{f"d{i + 1}": v for i, v in enumerate(depths)},
        **{f"w{i + 1}": v for i, v in enumerate(widths)},
        b=min(bs),
        g=min(gs),
    )
    bs = bs * n if len(bs) == 1 else bs
    gs = gs * n if len(gs) == 1 else gs
    block = kv["block"].strip() if "block" in kv else None
    return Design.from_sampled(widths, depths, bs, gs, se_ratio=se, stem=stem, block=block), {}


def _check_positive(spec: str, **values) -> None:
    for k, v in values.items():
        if v <= 0:
            raise UsageProblem(f"in {spec!r}: {k} must be positive, got {v:g}")


def describe(specs: list[str], *, stem: Stem, context: Context) -> list[dict]:
    """Everything regspace derives from each design: stages, complexity, model id."""
    out = []
    for spec in specs:
        design, params = parse_design(spec, stem=stem)
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
        }
        if params:
            row["regnet"] = params
        out.append(row)
    return out
