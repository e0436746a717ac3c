"""The figures: one function per figure, each returning a matplotlib Figure (save with style.save)."""

from __future__ import annotations

import functools
import math

import matplotlib.pyplot as plt  # noqa: E402  (style has chosen the Agg backend)
import numpy as np
import pandas as pd

from regspace.analysis.compare import space_weights
from regspace.analysis.edf import bootstrap_band, bootstrap_sup_band, dkw_band, edf, edf_steps, normalized_weights
from regspace.analysis.stats import binned_trend, good_range, search_efficiency
from regspace.analysis.table import counts, space_errors
from regspace.errors import RegspaceError
from regspace.plots.style import LOG_PARAMS, colour, error_label, linestyle, param_label, rc
from regspace.schema import HPARAM_COLUMNS, STAGE_PARAM_COLUMNS


def robust_upper(values) -> float:
    """An upper axis limit that keeps far outliers from squashing the rest: Tukey's far-out fence
    (Q3 + 3·IQR), but never below the 90th percentile (at most ~10% of the models fall outside)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 8:
        return float(v.max())
    q1, q3, p90 = np.percentile(v, [25, 75, 90])
    return float(min(v.max(), max(q3 + 3 * (q3 - q1), p90)))


def _clip_note(n: int, limit: float) -> str:
    return f"; {n} model(s) with error above {limit:.1f}% outside the axis" if n else ""


def _subtitle(df: pd.DataFrame) -> str:
    r = df.attrs.get("recipe") or {}
    parts = []
    if r:
        parts.append(
            f"{r.get('dataset', '?')}, recipe {r.get('name', '?')} ({df.attrs.get('recipe_hash')}), "
            f"{r.get('epochs')} epoch(s)"
        )
    return "; ".join(parts)


def _empty_check(df: pd.DataFrame, groups: dict) -> None:
    """Nothing to plot: say why — nothing trained yet, or every model diverged or failed (issue 25 §4)."""
    if any(len(g) for g in groups.values()):
        return
    chosen = df[df.space.isin(list(groups))] if groups else df
    counts = chosen.status.value_counts()
    if chosen.empty or counts.get("pending", 0) == len(chosen):
        raise RegspaceError("no trained models to plot", hint="run `regspace train` first")
    outcomes = ", ".join(f"{counts[s]} {s}" for s in ("diverged", "failed", "pending") if counts.get(s))
    raise RegspaceError(
        f"no trained models to plot: no model of {', '.join(groups) or 'the store'} has a finite error ({outcomes})",
        hint="`regspace status` counts them per space; a diverged model is recorded, not retried",
    )


def plot_edf(
    df: pd.DataFrame,
    *,
    spaces: list[str] | None = None,
    normalize: str | None = None,
    band: bool | str = False,
    n_bins: int = 10,
    n_boot: int = 500,
    seed: int = 0,
    max_points: int = 4000,
):
    """Error EDFs of several spaces on one axis; legend 'space (n | min | mean)' of the sample each curve
    shows (normalised: the draws with non-zero weight, and the weighted mean).

    ``band``: False (none), True or "pointwise" (95 % percentile bootstrap at each error), or
    "simultaneous" (95 % for the whole curve at once: the DKW band for a plain EDF, a bootstrap
    sup-norm band for a normalised one, whose weights DKW does not cover). The title names the band."""
    band = "pointwise" if band is True else (band or None)
    if band not in (None, "pointwise", "simultaneous"):
        raise RegspaceError(f"unknown band {band!r}: use pointwise or simultaneous")
    groups = space_errors(df, spaces)
    _empty_check(df, groups)
    norm: dict = {}
    weights = space_weights(groups, normalize, n_bins=n_bins, info=norm)
    all_e = np.concatenate([g.sweep_error.to_numpy(float) for g in groups.values() if len(g)])
    lo, hi = float(all_e.min()), robust_upper(all_e)
    pad = 0.03 * (hi - lo or 1.0)
    grid = np.linspace(lo - pad, hi + pad, 400)
    with rc():
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for i, (s, g) in enumerate(groups.items()):
            if not len(g):
                continue
            e = g.sweep_error.to_numpy(float)
            w = weights[s]
            x, y = edf_steps(e, w)
            if len(x) > max_points:  # draw a 100k-model EDF on a grid: same picture, fewer vertices
                x = np.linspace(x.min(), x.max(), max_points)
                y = edf(e, np.nextafter(x, np.inf), w)
            m = counts(g)
            kept = m.astype(float) if w is None else np.where(w > 0, m, 0)  # the draws the curve holds
            mean = np.average(e, weights=m if w is None else w)
            label = f"{s} ({int(kept.sum())} | {e[kept > 0].min():.2f} | {mean:.2f})"
            ax.step(
                np.concatenate([[x[0]], x]),
                np.concatenate([[0.0], y]),
                where="post",
                color=colour(i),
                linestyle=linestyle(i),
                linewidth=1.8,
                label=label,
            )
            if band == "simultaneous" and len(e) > 1 and not normalize:
                low, high = dkw_band(e, grid, counts=m)
                ax.fill_between(grid, low, high, step=None, color=colour(i), alpha=0.18, linewidth=0)
            elif band and len(e) > 1:
                fn = None
                if normalize:  # the same range and bins as the curves (resamples may leave a bin empty)
                    rng, bins = (norm["low"], norm["high"]), norm["n_bins"]
                    fn = lambda c, rng=rng, bins=bins: normalized_weights(c, n_bins=bins, value_range=rng, strict=True)  # noqa: E731
                make = bootstrap_band if band == "pointwise" else functools.partial(bootstrap_sup_band, weights=w)
                low, high = make(
                    e,
                    grid,
                    weights_fn=fn,
                    counts=m,
                    n_boot=n_boot,
                    seed=seed,
                    complexity=g[normalize].to_numpy(float) if normalize else None,
                )
                ax.fill_between(grid, low, high, step=None, color=colour(i), alpha=0.18, linewidth=0)
        ax.set_xlim(grid[0], grid[-1])
        ax.set_ylim(0, 1.0)

        ax.set_xlabel(error_label(df))
        ax.set_ylabel("cumulative prob. (fraction of models with lower error)")
        title = "Error EDF" + (f", normalised by {normalize} ({norm['n_bins']} bins)" if normalize else "")
        if band == "pointwise":
            title += " (95% bootstrap band)"
        elif band == "simultaneous":
            title += " (95% simultaneous band: " + ("bootstrap sup-norm)" if normalize else "DKW)")
        ax.set_title(title, loc="left")
        sub = _subtitle(df) + _clip_note(int((all_e > grid[-1]).sum()), grid[-1])
        if norm.get("note"):
            sub += "; " + norm["note"]
        if sub:
            fig.suptitle(sub.lstrip("; "), fontsize=8, color="0.35", x=0.01, ha="left")
        legend_title = "space (draws kept | min | weighted mean)" if normalize else "space (n | min | mean)"
        ax.legend(title=legend_title, loc="lower right", frameon=False)
    return fig


def resolve_params(df: pd.DataFrame, names: list[str]) -> list[str]:
    """Map requested parameters to columns that hold values for these models ('d' -> depth for AnyNet)."""
    out = []
    for n in names:
        col = n
        if n == "d" and ("d" not in df or df["d"].isna().all()):
            col = "depth"
        if n in ("b", "g") and (n not in df or df[n].isna().all()):
            col = f"{n}1"
        if n in ("w0", "wa", "wm") and (n not in df or df[n].isna().all()) and f"fit_{n}" in df:
            col = f"fit_{n}"  # an AnyNet model's quantised linear fit
        if col not in df.columns or df[col].isna().all():
            avail = [
                c
                for c in ["d", "depth", "w0", "wa", "wm", "b", "g", "flops", "params", "acts"]
                + list(STAGE_PARAM_COLUMNS)
                + list(HPARAM_COLUMNS)
                if c in df and df[c].notna().any()
            ]
            raise RegspaceError(f"no parameter {n!r} for these models", hint=f"available: {', '.join(avail)}")
        out.append(col)
    return list(dict.fromkeys(out))


def default_params(df: pd.DataFrame) -> list[str]:
    if "w0" in df and df.w0.notna().all():
        names = ["d", "w0", "wa", "wm", "g", "b", "flops"]
        names = [n for n in names if not (n in ("b", "g") and df[n].nunique() <= 1)]
    else:
        names = [c for c in STAGE_PARAM_COLUMNS if c[0] in "dw"]
        names += ["b" if df["b"].notna().all() else "b1", "g" if df["g"].notna().all() else "g1"]
        names += [c for c in STAGE_PARAM_COLUMNS if c[0] in "ke"] + ["flops"]
    names += list(HPARAM_COLUMNS)  # recipe fields drawn per model (null, so left out, where none were)
    return resolve_params(df, [n for n in names if n in df and df[n].notna().any()])


def plot_scatter(df: pd.DataFrame, *, space: str, params: list[str] | None = None, n_boot: int = 2500, seed: int = 0):
    """Error against each parameter: points, binned median, and the bootstrap good range shaded."""
    g = space_errors(df, [space])[space]
    if not len(g):
        raise RegspaceError(f"no trained models of space {space} to plot", hint="run `regspace train` first")
    wants_fit = {"w0", "wa", "wm", "e_fit"} & set(params or [])
    if wants_fit and not ("w0" in g and g.w0.notna().all()):
        from regspace.analysis.fit import fit_frame

        g = g.join(fit_frame(g)[["fit_w0", "fit_wa", "fit_wm", "e_fit"]])
    cols = resolve_params(g, params) if params else default_params(g)
    n = len(cols)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    e = g.sweep_error.to_numpy(float)
    top = robust_upper(e)
    shown = np.minimum(e, top)
    clipped = e > top
    m = counts(g)
    n_bins = int(min(8, max(3, len(e) // 6)))
    with rc():
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), squeeze=False, sharey=True)
        for k, col in enumerate(cols):
            ax = axes[k // ncols][k % ncols]
            v = g[col].to_numpy(float)
            log = col in LOG_PARAMS and np.nanmin(v) > 0 and np.nanmax(v) / np.nanmin(v) > 8
            rng = good_range(v, e, counts=m, n_boot=n_boot, seed=seed)
            ax.axvspan(rng["low"], rng["high"], color=colour(2), alpha=0.15, linewidth=0, label="good range (95%)")
            ax.axvline(rng["median"], color=colour(2), linewidth=1.2, linestyle="--", label="bootstrap median")
            trend = binned_trend(v, e, counts=m, n_bins=n_bins, log=log)
            keep = np.isfinite(trend["median"])
            ax.plot(
                trend["centre"][keep],
                np.minimum(trend["median"][keep], top),
                color=colour(1),
                linewidth=1.3,
                alpha=0.9,
                label="binned median",
                zorder=2,
            )
            size = 14 if len(v) < 200 else 7
            ax.scatter(
                v[~clipped],
                shown[~clipped],
                s=size,
                color=colour(0),
                alpha=0.7 if len(v) < 200 else 0.4,
                linewidths=0,
                label="model",
                zorder=3,
            )
            if clipped.any():
                ax.scatter(v[clipped], shown[clipped], s=size * 1.5, marker="^", color=colour(0), zorder=3)
            if log:
                ax.set_xscale("log", base=2 if col not in ("flops", "params", "acts") else 10)
            _tick_format(ax, col, log)
            ax.set_xlabel(param_label(col))
            ax.set_title(f"{col}: {_fmt(rng['low'])} – {_fmt(rng['high'])}", fontsize=9, loc="left")
            if k % ncols == 0:
                ax.set_ylabel(error_label(df))
        for k in range(n, nrows * ncols):
            axes[k // ncols][k % ncols].set_visible(False)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False, fontsize=8)
        above = f"; ▲ {int(clipped.sum())} model(s) above {top:.1f}% drawn at the top" if clipped.any() else ""
        fig.suptitle(
            f"{space}: error against each parameter (n = {m.sum()} draws of {len(g)} networks; "
            "shaded: likely-best range, "
            f"empirical bootstrap B = {n_boot}){above}",
            fontsize=10,
            x=0.01,
            ha="left",
        )
    return fig


def _tick_format(ax, col: str, log: bool) -> None:
    """Plain numbers on log axes (8, 16, 32 rather than 2^3 …); 360M rather than 3.6e8."""
    from matplotlib.ticker import EngFormatter, FuncFormatter

    if col in ("flops", "params", "acts"):
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))
    elif log:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))


def _fmt(x: float) -> str:
    if not np.isfinite(x):
        return "-"
    if abs(x) >= 1e5:
        from regspace.units import format_quantity

        return format_quantity(x)
    return f"{x:.3g}"


def plot_widths(df: pd.DataFrame, *, space: str, top: int = 8):
    """Per-block widths of the best models against block index (log2 axis), one panel each, with the
    RegNet line u_j = w0 + wa·j (RegNet spaces) or the quantised linear fit (AnyNet)."""
    from matplotlib.ticker import FuncFormatter

    from regspace.analysis.fit import fit_widths

    g = space_errors(df, [space])[space].sort_values("sweep_error").head(top)
    if not len(g):
        raise RegspaceError(f"no trained models of space {space} to plot", hint="run `regspace train` first")
    regnet = "w0" in g and g.w0.notna().all()
    n = len(g)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    with rc():
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols, 2.5 * nrows + 0.4), squeeze=False, sharey=True)
        for i, (_, r) in enumerate(g.iterrows()):
            ax = axes[i // ncols][i % ncols]
            depths = np.asarray(r.stage_depths)
            w = np.repeat(np.asarray(r.stage_widths), depths)
            j = np.arange(len(w))
            fit = fit_widths(w, np.repeat(r.stage_bottleneck_ratios, depths), np.repeat(r.stage_group_widths, depths))
            if regnet:
                u = r.w0 + r.wa * j
            else:
                u = fit["w0"] + fit["wa"] * j
            ax.step(
                np.append(j, len(w)),
                np.append(w, w[-1]),
                where="post",
                color=colour(0),
                linewidth=1.8,
                label="widths w_j",
            )
            ax.plot(
                j,
                u,
                color=colour(1),
                linestyle="--",
                linewidth=1.2,
                label="RegNet line u_j" if regnet else "fitted line u_j",
            )
            ax.set_yscale("log", base=2)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
            ax.set_title(f"#{i + 1}: {r.sweep_error:.2f}% · e_fit {fit['e_fit']:.2f}", fontsize=9, loc="left")
            if i // ncols == nrows - 1 or i + ncols >= n:
                ax.set_xlabel("block index j")
            if i % ncols == 0:
                ax.set_ylabel("width (channels)")
        for k in range(n, nrows * ncols):
            axes[k // ncols][k % ncols].set_visible(False)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False, fontsize=8)
        fig.suptitle(
            f"{space}: per-block widths of the {n} best models (rank: validation error)", fontsize=10, x=0.01, ha="left"
        )
    return fig


def plot_fit(df: pd.DataFrame, *, spaces: list[str] | None = None, fits: pd.DataFrame | None = None):
    """Error against e_fit, the distance of each model's widths from the closest quantised RegNet."""
    from regspace.analysis.fit import fit_frame

    groups = space_errors(df, spaces)
    _empty_check(df, groups)
    all_e = np.concatenate([g.sweep_error.to_numpy(float) for g in groups.values() if len(g)])
    top = robust_upper(all_e)
    with rc():
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for i, (s, g) in enumerate(groups.items()):
            if not len(g):
                continue
            f = fits.loc[g.index] if fits is not None else fit_frame(g)
            ax.scatter(
                f.e_fit,
                np.minimum(g.sweep_error, top),
                s=22 if len(g) < 200 else 8,
                color=colour(i),
                alpha=0.75,
                marker="osD^v<>"[i % 7],
                linewidths=0,
                label=f"{s} (n={counts(g).sum()}, median e_fit {np.median(np.repeat(f.e_fit, counts(g))):.3f})",
            )
        ax.set_xlabel(param_label("e_fit"))
        ax.set_ylabel(error_label(df))
        ax.set_title("Error against distance from the nearest quantised linear (RegNet) widths", loc="left")
        if (all_e > top).any():
            ax.set_ylim(top=top + 0.03 * (top - all_e.min()))
            fig.suptitle(
                _clip_note(int((all_e > top).sum()), top).lstrip("; "), fontsize=8, color="0.35", x=0.01, ha="left"
            )
        ax.legend(frameon=False, fontsize=8)
    return fig


