"""Inference time against complexity (DDS §4, Fig. 12): does flops, params or activations predict speed?

Each result records its model's inference throughput (``inference_images_per_second``: forward only,
a fixed batch, warm, on the device that trained it; regspace/train/fit.py ``inference_speed``). Here the
time per image (ms) is rank-correlated with flops, params and activations: Spearman's ρ
(scipy.stats.spearmanr) with a Fisher-z interval whose standard error is Bonett and Wright's (2000)
√((1 + ρ²/2)/(n − 3)) for Spearman's ρ (the plain 1/√(n − 3) is Pearson's and too narrow for ρ); and
whether activations predict it better than flops: a paired percentile bootstrap (scipy.stats.bootstrap)
of ρ(acts, time) − ρ(flops, time) over the models.

Speed is a property of a network, not of a draw: each network counts once. Throughputs measured on
different devices are not comparable, so each device (its ``device`` text) is analysed on its own.
Pure: frames in, dicts out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from regspace.analysis.table import trained

MEASURES = ("flops", "params", "acts")
NAMES = {"flops": "flops", "params": "parameters", "acts": "activations"}
CONFIDENCE = 0.95
MIN_MODELS = 5  # Fisher z needs n > 3; below 5 an interval says nothing


def spearman_ci(x, y, *, confidence: float = CONFIDENCE) -> dict:
    """Spearman's ρ of ``x`` and ``y`` (1-D, same length) with a Fisher-z CI (Bonett–Wright standard
    error): {"rho", "low", "high", "n"}; NaN with fewer than 4 pairs or a constant input."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    out = {"rho": math.nan, "low": math.nan, "high": math.nan, "n": int(n)}
    if n < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    rho = float(stats.spearmanr(x, y).statistic)
    z = math.atanh(min(max(rho, -0.999999), 0.999999))
    se = math.sqrt((1 + rho**2 / 2) / (n - 3))
    q = stats.norm.ppf(0.5 + confidence / 2)
    out.update(rho=rho, low=math.tanh(z - q * se), high=math.tanh(z + q * se))
    return out


def _rho(a, b) -> float:
    return float(stats.spearmanr(a, b).statistic)


def _rho_along(a, b, axis=-1):
    """Spearman's ρ along ``axis`` for many resamples at once: Pearson's r of the (mid-)ranks, as
    spearmanr computes it (tests compare the two)."""
    ra = stats.rankdata(a, axis=axis)
    rb = stats.rankdata(b, axis=axis)
    ra = ra - ra.mean(axis=axis, keepdims=True)
    rb = rb - rb.mean(axis=axis, keepdims=True)
    return (ra * rb).sum(axis=axis) / np.sqrt((ra**2).sum(axis=axis) * (rb**2).sum(axis=axis))


def rho_difference(time, a, b, *, confidence: float = CONFIDENCE, n_boot: int = 2000, seed: int = 0) -> dict:
    """ρ(b, time) − ρ(a, time) with a paired percentile bootstrap CI over the models:
    {"difference", "low", "high"} (NaN when a resample leaves a constant column)."""
    t, a, b = (np.asarray(v, float) for v in (time, a, b))
    diff = _rho(b, t) - _rho(a, t)

    def stat(t_, a_, b_, axis=-1):
        return _rho_along(b_, t_, axis) - _rho_along(a_, t_, axis)

    with np.errstate(invalid="ignore", divide="ignore"):
        res = stats.bootstrap((t, a, b), stat, paired=True, vectorized=True, n_resamples=n_boot,
                              confidence_level=confidence, method="percentile",
                              random_state=np.random.default_rng(seed))  # fmt: skip
    return {"difference": diff, "low": float(res.confidence_interval.low), "high": float(res.confidence_interval.high)}


def speed_correlations(df: pd.DataFrame, *, confidence: float = CONFIDENCE, n_boot: int = 2000, seed: int = 0) -> dict:
    """Inference time against flops, params and activations, per device.

    ``df``: rows with ``status``, ``sweep_error``, ``model_id``, ``flops``, ``params``, ``acts``,
    ``inference_images_per_second`` and ``device`` (the analysis table). Trained rows with a positive
    throughput count, one per network. Returns {"confidence", "devices": [{"device", "n", "time_ms"
    (median), "measures": {measure: spearman_ci}, "acts_vs_flops": rho_difference, "sentences"}],
    "left_out": [sentences]}.
    """
    out = {"confidence": confidence, "devices": [], "left_out": []}
    if "inference_images_per_second" not in df:
        return out
    ok = trained(df)
    ok = ok[pd.to_numeric(ok["inference_images_per_second"], errors="coerce") > 0]
    ok = ok.drop_duplicates("model_id")
    device = ok["device"].fillna("unknown device") if "device" in ok else pd.Series("unknown device", ok.index)
    for dev, g in ok.groupby(device, sort=False):
        if len(g) < MIN_MODELS:
            out["left_out"].append(f"On {dev}: {len(g)} model(s) with a measured inference speed; the "
                                   f"correlations need {MIN_MODELS}.")  # fmt: skip
            continue
        time = 1000.0 / g["inference_images_per_second"].to_numpy(float)
        measures = {m: spearman_ci(g[m].to_numpy(float), time, confidence=confidence) for m in MEASURES}
        diff = rho_difference(time, g["flops"], g["acts"], confidence=confidence, n_boot=n_boot, seed=seed)
        entry = {"device": dev, "n": len(g), "time_ms": float(np.median(time)), "measures": measures,
                 "acts_vs_flops": diff}  # fmt: skip
        entry["sentences"] = speed_sentences(entry, confidence)
        out["devices"].append(entry)
    return out


def speed_sentences(entry: dict, confidence: float = CONFIDENCE) -> list[str]:
    """The Findings sentences of one device: each measure's ρ with its CI, and the acts-against-flops verdict
    (a claim only when the bootstrap CI of the difference excludes 0)."""
    level = f"{confidence:.0%} CI"
    parts = [f"{NAMES[m]} ρ = {c['rho']:.2f} [{c['low']:.2f}, {c['high']:.2f}]" for m, c in entry["measures"].items()]
    lines = [f"On {entry['device']} ({entry['n']} models, median {entry['time_ms']:.3g} ms per image), inference "
             f"time per image against {', '.join(parts)} (Spearman, {level})."]  # fmt: skip
    d = entry["acts_vs_flops"]
    numbers = f"ρ(acts) − ρ(flops) = {d['difference']:.2f}, {level} [{d['low']:.2f}, {d['high']:.2f}]"
    if d["low"] > 0:
        lines.append(f"Activations predict inference time better than flops ({numbers}).")
    elif d["high"] < 0:
        lines.append(f"Flops predict inference time better than activations ({numbers}).")
    else:
        lines.append(f"Neither activations nor flops predicts inference time better on these models ({numbers}).")
    return lines


def sentences(result: dict) -> list[str]:
    return [x for d in result["devices"] for x in d["sentences"]] + result["left_out"]
