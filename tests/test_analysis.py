"""Analyses against closed forms and known answers (docs/design.md §7)."""

import math

import numpy as np
import pytest
from scipy import stats

from regspace.analysis.edf import bootstrap_band, edf, effective_n, ks_distance, ks_test, normalized_weights
from regspace.analysis.fit import fit_widths, predicted_widths
from regspace.analysis.stats import binned_trend, good_range, search_efficiency
from regspace.spaces.regnet import regnet_block_widths


def test_edf_of_a_known_sample():
    e = [3.0, 1.0, 2.0, 2.0]
    assert edf(e, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]).tolist() == [0, 0, 0.25, 0.25, 0.75, 0.75, 1.0]
    # F(e) counts strictly smaller errors
    w = [0.1, 0.2, 0.3, 0.4]
    assert np.allclose(edf(e, [1.5, 2.5, 9], w), [0.2, 0.2 + 0.3 + 0.4, 1.0])


def test_normalised_weights_sum_to_one_and_flatten_a_skewed_histogram():
    rng = np.random.default_rng(0)
    flops = rng.exponential(1.0, 5000) ** 2  # heavily skewed
    w = normalized_weights(flops, n_bins=10, value_range=(0, 4))
    assert math.isclose(w.sum(), 1.0)
    assert (w[flops > 4] == 0).all()
    bins = np.minimum((flops[flops <= 4] / 0.4).astype(int), 9)
    mass = np.bincount(bins, weights=w[flops <= 4], minlength=10)
    assert np.allclose(mass, 0.1)  # every bin carries the same mass: the histogram is flat
    raw = np.bincount(bins, minlength=10) / (flops <= 4).sum()
    assert raw[0] > 5 * raw[-1]  # ...and it was far from flat before


def test_ks_distance_matches_scipy():
    rng = np.random.default_rng(1)
    for n_a, n_b in ((30, 30), (57, 200), (500, 13)):
        a, b = rng.normal(0, 1, n_a), rng.normal(0.3, 1.2, n_b)
        assert math.isclose(ks_distance(a, b), stats.ks_2samp(a, b).statistic, abs_tol=1e-12)
    ties = np.array([1, 1, 2, 2, 3.0])
    assert math.isclose(ks_distance(ties, ties + 1), stats.ks_2samp(ties, ties + 1).statistic)


def _permutation_p(a, b) -> float:
    """The exact two-sided p-value by brute force: under the null every split of the pooled values into
    groups of len(a) and len(b) is equally likely; count the splits whose max |F_a - F_b| is as large."""
    from itertools import combinations

    pooled = np.concatenate([a, b])
    order = np.argsort(pooled, kind="stable")
    n, m = len(a), len(b)

    def distance(members):
        x = np.zeros(n + m)
        x[list(members)] = 1
        x = x[order]
        return np.max(np.abs(np.cumsum(x) / n - np.cumsum(1 - x) / m))

    observed = distance(range(n))
    ds = [distance(c) for c in combinations(range(n + m), n)]
    return float(np.mean(np.asarray(ds) >= observed - 1e-12))


@pytest.mark.parametrize("seed,n_a,n_b,shift", [(0, 6, 5, 0.0), (1, 7, 7, 1.5), (2, 9, 4, 0.8), (3, 8, 8, 3.0)])
def test_ks_p_value_is_exact_for_small_samples(seed, n_a, n_b, shift):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, n_a), rng.normal(shift, 1, n_b)
    assert ks_test(a, b)["p_value"] == pytest.approx(_permutation_p(a, b), rel=1e-9)


def test_large_samples_use_the_asymptotic_p_value():
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 1, 20_000), rng.normal(0.02, 1, 15_000)
    r = ks_test(a, b)
    exact = stats.ks_2samp(a, b)
    assert math.isclose(r["ks"], exact.statistic, abs_tol=1e-12)
    assert abs(r["p_value"] - exact.pvalue) < 0.01


def test_noise_level_is_the_kolmogorov_quantile_for_large_samples():
    from regspace.analysis.edf import ks_noise_level

    big = ks_noise_level(400)
    assert big["method"] == "asymptotic"
    assert math.isclose(big["noise"], stats.kstwobign.isf(0.05) * math.sqrt(2 / 400))


