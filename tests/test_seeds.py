"""Seeds (issue 24 §2): a result's identity, the per-design mean, and the seed noise, each against an
independent computation (a simulation with known s.d.s, the ANOVA by hand, hand-written rows)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from regspace.analysis.seeds import design_status, noise_sentences, per_design, seed_noise, seeds_text
from regspace.schema import RESULTS_SCHEMA, recipe_hash
from regspace.store import Store
from regspace.train.recipe import Recipe


# -- identity ---------------------------------------------------------------------------------------
def test_the_seeds_of_a_recipe_share_its_hash_and_seed_0_keeps_the_old_hash():
    """The old rule (every field but the name, seed included), written out here: a seed-0 recipe's hash is
    unchanged, so stores trained before keep their results; other seeds share it; run keys tell them apart."""
    import hashlib

    def old(r):  # the fields a recipe had then: not `sampled` (none drawn) nor `tf32` (at its default)
        later = {"sampled": "", "tf32": True}
        fields = {k: v for k, v in r.to_dict().items() if k != "name" and later.get(k, object()) != v}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]

    r = Recipe()
    assert r.hash == old(r) and Recipe(seed=3).hash == r.hash and Recipe(seed=3).hash != old(Recipe(seed=3))
    assert Recipe(epochs=4).hash != r.hash
    assert (r.run_key, Recipe(seed=3).run_key) == (r.hash, f"{r.hash}-s3")
    assert recipe_hash({**r.to_dict(), "seed": 9}) == r.hash


def _v5_part(store: Store, rows: list[dict]) -> None:
    """A results part as schema 5 wrote it (the seed inside the hash)."""
    t = pa.Table.from_pylist(rows, schema=RESULTS_SCHEMA)
    t = t.replace_schema_metadata({b"regspace_schema_version": b"5", b"regspace_table": b"results"})
    pq.write_table(t, store.path / "results" / "part-20200101T000000-000000000-aaaaaaaa.parquet")


def test_a_v5_part_reads_with_its_seeds_keyed_apart_and_rehashed(tmp_path):
    """Schema-5 rows: seed 0 keeps its hash; seed 2's old hash (seed inside) is replaced by the recipe's;
    a null seed reads as its recipe's seed; the two seeds of one model are two results, not a duplicate."""
    import hashlib

    store = Store.create(tmp_path / "s")
    r0, r2 = Recipe(), Recipe(seed=2)
    old2 = hashlib.sha256(
        json.dumps({k: v for k, v in r2.to_dict().items() if k != "name"}, sort_keys=True).encode()
    ).hexdigest()[:12]
    _v5_part(store, [
        {"model_id": "a", "recipe_hash": r0.hash, "seed": 0, "status": "ok", "error": 10.0, "recipe": r0.to_json()},
        {"model_id": "a", "recipe_hash": old2, "seed": 2, "status": "ok", "error": 12.0, "recipe": r2.to_json()},
        {"model_id": "b", "recipe_hash": old2, "seed": None, "status": "ok", "error": 11.0, "recipe": r2.to_json()},
    ])  # fmt: skip
    got = store.results_for(r0.hash, ["model_id", "seed", "error"]).to_pylist()
    assert sorted(map(tuple, (d.values() for d in got))) == [("a", 0, 10.0), ("a", 2, 12.0), ("b", 2, 11.0)]
    assert store.settled_ids(r0.hash) == {"a"} and store.settled_ids(r0.hash, seed=2) == {"a", "b"}
    assert store.results_for(r0.hash, ["model_id"], seed=2).num_rows == 2


