"""Quantised linear fit (DDS §3.3): the RegNet (w0, wa, wm) closest to a model's per-block widths.

The fitted widths are generated exactly as a RegNet's are (docs/design.md §3: per-block exponents, quantised
to 8, then the compatibility rule with the model's own per-block b and g), and
    e_fit = mean over blocks j of |log(w_j / ŵ_j)|.
d is the model's depth; (w0, wa, wm) range over the general RegNet space's own lattice (w0 ∈ 8·{1..32},
wa ∈ 0.1·{1..2560}, wm ∈ 0.001·{1500..3000}: every RegNet that space holds), so e_fit is a minimum over
a finite set, and it is computed exactly:

- a shortcut: when the widths are non-decreasing, solve for (w0, wm, wa/w0) that reproduce them exactly
  (interval arithmetic per stage and per block) and take a point of the same lattice inside the solution;
  e_fit = 0 needs no search, and is never claimed for a network the lattice does not hold;
- otherwise :func:`lattice_fit`: for each w0 and wm the fit is a step function of wa (block j's exponent
  steps up where wa crosses w0·(wm^(s−½) − 1)/j), so sorting those thresholds and summing the cost changes
  gives e_fit at every wa of the lattice at once. Lower bounds prune w0 and wm without losing the minimum.
  tests/test_analysis.py checks it against evaluating every lattice point.

The parameters themselves are not identifiable from quantised widths (an interval of wa and wm gives
the same network); the exact solver returns one such lattice point, near the middle of the widest
interval of wa that reproduces the widths.
"""

from __future__ import annotations

import functools

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
    return dict(_fit(tuple(w.tolist()), tuple(b.tolist()), tuple(g.tolist()), q))