@pytest.mark.parametrize("n, m", [(5, 7), (10, 10), (13, 29), (40, 40), (10, 1)])
def test_exact_ks_tail_equals_scipys_exact_p_value(n, m):
    """Our lattice-path count against scipy's own exact two-sample algorithm (an independent implementation)."""
    from regspace.analysis.edf import ks_tail_exact

    rng = np.random.default_rng(n * 100 + m)
    for shift in (0.0, 0.7, 2.0):
        a, b = rng.normal(size=n), rng.normal(size=m) + shift
        r = stats.ks_2samp(a, b, method="exact")
        assert math.isclose(ks_tail_exact(r.statistic, n, m), r.pvalue, rel_tol=1e-9, abs_tol=1e-12)


def test_exact_noise_level_is_the_95_percent_critical_value_by_simulation():
    """Simulated under the null (both samples from one distribution): D reaches the noise level at most
    5 % of the time, and reaches the next smaller attainable value more often."""
    from regspace.analysis.edf import ks_noise_level

    n = 10
    r = ks_noise_level(n, n)
    assert r["method"] == "exact" and r["noise"] == pytest.approx(0.7)  # D takes values k/10 (tables: 7/10)
    rng = np.random.default_rng(0)
    x = rng.random((4000, 2 * n))
    d = np.array([stats.ks_2samp(row[:n], row[n:]).statistic for row in x])
    assert (d >= r["noise"] - 1e-9).mean() <= 0.05 + 0.01
    assert (d >= r["noise"] - 0.1 - 1e-9).mean() > 0.05


def test_noise_level_is_never_above_one():
    from regspace.analysis.edf import ks_noise_level

    assert ks_noise_level(10, 1)["noise"] == 1.0  # the asymptotic formula gave 1.424 here
    assert ks_noise_level(2.5, 1.5)["noise"] <= 1.0  # effective (Kish) sizes: asymptotic, capped


def test_noise_level_with_repeated_networks_is_a_permutation_over_draws():
    """Two i.i.d. samples of draws from one population with repeated networks (heavy ties): the
    permutation noise level matches the null distribution simulated by drawing fresh samples."""
    from regspace.analysis.edf import ks_noise_level

    rng = np.random.default_rng(5)
    population = rng.normal(13, 1, 12)  # 12 networks: draws of 30 repeat them often
    weights = rng.dirichlet(np.ones(12))
    a, b = rng.choice(population, 30, p=weights), rng.choice(population, 30, p=weights)
    r = ks_noise_level(0, draws_a=a, draws_b=b, n_perm=4000)
    assert r["method"] == "permutation"
    sims = [
        stats.ks_2samp(
            rng.choice(population, 30, p=weights), rng.choice(population, 30, p=weights), method="asymp"
        ).statistic
        for _ in range(4000)
    ]
    # the one definition (issue 22 §5): the smallest d of D's lattice (k/30) with P(D ≥ d) ≤ 5 % under the null
    lattice = np.arange(31) / 30
    assert r["noise"] == pytest.approx(min(d for d in lattice if (np.array(sims) >= d - 1e-9).mean() <= 0.05))
    assert r["noise"] < ks_noise_level(30, 30)["noise"]  # ties shrink D: the no-ties value would overstate noise


def test_weighted_ks_with_equal_weights_is_the_plain_one():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 80), rng.normal(0.5, 1, 60)
    d = ks_distance(a, b, np.full(80, 1 / 80), np.full(60, 1 / 60))
    assert math.isclose(d, stats.ks_2samp(a, b).statistic, abs_tol=1e-12)
    assert math.isclose(effective_n(np.full(80, 1 / 80)), 80)


def test_bootstrap_band_contains_the_edf_and_narrows_with_n():
    rng = np.random.default_rng(3)
    grid = np.linspace(-2, 2, 41)
    widths = []
    for n in (50, 800):
        e = rng.normal(0, 1, n)
        lo, hi = bootstrap_band(e, grid, n_boot=300, seed=0)
        f = edf(e, grid)
        assert (lo <= f + 1e-12).all() and (f <= hi + 1e-12).all()
        widths.append(float(np.mean(hi - lo)))
    assert widths[1] < widths[0] / 2.5  # ~ 1/sqrt(n): 4x for 16x the models


