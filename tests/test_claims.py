"""The claims tables' verdicts (experiments/claims.py) on constructed data with a known answer: a large effect
in the claimed direction is "reproduced", one in the other direction "contradicted", no effect neither; the
n an unresolved claim names is the Findings' own; the extrapolated n is checked by simulation; a part-way
study is marked PARTIAL; and the ladder's published table comes out unchanged from the committed store."""

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

import claims  # noqa: E402

from regspace.analysis import findings  # noqa: E402
from regspace.analysis.compare import compare  # noqa: E402
from regspace.analysis.table import space_errors  # noqa: E402
from regspace.analysis.trends import regime_trends  # noqa: E402


def quantiles(median: float, sd: float, n: int = 64) -> np.ndarray:
    """n errors at evenly spaced quantiles of N(median, sd): a sample with exactly the stated shape."""
    return median + sd * stats.norm.ppf((np.arange(n) + 0.5) / n)


def measured(samples: dict[str, np.ndarray]):
    rows = [{"space": s, "status": "ok", "sweep_error": float(e), "model_id": f"{s}-{i}"}
            for s, errs in samples.items() for i, e in enumerate(errs)]  # fmt: skip
    df = pd.DataFrame(rows)
    df.attrs["spaces"] = list(samples)
    return compare(df), space_errors(df)


@pytest.fixture
def no_power_simulation(monkeypatch):
    """The Findings' power simulation replaced by a sentinel: what the table says must be its number."""
    monkeypatch.setattr(findings, "models_to_resolve", lambda *a, **k: 4321)


def test_a_large_effect_in_the_claimed_direction_is_reproduced(no_power_simulation):
    cmp, groups = measured({"worse": quantiles(13.5, 0.5), "good": quantiles(12.5, 0.5)})
    row = claims.better(cmp, groups, "worse", "good", 64, need=True)
    assert row[0] == "good better than worse" and row[-1] == "reproduced"
    assert "shift -1.00 points" in row[4]  # good − worse, Hodges–Lehmann: exactly the constructed shift


def test_the_reversed_effect_is_contradicted(no_power_simulation):
    cmp, groups = measured({"worse": quantiles(12.5, 0.5), "good": quantiles(13.5, 0.5)})
    row = claims.better(cmp, groups, "worse", "good", 64, need=True)
    assert row[-1] == "contradicted" and "shift +1.00 points" in row[4]


@pytest.mark.parametrize("n", [8, 64])
def test_identical_distributions_are_neither_reproduced_nor_contradicted(no_power_simulation, n):
    same = quantiles(13, 0.5, n)
    cmp, groups = measured({"worse": same, "good": same.copy()})
    verdict = claims.better(cmp, groups, "worse", "good", n, need=True)[-1]
    assert not verdict.startswith(("reproduced", "contradicted")), verdict
    if n == 8:  # too few to bound the shift within ±0.3: unresolved, with the Findings' own n
        assert verdict == "not resolved at n = 8; about 4321 per space would resolve it (80 % power)"
    else:  # 64 draws of an s.d. of 0.5 bound it: the gain is shown absent
        assert verdict == f"not reproduced: equivalent within ±{findings.DELTA} points"


def test_the_needed_n_is_the_power_simulation_of_the_findings():
    """Unpatched: a half-s.d. shift at n = 16 is unresolved, and the n named is models_to_resolve's at
    Holm's strictest level over the one pair (a direct call with the same arguments)."""
    a, b = quantiles(13.0, 0.5, 16), quantiles(12.75, 0.5, 16)
    cmp, groups = measured({"worse": a, "good": b})
    verdict = claims.better(cmp, groups, "worse", "good", 16, need=True)[-1]
    need = findings.models_to_resolve(a, b, alpha=findings.ALPHA, seed=0)
    assert need and need > 16
    assert verdict == f"not resolved at n = 16; about {need} per space would resolve it (80 % power)"


