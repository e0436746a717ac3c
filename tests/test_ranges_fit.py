"""Issue 22, faults 7–10 and the best-model bootstrap: good ranges against a permutation null, diverged
and failed models in the Findings, e_fit on one lattice, and the procedures pinned to re-typed references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regspace.analysis.effects import holm
from regspace.analysis.fit import fit_widths, lattice_fit, regnet_lattice
from regspace.analysis.stats import good_range, good_range_test

# -- Holm ------------------------------------------------------------------------------------------


def test_holm_matches_a_hand_computation():
    # sorted: 0.01·4 = 0.04; 0.02·3 = 0.06; 0.03·2 = 0.06 (max with 0.06); 0.5·1 = 0.5
    assert holm([0.03, 0.5, 0.01, 0.02]).tolist() == pytest.approx([0.06, 0.5, 0.04, 0.06])
    assert holm([0.4, 0.3]).tolist() == pytest.approx([0.6, 0.6])  # step-down: never below an earlier one
    assert holm([0.9, 0.8, 0.7]).tolist() == [1.0, 1.0, 1.0]  # capped


# -- the good range is pycls's procedure (fault 10) -----------------------------------------------


def _kept_rank_cdf(n: int, k: int, r):
    """pycls's round, re-typed: k of n draws with replacement, keep the best. With distinct errors the
    kept model has error rank ≤ r with probability 1 − ((n − r)/n)^k."""
    return 1 - ((n - np.asarray(r, float)) / n) ** k


def test_good_range_is_the_best_of_floor_a_quarter_drawn_with_replacement():
    """The percentiles of the kept parameter are the exact quantiles of the best-of-k rank distribution
    with k = floor(n/4); drawing 2k per round (or k without replacement) moves them."""
    n = 40
    rank = np.arange(1, n + 1, dtype=float)
    errors = 10 + rank / 10  # the parameter is the error's rank
    k = n // 4
    cdf = _kept_rank_cdf(n, k, rank)
    below = np.append(0.0, cdf[:-1])
    checked = 0
    for r_exact in rank[cdf - below > 0.02]:  # ranks kept often enough that sampling cannot blur them
        q = 100 * (below[int(r_exact) - 1] + cdf[int(r_exact) - 1]) / 2  # the middle of rank r's step
        r = good_range(rank, errors, n_boot=40_000, seed=1, percentiles=(q, 50.0, q))
        assert r["low"] == r_exact and r["k"] == k, (q, r["low"], r_exact)
        checked += 1
    assert checked >= 8


def test_good_range_test_reports_good_ranges_own_numbers():
    """The permutation test's observed range is good_range's, bit for bit, with repeated networks."""
    rng = np.random.default_rng(2)
    e, m = rng.normal(12, 1, 50), rng.integers(1, 4, 50)
    params = {"d": rng.integers(1, 17, 50).astype(float), "w": rng.choice([8.0, 16, 24, 48, 96], 50)}
    res = good_range_test(params, e, counts=m, n_perm=50, seed=5)
    for name, v in params.items():
        ref = good_range(v, e, counts=m, seed=5)
        assert (res[name]["low"], res[name]["median"], res[name]["high"]) == (ref["low"], ref["median"], ref["high"])
        dv = np.repeat(v, m)
        assert res[name]["excluded"] == pytest.approx(((dv < ref["low"]) | (dv > ref["high"])).mean())


# -- good-range sentences against a permutation null (fault 7) -------------------------------------

STAGE = ["d1", "d2", "d3", "d4", "w1", "w2", "w3", "w4"]


def _store(rng, n: int, error_of=None, status=None) -> pd.DataFrame:
    """One AnyNet-like space: per-stage depths and widths drawn at random; errors from ``error_of``
    (a function of the frame) or pure noise."""
    df = pd.DataFrame({p: rng.integers(1, 17, n) for p in STAGE[:4]})
    for p in STAGE[4:]:
        df[p] = rng.choice([8, 16, 24, 32, 48, 64, 96, 128, 192, 256], n)
    df["space"], df["model_id"] = "S", [f"S-{i}" for i in range(n)]
    df["multiplicity"] = 1
    df["status"] = "ok" if status is None else status
    noise = rng.normal(0, 1, n)
    df["sweep_error"] = 20 + (noise if error_of is None else error_of(df) + 0.3 * noise)
    df.attrs["spaces"] = ["S"]
    return df


def test_one_parameter_alone_drives_the_error():
    """d2 sets the error; the other seven parameters do nothing. d2's range gets its sentence, with its
    calibration stated; no other parameter gets one."""
    from regspace.analysis.findings import good_range_sentences

    for seed in range(5):
        df = _store(np.random.default_rng(seed), 64, error_of=lambda f: 0.5 * f.d2)
        out = good_range_sentences(df, "S", seed=seed)
        assert [r["param"] for r in out] == ["d2"], (seed, [r["sentence"] for r in out])
        s = out[0]["sentence"]
        assert s.startswith("S: d2 ≤ ") and "permut" in s and "Holm-corrected over 8 parameters" in s
        assert "95 % confidence" not in s and out[0]["p_holm"] <= 0.05


def test_permuted_errors_rarely_give_a_good_range_sentence():
    """No parameter matters: a space gets any good-range sentence in at most about α of the stores
    (Holm over its parameters). Before the calibration nearly every store got three or more."""
    from regspace.analysis.findings import good_range_sentences

    reps, hits = 200, 0
    for seed in range(reps):
        df = _store(np.random.default_rng(1000 + seed), 64)
        hits += bool(good_range_sentences(df, "S", seed=seed, n_perm=199))
    # binomial(200, 0.05): P(X > 16) < 0.01
    assert hits <= 16, hits


# -- diverged and failed models are stated (fault 8) ------------------------------------------------


def test_findings_state_diverged_and_failed_models_per_space():
    """The six best models of A diverged (their errors lost), one failed; B lost none. The Findings say so
    with counts and shares of the draws; nothing is said of B."""
    from regspace.analysis.findings import findings

    rng = np.random.default_rng(3)
    rows = []
    for s in ("A", "B"):
        e = np.sort(rng.normal(15, 1, 30))
        for i, x in enumerate(e):
            status = "diverged" if s == "A" and i < 6 else "failed" if s == "A" and i == 6 else "ok"
            rows.append({"space": s, "model_id": f"{s}{i}", "status": status, "multiplicity": 2 if i == 0 else 1,
                         "sweep_error": x if status == "ok" else np.nan})  # fmt: skip
    df = pd.DataFrame(rows)
    df.attrs["spaces"] = ["A", "B"]
    out = findings(df, [])
    assert [x["space"] for x in out["lost"]] == ["A"]
    lost = out["lost"][0]
    assert (lost["diverged"], lost["failed"], lost["draws"]) == (7, 1, 31)  # the first network was drawn twice
    text = " ".join(out["sentences"])
    assert "A: 7 of 31 draws diverged (22.6 %) and 1 of 31 draws failed (3.2 %)" in text
    assert "B:" not in text


# -- the best-model bootstrap ----------------------------------------------------------------------


def _exact_p_a_best(a, b) -> float:
    """P(min of a resample of a < min of a resample of b), exactly: a resample of n draws has its minimum
    ≥ x with probability (share of draws ≥ x)^n. Distinct values, so no ties."""
    a, b = np.sort(a), np.asarray(b)
    ge_a = np.array([(a >= x).mean() ** len(a) for x in a])
    p_min_is = ge_a - np.append(ge_a[1:], 0.0)
    gt_b = np.array([(b > x).mean() ** len(b) for x in a])
    return float((p_min_is * gt_b).sum())


def test_best_model_bootstrap_has_the_exact_probability():
    from regspace.analysis.findings import best_model_bootstrap

    rng = np.random.default_rng(4)
    a, b = rng.normal(13, 1, 64), rng.normal(13.3, 1, 64)
    r = best_model_bootstrap(a, b, n_boot=20_000, seed=0)
    exact = _exact_p_a_best(a, b)
    assert r["p_a_best"] == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / 20_000))
    assert r["best_diff"] == pytest.approx(a.min() - b.min())
    lo, hi = r["best_diff_ci"]
    assert lo <= r["best_diff"] <= hi
    far = best_model_bootstrap(a - 5, b, seed=0)  # A's whole distribution lies far below B's
    assert far["p_a_best"] == 1.0 and far["best_diff_ci"][1] < 0
    same = best_model_bootstrap(a, a.copy(), n_boot=20_000, seed=0)  # the same draws: a coin flip
    assert same["p_a_best"] == pytest.approx(0.5, abs=0.02)


def test_findings_pairs_carry_the_best_model_bootstrap():
    from regspace.analysis.findings import best_model_bootstrap, findings

    rng = np.random.default_rng(5)
    rows = [{"space": s, "model_id": f"{s}{i}", "status": "ok", "multiplicity": 1, "sweep_error": x}
            for s, mu in (("A", 13.0), ("B", 14.0)) for i, x in enumerate(rng.normal(mu, 1, 40))]  # fmt: skip
    df = pd.DataFrame(rows)
    df.attrs["spaces"] = ["A", "B"]
    out = findings(df, [{"a": "A", "b": "B", "ks": 0.4, "p_value": 0.001, "noise": 0.3}])
    ea, eb = (df[df.space == s].sweep_error.to_numpy() for s in ("A", "B"))
    assert out["pairs"][0]["best_model"] == best_model_bootstrap(ea, eb, seed=0)


# -- e_fit on the RegNet lattice (faults 9 and 10) -------------------------------------------------


def test_the_regnet_lattice_is_the_general_spaces():
    """DDS's general RegNet space: w0 ∈ 8·{1..32}, wa ∈ 0.1·{1..2560}, wm ∈ 0.001·{1500..3000}."""
    w0s, step, k_max, wms = regnet_lattice()
    assert w0s.tolist() == [8.0 * i for i in range(1, 33)]
    assert (step, k_max) == (0.1, 2560)
    assert len(wms) == 1501 and wms[0] == 1.5 and wms[-1] == 3.0
    assert np.allclose(np.diff(wms), 0.001)


