"""Effect sizes and location tests behind the Findings' verdicts, for plain draws or weighted samples.

A sample is errors (%) with optional non-negative weights: None means each entry is one draw (a network
drawn k times appears k times); weights are the complexity-normalised EDF's (NDS §3), whose sample size is
Kish's effective n. Entries of weight 0 are outside the sample.

- :func:`hodges_lehmann`: the shift a − b as the median of all pairwise differences, with the
  distribution-free CI that inverts the Mann–Whitney test (Hollander & Wolfe, Nonparametric Statistical
  Methods, §4.3): the n_a × n_b differences sorted, or for larger samples a bisection over counts of
  differences (O(n log n) per step, no matrix).
- :func:`p_beats`: P(a model of A has a lower error than one of B), ties counted half; Cliff's δ = 2p − 1
  (= 1 − 2U/(n_a n_b) for scipy's U of A against B).
- :func:`location_test`: Mann–Whitney U, two-sided (scipy) on draws; on weighted samples the normal
  approximation of U at the effective sizes (as the weighted KS p-value in :mod:`.edf`).
- :func:`holm`: Holm's step-down adjusted p-values, hand-written because statsmodels is not a dependency
  (scipy has only Benjamini–Hochberg); tested against a hand computation.
"""

from __future__ import annotations

import math

import numpy as np

from regspace.analysis.edf import effective_n

_TOL = 1e-12  # fraction of the pair weight below which two cumulative shares count as equal


