"""Per-parameter analyses (DDS §3.2) and random-search efficiency (NDS §5); pure numpy."""

from __future__ import annotations

import numpy as np


def _draws(x, counts):
    x = np.asarray(x, dtype=float)
    return x if counts is None else np.repeat(x, np.asarray(counts, dtype=np.int64))


def good_range(
    values, errors, *, counts=None, n_boot: int = 2500, frac: float = 0.25, seed: int = 0, percentiles=(2.5, 50.0, 97.5)
) -> dict:
    """Empirical bootstrap of a parameter's good range.

    Repeat ``n_boot`` times: draw floor(``frac``·n) of the models (at least one) with replacement, as
    pycls does, and keep the one with the lowest error. The 2.5/50/97.5 percentiles of the parameter
    over the kept models give its likely-best range and median. Models are draws: a network drawn m
    times (``counts``) is m of them.
    """
    v = _draws(values, counts)
    e = _draws(errors, counts)
    ok = np.isfinite(v) & np.isfinite(e)
    v, e = v[ok], e[ok]
    n = len(v)
    if n == 0:
        return {"low": np.nan, "median": np.nan, "high": np.nan, "n": 0, "n_boot": n_boot}
    k = max(1, int(np.floor(frac * n)))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, (n_boot, k))
    best = idx[np.arange(n_boot), np.argmin(e[idx], axis=1)]
    lo, med, hi = np.percentile(v[best], percentiles)
    return {"low": float(lo), "median": float(med), "high": float(hi), "n": n, "n_boot": n_boot, "frac": frac, "k": k}


def binned_trend(values, errors, *, counts=None, n_bins: int = 10, log: bool = False) -> dict:
    """Error against a parameter in equal-width (or log-width) bins: centre, count, median, mean (over draws)."""
    v = _draws(values, counts)
    e = _draws(errors, counts)
    ok = np.isfinite(v) & np.isfinite(e) & ((v > 0) if log else True)
    v, e = v[ok], e[ok]
    if len(v) == 0:
        return {"centre": np.array([]), "count": np.array([]), "median": np.array([]), "mean": np.array([])}
    x = np.log(v) if log else v
    lo, hi = float(x.min()), float(x.max())
    distinct = np.unique(x)
    if len(distinct) <= n_bins:  # a discrete parameter: one bin per value
        centres, idx = distinct, np.searchsorted(distinct, x)
    else:
        edges = np.linspace(lo, hi, n_bins + 1)
        idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_bins - 1)
        centres = (edges[:-1] + edges[1:]) / 2
    count = np.bincount(idx, minlength=len(centres))
    med = np.array([np.median(e[idx == i]) if count[i] else np.nan for i in range(len(centres))])
    mean = np.array([e[idx == i].mean() if count[i] else np.nan for i in range(len(centres))])
    return {"centre": np.exp(centres) if log else centres, "count": count, "median": med, "mean": mean}


def search_efficiency(errors, ks=None, *, counts=None) -> dict:
    """Expected best error of k models drawn at random (without replacement) from a space's draws.

    Exact order statistics, no simulation: with errors sorted e_(1) <= ... <= e_(n), the minimum of
    k draws is e_(i) with probability C(n-i, k-1) / C(n, k). Returns k, the expectation, and the
    25 / 75 % quantiles of that minimum (the spread).
    """
    e = np.sort(_draws(errors, counts))
    n = len(e)
    if ks is None:
        ks = [1 << j for j in range(int(np.log2(max(1, n))) + 1)]
    ks = [k for k in ks if 1 <= k <= n]
    out = {"k": [], "expected": [], "q25": [], "median": [], "q75": [], "n": n}
    i = np.arange(1, n + 1)
    for k in ks:
        # log C(n-i, k-1) - log C(n, k), via lgamma for stability
        from scipy.special import gammaln

        logp = np.full(n, -np.inf)
        valid = n - i >= k - 1
        m = n - i[valid]
        logp[valid] = (gammaln(m + 1) - gammaln(k) - gammaln(m - k + 2)) - (
            gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
        )
        p = np.exp(logp)
        p /= p.sum()
        cdf = np.cumsum(p)
        out["k"].append(k)
        out["expected"].append(float((p * e).sum()))
        out["q25"].append(float(e[np.searchsorted(cdf, 0.25)]))
        out["median"].append(float(e[np.searchsorted(cdf, 0.5)]))
        out["q75"].append(float(e[min(n - 1, np.searchsorted(cdf, 0.75))]))
    return out