@pytest.mark.parametrize("widths", [[64, 80, 80, 104], [512, 1024, 1024]])
def test_widths_outside_the_regnet_space_are_not_perfect_regnets(widths):
    """[64, 80, 80, 104] needs wm ≈ 1.3 < 1.5; [512, 1024, 1024] needs w0 = 512 > 256. The exact shortcut
    once called both e_fit = 0."""
    r = fit_widths(widths)
    assert r["e_fit"] > 0 and not r["exact"]
    w0s, step, k_max, wms = regnet_lattice()
    assert r["w0"] in w0s and 1.5 <= r["wm"] <= 3.0 and step <= r["wa"] <= k_max * step


def test_exact_fits_lie_on_the_lattice():
    from regspace.spaces.regnet import regnet_block_widths

    rng = np.random.default_rng(9)
    for _ in range(30):
        d, w0 = int(rng.integers(4, 20)), int(rng.integers(1, 33)) * 8
        wa, wm = round(float(rng.uniform(0.1, 200)), 1), round(float(rng.uniform(1.5, 3.0)), 3)
        w = regnet_block_widths(d, w0, wa, wm)[0][0]
        r = fit_widths(w)
        assert r["e_fit"] == 0.0 and r["exact"]
        assert r["w0"] % 8 == 0 and 8 <= r["w0"] <= 256 and 1.5 <= r["wm"] <= 3.0 and 0.1 <= r["wa"] <= 256
        assert round(r["wa"] * 10) == pytest.approx(r["wa"] * 10) and round(r["wm"] * 1000) == pytest.approx(
            r["wm"] * 1000
        )


