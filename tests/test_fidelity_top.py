"""Retraining the best (issue 24 §3): top-K selection and its numbers by hand on hand-written rows, the
vectorised bootstrap Spearman against scipy, Spearman by epoch against scipy on constructed curves, and
`regspace fidelity --top` over a hand-written store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from regspace.analysis.fidelity import select_top, spearman_boot, spearman_by_epoch, top_k
from regspace.errors import RegspaceError, UsageProblem
from regspace.store import Store
from regspace.train.recipe import Recipe


def test_select_top_by_hand():
    short = {"a": 5.0, "b": 3.0, "c": 9.0, "d": 3.0, "e": 1.0, "f": 7.0}
    order = {"X": ["a", "b", "c", "a"], "Y": ["d", "e", "f", "g"]}  # g has no brief result
    top, control = select_top(short, order, 3, seed=0)
    assert top == ["e", "b", "d"]  # 1.0, then the tie at 3.0 by model id
    assert len(control) == 3 == len(set(control)) and set(control) <= set(short)
    assert select_top(short, order, 3, seed=0) == (top, control)  # seeded
    with pytest.raises(RegspaceError, match="only 6 network"):
        select_top(short, order, 6, seed=0)


def test_top_k_numbers_by_hand():
    """Six retrained models; top = a, b, c (brief best), control = c, d, e (c in both).
    Long errors: a 10, b 14, c 11, d 12, e 9 (f was retrained but only as … nothing: not in either list).
    The K = 3 lowest long errors of all retrained (a, b, c, d, e): e 9, a 10, c 11 → a and c stay: 2.
    Regret: best long in top = 10 (a), best in control = 9 (e): +1. Spearman in the top: short 1, 2, 3 vs
    long 10, 14, 11 — fewer than 4 models: not defined."""
    pairs = pd.DataFrame(
        {"model_id": list("abcde"), "short": [1.0, 2.0, 3.0, 6.0, 8.0], "long": [10.0, 14.0, 11.0, 12.0, 9.0]}
    )
    r = top_k(pairs, ["a", "b", "c"], ["c", "d", "e"], n_boot=200)
    assert (r["stay"], r["top_n"], r["control_n"], r["retrained"]) == (2, 3, 3, 5)
    assert r["chance"] == pytest.approx(3 * 3 / 5)
    assert (r["best_top"], r["best_control"], r["regret"]) == (10.0, 9.0, 1.0)
    assert np.isnan(r["spearman"])
    with pytest.raises(RegspaceError, match="no model with a long result"):
        top_k(pairs, ["a"], ["z"])


def test_spearman_boot_matches_scipy_resample_by_resample():
    """The vectorised ranks against scipy.stats.spearmanr on the same resamples (same generator, same
    index draws), ties included; the point estimate is scipy's."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 6, 20).astype(float)  # ties
    y = x + rng.normal(0, 2, 20)
    rho, lo, hi = spearman_boot(x, y, n_boot=300, seed=7)
    assert rho == pytest.approx(stats.spearmanr(x, y).statistic)
    idx = np.random.default_rng(7).integers(0, 20, (300, 20))
    reps = [stats.spearmanr(x[i], y[i]).statistic for i in idx]
    reps = np.array([r for r in reps if np.isfinite(r)])
    assert [lo, hi] == pytest.approx([np.quantile(reps, 0.025), np.quantile(reps, 0.975)])


