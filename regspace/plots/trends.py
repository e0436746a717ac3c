"""Figures of trends across flops regimes (DDS Fig. 11) and of inference time against complexity (Fig. 12)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from regspace.analysis.table import trained
from regspace.errors import RegspaceError
from regspace.plots.style import colour, param_label, rc


def plot_trends(result: dict, *, space: str | None = None):
    """One panel per parameter of one space (the first of ``result`` by default): the best model's value
    (points) and the top models' median (line, shaded: its bootstrap interval) per regime against the
    regime's flops, log axes, with the fitted log–log line. ``result``: analysis.trends.regime_trends."""
    entries = [s for s in result["spaces"] if s["params"] and (space is None or s["space"] == space)]
    if not entries:
        raise RegspaceError("no trends to plot: a space needs two or more regimes with trained models")
    entry = entries[0]
    params = entry["params"]
    ncols = min(3, len(params))
    nrows = math.ceil(len(params) / ncols)
    with rc():
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.8 * nrows), squeeze=False)
        for k, p in enumerate(params):
            ax = axes[k // ncols][k % ncols]
            rs = p["regimes"]
            x = np.array([r["flops"] for r in rs])
            ax.fill_between(
                x,
                [r["top_low"] for r in rs],
                [r["top_high"] for r in rs],
                color=colour(0),
                alpha=0.18,
                linewidth=0,
                label=f"top {result['top']:.0%} median ({result['confidence']:.0%} CI)",
            )
            ax.plot(x, [r["top"] for r in rs], color=colour(0), marker="o", markersize=3)
            best = np.array([r["best"] for r in rs])
            yerr = np.array([[r["best"] - r["best_low"] for r in rs], [r["best_high"] - r["best"] for r in rs]])
            ax.errorbar(x * 1.04, best, yerr=np.maximum(yerr, 0), fmt="s", color=colour(1), markersize=4,
                        capsize=2, linewidth=1, label="best model")  # fmt: skip
            if math.isfinite(p["slope"]):
                xx = np.geomspace(x.min(), x.max(), 20)
                ax.plot(xx, np.exp(p["intercept"] + p["slope"] * np.log(xx)), color="0.3", linestyle="--",
                        linewidth=1, label=f"fit: slope {p['slope']:.2f} ({p['trend']})")  # fmt: skip
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # the regimes' few decades: major ticks only
            if min(r["top_low"] for r in rs) > 0 and max(r["top_high"] for r in rs) / min(r["top_low"] for r in rs) > 8:
                ax.set_yscale("log")
            ax.set_xlabel("flops (median of the top models)")
            ax.set_ylabel(param_label(p["param"]))
            ax.legend(fontsize=7, loc="best")
        for k in range(len(params), nrows * ncols):
            axes[k // ncols][k % ncols].axis("off")
        fig.suptitle(f"{entry['space']}: best models' parameters across flops regimes")
    return fig


def plot_speed(df: pd.DataFrame):
    """Inference time per image against flops, params and activations (log axes), one colour per device."""
    if "inference_images_per_second" not in df:
        raise RegspaceError("no inference speeds in these results (trained before store schema 6)")
    ok = trained(df)
    ok = ok[pd.to_numeric(ok["inference_images_per_second"], errors="coerce") > 0].drop_duplicates("model_id")
    if not len(ok):
        raise RegspaceError("no trained model has a measured inference speed")
    device = ok["device"].fillna("unknown device") if "device" in ok else pd.Series("unknown device", ok.index)
    with rc():
        fig, axes = plt.subplots(1, 3, figsize=(10, 3), squeeze=False, sharey=True)
        for i, (dev, g) in enumerate(ok.groupby(device, sort=False)):
            t = 1000.0 / g["inference_images_per_second"].to_numpy(float)
            for ax, m in zip(axes[0], ("flops", "acts", "params")):
                ax.scatter(g[m].to_numpy(float), t, s=10, color=colour(i), alpha=0.7, label=str(dev)[:40])
        for ax, m in zip(axes[0], ("flops", "acts", "params")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(param_label(m))
        axes[0][0].set_ylabel("inference time (ms per image)")
        axes[0][0].legend(fontsize=7)
    return fig
