"""Trends across flops regimes (DDS Fig. 11) and inference time against complexity (Fig. 12).

Every number is checked against an independent computation on constructed frames with a known answer:
slopes against numpy's least squares on log–log (np.polyfit), the top models chosen by hand, and the
sentences on data with a trend and with none (where they must not claim one). The intervals' coverage
is checked by simulation.
"""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from regspace.analysis.speed import rho_difference, spearman_ci, speed_correlations
from regspace.analysis.trends import FLAT_SLOPE, regime_trends, sentences, slope, trend_word

REGIMES = [(3e6, "2M:4M"), (12e6, "8M:16M"), (48e6, "32M:64M")]


def frame(rng, n=50, *, w0_slope=0.5, d_law=None, noise=0.1, regimes=REGIMES):
    """RegNet-like rows: w0 grows as flops^w0_slope, d is drawn independently of flops (no trend) unless
    ``d_law`` gives it one, the error is independent of both (so the top 20 % are a random fifth)."""
    rows = []
    for c, reg in regimes:
        for i in range(n):
            f = c * math.exp(rng.uniform(-0.3, 0.3))
            d = int(rng.integers(10, 20)) if d_law is None else d_law(f)
            rows.append({"space": f"RegNetX@{reg}", "regime": reg, "model_id": f"{reg}-{i}", "flops": f,
                         "status": "ok", "sweep_error": rng.normal(10, 1), "multiplicity": 1, "d": d,
                         "w0": 24 * (f / 3e6) ** w0_slope * math.exp(rng.normal(0, noise)), "wm": 2.5})  # fmt: skip
    return pd.DataFrame(rows)


def by_hand(df, param, top=0.2):
    """The top 20 % of each regime chosen independently (sort, take ceil(0.2 n)) and numpy's fit."""
    xs, ys, per = [], [], {}
    for reg, g in df.groupby("regime", sort=False):
        k = math.ceil(top * len(g))
        best = g.sort_values("sweep_error", kind="stable").head(k)
        xs += list(np.log(best.flops))
        ys += list(np.log(best[param]))
        per[reg] = (float(g.loc[g.sweep_error.idxmin(), param]), float(np.median(best[param])))
    return np.polyfit(xs, ys, 1)[0], per, len(xs)


def test_slopes_and_per_regime_values_match_numpy_on_a_known_trend():
    df = frame(np.random.default_rng(1), n=53)  # top 20 % of 53: ceil gives 11
    r = regime_trends(df, n_boot=300)
    (space,) = r["spaces"]
    assert space["space"] == "RegNetX" and [x["regime"] for x in space["regimes"]] == ["2M:4M", "8M:16M", "32M:64M"]
    params = {p["param"]: p for p in space["params"]}
    assert set(params) == {"d", "w0"}  # wm is one value in every row: fixed by the space, no trend to read
    for name, p in params.items():
        expected, per, n = by_hand(df, name)
        assert p["slope"] == pytest.approx(expected, rel=1e-9) and p["n"] == n == 33
        for x in p["regimes"]:
            assert (x["best"], x["top"]) == pytest.approx(per[x["regime"]])
            assert x["top_low"] <= x["top"] <= x["top_high"] and x["best_low"] <= x["best"] <= x["best_high"]
    w0 = params["w0"]
    assert w0["low"] < 0.5 < w0["high"] and w0["trend"] == "grows"
    assert "initial width w0 of the best models (top 20% of each regime) grows with flops" in w0["sentence"]
    assert params["d"]["trend"] in ("does not change", "not resolved")


def test_every_draws_slope_is_numpys_fit_over_all_rows_and_parts_from_the_top_when_only_the_best_move():
    """The comparison slope over every draw: numpy's fit on all rows; where w0 grows for every model, both
    slopes find it; where only the best fifth's w0 grows (the rest drawn flat), the two CIs part."""
    df = frame(np.random.default_rng(5), n=40)
    params = {p["param"]: p for p in regime_trends(df, n_boot=50)["spaces"][0]["params"]}
    for name, p in params.items():
        assert p["all"]["slope"] == pytest.approx(np.polyfit(np.log(df.flops), np.log(df[name]), 1)[0], rel=1e-9)
        assert p["all"]["n"] == len(df) == 120
    assert params["w0"]["all"]["low"] < 0.5 < params["w0"]["all"]["high"]
    best_only = df.copy()
    rest = best_only.groupby("regime").sweep_error.rank(method="first") > 8  # the top 20 % of 40 is 8
    best_only.loc[rest, "w0"] = np.exp(np.random.default_rng(6).normal(np.log(60), 0.3, rest.sum()))
    (w0,) = regime_trends(best_only, n_boot=50, params=["w0"])["spaces"][0]["params"]
    assert w0["low"] < 0.5 < w0["high"] and w0["all"]["high"] < w0["low"]


