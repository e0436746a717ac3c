"""The ladder's claims table: each claim of DDS §3 held against what the ladder study measured.

    python experiments/ladder_claims.py [experiments/ladder.toml]   # → experiments/results/ladder/claims.md

Reads the study's store at its equal-draws prefix (as `regspace study run` analyses it) and writes, per
claim, the KS distance, p-value, noise level, direction and a verdict by the Findings' rules
(regspace/analysis/findings.py, Holm-corrected over the 15 pairs): "reproduced", "not resolved at n = …" or
"contradicted".
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from regspace.analysis.compare import compare
from regspace.analysis.findings import DELTA, best_model_bootstrap, best_model_sentence
from regspace.analysis.stats import good_range
from regspace.analysis.table import counts, draws, space_errors
from regspace.analysis_io import load_table
from regspace.study import analysis_options, load_study, open_store, progress


def _pair(cmp: dict, a: str, b: str) -> tuple[dict, dict]:
    pair = next(p for p in cmp["pairs"] if {p["a"], p["b"]} == {a, b})
    verdict = next(v for v in cmp["findings"]["pairs"] if {v["a"], v["b"]} == {a, b})
    return pair, verdict


def _stats(pair: dict) -> list[str]:
    return [f"{pair['ks']:.3f}", f"{pair['p_value']:.2g}", f"{pair['noise']:.3f}"]


def _median_direction(groups, a: str, b: str) -> str:
    ma, mb = (float(np.median(draws(groups[s].sweep_error.to_numpy(float), counts(groups[s])))) for s in (a, b))
    return f"{a} {ma:.2f} vs {b} {mb:.2f} (median)"


def no_worse(cmp, groups, a: str, b: str, n: int) -> list[str]:
    """Claim: restricting a to b costs nothing (the paper: the EDFs are virtually identical)."""
    pair, v = _pair(cmp, a, b)
    if v["verdict"] == "equivalent":
        verdict = "reproduced"
    elif v["verdict"] == "better":
        verdict = f"contradicted ({v['winner']} better)"
    elif v["verdict"] == "differ":  # not identical, though no direction is resolved
        verdict = "contradicted (the distributions differ; no direction is resolved)"
    else:
        verdict = f"not resolved at n = {n}"
    return [f"{b} ≈ {a}", *_stats(pair), _median_direction(groups, a, b), verdict]


def better(cmp, groups, worse: str, good: str, n: int) -> list[str]:
    """Claim: ``good`` is better than ``worse``."""
    pair, v = _pair(cmp, worse, good)
    if v["verdict"] == "better":
        verdict = "reproduced" if v["winner"] == good else "contradicted"
    elif v["verdict"] == "equivalent":  # the data bound any gain to under DELTA points
        verdict = f"not reproduced: equivalent within ±{DELTA} points"
    elif v["verdict"] == "differ":
        verdict = f"not resolved at n = {n} (the distributions differ; no direction is resolved)"
    else:
        verdict = f"not resolved at n = {n}"
    return [f"{good} better than {worse}", *_stats(pair), _median_direction(groups, worse, good), verdict]


def regnet_keeps_the_best(cmp, groups, n: int) -> list[str]:
    """Claim: RegNetX is better on average than X_e while keeping its best models."""
    pair, v = _pair(cmp, "X_e", "RegNetX")
    e = {s: draws(groups[s].sweep_error.to_numpy(float), counts(groups[s])) for s in ("X_e", "RegNetX")}
    mean_better = e["RegNetX"].mean() < e["X_e"].mean()
    keeps = e["RegNetX"].min() <= e["X_e"].min() + DELTA
    best = best_model_sentence("RegNetX", "X_e", best_model_bootstrap(e["RegNetX"], e["X_e"], seed=0))
    direction = (
        f"mean {e['RegNetX'].mean():.2f} vs {e['X_e'].mean():.2f}; best {e['RegNetX'].min():.2f} vs "
        f"{e['X_e'].min():.2f} (RegNetX vs X_e); {best}"
    )
    if v["verdict"] == "better" and v["winner"] == "RegNetX" and keeps:
        verdict = "reproduced"
    elif v["verdict"] == "better" and (v["winner"] == "X_e" or not keeps):
        verdict = "contradicted"
    else:
        verdict = f"not resolved at n = {n}" + ("" if mean_better else " (mean not lower)")
    return ["RegNetX better on average, best models kept", *_stats(pair), direction, verdict]


def good_range_claim(df, space: str, param: str, claim: str, holds, against, n: int, region) -> list[str]:
    """Claim about a parameter's good range (95 % bootstrap, as DDS §3.2): reproduced when the range lies
    where the claim says, contradicted when it lies entirely where the claim says it should not. The
    budget conditions the population, so the text says how many draws fell where the claim points."""
    g = df[(df.space == space) & (df.status == "ok") & df.sweep_error.notna()]
    c = counts(g)
    r = good_range(g[param].to_numpy(float), g.sweep_error.to_numpy(float), counts=c, seed=0)
    lo, hi = r["low"], r["high"]
    values = g[param].to_numpy(float)
    inside = int(c[region(values)].sum())
    text = (
        f"{space}: {param} in [{lo:.3g}, {hi:.3g}] (sampled {values.min():.3g}–{values.max():.3g}; "
        f"{inside} of {int(c.sum())} draws in the claimed region)"
    )
    if holds(lo, hi):
        verdict = "reproduced"
    elif against(lo, hi):
        verdict = "contradicted"
    else:
        verdict = f"not resolved at n = {n}"
    return [claim, "-", "-", "-", text, verdict]


def population_table(groups, spaces) -> list[str]:
    """Each space's errors (final validation error, %, every draw counted)."""
    out = [
        "| space | draws | median | mean | p25 | p75 | p90 | min | draws > 20 % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in spaces:
        e = draws(groups[s].sweep_error.to_numpy(float), counts(groups[s]))
        q = np.percentile(e, [50, 25, 75, 90])
        out.append(
            f"| {s} | {len(e)} | {q[0]:.2f} | {e.mean():.2f} | {q[1]:.2f} | {q[2]:.2f} | {q[3]:.2f} | {e.min():.2f} | "
            f"{int((e > 20).sum())} |"
        )
    return out


def main(study_file: str = "experiments/ladder.toml") -> Path:
    study = load_study(study_file)
    store = open_store(study, create=False)
    opts = analysis_options(study, store)
    if opts["first_draws"] == 0:
        sys.exit("no draw is trained in every space yet: nothing to compare")
    df = load_table(store, **opts)
    cmp = compare(df)
    groups = space_errors(df)
    n = progress(store, study)["equal"]
    rows = [
        no_worse(cmp, groups, "X_a", "X_b", n),
        no_worse(cmp, groups, "X_b", "X_c", n),
        better(cmp, groups, "X_c", "X_d", n),
        better(cmp, groups, "X_d", "X_e", n),
        regnet_keeps_the_best(cmp, groups, n),
        good_range_claim(df, "X_b", "b", "b ≤ 2 in the good range", lambda lo, hi: hi <= 2, lambda lo, hi: lo > 2, n,
                         lambda v: v <= 2),  # fmt: skip
        good_range_claim(df, "X_c", "g", "g > 1 in the good range", lambda lo, hi: lo > 1, lambda lo, hi: hi <= 1, n,
                         lambda v: v > 1),  # fmt: skip
    ]
    header = ["claim (DDS §3)", "KS", "p-value", "noise (95% crit.)", "direction / measured", "verdict"]
    lines = [
        f"Ladder claims at n = {n} draws per space (recipe {opts['recipe_hash']}, final validation error; "
        f"verdicts by the Findings' rules, equivalence within ±{DELTA} points).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    lines += ["", *population_table(groups, study.spaces)]
    out = study.output / "claims.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return out


if __name__ == "__main__":
    main(*sys.argv[1:])
