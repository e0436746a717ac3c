"""The quick recipe's documented values and the learning rate the trainer really uses, step by step.

Independent checks: the committed ladder store holds results trained with experiments/ladder.toml's recipe
(quick + val_size 10,000), so that recipe's hash is pinned by data written months before this test; the
learning-rate schedule is recomputed here from its stated law (linear warm-up over warmup_epochs, then a
half cosine to 0), not from regspace's lr_factor.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from regspace.errors import UsageProblem
from regspace.train.recipe import RECIPES, Recipe

ROOT = Path(__file__).resolve().parents[1]


def test_quick_recipe_values_are_the_documented_ones():
    """README "Training" and docs/design.md §6: 3 epochs on 10,000 images, batch 128, lr 0.4 at batch 128,
    SGD-Nesterov 0.9, wd 5e-4, half an epoch of warm-up, zero-init of the last BN γ, 5,000 validation images."""
    q = RECIPES["quick"]
    assert (q.epochs, q.batch_size, q.lr, q.lr_batch) == (3, 128, 0.4, 128)
    assert (q.momentum, q.nesterov, q.weight_decay, q.warmup_epochs) == (0.9, True, 5e-4, 0.5)
    assert (q.train_size, q.val_size, q.zero_init_final_gamma, q.label_smoothing, q.augment) == (
        10_000, 5_000, True, 0.0, "none")  # fmt: skip
    assert q.hash == "3e65a7394f7f"


def test_the_ladder_recipe_hash_is_the_one_its_committed_results_carry():
    from regspace.study import load_study

    study = load_study(ROOT / "experiments" / "ladder.toml")
    parts = sorted((ROOT / "experiments/results/ladder/store/results").glob("*.parquet"))
    hashes = pq.read_table(parts, columns=["recipe_hash"]).column("recipe_hash").to_pylist()
    assert hashes.count(study.recipe.hash) == 382  # every short-recipe result of the ladder


def expected_lr(step: int, recipe: Recipe, steps_per_epoch: int) -> float:
    """The stated law: warm-up from scaled_lr / W to scaled_lr over W steps, then a half cosine to 0."""
    w = round(recipe.warmup_epochs * steps_per_epoch)
    total = recipe.epochs * steps_per_epoch
    peak = recipe.lr * recipe.batch_size / recipe.lr_batch
    if step < w:
        return peak * (step + 1) / w
    return peak * 0.5 * (1 + math.cos(math.pi * (step - w) / (total - w)))


@pytest.mark.parametrize("warmup", [0.5, 0.0])
def test_the_trainer_uses_the_warm_up_and_cosine_per_step(monkeypatch, warmup):
    """10 steps per epoch: with the quick recipe's half epoch of warm-up, step 0 runs at scaled lr / 5 and
    step 4 at the scaled lr; the rate of every optimiser step of a real fit is recorded."""
    import torch

    from regspace.design import Context, Design, get_stem
    from regspace.train.fit import fit_one, prepare_tensors
    from regspace.train.records import Task

    recipe = RECIPES["quick"].replace(
        epochs=2, batch_size=16, lr_batch=16, lr=0.2, train_size=160, val_size=32, test_size=0,
        warmup_epochs=warmup, precision="32-true", channels_last=False,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": rng.integers(0, 255, (192, 1, 8, 8), dtype=np.uint8),
        "train_y": rng.integers(0, 10, 192),
        "test_x": np.zeros((0, 1, 8, 8), np.uint8),
        "test_y": np.zeros(0, np.int64),
    }
    data = prepare_tensors(arrays, recipe, torch.device("cpu"), "synthetic", 10)
    seen: list[float] = []
    step = torch.optim.SGD.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording_step)
    task = Task("m", Design.from_sampled([8], [1], 1.0, 8, stem=get_stem("cifar")), Context(8, 1, 10))
    result = fit_one(task, recipe, data, device=torch.device("cpu"))
    assert result.status == "ok", result.reason
    assert len(seen) == 20  # 160 images / 16 per step × 2 epochs
    assert seen == pytest.approx([expected_lr(s, recipe, 10) for s in range(20)], rel=1e-9, abs=1e-12)
    if warmup:
        assert seen[0] == pytest.approx(0.2 / 5) and seen[4] == pytest.approx(0.2)


def test_tf32_is_a_recipe_field_that_leaves_earlier_hashes_alone():
    """Issue 23 fault 8: `tf32 = false` turns TF32 off and is a different recipe; its default (torch's own
    behaviour) is left out of the hash, so every recipe stored before the field existed keeps its hash: the
    JSON of a committed ladder result (written without the field) reads back to the hash it was stored under."""
    import json

    from regspace.study import _recipe

    q = RECIPES["quick"]
    assert q.tf32 is True and q.hash == "3e65a7394f7f" and RECIPES["cifar"].tf32 is True
    off = q.replace(tf32=False)
    assert off.hash != q.hash and off.replace(tf32=True).hash == q.hash
    assert _recipe({"base": "quick", "tf32": False}, "study.toml").hash == off.hash
    parts = sorted((ROOT / "experiments/results/ladder/store/results").glob("*.parquet"))
    row = pq.read_table(parts[0], columns=["recipe_hash", "recipe"]).to_pylist()[0]
    stored = json.loads(row["recipe"])
    assert "tf32" not in stored and Recipe(**stored).hash == row["recipe_hash"]
    with pytest.raises(Exception, match="tf32 must be true or false"):
        Recipe(tf32="no")


@pytest.mark.parametrize(
    "field, value, words",
    [("lr", "fast", "lr must be a number, not 'fast'"), ("epochs", 1.5, "epochs must be an integer, not 1.5"),
     ("lr", True, "lr must be a number, not True"), ("tf32", 1, "tf32 must be true or false, not 1"),
     ("precision", 3, "precision must be text, not 3")],
)  # fmt: skip
def test_a_recipe_field_of_the_wrong_type_is_one_line_naming_the_study_file(field, value, words, tmp_path):
    """Found by the study-file fuzz: `lr = "fast"` in a study's [recipe] reached the recipe's checks and
    came out as Python's "'>' not supported between instances of 'str' and 'int'"."""
    import tomllib

    from regspace.study import load_study

    with pytest.raises(UsageProblem, match=f"^recipe: {words}$"):
        Recipe().replace(**{field: value})
    f = tmp_path / "s.toml"
    f.write_text(f'spaces = ["RegNetX"]\nmodels_per_space = 2\n[recipe]\n{field} = {json.dumps(value)}\n')
    assert tomllib.loads(f.read_text())["recipe"][field] == value
    with pytest.raises(UsageProblem) as e:
        load_study(f)
    assert e.value.line() == f"study file {f} [recipe]: {words}"
    assert Recipe().replace(lr=1, grad_clip=5, train_size=None).lr == 1  # an int is a number; None: unchanged