def test_good_range_recovers_a_planted_optimum():
    rng = np.random.default_rng(4)
    d = rng.integers(1, 41, 2000)
    error = 20 + 0.05 * (d - 17) ** 2 + rng.normal(0, 0.5, 2000)  # best depth: 17
    r = good_range(d, error, n_boot=2500, seed=0)
    assert r["low"] <= 17 <= r["high"] and abs(r["median"] - 17) <= 1
    assert r["high"] - r["low"] <= 8
    flat = good_range(d, rng.normal(0, 1, 2000), seed=0)
    assert flat["high"] - flat["low"] > 30  # no optimum: the range spans the domain


def test_good_range_draws_floor_of_a_quarter_like_pycls():
    """pycls draws int(0.25·n) models per bootstrap round (floor); round() would draw 4 of 14."""
    rng = np.random.default_rng(0)
    assert good_range(np.arange(14.0), rng.random(14), n_boot=10)["k"] == 3
    assert good_range(np.arange(3.0), rng.random(3), n_boot=10)["k"] == 1  # at least one


def test_binned_trend():
    x = np.repeat([1.0, 2.0, 3.0], 10)
    y = x * 2
    t = binned_trend(x, y, n_bins=10)
    assert t["centre"].tolist() == [1, 2, 3] and t["median"].tolist() == [2, 4, 6]


def test_search_efficiency_matches_simulation():
    rng = np.random.default_rng(5)
    e = rng.gamma(3, 2, 64)
    r = search_efficiency(e)
    assert r["k"] == [1, 2, 4, 8, 16, 32, 64]
    assert math.isclose(r["expected"][0], e.mean()) and math.isclose(r["expected"][-1], e.min())
    sims = [np.mean([np.min(rng.choice(e, k, replace=False)) for _ in range(4000)]) for k in (2, 8)]
    assert abs(sims[0] - r["expected"][1]) < 0.1 and abs(sims[1] - r["expected"][3]) < 0.1
    assert all(a >= b for a, b in zip(r["expected"], r["expected"][1:]))


def regnet_cases():
    rng = np.random.default_rng(6)
    cases = []
    while len(cases) < 40:
        d = int(rng.integers(8, 30))
        w0 = int(rng.integers(1, 20)) * 8
        wa = round(float(np.exp(rng.uniform(np.log(8), np.log(128)))), 1)
        wm = round(float(rng.uniform(1.8, 3.0)), 3)
        w, s, _, _ = regnet_block_widths(d, w0, wa, wm)
        if len(np.unique(w[0])) == s[0].max() + 1:  # one exponent per stage, as the sampler requires
            cases.append((d, w0, wa, wm, w[0]))
    return cases


@pytest.mark.parametrize("case", regnet_cases(), ids=lambda c: f"d{c[0]}-w0{c[1]}-wa{c[2]}-wm{c[3]}")
def test_width_fit_recovers_regnet_parameters(case):
    """Widths made by the DDS rule (docs/design.md §3) are fitted exactly: w0 and d recovered, e_fit = 0, and the fitted
    (wa, wm) regenerate the very same widths (they are identifiable only up to that)."""
    d, w0, wa, wm, widths = case
    r = fit_widths(widths)
    assert r["e_fit"] == 0 and r["exact"] and r["d"] == d and r["w0"] == w0
    assert np.array_equal(predicted_widths(d, r["w0"], r["wa"], r["wm"], 1.0, 1), widths)
    assert abs(r["wm"] - wm) / wm < 0.15 and abs(r["wa"] - wa) / wa < 0.5


def test_width_fit_is_zero_for_every_reference_model_in_the_regnet_space():
    """Every pycls RegNet is a perfect RegNet of the general space, except RegNetX-32GF: its w0 = 320 lies
    outside the space's lattice (w0 ≤ 256), and no lattice point gives its widths (issue 22, fault 9)."""
    from regspace.zoo import ZOO, zoo_design

    for name in ZOO:
        des = zoo_design(name)
        reps = des.depths
        r = fit_widths(des.block_widths(), np.repeat(des.bottleneck_ratios, reps), np.repeat(des.group_widths, reps))
        if name == "RegNetX-32GF":
            assert 0 < r["e_fit"] < 0.05 and r["w0"] <= 256, r
        else:
            assert r["e_fit"] == 0.0, name