# (widths, e_fit on the general lattice, a sub-lattice holding the optimum: w0s, wm from, wm to)
PINNED = [
    ([64, 80, 80, 104], 0.08529268935069176, (48, 56, 64, 72), 1.5, 1.6),
    ([96, 96, 128, 128, 176, 176, 240], 0.08743015054185484, (80, 88, 96, 104), 1.5, 1.6),
    ([32, 48, 48, 64, 64, 96], 0.0649527918566709, (24, 32, 40), 1.5, 1.6),
    ([24, 64, 288, 176], 0.12311912127444855, (16, 24, 32), 2.7, 2.8),
]


@pytest.mark.parametrize("case", PINNED, ids=lambda c: "-".join(map(str, c[0])))
def test_e_fit_of_irregular_widths_is_pinned_and_brute_forced(case):
    """Fixed e_fit values on the general lattice (a wider wm range lowers the first three), each
    confirmed by evaluating every (w0, wa, wm) of a sub-lattice around its optimum by the DDS rule."""
    from regspace.spaces.regnet import regnet_block_widths

    widths, pinned, w0s, wm_from, wm_to = case
    w = np.array(widths)
    r = fit_widths(w)
    assert r["e_fit"] == pytest.approx(pinned, abs=1e-12)
    best = np.inf
    wa = np.round(np.arange(1, 2561) * 0.1, 10)
    for w0 in w0s:
        for wm in np.round(np.arange(round(wm_from * 1000), round(wm_to * 1000) + 1) * 0.001, 6):
            pred = np.maximum(regnet_block_widths(len(w), w0, wa, wm)[0], 8)
            best = min(best, float(np.min(np.mean(np.abs(np.log(w / pred)), axis=1))))
    assert best == pytest.approx(pinned, abs=1e-12)
    wide = lattice_fit(w, np.ones(len(w)), np.ones(len(w), dtype=int), lattice=(
        regnet_lattice()[0], 0.1, 2560, np.round(np.arange(1400, 3001) * 0.001, 6)))  # fmt: skip
    if wm_from == 1.5:  # these want wm below the lattice: widening it must change the value
        assert wide["e_fit"] < pinned
