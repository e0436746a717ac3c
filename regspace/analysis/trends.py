"""Trends across flops regimes (DDS §4, Fig. 11): how the best models' parameters change with flops.

A study with ``regimes`` draws each (space, regime) as its own population (regspace/population.py).
For each space and each of its sampled parameters (RegNet: d, w0, wa, wm, g, b; AnyNet: the per-stage
d_i, w_i, b_i, g_i; and recipe fields drawn per model, such as lr), :func:`regime_trends` gives per regime

- the parameter of the best model (lowest error) and of the top 20 % (their median), each with a
  percentile bootstrap interval (scipy.stats.bootstrap, the regime's draws resampled in pairs
  (error, value), so the interval includes which models make the top);

and across regimes the slope of log(parameter) against log(flops) over the top-20 % draws of every
regime, with its confidence interval, and one sentence (:func:`trend_word` is the rule, defined once);
beside it the same slope over every draw, since a budget alone moves some parameters for all models.

The slope is least squares (scipy.stats.linregress; CI from its standard error and Student's t with
n − 2 degrees of freedom). Not Theil–Sen: these parameters are quantised (integer depths, widths on a
grid, group widths and bottleneck ratios powers of two), so most pairs of models of one regime have
tied values and slope 0, and the median of pairwise slopes is pulled towards 0 — in a simulation of
three regimes with a true slope of 0.3 and power-of-two values, theilslopes averaged 0.21 and its 95 %
CI covered 0.3 in 44 % of runs, linregress 0.30 and 96 % (tests/test_trends.py repeats it).

Pure: frames in, dicts out; no store, no plotting.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from regspace.analysis.table import counts, trained
from regspace.design import MAX_STAGES
from regspace.population import split_population
from regspace.schema import HPARAM_COLUMNS

TOP = 0.2  # the "top models" of a regime: this share of its draws, lowest error first
CONFIDENCE = 0.95
# A slope (log parameter per log flops) is called flat when its whole CI lies within ±FLAT_SLOPE: the
# parameter then changes by less than 10**0.1 ≈ 1.26× per 10× flops. One rule, used by every sentence.
FLAT_SLOPE = 0.1
MIN_PER_REGIME = 3  # draws a regime needs to take part (its top 20 % is then at least one model)
REGNET_PARAMS = ("d", "w0", "wa", "wm", "g", "b")
ANYNET_PARAMS = tuple(f"{p}{i}" for i in range(1, MAX_STAGES + 1) for p in "dwbg")
# recipe fields drawn with the architecture (NDS §5; schema.HPARAM_COLUMNS): does the best lr move with flops?
HPARAMS = HPARAM_COLUMNS
NAMES = {"d": "depth d", "w0": "initial width w0", "wa": "width slope wa", "wm": "width multiplier wm",
         "g": "group width g", "b": "bottleneck ratio b", "lr": "learning rate lr",
         "weight_decay": "weight decay", "momentum": "momentum", "label_smoothing": "label smoothing"}  # fmt: skip


def parameter_name(p: str) -> str:
    """A parameter's words: "depth d", or for a stage parameter "stage 2 width w2"."""
    if p in NAMES:
        return NAMES[p]
    kind = {"d": "depth", "w": "width", "b": "bottleneck ratio", "g": "group width"}[p[0]]
    return f"stage {p[1:]} {kind} {p}"


