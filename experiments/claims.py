"""Claims tables: each claim of the papers that a study tests, held against what the study measured.

    python experiments/claims.py experiments/design_choices.toml   # → <the study's output>/claims.md
    python experiments/claims.py experiments/ladder.toml           # the ladder's (ladder_claims.py calls this)

A registry (CLAIMS) maps a study's name to the function that lists its claims. Each claim's verdict comes
from the Findings' rules (regspace/analysis/findings.py: Mann–Whitney for a direction, KS for a difference,
the bootstrap of the median and mean shifts for an equivalence, each Holm-corrected over every pair the
study compares) or, for the regimes, from the trends' rule (regspace/analysis/trends.trend_word). A verdict
is "reproduced", "contradicted", "not reproduced" (the data bound the effect to under the equivalence
margin) or "not resolved at n = …", and then, outside the ladder's published table, with the number of
models per space that would resolve it (findings.models_to_resolve: 80 % power, simulated from the measured
distributions).

A study stopped part-way is read at its equal-draws prefix, as `regspace study run` analyses it. When some
spaces have not finished a single draw that all others have, the table is still written, over the spaces
that have, at their common prefix, headed PARTIAL: its claims on the missing spaces are listed as not yet
measured, and its Holm family is the pairs of those spaces only.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from regspace.analysis.compare import compare
from regspace.analysis.findings import DELTA, POWER_MAX_N, best_model_bootstrap, best_model_sentence
from regspace.analysis.seeds import noise_by_space
from regspace.analysis.stats import good_range
from regspace.analysis.table import counts, draws, space_errors
from regspace.analysis.trends import FLAT_SLOPE, regime_trends
from regspace.analysis_io import load_table
from regspace.errors import RegspaceError
from regspace.study import analysis_options, load_study, open_store, progress

# -- the shared verdict helpers (first written for the ladder; its table is unchanged by them) -------------


def _pair(cmp: dict, a: str, b: str) -> tuple[dict, dict]:
    pair = next(p for p in cmp["pairs"] if {p["a"], p["b"]} == {a, b})
    verdict = next(v for v in cmp["findings"]["pairs"] if {v["a"], v["b"]} == {a, b})
    return pair, verdict


def _stats(pair: dict) -> list[str]:
    return [f"{pair['ks']:.3f}", f"{pair['p_value']:.2g}", f"{pair['noise']:.3f}"]


def _median_direction(groups, a: str, b: str) -> str:
    ma, mb = (float(np.median(draws(groups[s].sweep_error.to_numpy(float), counts(groups[s])))) for s in (a, b))
    return f"{a} {ma:.2f} vs {b} {mb:.2f} (median)"


def needed_text(v: dict) -> str:
    """What would resolve an unresolved pair, from the Findings' own power simulation (``models_needed``,
    filled for a "not resolved" verdict): 80 % power of Mann–Whitney or KS at Holm's strictest level."""
    need = v.get("models_needed")
    if v["verdict"] == "differ":  # KS already rejects: the power rule (MW or KS) is met at this n
        return "; the Findings have no power rule for a direction alone: more draws than now"
    if need:
        return f"; about {need} per space would resolve it (80 % power)"
    return f"; even {POWER_MAX_N:,} per space would not resolve it (the distributions barely differ)"


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