def _brute_force_fit(w, b, g, lattice):
    """e_fit at every point of the lattice, one network at a time, by the DDS width rule itself."""
    w0s, step, k_max, wms = lattice
    best = np.inf
    for w0 in w0s:
        for wm in wms:
            widths, _, _, _ = regnet_block_widths(len(w), w0, np.round(np.arange(1, k_max + 1) * step, 10), wm)
            raw = np.maximum(widths, 8)
            from regspace.design import make_compatible

            best = min(best, float(np.min(np.mean(np.abs(np.log(w / make_compatible(raw, b, g)[0])), axis=1))))
    return best


def test_quantised_fit_is_the_minimum_of_a_brute_force_grid():
    """The fit's sweep over wa equals evaluating every (w0, wa, wm) of a lattice one by one: irregular,
    increasing and decreasing AnyNet widths, grouped blocks and bottlenecks."""
    from regspace.analysis.fit import lattice_fit
    from regspace.design import make_compatible

    rng = np.random.default_rng(3)
    lattice = (np.arange(8, 57, 8.0), 0.1, 300, np.round(np.arange(1500, 3001, 11) * 0.001, 6))
    for case in range(12):
        d = int(rng.integers(2, 8))
        w = rng.choice([8, 16, 24, 32, 48, 64, 96, 128, 256], d)
        w = np.sort(w) if case % 3 == 0 else w
        b = np.full(d, float(rng.choice([1, 2])))
        g = np.full(d, int(rng.choice([1, 8])))
        w = make_compatible(w, b, g)[0]
        r = lattice_fit(w, b, g, lattice=lattice)
        assert r["e_fit"] == pytest.approx(_brute_force_fit(w, b, g, lattice), abs=1e-12), (w, b, g)
        assert lattice_fit(w, b, g, lattice=lattice, coarse=False)["e_fit"] == r["e_fit"]  # the sweep alone
        assert r["e_fit"] == pytest.approx(float(np.mean(np.abs(np.log(w / predicted_widths(
            d, r["w0"], r["wa"], r["wm"], b, g))))), abs=1e-12)  # fmt: skip  # the reported point gives it


def test_the_sweep_over_wa_equals_every_wa_evaluated():
    """The step-function sweep gives, for every wm, the same minimum over wa as evaluating each wa."""
    from regspace.analysis.fit import min_over_wa
    from regspace.design import make_compatible

    rng = np.random.default_rng(8)
    wms = np.round(np.arange(1500, 3001, 5) * 0.001, 6)
    for case in range(8):
        d = int(rng.integers(3, 12))
        w = rng.choice([8, 16, 24, 32, 48, 64, 96, 128, 256, 512], d)
        w = np.sort(w) if case % 2 else w
        b, g = np.full(d, float(rng.choice([1, 2]))), np.full(d, int(rng.choice([1, 8])))
        w = make_compatible(w, b, g)[0]
        w0 = float(rng.choice([8, 16, 24, 40]))
        got, k = min_over_wa(w, b, g, w0, wms, 0.1, 600)
        ks = np.arange(1, 601)
        for i, wm in enumerate(wms):
            widths, _, _, _ = regnet_block_widths(d, w0, np.round(ks * 0.1, 10), wm)
            err = np.mean(np.abs(np.log(w / make_compatible(np.maximum(widths, 8), b, g)[0])), axis=1)
            assert got[i] == pytest.approx(err.min(), abs=1e-12), (w, wm)
            assert err[k[i] - 1] == pytest.approx(err.min(), abs=1e-12)


def test_regnets_that_skip_an_exponent_fit_exactly():
    """RegNet widths whose exponents skip a value (two stages one quantum apart in wm): the fit finds
    e_fit = 0, which the earlier grid search missed (up to 0.079)."""
    rng = np.random.default_rng(11)
    found = 0
    while found < 12:
        d, w0 = int(rng.integers(6, 24)), int(rng.integers(1, 24)) * 8
        wa, wm = round(float(np.exp(rng.uniform(np.log(0.5), np.log(64)))), 1), round(float(rng.uniform(1.5, 3)), 3)
        w, s, _, _ = regnet_block_widths(d, w0, wa, wm)
        if len(np.unique(w[0])) < s[0].max() + 1:  # an exponent is skipped
            found += 1
            assert fit_widths(w[0])["e_fit"] == 0.0, (d, w0, wa, wm)


