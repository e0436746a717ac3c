"""Findings: the statistics turned into the sentences a researcher wants to read.

For each pair of spaces one verdict, by rules stated once here:

- **better**: the KS test rejects one distribution at the 5 % level (p < 0.05); the space with the lower
  median error is better, by the median shift with its 95 % bootstrap CI.
- **equivalent**: the KS distance is below the noise level *and* the 95 % CI of the median shift lies
  within ±delta points. A difference that is merely not significant is not evidence of equivalence.
- **not resolved at n**: neither; with the number of models per space that would resolve a difference
  like the measured one (80 % power of the KS test at the 5 % level, simulated by resampling the
  measured distributions).

Then good ranges that exclude part of a parameter's sampled domain ("b ≤ 2"), each only when it beats a
permutation null (Holm-corrected over the parameters), the diverged and failed models of each space, and
the e_fit of each AnyNet space's best models. No plotting, no torch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from regspace.analysis.table import counts, draws, space_errors
from regspace.schema import STAGE_PARAM_COLUMNS

DELTA = 0.3  # points of error: how close two medians must be (with confidence) to call spaces equivalent
ALPHA = 0.05
POWER = 0.8
PARAMS = ["d", "w0", "wa", "wm", "b", "g", *STAGE_PARAM_COLUMNS]


def median_shift_ci(a, b, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """median(a) - median(b) over draws, with a percentile bootstrap CI (each space resampled on its own)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    ia = rng.integers(0, len(a), (n_boot, len(a)))
    ib = rng.integers(0, len(b), (n_boot, len(b)))
    shifts = np.median(a[ia], axis=1) - np.median(b[ib], axis=1)
    tail = (1 - level) / 2
    return float(np.median(a) - np.median(b)), float(np.quantile(shifts, tail)), float(np.quantile(shifts, 1 - tail))


def models_to_resolve(a, b, *, seed: int = 0, n_sim: int = 200, max_n: int = 20_000) -> int | None:
    """The smallest n per space (doubling from the current size) at which the KS test at ALPHA rejects
    in at least POWER of simulations drawn from the measured distributions; None beyond ``max_n``."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = max(len(a), len(b), 4)
    while n <= max_n:
        hits = 0
        for _ in range(n_sim):
            x, y = rng.choice(a, n), rng.choice(b, n)
            hits += stats.ks_2samp(x, y, method="asymp").pvalue < ALPHA
        if hits >= POWER * n_sim:
            return n
        n *= 2
    return None


def pair_verdict(a_name, a, b_name, b, *, ks: float, p_value: float, noise: float, delta: float = DELTA, seed=0):
    """One pair's verdict and its sentence (errors as draws; KS numbers from compare)."""
    shift, lo, hi = median_shift_ci(a, b, seed=seed)
    n = f"n = {len(a)}" if len(a) == len(b) else f"n = {len(a)} and {len(b)}"
    ma, mb = float(np.median(a)), float(np.median(b))
    stats_text = f"KS {ks:.3f} vs noise {noise:.3f}, p = {p_value:.2g}, {n}"
    out = {"a": a_name, "b": b_name, "median_shift": shift, "shift_ci": [lo, hi], "ks": ks, "noise": noise}
    out["p_value"] = p_value
    if p_value < ALPHA:
        win, lose = (a_name, b_name) if ma < mb else (b_name, a_name)
        d, dl, dh = (-shift, -hi, -lo) if ma < mb else (shift, lo, hi)  # how much lower the winner's median is
        out.update(verdict="better", winner=win)
        out["sentence"] = (
            f"{win} is better than {lose}: median error {min(ma, mb):.2f} % vs {max(ma, mb):.2f} %, "
            f"{d:.2f} points lower (95 % CI {dl:.2f} to {dh:.2f}); {stats_text}."
        )
    elif ks < noise and -delta <= lo and hi <= delta:
        out.update(verdict="equivalent")
        out["sentence"] = (
            f"{a_name} and {b_name} are equivalent within ±{delta:g} points: the median shift is {shift:+.2f} "
            f"(95 % CI {lo:+.2f} to {hi:+.2f}) and the EDFs differ by less than noise ({stats_text})."
        )
    else:
        need = models_to_resolve(a, b, seed=seed)
        out.update(verdict="not resolved", models_needed=need)
        more = (
            f"about {need} models per space would resolve a difference of this size (80 % power)"
            if need
            else "even 20,000 models per space would not resolve it: the measured distributions barely differ"
        )
        out["sentence"] = (
            f"{a_name} vs {b_name}: not resolved at {n} (median shift {shift:+.2f} points, 95 % CI "
            f"{lo:+.2f} to {hi:+.2f}; {stats_text}); {more}."
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
    from regspace.analysis.stats import good_range_test, holm

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


def efit_sentences(df: pd.DataFrame, space: str, *, top: int = 5) -> list[dict]:
    """e_fit of an AnyNet space's best models (how close they are to a quantised linear design)."""
    from regspace.analysis.fit import fit_frame

    g = df[(df.space == space) & (df.status == "ok") & df.sweep_error.notna()]
    if not len(g) or "stage_widths" not in g or ("w0" in g and g.w0.notna().all()):
        return []  # RegNet spaces are quantised linear by construction (or the table has no designs)
    best = g.nsmallest(top, "sweep_error")
    fits = fit_frame(best)
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
    ma = a[rng.integers(0, len(a), (n_boot, len(a)))].min(axis=1)
    mb = b[rng.integers(0, len(b), (n_boot, len(b)))].min(axis=1)
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


def findings(df: pd.DataFrame, pairs: list[dict], *, spaces=None, delta: float = DELTA, seed: int = 0) -> dict:
    """The Findings section: pair verdicts (from compare's KS numbers), good ranges, e_fit."""
    groups = space_errors(df, spaces)
    err = {s: draws(g.sweep_error.to_numpy(float), counts(g)) for s, g in groups.items() if len(g)}
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
        )  # fmt: skip
        for p in pairs
        if p["a"] in err and p["b"] in err
    ]
    ranges = [r for s in err for r in good_range_sentences(df, s, seed=seed)]
    efits = [r for s in err for r in efit_sentences(df, s)]
    which = "best-epoch (min_error, as pycls/NDS)" if df.attrs.get("error") == "min_error" else "final"
    when = f" after epoch {df.attrs['epoch']}" if df.attrs.get("epoch") else ""
    if df.attrs.get("epoch"):
        which = "best (up to that epoch)" if df.attrs.get("error") == "min_error" else "plain"
    drawn = f", over each space's first {df.attrs['first_draws']} draws" if df.attrs.get("first_draws") else ""
    lead = (
        f"Errors are each model's {which} validation error{when}{drawn}; verdicts at the 5 % level, "
        f"equivalence within ±{delta:g}."
    )
    for v in verdicts:  # uncertainty on "keeps its best models" (experiments/ladder_claims.py states it)
        v["best_model"] = best_model_bootstrap(err[v["a"]], err[v["b"]], seed=seed)
    lost = lost_models(df, list(groups))  # never drop diverged or failed models silently
    sentences = [lead] + [r["sentence"] for r in lost] + [v["sentence"] for v in verdicts]
    sentences += [r["sentence"] for r in ranges + efits]
    return {"delta": delta, "pairs": verdicts, "good_ranges": ranges, "e_fit": efits, "lost": lost,
            "sentences": sentences}  # fmt: skip
