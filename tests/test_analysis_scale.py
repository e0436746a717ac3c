"""Issue 25 §1 at 100,000 results: the shortcuts that make the analyses scale give the numbers of the
procedures they replace (the good-range permutation test, importance without a Study, column reads), and
the report reads and fills the store's e_fit cache."""

from __future__ import annotations

import numpy as np
import pytest

from regspace.analysis.stats import _kept_counts, _weighted_percentiles, good_range, good_range_test


def _full_permutation_reference(params, errors, m, *, n_perm, seed, n_boot=2500, frac=0.25):
    """good_range_test as first written (every network permuted, the statistic over all of them), with
    each permutation's values at the kept networks drawn by the same calls as the fast test, and the
    other networks filled with the level's remaining values in a random order: the statistic must not
    depend on that order."""
    kept = _kept_counts(errors, m, n_boot=n_boot, frac=frac, seed=seed)
    held = np.flatnonzero(kept)
    rng, fill = np.random.default_rng([seed, 1]), np.random.default_rng(99)
    perms = np.tile(np.arange(len(m)), (n_perm, 1))
    for level in np.unique(m):
        members = np.flatnonzero(m == level)
        at_held = np.isin(members, held)
        for r in range(n_perm * bool(at_held.any())):
            chosen = members[rng.choice(len(members), int(at_held.sum()), replace=False)]
            rest = fill.permutation(np.setdiff1d(members, chosen))
            perms[r, members[at_held]] = chosen
            perms[r, members[~at_held]] = rest
    share = m / m.sum()
    out = {}
    for name, v in params.items():
        trial = np.vstack([v[None, :], v[perms]])
        q = _weighted_percentiles(trial, kept, (2.5, 50.0, 97.5))
        t = ((trial < q[:, [0]]) * share).sum(axis=1) + ((trial > q[:, [2]]) * share).sum(axis=1)
        out[name] = {"p": (1 + np.sum(t[1:] >= t[0] - 1e-12)) / (n_perm + 1), "excluded": t[0], "q": q[0]}
    return out


@pytest.mark.parametrize("weak", [False, True])
def test_good_range_test_at_many_networks_is_the_full_permutation_test(weak):
    """3,000 networks (most never kept by the bootstrap), repeated ones, discrete and continuous
    parameters, one that drives the error (weakly: a p-value between 0 and 1, which ties at the range's
    ends move): the p-values are those of permuting every network."""
    rng = np.random.default_rng(4)
    n = 3000
    m = rng.choice([1, 1, 1, 2, 3], n)
    d = rng.integers(1, 17, n).astype(float)
    params = {"d": d, "w": rng.choice([8.0, 16, 24, 48, 96], n), "x": rng.normal(0, 1, n)}
    if weak:
        params.update(b=rng.choice([1.0, 2, 4], n), g=rng.integers(1, 6, n).astype(float))
        errors = 12 + 0.15 * d + 0.1 * params["b"] - 0.05 * params["g"] + rng.normal(0, 1, n)
    else:
        errors = 12 + 0.15 * d + rng.normal(0, 1, n)
    assert 0 < len(np.flatnonzero(_kept_counts(errors, m, n_boot=2500, frac=0.25, seed=3))) < n // 2
    got = good_range_test(params, errors, counts=m, n_perm=60, seed=3)
    ref = _full_permutation_reference(params, errors, m, n_perm=60, seed=3)
    for name, v in params.items():
        assert got[name]["p"] == ref[name]["p"], name
        assert got[name]["excluded"] == ref[name]["excluded"]
        g = good_range(v, errors, counts=m, seed=3)
        assert (got[name]["low"], got[name]["median"], got[name]["high"]) == (g["low"], g["median"], g["high"])
    if weak:
        assert 0.1 < got["d"]["p"] < 0.9
    else:
        assert got["d"]["p"] < 0.05 < got["x"]["p"]  # the driving parameter, and a null one