def test_width_fit_of_an_irregular_anynet_is_positive_and_best_of_its_grid():
    widths = np.repeat([24, 64, 288, 176], [4, 3, 1, 12])
    r = fit_widths(widths)
    assert 0 < r["e_fit"] < 1
    worse = np.mean(np.abs(np.log(widths / predicted_widths(len(widths), 24, 0.0, 2.0, 1.0, 1))))
    assert r["e_fit"] <= worse


def _population(errors_by_space: dict, counts_by_space: dict):
    import pandas as pd

    rows = []
    for s, errors in errors_by_space.items():
        for i, (e, m) in enumerate(zip(errors, counts_by_space[s])):
            rows.append(
                {
                    "space": s,
                    "model_id": f"{s}-{i}",
                    "status": "ok",
                    "sweep_error": e,
                    "error": e,
                    "multiplicity": m,
                    "flops": 1e6 * (1 + i % 7),
                    "params": 1e5,
                    "acts": 1e5,
                }
            )
    df = pd.DataFrame(rows)
    df.attrs["spaces"] = list(errors_by_space)
    return df


def test_repeated_networks_weigh_in_the_edf_and_the_ks_test():
    """A network drawn m times counts m times: statistics equal those of the expanded draws (scipy on them)."""
    from regspace.analysis.compare import compare, space_weights

    rng = np.random.default_rng(4)
    ea, eb = rng.normal(13, 1, 40), rng.normal(13.6, 1, 30)
    ma, mb = rng.integers(1, 5, 40), np.ones(30, dtype=int)
    ma[np.argmax(ea)] = 25  # the worst network of A was drawn 25 times: A's EDF must show it
    df = _population({"A": ea, "B": eb}, {"A": ma, "B": mb})
    xa, xb = np.repeat(ea, ma), np.repeat(eb, mb)
    r = compare(df)
    a = r["spaces"][0]
    assert a["n"] == len(xa) == ma.sum() and a["networks"] == 40
    assert math.isclose(a["median"], np.median(xa)) and math.isclose(a["mean"], xa.mean())
    assert not math.isclose(a["median"], np.median(ea))  # ...which the unweighted median is not
    pair = r["pairs"][0]
    assert math.isclose(pair["ks"], stats.ks_2samp(xa, xb).statistic, abs_tol=1e-12)
    assert pair["n_a"] == ma.sum()  # a permutation test over the draws (Kish's n is for weights, not repeats)
    w = space_weights({"A": df[df.space == "A"]}, None)["A"]
    grid = np.linspace(9, 17, 50)
    assert np.allclose(edf(ea, grid, w), [(xa < g).mean() for g in grid])
    # normalised: each bin's mass is shared by the draws in it
    info = {}
    wn = space_weights({"A": df[df.space == "A"], "B": df[df.space == "B"]}, "flops", n_bins=7, info=info)["A"]
    f = df[df.space == "A"].flops.to_numpy() / 1e6  # 1 .. 7; strictly inside (1, 7): 2 .. 6, in 5 bins
    n_bins = info["n_bins"]
    assert n_bins == 5 and "not 7" in info["note"]
    inside = (f > 1) & (f < 7)
    bins = np.floor((f - 1) / 6 * n_bins).astype(int)
    per_draw = wn / ma
    assert (wn[~inside] == 0).all()
    for k in range(n_bins):
        members = inside & (bins == k)
        assert np.allclose(per_draw[members], 1 / (n_bins * ma[members].sum()))