def test_spearman_by_epoch_against_scipy_on_constructed_curves():
    """Curves that converge to their final value: epoch k's errors are the final ones plus noise shrinking
    with k; a model with a 2-epoch curve counts only at epochs 1 and 2."""
    rng = np.random.default_rng(3)
    final = {f"m{i}": float(e) for i, e in enumerate(rng.normal(10, 2, 30))}
    curves = {m: [e + rng.normal(0, 3 / k) for k in range(1, 5)] for m, e in final.items()}
    curves["m0"] = curves["m0"][:2]
    rows = spearman_by_epoch(curves, final, n_boot=200)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and [r["n"] for r in rows] == [30, 30, 29, 29]
    for r in rows:
        have = [m for m in final if len(curves[m]) >= r["epoch"]]
        want = stats.spearmanr([curves[m][r["epoch"] - 1] for m in have], [final[m] for m in have]).statistic
        assert r["spearman"] == pytest.approx(want) and r["ci"][0] <= r["spearman"] <= r["ci"][1]
    assert rows[0]["spearman"] < rows[-1]["spearman"]


def _model(space, mid, i):
    return {"model_id": mid, "space": space, "seed": 0, "draw_index": i, "multiplicity": 1, "draw_indices": [i]}


def test_fidelity_top_on_a_hand_written_store(tmp_path, run_cli):
    """`regspace fidelity --top 4` on a store whose long results are already in (nothing to train): the
    top 4 by the mean brief error over two seeds, a control of 4, and the sentences."""
    from regspace.study import fidelity_command, record_top

    store = Store.create(tmp_path / "s")
    ids = [f"m{i:02d}" for i in range(20)]
    store.append_rows("models", [_model("X_a", m, i) for i, m in enumerate(ids)])
    short, long = Recipe(), Recipe(epochs=6, train_size=20_000)
    rng = np.random.default_rng(0)
    truth = dict(zip(ids, np.arange(20.0)))
    rows = []
    for m in ids:
        for seed in (0, 1):  # seed 1 of m19 is the best brief run of all: the mean, not the best seed, ranks
            e = truth[m] + (-30.0 if (m == "m19" and seed == 1) else rng.normal(0, 0.1))
            rows.append({"model_id": m, "recipe_hash": short.hash, "seed": seed, "status": "ok", "error": e,
                         "recipe": short.replace(seed=seed).to_json()})  # fmt: skip
    store.append_rows("results", rows)
    entry = record_top(store, short_hash=short.hash, long=long, order={"X_a": ids}, k=4, seed=0)
    assert entry["top"] == ["m00", "m01", "m02", "m03"] and entry["select"] == "top" and len(entry["control"]) == 4
    chosen = set(entry["top"]) | set(entry["control"])
    curves = {m: [truth[m] + 5 / k + rng.normal(0, 0.5) for k in range(1, 7)] for m in chosen}
    store.append_rows("results", [
        {"model_id": m, "recipe_hash": long.hash, "seed": 0, "status": "ok", "error": curves[m][-1],
         "min_error": min(curves[m]), "val_errors": curves[m], "recipe": long.to_json()} for m in chosen
    ])  # fmt: skip
    result, summary = fidelity_command(store, long=long, top=4, say=lambda _: None)  # every long result is in
    assert summary.planned == 0
    assert result["top"]["stay"] == 4 and result["top"]["regret"] <= 0
    assert [r["epoch"] for r in result["by_epoch"]] == list(range(1, 7))
    text = " ".join(result["sentences"])
    assert "Of the 4 best models by brief error, 4 (of 4 retrained) stay in the top 4" in text
    assert "Spearman of the error after epoch k with the final long error" in text
    code, out, err = run_cli("fidelity", "--store", store.path, "--long-hash", f"{long.hash}-top4", "--json")
    assert code == 0, err
    assert json.loads(out)["top"]["stay"] == 4
    with pytest.raises(UsageProblem, match="at least 4"):
        fidelity_command(store, long=long, top=3)


def test_epoch_sentence_names_the_epoch_from_which_every_later_one_reaches_the_brief_rho():
    from regspace.analysis.fidelity import epoch_sentence

    def rows(rhos):
        return [{"epoch": k, "n": 9, "spearman": r, "ci": [r - 0.1, r + 0.1]} for k, r in enumerate(rhos, 1)]

    assert "from epoch 4 on, every epoch" in epoch_sentence(rows([0.3, 0.6, 0.2, 0.5, 0.7, 1.0]), 0.5)
    assert "no epoch before the last" in epoch_sentence(rows([0.3, 0.6, 0.2, 1.0]), 0.7)


