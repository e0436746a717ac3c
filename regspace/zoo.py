"""The RegNetX / RegNetY reference models of DDS (its Table / pycls model zoo), by name.

Only the generating parameters are kept here; widths, depths, groups and complexity are derived,
and the test suite checks them against the published figures in tests/data/regnet_zoo.tsv.
"""

from __future__ import annotations

import difflib

from regspace.design import STEMS, Design
from regspace.errors import UsageProblem
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

_BY_KEY = {name.lower(): name for name in ZOO}


def zoo_name(name: str) -> str | None:
    """The canonical zoo name for ``name`` (case-insensitive), or None."""
    return _BY_KEY.get(name.strip().lower())


def zoo_params(name: str) -> dict:
    canonical = zoo_name(name)
    if canonical is None:
        close = difflib.get_close_matches(name.strip().lower(), list(_BY_KEY), n=1, cutoff=0.6)
        raise UsageProblem(
            f"unknown reference model {name!r}", hint=f"did you mean {_BY_KEY[close[0]]}?" if close else None
        )
    d, w0, wa, wm, g, b, se = ZOO[canonical]
    return {"d": d, "w0": w0, "wa": wa, "wm": wm, "g": g, "b": b, "se_ratio": se}


def zoo_design(name: str, stem=None) -> Design:
    p = zoo_params(name)
    return regnet_design(
        p["d"], p["w0"], p["wa"], p["wm"], b=p["b"], g=p["g"], se_ratio=p["se_ratio"], stem=stem or STEMS["imagenet"]
    )
