"""Error EDFs (NDS §3; docs/design.md §5, §7): plain, complexity-normalised, bootstrap bands, KS distances.

Everything is a pure function of numpy arrays; nothing here plots.
"""

from __future__ import annotations

import math

import numpy as np


def edf(errors, grid, weights=None) -> np.ndarray:
    """F(e) = Σ_i w_i · 1[e_i < e] at each e of ``grid`` (w_i = 1/n unless given)."""
    e = np.asarray(errors, dtype=float)
    grid = np.asarray(grid, dtype=float)
    order = np.argsort(e, kind="stable")
    e = e[order]
    w = np.full(len(e), 1.0 / len(e)) if weights is None else np.asarray(weights, dtype=float)[order]
    cum = np.concatenate([[0.0], np.cumsum(w)])
    return cum[np.searchsorted(e, grid, side="left")]  # strictly below e


def edf_steps(errors, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """The EDF's corners for drawing as a post-step line: x = sorted errors, y = F just after each."""
    e = np.asarray(errors, dtype=float)
    order = np.argsort(e, kind="stable")
    w = np.full(len(e), 1.0 / len(e)) if weights is None else np.asarray(weights, dtype=float)[order]
    return e[order], np.cumsum(w)


def complexity_bins(
    values, *, n_bins: int = 10, value_range: tuple[float, float] | None = None, strict: bool = False
) -> np.ndarray:
    """Bin index (0 .. n_bins-1) of each value over equal-width bins; -1 outside the range (``strict``:
    the range's endpoints are outside too, as NDS keeps models strictly inside the common range)."""
    v = np.asarray(values, dtype=float)
    lo, hi = value_range if value_range is not None else (float(v.min()), float(v.max()))
    inside = ((v > lo) & (v < hi)) if strict else ((v >= lo) & (v <= hi))
    if hi <= lo:
        return np.where(inside, 0, -1)
    idx = np.floor((v - lo) / (hi - lo) * n_bins).astype(int)
    idx = np.clip(idx, 0, n_bins - 1)
    return np.where(inside, idx, -1)


def normalized_weights(
    complexity,
    *,
    n_bins: int = 10,
    value_range: tuple[float, float] | None = None,
    counts=None,
    strict: bool = False,
) -> np.ndarray:
    """NDS §3 weights: each draw gets 1 / (B · c_b), c_b the number of draws in its complexity bin and B
    the number of non-empty bins, so the weights sum to 1 and each bin carries equal mass. A network
    drawn m times (``counts``) gets m times a draw's weight. Models outside ``value_range`` (the
    common range of the spaces compared) get weight 0. :func:`normalization` picks a bin count at
    which no bin is empty, so that B is the same for every space compared."""
    b = complexity_bins(complexity, n_bins=n_bins, value_range=value_range, strict=strict)
    m = np.ones(len(b)) if counts is None else np.asarray(counts, dtype=float)
    inside = b >= 0
    per_bin = np.bincount(b[inside], weights=m[inside], minlength=n_bins)
    nonempty = int((per_bin > 0).sum())
    w = np.zeros(len(b))
    if nonempty:
        w[inside] = m[inside] / (nonempty * per_bin[b[inside]])
    return w


def normalization(complexities: dict, *, n_bins: int = 10, high: float | None = None) -> dict:
    """NDS's rule for a complexity-normalised comparison of several spaces.

    The common range runs from the largest of the spaces' minima to ``high`` (default: the smallest
    of their maxima); only models strictly inside it count. Every bin must hold models of every space,
    so that each space's EDF gives its bins equal mass: when one is empty, the bin count is reduced
    until none is, and ``note`` says so in one line. Returns {low, high, n_bins, asked_bins, note}."""
    arrays = {s: np.asarray(c, dtype=float) for s, c in complexities.items() if len(c)}
    lo = max(float(a.min()) for a in arrays.values())
    hi = float(high) if high is not None else min(float(a.max()) for a in arrays.values())
    if hi <= lo:
        from regspace.errors import RegspaceError

        raise RegspaceError("the spaces' complexity ranges do not overlap; normalisation needs a common range")
    first_gap = None
    for bins in range(n_bins, 0, -1):
        gap = None
        for s, a in arrays.items():
            b = complexity_bins(a, n_bins=bins, value_range=(lo, hi), strict=True)
            empty = np.flatnonzero(np.bincount(b[b >= 0], minlength=bins) == 0)
            if len(empty):
                gap = (s, int(empty[0]))
                break
        if gap is None:
            break
        first_gap = first_gap or (bins, *gap)
    else:
        bins = 0
    note = None
    if first_gap is not None:
        asked, space, k = first_gap
        width = (hi - lo) / asked
        note = (
            f"normalised over {bins} complexity bins, not {n_bins}: with {asked}, bin {k + 1} "
            f"({lo + k * width:.4g}–{lo + (k + 1) * width:.4g}) holds no model of {space}"
        )
    if bins == 0:
        from regspace.errors import RegspaceError

        raise RegspaceError(f"no models strictly inside the spaces' common complexity range ({lo:.4g}–{hi:.4g})")
    return {"low": lo, "high": hi, "n_bins": bins, "asked_bins": n_bins, "note": note}


def bootstrap_band(
    errors,
    grid,
    *,
    weights_fn=None,
    complexity=None,
    counts=None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile bootstrap band of the EDF at ``grid`` (draws resampled with replacement;
    a network drawn m times (``counts``) is m draws).

    For a normalised EDF pass ``weights_fn(complexity_sample)`` and ``complexity``: the weights are
    recomputed on every resample.
    """
    e = np.asarray(errors, dtype=float)
    owner = np.arange(len(e)) if counts is None else np.repeat(np.arange(len(e)), np.asarray(counts, dtype=np.int64))
    n = len(owner)
    rng = np.random.default_rng(seed)
    curves = np.empty((n_boot, len(grid)))
    for b in range(n_boot):
        idx = owner[rng.integers(0, n, n)]
        w = None
        if weights_fn is not None:
            w = weights_fn(np.asarray(complexity)[idx])
            if w.sum() == 0:
                w = None
        curves[b] = edf(e[idx], grid, w)
    alpha = (1 - level) / 2
    return np.quantile(curves, alpha, axis=0), np.quantile(curves, 1 - alpha, axis=0)


def ks_distance(a, b, wa=None, wb=None) -> float:
    """sup_e |F_a(e) - F_b(e)|, optionally for weighted (normalised) EDFs."""
    grid = np.union1d(np.asarray(a, float), np.asarray(b, float))
    # F jumps at sample values: compare just above each of them (strict '<' at the next value)
    fa = edf(a, np.nextafter(grid, np.inf), wa)
    fb = edf(b, np.nextafter(grid, np.inf), wb)
    return float(np.max(np.abs(fa - fb))) if len(grid) else 0.0


def effective_n(weights) -> float:
    """Kish's effective sample size (Σw)² / Σw²."""
    w = np.asarray(weights, dtype=float)
    return float(w.sum() ** 2 / (w * w).sum()) if (w * w).sum() > 0 else 0.0


EXACT_MAX_N = 10_000  # scipy's own threshold for exact two-sample KS p-values


def ks_test(a, b, wa=None, wb=None) -> dict:
    """KS distance and p-value between two spaces' EDFs.

    Unweighted samples of up to 10,000 models: scipy's exact two-sample test. Larger or weighted
    (normalised) EDFs: our distance, with the asymptotic Kolmogorov p-value at the (Kish effective)
    sample sizes — where the exact test would be no different, and without scipy.stats's 1-2 s import.
    """
    from scipy import special

    if wa is None and wb is None and max(len(a), len(b)) <= EXACT_MAX_N:
        from scipy import stats

        r = stats.ks_2samp(np.asarray(a, float), np.asarray(b, float))
        return {"ks": float(r.statistic), "p_value": float(r.pvalue), "n_a": len(a), "n_b": len(b)}
    d = ks_distance(a, b, wa, wb)
    na = effective_n(wa) if wa is not None else len(a)
    nb = effective_n(wb) if wb is not None else len(b)
    en = math.sqrt(na * nb / (na + nb)) if na and nb else 0.0
    p = float(special.kolmogorov(d * en)) if en else float("nan")
    return {"ks": d, "p_value": p, "n_a": na, "n_b": nb}


EXACT_NOISE_MAX = 10_000  # n_a · n_b up to which the noise level comes from the exact distribution


def ks_tail_exact(d: float, n: int, m: int) -> float:
    """P(D ≥ d) for the two-sample KS distance D of samples of sizes n and m drawn from one continuous
    distribution (no ties): exact, by counting the monotone lattice paths from (0, 0) to (n, m) that stay
    strictly inside the band |i/n - j/m| < d. A uniformly random path reaches (i, j) from (i-1, j) with
    probability i/(i+j), so the path-counting recursion runs on probabilities (no huge integers)."""
    k = d * n * m - 1e-9 * max(n, m)  # |i·m - j·n| < d·n·m, in integers, tolerant of d's rounding
    inside = np.ones(m + 1)
    jj = np.arange(m + 1)
    inside[1:] = np.where(np.abs(0 * m - jj[1:] * n) < k, 1.0, 0.0)
    inside = np.cumprod(inside)  # row 0: reachable only along the j axis
    for i in range(1, n + 1):
        ok = np.abs(i * m - jj * n) < k
        row = np.empty(m + 1)
        row[0] = inside[0] if ok[0] else 0.0
        for j in range(1, m + 1):
            row[j] = (i * inside[j] + j * row[j - 1]) / (i + j) if ok[j] else 0.0
        inside = row
    return float(max(0.0, 1.0 - inside[m]))


def ks_noise_level(
    n_a: float,
    n_b: float | None = None,
    alpha: float = 0.05,
    *,
    draws_a=None,
    draws_b=None,
    n_perm: int = 2000,
    seed: int = 0,
) -> dict:
    """The noise level: the smallest KS distance d with P(D ≥ d) ≤ ``alpha`` for two samples of these sizes
    drawn from one distribution (the critical value of the level-``alpha`` test). Differences below it
    are within noise. One definition on every path; never above 1.

    - integer sizes with n_a·n_b ≤ EXACT_NOISE_MAX and no repeated draws: the exact distribution
      (:func:`ks_tail_exact`), a value of the lattice |i·n_b − j·n_a| / (n_a·n_b).
    - ``draws_a``/``draws_b`` with repeated values (networks drawn more than once, one entry per draw):
      the same definition on the permutation distribution over draws (:func:`ks_permutation_test`),
      which knows about the ties; also a lattice value, so a new Monte Carlo seed moves it by at most
      a lattice step near the boundary.
    - otherwise (large, or Kish effective sizes of weighted EDFs): Kolmogorov's asymptotic value, the
      limit of the same definition.

    NDS plots the mean distance between a sample and the pool it came from; this is a different, larger
    quantity (about 2.4× that at n = 64).

    Returns {"noise": value, "method": "permutation" | "exact" | "asymptotic"}."""
    if draws_a is not None and draws_b is not None:
        a, b = np.asarray(draws_a, float), np.asarray(draws_b, float)
        if len(np.unique(np.concatenate([a, b]))) < len(a) + len(b) or len(a) * len(b) > EXACT_NOISE_MAX:
            r = ks_permutation_test(a, b, alpha=alpha, n_perm=n_perm, seed=seed)
            return {"noise": r["noise"], "method": "permutation"}
        n_a, n_b = len(a), len(b)  # no repeats: the exact distribution applies as it is
    n_b = n_a if n_b is None else n_b
    if float(n_a).is_integer() and float(n_b).is_integer() and n_a * n_b <= EXACT_NOISE_MAX and n_a and n_b:
        return {"noise": _exact_critical(int(n_a), int(n_b), alpha), "method": "exact"}
    from scipy import special

    value = float(special.kolmogi(alpha) * math.sqrt((n_a + n_b) / (n_a * n_b)))
    return {"noise": min(1.0, value), "method": "asymptotic"}


def _exact_critical(n: int, m: int, alpha: float) -> float:
    """The smallest attainable D with P(D ≥ D) ≤ alpha (1 when even D = 1 is likelier than alpha)."""
    values = np.unique(np.abs(np.arange(n + 1)[:, None] * m - np.arange(m + 1)[None, :] * n)) / (n * m)
    values = values[values > 0]
    lo, hi = 0, len(values) - 1
    if ks_tail_exact(values[hi], n, m) > alpha:
        return 1.0
    while lo < hi:  # the tail probability falls as D grows: bisect for the first value at or below alpha
        mid = (lo + hi) // 2
        if ks_tail_exact(values[mid], n, m) <= alpha:
            hi = mid
        else:
            lo = mid + 1
    return float(values[lo])


def _attainable(v: int, n: int, m: int) -> bool:
    """Whether v = |i·m − j·n| for some 0 ≤ i ≤ n, 0 ≤ j ≤ m (n·m·D takes only these values)."""
    g = math.gcd(n, m)
    if v % g:
        return False
    ng, mg = n // g, m // g
    for p, q, P, Q in ((n, m, ng, mg), (m, n, mg, ng)):  # i·m − j·n = v, or j·n − i·m = v
        # i ≡ (v/g)·(m/g)⁻¹ (mod n/g); the smallest such i with i·m ≥ v (j ≥ 0) must not pass n
        i0 = (v // g) * pow(Q % P, -1, P) % P if P > 1 else 0
        need = -(-v // q)
        i = i0 + max(0, -(-(need - i0) // P)) * P
        if i <= p:
            return True
    return False


def _permutation_stats(values_sorted_labels: np.ndarray, last_of_tie: np.ndarray, n_a: int, n_b: int):
    """n_a·n_b·D for each row of 0/1 labels (1: in A) over the pooled draws in sorted order; integers."""
    in_a = np.cumsum(values_sorted_labels, axis=-1, dtype=np.int64)[..., last_of_tie]
    pos = np.flatnonzero(last_of_tie) + 1
    return np.abs(in_a * n_b - (pos - in_a) * n_a).max(axis=-1)


def ks_permutation_test(draws_a, draws_b, *, alpha: float = 0.05, n_perm: int = 2000, seed: int = 0) -> dict:
    """Two-sample KS test over draws by permutation: for repeated i.i.d. draws (a network drawn m times is
    m entries, each with the error of that network), where ties make the continuous-distribution tests
    conservative and Kish's effective n (meant for weights, not repeats) does not apply.

    Under the null the draws of both spaces are exchangeable, so the labels are shuffled over the pooled
    draws ``n_perm`` times (seeded). Returns {"ks", "p_value", "noise", "n_a", "n_b", "n_perm"}:
    p = (1 + #{D* ≥ D}) / (1 + n_perm) (a valid Monte Carlo p-value; Phipson & Smyth 2010), and the noise
    level as :func:`ks_noise_level` defines it: the smallest attainable D with P̂(D* ≥ D) ≤ alpha."""
    a, b = np.asarray(draws_a, float), np.asarray(draws_b, float)
    n_a, n_b = len(a), len(b)
    pooled = np.concatenate([a, b])
    order = np.argsort(pooled, kind="stable")
    values = pooled[order]
    last_of_tie = np.r_[values[1:] != values[:-1], True]  # compare the EDFs after each group of ties
    labels = (order < n_a).astype(np.int8)
    observed = int(_permutation_stats(labels, last_of_tie, n_a, n_b))
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // len(pooled))  # bounded memory for 100,000s of draws
    stats = np.concatenate(
        [
            _permutation_stats(
                rng.permuted(np.tile(labels, (min(chunk, n_perm - k), 1)), axis=1), last_of_tie, n_a, n_b
            )
            for k in range(0, n_perm, chunk)
        ]
    )
    scale = n_a * n_b
    p = (1 + int((stats >= observed).sum())) / (1 + n_perm)
    # the smallest lattice d with #{D* ≥ d} ≤ alpha·n_perm lies just above the (floor(alpha·n_perm)+1)-th largest D*
    allowed = int(math.floor(alpha * n_perm + 1e-9))
    if allowed >= n_perm:
        noise = 0.0
    else:
        s_star = int(np.sort(stats)[::-1][allowed])
        v = s_star + 1
        while v < scale and not _attainable(v, n_a, n_b):
            v += 1
        noise = min(1.0, v / scale)
    return {"ks": observed / scale, "p_value": p, "noise": noise, "n_a": n_a, "n_b": n_b, "n_perm": n_perm}


def dkw_epsilon(n: float, level: float = 0.95) -> float:
    """Half-width of the Dvoretzky–Kiefer–Wolfowitz band with Massart's constant (Massart 1990, Ann.
    Probab. 18:1269): P(sup_e |F_n(e) − F(e)| > ε) ≤ 2·exp(−2nε²), so ε = sqrt(ln(2/α) / (2n)), α = 1 − level,
    for n i.i.d. draws (repeated networks count once per draw). Holds for any F, continuous or not."""
    return math.sqrt(math.log(2 / (1 - level)) / (2 * n)) if n > 0 else 1.0


def dkw_band(errors, grid, *, counts=None, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Simultaneous DKW band of the (plain) EDF at ``grid``: F_n ± ε clipped to [0, 1]; it holds the true
    CDF at every e at once with probability at least ``level``. n = the number of draws."""
    e = np.asarray(errors, dtype=float)
    m = np.ones(len(e)) if counts is None else np.asarray(counts, dtype=float)
    f = edf(e, grid, m / m.sum())
    eps = dkw_epsilon(float(m.sum()), level)
    return np.clip(f - eps, 0.0, 1.0), np.clip(f + eps, 0.0, 1.0)


def bootstrap_sup_band(
    errors,
    grid,
    *,
    weights=None,
    weights_fn=None,
    complexity=None,
    counts=None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Simultaneous bootstrap band (sup-norm): F̂ ± c clipped to [0, 1], c the ``level`` quantile over
    resamples of sup_grid |F* − F̂| (Bickel & Freedman 1981). Unlike DKW it applies to weighted
    (complexity-normalised) EDFs too: ``weights`` are F̂'s weights, ``weights_fn`` recomputes them on a
    resample as in :func:`bootstrap_band`."""
    e = np.asarray(errors, dtype=float)
    owner = np.arange(len(e)) if counts is None else np.repeat(np.arange(len(e)), np.asarray(counts, dtype=np.int64))
    if weights is None and counts is not None:
        m = np.asarray(counts, dtype=float)
        weights = m / m.sum()
    f = edf(e, grid, weights)
    n = len(owner)
    rng = np.random.default_rng(seed)
    sup = np.empty(n_boot)
    for b in range(n_boot):
        idx = owner[rng.integers(0, n, n)]
        w = None
        if weights_fn is not None:
            w = weights_fn(np.asarray(complexity)[idx])
            if w.sum() == 0:
                w = None
        sup[b] = np.abs(edf(e[idx], grid, w) - f).max()
    c = float(np.quantile(sup, level))
    return np.clip(f - c, 0.0, 1.0), np.clip(f + c, 0.0, 1.0)