def test_training_seeds_are_pending_apart(tmp_path):
    """A model trained with seed 0 is still pending for seed 1 of the same recipe."""
    store = Store.create(tmp_path / "s")
    store.append_rows("models", [{"model_id": m, "space": "X_a", "seed": 0, "draw_index": i, "multiplicity": 1,
                                  "draw_indices": [i]} for i, m in enumerate("ab")])  # fmt: skip
    store.append_rows("results", [{"model_id": "a", "recipe_hash": "r", "seed": 0, "status": "ok", "error": 1.0}])
    assert [m["model_id"] for m in store.pending("r", ["model_id"])] == ["b"]
    assert [m["model_id"] for m in store.pending("r", ["model_id"], seed=1)] == ["a", "b"]


# -- the per-design mean -----------------------------------------------------------------------------
def test_per_design_means_the_ok_seeds_by_hand():
    rows = pd.DataFrame(
        {
            "model_id": ["a", "a", "a", "b", "b", "c", "d"],
            "seed": [0, 1, 2, 0, 1, 0, 0],
            "status": ["ok", "ok", "diverged", "diverged", "failed", "ok", "failed"],
            "error": [10.0, 14.0, np.nan, np.nan, np.nan, 20.0, np.nan],
            "min_error": [9.0, 13.0, np.nan, np.nan, np.nan, 19.0, np.nan],
            "val_errors": [(30.0, 10.0), (40.0, 20.0, 14.0), None, None, None, (25.0, 20.0), None],
        }
    )
    out, summary = per_design(rows)
    out = out.set_index("model_id")
    assert out.loc["a", "error"] == 12.0 and out.loc["a", "min_error"] == 11.0 and out.loc["a", "seeds"] == 2
    assert out.loc["a", "val_errors"] == (35.0, 15.0)  # epoch by epoch, cut to the shortest curve
    assert out.loc["a", "seed_errors"] == (10.0, 14.0) and out.loc["a", "status"] == "ok"
    assert out.loc["b", "status"] == "diverged" and out.loc["d", "status"] == "failed"
    assert out.loc["c", "error"] == 20.0 and out.loc["c", "seeds"] == 1
    assert summary == {"min": 1, "max": 2, "runs": 7, "lost": 1}
    assert seeds_text(summary) == "mean of 1–2 seeds per design" and seeds_text({"min": 3, "max": 3}) == (
        "mean of 3 seeds per design"
    )
    assert seeds_text({"min": 1, "max": 1}) == ""


def test_design_status():
    assert design_status(["ok", None]) == "pending" and design_status([]) == "pending"
    assert design_status(["failed", "diverged"]) == "diverged" and design_status(["failed", "ok"]) == "ok"
    assert design_status(["failed", "failed"]) == "failed"


# -- the noise ---------------------------------------------------------------------------------------
def _simulate(rng, designs=40, seeds=3, between=1.0, within=0.3):
    mu = rng.normal(10, between, designs)
    return [m + rng.normal(0, within, seeds) for m in mu]


def test_the_pooled_sd_ci_covers_the_true_sd_about_95_percent_of_the_time():
    """40 designs × 3 seeds, between-design s.d. 1, within 0.3: the pooled s.d.'s CI covers 0.3 in about
    95 % of simulations, and the ICC(1) CI covers the true 1 / 1.09 as often."""
    rng = np.random.default_rng(1)
    true_icc = 1 / (1 + 0.3**2)
    n_sim = 1000
    sd_hits = icc_hits = 0
    for _ in range(n_sim):
        r = seed_noise(_simulate(rng))
        sd_hits += r["sd_ci"][0] <= 0.3 <= r["sd_ci"][1]
        icc_hits += r["icc_ci"][0] <= true_icc <= r["icc_ci"][1]
    # binomial s.e. of a 95 % rate over 1000 runs: 0.7 points; ±2 points is three of them
    assert 0.93 <= sd_hits / n_sim <= 0.97
    assert 0.93 <= icc_hits / n_sim <= 0.97


