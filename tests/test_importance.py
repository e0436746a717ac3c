"""Which parameters matter (issue 24 §5): Optuna's evaluators on constructed frames with known answers.

fANOVA needs scikit-learn (the ``importance`` extra, installed by ``make test``); its tests skip without it.
"""

import json

import numpy as np
import pandas as pd
import pytest

from regspace.analysis.importance import distributions, importance, resolve_method
from regspace.errors import UsageProblem

fanova = pytest.mark.skipif(not __import__("regspace.analysis.importance").analysis.importance.has_fanova(),
                            reason="fANOVA needs scikit-learn (pip install 'regspace[importance]')")  # fmt: skip


def frame(n=80, *, effect=10.0, seed=1):
    """A RegNet-like space of n draws: error = effect · a + N(0, 1) with a = log(lr / 0.05) / log(20) (lr
    log-uniform on [0.05, 1], so a is uniform on [0, 1]); d, w0, wa, wm have no effect."""
    rng = np.random.default_rng(seed)
    lr = np.exp(rng.uniform(np.log(0.05), 0.0, n))
    df = pd.DataFrame({"space": "S", "status": "ok", "multiplicity": 1, "d": rng.integers(6, 16, n),
                       "w0": 8 * rng.integers(1, 9, n), "wa": rng.uniform(8, 64, n), "wm": rng.uniform(2, 3, n),
                       "lr": lr})  # fmt: skip
    a = np.log(lr / 0.05) / np.log(20)
    df["sweep_error"] = 10 + effect * a + rng.normal(0, 1, n)
    return df


@pytest.mark.slow
@fanova
def test_fanova_gives_one_driver_its_variance_share():
    """error = 10·a + N(0, 1), a ~ U(0, 1): a alone explains Var(10a) / (Var(10a) + 1) = (100/12) / (100/12 + 1)
    = 0.893 of the variance. fANOVA's share for lr is near that, its CI lies above every other parameter's,
    and only lr is shown to matter."""
    r = importance(frame(), "S", method="fanova", n_boot=20, n_perm=19)
    top, *rest = r["params"]
    assert top["param"] == "lr" and abs(top["importance"] - (100 / 12) / (100 / 12 + 1)) < 0.08
    assert top["ci"][0] > max(p["ci"][1] for p in rest)
    assert [p["param"] for p in r["params"] if p["matters"]] == ["lr"]
    assert "lr shown to matter at n = 80" in r["verdict"] and "not normalised" in r["meaning"]
    assert sum(p["importance"] for p in r["params"]) <= 1 + 1e-9


@pytest.mark.slow
@fanova
def test_fanova_claims_nothing_without_an_effect():
    r = importance(frame(effect=0.0), "S", method="fanova", n_boot=5, n_perm=19)
    assert not any(p["matters"] for p in r["params"])
    assert r["verdict"].startswith("S: no parameter is shown to matter at n = 80")


def test_ped_anova_ranks_the_driver_first_and_claims_nothing_without_an_effect():
    r = importance(frame(), "S", method="ped-anova", n_boot=20, n_perm=49)
    assert r["params"][0]["param"] == "lr" and [p["param"] for p in r["params"] if p["matters"]] == ["lr"]
    assert r["params"][0]["p"] == pytest.approx(1 / 50)  # it beat every shuffle's largest importance
    null = importance(frame(effect=0.0), "S", method="ped-anova", n_boot=5, n_perm=49)
    assert not any(p["matters"] for p in null["params"]) and "no parameter is shown to matter" in null["verdict"]


def test_the_false_claim_rate_without_an_effect_is_at_most_alpha():
    """20 no-effect frames (PED-ANOVA, fast): the max-statistic test names a parameter in at most a few,
    as a family-wise level of 5 % allows (at a true rate of 0.05, 4 or more of 20 has probability 0.016)."""
    claims = sum(
        any(
            p["matters"]
            for p in importance(frame(40, effect=0.0, seed=s), "S", method="ped-anova", n_boot=0, n_perm=19)["params"]
        )  # fmt: skip
        for s in range(20)
    )
    assert claims <= 3


def test_multiplicity_counts_draws():
    """A network drawn k times is k draws: the frame with repeated rows and the one with multiplicities agree."""
    df = frame(30, seed=3)
    df.loc[:4, "multiplicity"] = 3
    repeated = df.loc[df.index.repeat(df.multiplicity)].assign(multiplicity=1)
    a = importance(df, "S", method="ped-anova", n_boot=3, n_perm=19)
    b = importance(repeated, "S", method="ped-anova", n_boot=3, n_perm=19)
    assert a["n"] == b["n"] == 40 and a["params"] == b["params"]