def better(cmp, groups, worse: str, good: str, n: int, *, claim: str | None = None, need: bool = False) -> list[str]:
    """Claim: ``good`` is better than ``worse``. ``need``: an unresolved verdict says the n that would
    resolve it (the ladder's published table predates this and leaves it out)."""
    pair, v = _pair(cmp, worse, good)
    if v["verdict"] == "better":
        verdict = "reproduced" if v["winner"] == good else "contradicted"
    elif v["verdict"] == "equivalent":  # the data bound any gain to under DELTA points
        verdict = f"not reproduced: equivalent within ±{DELTA} points"
    elif v["verdict"] == "differ":
        verdict = f"not resolved at n = {n} (the distributions differ; no direction is resolved)"
    else:
        verdict = f"not resolved at n = {n}"
    sign = 1 if v["a"] == good else -1  # orients the pair's Hodges–Lehmann shift as good − worse
    if need and verdict.startswith("not resolved"):
        verdict += needed_text(v)
        if v.get("models_needed") and sign * v["hl_shift"] > 0:  # the simulation resolves the measured direction
            verdict += ", and the measured shift points against the claim"
    measured = _median_direction(groups, worse, good)
    if need:  # the effect size beside the medians: Hodges–Lehmann shift good − worse with its 95 % CI
        lo, hi = sorted(sign * x for x in v["hl_ci"])
        measured += f"; shift {sign * v['hl_shift']:+.2f} points (95 % CI {lo:+.2f} to {hi:+.2f})"
    return [claim or f"{good} better than {worse}", *_stats(pair), measured, verdict]


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


def extrapolated_n(n: int, half_width: float, target: float) -> int | None:
    """Draws per population at which a CI of half-width ``half_width`` at ``n`` shrinks to ``target``,
    extrapolated as half-width ∝ 1/√n (what a least-squares slope's or a shift's CI does when the draws
    grow and the measured spread stays); None when ``target`` ≤ 0 (no n reaches it). An extrapolation,
    not a power calculation: the Findings have one only for a pair of spaces."""
    if target <= 0 or not math.isfinite(half_width):
        return None
    return max(n, math.ceil(n * (half_width / target) ** 2))


def gain_larger(cmp, with_pair: tuple[str, str], without_pair: tuple[str, str], n: int, claim: str) -> list[str]:
    """Claim: a change (``(before, after)``) gains more in one setting than in another — e.g. Swish gains
    more with depthwise convolutions. The Findings compare spaces in pairs only, so this reads the two pairs'
    Hodges–Lehmann shifts (after − before, negative: lower error) and their 95 % CIs: reproduced when the
    CIs are disjoint with the larger gain where the claim puts it, contradicted when disjoint the other
    way, else not resolved, with the n at which the CIs would part (:func:`extrapolated_n`, each half-width
    ∝ 1/√n). Disjoint 95 % CIs are a conservative reading of a difference of shifts, and the claim is not in
    the Findings' Holm family."""

    def shift(before, after):
        _, v = _pair(cmp, before, after)
        sign = 1 if v["a"] == after else -1  # hl_shift is a − b
        lo, hi = sorted(sign * x for x in v["hl_ci"])
        return sign * v["hl_shift"], lo, hi

    (s1, lo1, hi1), (s2, lo2, hi2) = shift(*with_pair), shift(*without_pair)
    text = (
        f"{with_pair[1]} − {with_pair[0]} {s1:+.2f} (95 % CI {lo1:+.2f} to {hi1:+.2f}) vs {without_pair[1]} − "
        f"{without_pair[0]} {s2:+.2f} (95 % CI {lo2:+.2f} to {hi2:+.2f}) points (Hodges–Lehmann)"
    )
    if hi1 < lo2:
        verdict = "reproduced"
    elif hi2 < lo1:
        verdict = "contradicted"
    else:
        half = (hi1 - lo1) / 2 + (hi2 - lo2) / 2
        need = extrapolated_n(n, half, abs(s1 - s2))
        verdict = f"not resolved at n = {n} (the CIs overlap)" + (
            f"; about {need} per space would part them (extrapolated, CI ∝ 1/√n)"
            if need and s1 < s2
            else "; the measured gains are in the other order: at these gains no n would show the claimed one"
        )
    return [claim, "-", "-", "-", text, verdict]


