"""Quantised linear fit (DDS §3.3): the RegNet (w0, wa, wm) closest to a model's per-block widths.

The fitted widths are generated exactly as a RegNet's are (docs/design.md §3: per-block exponents, quantised
to 8, then the compatibility rule with the model's own per-block b and g), and
    e_fit = mean over blocks j of |log(w_j / ŵ_j)|.
d is the model's depth. Two solvers:

- exact: when the widths are non-decreasing, solve for the set of (w0, wm, wa/w0) that reproduce
  them exactly (interval arithmetic per stage and per block); finds e_fit = 0 whenever such a RegNet
  exists with one exponent per stage (every RegNet the reference sampler accepts);
- otherwise a coarse-to-fine grid search over (w0, wm, wa/w0) minimising e_fit.

The parameters themselves are not identifiable from quantised widths (an interval of wa and wm gives
the same network); the exact solver returns one such set, preferring values on the sampler's
quanta (wa to 0.1, wm to 0.001) and the middle of the feasible interval.
"""

from __future__ import annotations

import numpy as np

from regspace.design import make_compatible
from regspace.spaces.regnet import WIDTH_QUANTUM


def predicted_widths(d: int, w0, wa, wm, b, g, q: int = WIDTH_QUANTUM) -> np.ndarray:
    """Per-block widths of candidate RegNets (any shape of w0/wa/wm, broadcast) -> (..., d)."""
    w0, wa, wm = (np.asarray(x, dtype=np.float64)[..., None] for x in (w0, wa, wm))
    j = np.arange(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.round(np.log((j * wa + w0) / w0) / np.log(wm))
        raw = np.round(w0 * np.power(wm, s) / q) * q
    raw = np.maximum(raw, q)
    w, _ = make_compatible(raw, b, g)
    return w


def e_fit(widths, predicted) -> np.ndarray:
    return np.mean(np.abs(np.log(np.asarray(widths, float) / np.asarray(predicted, float))), axis=-1)


def fit_widths(widths, bottleneck_ratios=None, group_widths=None, *, q: int = WIDTH_QUANTUM) -> dict:
    """Fit one model's per-block widths; b and g are per block (or scalars; default 1 and 1)."""
    w = np.asarray(widths, dtype=np.int64)
    d = len(w)
    b = np.broadcast_to(np.asarray(1.0 if bottleneck_ratios is None else bottleneck_ratios, dtype=float), (d,))
    g = np.broadcast_to(np.asarray(1 if group_widths is None else group_widths, dtype=np.int64), (d,))
    exact = _exact_fit(w, b, g, q)
    if exact is not None:
        return exact
    return _grid_fit(w, b, g, q)


def _raw_widths_for(target: int, b, g, q: int) -> np.ndarray:
    """Multiples of q that the compatibility rule maps to ``target`` for every (b, g) given."""
    k = np.arange(1, int(np.ceil(4 * target / q)) + 2) * q
    ok = np.ones(len(k), dtype=bool)
    for bi, gi in set(zip(np.atleast_1d(b).tolist(), np.atleast_1d(g).tolist())):
        mapped, _ = make_compatible(k, bi, gi)
        ok &= mapped == target
    return k[ok]


def _intersect(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for lo1, hi1 in a:
        for lo2, hi2 in b:
            lo, hi = max(lo1, lo2), min(hi1, hi2)
            if lo < hi:
                out.append((lo, hi))
    return out


def _exact_fit(w, b, g, q) -> dict | None:
    d = len(w)
    if np.any(np.diff(w) < 0):
        return None
    stage = np.concatenate([[0], np.cumsum(np.diff(w) > 0)])
    n_stages = int(stage[-1]) + 1
    firsts = [int(np.flatnonzero(stage == i)[0]) for i in range(n_stages)]
    raw_sets = [_raw_widths_for(int(w[f]), b[stage == i], g[stage == i], q) for i, f in enumerate(firsts)]
    if any(len(r) == 0 for r in raw_sets):
        return None
    j = np.arange(1, d)
    sj = stage[1:]
    best = None
    for w0 in sorted(raw_sets[0].tolist(), key=lambda x: abs(x - w[0])):
        # wm such that round(w0 * wm^i / q) * q lands in stage i's raw set, for every stage i >= 1
        feasible = [(1.0 + 1e-9, 64.0)]
        for i in range(1, n_stages):
            ivals = [(((x - q / 2) / w0) ** (1 / i), ((x + q / 2) / w0) ** (1 / i)) for x in raw_sets[i].tolist()]
            feasible = _intersect(feasible, ivals)
            if not feasible:
                break
        for lo, hi in feasible:
            wms = np.linspace(lo, hi, 66)[1:-1]
            # block j in stage s_j needs wm^(s_j - 1/2) <= 1 + r j < wm^(s_j + 1/2), r = wa / w0 >= 0
            r_lo = (
                np.max(np.maximum(0.0, (wms[:, None] ** (sj - 0.5) - 1) / j), axis=1) if d > 1 else np.zeros(len(wms))
            )
            r_hi = np.min((wms[:, None] ** (sj + 0.5) - 1) / j, axis=1) if d > 1 else np.full(len(wms), 10.0)
            width = np.where(r_hi > r_lo, np.log1p(r_hi) - np.log1p(r_lo), -np.inf)
            k = int(np.argmax(width))
            if not np.isfinite(width[k]):
                continue
            cand = _quantised_choice(w, b, g, q, w0, wms[k], (r_lo[k] + r_hi[k]) / 2, d)
            if cand is not None and (best is None or cand[1] > best[1]):
                best = (cand[0], width[k])
        if best is not None:
            return best[0]
    return None


def _quantised_choice(w, b, g, q, w0, wm, r, d) -> tuple[dict, bool] | None:
    """Prefer (wa, wm) on the sampler's quanta near the interval's middle; verify by regenerating."""
    wa = w0 * r
    tries = [(round(wa, 1), round(wm, 3)), (round(wa, 2), round(wm, 4)), (wa, wm)]
    for wa_q, wm_q in tries:
        if wm_q <= 1 or wa_q < 0:
            continue
        pred = predicted_widths(d, w0, wa_q, wm_q, b, g, q)
        if np.array_equal(pred, w):
            return {"w0": int(w0), "wa": float(wa_q), "wm": float(wm_q), "d": d, "e_fit": 0.0, "exact": True}, True
    return None


def _grid_fit(w, b, g, q) -> dict:
    first = max(q, int(round(w[0] / q)) * q)
    w0s = np.unique(np.clip(first + q * np.arange(-3, 4), q, None))
    wms = np.geomspace(1.1, 4.0, 40)
    rs = np.concatenate([[0.0], np.geomspace(1e-3, 10.0, 40)])
    best = _grid(w, b, g, q, w0s, wms, rs)
    for _ in range(2):  # refine around the best point
        w0, wm, r = best["w0"], best["wm"], best["wa"] / best["w0"]
        w0s = np.unique(np.clip(w0 + q * np.arange(-1, 2), q, None))
        wms = np.clip(wm * np.geomspace(0.93, 1.07, 21), 1.001, None)
        rs = (
            np.concatenate([[0.0], r * np.geomspace(0.75, 1.33, 21)])
            if r > 0
            else np.concatenate([[0.0], np.geomspace(1e-4, 1e-2, 21)])
        )
        cand = _grid(w, b, g, q, w0s, wms, rs)
        if cand["e_fit"] <= best["e_fit"]:
            best = cand
    return best


def _grid(w, b, g, q, w0s, wms, rs) -> dict:
    W0, WM, R = np.meshgrid(w0s.astype(float), wms, rs, indexing="ij")
    W0, WM, R = W0.ravel(), WM.ravel(), R.ravel()
    pred = predicted_widths(len(w), W0, W0 * R, WM, b, g, q)
    err = e_fit(w, pred)
    k = int(np.argmin(err))
    return {
        "w0": int(W0[k]),
        "wa": float(W0[k] * R[k]),
        "wm": float(WM[k]),
        "d": len(w),
        "e_fit": float(err[k]),
        "exact": bool(err[k] == 0),
    }


def fit_frame(df) -> "object":
    """e_fit and fitted (w0, wa, wm) for every model of a frame with stage_* list columns."""
    import pandas as pd

    rows = []
    for widths, depths, bs, gs in zip(
        df["stage_widths"], df["stage_depths"], df["stage_bottleneck_ratios"], df["stage_group_widths"]
    ):
        per_block = np.repeat(np.asarray(widths), depths)
        rows.append(fit_widths(per_block, np.repeat(np.asarray(bs), depths), np.repeat(np.asarray(gs), depths)))
    out = pd.DataFrame(rows, index=df.index)
    return out.rename(columns={"w0": "fit_w0", "wa": "fit_wa", "wm": "fit_wm", "d": "fit_d", "exact": "fit_exact"})