def search_efficiency_nds(errors, ks=None, *, weights=None, counts=None) -> dict:
    """Random-search efficiency as NDS defines it: the best error of k models drawn **with
    replacement**, each with probability given by ``weights`` (NDS: the complexity-normalised weights;
    default: proportional to ``counts``, i.e. uniform over draws), summarised as mean ± 2 std.

    NDS estimates this by simulation over n//k trials; here it is exact. With the errors sorted and
    S_i the probability of drawing a model at least as bad as the i-th, the best of k draws is e_(i)
    with probability S_i^k - S_(i+1)^k. k runs over powers of two up to n (beyond n NDS has no trials),
    n the draws the weighted sample holds: those of networks with non-zero weight, a network drawn m
    times (``counts``) counting m times."""
    e = np.asarray(errors, dtype=float)
    m = np.ones(len(e)) if counts is None else np.asarray(counts, dtype=float)
    if weights is None:
        weights = m
    w = np.asarray(weights, dtype=float)
    keep = (w > 0) & np.isfinite(e)
    n = int(m[keep].sum())  # draws with weight: a zero-weight network is not in the sample
    e, w = e[keep], w[keep] / w[keep].sum()
    order = np.argsort(e, kind="stable")
    e, w = e[order], w[order]
    if ks is None:
        ks = [1 << j for j in range(int(np.log2(max(1, n))) + 1)]
    ks = [k for k in ks if 1 <= k <= max(1, n)]
    tail = np.concatenate([np.cumsum(w[::-1])[::-1], [0.0]])  # S_i, then S_(n+1) = 0
    tail = np.clip(tail, 0.0, 1.0)
    out = {"k": [], "mean": [], "std": [], "low": [], "high": [], "n": n}
    for k in ks:
        p = tail[:-1] ** k - tail[1:] ** k
        mean = float((p * e).sum())
        std = float(np.sqrt(max(0.0, (p * (e - mean) ** 2).sum())))
        out["k"].append(k)
        out["mean"].append(mean)
        out["std"].append(std)
        out["low"].append(mean - 2 * std)
        out["high"].append(mean + 2 * std)
    return out


