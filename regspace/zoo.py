"""Reference models by name: the RegNetX / RegNetY models of DDS (pycls model zoo), and the spellings people use.

Only the generating parameters are kept here; widths, depths, groups and complexity are derived,
and the test suite checks them against the published figures in tests/data/regnet_zoo.tsv.

Names are read by rules, not by a table of aliases (:func:`zoo_name`). Each rule turns a spelling into a
model family and a size; a (family, size) that names a model is that model, and any other spelling gets a
suggestion: the model of the same family nearest in size, else the nearest name (:func:`suggest`).
"""

from __future__ import annotations

import difflib
import math
import re
from fractions import Fraction

from regspace.design import STEMS, Design
from regspace.errors import UsageProblem
from regspace.reference import REFERENCES, reference_design
from regspace.spaces.regnet import regnet_design

# name: (d, w0, wa, wm, g, b, se_ratio)
ZOO = {
    "RegNetX-200MF": (13, 24, 36.44, 2.49, 8, 1.0, 0.0),
    "RegNetX-400MF": (22, 24, 24.48, 2.54, 16, 1.0, 0.0),
    "RegNetX-600MF": (16, 48, 36.97, 2.24, 24, 1.0, 0.0),
    "RegNetX-800MF": (16, 56, 35.73, 2.28, 16, 1.0, 0.0),
    "RegNetX-1.6GF": (18, 80, 34.01, 2.25, 24, 1.0, 0.0),
    "RegNetX-3.2GF": (25, 88, 26.31, 2.25, 48, 1.0, 0.0),
    "RegNetX-4.0GF": (23, 96, 38.65, 2.43, 40, 1.0, 0.0),
    "RegNetX-6.4GF": (17, 184, 60.83, 2.07, 56, 1.0, 0.0),
    "RegNetX-8.0GF": (23, 80, 49.56, 2.88, 120, 1.0, 0.0),
    "RegNetX-12GF": (19, 168, 73.36, 2.37, 112, 1.0, 0.0),
    "RegNetX-16GF": (22, 216, 55.59, 2.1, 128, 1.0, 0.0),
    "RegNetX-32GF": (23, 320, 69.86, 2.0, 168, 1.0, 0.0),
    "RegNetY-200MF": (13, 24, 36.44, 2.49, 8, 1.0, 0.25),
    "RegNetY-400MF": (16, 48, 27.89, 2.09, 8, 1.0, 0.25),
    "RegNetY-600MF": (15, 48, 32.54, 2.32, 16, 1.0, 0.25),
    "RegNetY-800MF": (14, 56, 38.84, 2.4, 16, 1.0, 0.25),
    "RegNetY-1.6GF": (27, 48, 20.71, 2.65, 24, 1.0, 0.25),
    "RegNetY-3.2GF": (21, 80, 42.63, 2.66, 24, 1.0, 0.25),
    "RegNetY-4.0GF": (22, 96, 31.41, 2.24, 64, 1.0, 0.25),
    "RegNetY-6.4GF": (25, 112, 33.22, 2.27, 72, 1.0, 0.25),
    "RegNetY-8.0GF": (17, 192, 76.82, 2.19, 56, 1.0, 0.25),
    "RegNetY-12GF": (19, 168, 73.36, 2.37, 112, 1.0, 0.25),
    "RegNetY-16GF": (18, 200, 106.23, 2.48, 112, 1.0, 0.25),
    "RegNetY-32GF": (20, 232, 115.89, 2.53, 232, 1.0, 0.25),
}

# ------------------------------------------------------------------ names
#
# A rule reads the whole (lower-cased) spelling and gives (family, size); size is a number that orders the
# family's models (RegNet: nominal mega-flops). The same rules read the canonical names, so the index below
# is built from them and a new model needs no alias list.
#   DDS / pycls:   RegNetY-3.2GF, RegNetX-200MF, regnety 3.2gf     -> size 3.2 * 1000 MF
#   torchvision:   regnet_y_3_2gf, regnet_x_400mf, regnet_x_8gf     ("_" as the decimal point)
#   timm:          regnety_032, regnetx_002, regnety_120            (three or four digits: GF * 10)
# timm's pretrained tags (``regnety_032.ra_in1k``) and hub prefix (``timm/``) name weights, not a different
# network, so they are dropped first.

