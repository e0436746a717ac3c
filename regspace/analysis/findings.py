"""Findings: the statistics turned into the sentences a researcher wants to read.

For each pair of spaces one verdict, by rules stated once here (tests in :mod:`.effects`, all on one
sample: the draws, or with ``--normalize`` the complexity-normalised weighted sample at its effective n):

- **better**: the Mann–Whitney test (two-sided) rejects "neither space's errors tend to be lower"; the
  space whose models beat the other's with probability > ½ is better. Beside it the effect sizes: that
  probability, Cliff's δ and the Hodges–Lehmann shift with its 95 % CI.
- **differ**: not better, but the KS test rejects: the distributions differ; no direction is resolved.
- **equivalent**: the 95 % bootstrap CIs of the median shift and of the mean shift both lie within
  ±delta points (the mean carries the tails: a tail-only difference moves it, not the median nor the
  rank tests), the KS distance is below the noise level and the KS test does not reject. What is shown
  equivalent is the median and the mean; the KS test only fails to see a difference in shape.
- **not resolved at n**: none of these; with the number of models per space that would resolve a
  difference like the measured one (80 % power of Mann–Whitney or KS, simulated from the measured
  distributions).

With several pairs each kind of claim is Holm-corrected over the pairs (family-wise error ≤ 5 % per kind),
and the Findings say so. Then good ranges that exclude part of a parameter's sampled domain ("b ≤ 2"), each
only when it beats a permutation null (Holm-corrected over the parameters), the diverged and failed models
of each space, and the e_fit of each AnyNet space's best models. No plotting, no torch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from regspace.analysis.effects import (
    hodges_lehmann,
    holm,
    location_test,
    p_beats,
    sample_size,
    weighted_quantile,
)
from regspace.analysis.seeds import noise_by_space, noise_sentences, seeds_text
from regspace.analysis.table import counts, draws, space_errors
from regspace.population import split_population
from regspace.schema import HPARAM_COLUMNS, STAGE_PARAM_COLUMNS

DELTA = 0.3  # points of error: how close two medians must be (with confidence) to call spaces equivalent
ALPHA = 0.05
POWER = 0.8
POWER_SIMULATIONS, POWER_MAX_N = 200, 20_000  # models_to_resolve: simulations per n, the largest n tried
POWER_RULE = "1"  # models_to_resolve's rule; a change here drops every cached answer (it is in their keys)
# The sampled parameters analyses scan: the design's, then recipe fields drawn per model (NDS §5).
PARAMS = ["d", "w0", "wa", "wm", "b", "g", *STAGE_PARAM_COLUMNS, *HPARAM_COLUMNS]


def _shift_boot(a, b, wa=None, wb=None, *, n_boot: int = 1000, seed: int = 0):
    """median(a) - median(b) and its ``n_boot`` bootstrap replicates (each space resampled on its own),
    and mean(a) - mean(b) with its replicates from the same resamples. Weighted (normalised)
    samples: weighted medians and means, resampled with probability ∝ weight at their effective size, so
    every number comes from the normalised sample."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    if wa is None and wb is None:
        ma, ea = _resampled_stats(a, n_boot, lambda rows: rng.integers(0, len(a), (rows, len(a))), (np.median, np.mean))
        mb, eb = _resampled_stats(b, n_boot, lambda rows: rng.integers(0, len(b), (rows, len(b))), (np.median, np.mean))
        point = float(np.median(a) - np.median(b))
        mean = float(a.mean() - b.mean())
    else:

        def resampled(x, w):
            w = np.ones(len(x)) if w is None else np.asarray(w, float)
            size = max(1, round(sample_size(x, w)))
            # rng.choice(x, (rows, size), p=p) draws the same as one (n_boot, size) call, rows at a time
            return _resampled_stats(x, n_boot, lambda rows: rng.choice(len(x), (rows, size), p=w / w.sum()),
                                    (np.median, np.mean))  # fmt: skip

        (ma, ea), (mb, eb) = resampled(a, wa), resampled(b, wb)
        point = weighted_quantile(a, wa, 0.5) - weighted_quantile(b, wb, 0.5)
        mean = float(np.average(a, weights=wa) - np.average(b, weights=wb))
    return float(point), ma - mb, mean, ea - eb


