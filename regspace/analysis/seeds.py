"""Seeds: one design trained several times, its errors averaged, and the seed-to-seed noise measured.

A design's result under a recipe is the set of its seeds' results (schema.RESULT_KEY has the seed). The
analyses use the per-design mean of the seeds that finished ok (:func:`per_design`); the noise is the
spread of one design's errors from seed to seed, pooled over designs (:func:`seed_noise`):

- the pooled within-design s.d.: sqrt(Σ_i Σ_j (x_ij − x̄_i)² / (N − a)) over the a designs with at
  least two ok seeds (N runs), with the chi-square CI of the pooled variance on N − a degrees of freedom;
- ICC(1), the share of a single run's error variance that lies between designs, from the one-way ANOVA
  (MSB − MSW) / (MSB + (k₀ − 1) MSW), with its F-based CI (McGraw & Wong 1996, case 1; k₀ the
  average group size of an unbalanced design, Snedecor's formula).

Pure: pandas and scipy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from regspace.schema import SETTLED

ERROR_COLUMNS = ("error", "min_error", "test_error", "train_loss")  # averaged over a design's ok seeds
LEVEL = 0.95


def _mean_curve(curves) -> tuple | None:
    """The epoch-by-epoch mean of the seeds' learning curves, as long as the shortest of them."""
    curves = [np.asarray(c, float) for c in curves if c is not None and not isinstance(c, float) and len(c)]
    if not curves:
        return None
    n = min(len(c) for c in curves)
    return tuple(np.mean([c[:n] for c in curves], axis=0).tolist())


def design_status(statuses) -> str:
    """A design's status from its seeds' result statuses (None: no result yet): pending while a seed has
    none, else ok when any seed finished ok (the design's error is the mean of those), else diverged when
    any diverged, else failed."""
    statuses = list(statuses)
    if not statuses or any(s is None for s in statuses):
        return "pending"
    for status in ("ok", *[s for s in SETTLED if s != "ok"]):
        if status in statuses:
            return status
    return "failed"


def per_design(results: pd.DataFrame, error: str = "error") -> tuple[pd.DataFrame, dict]:
    """One row per model_id from ``results`` (one row per model and seed; columns model_id, seed, status,
    the error columns, val_errors, …): the error columns are the mean over the model's ok seeds, the
    learning curve their epoch-by-epoch mean (cut to the shortest), the status :func:`design_status` of its
    seeds; every other column is its first row's. Added columns: ``seeds`` (ok seeds averaged) and
    ``seed_errors`` (the tuple of those seeds' ``error`` values, in seed order: what :func:`seed_noise`
    reads).

    Returns (the frame, a summary {"min", "max": ok seeds per ok design; "runs": results; "lost": runs
    that diverged or failed beside an ok seed of their design}). One result per model gives the frame back
    unchanged but for the two columns."""
    if results.empty:
        out = results.assign(seeds=pd.Series(dtype="int64"), seed_errors=pd.Series(dtype=object))
        return out, {"min": 0, "max": 0, "runs": 0, "lost": 0}
    if not results.model_id.duplicated().any():  # one seed per design: nothing to average
        ok = results.status == "ok"
        single = [(float(e),) if k else () for e, k in zip(results[error], ok)]
        out = results.assign(seeds=ok.astype("int64"), seed_errors=single)
        return out, {"min": int(ok.any()), "max": int(ok.any()), "runs": int(len(results)), "lost": 0}
    r = results.sort_values(["model_id", "seed"], kind="stable") if "seed" in results else results
    ok = r.status == "ok"
    rows, lost = [], 0
    for _, g in r.groupby("model_id", sort=False):
        first = g.iloc[0].to_dict()
        good = g[ok.loc[g.index]]
        first["status"] = design_status(g.status)
        if len(good):
            first = {**good.iloc[0].to_dict(), "status": "ok"}
            for c in ERROR_COLUMNS:
                if c in good:
                    first[c] = float(good[c].mean()) if good[c].notna().any() else np.nan
            if "val_errors" in good:
                first["val_errors"] = _mean_curve(good.val_errors)
            lost += len(g) - len(good)
        first["seeds"] = int(len(good))
        first["seed_errors"] = tuple(float(x) for x in good[error]) if len(good) else ()
        rows.append(first)
    out = pd.DataFrame(rows, columns=[*results.columns, "seeds", "seed_errors"])
    counts = out.seeds[out.status == "ok"]
    summary = {
        "min": int(counts.min()) if len(counts) else 0,
        "max": int(counts.max()) if len(counts) else 0,
        "runs": int(len(results)),
        "lost": int(lost),
    }
    return out, summary


def seeds_text(summary: dict | None) -> str:
    """How the errors combine seeds, for titles and the Findings: "" for one seed per design."""
    if not summary or summary.get("max", 0) <= 1:
        return ""
    k = summary["max"] if summary["min"] == summary["max"] else f"{summary['min']}–{summary['max']}"
    return f"mean of {k} seeds per design"