@pytest.mark.parametrize("good_median, against", [(12.75, False), (13.25, True)])
def test_an_unresolved_shift_against_the_claim_says_so(no_power_simulation, good_median, against):
    """The n named resolves the *measured* direction: when "good" measured worse, the verdict must say that
    more draws would point against the claim, not toward it."""
    cmp, groups = measured({"worse": quantiles(13.0, 0.5, 16), "good": quantiles(good_median, 0.5, 16)})
    verdict = claims.better(cmp, groups, "worse", "good", 16, need=True)[-1]
    assert verdict.startswith("not resolved at n = 16; about 4321 per space"), verdict
    assert verdict.endswith("the measured shift points against the claim") == against, verdict


def test_the_ladder_table_leaves_the_needed_n_out(no_power_simulation):
    same = quantiles(13, 0.5, 8)
    cmp, groups = measured({"worse": same, "good": same.copy()})
    assert claims.better(cmp, groups, "worse", "good", 8)[-1] == "not resolved at n = 8"


def _four(dw_gain: float, plain_gain: float, n: int = 64):
    return measured({
        "X": quantiles(13.0, 0.4, n), "X_swish": quantiles(13.0 - plain_gain, 0.4, n),
        "X_dw": quantiles(13.5, 0.4, n), "X_dw_swish": quantiles(13.5 - dw_gain, 0.4, n),
    })[0]  # fmt: skip


@pytest.mark.parametrize(
    "dw_gain, plain_gain, expected",
    [(1.0, 0.0, "reproduced"), (0.0, 1.0, "contradicted"), (0.5, 0.5, "not resolved"), (0.1, 0.0, "not resolved")],
)
def test_a_gain_larger_in_one_setting(no_power_simulation, dw_gain, plain_gain, expected):
    row = claims.gain_larger(_four(dw_gain, plain_gain), ("X_dw", "X_dw_swish"), ("X", "X_swish"), 64, "claim")
    assert row[-1].startswith(expected), row[-1]
    if (dw_gain, plain_gain) == (0.1, 0.0):  # the claimed order, too small to part the CIs: an n to reach it
        assert "per space would part them" in row[-1]
    if (dw_gain, plain_gain) == (0.5, 0.5):  # equal gains: no n resolves the claimed order
        assert "no n would show the claimed one" in row[-1]


def test_best_models_verdict_follows_the_bootstrap_of_the_minima():
    good, worse = quantiles(12.0, 0.3), quantiles(13.0, 0.3)
    assert claims.best_models(measured({"a": worse, "b": good})[1], "a", "b", 64, "c")[-1] == "reproduced"
    assert claims.best_models(measured({"a": good, "b": worse})[1], "a", "b", 64, "c")[-1] == "contradicted"
    same = quantiles(13.0, 0.3)
    verdict = claims.best_models(measured({"a": same, "b": same.copy()})[1], "a", "b", 64, "c")[-1]
    assert verdict.startswith("not resolved")


def test_extrapolated_n_matches_a_simulated_slope_ci():
    """The n at which a least-squares slope's 95 % CI halves: the extrapolation (∝ 1/√n) against the mean
    half-width of linregress on simulated data at that n."""
    rng = np.random.default_rng(0)

    def half_width(n):
        out = []
        for _ in range(300):
            x = rng.uniform(0, 3, n)
            fit = stats.linregress(x, 0.3 * x + rng.normal(0, 0.5, n))
            out.append(stats.t.ppf(0.975, n - 2) * fit.stderr)
        return float(np.mean(out))

    h = half_width(40)
    need = claims.extrapolated_n(40, h, h / 2)
    assert need == pytest.approx(160, abs=2)
    assert half_width(need) == pytest.approx(h / 2, rel=0.08)
    assert claims.extrapolated_n(40, h, 0) is None and claims.extrapolated_n(40, h, 2 * h) == 40


REGIMES = [(1.8e6, "1.25M:2.5M"), (7.5e6, "5M:10M"), (30e6, "20M:40M")]