_BOOT_CELLS = 4_000_000  # resampled values held at once (32 MB): bounded memory at 100,000s of draws


def _resampled_stats(x, n_boot: int, draw, stats) -> list[np.ndarray]:
    """Each of ``stats`` (row-wise reductions, called with axis=1) of ``n_boot`` resamples ``x[draw(rows)]``,
    drawn a few rows at a time. numpy's generators continue one stream across calls, so the resamples are
    those of a single ``draw(n_boot)`` and the numbers the same; only the memory is bounded."""
    out, done = [[] for _ in stats], 0
    while done < n_boot:
        idx = draw(rows := min(n_boot - done, max(1, _BOOT_CELLS // max(1, len(x)))))
        resamples = x[idx]
        for o, f in zip(out, stats):
            o.append(f(resamples, axis=1))
        done += rows
    return [np.concatenate(o) if o else np.empty(0) for o in out]


def models_to_resolve(
    a, b, wa=None, wb=None, *, alpha: float = ALPHA, seed: int = 0, n_sim: int = POWER_SIMULATIONS,
    max_n: int = POWER_MAX_N,
) -> int | None:
    """The smallest n per space (doubling from the current, effective, size) at which the Mann–Whitney or
    the KS test rejects at ``alpha`` in at least POWER of simulations drawn from the measured (weighted)
    distributions; None beyond ``max_n``."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    pa = None if wa is None else np.asarray(wa, float) / np.sum(wa)
    pb = None if wb is None else np.asarray(wb, float) / np.sum(wb)
    n = max(round(sample_size(a, wa)), round(sample_size(b, wb)), 4)
    while n <= max_n:
        x, y = rng.choice(a, (n_sim, n), p=pa), rng.choice(b, (n_sim, n), p=pb)
        mw = stats.mannwhitneyu(x, y, axis=1, method="asymptotic").pvalue
        if ((mw < alpha) | ks_asymp_rejects(x, y, alpha)).mean() >= POWER:
            return n
        n *= 2
    return None


def power_key(a, b, wa=None, wb=None, *, alpha: float = ALPHA, seed: int = 0) -> str:
    """The cache key of :func:`models_to_resolve`'s answer: a hash of everything it depends on (both
    samples and weights, as float64 bytes; alpha, seed, the simulation's size and rule), prefixed "power:"
    so that it never meets a model id in the store's analysis cache."""
    import hashlib

    h = hashlib.sha256()
    for v in (a, b, wa, wb):  # each with its length first: no two different inputs give the same bytes
        v = None if v is None else np.ascontiguousarray(v, dtype=np.float64).ravel()
        h.update(b"none;" if v is None else f"{len(v)};".encode() + v.tobytes())
    h.update(repr((float(alpha), int(seed), POWER, POWER_RULE, POWER_SIMULATIONS, POWER_MAX_N)).encode())
    return "power:" + h.hexdigest()[:40]


def cached_models_to_resolve(a, b, wa=None, wb=None, *, alpha: float = ALPHA, seed: int = 0,
                             cache: dict | None = None) -> int | None:  # fmt: skip
    """:func:`models_to_resolve`, read from and written to ``cache`` (the store's analysis cache, through
    JSON: an int or None, exact) under :func:`power_key`: a rerun of compare on the same data simulates
    nothing again."""
    if cache is None:
        return models_to_resolve(a, b, wa, wb, alpha=alpha, seed=seed)
    key = power_key(a, b, wa, wb, alpha=alpha, seed=seed)
    if key not in cache:
        cache[key] = models_to_resolve(a, b, wa, wb, alpha=alpha, seed=seed)
    return cache[key]


def _ks_rows(x, y) -> tuple[np.ndarray, float]:
    """Each row's two-sample KS statistic D, computed as ``scipy.stats.ks_2samp`` computes it, and the
    rounded effective size its asymptotic p-value uses. x: (rows, n1), y: (rows, n2).

    scipy evaluates the EDFs (count at or below / n) at every value of the row and takes the largest
    and the most negative difference. Here the values become ranks among the distinct values of all
    rows, each row's counts per rank are summed cumulatively, and the differences are taken at every
    rank: at a rank absent from the row the counts (hence the difference) are those of the next
    smaller value present, or 0 below all of them, and scipy's differences include 0 (at the largest
    value both EDFs are 1), so the extremes, and D, are the same floats."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    rows, n1, n2 = x.shape[0], x.shape[1], y.shape[1]
    support = np.unique(np.concatenate([x.ravel(), y.ravel()]))
    u = len(support)
    offset = (np.arange(rows) * u)[:, None]

    def cumulative(v):  # (rows, u): draws of the row at or below each distinct value
        counts = np.bincount((np.searchsorted(support, v) + offset).ravel(), minlength=rows * u)
        return np.cumsum(counts.reshape(rows, u), axis=1)

    diff = cumulative(x) / n1 - cumulative(y) / n2
    d = np.maximum(np.clip(-diff.min(axis=1), 0, 1), diff.max(axis=1))
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return d, float(np.round(m * n / (m + n)))


def ks_asymp_rows(x, y) -> np.ndarray:
    """``scipy.stats.ks_2samp(x[i], y[i], method="asymp").pvalue`` for every row i, the same numbers:
    scipy evaluates Kolmogorov's tail ``kstwo.sf(D, en)`` once per row; here once per distinct D."""
    from scipy import stats

    d, en = _ks_rows(x, y)
    distinct, back = np.unique(d, return_inverse=True)
    return np.clip(stats.kstwo.sf(distinct, en), 0, 1)[back]


def ks_asymp_rejects(x, y, alpha: float) -> np.ndarray:
    """``ks_asymp_rows(x, y) < alpha`` with the tail evaluated at about log2(distinct D) points: the
    tail falls as D grows, so a bisection over the sorted distinct D finds the smallest D that rejects."""
    from scipy import stats

    d, en = _ks_rows(x, y)
    distinct = np.unique(d)
    lo, hi = 0, len(distinct)  # distinct[hi:] reject, distinct[:lo] do not
    while lo < hi:
        mid = (lo + hi) // 2
        if float(np.clip(stats.kstwo.sf(distinct[mid], en), 0, 1)) < alpha:
            hi = mid
        else:
            lo = mid + 1
    return d >= distinct[lo] if lo < len(distinct) else np.zeros(len(d), dtype=bool)


def pair_statistics(a, b, wa=None, wb=None, *, delta: float = DELTA, seed: int = 0) -> dict:
    """One pair's numbers that do not depend on the other pairs: medians, the median shift a − b with its
    bootstrap CI and equivalence p (the larger bootstrap share beyond ±delta: the CI at level 1 − 2p lies
    within ±delta), Hodges–Lehmann shift and CI, P(a model of A beats one of B), Cliff's δ, the
    Mann–Whitney p-value; the same for the mean shift (which carries the tails). Errors in %, shifts in
    points; ``p_equivalence`` is the larger of the median's and the mean's."""
    shift, shifts, mean, means = _shift_boot(a, b, wa, wb, seed=seed)

    def beyond(x):  # the bootstrap share beyond ±delta on the likelier side: CI at 1 − 2p within ±delta
        return float(max((x >= delta).mean(), (x <= -delta).mean()))

    hl, hl_lo, hl_hi = hodges_lehmann(a, b, wa, wb)
    beats = p_beats(a, b, wa, wb)
    return {
        "median_a": weighted_quantile(a, wa, 0.5),
        "median_b": weighted_quantile(b, wb, 0.5),
        "median_shift": shift,
        "shift_ci": [float(np.quantile(shifts, 0.025)), float(np.quantile(shifts, 0.975))],
        "mean_shift": mean,
        "mean_shift_ci": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))],
        "p_equivalence": max(beyond(shifts), beyond(means)),
        "hl_shift": hl,
        "hl_ci": [hl_lo, hl_hi],
        "p_a_beats_b": beats,
        "cliffs_delta": 2 * beats - 1,  # > 0: A's errors tend to be lower
        "p_location": location_test(a, b, wa, wb),
        "n_a": sample_size(a, wa),
        "n_b": sample_size(b, wb),
    }