def best_models(groups, worse: str, good: str, n: int, claim: str) -> list[str]:
    """Claim: ``good``'s best model beats ``worse``'s (a paper's comparison of the best models at equal
    flops, not of the spaces): the Findings' best-model bootstrap (each space's draws resampled, minima
    compared); reproduced when the 95 % CI of min(good) − min(worse) lies below 0, contradicted when above.
    The minimum's bootstrap is coarse (a resample's minimum is never below the sample's): read it as a
    guide; the Findings have no power rule for best models, so an unresolved verdict names none."""
    e = {s: draws(groups[s].sweep_error.to_numpy(float), counts(groups[s])) for s in (worse, good)}
    r = best_model_bootstrap(e[good], e[worse], seed=0)
    lo, hi = r["best_diff_ci"]
    if hi < 0:
        verdict = "reproduced"
    elif lo > 0:
        verdict = "contradicted"
    else:
        verdict = (f"not resolved at n = {n} (no power rule for best models: the bootstrap of a minimum gives "
                   "no n)")  # fmt: skip
    return [claim, "-", "-", "-", best_model_sentence(good, worse, r), verdict]


# -- reading a study ---------------------------------------------------------------------------------------


@dataclass
class Measured:
    """What a study measured, at its equal-draws prefix: the analysis table, compare's result on it (plain
    EDFs; ``normalised`` when the study normalises), the trained rows per space, and n. ``partial``: the
    populations left out because they have not finished a draw that the others have (empty: none)."""

    study: object
    df: object
    cmp: dict
    groups: dict
    n: int
    recipe_hash: str
    normalised: dict | None = None
    partial: list[str] = field(default_factory=list)

    def has(self, *spaces) -> bool:
        return all(s in self.groups for s in spaces)


def measure(study_file, *, compare_pairs: bool = True, normalised: bool = False) -> Measured:
    """Read a study's store at its equal-draws prefix (or, part-way, over the populations that have one).
    ``compare_pairs``: run compare (pair verdicts); ``normalised``: also its comparison normalised as the
    study's [analysis] says (left out, None, where the spaces' complexity ranges do not overlap).
    Raises RegspaceError when no population has finished a draw."""
    study = load_study(study_file)
    store = open_store(study, create=False)
    opts = analysis_options(study, store)
    p = progress(store, study)
    partial = []
    if opts["first_draws"] == 0:  # some population has no finished draw: read the others, marked partial
        done = [r for r in p["spaces"] if r["prefix"] > 0]
        if len(done) < 1:
            raise RegspaceError(f"study {study.name!r}: no population has finished a draw yet: nothing to read")
        partial = [r["space"] for r in p["spaces"] if r["prefix"] == 0]
        n = min(r["prefix"] for r in done)
        opts = {**opts, "spaces": [r["space"] for r in done], "first_draws": n}
    else:
        n = p["equal"]
    df = load_table(store, **opts)
    cmp = compare(df) if compare_pairs else {"pairs": [], "findings": {"pairs": []}}
    norm, normalised_cmp = study.analysis.get("normalize"), None
    if compare_pairs and normalised and norm:
        try:
            normalised_cmp = compare(df, normalize=norm, n_bins=int(study.analysis.get("bins", 10)))
        except RegspaceError:  # as `study run`: the normalised comparison is left out, the table says so
            pass
    return Measured(study, df, cmp, space_errors(df), n, opts["recipe_hash"], normalised_cmp, partial)


# -- the studies' claims ---------------------------------------------------------------------------------