def trend_word(low: float, high: float, flat: float = FLAT_SLOPE) -> str:
    """The verdict on a slope from its CI [low, high]: "grows" (low > 0), "shrinks" (high < 0), "does not
    change" (the CI holds 0 and lies within ±``flat``), else "not resolved" (holds 0 but is too wide to
    rule out a trend). NaN bounds: "not resolved"."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "not resolved"
    if low > 0:
        return "grows"
    if high < 0:
        return "shrinks"
    return "does not change" if -flat <= low and high <= flat else "not resolved"


def slope(log_flops, log_values, *, confidence: float = CONFIDENCE) -> dict:
    """Least-squares slope of ``log_values`` on ``log_flops`` (1-D arrays, natural logs) with its CI:
    {"slope", "low", "high", "intercept", "n"}; NaN bounds with fewer than 3 points or no spread in x.
    A constant parameter has slope 0 with a zero-width CI."""
    x, y = np.asarray(log_flops, float), np.asarray(log_values, float)
    n = len(x)
    out = {"slope": math.nan, "low": math.nan, "high": math.nan, "intercept": math.nan, "n": int(n)}
    if n < 3 or np.ptp(x) == 0:
        return out
    fit = stats.linregress(x, y)
    t = stats.t.ppf(0.5 + confidence / 2, n - 2)
    half = t * fit.stderr
    out.update(slope=float(fit.slope), intercept=float(fit.intercept), low=float(fit.slope - half),
               high=float(fit.slope + half))  # fmt: skip
    return out


def top_mask(errors, top: float = TOP) -> np.ndarray:
    """The top ``top`` share of draws by error (at least one; ties broken by position): a boolean mask."""
    e = np.asarray(errors, float)
    k = max(1, int(math.ceil(top * len(e))))
    mask = np.zeros(len(e), bool)
    mask[np.argsort(e, kind="stable")[:k]] = True
    return mask


def _interval(errors, values, statistic, *, confidence, n_boot, seed) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(errors, values)`` over the draws resampled in pairs."""
    if len(errors) < 2 or np.ptp(values) == 0:
        v = float(statistic(errors, values))
        return v, v  # a parameter all draws share: no uncertainty to show
    res = stats.bootstrap((errors, values), statistic, paired=True, vectorized=True, n_resamples=n_boot,
                          confidence_level=confidence, method="percentile",
                          random_state=np.random.default_rng(seed))  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def space_parameters(frame: pd.DataFrame) -> list[str]:
    """The sampled parameters a space's rows carry: RegNet's (d, w0, wa, wm, g, b) or AnyNet's per-stage
    ones, and the recipe fields drawn with them (lr, …), each present (non-null, positive) in every row; a
    parameter the space fixes (one value in every row) has no trend to show and is left out, and so is a
    per-stage column that repeats one already kept (X_c's shared b is b1 … b4: one parameter, not five)."""
    out, kept = [], []
    for p in (*REGNET_PARAMS, *ANYNET_PARAMS, *HPARAMS):
        if p not in frame:
            continue
        v = pd.to_numeric(frame[p], errors="coerce")
        if v.notna().all() and (v > 0).all() and v.nunique() > 1:
            values = v.to_numpy(float)
            if any(np.array_equal(values, k) for k in kept):
                continue
            kept.append(values)
            out.append(p)
    return out