def regime_frame(rng, n=64, *, d_slope=0.0, w0_slope=0.5, b_best=1):
    """RegNet rows in three regimes: the best fifth (lowest error) have d ∝ flops^d_slope, w0 ∝ flops^w0_slope
    and b = b_best; the rest have random d, w0 and b."""
    rows = []
    for c, reg in REGIMES:
        for i in range(n):
            f = c * math.exp(rng.uniform(-0.3, 0.3))
            top = i < n // 5 + 1
            rows.append({
                "space": f"RegNet@{reg}", "regime": reg, "model_id": f"{reg}-{i}", "flops": f, "status": "ok",
                "sweep_error": rng.normal(10, 0.1) - 2 * top, "multiplicity": 1,
                "d": 20 * (f / 1.8e6) ** d_slope * math.exp(rng.normal(0, 0.05)) if top else rng.integers(5, 60),
                "w0": 16 * (f / 1.8e6) ** w0_slope * math.exp(rng.normal(0, 0.05)) if top else rng.integers(8, 256),
                "b": b_best if top else rng.choice([1, 2, 4]),
            })  # fmt: skip
    return pd.DataFrame(rows)


def _trend_rows(df):
    (sp,) = regime_trends(df, n_boot=200)["spaces"]
    return {p["param"]: p for p in sp["params"]}


def test_trend_claims_reproduced_and_contradicted():
    p = _trend_rows(regime_frame(np.random.default_rng(1)))
    assert claims.trend_verdict(p["d"], "does not change", 64) == "reproduced"
    assert claims.trend_verdict(p["w0"], "grows", 64) == "reproduced"
    assert claims.level_verdict(p["b"], 1.0, 64) == "reproduced"
    q = _trend_rows(regime_frame(np.random.default_rng(1), d_slope=0.4, w0_slope=0.0, b_best=4))
    assert claims.trend_verdict(q["d"], "does not change", 64) == "contradicted (grows)"
    assert claims.trend_verdict(q["w0"], "grows", 64) == "contradicted (does not change)"
    assert claims.level_verdict(q["b"], 1.0, 64).startswith("contradicted")


def test_an_unresolved_trend_names_an_extrapolated_n():
    flat = {"trend": "not resolved", "slope": 0.02, "low": -0.2, "high": 0.24}
    verdict = claims.trend_verdict(flat, "does not change", 64)
    assert verdict.startswith("not resolved at n = 64") and f"about {claims.extrapolated_n(64, 0.22, 0.08)}" in verdict
    grows = {"trend": "not resolved", "slope": 0.1, "low": -0.1, "high": 0.3}
    assert f"about {claims.extrapolated_n(64, 0.2, 0.1)} draws" in claims.trend_verdict(grows, "grows", 64)
    steep = {"trend": "not resolved", "slope": 0.3, "low": -0.1, "high": 0.7}
    assert "no n would make it flat" in claims.trend_verdict(steep, "does not change", 64)


def test_ladder_shifts_against_the_seed_noise(no_power_simulation):
    """σ = 0.30 (CI 0.25–0.38): a 1-point step is above it, a 0-point step below it."""
    steps = {"X_a": 14.0, "X_b": 14.0, "X_c": 14.0, "X_d": 13.0, "X_e": 13.0, "RegNetX": 13.0}
    cmp, _ = measured({s: quantiles(m, 0.4) for s, m in steps.items()})
    noise = {"all": {"sd": 0.30, "sd_ci": [0.25, 0.38], "designs": 18, "runs": 54, "icc": 0.5, "icc_ci": [0.3, 0.7]}}
    rows = claims.noise_floor_rows(noise, cmp, 64)
    where = {r[0].split()[1] + r[0].split()[3]: r[-1] for r in rows[1:]}
    assert where["X_cX_d"] == "above one run's seed noise" and "shift -1.00" in rows[3][4]
    assert where["X_aX_b"] == "below one run's seed noise"
    assert rows[0][4].startswith("σ = 0.30 points (95 % CI 0.25 to 0.38")