# -- a top-K check in a study with flops regimes (issue 24: regimes, seeds and top-K together) ----------


def test_select_top_by_regime_ranks_each_regime_apart():
    """The larger regime's models all have lower brief errors; pooled, the top 2 would be both of it. Per
    regime: the 2 best of each, and a control of 2 from each regime's own draws."""
    from regspace.analysis.fidelity import regime_groups, select_top_by_regime

    short = {"a": 30.0, "b": 31.0, "c": 32.0, "d": 33.0, "p": 10.0, "q": 11.0, "r": 12.0, "s": 13.0}
    order = {"X@1M:2M": ["a", "b"], "Y@1M:2M": ["c", "d"], "X@3M:6M": ["p", "q"], "Y@3M:6M": ["r", "s"]}
    assert list(regime_groups(order)) == ["1M:2M", "3M:6M"]
    got = select_top_by_regime(short, order, 2, seed=0)
    assert got["k"] == 2
    assert got["regimes"]["1M:2M"]["top"] == ["a", "b"] and got["regimes"]["3M:6M"]["top"] == ["p", "q"]
    assert set(got["regimes"]["1M:2M"]["control"]) <= set("abcd")
    assert set(got["regimes"]["3M:6M"]["control"]) <= set("pqrs")
    assert got["top"] == ["a", "b", "p", "q"] and len(got["control"]) == 4
    plain = select_top_by_regime(short, {"X": ["a", "b", "p"], "Y": ["q", "r"]}, 2, seed=0)  # no regimes
    assert "regimes" not in plain and (plain["top"], plain["control"]) == select_top(
        short, {"X": ["a", "b", "p"], "Y": ["q", "r"]}, 2, seed=0
    )


def test_top_k_per_regime_numbers_by_hand():
    """check_result on a per-regime entry: each regime's stay and regret among its own retrained models.
    Regime A: top a, b; control b, c; long a 20, b 22, c 21 → the 2 lowest long are a, c: a stays (1);
    regret 20 − 21 = −1. Regime B: top p, q; control r, s; long p 9, q 8, r 7, s 10 → the 2 lowest are r, q:
    q stays (1); regret 8 − 7 = +1. Pooled, B's errors would fill the top 2 of all retrained."""
    from regspace.analysis.fidelity import check_result

    short_e = {"a": 30.0, "b": 31.0, "c": 33.0, "p": 10.0, "q": 11.0, "r": 12.0, "s": 13.0}
    long_e = {"a": 20.0, "b": 22.0, "c": 21.0, "p": 9.0, "q": 8.0, "r": 7.0, "s": 10.0}
    short = pd.DataFrame({"model_id": list(short_e), "status": "ok", "error": list(short_e.values())})
    long = pd.DataFrame({"model_id": list(long_e), "status": "ok", "error": list(long_e.values())})
    entry = {"short": "s", "long": "l", "long_recipe": {"epochs": 9, "train_size": 100}, "select": "top",
             "models": {"X@A": ["a", "b", "c"], "X@B": ["p", "q", "r", "s"]},
             "top": ["a", "b", "p", "q"], "control": ["b", "c", "r", "s"],
             "regimes": {"A": {"top": ["a", "b"], "control": ["b", "c"]},
                         "B": {"top": ["p", "q"], "control": ["r", "s"]}}}  # fmt: skip
    r = check_result(short, long, entry, n_boot=50)
    assert "top" not in r
    a, b = r["top_by_regime"]
    assert (a["regime"], a["stay"], a["retrained"], a["regret"]) == ("A", 1, 3, -1.0)
    assert (b["regime"], b["stay"], b["retrained"], b["regret"]) == ("B", 1, 4, 1.0)
    lead = "Regime A: Of the 2 best models by brief error, 1 (of 2 retrained)"
    assert any(s.startswith(lead) for s in r["sentences"])
    assert r["orders"] == []  # X@A and X@B are different budgets: no order between them


