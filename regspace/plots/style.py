"""One look for every figure: colour-blind-safe colours (Okabe–Ito), readable sizes, units on axes."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402

from regspace.errors import RegspaceError  # noqa: E402

# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency; paired with
# line styles so figures survive grey-scale printing too.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 1)), (0, (5, 5))]

RC = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "svg.fonttype": "none",  # text stays text in SVG: searchable, crisp, small
    "figure.constrained_layout.use": True,
}

ERROR_LABEL = "final validation top-1 error (%)"
# The papers' code (pycls, the NDS data) uses each model's best epoch; regspace defaults to the final
# epoch (no choosing among epochs on the validation set) and says which one every figure shows.
MIN_ERROR_LABEL = "best-epoch validation top-1 error (%, as pycls/NDS)"


def error_label(df) -> str:
    """The error axis label for a results table (``df.attrs['error']``: 'error' or 'min_error'; ``epoch``:
    the errors as they stood after that epoch)."""
    attrs = getattr(df, "attrs", {})
    label = MIN_ERROR_LABEL if attrs.get("error") == "min_error" else ERROR_LABEL
    if attrs.get("epoch"):
        label = label.replace("final ", "").replace("best-epoch ", "best ") + f" after epoch {attrs['epoch']}"
    return label


PARAM_LABELS = {
    "flops": "flops (multiply-adds)",
    "params": "parameters",
    "acts": "activations",
    "depth": "depth d (blocks)",
    "d": "depth d (blocks)",
    "w0": "initial width w0",
    "wa": "slope wa",
    "wm": "width multiplier wm",
    "b": "bottleneck ratio b",
    "g": "group width g",
    "e_fit": "e_fit (mean |log w/ŵ|)",
    "fit_w0": "initial width w0 (fitted)",
    "fit_wa": "slope wa (fitted)",
    "fit_wm": "width multiplier wm (fitted)",
}
LOG_PARAMS = (
    {"flops", "params", "acts", "w0", "wa", "wm", "g", "fit_w0", "fit_wa", "fit_wm"}
    | {f"w{i}" for i in range(1, 8)}
    | {f"g{i}" for i in range(1, 8)}
    | {"lr", "weight_decay"}  # drawn log-uniformly (NDS §5)
)


def param_label(name: str) -> str:
    if name in PARAM_LABELS:
        return PARAM_LABELS[name]
    if len(name) == 2 and name[0] in "dwbgke" and name[1].isdigit():
        kind = {"d": "depth", "w": "width", "b": "bottleneck ratio", "g": "group width", "k": "kernel",
                "e": "expansion"}[name[0]]  # fmt: skip
        return f"stage {name[1]} {kind} {name}"
    return name


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def linestyle(i: int):
    return LINESTYLES[i % len(LINESTYLES)]


def rc():
    return plt.rc_context(RC)


FORMATS = {".png", ".svg", ".pdf"}


def save(fig, path: str | Path) -> Path:
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise RegspaceError(f"cannot write {p.name}: use a .png, .svg or .pdf file name")
    from regspace.files import replacing

    with rc(), replacing(p) as tmp:  # a reader (a browser, a report) never sees half a figure
        fig.savefig(tmp, format=p.suffix[1:].lower())
    plt.close(fig)
    return p


def svg_text(fig) -> str:
    """The figure as inline SVG markup (for the self-contained report)."""
    buf = io.StringIO()
    with rc():
        # no <metadata> block: no date (reproducible files), no namespace clutter
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]