def _kept_counts(errors, counts, *, n_boot: int, frac: float, seed: int, chunk: int = 64) -> np.ndarray:
    """How often each network is the kept (best) model over :func:`good_range`'s rounds: (networks,),
    summing to ``n_boot``. The same draws as good_range with this seed, so the percentiles agree exactly:
    the rounds are drawn ``chunk`` at a time (numpy's integers continue one stream across calls, so the
    draws are good_range's), which bounds the memory to chunk · floor(frac·n) indices."""
    m = np.ones(len(errors), dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
    e = _draws(errors, m)
    n = len(e)
    k = max(1, int(np.floor(frac * n)))
    rng = np.random.default_rng(seed)
    best = np.empty(n_boot, dtype=np.int64)
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        idx = rng.integers(0, n, (rows, k))
        best[start : start + rows] = idx[np.arange(rows), np.argmin(e[idx], axis=1)]
    network = np.repeat(np.arange(len(m)), m)  # draw -> its network
    return np.bincount(network[best], minlength=len(m))


def _weighted_percentiles(values, weights, percentiles) -> np.ndarray:
    """np.percentile (linear) of each row of ``values`` repeated by ``weights``: (B, n), (n,) -> (B, P)."""
    values = np.atleast_2d(values)
    order = np.argsort(values, axis=1, kind="stable")
    v = np.take_along_axis(values, order, axis=1)
    cum = np.cumsum(np.asarray(weights)[order], axis=1)  # (B, n): repeated sample positions end here
    total = int(cum[0, -1])
    out = []
    for q in percentiles:
        h = (total - 1) * q / 100.0
        lo, hi = int(np.floor(h)), int(np.ceil(h))
        at_lo = v[np.arange(len(v)), (cum <= lo).sum(axis=1)]
        at_hi = v[np.arange(len(v)), (cum <= hi).sum(axis=1)]
        out.append(at_lo + (h - lo) * (at_hi - at_lo))
    return np.stack(out, axis=1)


def good_range_test(
    params: dict, errors, *, counts=None, n_boot: int = 2500, frac: float = 0.25, n_perm: int = 999, seed: int = 0
) -> dict:
    """Each parameter's :func:`good_range` and whether it is narrower than chance: a permutation test.

    ``params``: name -> (networks,) values; ``errors``: (networks,) errors (%); ``counts``: draws per network.
    The statistic is the share of the draws that the good range [2.5 %, 97.5 %] excludes. Under the null
    (no parameter matters) the parameters are exchangeable across networks, so the null distribution is
    that of the statistic with the parameter values permuted among the networks (within networks drawn
    equally often, which keeps the population of draws), ``n_perm`` times, while the bootstrap's kept
    networks stay fixed: a conditional, exact permutation test (Monte Carlo p = (1 + #{T* ≥ T}) /
    (n_perm + 1)). The range itself is pycls's: floor(frac·n) draws per round, the best kept.
    Returns name -> {low, median, high, excluded, below, above, p}; p is not corrected for multiplicity
    (:func:`holm`). Raises nothing; a parameter with NaN values gets p = 1 and NaN range.
    """
    m = np.ones(len(errors), dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
    kept = _kept_counts(errors, m, n_boot=n_boot, frac=frac, seed=seed)
    # The percentiles see only the networks kept in some round (at most n_boot of them, however many were
    # drawn): a permutation matters through the values it puts there, and through nothing else, since
    # permuting within a multiplicity moves values among networks of one share of the draws, leaving the
    # share below (above) any value unchanged. So each permutation is drawn where it is read: at the kept
    # networks of each multiplicity, an ordered sample without replacement of that multiplicity's networks,
    # which is how a uniform permutation of them looks there. Cost O(n_perm · kept), not O(n_perm · n).
    held = np.flatnonzero(kept)
    rng = np.random.default_rng([seed, 1])
    perms = np.empty((n_perm, len(held)), dtype=np.int64)
    levels = {}
    for level in np.unique(m):  # permute within networks of equal multiplicity
        members = np.flatnonzero(m == level)
        cols = np.flatnonzero(m[held] == level)
        levels[int(level)] = members
        for r in range(n_perm * bool(len(cols))):
            perms[r, cols] = members[rng.choice(len(members), len(cols), replace=False)]
    share = m / m.sum()
    out = {}
    for name, values in params.items():
        v = np.asarray(values, dtype=float)
        if not np.isfinite(v).all():
            out[name] = {"low": np.nan, "median": np.nan, "high": np.nan, "excluded": 0.0, "below": 0.0,
                         "above": 0.0, "p": 1.0}  # fmt: skip
            continue
        trial = np.vstack([v[held][None, :], v[perms]])  # row 0: the data; then the permutations
        q = _weighted_percentiles(trial, kept[held], (2.5, 50.0, 97.5))
        below = np.zeros(len(trial))
        above = np.zeros(len(trial))
        for level, members in levels.items():  # each permutation's share outside its range, by counting
            sv = np.sort(v[members])
            below += level * np.searchsorted(sv, q[:, 0], side="left") / m.sum()
            above += level * (len(sv) - np.searchsorted(sv, q[:, 2], side="right")) / m.sum()
        below[0] = ((v < q[0, 0]) * share).sum()  # the data's own shares, as reported
        above[0] = ((v > q[0, 2]) * share).sum()
        t = below + above
        p = (1 + np.sum(t[1:] >= t[0] - 1e-12)) / (n_perm + 1)
        out[name] = {
            "low": float(q[0, 0]),
            "median": float(q[0, 1]),
            "high": float(q[0, 2]),
            "excluded": float(t[0]),
            "below": float(below[0]),
            "above": float(above[0]),
            "p": float(p),
        }
    return out