def test_a_part_way_study_is_headed_partial():
    m = claims.Measured(study=type("S", (), {"name": "dc", "models_per_space": 64})(), df=None,
                        cmp={"findings": {}}, groups={}, n=8, recipe_hash="abc", partial=["RegNetY"])  # fmt: skip
    lead = claims._lead(m, "Design-choice claims")
    assert lead[0].startswith("**PARTIAL — not a result.**") and "RegNetY" in lead[0] and "8 draws (of 64)" in lead[0]
    m.partial = []  # every space started, at 8 of 64 draws: still part-way
    lead = claims._lead(m, "Design-choice claims")
    assert lead[0].startswith("**PARTIAL — not a result.**") and "first 8 draws (of 64)" in lead[0]
    m.n = 64
    assert "PARTIAL" not in "\n".join(claims._lead(m, "Design-choice claims"))


def test_the_ladder_table_is_the_published_one():
    """From the committed ladder store, the registry's ladder entry writes the committed claims.md."""
    m = claims.measure(ROOT / "experiments" / "ladder.toml")
    text = "\n".join(claims.CLAIMS["ladder"](m).lines()) + "\n"
    assert text == (ROOT / "experiments" / "results" / "ladder" / "claims.md").read_text()


def test_regimes_and_seeds_tables_from_a_committed_store():
    """The features store (two regimes, two seeds per design) through the regimes and seeds tables: every
    regime claim gets a row, and the noise floor's σ is the pooled within-design s.d. computed here by hand
    from the designs' seed errors (numpy: within sum of squares over N − a)."""
    m = claims.measure(ROOT / "experiments" / "features.toml", compare_pairs=False)
    rows = claims.regimes(m).rows
    names = [r[0] for r in rows]
    assert "RegNetX: best models' d does not change across regimes" in names
    assert sum("RegNetX: " in x for x in names) == len(claims.REGIME_CLAIMS) + len(claims.REGIME_LEVELS)
    seeds = claims.seeds(m)
    xs = [np.asarray(e, float) for e in m.df[m.df.status == "ok"].seed_errors if len(e) >= 2]
    sd = math.sqrt(sum(((x - x.mean()) ** 2).sum() for x in xs) / (sum(map(len, xs)) - len(xs)))
    assert seeds.rows[0][4].startswith(f"σ = {sd:.2f} points") and f"{len(xs)} designs" in seeds.rows[0][4]
    assert [r[0] for r in seeds.rows[1:6]] == [f"ladder {a} → {b} shift against the seed noise"
                                               for a, b in claims.LADDER_PAIRS]  # fmt: skip


def test_block_families_read_plain_and_normalised(no_power_simulation):
    """NDS's order in the constructed errors (1 point apart) with params spread evenly over one range in every
    family: each adjacent pair is reproduced on the plain and on the params-normalised EDFs; reversed order
    contradicted on both."""
    order = ["Vanilla", "ResNet", "ResNeXt-A", "ResNeXt-B"]

    def m_for(medians):
        rows = [{"space": s, "status": "ok", "sweep_error": float(e), "model_id": f"{s}-{i}",
                 "params": 1e5 * (1 + (i * 7919 % 64) / 64)}
                for s, med in zip(order, medians) for i, e in enumerate(quantiles(med, 0.4))]  # fmt: skip
        df = pd.DataFrame(rows)
        df.attrs["spaces"] = order
        study = type("S", (), {"name": "block_families", "models_per_space": 64, "analysis": {"normalize": "params"}})
        return claims.Measured(study(), df, compare(df), space_errors(df), 64, "abc",
                               compare(df, normalize="params"))  # fmt: skip

    rows = claims.block_families(m_for([16.0, 15.0, 14.0, 13.0])).rows
    assert len(rows) == 6 and all(r[-1] == "reproduced" for r in rows), [r[-1] for r in rows]
    assert [r[0] for r in rows[:2]] == ["ResNet better than Vanilla (plain EDFs)",
                                        "ResNet better than Vanilla (normalised by params, as NDS)"]  # fmt: skip
    rows = claims.block_families(m_for([13.0, 14.0, 15.0, 16.0])).rows
    assert all(r[-1] == "contradicted" for r in rows)
    m = m_for([16.0, 15.0, 14.0, 13.0])
    m.normalised = None
    table = claims.block_families(m)
    assert len(table.rows) == 3 and "normalised comparison is left out" in table.after[1]


