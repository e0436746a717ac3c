"""A study's flops regimes: each (space, regime) is its own population in the store, in progress, in the
training rounds and in the analyses; a study without regimes is unchanged; older stores read the new
columns as null; and one tiny end-to-end study with 2 regimes × 2 draws writes its trends."""

import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_study import _model, _result

from regspace import population
from regspace.analysis_io import load_table
from regspace.errors import UsageProblem
from regspace.schema import MODELS_SCHEMA, RESULTS_SCHEMA
from regspace.status import store_status
from regspace.store import Store
from regspace.study import Study, draw_order, load_study, progress, regime_seed, round_order
from regspace.train.recipe import Recipe


def _regime_model(space, mid, seed, draws, regime, flops):
    return {**_model(space, mid, seed, draws), "regime": regime, "flops": flops}


@pytest.fixture
def regime_store(tmp_path):
    """Space S in regimes 2M:4M (a1 a2 a3, seed 11) and 8M:16M (b1 b2, seed 22; b1 drawn twice);
    space T in 2M:4M only (t1 t2)."""
    store = Store.create(tmp_path / "s")
    store.append_rows("models", [
        _regime_model("S", "a1", 11, [0], "2M:4M", 3e6), _regime_model("S", "a2", 11, [1], "2M:4M", 3e6),
        _regime_model("S", "a3", 11, [5], "2M:4M", 3e6), _regime_model("S", "b1", 22, [0, 4], "8M:16M", 9e6),
        _regime_model("S", "b2", 22, [2], "8M:16M", 9e6),
        _regime_model("T", "t1", 11, [0], "2M:4M", 3e6), _regime_model("T", "t2", 11, [1], "2M:4M", 3e6),
    ])  # fmt: skip
    return store


def test_each_regime_is_its_own_population_in_order_progress_and_status(regime_store):
    study = Study("s", ("S", "T"), 3, 2, 0, "mnist", {}, Recipe(), regime_store.path.parent,
                  regimes=("2M:4M", "8M:16M"))  # fmt: skip
    assert study.populations == ("S@2M:4M", "T@2M:4M", "S@8M:16M", "T@8M:16M")
    order = draw_order(regime_store, study.populations)
    assert order == {"S@2M:4M": ["a1", "a2", "a3"], "T@2M:4M": ["t1", "t2"], "S@8M:16M": ["b1", "b2", "b1"],
                     "T@8M:16M": []}  # fmt: skip
    h = study.recipe.hash
    regime_store.append_rows("results", [_result(m, h, 9.0) for m in ("a1", "a2", "b1", "t1")])
    p = progress(regime_store, study)
    rows = {r["space"]: (r["draws"], r["ok"], r["pending"], r["prefix"]) for r in p["spaces"]}
    assert rows == {"S@2M:4M": (3, 2, 1, 2), "T@2M:4M": (2, 1, 1, 1), "S@8M:16M": (3, 2, 1, 1),
                    "T@8M:16M": (0, 0, 0, 0)}  # fmt: skip
    assert p["equal"] == 0 and not p["complete"]
    status = {r["space"]: (r["draws"], r["sampled"]) for r in store_status(regime_store)}
    assert status == {"S@2M:4M": (3, 3), "S@8M:16M": (3, 2), "T@2M:4M": (2, 2)}


def test_rounds_interleave_populations_and_the_analyses_keep_regimes_apart(regime_store):
    order = {"S@2M:4M": ["a1", "a2", "a3"], "S@8M:16M": ["b1", "b2", "b1"]}
    models = [{"space": "S", "model_id": m} for m in ("b2", "a3", "b1", "a2", "a1")]  # the store's rows carry
    # their plain space: a space's network is in one regime (regimes are disjoint), so the id places it
    assert [m["model_id"] for m in round_order(models, order, 1)] == ["a1", "b1", "a2", "b2", "a3"]
    df = load_table(regime_store, first_draws=2)
    assert df.attrs["spaces"] == ["S@2M:4M", "S@8M:16M", "T@2M:4M"]
    assert dict(zip(df.model_id, df.multiplicity)) == {"a1": 1, "a2": 1, "b1": 1, "b2": 1, "t1": 1, "t2": 1}
    assert set(df.regime) == {"2M:4M", "8M:16M"}


def test_population_names_round_trip_and_plain_rows_are_untouched():
    assert population.split_population(population.population_name("RegNetX", "2M:4M")) == ("RegNetX", "2M:4M")
    assert population.population_name("RegNetX", None) == "RegNetX"
    t = pa.table({"space": ["A", "B"], "regime": pa.array([None, None], pa.string())})
    assert population.by_population(t) is t


def test_a_study_file_takes_sorted_disjoint_regimes_and_they_enter_its_identity(tmp_path):
    base = 'spaces = ["X_a"]\nmodels_per_space = 2\npreset = "mnist"\n'
    f = tmp_path / "s.toml"
    f.write_text(base + 'regimes = ["8M:16M", "2e6:4M"]\n')
    study = load_study(f)
    assert study.regimes == ("2M:4M", "8M:16M")
    assert study.identity()["regimes"] == ["2M:4M", "8M:16M"]
    f.write_text(base)
    assert "regimes" not in load_study(f).identity()  # a study without regimes: the identity it always had
    assert regime_seed(0, "2M:4M") != regime_seed(0, "8M:16M") != regime_seed(1, "8M:16M")
    for text, needle in [
        ('regimes = ["2M:8M", "4M:16M"]', "overlap"),
        ('regimes = ["2M:"]', "both ends"),
        ('regimes = ["2M:4M"]', "two or more"),
        ('regimes = "2M:4M"', "list of flops"),
        ('regimes = ["2M:4M", "8M:9M"]\n[budget]\nflops = "1M:9M"', "leave [budget] flops"),
    ]:
        f.write_text(base + text + "\n")
        with pytest.raises(UsageProblem, match=needle.replace("[", r"\[")):
            load_study(f)