def test_shrinking_and_flat_parameters_get_their_words():
    df = frame(np.random.default_rng(2), n=120, w0_slope=-0.4, d_law=lambda f: 16)
    df["d"] = df["d"] + np.random.default_rng(3).integers(0, 2, len(df))  # 16 or 17: flat, narrow
    r = regime_trends(df, n_boot=200)
    words = {p["param"]: p["trend"] for p in r["spaces"][0]["params"]}
    assert words == {"w0": "shrinks", "d": "does not change"}
    (flat,) = [p for p in r["spaces"][0]["params"] if p["param"] == "d"]
    assert -FLAT_SLOPE <= flat["low"] < 0 < flat["high"] <= FLAT_SLOPE
    assert "depth d of the best models (top 20% of each regime) does not change across regimes" in flat["sentence"]


def test_the_rule_is_defined_once_with_its_edges():
    assert trend_word(0.01, 0.3) == "grows" and trend_word(-0.3, -0.01) == "shrinks"
    assert trend_word(-0.1, 0.1) == "does not change" and trend_word(-0.11, 0.05) == "not resolved"
    assert trend_word(math.nan, math.nan) == "not resolved"


def test_without_a_trend_the_sentences_do_not_claim_one():
    """Null data (nothing depends on flops): over 150 simulated studies the sentence claims a trend
    (grows/shrinks) at about the CI's 5 % — at most 9 % — and with few, noisy draws it says "not
    resolved" rather than "does not change"."""
    rng = np.random.default_rng(4)
    claims = 0
    for _ in range(150):
        df = frame(rng, n=20, w0_slope=0.0)
        (p,) = regime_trends(df, n_boot=10, params=["w0"])["spaces"][0]["params"]
        claims += p["trend"] in ("grows", "shrinks")
    assert claims / 150 <= 0.09
    noisy = frame(np.random.default_rng(11), n=10, w0_slope=0.0, noise=1.0)
    w0 = [p for p in regime_trends(noisy, n_boot=100)["spaces"][0]["params"] if p["param"] == "w0"][0]
    assert w0["trend"] == "not resolved" and "not resolved" in w0["sentence"]
    assert "grows" not in w0["sentence"] and "shrinks" not in w0["sentence"]


def test_least_squares_not_theil_sen_on_quantised_values():
    """Why the slope is least squares (analysis/trends.py): values on a power-of-two grid tie within a
    regime, and Theil–Sen's median of pairwise slopes is pulled to 0 while least squares is not."""
    rng = np.random.default_rng(0)
    ols, ts, cover = [], [], 0
    for _ in range(150):
        xs, ys = [], []
        for c, _ in REGIMES:
            f = c * np.exp(rng.uniform(-0.35, 0.35, 20))
            g = 2.0 ** np.round(np.log2(8 * (f / 3e6) ** 0.3 * np.exp(rng.normal(0, 0.3, 20))))
            xs.append(np.log(f))
            ys.append(np.log(g))
        x, y = np.concatenate(xs), np.concatenate(ys)
        s = slope(x, y)
        ols.append(s["slope"])
        cover += s["low"] <= 0.3 <= s["high"]
        ts.append(stats.theilslopes(y, x).slope)
    assert abs(np.mean(ols) - 0.3) < 0.02 and 0.9 <= cover / 150 <= 0.99
    assert np.mean(ts) < 0.25


def test_repeat_draws_count_and_a_lone_regime_is_said_not_to_suffice():
    df = frame(np.random.default_rng(6), n=10)
    twice = df.assign(multiplicity=2)
    p = [p for p in regime_trends(twice, n_boot=50)["spaces"][0]["params"] if p["param"] == "w0"][0]
    assert p["n"] == 2 * 3 * 2  # 20 draws per regime, top 4, the 2 best networks twice each
    one = df[df.regime == "2M:4M"]
    r = regime_trends(one, n_boot=50)
    assert r["spaces"][0]["params"] == [] and "two or more regimes" in sentences(r)[0]


# -- inference time against complexity ------------------------------------------------------------


def test_spearman_matches_ranks_by_hand_and_its_ci_covers_by_simulation():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=40), rng.normal(size=40)
    y = x + y
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731 - no ties in continuous draws
    assert spearman_ci(x, y)["rho"] == pytest.approx(np.corrcoef(rank(x), rank(y))[0, 1])
    rho_p = 0.7
    true = 6 / math.pi * math.asin(rho_p / 2)  # Spearman's ρ of a bivariate normal with Pearson's ρ
    cov = [[1, rho_p], [rho_p, 1]]
    hits = 0
    for _ in range(600):
        a, b = rng.multivariate_normal([0, 0], cov, size=25).T
        c = spearman_ci(a, b)
        hits += c["low"] <= true <= c["high"]
    assert 0.92 <= hits / 600 <= 0.98