def plot_search(
    df: pd.DataFrame,
    *,
    spaces: list[str] | None = None,
    method: str = "nds",
    normalize: str | None = None,
    n_bins: int = 10,
):
    """Random-search efficiency: the best error among k random models of each space.

    ``method="nds"`` (the papers'): k draws with replacement, weighted (``normalize``: NDS's
    complexity-normalised weights), mean ± 2 std, computed exactly. ``method="order"``: k distinct
    draws without replacement, exact order statistics, median with a 25–75 % band."""
    from regspace.analysis.stats import search_efficiency_nds

    if method not in ("nds", "order"):
        raise RegspaceError(f"unknown search-efficiency method {method!r}: use nds or order")
    groups = space_errors(df, spaces)
    _empty_check(df, groups)
    weights = space_weights(groups, normalize, n_bins=n_bins) if method == "nds" and normalize else {}
    with rc():
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for i, (s, g) in enumerate(groups.items()):
            if not len(g):
                continue
            e = g.sweep_error.to_numpy(float)
            if method == "nds":
                r = search_efficiency_nds(e, weights=weights.get(s), counts=counts(g))
                centre, low, high = r["mean"], r["low"], r["high"]
            else:
                r = search_efficiency(e, counts=counts(g))
                centre, low, high = r["median"], r["q25"], r["q75"]
            ax.plot(
                r["k"],
                centre,
                color=colour(i),
                linestyle=linestyle(i),
                marker="o",
                markersize=3,
                linewidth=1.6,
                label=f"{s} (n={r['n']})",
            )
            ax.fill_between(r["k"], low, high, color=colour(i), alpha=0.15, linewidth=0)
        ax.set_xscale("log", base=2)
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.set_xlabel("models trained, k (random search)")
        ax.set_ylabel("best " + error_label(df))
        if method == "nds":
            how = "NDS: k draws with replacement" + (f", {normalize}-normalised" if normalize else "")
            ax.set_title(f"Random-search efficiency ({how}); mean ± 2 std, exact", loc="left", fontsize=9)
        else:
            ax.set_title(
                "Random-search efficiency (k distinct models, exact order statistics); median, 25–75%",
                loc="left",
                fontsize=9,
            )
        ax.legend(frameon=False)
    return fig