def _n_text(r: dict, kept: tuple[int, int] | None) -> str:
    na, nb = r["n_a"], r["n_b"]
    if kept is None:
        return f"n = {na:.0f}" if na == nb else f"n = {na:.0f} and {nb:.0f}"
    size = f"{na:.0f}" if round(na) == round(nb) else f"{na:.0f} and {nb:.0f}"
    return f"effective n = {size} (normalised sample: {kept[0]} and {kept[1]} draws kept)"


def _p(p: float) -> str:
    return f"{p:.2g}"


def pair_verdict(
    a_name,
    a,
    b_name,
    b,
    *,
    ks: float,
    p_value: float,
    noise: float,
    delta: float = DELTA,
    seed=0,
    wa=None,
    wb=None,
    stats: dict | None = None,
    adjusted: dict | None = None,
    family: int = 1,
    kept: tuple[int, int] | None = None,
    cache: dict | None = None,
):
    """One pair's verdict and its sentence (errors as draws, or a weighted sample with ``wa``/``wb``; KS
    numbers from compare, on the same sample). ``adjusted``: Holm-adjusted p-values over a family of
    ``family`` pairs ({"location", "ks", "equivalence"}); None: this pair alone (no correction).

    - better: the (adjusted) Mann–Whitney p < ALPHA; the winner is the space whose models tend to have
      the lower error (P(beats) > ½).
    - differ: else the (adjusted) KS p < ALPHA: the distributions differ, no direction is resolved.
    - equivalent: else the median and the mean shift's bootstrap CIs lie within ±delta (adjusted
      equivalence p < ALPHA/2, i.e. the 95 % CIs for one pair), KS below noise and not rejecting.
    - not resolved: none of these.
    """
    r = stats if stats is not None else pair_statistics(a, b, wa, wb, delta=delta, seed=seed)
    adj = adjusted or {"location": r["p_location"], "ks": p_value, "equivalence": r["p_equivalence"]}
    n = _n_text(r, kept)
    ma, mb = r["median_a"], r["median_b"]
    shift, (lo, hi) = r["median_shift"], r["shift_ci"]
    hl, (hl_lo, hl_hi) = r["hl_shift"], r["hl_ci"]

    def adjusted_text(key):
        return f" (adjusted {_p(adj[key])})" if family > 1 else ""

    stats_text = f"KS {ks:.3f} vs noise {noise:.3f}, p = {p_value:.2g}{adjusted_text('ks')}, {n}"
    mw_text = f"Mann–Whitney p = {_p(r['p_location'])}{adjusted_text('location')}"
    out = {"a": a_name, "b": b_name, "median_shift": shift, "shift_ci": [lo, hi], "ks": ks, "noise": noise}
    out["p_value"] = p_value
    out.update({k: v for k, v in r.items() if k not in out})
    out.update(p_location_adjusted=adj["location"], p_ks_adjusted=adj["ks"], p_equivalence_adjusted=adj["equivalence"])
    if adj["location"] < ALPHA:
        a_wins = r["p_a_beats_b"] > 0.5
        win, lose = (a_name, b_name) if a_wins else (b_name, a_name)
        beats = r["p_a_beats_b"] if a_wins else 1 - r["p_a_beats_b"]
        d, dl, dh = (-hl, -hl_hi, -hl_lo) if a_wins else (hl, hl_lo, hl_hi)  # how much lower the winner's errors
        mw, ml = (ma, mb) if a_wins else (mb, ma)
        out.update(verdict="better", winner=win)
        out["sentence"] = (
            f"{win} is better than {lose}: a model of {win} has the lower error with probability {beats:.2f} "
            f"(Cliff's δ {2 * beats - 1:+.2f}); its errors are {d:.2f} points lower (Hodges–Lehmann, 95 % CI "
            f"{dl:.2f} to {dh:.2f}); median error {mw:.2f} % vs {ml:.2f} %; {mw_text}; {stats_text}."
        )
        return out
    effects = (
        f"P({a_name} beats {b_name}) = {r['p_a_beats_b']:.2f} (Cliff's δ {r['cliffs_delta']:+.2f}), "
        f"Hodges–Lehmann shift {hl:+.2f} points (95 % CI {hl_lo:+.2f} to {hl_hi:+.2f})"
    )
    if adj["ks"] < ALPHA:
        out.update(verdict="differ")
        out["sentence"] = (
            f"{a_name} vs {b_name}: the distributions differ; no direction is resolved (median error "
            f"{ma:.2f} % vs {mb:.2f} %; {effects}; {mw_text}; {stats_text})."
        )
        return out
    medians_agree = adj["equivalence"] < ALPHA / 2  # the median's and the mean's CIs within ±delta
    mean, (mlo, mhi) = r["mean_shift"], r["mean_shift_ci"]
    means_text = f"the mean shift {mean:+.2f} (95 % CI {mlo:+.2f} to {mhi:+.2f})"
    if medians_agree and ks < noise and p_value >= ALPHA:
        out.update(verdict="equivalent")
        out["sentence"] = (
            f"{a_name} and {b_name} are equivalent within ±{delta:g} points in median and mean error: the "
            f"median shift is {shift:+.2f} (95 % CI {lo:+.2f} to {hi:+.2f}), {means_text}; equivalence p = "
            f"{_p(r['p_equivalence'])}{adjusted_text('equivalence')}; the EDFs differ by less than noise "
            f"({stats_text}); {effects}."
        )
        return out
    need = cached_models_to_resolve(a, b, wa, wb, alpha=ALPHA / family, seed=seed, cache=cache)
    out.update(verdict="not resolved", models_needed=need)
    level = f"at level 0.05/{family}, Holm's strictest step" if family > 1 else "at the 5 % level"
    more = (
        f"about {need} models per space would resolve a difference of this size (80 % power of Mann–Whitney "
        f"or KS {level})"
        if need
        else f"even {POWER_MAX_N:,} models per space would not resolve it: the measured distributions barely differ"
    )
    tails = ""
    if -delta <= lo and hi <= delta and not (-delta <= mlo and mhi <= delta):
        # a mean CI wholly outside ±delta shows the tails differ; one that only reaches past it shows nothing
        if mlo > delta or mhi < -delta:
            tails = (f"; the medians agree within ±{delta:g} points, but the means do not ({means_text}): "
                     "the tails differ")  # fmt: skip
        else:
            tails = (f"; the medians agree within ±{delta:g} points, but the mean shift's CI reaches past ±{delta:g} "
                     f"({means_text}): the tails are not shown to agree")  # fmt: skip
    out["sentence"] = (
        f"{a_name} vs {b_name}: not resolved at {n} (median shift {shift:+.2f} points, 95 % CI "
        f"{lo:+.2f} to {hi:+.2f}; {effects}; {mw_text}; {stats_text}){tails}; {more}."
    )
    return out