def speed_frame(rng, n, *, by):
    acts = np.exp(rng.uniform(10, 13, n))
    flops = np.exp(rng.uniform(15, 18, n))
    time = {"acts": acts, "flops": flops, "both": np.sqrt(acts * flops)}[by] * np.exp(rng.normal(0, 0.3, n))
    return pd.DataFrame({"model_id": [f"m{i}" for i in range(n)], "status": "ok", "sweep_error": 10.0,
                         "flops": flops, "acts": acts, "params": np.exp(rng.uniform(10, 12, n)),
                         "inference_images_per_second": 1.0 / time, "device": "cpu test"})  # fmt: skip


def test_activations_are_said_to_predict_speed_better_only_when_they_do():
    rng = np.random.default_rng(8)
    acts = speed_frame(rng, 40, by="acts")
    r = speed_correlations(pd.concat([acts, acts]), n_boot=500)  # a network in two spaces counts once
    (dev,) = r["devices"]
    assert dev["n"] == 40
    assert dev["measures"]["acts"]["rho"] > 0.8 and dev["acts_vs_flops"]["low"] > 0
    assert dev["sentences"][1].startswith("Activations predict inference time better than flops")
    r = speed_correlations(speed_frame(rng, 40, by="flops"), n_boot=500)
    assert r["devices"][0]["sentences"][1].startswith("Flops predict inference time better")
    claims = 0
    for _ in range(40):  # time depends on both alike: the verdict must not pick one (at most ~5 % + slack)
        d = speed_correlations(speed_frame(rng, 30, by="both"), n_boot=300)["devices"][0]
        claims += not d["sentences"][1].startswith("Neither")
    assert claims <= 5


def test_speed_rows_without_a_measurement_or_on_few_models_are_left_out_per_device():
    df = speed_frame(np.random.default_rng(9), 12, by="acts")
    df.loc[:5, "inference_images_per_second"] = None  # trained before schema 6
    df.loc[6:8, "device"] = "cuda:0 other"
    r = speed_correlations(df, n_boot=100)
    assert r["devices"] == [] and len(r["left_out"]) == 2
    assert speed_correlations(df.drop(columns="inference_images_per_second"))["devices"] == []


def test_rho_difference_is_the_difference_of_scipy_spearmans():
    rng = np.random.default_rng(10)
    t, a, b = rng.normal(size=(3, 30))
    d = rho_difference(t, a, b, n_boot=200)
    assert d["difference"] == pytest.approx(stats.spearmanr(b, t).statistic - stats.spearmanr(a, t).statistic)
    from regspace.analysis.speed import _rho_along

    tied = np.round(rng.normal(size=(5, 30)), 1)  # ties: mid-ranks, as spearmanr
    many = _rho_along(tied, tied[::-1], axis=-1)
    assert many == pytest.approx([stats.spearmanr(x, y).statistic for x, y in zip(tied, tied[::-1])])


def test_a_drawn_lr_has_a_trend_and_a_shared_stage_parameter_is_read_once():
    """A study with regimes and a drawn learning rate: lr is a parameter like the design's (here the
    best models' lr falls as flops^-0.5, by construction: the error is lowest near that lr). X_c-like rows
    share b, so b1 … b4 repeat b: one row, not five. g is 8 in every top draw but varies below: said in
    words, not as a slope with an undefined interval."""
    rng = np.random.default_rng(4)
    rows = []
    for c, reg in REGIMES:
        for i in range(40):
            f = c * math.exp(rng.uniform(-0.3, 0.3))
            lr = math.exp(rng.uniform(math.log(0.01), math.log(1.0)))
            best_lr = 0.4 * (f / 3e6) ** -0.5
            err = 10 + 3 * abs(math.log(lr / best_lr)) + rng.normal(0, 0.05)
            b = float(rng.choice([1, 2, 4]))
            g = float(rng.choice([8, 16]))
            rows.append({"space": f"X_c@{reg}", "regime": reg, "model_id": f"{reg}-{i}", "flops": f, "status": "ok",
                         "sweep_error": err, "multiplicity": 1, "lr": lr, "b": b, "g": g,
                         **{f"b{k}": b for k in range(1, 5)}, "d1": float(rng.integers(1, 9))})  # fmt: skip
    df = pd.DataFrame(rows)
    df["rank"] = df.groupby("regime").sweep_error.rank()
    df.loc[df["rank"] <= 10, "g"] = 8.0  # the top 20 % (8 of 40) and two more: g = 8
    r = regime_trends(df, n_boot=200)
    params = {p["param"]: p for p in r["spaces"][0]["params"]}
    assert {"b", "lr", "d1"} <= set(params) and not {"b1", "b2", "b3", "b4"} & set(params)
    lr = params["lr"]
    assert lr["trend"] == "shrinks" and lr["low"] < -0.5 < lr["high"]
    assert "learning rate lr of the best models (top 20% of each regime) shrinks with flops" in lr["sentence"]
    g = params["g"]
    assert "all have group width g = 8: no trend can be measured" in g["sentence"] and "nan" not in g["sentence"]