def curve_picks(g: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    """The best, median and worst model of a space by its sweep error (median: the lower middle one)."""
    g = g.sort_values(["sweep_error", "model_id"], kind="stable")
    picks = [("best", g.iloc[0]), ("median", g.iloc[(len(g) - 1) // 2]), ("worst", g.iloc[-1])]
    return picks[:1] if len(g) == 1 else picks


def plot_curves(df: pd.DataFrame, *, spaces: list[str] | None = None, max_background: int = 200):
    """Per space: validation error against epoch for the best, median and worst model by final error,
    over every other model's curve in grey."""
    groups = space_errors(df, spaces)
    with_curves = {
        s: g[[c is not None and not isinstance(c, float) and len(c) > 0 for c in g["val_errors"]]]
        if "val_errors" in g
        else g.iloc[:0]
        for s, g in groups.items()
    }
    with_curves = {s: g for s, g in with_curves.items() if len(g)}
    if not with_curves:
        raise RegspaceError(
            "no learning curves to plot",
            hint="results written before store schema 4 have none; train with this regspace to record them",
        )
    n = len(with_curves)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    styles = {"best": ("tab:green", "-"), "median": ("tab:blue", "--"), "worst": ("tab:red", ":")}
    all_curves = [np.asarray(c, float) for g in with_curves.values() for c in g["val_errors"]]
    top = robust_upper(np.concatenate(all_curves))
    low = min(float(c.min()) for c in all_curves)
    with rc():
        fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), sharex=True, sharey=True, squeeze=False)
        for ax, (s, g) in zip(axes.flat, with_curves.items()):
            background = g if len(g) <= max_background else g.sample(max_background, random_state=0)
            for c in background["val_errors"]:
                ax.plot(np.arange(1, len(c) + 1), c, color="0.75", linewidth=0.6, alpha=0.5, zorder=1)
            for label, r in curve_picks(g):
                c = np.asarray(r["val_errors"], float)
                colour_, style = styles[label]
                ax.plot(
                    np.arange(1, len(c) + 1), c, color=colour_, linestyle=style, marker="o", markersize=3,
                    linewidth=1.6, label=f"{label} ({c[-1]:.2f})", zorder=3,
                )  # fmt: skip
            ax.set_title(f"{s} ({len(g)} networks)", loc="left")
            ax.legend(frameon=False, fontsize=7, loc="upper right")
            ax.set_ylim(low - 0.5, top + 0.5)
        for ax in axes.flat[n:]:
            ax.set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel("epoch")
        for ax in axes[:, 0]:
            ax.set_ylabel("validation top-1 error (%)")
        ax0 = axes.flat[0]
        ax0.xaxis.get_major_locator().set_params(integer=True)
        sub = _subtitle(df)
        fig.suptitle(
            "Learning curves: best, median and worst model by final error" + (f"\n{sub}" if sub else ""),
            fontsize=9,
            x=0.01,
            ha="left",
        )
    return fig


def plot_fidelity(result: dict):
    """Short-recipe error against long-recipe error of the same models, one colour per space."""
    pairs = pd.DataFrame(result["pairs"])
    with rc():
        fig, ax = plt.subplots(figsize=(5.2, 4.4))
        for i, s in enumerate(dict.fromkeys(pairs.space)):
            g = pairs[pairs.space == s]
            ax.scatter(g.short, g.long, s=22, color=colour(i), label=f"{s} ({len(g)})", alpha=0.85)
        ax.set_xlabel(f"short recipe ({result['short_recipe']}): final validation error (%)")
        ax.set_ylabel(f"long recipe ({result['long_recipe']}): final validation error (%)")
        lo, hi = result["spearman_ci"]
        ax.set_title(
            f"Spearman {result['spearman']:.2f} [{lo:.2f}, {hi:.2f}], Kendall {result['kendall']:.2f}", loc="left"
        )
        ax.legend(frameon=False, fontsize=8)
    return fig