def good_range_sentences(
    df: pd.DataFrame, space: str, *, min_share: float = 0.1, seed: int = 0, n_perm: int = 999, alpha: float = ALPHA
) -> list[dict]:
    """Parameters whose good range (pycls's bootstrap: the 2.5–97.5 % range of the best of floor(25 %)
    of the draws, over 2,500 rounds) excludes a part of the sampled domain holding ≥ ``min_share`` of the
    draws, *and* excludes more than chance would: a permutation test of the excluded share
    (:func:`regspace.analysis.stats.good_range_test`, ``n_perm`` permutations), Holm-corrected over the
    parameters tested in this space at ``alpha``. Only those get a sentence, which states its p-value."""
    from regspace.analysis.stats import good_range_test

    g = df[(df.space == space) & (df.status == "ok") & df.sweep_error.notna()]
    if len(g) < 8:
        return []
    m = counts(g)
    tested = {}
    for p in PARAMS:
        if p not in g or g[p].isna().any() or g[p].nunique() < 3:
            continue
        shared = p[:-1]  # a per-stage value of a shared parameter (g1 of X_c) repeats that parameter
        if p[-1].isdigit() and shared in g and g[shared].notna().all() and (g[p] == g[shared]).all():
            continue
        tested[p] = g[p].to_numpy(float)
    if not tested:
        return []
    res = good_range_test(tested, g.sweep_error.to_numpy(float), counts=m, n_perm=n_perm, seed=seed)
    adjusted = dict(zip(tested, holm([res[p]["p"] for p in tested])))
    out = []
    fmt = "{:.3g}".format
    for p, v in tested.items():
        r = res[p]
        below, above = r["below"], r["above"]
        if adjusted[p] > alpha:
            continue
        if below >= min_share and above >= min_share:
            text = f"{fmt(r['low'])} ≤ {p} ≤ {fmt(r['high'])}"
        elif above >= min_share:
            text = f"{p} ≤ {fmt(r['high'])}"
        elif below >= min_share:
            text = f"{p} ≥ {fmt(r['low'])}"
        else:
            continue
        out.append(
            {
                "space": space,
                "param": p,
                "low": r["low"],
                "high": r["high"],
                "excluded": r["excluded"],
                "p_value": r["p"],
                "p_holm": float(adjusted[p]),
                "n_tested": len(tested),
                "n_perm": n_perm,
                "sentence": (
                    f"{space}: {text} in the good range (the best models' 2.5–97.5 % range, pycls's bootstrap; "
                    f"sampled {fmt(v.min())} to {fmt(v.max())}); it excludes {100 * r['excluded']:.0f} % of the "
                    f"draws, more than with the errors permuted: p = {adjusted[p]:.2g}, Holm-corrected over "
                    f"{len(tested)} parameters, {n_perm} permutations."
                ),
            }
        )
    return out