def test_bootstrap_and_search_resample_draws():
    """A network drawn 99 times out of 100 draws dominates every resample and every random search."""
    e, m = np.array([10.0, 20.0]), np.array([1, 99])
    low, high = bootstrap_band(e, [15.0], counts=m, n_boot=400)
    assert low[0] <= 0.01 <= high[0] and high[0] < 0.05  # F(15) = 1/100
    r = search_efficiency(e, [1, 10], counts=m)
    assert r["n"] == 100 and math.isclose(r["expected"][0], (10 + 99 * 20) / 100)
    assert math.isclose(r["expected"][1], 20 - 10 * 0.1)  # P(the one 10 % draw is among 10 of 100) = 0.1
    g = good_range(np.array([1.0, 2.0]), e, counts=m, n_boot=2000, seed=0)
    # 25 draws of 100: the 10 % network is among them with probability 1 - 0.99**25 = 0.22
    assert g["median"] == 2.0 and g["low"] == 1.0


def _nds_weights(c, lo, hi, n_bins):
    """NDS's normalisation, re-typed from its description: models strictly inside (lo, hi), equal-width
    bins, each bin 1/n_bins of the mass shared by its models."""
    c = np.asarray(c, float)
    keep = (c > lo) & (c < hi)
    idx = np.minimum(((c - lo) / (hi - lo) * n_bins).astype(int), n_bins - 1)
    w = np.zeros(len(c))
    for k in range(n_bins):
        members = keep & (idx == k)
        assert members.any(), "the reference needs every bin occupied"
        w[members] = 1.0 / (n_bins * members.sum())
    return w


def test_normalised_weights_follow_nds_strict_common_range():
    import pandas as pd

    from regspace.analysis.compare import space_weights

    a = np.array([1.0, 2.0, 2.5, 3.1, 4.2, 5.0, 6.3, 7.7, 8.1, 9.9, 10.0, 11.0])
    b = np.array([2.0, 2.2, 3.5, 3.9, 4.4, 5.5, 6.0, 6.9, 7.2, 8.8, 9.5, 10.0, 12.0])
    groups = {"A": pd.DataFrame({"params": a}), "B": pd.DataFrame({"params": b})}
    info = {}
    w = space_weights(groups, "params", n_bins=4, info=info)
    lo, hi = 2.0, 11.0  # the largest minimum; the smallest maximum
    assert (info["low"], info["high"], info["n_bins"], info["note"]) == (lo, hi, 4, None)
    np.testing.assert_allclose(w["A"], _nds_weights(a, lo, hi, 4))
    np.testing.assert_allclose(w["B"], _nds_weights(b, lo, hi, 4))
    assert w["B"][0] == w["A"][1] == w["A"][-1] == 0  # the endpoints themselves are outside (strict)


def test_an_empty_bin_reduces_the_bin_count_and_says_so():
    import pandas as pd

    from regspace.analysis.compare import space_weights

    a = np.array([1.0, 1.5, 2.5, 3.0, 7.0, 8.5, 9.5, 10.0])  # nothing between 3 and 7
    b = np.linspace(1.0, 10.0, 30)
    groups = {"A": pd.DataFrame({"params": a}), "B": pd.DataFrame({"params": b})}
    info = {}
    w = space_weights(groups, "params", n_bins=4, info=info)
    # 4 bins over (1, 10): bin 2 (3.25-5.5) holds no model of A; 3 bins: (4-7) is empty too; 2 bins work
    assert info["n_bins"] == 2 and "bin 2 (3.25–5.5) holds no model of A" in info["note"]
    np.testing.assert_allclose(w["A"], _nds_weights(a, 1.0, 10.0, 2))
    for s, c in (("A", a), ("B", b)):  # every bin carries the same mass in every space
        inside = (c > 1) & (c < 10)
        assert w[s][inside & (c < 5.5)].sum() == pytest.approx(0.5)


def test_nds_search_efficiency_is_the_exact_limit_of_ndss_simulation():
    """NDS's procedure, re-typed: trials of k weighted draws with replacement, best error per trial,
    mean and std over trials. With many trials it converges to the exact values."""
    from regspace.analysis.stats import search_efficiency_nds

    rng = np.random.default_rng(3)
    e = rng.gamma(4, 1, 60) + 12
    w = rng.dirichlet(np.ones(60) * 0.7)
    r = search_efficiency_nds(e, ks=[1, 4, 16, 60], weights=w)
    for k, mean, std in zip(r["k"], r["mean"], r["std"]):
        best = e[rng.choice(60, size=(100_000, k), p=w)].min(axis=1)
        assert mean == pytest.approx(best.mean(), abs=4 * best.std() / np.sqrt(len(best)) + 1e-9)
        assert std == pytest.approx(best.std(), rel=0.02, abs=1e-6)
    assert r["k"] == [1, 4, 16, 60] and search_efficiency_nds(e, ks=[64, 128], weights=w)["k"] == []  # k > n: none