def regime_trends(
    df: pd.DataFrame,
    *,
    top: float = TOP,
    confidence: float = CONFIDENCE,
    n_boot: int = 2000,
    seed: int = 0,
    params: list[str] | None = None,
) -> dict:
    """The best models' parameters across flops regimes, per space.

    ``df``: the analysis table (analysis_io.load_table) or any frame with ``space`` (a space, or a
    population "<space>@<regime>"), ``regime`` (the band, e.g. "2M:4M"), ``flops``, ``sweep_error``,
    ``status``, optionally ``multiplicity`` (draws; 1 if absent) and the parameter columns. Only trained
    rows count. ``params``: the parameters to read (default: :func:`space_parameters` per space).

    Returns {"top", "confidence", "flat_slope", "spaces": [{"space", "regimes": [{"regime", "n", "n_top",
    "flops" (median flops of its top draws), "flops_low", "flops_high" (their range)}], "params": [{"param",
    "name", "regimes": [{"regime", "flops", "best", "best_low", "best_high", "top", "top_low", "top_high"}],
    "slope", "low", "high", "n", "trend", "sentence", "all": {"slope", "low", "high", "n"} (the same fit
    over every draw, not only the top)}], "left_out": [sentences]}]}. A space with fewer
    than two regimes of at least MIN_PER_REGIME draws gets no params and a sentence in "left_out".
    """
    ok = trained(df).copy()
    if "regime" not in ok:
        ok["regime"] = None
    names = [split_population(s) for s in ok["space"]]
    ok["base"] = [b for b, _ in names]
    ok["regime"] = [r if isinstance(r, str) and r else reg for r, (_, reg) in zip(ok["regime"], names)]
    ok["_m"] = counts(ok)
    out = {"top": top, "confidence": confidence, "flat_slope": FLAT_SLOPE, "spaces": []}
    for space in dict.fromkeys(ok["base"]):
        rows = ok[(ok["base"] == space) & ok["regime"].notna()]
        entry = {"space": space, "regimes": [], "params": [], "left_out": []}
        out["spaces"].append(entry)
        regimes = sorted(dict.fromkeys(rows["regime"]), key=lambda r: rows.loc[rows.regime == r, "flops"].median())
        draws = {}
        for r in regimes:
            g = rows[rows.regime == r]
            idx = np.repeat(np.arange(len(g)), g["_m"].to_numpy())
            d = g.iloc[idx]
            if len(d) < MIN_PER_REGIME:
                entry["left_out"].append(f"{space}: regime {r} has {len(d)} trained draw(s); a regime needs "
                                         f"{MIN_PER_REGIME}")  # fmt: skip
                continue
            mask = top_mask(d["sweep_error"].to_numpy(), top)
            draws[r] = (d, mask)
            f = d["flops"].to_numpy(float)[mask]
            entry["regimes"].append({"regime": r, "n": len(d), "n_top": int(mask.sum()), "flops": float(np.median(f)),
                                     "flops_low": float(f.min()), "flops_high": float(f.max())})  # fmt: skip
        if len(draws) < 2:
            entry["left_out"].append(f"{space}: trends need two or more regimes with trained draws "
                                     f"(it has {len(draws)})")  # fmt: skip
            continue
        chosen = params or space_parameters(rows)
        if not chosen:
            entry["left_out"].append(f"{space}: no sampled parameter (RegNet's d, w0, wa, wm, g, b or AnyNet's "
                                     f"per-stage d_i, w_i, b_i, g_i) varies across its models")  # fmt: skip
        for p in chosen:
            entry["params"].append(_param_trend(space, p, draws, entry["regimes"], top=top, confidence=confidence,
                                                n_boot=n_boot, seed=seed))  # fmt: skip
    return out


