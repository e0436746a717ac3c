"""TOML spaces of every family (issue 21 §3): the fields of the text form, with distributions where they
make sense (b below 1, g = 1, k, e, the activation as a choice), sampled into a store and built.

Independent checks: every stored row is rebuilt from its columns alone (schema.design_from_row, then
torch), and its module's parameter count must equal the row's; frequencies are compared with the binomial
law, not with regspace's sampler.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from regspace.blocks.network import build_model, count_params
from regspace.design import Design, DesignBatch, get_stem
from regspace.populate import sample_to_store
from regspace.presets import PRESETS, Budget
from regspace.sampler import sample
from regspace.schema import context_from_row, design_from_row
from regspace.spaces.custom import space_from_dict
from regspace.store import Store

ALPHA = 1e-3  # seeded, so deterministic; alpha only sets how strict


def choice(*values):
    return {"dist": "choice", "values": list(values)}


ACT = {"act": choice("relu", "silu")}
SPECS = [
    # anynet: an inverted bottleneck (b < 1) and depthwise (g = 1), 5 stages with strides and a head conv
    {
        "name": "t_anynet",
        "stages": 5,
        "strides": [1, 1, 2, 2, 2],
        "head_width": 64,
        "activation": "silu",
        "params": {"d": choice(1, 2), "w": choice(8, 16, 24), "b": choice(0.25, 0.5, 1), "g": choice(1, 3)},
    },
    # V and R ignore b and g (neutral); a drawn activation
    {"name": "t_v", "block": "V", "stages": 3, "params": {"d": choice(1, 2), "w": choice(8, 16), **ACT}},
    {"name": "t_r", "base": "X_b", "block": "R", "stages": 2, "params": {"w": choice(8, 32), **ACT}},
    {
        "name": "t_regnet",
        "family": "regnet",
        "num_stages": 3,
        "strides": [1, 2, 2],
        "params": {"d": {"low": 3, "high": 8}, "b": choice(0.5), "g": choice(1, 3), **ACT},
    },
    {
        "name": "t_nds_x",
        "family": "nds",
        "block": "X",
        "params": {"d": choice(1, 2), "w": choice(16, 32), "b": choice(0.5, 2), "g": choice(1, 4)},
    },
    {"name": "t_nds_r", "base": "ResNet", "stages": 2, "strides": [1, 2], "params": {"d": choice(1, 3), **ACT}},
    {
        "name": "t_mb",
        "family": "mbconv",
        "stages": 4,
        "strides": [1, 2, 2, 2],
        "stem_width": 16,
        "head_width": 128,
        "increasing": ["w"],
        "params": {"d": choice(1, 2), "w": choice(8, 16, 24), "e": choice(1, 6), "k": choice(3, 5), **ACT},
    },
]


def sampled(tmp_path, spec, n=40, budget=":2M"):
    space = space_from_dict(spec, source="t.toml")
    store = Store.create(tmp_path / "s")
    sample_to_store(store, space, n, preset=PRESETS["mnist"], budget=Budget.parse(params=budget), seed=3)
    return space, pd.read_parquet(tmp_path / "s" / "models")  # plain pandas


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s["name"])
def test_every_family_samples_and_every_row_builds_with_the_counted_params(tmp_path, spec):
    space, df = sampled(tmp_path, spec)
    assert df.multiplicity.sum() == 40 and (df.space == spec["name"]).all()
    for _, row in df.iterrows():
        design, context = design_from_row(row), context_from_row(row)
        assert design.model_id(context) == row.model_id  # the row's columns are the whole design
        assert count_params(build_model(design, context)) == row.params
        assert len(design.widths) == spec.get("stages", spec.get("num_stages", 3))
        if "strides" in spec:
            assert list(design.strides) == spec["strides"]
        assert design.head_width == spec.get("head_width", space.head_width)
    if "act" in spec["params"]:
        assert set(df.activation) == {"relu", "silu"}
    else:
        assert set(df.activation) == {spec.get("activation", "silu" if space.block == "MB" else "relu")}


def test_anynet_b_below_one_and_g_one_are_sampled_and_compatible(tmp_path):
    _, df = sampled(tmp_path, SPECS[0])
    b = np.concatenate(df.stage_bottleneck_ratios.to_list())
    g = np.concatenate(df.stage_group_widths.to_list())
    w = np.concatenate(df.stage_widths.to_list())
    assert {0.25, 0.5} <= set(b.tolist()) and 1 in set(g.tolist())
    assert (np.rint(w / b) % g == 0).all()  # the bottleneck is a multiple of the group width


def test_v_and_r_blocks_leave_b_and_g_neutral(tmp_path):
    _, df = sampled(tmp_path, SPECS[2])
    assert (df.block == "R").all()
    assert {x for r in df.stage_bottleneck_ratios for x in r} == {1.0}
    assert {x for r in df.stage_group_widths for x in r} == {1}


def test_mbconv_e_and_k_choices_and_nondecreasing_widths(tmp_path):
    _, df = sampled(tmp_path, SPECS[-1], n=60)
    assert (df.block == "MB").all() and (df.stem_width == 16).all()
    assert {x for r in df.stage_expansions for x in r} == {1.0, 6.0}
    assert {x for r in df.stage_kernels for x in r} == {3, 5}
    assert {x for i in range(1, 5) for x in df[f"e{i}"]} == {1.0, 6.0}
    assert {x for i in range(1, 5) for x in df[f"k{i}"]} == {3, 5}
    w = np.array(df.stage_widths.to_list())
    assert (np.diff(w, axis=1) >= 0).all()
    free = dict(SPECS[-1], name="t_mb_free", increasing=[])
    _, df_free = sampled(tmp_path / "free", free, n=60)
    assert (np.diff(np.array(df_free.stage_widths.to_list()), axis=1) < 0).any()  # the constraint is real


@pytest.mark.parametrize("base", [{"base": "X_a"}, {"family": "regnet"}, {"family": "mbconv"}])
def test_the_activation_choice_is_drawn_half_and_half(base):
    """2,000 accepted draws with no budget: the count of silu is Binomial(2000, 1/2)."""
    space = space_from_dict({"name": "t_act", **base, "params": ACT})
    r = sample(space, 2000, budget=Budget(), stem=get_stem("cifar"), context=PRESETS["mnist"].context, seed=5)
    act = np.repeat(np.array(r.columns["activation"], dtype=object), r.columns["multiplicity"])
    assert len(act) == 2000
    silu = int((act == "silu").sum())
    assert stats.binomtest(silu, 2000, 0.5).pvalue > ALPHA, silu


def test_drawing_the_activation_leaves_the_other_draws_unchanged():
    """The activation is drawn after the other parameters: adding the choice changes no other draw."""
    plain = space_from_dict({"name": "t", "base": "X_a"})
    with_act = space_from_dict({"name": "t", "base": "X_a", "params": ACT})
    a, b = (s.draw(np.random.default_rng(9), 500) for s in (plain, with_act))
    assert all((a[p] == b[p]).all() for p in "dwbg") and "act" not in a and set(b["act"]) == {"relu", "silu"}


def test_designs_differing_only_in_activation_have_different_ids():
    ctx = PRESETS["mnist"].context
    relu, silu = (Design.from_sampled((16, 32), (1, 2), 1, 8, activation=a) for a in ("relu", "silu"))
    assert relu.model_id(ctx) != silu.model_id(ctx)
    batch = DesignBatch.from_sampled(
        np.array([[16, 32]] * 2), np.array([[1, 2]] * 2), 1, 8, se_ratio=0.0, stem=relu.stem,
        activation=np.array(["relu", "silu"]),
    )  # fmt: skip
    assert batch.model_ids(ctx) == [relu.model_id(ctx), silu.model_id(ctx)]
    assert [batch.design(i) for i in range(2)] == [relu, silu]
    assert batch.take([1]).design(0) == silu
    assert (batch.complexity(ctx).flops == relu.complexity(ctx).flops).all()  # the activation costs nothing


@pytest.mark.parametrize(
    "text,keys",
    [
        ('family = "resnet"', ["family", "resnet"]),
        ("[params.e]\nvalues = [1, 6]", ["params.e", "mbconv"]),
        ('family = "regnet"\n[params.w]\nlow = 8\nhigh = 64\nq = 8', ["params.w", "anynet"]),
        ("stages = 8", ["stages", "7"]),
        ("stages = 3\nstrides = [1, 2]", ["strides", "3"]),
        ('base = "MB_a"\nstages = 4', ["strides", "MB_a"]),
        ('[params.act]\nvalues = ["relu", "gelu"]', ["params.act", "gelu"]),
        ('activation = "gelu"', ["activation", "gelu"]),
        ('block = "MB"', ["block", "mbconv"]),
        ('family = "mbconv"\nblock = "X"', ["block", "anynet"]),
        ("stem_width = 16", ["stem_width", "mbconv"]),
        ('family = "nds"\nblock = "V"\n[params.b]\nvalues = [2]', ["params.b", "block V"]),
        ('block = "V"\nse_ratio = 0.25', ["V"]),
        ('base = "nope"', ["base", "nope"]),
    ],
)
def test_refusals_are_one_line_naming_the_file_and_key(tmp_path, run_cli, text, keys):
    f = tmp_path / "bad.toml"
    f.write_text(f'name = "bad"\n{text}\n')
    code, _, err = run_cli("sample", "--space", f, "-n", 2, "--store", tmp_path / "s")
    assert code != 0 and len(err.strip().splitlines()) == 1, err
    assert str(f) in err and all(k in err for k in keys), err


def test_listing_of_a_toml_space_shows_the_drawn_activation_and_up_to_seven_stages():
    nds = space_from_dict({"name": "t_n", "family": "nds", "block": "Y", "shared": ["b"], "params": ACT})
    assert nds.block == "Y" and nds.se_ratio == 0.25 and [n for n, _ in nds.parameter_rows()] == [
        "d", "w", "b", "groups", "act",
    ]  # fmt: skip
    assert dict(nds.parameter_rows())["act"] == "{relu, silu} per model"
    assert nds.constraints() == ["shared b", "strides 1, 2, 2"] and nds.dof == 3 * 3 + 1 + 1
    mb = space_from_dict({"name": "t_m", "base": "MB_c", "params": ACT})
    assert "activation {relu, silu}" in mb.constraints()[-1] and mb.strides == (1, 2, 2, 2, 1, 2, 1)
    seven = space_from_dict({"name": "t7", "stages": 7})
    assert (
        seven.stages == 7
        and seven.dof == 28
        and space_from_dict({"name": "t7r", "family": "regnet", "num_stages": 7}).num_stages == 7
    )