def test_nds_search_efficiency_without_weights_counts_draws():
    from regspace.analysis.stats import search_efficiency_nds

    e, m = np.array([10.0, 20.0]), np.array([1, 3])  # uniform over 4 draws: P(best of 1 = 10) = 1/4
    r = search_efficiency_nds(e, ks=[1, 2], counts=m)
    assert r["mean"][0] == pytest.approx(0.25 * 10 + 0.75 * 20)
    assert r["mean"][1] == pytest.approx((1 - 0.75**2) * 10 + 0.75**2 * 20) and r["n"] == 4


def _regspace_imports(path):
    """Every regspace module ``path`` imports, at module top or inside functions."""
    import ast

    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m.startswith("regspace")}


def test_analysis_is_pure_and_has_no_cycle():
    """analysis/ reads and writes no store, prints nothing, draws nothing, trains nothing; its modules
    import each other without a cycle (function-level imports counted)."""
    import ast
    from pathlib import Path

    import regspace.analysis

    root = Path(regspace.analysis.__file__).parent
    graph = {}
    for path in sorted(root.glob("*.py")):
        imports = _regspace_imports(path)
        bad = {m for m in imports if m.split(".")[1] in ("store", "console", "text", "plots", "train", "report",
                                                          "study", "cli", "analysis_io", "queue")}  # fmt: skip
        assert not bad, f"{path.name} imports {sorted(bad)}"
        calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]
        assert not [c for c in calls if isinstance(c.func, ast.Name) and c.func.id == "print"], path.name
        graph[path.stem] = {m.split(".")[2] for m in imports if m.startswith("regspace.analysis.")} - {path.stem}

    def reaches(a, b, seen=()):
        return any(n == b or (n not in seen and reaches(n, b, (*seen, n))) for n in graph.get(a, ()))

    assert not [m for m in graph if reaches(m, m)], graph


def test_only_the_store_writes_inside_a_store_directory():
    """Side files go through Store.write_json; nothing outside store.py uses its private writer."""
    from pathlib import Path

    import regspace

    root = Path(regspace.__file__).parent
    users = [p.relative_to(root) for p in root.rglob("*.py") if p.name != "store.py" and "_atomic_write_bytes"
             in p.read_text()]  # fmt: skip
    assert not users


def test_store_side_files(tmp_path):
    from regspace.errors import StoreError
    from regspace.store import Store

    store = Store.create(tmp_path / "s")
    assert store.read_json("fidelity.json") is None
    path = store.write_json("fidelity.json", {"checks": {}, "latest": None})
    assert path == store.path / "fidelity.json" and path.read_text() == '{\n "checks": {},\n "latest": null\n}'
    assert store.read_json("fidelity.json") == {"checks": {}, "latest": None}
    assert not [p for p in store.path.iterdir() if p.name.startswith(".")]  # no temporary left behind
    for bad in ("regspace.json", "collected.json", "../x.json", "models/x.json", ".x.json", "x.txt"):
        with pytest.raises(ValueError):
            store.write_json(bad, {})
    (store.path / "broken.json").write_text("{")
    with pytest.raises(StoreError, match="cannot read"):
        store.read_json("broken.json")


def test_compare_text_is_the_piped_output_of_compare(tmp_path, capsys):
    """compare.txt (text.compare_text) holds exactly what `regspace compare` prints to a pipe."""
    from regspace.analysis.compare import compare
    from regspace.analysis_io import load_table
    from regspace.synthetic import make_synthetic_store
    from regspace.text import compare_text, print_compare

    store = make_synthetic_store(tmp_path / "s", ("X_a", "RegNetX"), n=12)
    result = compare(load_table(store))
    print_compare(result)
    out = capsys.readouterr().out
    assert out == compare_text(result) and out.startswith("# final validation error (%), recipe synthetic000\n")
    assert "\nFindings\n- Errors are each model's final validation error" in out