def test_a_schema_5_part_reads_regime_and_inference_speed_as_null(tmp_path):
    store = Store.create(tmp_path / "s")
    v5_models = pa.schema([f for f in MODELS_SCHEMA if f.name != "regime"])
    v5_results = pa.schema([f for f in RESULTS_SCHEMA if f.name != "inference_images_per_second"])
    row = _model("X_a", "m1", 0, [0])
    models = pa.Table.from_pylist([row], schema=v5_models).replace_schema_metadata(
        {b"regspace_schema_version": b"5", b"regspace_table": b"models"})  # fmt: skip
    results = pa.Table.from_pylist([_result("m1", "r", 9.0)], schema=v5_results).replace_schema_metadata(
        {b"regspace_schema_version": b"5", b"regspace_table": b"results"})  # fmt: skip
    pq.write_table(models, store.path / "models" / "part-0-v5.parquet")
    pq.write_table(results, store.path / "results" / "part-0-v5.parquet")
    df = load_table(store)
    assert df.space.tolist() == ["X_a"] and df.regime.isna().all()
    assert df.inference_images_per_second.isna().all()


TINY = """
spaces = ["RegNetX"]
models_per_space = 2
seed = 1
preset = "mnist"
output = "out"
regimes = ["2M:4M", "8M:16M"]
[recipe]
train_size = 128
val_size = 64
test_size = 0
epochs = 1
batch_size = 64
"""


@pytest.mark.slow
def test_a_tiny_study_with_two_regimes_trains_both_and_writes_their_trends(tmp_path, run_cli):
    """End to end (seconds): 2 regimes × 2 draws, 1 epoch on 128 images. Each regime's draws lie in its
    band, every model has a measured inference speed, status keeps the regimes apart, and a rerun trains
    nothing."""
    (tmp_path / "tiny.toml").write_text(TINY)
    code, out, err = run_cli("study", "run", tmp_path / "tiny.toml", "--workers", "1")
    assert code == 0, err
    study = load_study(tmp_path / "tiny.toml")
    store = Store.open(study.store_path)
    models = store.models()
    assert models.groupby("regime").size().to_dict() == {"2M:4M": 2, "8M:16M": 2}
    for regime, (lo, hi) in {"2M:4M": (2e6, 4e6), "8M:16M": (8e6, 16e6)}.items():
        g = models[models.regime == regime]
        assert g.flops.between(lo, hi).all() and (g.seed == regime_seed(1, regime)).all()
    results = store.results()
    assert len(results) == 4 and (results.status == "ok").all()
    assert (results.inference_images_per_second > 0).all()
    trends = json.loads((study.output / "trends.json").read_text())
    assert [r["regime"] for r in trends["spaces"][0]["regimes"]] == []  # 2 draws < MIN_PER_REGIME: said so
    assert "needs 3" in (study.output / "trends.txt").read_text()
    report = (study.output / "report.html").read_text()
    assert "Inference time against complexity" in report
    code, out, err = run_cli("study", "status", tmp_path / "tiny.toml")
    assert code == 0 and "RegNetX@2M:4M" in out and "RegNetX@8M:16M" in out and "complete" in out
    code, out, err = run_cli("study", "run", tmp_path / "tiny.toml", "--workers", "1")
    assert code == 0 and len(Store.open(study.store_path).results()) == 4


def test_trends_and_speed_commands_do_not_import_torch(regime_store):
    import subprocess

    code = ("import sys; from regspace.cli import main; rc = main(['trends', '--store', sys.argv[1]]); "
            "main(['speed', '--store', sys.argv[1]]); "
            "assert 'torch' not in sys.modules and 'pytorch_lightning' not in sys.modules")  # fmt: skip
    trained = ("a1", "a2", "a3", "b1", "b2")
    regime_store.append_rows("results", [_result(m, "r", 9.0 + i) for i, m in enumerate(trained)])
    p = subprocess.run([sys.executable, "-c", code, str(regime_store.path)], capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "S: no sampled parameter" in p.stdout and "no trained model has a measured inference speed" in p.stdout


def test_compare_pairs_spaces_within_a_regime_only(regime_store):
    """S@2M:4M, T@2M:4M and S@8M:16M: one pair shares a budget (S and T at 2M:4M); the two across budgets are
    left to the trends, and the Findings say so. Holm's correction counts the one pair."""
    from regspace.analysis.compare import compare

    regime_store.append_rows("results", [_result(m, "r", 9.0 + i) for i, m in
                                         enumerate(("a1", "a2", "a3", "b1", "b2", "t1", "t2"))])  # fmt: skip
    result = compare(load_table(regime_store))
    assert [(p["a"], p["b"]) for p in result["pairs"]] == [("S@2M:4M", "T@2M:4M")]
    assert [(p["a"], p["b"]) for p in result["findings"]["pairs"]] == [("S@2M:4M", "T@2M:4M")]
    assert "compared within each flops regime only" in result["findings"]["sentences"][0]
    plain = compare(load_table(regime_store, spaces=["S@2M:4M", "T@2M:4M"]))  # one regime: no such sentence
    assert "flops regime" not in plain["findings"]["sentences"][0]