def test_icc_and_sd_against_the_anova_by_hand():
    """A balanced one-way ANOVA written out: MSB, MSW, ICC(1) = (MSB − MSW)/(MSB + (k − 1) MSW); the
    F statistic against scipy's f_oneway; the F-based CI from McGraw & Wong's case 1 formula."""
    groups = [[1.0, 2.0, 3.0], [4.0, 6.0, 5.0], [2.0, 2.5, 1.5], [7.0, 8.0, 9.0]]
    a, k = 4, 3
    x = np.array(groups)
    msw = ((x - x.mean(1, keepdims=True)) ** 2).sum() / (a * (k - 1))
    msb = k * ((x.mean(1) - x.mean()) ** 2).sum() / (a - 1)
    r = seed_noise(groups)
    assert r["sd"] == pytest.approx(np.sqrt(msw)) and r["f"] == pytest.approx(stats.f_oneway(*groups).statistic)
    assert r["icc"] == pytest.approx((msb - msw) / (msb + (k - 1) * msw))
    f = msb / msw
    fl, fu = f / stats.f.ppf(0.975, a - 1, a * (k - 1)), f * stats.f.ppf(0.975, a * (k - 1), a - 1)
    assert r["icc_ci"] == pytest.approx([(fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)])
    df = a * (k - 1)
    assert r["sd_ci"] == pytest.approx(
        [np.sqrt(df * msw / stats.chi2.ppf(0.975, df)), np.sqrt(df * msw / stats.chi2.ppf(0.025, df))]
    )
    assert (r["designs"], r["runs"], r["df"], r["k0"]) == (4, 12, 8, 3)


def test_no_variance_between_designs_gives_an_icc_near_zero():
    """All designs equal: the ICC's CI holds 0 in about 95 % of simulations, and its point is near 0."""
    rng = np.random.default_rng(2)
    covered, points = 0, []
    for _ in range(400):
        r = seed_noise(_simulate(rng, between=0.0, within=0.5))
        covered += r["icc_ci"][0] <= 0 <= r["icc_ci"][1]
        points.append(r["icc"])
    assert 0.92 <= covered / 400 <= 0.98
    assert abs(np.mean(points)) < 0.03


def test_noise_needs_two_designs_with_two_seeds():
    assert seed_noise([[1.0], [2.0, 3.0]]) is None and seed_noise([[1.0, 1.0], [2.0, 2.0]]) is None
    unbalanced = seed_noise([[1.0, 2.0], [3.0, 5.0, 4.0], [9.0]])  # the single-seed design is left out
    assert unbalanced["designs"] == 2 and unbalanced["runs"] == 5


def test_noise_sentences_compare_each_resolved_shift():
    noise = {"all": {"sd": 0.3, "sd_ci": [0.25, 0.36], "designs": 40, "runs": 120, "icc": 0.9,
                     "icc_ci": [0.85, 0.94]}, "spaces": {}}  # fmt: skip
    verdicts = [
        {"a": "X_a", "b": "X_b", "verdict": "better", "winner": "X_b", "hl_shift": 0.9},
        {"a": "X_a", "b": "X_c", "verdict": "not resolved", "hl_shift": 0.1},
    ]
    lines = noise_sentences(noise, verdicts, seeds=3)
    assert len(lines) == 2 and "s.d. 0.30 points" in lines[0] and "90 %" in lines[0]
    assert lines[1].startswith("X_b vs X_a: the resolved shift of 0.90 points") and "3.0 times" in lines[1]
    assert "mean of 3 seeds is 0.17" in lines[1] and "5.2 times" in lines[1]
    assert noise_sentences(None, verdicts, 3) == []


