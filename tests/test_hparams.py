"""Recipe fields drawn per model (issue 24 §4, NDS §5): laws, draws, storage, identity and training.

Independent checks: the draws against scipy's loguniform (KS), the design stream against a draw without
laws, the optimiser's rate as torch records it, and the committed ladder's recipe hash."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from regspace.errors import RegspaceError, UsageProblem
from regspace.presets import get_preset
from regspace.sampler import sample
from regspace.schema import HPARAM_COLUMNS, MODELS_SCHEMA
from regspace.spaces import get_space
from regspace.spaces.hparams import laws_from_tables, to_json
from regspace.train.recipe import RECIPES, Recipe, recipe_for_rows

LR = {"dist": "log_uniform", "low": 0.05, "high": 1.0}
WD = {"dist": "log_uniform", "low": 1e-5, "high": 1e-3}
LAWS = laws_from_tables({"lr": LR, "weight_decay": WD}, "test")
MNIST = get_preset("mnist")


def draws(n, *, seed=1, laws=LAWS, space="RegNetX"):
    return sample(get_space(space), n, budget=MNIST.budget, stem=MNIST.stem, context=MNIST.context, seed=seed,
                  hparams=laws)  # fmt: skip


# -- the draws -------------------------------------------------------------------------------------------


def test_drawn_values_are_iid_from_the_declared_law():
    """3,000 draws: each field's values against scipy's loguniform (KS), and no dependence between the
    fields or on the design (Spearman), as i.i.d. draws of a product law."""
    r = draws(3000)
    lr, wd = r.columns["lr"], r.columns["weight_decay"]
    assert len(lr) == 3000 and lr.min() >= 0.05 and lr.max() <= 1.0
    assert stats.kstest(lr, stats.loguniform(0.05, 1.0).cdf).pvalue > 0.01
    assert stats.kstest(wd, stats.loguniform(1e-5, 1e-3).cdf).pvalue > 0.01
    # not uniform on [low, high]: a linear law would put half the draws above 0.525, log-uniform 23 %
    assert stats.kstest(lr, stats.uniform(0.05, 0.95).cdf).pvalue < 1e-6
    assert stats.spearmanr(lr, wd).pvalue > 0.01
    assert stats.spearmanr(lr, r.columns["w0"]).pvalue > 0.01


def test_quantised_and_choice_laws_keep_their_support():
    laws = laws_from_tables({"lr": {"dist": "choice", "values": [0.1, 0.2, 0.4]},
                             "momentum": {"dist": "uniform", "low": 0.8, "high": 0.95, "q": 0.05}}, "t")  # fmt: skip
    r = draws(600, laws=laws)
    assert set(r.columns["lr"]) == {0.1, 0.2, 0.4}
    assert set(np.round(r.columns["momentum"], 10)) == {0.8, 0.85, 0.9, 0.95}


def test_draws_are_seeded_and_leave_the_design_stream_unchanged():
    a, b, c = draws(40, seed=5), draws(40, seed=5), draws(40, seed=6)
    assert np.array_equal(a.columns["lr"], b.columns["lr"])
    assert list(a.columns["model_id"]) == list(b.columns["model_id"])
    assert not np.array_equal(a.columns["lr"], c.columns["lr"])
    plain = draws(40, seed=5, laws=())
    # the same candidates are accepted, with the same designs: laws are drawn after the design
    assert np.array_equal(plain.columns["draw_index"], a.columns["draw_index"])
    assert np.array_equal(plain.columns["w0"], a.columns["w0"])
    assert "lr" not in plain.columns and "hparams" not in plain.columns


def test_model_ids_name_the_network_and_its_values():
    """A network with drawn values is its own model: another id than the network alone (whose id, with no
    laws, is what it always was), and equal values give equal ids (so a repeat is one model, drawn twice)."""
    from regspace.spaces.hparams import salted_ids

    plain = draws(20, seed=5, laws=())
    drawn = draws(20, seed=5)
    assert set(plain.columns["model_id"]).isdisjoint(drawn.columns["model_id"])
    ids = ["abc", "abc", "abc"]
    salted = salted_ids(ids, {"lr": np.array([0.1, 0.1, 0.2])})
    assert salted[0] == salted[1] != salted[2] and salted_ids(ids, {}) == ids
    # a choice law with one value: every draw of a network repeats, and counts in its multiplicity
    one = laws_from_tables({"lr": {"dist": "choice", "values": [0.3]}}, "t")
    r = draws(400, laws=one, space="X_e")
    base = draws(400, laws=(), space="X_e")
    assert r.distinct == base.distinct and list(r.columns["multiplicity"]) == list(base.columns["multiplicity"])


# -- declarations ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tables,needle",
    [
        ({"epochs": LR}, "epochs cannot be drawn"),
        ({"lr": 0.3}, "must be a table"),
        ({"lr": {"dist": "log_uniform", "low": 0, "high": 1}}, "low > 0"),
        ({"lr": {"dist": "gauss", "low": 0.1, "high": 1}}, "unknown distribution"),
        ({"lr": {"dist": "choice", "values": ["fast"]}}, "takes numbers"),
    ],
)
def test_bad_laws_fail_in_one_line(tables, needle):
    with pytest.raises(UsageProblem, match=needle) as e:
        laws_from_tables(tables, "where")
    assert "\n" not in e.value.line()


def test_a_law_that_reaches_an_invalid_recipe_is_refused():
    with pytest.raises(UsageProblem, match=r"momentum drawn .* reaches 1\b.*momentum must be in \[0, 1\)"):
        Recipe().with_laws(laws_from_tables({"momentum": {"dist": "uniform", "low": 0.5, "high": 1.0}}, "t"))


# -- the recipe's identity -------------------------------------------------------------------------------


def test_fixed_recipes_keep_their_hashes():
    """The hashes every store has recorded (the ladder's results: 0a6bacc79eca) do not move."""
    from pathlib import Path

    from regspace.study import load_study

    assert RECIPES["quick"].hash == "3e65a7394f7f"
    ladder = Path(__file__).parent.parent / "experiments" / "ladder.toml"
    assert load_study(ladder).recipe.hash == "0a6bacc79eca"


def test_the_hash_names_which_fields_are_drawn_and_how():
    quick = RECIPES["quick"]
    drawn = quick.with_laws(LAWS)
    assert drawn.hash != quick.hash and drawn.laws == LAWS
    assert drawn.replace(lr=0.9).hash == drawn.hash  # a drawn field's fixed value means nothing
    assert quick.replace(lr=0.9).hash != quick.hash
    other = quick.with_laws(laws_from_tables({"lr": {**LR, "low": 0.1}, "weight_decay": WD}, "t"))
    assert other.hash != drawn.hash
    lr_only = quick.with_laws(laws_from_tables({"lr": LR}, "t"))
    assert len({lr_only.hash, drawn.hash, quick.hash}) == 3
    # a model's own recipe has its values and the recipe's hash; JSON round trip keeps both
    mine = drawn.for_draw({"lr": 0.123, "weight_decay": 2e-4})
    assert (mine.lr, mine.weight_decay, mine.hash) == (0.123, 2e-4, drawn.hash)
    assert Recipe(**json.loads(mine.to_json())).hash == drawn.hash


def test_a_model_trains_only_with_the_recipe_that_drew_its_fields():
    drawn = RECIPES["quick"].with_laws(LAWS)
    with pytest.raises(RegspaceError, match="drawn with recipe fields lr, but recipe quick .* draws lr, weight_decay"):
        drawn.for_draw({"lr": 0.1})
    with pytest.raises(RegspaceError, match="draws none"):
        RECIPES["quick"].for_draw({"lr": 0.1})
    assert RECIPES["quick"].for_draw({}) is RECIPES["quick"]


def test_recipe_for_rows_adopts_the_rows_laws_or_refuses():
    quick = RECIPES["quick"]
    text = to_json(LAWS)
    assert recipe_for_rows(quick, [{"hparams": None}] * 2) is quick
    assert recipe_for_rows(quick, [{"hparams": text}] * 2).hash == quick.with_laws(LAWS).hash
    assert recipe_for_rows(quick.with_laws(LAWS), [{"hparams": text}]).hash == quick.with_laws(LAWS).hash
    with pytest.raises(RegspaceError, match="different recipe-field laws"):
        recipe_for_rows(quick, [{"hparams": text}, {"hparams": None}])
    with pytest.raises(RegspaceError, match="drawn with no recipe fields"):
        recipe_for_rows(quick.with_laws(LAWS), [{}])


# -- study and space files -------------------------------------------------------------------------------

STUDY = """
name = "hp"
spaces = ["RegNetX"]
models_per_space = 2
seed = 3
preset = "mnist"
output = "out"
[budget]
flops = "2M:4M"
[recipe]
train_size = 256
val_size = 128
test_size = 0
epochs = 1
batch_size = 64
lr = {dist = "log_uniform", low = 0.05, high = 1.0}
"""


def test_a_study_declares_laws_in_its_recipe(tmp_path):
    from regspace.study import load_study

    f = tmp_path / "s.toml"
    f.write_text(STUDY)
    s = load_study(f)
    assert [p.name for p in s.recipe.laws] == ["lr"] and s.recipe.train_size == 256
    assert s.recipe.hash != load_study_text(tmp_path, STUDY.replace('lr = {dist = "log_uniform", low = 0.05, '
                                                                       'high = 1.0}', "")).recipe.hash  # fmt: skip


def load_study_text(tmp_path, text, name="t.toml"):
    from regspace.study import load_study

    f = tmp_path / name
    f.write_text(text)
    return load_study(f)


SPACE = """
name = "RegNetX_lr"
base = "RegNetX"
[hparams.lr]
dist = "log_uniform"
low = 0.05
high = 1.0
"""


def test_a_space_file_declares_laws_and_a_study_adopts_them(tmp_path):
    (tmp_path / "sp.toml").write_text(SPACE)
    space = get_space(str(tmp_path / "sp.toml"))
    assert [p.name for p in space.hparams] == ["lr"]
    plain = STUDY.replace('lr = {dist = "log_uniform", low = 0.05, high = 1.0}\n', "")
    s = load_study_text(tmp_path, plain.replace('["RegNetX"]', f'["{tmp_path / "sp.toml"}"]'))
    assert s.recipe.laws == space.hparams
    # the same law in the study's recipe: one recipe; another law: refused in one line
    same = load_study_text(tmp_path, STUDY.replace('["RegNetX"]', f'["{tmp_path / "sp.toml"}"]'))
    assert same.recipe.hash == s.recipe.hash
    with pytest.raises(UsageProblem, match="lr is drawn log-uniform \\[0.05, 1\\] by space .* but log-uniform "
                       "\\[0.1, 1\\] by \\[recipe\\]"):  # fmt: skip
        load_study_text(
            tmp_path, STUDY.replace("low = 0.05", "low = 0.1").replace('["RegNetX"]', f'["{tmp_path / "sp.toml"}"]')
        )
    with pytest.raises(UsageProblem, match="hparams: epochs cannot be drawn"):
        get_space_text(tmp_path, SPACE.replace("[hparams.lr]", "[hparams.epochs]"))


def get_space_text(tmp_path, text):
    (tmp_path / "bad.toml").write_text(text)
    return get_space(str(tmp_path / "bad.toml"))


# -- stored and read back --------------------------------------------------------------------------------


def test_values_are_stored_with_the_draw_and_read_back(tmp_path):
    from regspace.populate import sample_to_store
    from regspace.store import Store
    from regspace.train.records import Task

    store = Store.create(tmp_path / "s")
    r = sample_to_store(store, get_space("RegNetX"), 6, preset=MNIST, budget=MNIST.budget, seed=2, hparams=LAWS)
    models = store.read("models").set_index("model_id")
    assert list(models.index) == list(r.columns["model_id"])
    assert np.array_equal(models.lr.to_numpy(), r.columns["lr"])
    assert np.array_equal(models.weight_decay.to_numpy(), r.columns["weight_decay"])
    assert models.momentum.isna().all() and (models.hparams == to_json(LAWS)).all()
    row = store.read_arrow("models").to_pylist()[0]
    task = Task.from_row(row)
    assert dict(task.hparams) == {"lr": row["lr"], "weight_decay": row["weight_decay"]}
    # resuming the stream: more draws with the same laws continue it, values and all
    sample_to_store(store, get_space("RegNetX"), 4, preset=MNIST, budget=MNIST.budget, seed=2, hparams=LAWS)
    whole = draws(10, seed=2)
    assert sorted(store.read("models").lr) == sorted(whole.columns["lr"])


def test_a_schema_5_part_reads_with_no_drawn_fields(tmp_path):
    """A part written before schema 6 (no lr … hparams columns) reads as null: a Task with nothing drawn."""
    from regspace.populate import sample_to_store
    from regspace.store import Store
    from regspace.train.records import Task

    store = Store.create(tmp_path / "s")
    sample_to_store(store, get_space("X_a"), 3, preset=MNIST, budget=MNIST.budget, seed=1)
    (part,) = (tmp_path / "s" / "models").glob("part-*.parquet")
    t = pq.read_table(part)
    old = t.drop_columns([*HPARAM_COLUMNS, "hparams"])
    meta = {**(t.schema.metadata or {}), b"regspace_schema_version": b"5"}
    pq.write_table(old.replace_schema_metadata(meta), part)
    assert "lr" not in pq.read_schema(part).names
    back = Store.open(tmp_path / "s").read_arrow("models")
    assert back.schema.equals(MODELS_SCHEMA, check_metadata=False)
    assert back.column("lr").null_count == 3 and back.column("hparams").null_count == 3
    assert all(Task.from_row(row).hparams == () for row in back.to_pylist())
    assert recipe_for_rows(RECIPES["quick"], back.to_pylist()) is RECIPES["quick"]
    assert pa.types.is_float64(back.schema.field("lr").type)


# -- used by training ------------------------------------------------------------------------------------


def test_training_uses_the_drawn_values(monkeypatch):
    """fit_one trains a model with its own lr and weight decay, as torch's optimiser sees them at every
    step, and records the recipe's hash with the values it used."""
    import torch

    from regspace.design import Context, Design, get_stem
    from regspace.train.fit import fit_one, prepare_tensors
    from regspace.train.records import Task

    recipe = RECIPES["quick"].replace(
        epochs=1, batch_size=16, lr_batch=16, train_size=64, val_size=32, test_size=0, warmup_epochs=0,
        precision="32-true", channels_last=False,
    ).with_laws(LAWS)  # fmt: skip
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": rng.integers(0, 255, (96, 1, 8, 8), dtype=np.uint8),
        "train_y": rng.integers(0, 10, 96),
        "test_x": np.zeros((0, 1, 8, 8), np.uint8),
        "test_y": np.zeros(0, np.int64),
    }
    data = prepare_tensors(arrays, recipe, torch.device("cpu"), "synthetic", 10)
    seen = []
    step = torch.optim.SGD.step

    def recording_step(self, *args, **kwargs):
        seen.append((self.param_groups[0]["initial_lr"], self.param_groups[0]["weight_decay"]))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording_step)
    design = Design.from_sampled([8], [1], 1.0, 8, stem=get_stem("cifar"))
    task = Task("m", design, Context(8, 1, 10), (("lr", 0.0731), ("weight_decay", 3.3e-4)))
    result = fit_one(task, recipe, data, device=torch.device("cpu"))
    assert result.status == "ok", result.reason
    assert seen == [(0.0731, 3.3e-4)] * 4  # 64 images / 16 per step, 1 epoch
    used = json.loads(result.recipe)
    assert result.recipe_hash == recipe.hash and (used["lr"], used["weight_decay"]) == (0.0731, 3.3e-4)
    # a model without the drawn values is recorded failed with the reason, never trained at the recipe's lr
    seen.clear()
    bad = fit_one(Task("n", design, Context(8, 1, 10)), recipe, data, device=torch.device("cpu"))
    assert bad.status == "failed" and "draws lr, weight_decay" in bad.reason and seen == []