def efit_sentences(df: pd.DataFrame, space: str, *, top: int = 5, fit_cache: dict | None = None) -> list[dict]:
    """e_fit of an AnyNet space's best models (how close they are to a quantised linear design);
    ``fit_cache``: see :func:`regspace.analysis.fit.fit_frame`."""
    from regspace.analysis.fit import fit_frame

    g = df[(df.space == space) & (df.status == "ok") & df.sweep_error.notna()]
    if not len(g) or "stage_widths" not in g or ("w0" in g and g.w0.notna().all()):
        return []  # RegNet spaces are quantised linear by construction (or the table has no designs)
    best = g.nsmallest(top, "sweep_error")
    fits = fit_frame(best, fit_cache)
    med = float(np.median(fits.e_fit))
    return [
        {
            "space": space,
            "e_fit_median": med,
            "top": len(best),
            "sentence": f"{space}: its {len(best)} best models have median e_fit {med:.3f} "
            f"(0 = exactly a quantised linear RegNet; range {fits.e_fit.min():.3f} to {fits.e_fit.max():.3f}).",
        }
    ]


def best_model_bootstrap(a, b, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """How surely A's best model beats B's: each space's draws resampled on its own (``n_boot`` times),
    the minima compared. Returns p_a_best (P(min A* < min B*), ties counted half), the difference of
    the best errors min(a) − min(b) (points) and its percentile bootstrap CI at ``level``. The minimum's
    bootstrap is coarse (a resample's minimum is never below the sample's), so read the CI as a guide."""
    rng = np.random.default_rng([seed, 2])
    a, b = np.asarray(a, float), np.asarray(b, float)
    (ma,) = _resampled_stats(a, n_boot, lambda rows: rng.integers(0, len(a), (rows, len(a))), (np.min,))
    (mb,) = _resampled_stats(b, n_boot, lambda rows: rng.integers(0, len(b), (rows, len(b))), (np.min,))
    diff = ma - mb
    tail = (1 - level) / 2
    return {
        "p_a_best": float(np.mean(diff < 0) + 0.5 * np.mean(diff == 0)),
        "best_diff": float(a.min() - b.min()),
        "best_diff_ci": [float(np.quantile(diff, tail)), float(np.quantile(diff, 1 - tail))],
        "n_boot": n_boot,
    }


def best_model_sentence(a_name: str, b_name: str, r: dict) -> str:
    """The best-model comparison of :func:`best_model_bootstrap` in words."""
    lo, hi = r["best_diff_ci"]
    return (
        f"P({a_name}'s best model beats {b_name}'s) = {r['p_a_best']:.2f} over {r['n_boot']} bootstrap "
        f"resamples; best error {r['best_diff']:+.2f} points (95 % CI {lo:+.2f} to {hi:+.2f})"
    )


def lost_models(df: pd.DataFrame, spaces) -> list[dict]:
    """Per space with diverged or failed models: their counts and shares of the space's finished draws
    (ok + diverged + failed, repeats counted), so that models dropped from every statistic are named."""
    out = []
    for s in spaces:
        rows = df[df.space == s]
        m = counts(rows)
        status = rows.status.to_numpy() if "status" in rows else np.array(["ok"] * len(rows))
        n = {k: int(m[status == k].sum()) for k in ("ok", "diverged", "failed")}
        finished = sum(n.values())
        if not (n["diverged"] or n["failed"]) or not finished:
            continue
        parts = [
            f"{n[k]} of {finished} draws {k} ({100 * n[k] / finished:.1f} %)" for k in ("diverged", "failed") if n[k]
        ]
        out.append(
            {
                "space": s,
                "draws": finished,
                "diverged": n["diverged"],
                "failed": n["failed"],
                "diverged_share": n["diverged"] / finished,
                "failed_share": n["failed"] / finished,
                "sentence": f"{s}: {' and '.join(parts)}; they are left out of every statistic here.",
            }
        )
    return out


def pair_verdicts(
    err: dict,
    pairs: list[dict],
    *,
    weights: dict | None = None,
    kept: dict | None = None,
    delta=DELTA,
    seed=0,
    cache: dict | None = None,
):
    """Every pair's verdict, with Holm's correction over the pairs for each kind of claim (direction,
    difference, equivalence). ``err``: space → errors (draws, or per network with ``weights``: the
    normalised sample, weight 0 = not in it; ``kept``: its draws per space); ``pairs``: compare's KS
    numbers on the same sample.
    Returns (verdicts, correction) where correction says what was controlled, for the JSON and the text."""
    weights = weights or {}
    pairs = [p for p in pairs if p["a"] in err and p["b"] in err]
    stats = [
        pair_statistics(err[p["a"]], err[p["b"]], weights.get(p["a"]), weights.get(p["b"]), delta=delta, seed=seed)
        for p in pairs
    ]
    adjusted = {
        "location": holm([r["p_location"] for r in stats]),
        "ks": holm([p["p_value"] for p in pairs]),
        "equivalence": holm([r["p_equivalence"] for r in stats]),
    }

    verdicts = [
        pair_verdict(
            p["a"],
            err[p["a"]],
            p["b"],
            err[p["b"]],
            ks=p["ks"],
            p_value=p["p_value"],
            noise=p["noise"],
            delta=delta,
            seed=seed,
            wa=weights.get(p["a"]),
            wb=weights.get(p["b"]),
            stats=r,
            adjusted={k: float(v[i]) for k, v in adjusted.items()},
            family=len(pairs),
            kept=None if kept is None else (kept[p["a"]], kept[p["b"]]),
            cache=cache,
        )  # fmt: skip
        for i, (p, r) in enumerate(zip(pairs, stats))
    ]
    m = len(pairs)
    correction = {
        "method": "holm" if m > 1 else "none",
        "family": "pairs",
        "size": m,
        "alpha": ALPHA,
        "sentence": (
            f"Many comparisons: Holm's correction over the {m} pairs, for each kind of claim (a direction by "
            f"Mann–Whitney, a difference by KS, an equivalence by the bootstrap of the median and mean shifts), "
            f"so each kind is wrong for any pair with probability at most 5 %; effect sizes are per pair (95 % CIs)."
            if m > 1
            else "One pair: no correction for many comparisons."
        ),
    }
    return verdicts, correction


def findings(
    df: pd.DataFrame,
    pairs: list[dict],
    *,
    spaces=None,
    delta: float = DELTA,
    seed: int = 0,
    weights: dict | None = None,
    fit_cache: dict | None = None,
) -> dict:
    """The Findings section: pair verdicts (from compare's KS numbers), good ranges, e_fit. ``weights``
    (space → per-network weights, compare's normalised ones): the verdicts come from the normalised sample.
    ``fit_cache``: the store's analysis cache, read and filled: model id → e_fit fit
    (:func:`regspace.analysis.fit.fit_frame`) and :func:`power_key` → models needed."""
    groups = space_errors(df, spaces)
    err = {s: draws(g.sweep_error.to_numpy(float), counts(g)) for s, g in groups.items() if len(g)}
    kept = None
    if weights is not None:  # one sample: the normalised one (per network, weighted), for every number
        err = {s: g.sweep_error.to_numpy(float) for s, g in groups.items() if len(g)}
        weights = {s: np.asarray(weights[s], float) for s in err}
        kept = {s: int(counts(groups[s])[weights[s] > 0].sum()) for s in err}
    verdicts, correction = pair_verdicts(err, pairs, weights=weights, kept=kept, delta=delta, seed=seed,
                                         cache=fit_cache)  # fmt: skip
    ranges = [r for s in err for r in good_range_sentences(df, s, seed=seed)]
    efits = [r for s in err for r in efit_sentences(df, s, fit_cache=fit_cache)]
    which = "best-epoch (min_error, as pycls/NDS)" if df.attrs.get("error") == "min_error" else "final"
    when = f" after epoch {df.attrs['epoch']}" if df.attrs.get("epoch") else ""
    if df.attrs.get("epoch"):
        which = "best (up to that epoch)" if df.attrs.get("error") == "min_error" else "plain"
    drawn = f", over each space's first {df.attrs['first_draws']} draws" if df.attrs.get("first_draws") else ""
    seeds = df.attrs.get("seeds") or {}
    drawn += f" ({seeds_text(seeds)})" if seeds_text(seeds) else ""
    lead = (
        f"Errors are each model's {which} validation error{when}{drawn}; verdicts at the 5 % level, "
        f"equivalence within ±{delta:g}."
    )
    if weights is not None:
        lead += " Pair verdicts use the complexity-normalised sample (weighted, at its effective n)."
    if len({split_population(s)[1] for s in err}) > 1:  # compare.compare pairs within a regime only
        lead += (" Spaces are compared within each flops regime only (populations of different regimes differ in "
                 "budget; the trends across regimes read them together).")  # fmt: skip
    for v in verdicts:  # uncertainty on "keeps its best models" (experiments/ladder_claims.py states it)
        v["best_model"] = best_model_bootstrap(err[v["a"]], err[v["b"]], seed=seed)
    lost = lost_models(df, list(groups))  # never drop diverged or failed models silently
    pair_lines = [correction["sentence"]] * bool(verdicts) + [v["sentence"] for v in verdicts]
    noise = noise_by_space(df, list(err))  # one design's error from seed to seed, beside the resolved shifts
    noise_lines = noise_sentences(noise, verdicts, seeds.get("max", 1))
    pair_lines += noise_lines
    sentences = [lead] + [r["sentence"] for r in lost] + pair_lines + [r["sentence"] for r in ranges + efits]
    return {
        "delta": delta,
        "correction": correction,
        "pairs": verdicts,
        "good_ranges": ranges,
        "e_fit": efits,
        "lost": lost,
        "seed_noise": noise,
        "seed_noise_sentences": noise_lines,
        "sentences": sentences,
    }