def _param_trend(space, p, draws, regimes, *, top, confidence, n_boot, seed) -> dict:
    per_regime, xs, ys, all_x, all_y = [], [], [], [], []
    for info in regimes:
        d, mask = draws[info["regime"]]
        e = d["sweep_error"].to_numpy(float)
        v = d[p].to_numpy(float)

        def best(e_, v_, axis=-1):  # vectorised over resamples (rows): the value at the lowest error
            return np.take_along_axis(v_, np.argmin(e_, axis=axis)[..., None], axis=-1)[..., 0]

        def top_median(e_, v_, axis=-1):  # the median value of the ceil(top·n) lowest errors, as top_mask
            k = max(1, math.ceil(top * e_.shape[-1]))
            order = np.argsort(e_, axis=-1, kind="stable")[..., :k]
            return np.median(np.take_along_axis(v_, order, axis=-1), axis=-1)

        b_lo, b_hi = _interval(e, v, best, confidence=confidence, n_boot=n_boot, seed=seed)
        t_lo, t_hi = _interval(e, v, top_median, confidence=confidence, n_boot=n_boot, seed=seed)
        per_regime.append({"regime": info["regime"], "flops": info["flops"], "best": float(best(e, v)),
                           "best_low": b_lo, "best_high": b_hi, "top": float(top_median(e, v)), "top_low": t_lo,
                           "top_high": t_hi})  # fmt: skip
        xs.append(np.log(d["flops"].to_numpy(float)[mask]))
        ys.append(np.log(v[mask]))
        all_x.append(np.log(d["flops"].to_numpy(float)))
        all_y.append(np.log(v))
    s = slope(np.concatenate(xs), np.concatenate(ys), confidence=confidence)
    # The same fit over every draw: a budget pushes some parameters up for all models, and the top slope
    # says something about the best models only where it differs from this one.
    s_all = slope(np.concatenate(all_x), np.concatenate(all_y), confidence=confidence)
    word = trend_word(s["low"], s["high"])
    sentence = trend_sentence(space, p, word, s, top=top, confidence=confidence, n_regimes=len(regimes))
    top_values = np.exp(np.concatenate(ys))
    if len(top_values) and np.ptp(top_values) == 0:  # least squares has no error to fit: say what was seen
        sentence = (f"{space}: the best models (top {top:.0%} of each regime, {len(top_values)} draws in "
                    f"{len(regimes)} regimes) all have {parameter_name(p)} = {top_values[0]:g}: no trend can be "
                    "measured from them.")  # fmt: skip
    return {"param": p, "name": parameter_name(p), "regimes": per_regime, **s, "trend": word, "sentence": sentence,
            "all": {k: s_all[k] for k in ("slope", "low", "high", "n")}}  # fmt: skip


def trend_sentence(space: str, p: str, word: str, s: dict, *, top: float, confidence: float, n_regimes: int) -> str:
    """The Findings sentence of one parameter's trend (``word`` from :func:`trend_word`)."""
    ci = f"{confidence:.0%} CI [{s['low']:.2f}, {s['high']:.2f}]"
    what = f"{space}: the {parameter_name(p)} of the best models (top {top:.0%} of each regime)"
    numbers = f"slope of log {p} on log flops {s['slope']:.2f}, {ci}, over {s['n']} draws in {n_regimes} regimes"
    if word == "does not change":
        return f"{what} does not change across regimes ({numbers}; within ±{FLAT_SLOPE} counts as flat)."
    if word == "not resolved":
        return (f"{what}: a trend across regimes is not resolved ({numbers}; flat needs the CI within "
                f"±{FLAT_SLOPE}).")  # fmt: skip
    return f"{what} {word} with flops ({numbers}: ×{10 ** s['slope']:.2f} per 10× flops)."


def sentences(result: dict) -> list[str]:
    """Every Findings sentence of :func:`regime_trends`'s result, space by space."""
    return [x for sp in result["spaces"] for x in [*(p["sentence"] for p in sp["params"]), *sp["left_out"]]]


def every_draw_slope(p: dict) -> str:
    """A parameter's slope over every draw with its CI, as the trends table and the report print it."""
    a = p["all"]
    return f"{a['slope']:.2f} [{a['low']:.2f}, {a['high']:.2f}]"


def table(result: dict) -> tuple[list[str], list[list]]:
    """The result as one table: a row per (space, parameter, regime), with the slope on each row."""
    header = ["space", "parameter", "regime", "flops", "best [CI]", "top median [CI]", "slope [CI]", "trend",
              "every draw's slope [CI]"]  # fmt: skip
    rows = []
    for s in result["spaces"]:
        for p in s["params"]:
            for x in p["regimes"]:
                rows.append([s["space"], p["param"], x["regime"], f"{x['flops']:.3g}",
                             f"{x['best']:.3g} [{x['best_low']:.3g}, {x['best_high']:.3g}]",
                             f"{x['top']:.3g} [{x['top_low']:.3g}, {x['top_high']:.3g}]",
                             f"{p['slope']:.2f} [{p['low']:.2f}, {p['high']:.2f}]", p["trend"],
                             every_draw_slope(p)])  # fmt: skip
    return header, rows
