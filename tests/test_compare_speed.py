"""compare's speed-ups give the numbers they replace (issue 25 §1): the power simulation's KS tests against
scipy row by row, the coarse e_fit bound against the definition, and the store's e_fit cache (same Findings,
no fit twice, ignored when stale or unwritable)."""

import json

import numpy as np
import pytest
from scipy import stats

from regspace.analysis import findings, fit
from regspace.analysis.compare import compare
from regspace.analysis.fit import e_fit, predicted_widths, regnet_lattice


def _samples(n1, n2, ties, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(13, 1, 60), rng.normal(13.3, 1.2, 60)
    if ties:  # errors as stored: a few decimals, so resampled rows hold many ties
        a, b = np.round(a, 1), np.round(b, 1)
    return rng.choice(a, (150, n1)), rng.choice(b, (150, n2))


@pytest.mark.parametrize("n1, n2", [(64, 64), (5, 9), (30, 31), (256, 256)])
@pytest.mark.parametrize("ties", [True, False])
def test_ks_rows_are_scipys_p_values_row_by_row(n1, n2, ties):
    x, y = _samples(n1, n2, ties, seed=n1 + n2)
    ref = np.array([stats.ks_2samp(x[i], y[i], method="asymp").pvalue for i in range(len(x))])
    assert np.array_equal(findings.ks_asymp_rows(x, y), ref)  # the same floats, not approximately
    for alpha in (0.05, 0.05 / 15, 0.9, 1e-300):
        assert np.array_equal(findings.ks_asymp_rejects(x, y, alpha), ref < alpha), alpha


def _models_to_resolve_row_by_row(a, b, wa=None, wb=None, *, alpha=0.05, seed=0, n_sim=200, max_n=20_000):
    """The power simulation as first written: scipy's ks_2samp on every simulated pair, one at a time."""
    rng = np.random.default_rng(seed)
    pa = None if wa is None else np.asarray(wa, float) / np.sum(wa)
    pb = None if wb is None else np.asarray(wb, float) / np.sum(wb)
    n = max(round(findings.sample_size(a, wa)), round(findings.sample_size(b, wb)), 4)
    while n <= max_n:
        x, y = rng.choice(a, (n_sim, n), p=pa), rng.choice(b, (n_sim, n), p=pb)
        mw = stats.mannwhitneyu(x, y, axis=1, method="asymptotic").pvalue
        ks = np.array([stats.ks_2samp(x[i], y[i], method="asymp").pvalue for i in range(n_sim)])
        if ((mw < alpha) | (ks < alpha)).mean() >= POWER:
            return n
        n *= 2
    return None


POWER = findings.POWER


@pytest.mark.parametrize("shift, spread, weighted", [(0.25, 1.0, False), (0.0, 2.0, False), (0.4, 1.0, True)])
def test_models_to_resolve_is_the_row_by_row_simulation(shift, spread, weighted):
    rng = np.random.default_rng(7)
    a = np.round(rng.normal(13, 1, 40), 2)
    b = np.round(rng.normal(13 + shift, spread, 40), 2)  # shift 0, spread 2: only the shape differs
    wa, wb = (rng.uniform(0.2, 1, 40), rng.uniform(0.2, 1, 40)) if weighted else (None, None)
    for alpha in (0.05, 0.05 / 15):
        got = findings.models_to_resolve(a, b, wa, wb, alpha=alpha, max_n=2048)
        assert got == _models_to_resolve_row_by_row(a, b, wa, wb, alpha=alpha, max_n=2048)


@pytest.mark.parametrize(
    "widths, b, g",
    [
        ([16, 16, 48, 48, 48, 120, 120, 300], 1.0, 1),
        ([24, 24, 24, 56, 56, 200, 200, 200, 200, 400], [1.0] * 3 + [2.0] * 7, [1] * 3 + [8] * 7),
        ([64, 32, 96, 96, 256], 4.0, 16),  # not increasing: the lattice search's case
    ],
)
def test_coarse_bound_is_e_fit_of_the_predicted_widths(widths, b, g):
    """The coarse bound from per-block tables equals e_fit of predicted_widths (the width rule itself) at
    every point of its sub-lattice, bit for bit, and picks the same first minimum."""
    w = np.asarray(widths)
    d = len(w)
    b = np.broadcast_to(np.asarray(b, float), (d,))
    g = np.broadcast_to(np.asarray(g), (d,))
    w0s, step, k_max, wms = regnet_lattice()
    got = fit._coarse_upper_bound(w, b, g, 8, w0s, step, k_max, wms)
    ks = np.unique(np.geomspace(1, k_max, 48).round())
    W0, WM, K = (x.ravel() for x in np.meshgrid(w0s, wms[:: max(1, len(wms) // 40)], ks, indexing="ij"))
    err = e_fit(w, predicted_widths(d, W0, np.round(K * step, 10), WM, b, g, 8))
    i = int(np.argmin(err))
    assert got == {"w0": int(W0[i]), "wa": float(np.round(K[i] * step, 10)), "wm": float(WM[i]),
                   "e_fit": float(err[i])}  # fmt: skip


# -- the e_fit cache -------------------------------------------------------------------------------


@pytest.fixture
def synthetic(tmp_path):
    from regspace.synthetic import make_synthetic_store

    return make_synthetic_store(tmp_path / "s", ("X_a", "X_c", "RegNetX"), n=12)


def _table(store):
    from regspace.analysis_io import load_table

    return load_table(store)


def _no_fitting(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a model was fitted again")

    monkeypatch.setattr(fit, "fit_widths", refuse)


def test_cached_compare_gives_the_same_json_and_fits_nothing_twice(synthetic, monkeypatch):
    from regspace.analysis_io import FIT_CACHE_FILE, compare_store

    fresh = json.dumps(compare(_table(synthetic)))
    first = compare_store(synthetic, _table(synthetic))
    kept = synthetic.read_json(FIT_CACHE_FILE)
    fits = [k for k in kept["fits"] if not k.startswith("power:")]
    assert len(fits) == 10  # the 5 best models of X_a and of X_c; RegNetX needs no fit
    unresolved = [v for v in first["findings"]["pairs"] if v["verdict"] == "not resolved"]
    assert unresolved and len(kept["fits"]) - len(fits) == len(unresolved)  # one models-needed answer each
    assert json.dumps(first) == fresh
    _no_fitting(monkeypatch)
    monkeypatch.setattr(findings, "models_to_resolve", lambda *a, **k: pytest.fail("simulated again"))
    second = compare_store(synthetic, _table(synthetic))
    assert json.dumps(second) == fresh  # fits through JSON: the very floats


def test_a_stale_or_damaged_cache_is_refitted(synthetic, monkeypatch):
    from regspace.analysis_io import FIT_CACHE_FILE, compare_store, read_fit_cache

    fresh = json.dumps(compare(_table(synthetic)))
    compare_store(synthetic, _table(synthetic))
    entries = synthetic.read_json(FIT_CACHE_FILE)
    poisoned = {k: {**v, "e_fit": 99.0} if isinstance(v, dict) else v for k, v in entries["fits"].items()}
    synthetic.write_json(FIT_CACHE_FILE, {"definition": entries["definition"], "fits": poisoned})
    assert "99.000" in json.dumps(compare_store(synthetic, _table(synthetic)))  # the cache is what is read
    monkeypatch.setattr(fit, "FIT_VERSION", fit.FIT_VERSION + 1)  # a new definition: old fits are dropped
    assert read_fit_cache(synthetic) == {}
    assert json.dumps(compare_store(synthetic, _table(synthetic))) == fresh
    (synthetic.path / FIT_CACHE_FILE).write_text("{not json")
    assert read_fit_cache(synthetic) == {}
    assert json.dumps(compare_store(synthetic, _table(synthetic))) == fresh


def test_an_unwritable_store_still_compares(synthetic, monkeypatch):
    from regspace.analysis_io import FIT_CACHE_FILE, compare_store
    from regspace.errors import StoreError

    def refuse(*a, **k):
        raise StoreError("read-only")

    monkeypatch.setattr(type(synthetic), "write_json", refuse)
    assert json.dumps(compare_store(synthetic, _table(synthetic))) == json.dumps(compare(_table(synthetic)))
    assert not (synthetic.path / FIT_CACHE_FILE).exists()


def test_fit_frame_reads_and_fills_the_cache(synthetic):
    df = _table(synthetic)
    g = df[df.space == "X_a"].head(3)
    ids = g.model_id.tolist()
    cache = {ids[0]: {"w0": 8, "wa": 0.1, "wm": 2.0, "d": 1, "e_fit": 123.0, "exact": False}}
    out = fit.fit_frame(g, cache)
    assert out.e_fit.iloc[0] == 123.0  # taken from the cache, not fitted
    assert set(cache) == set(ids)
    plain = fit.fit_frame(g)
    assert out.iloc[1:].equals(plain.iloc[1:])


def test_compare_command_keeps_the_cache(synthetic, run_cli, monkeypatch):
    out1 = run_cli("compare", "--store", str(synthetic.path), "--json")
    _no_fitting(monkeypatch)
    assert run_cli("compare", "--store", str(synthetic.path), "--json") == out1