def test_record_top_in_a_study_with_regimes_and_seeds(tmp_path):
    """A study's top-K check over populations of two regimes, each design trained with two seeds: the top
    K per regime by the mean over seeds, recorded under the key the study reads (K, not K × regimes); and
    `regspace fidelity --top` on that store finds the populations without --spaces."""
    from regspace.study import FidelityPlan, fidelity_command, record_top

    store = Store.create(tmp_path / "s")
    short, long = Recipe(), Recipe(epochs=6, train_size=20_000)
    rows, results, order = [], [], {}
    for regime, base in (("1M:2M", 30.0), ("3M:6M", 10.0)):
        for space in ("X_c", "RegNetX"):
            ids = [f"{space}-{regime}-{i}" for i in range(6)]
            order[f"{space}@{regime}"] = ids
            for i, m in enumerate(ids):
                rows.append({**_model(space, m, i), "regime": regime})
                for seed in (0, 1):
                    results.append({"model_id": m, "recipe_hash": short.hash, "seed": seed, "status": "ok",
                                    "error": base + i + (0.5 if space == "RegNetX" else 0.0),
                                    "recipe": short.replace(seed=seed).to_json()})  # fmt: skip
    store.append_rows("models", rows)
    store.append_rows("results", results)
    entry = record_top(store, short_hash=short.hash, long=long, order=order, k=4, seed=0)
    assert entry["regimes"]["1M:2M"]["top"] == ["X_c-1M:2M-0", "RegNetX-1M:2M-0", "X_c-1M:2M-1", "RegNetX-1M:2M-1"]
    assert entry["regimes"]["3M:6M"]["top"][0] == "X_c-3M:6M-0"
    plan = FidelityPlan(long, ("X_c", "RegNetX"), select="top", top=4)
    assert json.loads((store.path / "fidelity.json").read_text())["checks"][plan.key] == entry
    chosen = {m for ids in entry["models"].values() for m in ids}
    store.append_rows("results", [{"model_id": m, "recipe_hash": long.hash, "seed": 0, "status": "ok",
                                   "error": 5.0 + len(m) % 3 + 0.1 * int(m[-1]), "recipe": long.to_json()}
                                  for m in chosen])  # fmt: skip
    said = []
    result, summary = fidelity_command(store, long=long, top=4, say=said.append)  # no --spaces: every population
    assert "in each flops regime" in said[0] and summary.planned == 0
    assert [r["regime"] for r in result["top_by_regime"]] == ["1M:2M", "3M:6M"]


def test_a_study_top_k_check_is_checked_when_the_file_is_read(tmp_path):
    """Found by the study-file fuzz: a top-K check was refused for `per_space` (which it does not read) and
    accepted with too few draws, failing only after every model had trained. Now: K must be below the
    draws of the check's spaces (in each regime), and per_space is not asked of it."""
    from regspace.study import load_study

    f = tmp_path / "s.toml"

    def study(n, top=4):
        f.write_text(f'spaces = ["X_c", "RegNetX"]\nregimes = ["1M:2M", "3M:6M"]\nmodels_per_space = {n}\n'
                     f'[fidelity]\nselect = "top"\ntop = {top}\n[fidelity.recipe]\nepochs = 5\n')  # fmt: skip
        return load_study(f)

    assert study(3).fidelity.top == 4  # 2 spaces × 3 draws = 6 > 4 in each regime
    with pytest.raises(UsageProblem, match=r"top = 4 needs more than 4 draws .* each regime of the check's spaces "
                                           r"hold 4 \(2 × models_per_space 2\)"):  # fmt: skip
        study(2)
    with pytest.raises(UsageProblem, match="top must be an integer of at least 4"):
        study(3, top="true")