# -- end to end: `regspace train --seeds` ------------------------------------------------------------
@pytest.mark.slow
def test_train_seeds_end_to_end(tmp_path):
    """Two tiny models, one epoch, 256 images, seeds 0 and 1: each model has one result per seed under one
    recipe hash; a rerun trains nothing; compare says it averages 2 seeds per design. In this process:
    what the commands do is checked, not their processes."""
    from conftest import cli as regspace

    store = tmp_path / "s"
    p = regspace("sample", "--store", store, "--space", "X_c", "-n", 2, "--preset", "mnist", "--flops", "0.5M:1.5M")
    assert p.returncode == 0, p.stderr
    tiny = ["--train-size", 256, "--val-size", 128, "--test-size", 0, "--epochs", 1, "--batch-size", 64]
    p = regspace("train", "--store", store, *tiny, "--seeds", "0,1", "--workers", 1, "--precision", "32-true")
    assert p.returncode == 0, p.stderr
    lines = [x for x in p.stdout.splitlines() if x.startswith("trained")]
    assert len(lines) == 2 and lines[1].endswith("-s1"), p.stdout
    r = pd.read_parquet(store / "results")
    assert len(r) == 4 and r.recipe_hash.nunique() == 1 and sorted(r.seed) == [0, 0, 1, 1]
    assert r.groupby("model_id").seed.nunique().tolist() == [2, 2]
    again = regspace("train", "--store", store, *tiny, "--seeds", "0,1", "--workers", 1, "--precision", "32-true")
    assert again.returncode == 0 and again.stdout.count("nothing to train") == 2, again.stdout
    c = regspace("compare", "--store", store)
    assert c.returncode == 0 and "mean of 2 seeds per design" in c.stdout, c.stdout + c.stderr
    bad = regspace("train", "--store", store, "--seeds", "0,x")
    assert bad.returncode != 0 and "--seeds takes comma-separated integers" in bad.stderr


def test_compare_averages_seeds_and_sets_resolved_shifts_against_the_noise(tmp_path):
    """Two spaces of 20 designs × 3 seeds (between-design s.d. 1, within 0.3, B 2 points better): compare
    says the errors are 3-seed means, the noise table and sentence hold the pooled s.d. (its CI covers the
    0.3 simulated), and B's resolved shift is set against it."""
    from regspace.analysis.compare import compare
    from regspace.analysis_io import load_table
    from regspace.text import compare_text

    store = Store.create(tmp_path / "s")
    rng = np.random.default_rng(4)
    models, results = [], []
    for s, centre in (("A", 14.0), ("B", 12.0)):
        for i in range(20):
            mid = f"{s}{i:02d}"
            models.append({"model_id": mid, "space": s, "seed": 0, "draw_index": i, "multiplicity": 1,
                           "draw_indices": [i], "flops": 1, "params": 1, "acts": 1, "w0": 8})  # fmt: skip
            mu = rng.normal(centre, 1.0)
            for seed in range(3):
                results.append({"model_id": mid, "recipe_hash": "r", "seed": seed, "status": "ok",
                                "error": mu + rng.normal(0, 0.3), "device": "cpu x (32-true)"})  # fmt: skip
    store.append_rows("models", models)
    store.append_rows("results", results)
    df = load_table(store)
    assert len(df) == 40 and (df.seeds == 3).all() and df.attrs["seeds"] == {"min": 3, "max": 3, "runs": 120,
                                                                             "lost": 0}  # fmt: skip
    got = df.set_index("model_id").sweep_error["A00"]
    assert got == pytest.approx(np.mean([r["error"] for r in results if r["model_id"] == "A00"]))
    result = compare(df)
    noise = result["findings"]["seed_noise"]["all"]
    assert noise["sd_ci"][0] <= 0.3 <= noise["sd_ci"][1] and noise["designs"] == 40 and noise["runs"] == 120
    text = compare_text(result)
    assert "final validation error, mean of 3 seeds per design" in text and "# seed noise" in text
    assert "(mean of 3 seeds per design); verdicts" in text
    assert f"Seed noise: one training run's error varies from seed to seed with s.d. {noise['sd']:.2f}" in text
    assert "B vs A: the resolved shift of" in text and "times one run's seed s.d." in text
    one = load_table(store, seeds=[0])  # one seed: no noise, no averaging said
    assert (one.seeds == 1).all() and "seed noise" not in compare_text(compare(one))