def seed_noise(groups, *, level: float = LEVEL) -> dict | None:
    """The seed noise of a set of designs: ``groups`` holds each design's errors over its seeds (one
    sequence per design; designs with fewer than two are left out). None when fewer than two designs have
    two seeds or more, or the runs have no spread at all.

    Returns {"designs": a, "runs": N, "df": N − a, "sd": pooled within-design s.d. (points), "sd_ci":
    [low, high] from the chi-square CI of the pooled variance, "between_sd": the between-design s.d. of a
    single run's error (ANOVA estimate, 0 when negative), "icc": ICC(1), "icc_ci": its F-based CI,
    "f": MSB / MSW, "k0": the average seeds per design, "level"}."""
    from scipy import stats

    xs = [np.asarray(g, float) for g in groups]
    xs = [x[np.isfinite(x)] for x in xs]
    xs = [x for x in xs if len(x) >= 2]
    a = len(xs)
    if a < 2:
        return None
    n = np.array([len(x) for x in xs], float)
    big_n = n.sum()
    means = np.array([x.mean() for x in xs])
    grand = np.concatenate(xs).mean()
    ssw = float(sum(((x - x.mean()) ** 2).sum() for x in xs))
    ssb = float((n * (means - grand) ** 2).sum())
    df_w, df_b = big_n - a, a - 1
    msw, msb = ssw / df_w, ssb / df_b
    if msw == 0:
        return None
    tail = (1 - level) / 2
    var_lo = df_w * msw / stats.chi2.ppf(1 - tail, df_w)
    var_hi = df_w * msw / stats.chi2.ppf(tail, df_w)
    k0 = (big_n - (n**2).sum() / big_n) / df_b
    f = msb / msw
    f_lo = f / stats.f.ppf(1 - tail, df_b, df_w)
    f_hi = f * stats.f.ppf(1 - tail, df_w, df_b)

    def icc(x):
        return float((x - 1) / (x + k0 - 1))

    return {
        "designs": int(a),
        "runs": int(big_n),
        "df": int(df_w),
        "sd": float(np.sqrt(msw)),
        "sd_ci": [float(np.sqrt(var_lo)), float(np.sqrt(var_hi))],
        "between_sd": float(np.sqrt(max(0.0, (msb - msw) / k0))),
        "icc": icc(f),
        "icc_ci": [icc(f_lo), icc(f_hi)],
        "f": float(f),
        "k0": float(k0),
        "level": level,
    }


def noise_by_space(df: pd.DataFrame, spaces) -> dict | None:
    """:func:`seed_noise` per space and over every design of ``spaces`` (``df``: the analysis table, with
    ``seed_errors`` per design; only status ok rows count). None when no space has two designs with two
    seeds or more."""
    if "seed_errors" not in df:
        return None
    ok = df[df.status == "ok"]
    per_space = {s: seed_noise(ok[ok.space == s].seed_errors) for s in spaces}
    pooled = seed_noise(ok[ok.space.isin(list(spaces))].seed_errors)
    if pooled is None:
        return None
    return {"all": pooled, "spaces": {s: v for s, v in per_space.items() if v is not None}}


def noise_sentences(noise: dict | None, verdicts: list[dict], seeds: int) -> list[str]:
    """The seed noise in words, then one sentence per resolved shift (a pair whose verdict is "better")
    comparing its Hodges–Lehmann shift with the noise: the shift in units of a single run's seed s.d.
    and of the s.d. of a mean of ``seeds`` runs (σ/√seeds)."""
    if noise is None:
        return []
    r = noise["all"]
    lo, hi = r["sd_ci"]
    ilo, ihi = r["icc_ci"]
    out = [
        f"Seed noise: one training run's error varies from seed to seed with s.d. {r['sd']:.2f} points "
        f"(pooled over {r['designs']} designs with two seeds or more, {r['runs']} runs; 95 % CI {lo:.2f} to "
        f"{hi:.2f}); {100 * r['icc']:.0f} % of a run's error variance lies between designs (ICC(1) "
        f"{r['icc']:.2f}, 95 % CI {ilo:.2f} to {ihi:.2f})."
    ]
    k = max(1, int(seeds))
    mean_sd = r["sd"] / np.sqrt(k)
    for v in verdicts:
        if v.get("verdict") != "better":
            continue
        a_wins = v["winner"] == v["a"]
        shift = abs(v["hl_shift"])
        lose = v["b"] if a_wins else v["a"]
        per = f"; the s.d. of a mean of {k} seeds is {mean_sd:.2f}, so the shift is {shift / mean_sd:.1f} times it" * (
            k > 1
        )
        out.append(
            f"{v['winner']} vs {lose}: the resolved shift of {shift:.2f} points (Hodges–Lehmann) is "
            f"{shift / r['sd']:.1f} times one run's seed s.d. ({r['sd']:.2f}, 95 % CI {lo:.2f} to {hi:.2f})"
            f"{per}."
        )
    return out
