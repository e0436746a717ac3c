"""Issue 22 §5, §6 and the simultaneous bands: one noise level, a KS test over repeated draws, legends and
tables that describe the sample shown, and a DKW band that covers the truth. Constructed data only."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from regspace.analysis.edf import (
    _exact_critical,
    bootstrap_sup_band,
    dkw_band,
    dkw_epsilon,
    ks_noise_level,
    ks_permutation_test,
    ks_tail_exact,
    ks_test,
)

# (n, m) whose exact tail at the critical value and one lattice step below are both far from 5 % (> 5 sd of
# a 20,000-permutation estimate), so a fixed seed must land on the exact value
DECISIVE = [(12, 12), (20, 20), (30, 30), (50, 50), (64, 64), (10, 20)]


@pytest.mark.parametrize("n, m", DECISIVE)
def test_permutation_noise_level_is_the_exact_one_without_repeats(n, m):
    exact = _exact_critical(n, m, 0.05)
    lattice = np.unique(np.abs(np.arange(n + 1)[:, None] * m - np.arange(m + 1) * n)) / (n * m)
    below = lattice[lattice < exact - 1e-12].max()
    sd = math.sqrt(0.05 * 0.95 / 20_000)
    assert ks_tail_exact(exact, n, m) < 0.05 - 5 * sd and ks_tail_exact(below, n, m) > 0.05 + 5 * sd
    rng = np.random.default_rng(n * 1000 + m)
    a, b = rng.normal(size=n), rng.normal(size=m)  # no repeats
    r = ks_permutation_test(a, b, n_perm=20_000, seed=0)
    assert r["noise"] == pytest.approx(exact, abs=1e-12)
    assert ks_noise_level(0, draws_a=a, draws_b=b)["noise"] == pytest.approx(exact, abs=1e-12)
    assert ks_noise_level(n, m)["noise"] == pytest.approx(exact, abs=1e-12)


@pytest.mark.parametrize("n, m", [(40, 40), (50, 80), (32, 48), (30, 45)])
def test_permutation_noise_level_is_a_lattice_value_that_moves_at_most_one_step_with_the_seed(n, m):
    """Sizes whose exact tail sits near 5 %: a new Monte Carlo seed may move the value, but only to a
    neighbouring value of the lattice |i·m − j·n| / (n·m)."""
    lattice = np.unique(np.abs(np.arange(n + 1)[:, None] * m - np.arange(m + 1) * n)) / (n * m)
    k = int(np.searchsorted(lattice, _exact_critical(n, m, 0.05) - 1e-12))
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=n), rng.normal(size=m)
    for seed in range(8):
        v = ks_permutation_test(a, b, n_perm=4000, seed=seed)["noise"]
        j = int(np.argmin(np.abs(lattice - v)))
        assert lattice[j] == pytest.approx(v, abs=1e-12)  # on the lattice
        assert abs(j - k) <= 1


def test_noise_level_is_the_smallest_d_whose_null_tail_is_at_most_alpha_with_repeated_draws():
    """Heavy ties (12 networks, 30 draws each): the permutation value is the smallest attainable d with
    P(D ≥ d) ≤ 5 % under the null, the null simulated by drawing fresh samples."""
    rng = np.random.default_rng(5)
    population = rng.normal(13, 1, 12)
    weights = rng.dirichlet(np.ones(12))
    a, b = rng.choice(population, 30, p=weights), rng.choice(population, 30, p=weights)
    r = ks_noise_level(0, draws_a=a, draws_b=b, n_perm=4000)
    assert r["method"] == "permutation"
    sims = np.array(
        [
            stats.ks_2samp(rng.choice(population, 30, p=weights), rng.choice(population, 30, p=weights)).statistic
            for _ in range(4000)
        ]
    )
    assert (sims >= r["noise"] - 1e-9).mean() <= 0.05 + 0.01
    assert (sims >= r["noise"] - 1 / 30 - 1e-9).mean() > 0.05 - 0.01  # one step lower is not: the smallest
    assert r["noise"] < ks_noise_level(30, 30)["noise"]  # ties shrink D


def _null_pvalues(test, reps=400):
    """p-values of two spaces whose draws come from one population of 40 networks (many repeats)."""
    rng = np.random.default_rng(11)
    population = rng.normal(13, 1, 40)
    p = rng.dirichlet(np.ones(40))
    out = []
    for _ in range(reps):
        a, b = rng.choice(40, 64, p=p), rng.choice(40, 64, p=p)
        out.append(test(population, a, b))
    return np.array(out)


def _binomial_bounds(reps, alpha=0.05):
    return stats.binom.ppf(0.0005, reps, alpha) / reps, stats.binom.ppf(0.9995, reps, alpha) / reps


def test_ks_p_value_over_repeated_draws_is_uniform_under_the_null():
    """The permutation test over draws: under the null, P(p ≤ 0.05) is 0.05 within binomial bounds."""
    p = _null_pvalues(lambda pop, a, b: ks_permutation_test(pop[a], pop[b], n_perm=400, seed=0)["p_value"])
    lo, hi = _binomial_bounds(len(p))
    assert lo <= (p <= 0.05).mean() <= hi, (p <= 0.05).mean()


def _store(errors_by_space: dict, counts_by_space: dict, params_by_space: dict) -> pd.DataFrame:
    rows = []
    for s, errors in errors_by_space.items():
        for i, (e, m, c) in enumerate(zip(errors, counts_by_space[s], params_by_space[s])):
            rows.append(
                {"space": s, "model_id": f"{s}-{i}", "status": "ok", "sweep_error": e, "error": e,
                 "multiplicity": m, "flops": c * 10, "params": c, "acts": c}
            )  # fmt: skip
    df = pd.DataFrame(rows)
    df.attrs["spaces"] = list(errors_by_space)
    return df


def test_compare_with_repeated_draws_uses_the_permutation_test_over_draws():
    from regspace.analysis.compare import compare

    rng = np.random.default_rng(4)
    ea, eb = rng.normal(13, 1, 40), rng.normal(13.6, 1, 30)
    ma, mb = rng.integers(1, 5, 40), np.ones(30, dtype=int)
    df = _store({"A": ea, "B": eb}, {"A": ma, "B": mb}, {"A": np.arange(40.0), "B": np.arange(30.0)})
    pair = compare(df)["pairs"][0]
    r = ks_permutation_test(np.repeat(ea, ma), eb, seed=0)
    assert pair["p_value"] == r["p_value"] and pair["noise"] == r["noise"] and pair["noise_method"] == "permutation"
    assert pair["n_a"] == ma.sum() and pair["ks"] == pytest.approx(stats.ks_2samp(np.repeat(ea, ma), eb).statistic)


# -- simultaneous bands ----------------------------------------------------------------------------


def test_dkw_band_covers_the_true_cdf_everywhere_in_95_percent_of_samples():
    """Dvoretzky–Kiefer–Wolfowitz–Massart: 400 seeded samples of 50 uniforms; the band must hold the true
    CDF F(x) = x at every x, checked at each sample point from both sides (where |F_n − F| peaks)."""
    n, covered = 50, 0
    for seed in range(400):
        u = np.sort(np.random.default_rng(seed).uniform(size=n))
        left, right = np.nextafter(u, -np.inf), np.nextafter(u, np.inf)  # just before and after each jump
        grid = np.concatenate([left, right, [0.0, 1.0]])
        low, high = dkw_band(u, grid)
        covered += bool(np.all((low <= grid + 1e-12) & (grid - 1e-12 <= high)))
    assert covered >= 0.95 * 400
    assert dkw_epsilon(n) == pytest.approx(math.sqrt(math.log(40) / 100))


def test_dkw_band_counts_draws_of_repeated_networks():
    low, high = dkw_band([1.0, 2.0], [1.5], counts=[3, 1])
    eps = dkw_epsilon(4)
    assert low[0] == pytest.approx(max(0, 0.75 - eps)) and high[0] == pytest.approx(min(1, 0.75 + eps))


def test_bootstrap_sup_band_is_simultaneous_and_wider_than_pointwise():
    from regspace.analysis.edf import bootstrap_band

    rng = np.random.default_rng(3)
    e = rng.normal(size=80)
    grid = np.linspace(-3, 3, 121)
    lo_p, hi_p = bootstrap_band(e, grid, n_boot=400, seed=1)
    lo_s, hi_s = bootstrap_sup_band(e, grid, n_boot=400, seed=1)
    assert (hi_s - lo_s).max() > (hi_p - lo_p).max()
    covered = 0
    for seed in range(60):
        x = np.random.default_rng(100 + seed).normal(size=80)
        lo, hi = bootstrap_sup_band(x, grid, n_boot=200, seed=seed)
        covered += bool(np.all((lo <= stats.norm.cdf(grid) + 1e-9) & (stats.norm.cdf(grid) <= hi + 1e-9)))
    assert covered >= 50  # nominal 95 %: about 57 of 60; a pointwise band covers far less often


def _normalised_store():
    """Two spaces; A's cheapest and dearest networks fall outside the common params range (weight 0), and
    A's networks are drawn 1-3 times."""
    rng = np.random.default_rng(8)
    pa, pb = np.linspace(0.5, 12, 30), np.linspace(2, 10, 25)
    ea, eb = rng.normal(13, 1, 30) - 0.3 * (pa < 2), rng.normal(13.4, 1, 25)
    ma, mb = rng.integers(1, 4, 30), np.ones(25, dtype=int)
    return _store({"A": ea, "B": eb}, {"A": ma, "B": mb}, {"A": pa, "B": pb}), (pa, ea, ma, pb, eb)