@pytest.mark.slow
def test_a_study_with_a_drawn_lr_trains_end_to_end(tmp_path):
    """2 draws, 1 epoch on 256 images: each result carries its model's own lr under the study's hash."""
    import pandas as pd

    (tmp_path / "hp.toml").write_text(STUDY)
    from conftest import cli

    p = cli("study", "run", "hp.toml", "--workers", "1", cwd=tmp_path)  # in this process: no imports again
    assert p.returncode == 0, p.stderr
    models = pd.read_parquet(tmp_path / "out" / "store" / "models").set_index("model_id")
    results = pd.read_parquet(tmp_path / "out" / "store" / "results").set_index("model_id")
    assert len(models) == 2 and set(results.index) == set(models.index) and (results.status == "ok").all()
    from regspace.study import load_study

    assert (results.recipe_hash == load_study(tmp_path / "hp.toml").recipe.hash).all()
    used = results.recipe.map(lambda r: json.loads(r)["lr"])
    assert used.to_dict() == models.lr.to_dict() and models.lr.nunique() == 2
    assert models.weight_decay.isna().all()  # not drawn: the recipe's 5e-4
    assert (results.recipe.map(lambda r: json.loads(r)["weight_decay"]) == 5e-4).all()
    status = cli("study", "status", "hp.toml", cwd=tmp_path)
    assert status.returncode == 0 and "complete" in status.stdout, status.stdout