def test_a_study_with_seeds_waits_for_every_seed(tmp_path):
    """`seeds = 2`: the training seeds are the recipe's and the next; a design counts as finished once
    both have a result (hand-written rows), and the study's second seed trains in its own sweep."""
    from regspace.errors import UsageProblem
    from regspace.study import load_study, progress

    f = tmp_path / "s.toml"
    f.write_text('spaces = ["X_a"]\nmodels_per_space = 3\nseeds = 2\noutput = "out"\n[recipe]\nseed = 5\n')
    study = load_study(f)
    assert study.training_seeds == [5, 6] and study.seed_sweep(5) == "s" and study.seed_sweep(6) == "s-s6"
    store = Store.create(tmp_path / "st")
    store.append_rows("models", [{"model_id": m, "space": "X_a", "seed": 0, "draw_index": i, "multiplicity": 1,
                                  "draw_indices": [i]} for i, m in enumerate(["a", "b", "c"])])  # fmt: skip
    h = study.recipe.hash
    store.append_rows("results", [{"model_id": m, "recipe_hash": h, "seed": 5, "status": "ok", "error": 1.0}
                                  for m in "abc"])  # fmt: skip
    assert progress(store, study)["spaces"][0]["prefix"] == 0
    store.append_rows("results", [{"model_id": "a", "recipe_hash": h, "seed": 6, "status": "diverged"}])
    p = progress(store, study)["spaces"][0]
    assert (p["prefix"], p["ok"], p["pending"]) == (1, 1, 2)
    f.write_text('spaces = ["X_a"]\nmodels_per_space = 3\nseeds = 0\n')
    with pytest.raises(UsageProblem, match="`seeds` must be a positive integer"):
        load_study(f)


def test_a_study_says_which_seed_and_stage_its_progress_lines_belong_to(tmp_path, monkeypatch):
    """Seeds × regimes × a fidelity check: `study run` trains one seed after another and then the check,
    each with its own progress lines; a line before each says which (training replaced by a stand-in that
    records its calls: no torch)."""
    import regspace.train.runner as runner
    from regspace.study import load_study, run_study
    from regspace.train.pool import TrainSummary

    calls = []

    def fake_train(store, recipe, *, only, **options):
        calls.append((recipe.seed, recipe.epochs, len(only)))
        return TrainSummary(recipe, planned=0)

    monkeypatch.setattr(runner, "train", fake_train)
    f = tmp_path / "s.toml"
    f.write_text('spaces = ["RegNetX"]\nregimes = ["1M:2M", "3M:6M"]\nmodels_per_space = 8\nseeds = 2\n'
                 'preset = "mnist"\noutput = "out"\n[recipe]\nlr = {dist = "log_uniform", low = 0.1, high = 0.8}\n'
                 '[fidelity]\nper_space = 8\n[fidelity.recipe]\nepochs = 5\n')  # fmt: skip
    said = []
    out = run_study(load_study(f), say=said.append)
    assert not out.interrupted and [c[:2] for c in calls] == [(0, 3), (1, 3), (0, 5)]
    stages = [s for s in said if s.startswith("study 's': ")]
    n = calls[0][2]
    assert stages == [f"study 's': seed 0 (1 of 2): {n} network(s) of 2 population(s)",
                      f"study 's': seed 1 (2 of 2): {n} network(s) of 2 population(s)",
                      f"study 's': fidelity check, {calls[2][2]} network(s) (8 per space) with the longer recipe "
                      "(5 epochs on 10000 images)"]  # fmt: skip


def test_study_status_names_the_seeds(tmp_path, run_cli):
    from regspace.study import load_study, open_store

    f = tmp_path / "s.toml"
    f.write_text('spaces = ["RegNetX"]\nmodels_per_space = 2\nseeds = 3\noutput = "out"\n[recipe]\nseed = 4\n')
    open_store(load_study(f))
    code, out, err = run_cli("study", "status", f)
    assert code == 0, err
    assert "seeds 4, 5, 6 (a design is done once every seed is)" in out.splitlines()[0]