def test_distributions_follow_the_space_laws():
    from optuna.distributions import FloatDistribution, IntDistribution

    from regspace.analysis.importance import space_laws
    from regspace.spaces.hparams import laws_from_tables, to_json

    df = frame()
    df["g1"] = df["g2"] = 8 * (1 + np.arange(len(df)) % 3)  # a shared per-stage parameter: one column kept
    recipe = {"sampled": to_json(laws_from_tables({"lr": {"dist": "log_uniform", "low": 0.05, "high": 1}}, "t"))}
    d = distributions(df, space_laws("RegNetX", recipe))
    assert d["lr"] == FloatDistribution(0.05, 1.0, log=True)
    assert d["w0"] == IntDistribution(8, 256, log=True)  # RegNetX's w0: log-uniform 8 … 256, q = 8
    assert d["wm"].log and not distributions(df)["wm"].log  # the law says log-uniform; 2 … 3 alone would not
    assert isinstance(d["d"], IntDistribution) and d["d"].low == 6 and d["d"].high == 28  # law widened to data
    assert "g1" in d and "g2" not in d
    # without a law: log where positive values span a factor of 8
    assert distributions(df)["lr"].log and not distributions(df)["wm"].log


def test_fanova_without_scikit_learn_is_one_line(monkeypatch):
    import regspace.analysis.importance as imp

    monkeypatch.setattr(imp, "has_fanova", lambda: False)
    with pytest.raises(UsageProblem, match="fANOVA needs scikit-learn") as e:
        resolve_method("fanova")
    assert "\n" not in e.value.line()
    assert resolve_method("auto") == "ped-anova"
    with pytest.raises(UsageProblem, match="unknown importance method"):
        resolve_method("forest")


def test_importance_command_prints_a_table_and_what_the_numbers_mean(tmp_path, run_cli):
    from regspace.synthetic import make_synthetic_store

    store = make_synthetic_store(tmp_path / "s", ("RegNetX",), n=40)
    code, out, err = run_cli("importance", "--store", store.path, "--method", "ped-anova", "--boot", "5",
                             "--perm", "19")  # fmt: skip
    assert code == 0, err
    assert "# RegNetX: importance by ped-anova, n = 40 draws" in out
    assert "parameter\timportance\t95 % CI\tp (shuffled)\tmatters" in out
    assert "importance: PED-ANOVA" in out and "Pearson divergence" in out
    assert "importance of RegNetX: 25 evaluator fits" in err
    code, out, _ = run_cli("importance", "--store", store.path, "--method", "ped-anova", "--boot", "2", "--json")
    result = json.loads(out)
    assert [r["space"] for r in result["spaces"]] == ["RegNetX"] and result["spaces"][0]["n_perm"] == 49


def test_too_few_draws_are_left_out_with_a_reason(tmp_path):
    from regspace.analysis.importance import importance_all

    df = pd.concat([frame(30), frame(5).assign(space="T")], ignore_index=True)
    out = importance_all(df, ["S", "T"], method="ped-anova", n_boot=0, n_perm=19)
    assert [r["space"] for r in out["spaces"]] == ["S"]
    assert out["skipped"] == ["T: 5 trained draw(s); importance needs at least 8"]


def test_the_report_says_which_parameters_matter(tmp_path):
    from regspace.report import REPORT_BOOT, REPORT_METHOD, REPORT_PERM, build_report
    from regspace.synthetic import make_synthetic_store

    store = make_synthetic_store(tmp_path / "s", ("RegNetX",), n=24)
    text = build_report(store, tmp_path / "r.md").read_text()
    assert "## Which parameters matter" in text and "regspace importance --store" in text
    assert f"{REPORT_METHOD}, {REPORT_BOOT} bootstrap resamples, {REPORT_PERM} shuffles" in text
    assert "RegNetX: importance by ped-anova" in text and "--method fanova" in text
    assert "a parameter matters when its importance beats" in text


def test_a_regime_population_has_its_space_laws():
    """A study with flops regimes names its populations "RegNetX@1M:2M": their parameters follow RegNetX's
    laws (w0 log-uniform from 8), not the data's range alone."""
    from regspace.analysis.importance import space_laws
    from regspace.spaces.hparams import laws_from_tables, to_json

    recipe = {"sampled": to_json(laws_from_tables({"lr": {"dist": "log_uniform", "low": 0.05, "high": 1}}, "t"))}
    laws = space_laws("RegNetX@1M:2M", recipe)
    assert laws == space_laws("RegNetX", recipe) and {"w0", "wa", "wm", "d", "lr"} <= set(laws)
    assert distributions(frame(), laws)["wm"].log