# -- analyses see drawn fields as parameters -------------------------------------------------------------


def test_analyses_list_drawn_fields_as_parameters():
    """A constructed space where error rises with log lr above 0.2: the good-range test names lr (and not
    the design parameter that has no effect), and the scatter's default parameters include lr."""
    import pandas as pd

    from regspace.analysis.findings import good_range_sentences
    from regspace.plots.figures import default_params

    rng = np.random.default_rng(0)
    n = 200
    lr = np.exp(rng.uniform(np.log(0.05), np.log(1.0), n))
    w0 = rng.integers(8, 64, n)
    err = 10 + 8 * np.maximum(0, np.log(lr / 0.2)) + rng.normal(0, 0.3, n)
    df = pd.DataFrame({"space": "S", "status": "ok", "sweep_error": err, "multiplicity": 1, "lr": lr, "w0": w0,
                       "d": rng.integers(6, 16, n), "wa": rng.uniform(8, 64, n), "wm": rng.uniform(2, 3, n),
                       "b": 1.0, "g": 8, "flops": rng.integers(2_000_000, 4_000_000, n)})  # fmt: skip
    found = {r["param"]: r for r in good_range_sentences(df, "S", n_perm=199)}
    assert "lr" in found and found["lr"]["high"] < 0.5 and "w0" not in found
    assert "lr" in default_params(df) and "weight_decay" not in default_params(df)