def test_normalised_edf_legend_describes_the_normalised_sample():
    from regspace.analysis.compare import space_weights
    from regspace.analysis.table import space_errors
    from regspace.plots.figures import plot_edf

    df, (pa, ea, ma, _, _) = _normalised_store()
    fig = plot_edf(df, normalize="params", n_bins=4)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    w = space_weights(space_errors(df), "params", n_bins=4)["A"]
    kept = (pa > 2) & (pa < 10)
    assert ((w > 0) == kept).all() and ma[kept].sum() < ma.sum()
    assert labels[0] == f"A ({ma[kept].sum()} | {ea[kept].min():.2f} | {np.average(ea, weights=w):.2f})"
    plain = [t.get_text() for t in plot_edf(df).axes[0].get_legend().get_texts()]
    assert plain[0] == f"A ({ma.sum()} | {ea.min():.2f} | {np.average(ea, weights=ma):.2f})"  # unchanged


@pytest.mark.parametrize("normalize, name", [(None, "DKW"), ("params", "bootstrap sup-norm")])
def test_edf_figure_says_which_band_it_shows(normalize, name):
    from regspace.plots.figures import plot_edf

    df, _ = _normalised_store()
    simultaneous = plot_edf(df, normalize=normalize, n_bins=4, band="simultaneous", n_boot=50).axes[0].get_title("left")
    assert "simultaneous" in simultaneous and name in simultaneous
    pointwise = plot_edf(df, normalize=normalize, n_bins=4, band=True, n_boot=50).axes[0].get_title("left")
    assert pointwise.endswith("(95% bootstrap band)")