def holm(p_values) -> np.ndarray:
    """Holm (1979) adjusted p-values: sorted ascending, p_(i) · (m − i + 1), made non-decreasing, capped at
    1; a hypothesis is rejected at family-wise level α when its adjusted p is below α. NaN counts as 1."""
    p = np.nan_to_num(np.asarray(p_values, float), nan=1.0)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def _sample(x, w=None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted values of positive weight and their weights (1 each when ``w`` is None)."""
    x = np.asarray(x, float)
    w = np.ones(len(x)) if w is None else np.asarray(w, float)
    keep = w > 0
    x, w = x[keep], w[keep]
    order = np.argsort(x, kind="stable")
    return x[order], w[order]


def sample_size(x, w=None) -> float:
    """Draws (``w`` None) or Kish's effective n of the weighted sample."""
    return float(len(x)) if w is None else effective_n(np.asarray(w, float)[np.asarray(w, float) > 0])


def weighted_quantile(x, w, q: float) -> float:
    """The q-quantile of a weighted sample: the mean of the smallest value whose cumulative share reaches q
    and the smallest whose share exceeds it (np.median's rule at q = ½ with equal weights)."""
    x, w = _sample(x, w)
    c = np.cumsum(w) / w.sum()
    lo = x[min(np.searchsorted(c, q - _TOL, side="left"), len(x) - 1)]
    hi = x[min(np.searchsorted(c, q + _TOL, side="right"), len(x) - 1)]
    return float((lo + hi) / 2)


def _difference_share(a, wa, b, cb, t: float) -> float:
    """Share of the pair weight with a_i − b_j ≤ t (b sorted, cb its cumulative weights from 0)."""
    j = np.searchsorted(b, a - t, side="left")  # b_j ≥ a_i − t  ⇔  a_i − b_j ≤ t
    return float((wa * (cb[-1] - cb[j])).sum() / (wa.sum() * cb[-1]))


def _difference_quantile(a, wa, b, cb, q: float, *, strict: bool, shares: dict | None = None) -> float:
    """The smallest pairwise difference t with share(D ≤ t) ≥ q (``strict``: > q), by bisection on t.
    ``shares``: t → share(D ≤ t), read and filled: the searches of one sample start from one bracket, so
    they evaluate the same midpoints until their levels part (the strict and plain search of one level
    nearly always all the way), and each share is computed once."""
    lo, hi = a[0] - b[-1], a[-1] - b[0]  # share(D ≤ hi) = 1; the answer lies in [lo, hi]
    shares = {} if shares is None else shares

    def reached(t):
        if (s := shares.get(t)) is None:
            s = shares[t] = _difference_share(a, wa, b, cb, t)
        return s > q + _TOL if strict else s >= q - _TOL

    if reached(lo):
        return float(lo)
    for _ in range(200):  # halves the bracket down to adjacent floats
        mid = (lo + hi) / 2
        if mid <= lo or mid >= hi:
            break
        if reached(mid):
            hi = mid
        else:
            lo = mid
    return float(hi)


MATRIX_MAX = 1_000_000  # pairs up to which the differences are sorted outright; beyond, bisection


def _quantiles_of_differences(a, wa, b, wb, levels) -> list[tuple[float, float]]:
    """For each level q, the smallest pairwise difference t = a_i − b_j whose share of the pair weight
    (w_i · w_j) with D ≤ t reaches q, and the smallest whose share exceeds q."""
    if len(a) * len(b) <= MATRIX_MAX:
        d = np.subtract.outer(a, b).ravel()
        order = np.argsort(d, kind="stable")
        d, c = d[order], np.cumsum(np.outer(wa, wb).ravel()[order])
        c /= c[-1]
        last = len(d) - 1
        return [
            (
                float(d[min(np.searchsorted(c, q - _TOL, side="left"), last)]),
                float(d[min(np.searchsorted(c, q + _TOL, side="right"), last)]),
            )
            for q in levels
        ]
    cb = np.concatenate([[0.0], np.cumsum(wb)])
    shares: dict = {}
    return [
        (
            _difference_quantile(a, wa, b, cb, q, strict=False, shares=shares),
            _difference_quantile(a, wa, b, cb, q, strict=True, shares=shares),
        )
        for q in levels
    ]


def hodges_lehmann(a, b, wa=None, wb=None, *, level: float = 0.95) -> tuple[float, float, float]:
    """The Hodges–Lehmann shift of a − b (points of error; > 0: A's errors are higher) and its ``level`` CI.

    The estimate is the (weighted) median of all pairwise differences a_i − b_j (np.median's rule: the
    mean of the two middle ones). The CI runs from the first difference whose share exceeds ½ − z·σ to the
    first whose share reaches ½ + z·σ, σ² = (n_a + n_b + 1) / (12 n_a n_b): the normal approximation of
    the Mann–Whitney critical value, at the effective sizes for weighted samples."""
    from scipy import stats

    a, wa = _sample(a, wa)
    b, wb = _sample(b, wb)
    na, nb = sample_size(a, wa), sample_size(b, wb)
    half = stats.norm.ppf(0.5 + level / 2) * math.sqrt((na + nb + 1) / (12 * na * nb))
    (mid_lo, mid_hi), (_, lo), (hi, _) = _quantiles_of_differences(
        a, wa, b, wb, (0.5, max(0.5 - half, 0.0), min(0.5 + half, 1.0))
    )
    return float((mid_lo + mid_hi) / 2), float(lo), float(hi)


def p_beats(a, b, wa=None, wb=None) -> float:
    """P(a model of A has a lower error than one of B), ties counted half; Cliff's δ is 2·p_beats − 1."""
    a, wa = _sample(a, wa)
    b, wb = _sample(b, wb)
    cb = np.concatenate([[0.0], np.cumsum(wb)])
    left, right = np.searchsorted(b, a, side="left"), np.searchsorted(b, a, side="right")
    above, tied = cb[-1] - cb[right], cb[right] - cb[left]
    return float((wa * (above + 0.5 * tied)).sum() / (wa.sum() * cb[-1]))


def location_test(a, b, wa=None, wb=None) -> float:
    """Two-sided p-value that neither space's errors tend to be lower (P(A < B) = ½): scipy's Mann–Whitney
    U over draws; for weighted samples the normal approximation of U at Kish's effective sizes."""
    from scipy import stats

    if wa is None and wb is None:
        p = stats.mannwhitneyu(np.asarray(a, float), np.asarray(b, float), alternative="two-sided").pvalue
        return 1.0 if math.isnan(p) else float(p)
    na, nb = sample_size(a, wa), sample_size(b, wb)
    z = (p_beats(a, b, wa, wb) - 0.5) / math.sqrt((na + nb + 1) / (12 * na * nb))
    return float(2 * stats.norm.sf(abs(z)))