def test_design_choices_rows_and_the_spaces_not_yet_trained(no_power_simulation):
    """Each DDS §5 claim on its own pair, with constructed effects in the paper's directions; spaces absent
    from a part-way store leave their claims "not yet measured", naming the missing spaces."""
    medians = {"RegNetX": 13.0, "RegNetX_inv": 14.0, "RegNetX_dw": 14.5, "RegNetX_swish": 12.9,
               "RegNetX_dw_swish": 13.0, "RegNetY": 12.0}  # fmt: skip
    cmp, groups = measured({s: quantiles(v, 0.3) for s, v in medians.items()})
    recipe = type("R", (), {"lr": 0.25})()
    study = type("S", (), {"name": "design_choices", "models_per_space": 64, "recipe": recipe})()
    m = claims.Measured(study, None, cmp, groups, 64, "abc", partial=["MB_e"])
    table = claims.design_choices(m)
    rows = {r[0]: r[-1] for r in table.rows}
    assert rows["RegNetX (b = 1) better than RegNetX_inv (b = 1/4)"] == "reproduced"
    assert rows["RegNetX (g ≥ 8) better than RegNetX_dw (g = 1)"] == "reproduced"
    assert rows["RegNetY (X + SE) better than RegNetX"] == "reproduced"
    assert rows["RegNetX_dw_swish better than RegNetX_dw (Swish with depthwise) †"] == "reproduced"
    assert rows["Swish gains more with depthwise than without"] == "reproduced"  # 1.5 points against 0.1
    assert rows["MB_e better than RegNetX (spaces at equal flops) †"] == "not yet measured"
    assert rows["MB_e's best model beats RegNetY's (low flops) †"] == "not yet measured"
    # the dagger's note names the study's own lr: the Swish and MBConv verdicts hold for that recipe only
    assert any(line.startswith("† Read at the study's one lr (0.25)") for line in table.after)


def test_seed_zero_row_compares_the_two_stores_runs_exactly():
    """Only seed-0 ok runs of the ladder's recipe, on designs both stores trained, count; one differing
    error (or none in common) changes the verdict."""

    class Fake:
        def __init__(self, rows):
            self.rows = pd.DataFrame(rows, columns=["model_id", "recipe_hash", "seed", "status", "error"])

        def read(self, table, columns):
            return self.rows[columns]

    ladder = Fake([("a", "h", 0, "ok", 12.5), ("b", "h", None, "ok", 13.0), ("c", "h", 0, "ok", 14.0)])
    seeds = Fake([("a", "h", 0, "ok", 12.5), ("b", "h", 0, "ok", 13.0), ("a", "h", 1, "ok", 12.9),
                  ("b", "other", 0, "ok", 99.0), ("d", "h", 0, "ok", 11.0)])  # fmt: skip
    row = claims.seed_zero_row(seeds, ladder, "h")
    assert row[-1] == "bit for bit" and row[4].startswith("2 of 2 designs")
    seeds.rows.loc[1, "error"] = 13.01
    row = claims.seed_zero_row(seeds, ladder, "h")
    assert row[-1] == "not bit for bit" and row[4].startswith("1 of 2 designs") and "0.01" in row[4]
    assert claims.seed_zero_row(seeds, ladder, "zzz")[-1] == "not measured"