_RULES: list[tuple[re.Pattern, object]] = [
    (
        re.compile(r"regnet[-_ ]?([xy])[-_ ]?(\d+(?:[._]\d+)?)\s*([mg])f?"),
        lambda m: (f"RegNet{m[1].upper()}", _mflops(m[2].replace("_", "."), m[3])),
    ),
    (
        re.compile(r"regnet([xy])_(\d{3,4})"),
        lambda m: (f"RegNet{m[1].upper()}", Fraction(int(m[2]) * 100)),
    ),
    # EfficientNet-B0, efficientnet_b0 (timm, torchvision), EN-B0 (pycls), effnet-b0
    (re.compile(r"(?:efficientnet|effnet|en)[-_ ]?b(\d+)"), lambda m: ("EfficientNet", Fraction(int(m[1])))),
    # ResNet-50, resnet50 (timm, torchvision), R-50 and R-50-1x64d (pycls)
    (re.compile(r"(?:resnet|r)[-_ ]?(\d+)(?:[-_ ]?1x64d)?"), lambda m: ("ResNet", Fraction(int(m[1])))),
    # ResNeXt-50-32x4d, resnext50_32x4d (timm, torchvision), X-50-32x4d (pycls); ResNeXt-50 means 32x4d,
    # the ResNeXt paper's (and pycls's) choice; another cardinality x width is another family.
    (
        re.compile(r"(?:resnext|x)[-_ ]?(\d+)(?:[-_ ]?(\d+)x(\d+)d)?"),
        lambda m: (f"ResNeXt-{m[2] or 32}x{m[3] or 4}d", Fraction(int(m[1]))),
    ),
]


def _mflops(number: str, unit: str) -> Fraction:
    return Fraction(number) * (1000 if unit == "g" else 1)


def _clean(name: str) -> str:
    text = name.strip().lower()
    text = re.sub(r"^timm/", "", text)
    return re.sub(r"\.[a-z][a-z0-9_]*$", "", text)  # a timm tag starts with a letter; "3.2gf" is kept


def _parse(name: str, *, whole: bool = True) -> tuple[str, Fraction] | None:
    """(family, size) read from ``name`` by the first rule that matches it (whole: the entire spelling)."""
    text = _clean(name)
    for pattern, read in _RULES:
        m = pattern.fullmatch(text) if whole else pattern.match(text)
        if m:
            return read(m)
    return None


def _index() -> dict[tuple[str, Fraction], str]:
    out = {}
    for name in [*ZOO, *REFERENCES]:
        key = _parse(name)
        assert key is not None and key not in out, name  # every canonical name reads as itself, once
        out[key] = name
    return out


_INDEX = _index()
_BY_KEY = {name.lower(): name for name in [*ZOO, *REFERENCES]}


def spellings(name: str) -> list[str]:
    """The usual spellings of a known model: canonical, timm / torchvision, pycls (each reads back as ``name``)."""
    family, size = _parse(name)
    if family == "EfficientNet":
        return [name, f"efficientnet_b{size}", f"EN-B{size}"]
    if family == "ResNet":
        return [name, f"resnet{size}", f"R-{size}"]
    if family.startswith("ResNeXt"):
        cw = family.split("-")[1]
        return [name, f"resnext{size}_{cw}", f"X-{size}-{cw}"]
    mf = size
    x = family[-1].lower()
    gf = Fraction(mf, 1000)
    tv = f"{mf}mf" if mf < 1000 else f"{float(gf):g}gf"
    return [name, f"regnet{x}_{int(mf) // 100:03d}", f"regnet_{x}_{tv.replace('.', '_')}"]


# every spelling of every model, for the by-text suggestion
_SPELLED = {s.lower(): name for name in _BY_KEY.values() for s in spellings(name)}