def test_importance_without_a_study_gives_a_studys_numbers():
    """The evaluators read the trials handed to them as a Study's storage would hold them: the same
    importances, for the draws, a bootstrap resample (repeated trials) and shuffled errors."""
    import optuna

    from regspace.analysis import importance as imp

    rng = np.random.default_rng(1)
    n = 120
    x = {"d": rng.integers(1, 17, n).astype(float), "w": rng.choice([8.0, 16, 32, 64], n)}
    y = 10 + 0.3 * x["d"] + rng.normal(0, 1, n)
    dists = {"d": optuna.distributions.IntDistribution(1, 16), "w": optuna.distributions.IntDistribution(8, 64)}

    def via_study(xx, yy, method):
        study = optuna.create_study(direction="minimize")
        study.add_trials(imp._draw_trials(xx, yy, dists))
        ev = (optuna.importance.PedAnovaImportanceEvaluator() if method == "ped-anova"
              else optuna.importance.FanovaImportanceEvaluator(n_trees=imp.N_TREES, seed=0))  # fmt: skip
        got = ev.evaluate(study)
        return np.array([got.get(c, 0.0) for c in dists])

    base = imp._draw_trials(x, y, dists)
    i = rng.integers(0, n, n)
    yp = rng.permutation(y)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    methods = ["ped-anova"] + ["fanova"] * imp.has_fanova()
    for method in methods:
        assert np.array_equal(imp._evaluate(x, y, dists, method, 0, imp._numbered(base, range(n))),
                              via_study(x, y, method))  # fmt: skip
        xi = {c: v[i] for c, v in x.items()}
        assert np.array_equal(imp._evaluate(xi, y[i], dists, method, 0, imp._numbered(base, i)),
                              via_study(xi, y[i], method))  # fmt: skip
        assert np.array_equal(imp._evaluate(x, yp, dists, method, 0, imp._numbered(base, range(n), yp)),
                              via_study(x, yp, method))  # fmt: skip


def test_reading_some_columns_gives_those_of_the_whole_read(tmp_path):
    from regspace.analysis_io import COMPARE_MODEL_COLUMNS
    from regspace.synthetic import make_synthetic_store

    store = make_synthetic_store(tmp_path / "s", ("X_a", "RegNetX"), n=30, diverged=0.1)
    for table, cols in (("models", COMPARE_MODEL_COLUMNS), ("results", ["model_id", "error", "status"])):
        assert store.read_arrow(table, cols).equals(store.read_arrow(table).select(cols))
    for part in store.parts("results"):  # one part, fewer columns than its key: its seeds are still recovered
        assert store.read_part(part, ["model_id", "seed"]).equals(store.read_part(part).select(["model_id", "seed"]))


@pytest.mark.slow
def test_report_reads_and_fills_the_stores_e_fit_cache(tmp_path, monkeypatch):
    """Beyond REPORT_FIT_MAX unfitted models the e_fit figure is left out with a sentence naming the
    command that fits them; once plot-fit has filled the cache, the report draws it without fitting."""
    from regspace import report
    from regspace.analysis import fit
    from regspace.analysis.table import trained
    from regspace.analysis_io import FIT_CACHE_FILE, load_table, read_fit_cache, store_fits
    from regspace.synthetic import make_synthetic_store

    store = make_synthetic_store(tmp_path / "s", ("X_a",), n=30)
    monkeypatch.setattr(report, "REPORT_FIT_MAX", 5)
    skipped: list[str] = []
    df = load_table(store)
    figs = report.build_figures(store, df, ["X_a"], store_arg=str(store.path), recipe_arg=None, skipped=skipped)
    assert "fit" not in [f.key for f in figs]
    assert any("e_fit is left out" in s and "regspace plot-fit" in s for s in skipped), skipped
    store_fits(store, trained(df))  # what `regspace plot-fit` does
    assert len(read_fit_cache(store)) == 30 and (store.path / FIT_CACHE_FILE).exists()
    calls = []
    real = fit.fit_widths
    monkeypatch.setattr(fit, "fit_widths", lambda *a, **k: calls.append(1) or real(*a, **k))
    skipped = []
    figs = report.build_figures(store, df, ["X_a"], store_arg=str(store.path), recipe_arg=None, skipped=skipped)
    assert "fit" in [f.key for f in figs] and not skipped
    assert len(calls) == 8  # only the widths figure's 8 best models; the e_fit figure's 30 come from the cache


@pytest.mark.parametrize("rows", [1, 3, 1000])
def test_bootstrap_rows_drawn_in_chunks_are_one_draws(rows, monkeypatch):
    """The bootstraps draw their resamples a few rows at a time: the numbers of drawing them at once."""
    from regspace.analysis import findings

    rng = np.random.default_rng(0)
    a, b = np.round(rng.normal(13, 1, 300), 1), np.round(rng.normal(13.2, 1, 280), 1)
    whole = findings._shift_boot(a, b, n_boot=50), findings.best_model_bootstrap(a, b, n_boot=50)
    monkeypatch.setattr(findings, "_BOOT_CELLS", rows * 300)
    chunked = findings._shift_boot(a, b, n_boot=50), findings.best_model_bootstrap(a, b, n_boot=50)
    r = np.random.default_rng(0)
    xa = a[r.integers(0, len(a), (50, len(a)))]
    xb = b[r.integers(0, len(b), (50, len(b)))]
    assert np.array_equal(chunked[0][1], np.median(xa, axis=1) - np.median(xb, axis=1))  # re-typed, at once
    assert np.array_equal(chunked[0][3], xa.mean(axis=1) - xb.mean(axis=1))
    assert np.array_equal(whole[0][1], chunked[0][1]) and whole[1] == chunked[1]