def test_plot_edf_band_option(tmp_path, capsys):
    """`--band` alone still means pointwise bands; `--band simultaneous` names the other kind."""
    from regspace import cli

    assert cli._band_alone(["plot-edf", "--band", "-o", "x.png"]) == ["plot-edf", "--band", "pointwise", "-o", "x.png"]
    assert cli._band_alone(["plot-edf", "--band"]) == ["plot-edf", "--band", "pointwise"]
    assert cli._band_alone(["plot-edf", "--band", "simultaneous"]) == ["plot-edf", "--band", "simultaneous"]
    assert cli.main(["plot-edf", "--band", "bogus", "--store", str(tmp_path)]) == 2
    assert "use pointwise or simultaneous" in capsys.readouterr().err


def test_compare_normalised_prints_the_normalised_sample_under_its_heading():
    from regspace.analysis.compare import compare
    from regspace.text import compare_text

    df, (pa, ea, ma, pb, eb) = _normalised_store()
    r = compare(df, normalize="params", n_bins=4)
    a = r["spaces"][0]["normalized"]
    kept = (pa > 2) & (pa < 10)
    x = np.repeat(ea[kept], ma[kept])  # the normalised sample's draws
    assert a["n"] == len(x) and a["networks"] == kept.sum() and a["min"] == pytest.approx(x.min())
    text = compare_text(r)
    heading = next(line for line in text.splitlines() if "normalised by params (4 bins)" in line)
    block = text.split(heading)[1].split("\n\n")[0]
    row = next(line for line in block.splitlines() if line.split()[:1] == ["A"])
    assert row.split()[1] == str(len(x)) and row.split()[3] == f"{x.min():.2f}"
    assert "Kolmogorov–Smirnov distance between EDFs normalised by params" in text


def test_normalised_search_counts_only_draws_with_weight():
    from regspace.analysis.compare import space_weights
    from regspace.analysis.stats import search_efficiency_nds
    from regspace.analysis.table import space_errors
    from regspace.plots.figures import plot_search

    df, (pa, ea, ma, _, _) = _normalised_store()
    w = space_weights(space_errors(df), "params", n_bins=4)["A"]
    kept = int(ma[(pa > 2) & (pa < 10)].sum())
    r = search_efficiency_nds(ea, weights=w, counts=ma)
    assert r["n"] == kept and r["k"][-1] == 1 << int(math.log2(kept))
    labels = [t.get_text() for t in plot_search(df, normalize="params", n_bins=4).axes[0].get_legend().get_texts()]
    assert labels[0] == f"A (n={kept})"
    # plain: every draw, k up to the largest power of two within them
    r = search_efficiency_nds(ea, counts=ma)
    assert r["n"] == ma.sum() and r["k"][-1] == 1 << int(math.log2(ma.sum()))


def test_kish_effective_n_is_still_used_for_weighted_edfs():
    """Normalised EDFs carry real weights: their p-value stays the asymptotic one at Kish's effective n."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=40), rng.normal(size=50)
    wa, wb = rng.dirichlet(np.ones(40)), rng.dirichlet(np.ones(50))
    r = ks_test(a, b, wa, wb)
    assert r["n_a"] == pytest.approx(wa.sum() ** 2 / (wa**2).sum())