def zoo_name(name: str) -> str | None:
    """The canonical zoo name for any accepted spelling of ``name`` (see the rules above), or None."""
    exact = _BY_KEY.get(name.strip().lower())
    if exact:
        return exact
    key = _parse(name)
    return _INDEX.get(key) if key else None


def suggest(name: str) -> str | None:
    """The closest known model to an unknown ``name``: by name, then by size.

    If a rule reads a family and a size from the spelling (even with trailing text, as in ``regnetx-200mg``),
    the answer is that family's model nearest in size on a log scale (``regnety_030`` -> RegNetY-3.2GF,
    ``regnet_y_128gf`` -> RegNetY-32GF); otherwise the canonical name nearest as text, or None.
    """
    key = _parse(name, whole=False)
    if key is not None:
        family, size = key
        same = [(k, v) for k, v in _INDEX.items() if k[0] == family]
        # another variant of a family (ResNeXt 32x8d) is closer than another family
        same = same or [(k, v) for k, v in _INDEX.items() if k[0].split("-")[0] == family.split("-")[0]]
        if same:  # sizes compare on a log scale; + 1 makes B0 and a size 0 comparable
            return min(same, key=lambda kv: (abs(math.log((kv[0][1] + 1) / (size + 1))), kv[0][1]))[1]
    close = difflib.get_close_matches(_clean(name), list(_SPELLED), n=1, cutoff=0.6)
    return _SPELLED[close[0]] if close else None


def zoo_params(name: str) -> dict:
    """The generating parameters of a RegNet reference model: d, w0, wa, wm, g, b, se_ratio.

    Raises UsageProblem with a did-you-mean hint (:func:`suggest`) when ``name`` is not a known model.
    """
    canonical = zoo_name(name)
    if canonical is None:
        close = suggest(name)
        raise UsageProblem(f"unknown reference model {name!r}", hint=f"did you mean {close}?" if close else None)
    if canonical not in ZOO:
        raise UsageProblem(f"{canonical} is not a RegNet: it has no generating parameters d, w0, wa, wm")
    d, w0, wa, wm, g, b, se = ZOO[canonical]
    return {"d": d, "w0": w0, "wa": wa, "wm": wm, "g": g, "b": b, "se_ratio": se}


def zoo_design(name: str, stem=None) -> Design:
    """The Design of any reference model by any accepted spelling (UsageProblem with a suggestion if unknown).

    ``stem``: for a RegNet, its stem (default imagenet, as the zoo counts them); for the other references,
    None keeps the model's own stem (regspace.reference).
    """
    canonical = zoo_name(name)
    if canonical in REFERENCES:
        return reference_design(canonical, stem=stem)
    p = zoo_params(name)
    return regnet_design(
        p["d"], p["w0"], p["wa"], p["wm"], b=p["b"], g=p["g"], se_ratio=p["se_ratio"], stem=stem or STEMS["imagenet"]
    )


def near_miss(name: str) -> bool:
    """True when a naming rule reads a model family from the start of ``name`` (``resnet18``, ``regnety_030``):
    such a text is meant as a reference name, and an unknown one deserves :func:`suggest`'s answer."""
    return _parse(name, whole=False) is not None


def zoo_parse(name: str, *, stem) -> tuple[Design, dict]:
    """(design, generating parameters) of a reference model, as regspace.specs.parse_design returns them.

    A RegNet is built on ``stem`` (the context's) and returns d, w0, wa, wm, b, g; the other references keep
    their own stem (a resnet or EfficientNet stem, regspace.reference) and have no generating parameters.
    Raises UsageProblem with a suggestion when ``name`` is not known.
    """
    canonical = zoo_name(name)
    if canonical in REFERENCES:
        return reference_design(canonical), {}
    p = zoo_params(name)
    design = regnet_design(p["d"], p["w0"], p["wa"], p["wm"], b=p["b"], g=p["g"], se_ratio=p["se_ratio"], stem=stem)
    return design, {k: p[k] for k in ("d", "w0", "wa", "wm", "b", "g")}