@functools.lru_cache(maxsize=4096)  # a report fits each model for several figures: once is enough
def _fit(w: tuple, b: tuple, g: tuple, q: int) -> dict:
    w, b, g = np.array(w, dtype=np.int64), np.array(b, dtype=float), np.array(g, dtype=np.int64)
    exact = _exact_fit(w, b, g, q)
    if exact is not None:
        return exact
    return lattice_fit(w, b, g, q)


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
    """A RegNet of the lattice (:func:`regnet_lattice`) that reproduces non-decreasing widths exactly,
    or None (then :func:`lattice_fit` decides). Only lattice points are returned: w0 of the lattice, wm
    a multiple of its quantum in its bounds, wa = k·step with 1 ≤ k ≤ k_max, each verified by regenerating."""
    d = len(w)
    if np.any(np.diff(w) < 0):
        return None
    w0s, step, k_max, lattice_wms = regnet_lattice()
    wm_q = float(lattice_wms[1] - lattice_wms[0])
    stage = np.concatenate([[0], np.cumsum(np.diff(w) > 0)])
    n_stages = int(stage[-1]) + 1
    firsts = [int(np.flatnonzero(stage == i)[0]) for i in range(n_stages)]
    raw_sets = [_raw_widths_for(int(w[f]), b[stage == i], g[stage == i], q) for i, f in enumerate(firsts)]
    if any(len(r) == 0 for r in raw_sets):
        return None
    j = np.arange(1, d)
    sj = stage[1:]
    best = None
    for w0 in sorted(set(raw_sets[0].tolist()) & set(w0s.tolist()), key=lambda x: abs(x - w[0])):
        # wm such that round(w0 * wm^i / q) * q lands in stage i's raw set, for every stage i >= 1
        feasible = [(float(lattice_wms[0]) - wm_q / 2, float(lattice_wms[-1]) + wm_q / 2)]
        for i in range(1, n_stages):
            ivals = [(((x - q / 2) / w0) ** (1 / i), ((x + q / 2) / w0) ** (1 / i)) for x in raw_sets[i].tolist()]
            feasible = _intersect(feasible, ivals)
            if not feasible:
                break
        for lo, hi in feasible:
            wms = lattice_wms[(lattice_wms >= lo) & (lattice_wms <= hi)]
            if not len(wms):
                continue
            # block j in stage s_j needs wm^(s_j - 1/2) <= 1 + r j < wm^(s_j + 1/2), r = wa / w0 >= 0
            r_lo = (
                np.max(np.maximum(0.0, (wms[:, None] ** (sj - 0.5) - 1) / j), axis=1) if d > 1 else np.zeros(len(wms))
            )
            r_hi = np.min((wms[:, None] ** (sj + 0.5) - 1) / j, axis=1) if d > 1 else np.full(len(wms), np.inf)
            k_lo = np.maximum(np.ceil(w0 * r_lo / step - 1e-9), 1)
            k_hi = np.minimum(np.floor(w0 * np.minimum(r_hi, 1e12) / step + 1e-9), k_max)
            width = np.where(k_hi >= k_lo, np.log1p(np.minimum(r_hi, 1e12)) - np.log1p(r_lo), -np.inf)
            for i in np.argsort(-width, kind="stable")[:8]:  # the widest intervals first; verify each
                if not np.isfinite(width[i]):
                    break
                cand = _quantised_choice(w, b, g, q, w0, float(wms[i]), (k_lo[i] + k_hi[i]) // 2, step, d)
                if cand is not None:
                    if best is None or width[i] > best[1]:
                        best = (cand, width[i])
                    break
        if best is not None:
            return best[0]
    return None


def _quantised_choice(w, b, g, q, w0, wm, k, step, d) -> dict | None:
    """(w0, wa = k·step, wm) if it regenerates the widths exactly."""
    wa = round(float(k) * step, 10)
    if np.array_equal(predicted_widths(d, w0, wa, wm, b, g, q), w):
        return {"w0": int(w0), "wa": wa, "wm": float(wm), "d": d, "e_fit": 0.0, "exact": True}
    return None


@functools.lru_cache(maxsize=1)
def regnet_lattice():
    """The lattice of the general RegNet space (regspace.spaces.regnet.RegNetSpace): w0 values, the wa
    quantum and its largest multiple, and the wm values."""
    from regspace.spaces import get_space

    sp = get_space("RegNet")
    w0s = np.arange(sp.w0.low, sp.w0.high + 1, sp.w0.q).astype(float)
    wms = np.round(np.arange(round(sp.wm.low / sp.wm.q), round(sp.wm.high / sp.wm.q) + 1) * sp.wm.q, 6)
    return w0s, float(sp.wa.q), int(round(sp.wa.high / sp.wa.q)), wms


def _exponent(j, wa, w0, wm):
    """s_j exactly as regnet_block_widths computes it (the same floating-point expression)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.round(np.log((j * wa + w0) / w0) / np.log(wm))


def _coarse_upper_bound(w, b, g, q, w0s, step, k_max, wms) -> dict:
    """e_fit at the best point of a coarse sub-lattice: an upper bound on the minimum, to prune with.

    Each block's width is the compatibility rule applied to its raw width (a multiple of q), so the rule
    runs once per block and raw width seen (a table), not once per block and lattice point; each cost is
    the very expression :func:`e_fit` evaluates, so the result is :func:`e_fit` of :func:`predicted_widths`
    at every point, bit for bit (tests/test_analysis.py)."""
    ks = np.unique(np.geomspace(1, k_max, 48).round())
    W0, WM, K = (x.ravel() for x in np.meshgrid(w0s, wms[:: max(1, len(wms) // 40)], ks, indexing="ij"))
    WA = np.round(K * step, 10)
    d = len(w)
    j = np.arange(d)
    # predicted_widths's raw widths, by the same expressions, each evaluated once per distinct argument:
    # the log of the growth per (w0, wa, block), the log of wm per wm, w0·wm^s per (w0, wm, exponent)
    sub = wms[:: max(1, len(wms) // 40)]
    wa_k = np.round(ks * step, 10)
    with np.errstate(divide="ignore", invalid="ignore"):
        grow = np.log((j * wa_k[None, :, None] + w0s[:, None, None]) / w0s[:, None, None])  # (W0, K, d)
        sj = np.round(grow[:, None] / np.log(sub)[None, :, None, None]).astype(np.int64)  # (W0, WM, K, d)
        top = int(sj.max())
        raw = np.round(w0s[:, None, None] * np.power(sub[None, :, None], np.arange(top + 1.0)) / q) * q
    level = (np.maximum(raw, q) // q).astype(np.int64)  # raw width / q, exact (a float multiple of q)
    level = level[np.arange(len(w0s))[:, None, None, None], np.arange(len(sub))[None, :, None, None], sj]
    level = level.reshape(-1, d)
    top = int(level.max())
    cost = np.empty((d, top + 1))
    wf = np.asarray(w, dtype=np.int64)
    for bi, gi in set(zip(np.asarray(b, float).tolist(), np.asarray(g).tolist())):
        blocks = np.flatnonzero((np.asarray(b, float) == bi) & (np.asarray(g) == gi))
        pred, _ = make_compatible(np.arange(top + 1) * q, bi, gi)
        with np.errstate(divide="ignore"):
            cost[blocks] = np.abs(np.log(wf[blocks, None] / pred[None, :]))
    err = np.mean(cost[j, level], axis=-1)
    i = int(np.argmin(err))
    return {"w0": int(W0[i]), "wa": float(WA[i]), "wm": float(WM[i]), "e_fit": float(err[i])}


class _Costs:
    """Each block's cost |log(w_j / ŵ)| at every raw width, from one table built once per model."""

    def __init__(self, w, b, g, q: int, cap: int):
        self.w, self.q, self.cap = np.asarray(w, dtype=np.int64), q, cap
        self.lw = np.log(self.w.astype(float))
        self.pairs = sorted(set(zip(b.tolist(), g.tolist())))
        self.pair_of = np.array([self.pairs.index(p) for p in zip(b.tolist(), g.tolist())])
        self.table = np.zeros((len(self.w), 0))  # table[j, v]: block j's cost at raw width v·q

    def at(self, levels):
        """Raw widths (M, L), multiples of q -> cost of each block at each (d, M, L). Widths above ``cap``
        are never reached by any exponent (see lattice_fit) and get cap's cost."""
        idx = np.minimum(levels // self.q, self.cap).astype(np.int64)
        if idx.max() >= self.table.shape[1]:
            v = np.maximum(np.arange(max(2 * self.table.shape[1], idx.max() + 1)) * self.q, self.q)
            logs = np.log(np.stack([make_compatible(v, bi, gi)[0] for bi, gi in self.pairs]).astype(float))
            self.table = np.abs(self.lw[:, None] - logs[self.pair_of])
        return self.table[:, idx]

    def levels(self, w0: float, wms, top: int):
        """(exponents 0..top, each block's cost at w0·wm^s quantised: (M, d, top+1))."""
        s = np.arange(top + 1, dtype=float)
        raw = np.maximum(np.round(w0 * np.power(np.asarray(wms)[:, None], s) / self.q) * self.q, self.q)
        return s, np.moveaxis(self.at(raw), 0, 1)

    def levels_by_block(self, w0: float, wms, top: int):
        """:meth:`levels` laid out (d, top+1, M), contiguous: the lower bound's recursion over blocks then
        works on whole rows of wm at a time."""
        s = np.arange(top + 1, dtype=float)
        raw = np.maximum(np.round(w0 * np.power(np.asarray(wms)[:, None], s) / self.q) * self.q, self.q)
        return s, self.at(raw.T)


def _sweep(w0: float, wm, s, c, step: float, k_max: int):
    """For each wm (rows of ``c``, costs (M, d, S+1)): the least total cost over wa = k·step, k = 1..k_max,
    and the k giving it. Block j's exponent steps up to s where wa crosses w0·(wm^(s−½) − 1)/j, so the
    total is a step function of k: sort the crossings and add the cost changes in order."""
    d = c.shape[1]
    j = np.arange(1, d, dtype=float)
    ss = s[1:]
    wm3 = np.asarray(wm)[:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.ceil(w0 * (np.power(wm3, ss - 0.5) - 1) / (j[:, None] * step) - 1e-9)
    k = np.clip(k, 1, k_max + 1)
    wj = j[None, :, None]
    # settle floating-point edges (at most one step) against the very expression the widths use
    # (wa = round(k·step, 10): the value the fit reports, so that 2.8 is 2.8 and not 2.8000000000000003)
    k = np.where((k > 1) & (_exponent(wj, np.round((k - 1) * step, 10), w0, wm3) >= ss), k - 1, k)
    k = np.where((k <= k_max) & (_exponent(wj, np.round(np.minimum(k, k_max) * step, 10), w0, wm3) < ss), k + 1, k)
    delta = (c[:, 1:, 1:] - c[:, 1:, :-1]).reshape(len(c), -1)  # block j stepping up to exponent s
    k = k.reshape(len(c), -1)
    # k is a whole number in 1..k_max+1: as int16 the stable sort is a radix sort (the same order, faster)
    order = np.argsort(k.astype(np.int16) if k_max < np.iinfo(np.int16).max else k, axis=1, kind="stable")
    k = np.take_along_axis(k, order, axis=1)
    base = c[:, :, 0].sum(axis=1)
    total = base[:, None] + np.cumsum(np.take_along_axis(delta, order, axis=1), axis=1)
    last = np.ones_like(k, dtype=bool)
    last[:, :-1] = k[:, 1:] != k[:, :-1]  # only the state after every step at one wa exists
    value = np.where(last & (k <= k_max), total, np.inf)
    start = np.where(k[:, 0] > 1, base, np.inf)  # at k = 1 no block has stepped up yet
    col = np.argmin(value, axis=1)
    at_col = value[np.arange(len(c)), col]
    return np.minimum(at_col, start), np.where(start <= at_col, 1, k[np.arange(len(c)), col]).astype(int)


def _top_exponent(w0: float, d: int, step: float, k_max: int, wm_min: float) -> int:
    """The largest exponent any block can reach on the lattice (from wm^(s−½) <= 1 + wa_max·(d−1)/w0)."""
    return int(np.floor(0.5 + np.log1p(k_max * step * (d - 1) / w0) / np.log(wm_min))) + 1


def min_over_wa(w, b, g, w0: float, wms, step: float, k_max: int, q: int = WIDTH_QUANTUM):
    """e_fit minimised over wa = step·{1..k_max}, for each wm of ``wms`` at this w0 (and the best k)."""
    d = len(w)
    costs = _Costs(w, np.asarray(b, float), np.asarray(g), q, cap=1 << 40)
    s, c = costs.levels(w0, wms, _top_exponent(w0, d, step, k_max, float(np.min(wms))))
    total, k = _sweep(w0, wms, s, c, step, k_max)
    return total / d, k


def lattice_fit(w, b, g, q: int = WIDTH_QUANTUM, *, lattice=None, coarse: bool = True) -> dict:
    """The exact minimum of e_fit over the RegNet lattice (or ``lattice`` = (w0s, wa quantum, wa steps, wms)).
    ``coarse``: start from a coarse sub-lattice's best point (only speeds up the search)."""
    w0s, step, k_max, wms = lattice or regnet_lattice()
    w = np.asarray(w, dtype=np.int64)
    d = len(w)
    # A reachable exponent s of block j has wm^(s−½) <= 1 + r·j, so its raw width is at most cap; wider
    # levels are never reached, and giving them cap's cost only lowers the (still valid) lower bound below.
    cap = int(np.sqrt(wms.max()) * (w0s.max() + k_max * step * max(d - 1, 0)) / q) + 2
    costs = _Costs(w, b, g, q, cap)
    first_cost = costs.at(w0s[None, :])[0, 0]  # block 0 always has exponent 0: width w0
    best = _coarse_upper_bound(w, b, g, q, w0s, step, k_max, wms) if coarse else {"e_fit": np.inf}
    for i in np.argsort(first_cost, kind="stable"):
        w0 = float(w0s[i])
        if first_cost[i] / d >= best["e_fit"]:
            break  # block 0 alone costs this much for every later w0
        if d == 1:
            best = {"w0": int(w0), "wa": step, "wm": float(wms[0]), "e_fit": float(first_cost[i])}
            continue
        s, cost = costs.levels_by_block(w0, wms, _top_exponent(w0, d, step, k_max, float(wms.min())))
        # a lower bound: exponents start at 0 and never decrease along the blocks (1 + r·j grows), so the
        # cheapest non-decreasing exponent sequence (a prefix-minimum recursion over blocks) costs no more;
        # f[s] is one row per wm, so each step is a few whole-row operations
        f = np.where((s == 0)[:, None], cost[0], np.inf)
        for jj in range(1, d):
            for e in range(1, len(s)):
                np.minimum(f[e - 1], f[e], out=f[e])
            f += cost[jj]
        rows = np.flatnonzero(f.min(axis=0) / d < best["e_fit"])
        if not len(rows):
            continue
        # (rows, d, S+1) with the blocks innermost in memory, as _sweep's sums have always seen them
        chosen = np.ascontiguousarray(cost[:, :, rows].transpose(2, 1, 0)).transpose(0, 2, 1)
        total, k = _sweep(w0, wms[rows], s, chosen, step, k_max)
        r = int(np.argmin(total))
        if total[r] / d < best["e_fit"]:
            best = {"w0": int(w0), "wa": round(int(k[r]) * step, 10), "wm": float(wms[rows][r]),
                    "e_fit": float(total[r] / d)}  # fmt: skip
    wa = best["wa"]
    pred = predicted_widths(d, best["w0"], wa, best["wm"], b, g, q)
    err = float(e_fit(w, pred))  # the reported value is the true one at the chosen point
    return {"w0": best["w0"], "wa": wa, "wm": best["wm"], "d": d, "e_fit": err, "exact": err == 0}


FIT_VERSION = 1  # bump when the fit's definition changes (e_fit, the width rule, the search): cached fits drop


def fit_definition() -> str:
    """What a fit depends on besides the design: FIT_VERSION, the width quantum and the lattice. A cache of
    fits (model id -> :func:`fit_widths`'s dict) is valid only under the same definition."""
    w0s, step, k_max, wms = regnet_lattice()
    return (f"v{FIT_VERSION};q={WIDTH_QUANTUM};w0={w0s[0]:g}..{w0s[-1]:g}x{len(w0s)};wa={step:g}x{k_max};"
            f"wm={wms[0]:g}..{wms[-1]:g}x{len(wms)}")  # fmt: skip


def fit_frame(df, cache: dict | None = None) -> "object":
    """e_fit and fitted (w0, wa, wm) for every model of a frame with stage_* list columns.

    ``cache``: model id -> fit dict (under one :func:`fit_definition`), read and filled here: a model
    found there is not fitted again (a model id names one design, so its fit never changes). The caller
    keeps the cache (regspace.analysis_io stores it beside the results); the analysis does no I/O."""
    import pandas as pd

    rows = []
    ids = df["model_id"] if cache is not None and "model_id" in df else [None] * len(df)
    for model_id, widths, depths, bs, gs in zip(
        ids, df["stage_widths"], df["stage_depths"], df["stage_bottleneck_ratios"], df["stage_group_widths"]
    ):
        if model_id is not None and model_id in cache:
            rows.append(dict(cache[model_id]))
            continue
        per_block = np.repeat(np.asarray(widths), depths)
        fit = fit_widths(per_block, np.repeat(np.asarray(bs), depths), np.repeat(np.asarray(gs), depths))
        if model_id is not None:
            cache[model_id] = dict(fit)
        rows.append(fit)
    out = pd.DataFrame(rows, index=df.index)
    return out.rename(columns={"w0": "fit_w0", "wa": "fit_wa", "wm": "fit_wm", "d": "fit_d", "exact": "fit_exact"})