@dataclass
class Table:
    lead: list[str]
    header: list[str]
    rows: list[list[str]]
    after: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [*self.lead, "", "| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        return out + ["| " + " | ".join(map(str, r)) + " |" for r in self.rows] + self.after


HEADER = ["KS", "p-value", "noise (95% crit.)", "direction / measured", "verdict"]


def _lead(m: Measured, what: str, rules: str | None = None) -> list[str]:
    """The lines above a table: PARTIAL first when it is, then n, recipe, error, the rules and the correction."""
    out = []
    if m.partial:
        out += [
            f"**PARTIAL — not a result.** {m.study.name} is part-way: {', '.join(m.partial)} have no finished draw "
            f"that the others have, so this reads the other populations at their common prefix of {m.n} draws "
            f"(of {m.study.models_per_space}); its verdicts will change.",
            "",
        ]
    elif m.n < m.study.models_per_space:  # every space started, none finished: still not the study's result
        out += [
            f"**PARTIAL — not a result.** {m.study.name} is part-way: every population is read at its first {m.n} "
            f"draws (of {m.study.models_per_space}); its verdicts will change.",
            "",
        ]
    rules = rules or f"verdicts by the Findings' rules, equivalence within ±{DELTA} points"
    out.append(f"{what} at n = {m.n} draws per space (recipe {m.recipe_hash}, final validation error; {rules}).")
    if m.cmp["findings"].get("correction"):
        out.append(m.cmp["findings"]["correction"]["sentence"])
    return out


def _missing(claim: str, *spaces) -> list[str]:
    return [claim, "-", "-", "-", f"{', '.join(spaces)}: not yet trained to this prefix", "not yet measured"]


def ladder(m: Measured) -> Table:
    """DDS §3 (Figs. 4-6, 9): the AnyNetX ladder X_a → X_e → RegNetX. The published table: unchanged."""
    cmp, groups, n, df = m.cmp, m.groups, m.n, m.df
    rows = [
        no_worse(cmp, groups, "X_a", "X_b", n),  # DDS: sharing b costs nothing (X_b ≈ X_a)
        no_worse(cmp, groups, "X_b", "X_c", n),  # sharing g costs nothing (X_c ≈ X_b)
        better(cmp, groups, "X_c", "X_d", n),  # increasing widths help
        better(cmp, groups, "X_d", "X_e", n),  # increasing depths help
        regnet_keeps_the_best(cmp, groups, n),  # RegNetX: better on average, best models kept
        good_range_claim(
            df,
            "X_b",
            "b",
            "b ≤ 2 in the good range",
            lambda lo, hi: hi <= 2,
            lambda lo, hi: lo > 2,
            n,
            lambda v: v <= 2,
        ),  # fmt: skip
        good_range_claim(
            df, "X_c", "g", "g > 1 in the good range", lambda lo, hi: lo > 1, lambda lo, hi: hi <= 1, n, lambda v: v > 1
        ),  # fmt: skip
    ]
    lead = [
        f"Ladder claims at n = {n} draws per space (recipe {m.recipe_hash}, final validation error; "
        f"verdicts by the Findings' rules, equivalence within ±{DELTA} points)."
    ]
    return Table(lead, ["claim (DDS §3)", *HEADER], rows, ["", *population_table(groups, m.study.spaces)])


def design_choices(m: Measured) -> Table:
    """DDS §5 (Fig. 14, the appendix's Swish ablation) and its comparison with EfficientNet (Table 4)."""
    cmp, groups, n = m.cmp, m.groups, m.n
    rows = []

    def claim(spaces, make):
        rows.append(make() if m.has(*spaces) else _missing(make.__doc__, *[s for s in spaces if s not in groups]))

    def inverted():
        """RegNetX (b = 1) better than RegNetX_inv (b = 1/4)"""
        # DDS §5, Fig. 14 left: "the inverted bottleneck degrades the EDF slightly"
        return better(cmp, groups, "RegNetX_inv", "RegNetX", n, claim=inverted.__doc__, need=True)

    def depthwise():
        """RegNetX (g ≥ 8) better than RegNetX_dw (g = 1)"""
        # DDS §5, Fig. 14 left: "depthwise conv performs even worse relative to b = 1 and g ≥ 1"
        return better(cmp, groups, "RegNetX_dw", "RegNetX", n, claim=depthwise.__doc__, need=True)

    def se():
        """RegNetY (X + SE) better than RegNetX"""
        # DDS §5, Fig. 14 right: "RegNetY yields good gains"
        return better(cmp, groups, "RegNetX", "RegNetY", n, claim=se.__doc__, need=True)

    def swish():
        """RegNetX_swish better than RegNetX (Swish at low flops) †"""
        # DDS appendix (Swish vs ReLU): "Swish outperforms ReLU at low flops, but ReLU is better at high flops";
        # this budget is low flops (below the mnist analogue of 400MF, 25M–28M: experiments/README.md)
        return better(cmp, groups, "RegNetX", "RegNetX_swish", n, claim=swish.__doc__, need=True)

    def swish_dw():
        """RegNetX_dw_swish better than RegNetX_dw (Swish with depthwise) †"""
        # DDS appendix: "if g is restricted to be 1 (depthwise conv), Swish performs much better than ReLU"
        return better(cmp, groups, "RegNetX_dw", "RegNetX_dw_swish", n, claim=swish_dw.__doc__, need=True)

    def swish_mainly_dw():
        """Swish gains more with depthwise than without"""
        # DDS appendix: "depthwise conv and Swish interact favorably" — a difference of two gains, which the
        # Findings' pairwise verdicts cannot state; gain_larger reads the two pairs' shifts and CIs
        return gain_larger(cmp, ("RegNetX_dw", "RegNetX_dw_swish"), ("RegNetX", "RegNetX_swish"), n,
                           swish_mainly_dw.__doc__)  # fmt: skip

    def mb_space():
        """MB_e better than RegNetX (spaces at equal flops) †"""
        # DDS §5 compares the best models, not spaces: with one training setup, "at low flops, EfficientNet
        # outperforms the RegNetY. At intermediate flops, RegNetY outperforms EfficientNet, and at higher flops
        # both RegNetX and RegNetY perform better". Its lowest point is ~400MF; this budget lies below the mnist
        # analogue of 400MF, so the direction DDS's trend points to here is the MBConv space ahead — an
        # extrapolation, read on whole spaces (a stronger claim than the paper's)
        return better(cmp, groups, "RegNetX", "MB_e", n, claim=mb_space.__doc__, need=True)

    def mb_best():
        """MB_e's best model beats RegNetY's (low flops) †"""
        # DDS §5, Table 4: EfficientNet-B0 (0.39GF) against RegNetY-400MF, the paper's own comparison in kind
        return best_models(groups, "RegNetY", "MB_e", n, mb_best.__doc__)

    claim(["RegNetX", "RegNetX_inv"], inverted)
    claim(["RegNetX", "RegNetX_dw"], depthwise)
    claim(["RegNetX", "RegNetY"], se)
    claim(["RegNetX", "RegNetX_swish"], swish)
    claim(["RegNetX_dw", "RegNetX_dw_swish"], swish_dw)
    claim(["RegNetX", "RegNetX_swish", "RegNetX_dw", "RegNetX_dw_swish"], swish_mainly_dw)
    claim(["RegNetX", "MB_e"], mb_space)
    claim(["RegNetY", "MB_e"], mb_best)
    # Why the dagger: one fixed lr ranks families partly by how well it suits each (experiments/README.md,
    # "the recipe question": the lr probe's MBConv designs lose 2-11 points at lr 0.4 and win at 0.1)
    caveat = (
        f"† Read at the study's one lr ({m.study.recipe.lr:g}), tuned on ReLU X-block networks "
        "(`tune_quick.py`). In the committed lr probe of 2026-11-30 (`lr_probe.sh`, 2 designs per space at "
        "lr 0.1, 0.4, 0.8: `results/lr_probe/table.txt`) MBConv designs did best at lr 0.1, so the MB_e "
        "verdicts hold for this recipe only. RegNetX_swish designs trailed RegNetX's at every lr tried (the "
        "depthwise pair was not probed)."
    )
    return Table(_lead(m, "Design-choice claims"), ["claim (DDS §5)", *HEADER], rows,
                 ["", caveat, "", *population_table(groups, list(groups))])  # fmt: skip


def block_families(m: Measured) -> Table:
    """NDS (Fig. 9, Table 1): ResNeXt-B > ResNeXt-A > ResNet > Vanilla, each adjacent pair a `better` claim;
    NDS compares with EDFs normalised by params, so each pair is read plain and normalised."""
    order = ["Vanilla", "ResNet", "ResNeXt-A", "ResNeXt-B"]  # NDS's published order, worst first
    rows = []
    for worse, good in zip(order, order[1:]):
        text = f"{good} better than {worse}"
        if not m.has(worse, good):
            rows.append(_missing(text, *[s for s in (worse, good) if s not in m.groups]))
            continue
        rows.append(better(m.cmp, m.groups, worse, good, m.n, claim=text + " (plain EDFs)", need=True))
        if m.normalised is not None:
            norm = m.study.analysis.get("normalize")
            rows.append(better(m.normalised, m.groups, worse, good, m.n, need=True,
                               claim=text + f" (normalised by {norm}, as NDS)"))  # fmt: skip
    after = ["", *population_table(m.groups, list(m.groups))]
    if m.normalised is None and m.study.analysis.get("normalize"):
        after[1:1] = ["The normalised comparison is left out: the families' complexity ranges do not overlap.", ""]
    if m.normalised is not None:
        after[1:1] = [m.normalised["findings"]["sentences"][0], ""]  # how the normalised sample was read
    return Table(_lead(m, "Block-family claims"), ["claim (NDS)", *HEADER], rows, after)


# DDS §4 (Fig. 11): "the depth of best models is stable across regimes", "the best models use a bottleneck
# ratio b of 1.0", "the width multiplier wm of good models is ~2.5", and "the remaining parameters (g, wa,
# w0) increase with complexity". Stable = the trends' "does not change" (slope CI within ±FLAT_SLOPE).
# The trends' claims are read on DDS's §3.3 RegNetX, regspace's "RegNet" (d, w0, wa, wm, b, g all sampled):
# regspace's "RegNetX" is the space §4 refines from these very findings (b = 1, d ≤ 28, wm ≥ 2).
REGIME_CLAIMS = [("d", "does not change"), ("wm", "does not change"), ("w0", "grows"), ("wa", "grows"),
                 ("g", "grows")]  # fmt: skip
REGIME_LEVELS = [("b", 1.0)]  # "the best models use a bottleneck ratio b of 1.0", in every regime


def trend_verdict(param: dict, expected: str, n: int) -> str:
    """A trend claim's verdict from the trends' own word (trends.trend_word): reproduced when it is the
    expected one; contradicted when it is resolved otherwise (a flat claim against growth or shrinking, a
    growth claim against a flat or shrinking slope); else not resolved, with the draws per regime at which
    the slope's CI would decide (:func:`extrapolated_n`)."""
    word = param["trend"]
    if word == expected:
        return "reproduced"
    if word != "not resolved":
        return f"contradicted ({word})"
    s, half = param["slope"], (param["high"] - param["low"]) / 2
    if expected == "does not change":
        target = FLAT_SLOPE - abs(s)  # the CI must shrink inside ±FLAT_SLOPE around this slope
        need = extrapolated_n(n, half, target)
        more = (f"about {need} draws per regime would make it flat or not (extrapolated, CI ∝ 1/√n)" if need else
                f"the measured slope is beyond ±{FLAT_SLOPE}: at this slope no n would make it flat")  # fmt: skip
    else:
        need = extrapolated_n(n, half, abs(s)) if s > 0 else None
        more = (f"about {need} draws per regime would resolve growth (extrapolated, CI ∝ 1/√n)" if need else
                "the measured slope is not positive: at this slope no n would show growth")  # fmt: skip
    return f"not resolved at n = {n}; {more}"


def level_verdict(param: dict, value: float, n: int) -> str:
    """A claim that the best models take ``value`` in every regime: reproduced when every regime's top-20 %
    median has its bootstrap CI at exactly ``value``; contradicted when some regime's CI excludes it;
    else not resolved (the trends have no power rule for a quantile's CI, so no n is named)."""
    regimes = param["regimes"]
    if all(x["top_low"] == value == x["top_high"] for x in regimes):
        return "reproduced"
    away = [x["regime"] for x in regimes if x["top_low"] > value or x["top_high"] < value]
    if away:
        return f"contradicted ({', '.join(away)})"
    return f"not resolved at n = {n} (no power rule for a top-20 % median: more draws per regime)"


def regimes(m: Measured) -> Table:
    """DDS §4 (Fig. 11): the best models' parameters across flops regimes (trends.regime_trends)."""
    result = regime_trends(m.df)
    rows = []
    for sp in result["spaces"]:
        params = {p["param"]: p for p in sp["params"]}
        claims = [(name, f"{expected} across regimes", "trend", expected) for name, expected in REGIME_CLAIMS]
        claims += [(name, f"= {value:g} in every regime", "level", value) for name, value in REGIME_LEVELS]
        for name, says, kind, want in claims:
            claim = f"{sp['space']}: best models' {name} {says}"
            if name not in params:
                rows.append([claim, "-", "-", "-", "not sampled, or too few regimes", "not measured"])
                continue
            p = params[name]
            per = "; ".join(f"{x['regime']}: {x['top']:.3g} [{x['top_low']:.3g}, {x['top_high']:.3g}]"
                            for x in p["regimes"])  # fmt: skip
            a = p["all"]
            if kind == "trend":
                every = f"every draw's slope {a['slope']:+.2f} [{a['low']:+.2f}, {a['high']:+.2f}]"
                fit = f"slope {p['slope']:+.2f} [{p['low']:+.2f}, {p['high']:+.2f}]"
                measured = f"{fit}; {every}; top-20 % median {per}"
                rows.append([claim, "-", "-", "-", measured, trend_verdict(p, want, m.n)])
            else:
                rows.append([claim, "-", "-", "-", f"top-20 % median {per}", level_verdict(p, want, m.n)])
        rows += [[x, "-", "-", "-", "-", "not measured"] for x in sp["left_out"]]
    lead = _lead(
        m,
        "Regime claims",
        (
            f"verdicts by the trends' rule: the least-squares slope of log parameter on log flops over each regime's "
            f"top {result['top']:.0%}, with its 95 % CI, grows or shrinks when the CI excludes 0 and is flat when it "
            f"lies within ±{FLAT_SLOPE}; beside it the same slope over every draw (for comparison: a budget alone "
            f"moves some parameters for every model) and each regime's top-20 % median with its bootstrap CI"
        ),
    )
    header = ["claim (DDS §4)", "KS", "p-value", "noise (95% crit.)", "measured (slope [95 % CI])", "verdict"]
    return Table(lead, header, rows, ["", *population_table(m.groups, list(m.groups))])


LADDER_PAIRS = [("X_a", "X_b"), ("X_b", "X_c"), ("X_c", "X_d"), ("X_d", "X_e"), ("X_e", "RegNetX")]


def noise_floor_rows(noise: dict, ladder_cmp: dict, ladder_n: int) -> list[list[str]]:
    """The seed noise floor and each ladder step's shift against it. ``noise``: seeds.noise_by_space; the
    shift is the Findings' Hodges–Lehmann shift (later − earlier) of the ladder's pair. A shift is "above one
    run's seed noise" when |shift| exceeds the upper end of the s.d.'s 95 % CI, "below" when it is under the
    lower end, else "within"; beside it the seed noise of a mean over the ladder's n draws (σ/√n)."""
    r = noise["all"]
    lo, hi = r["sd_ci"]
    rows = [[
        "seed noise of one run (pooled within-design s.d.)", "-", "-", "-",
        f"σ = {r['sd']:.2f} points (95 % CI {lo:.2f} to {hi:.2f}; {r['designs']} designs, {r['runs']} runs); "
        f"ICC(1) {r['icc']:.2f} (95 % CI {r['icc_ci'][0]:.2f} to {r['icc_ci'][1]:.2f})", "measured",
    ]]  # fmt: skip
    mean_sd = r["sd"] / math.sqrt(ladder_n)
    for a, b in LADDER_PAIRS:
        _, v = _pair(ladder_cmp, a, b)
        sign = 1 if v["a"] == b else -1
        s = sign * v["hl_shift"]
        clo, chi = sorted(sign * x for x in v["hl_ci"])
        where = "above" if abs(s) > hi else "below" if abs(s) < lo else "within"
        rows.append([
            f"ladder {a} → {b} shift against the seed noise", "-", "-", "-",
            f"shift {s:+.2f} points (95 % CI {clo:+.2f} to {chi:+.2f}; Findings: {v['verdict']}) = "
            f"{abs(s) / r['sd']:.1f} σ and {abs(s) / mean_sd:.1f} × σ/√{ladder_n} ({mean_sd:.2f})",
            f"{where} one run's seed noise",
        ])  # fmt: skip
    return rows


def seeds(m: Measured) -> Table:
    """The seed noise floor (analysis/seeds.py) against the ladder's shifts (experiments/ladder.toml)."""
    noise = noise_by_space(m.df, list(m.groups))
    ladder_file = Path(m.study.source).parent / "ladder.toml"
    lm = measure(ladder_file)
    header = ["claim (noise floor)", "KS", "p-value", "noise (95% crit.)", "measured", "verdict"]
    if noise is None:
        rows = [["seed noise", "-", "-", "-", "fewer than two designs have two ok seeds", "not measured"]]
    else:
        rows = noise_floor_rows(noise, lm.cmp, lm.n)
        for s, v in noise["spaces"].items():
            lo, hi = v["sd_ci"]
            text = f"σ = {v['sd']:.2f} (95 % CI {lo:.2f} to {hi:.2f}; {v['designs']} designs)"
            rows.append([f"{s}: seed noise", "-", "-", "-", text, "measured"])
    rows.append(seed_zero_row(open_store(m.study, create=False), open_store(lm.study, create=False), lm.recipe_hash))
    lead = _lead(
        m,
        f"Seed-noise floor ({len(m.study.training_seeds)} seeds per design)",
        (
            f"against the ladder's shifts at n = {lm.n} (recipe {lm.recipe_hash}), the Findings' Hodges–Lehmann "
            "shifts with their 95 % CIs"
        ),
    )
    return Table(lead, header, rows)


def seed_zero_row(seeds_store, ladder_store, recipe_hash: str) -> list[str]:
    """Whether seed 0 of the seeds study repeats the ladder's own runs: the ok errors of the designs both
    stores trained under the ladder's recipe ``recipe_hash`` at seed 0, compared exactly (one thread per
    worker makes a CPU run repeat bit for bit: experiments/repeatability.py)."""

    def seed0(store):
        r = store.read("results", ["model_id", "recipe_hash", "seed", "status", "error"])
        r = r[(r.recipe_hash == recipe_hash) & (r.seed.fillna(0) == 0) & (r.status == "ok")]
        return r.set_index("model_id").error

    a, b = seed0(seeds_store), seed0(ladder_store)
    both = a.index.intersection(b.index)
    claim = "seed 0 repeats the ladder's runs (same designs, same recipe)"
    if not len(both):
        return [claim, "-", "-", "-", "no design trained by both under the ladder's recipe", "not measured"]
    diff = (a[both] - b[both]).abs()
    same = int((diff == 0).sum())
    text = f"{same} of {len(both)} designs have exactly the ladder's error (largest difference {diff.max():.2g} points)"
    return [claim, "-", "-", "-", text, "bit for bit" if same == len(both) else "not bit for bit"]


NO_PAIRS = ("regimes", "seeds")  # their claims read trends and seed noise, not pair verdicts
NORMALISED = ("block_families",)  # NDS compares block families by params-normalised EDFs
CLAIMS = {
    "ladder": ladder,
    "design_choices": design_choices,
    "block_families": block_families,
    "regimes": regimes,
    "seeds": seeds,
}


def main(study_file: str = "experiments/ladder.toml") -> Path:
    study = load_study(study_file)
    if study.name not in CLAIMS:
        sys.exit(f"no claims registered for study {study.name!r} (known: {', '.join(CLAIMS)})")
    try:
        m = measure(study_file, compare_pairs=study.name not in NO_PAIRS, normalised=study.name in NORMALISED)
    except RegspaceError as e:  # one line, not a traceback
        sys.exit(f"error: {e}")
    if m.n == 0:
        sys.exit("no draw is trained in every space yet: nothing to compare")
    text = "\n".join(CLAIMS[study.name](m).lines()) + "\n"
    out = study.output / "claims.md"
    out.write_text(text)
    print(text, end="")
    return out


if __name__ == "__main__":
    main(*sys.argv[1:])
