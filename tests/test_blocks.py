"""The block registry and the Design's block field: ids of existing designs never change."""

import glob
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from regspace.blocks import block_names, get_block
from regspace.blocks.network import stages
from regspace.design import STEMS, Context, Design, DesignBatch
from regspace.errors import UsageProblem
from regspace.zoo import zoo_design

ROOT = Path(__file__).resolve().parent.parent
LADDER = ROOT / "experiments" / "results" / "ladder" / "store" / "models"


def _first_row(space: str) -> dict:
    for f in sorted(glob.glob(str(LADDER / "*.parquet"))):
        rows = [r for r in pq.read_table(f).to_pylist() if r["space"] == space]
        if rows:
            return rows[0]
    raise AssertionError(f"no {space} row in {LADDER}")


@pytest.mark.parametrize("space", ["X_a", "X_e", "RegNetX"])
def test_ids_of_committed_rows_are_unchanged(space):
    """Rebuilt from its stored columns, a committed design has its stored id, block and complexity."""
    r = _first_row(space)
    design = Design(
        tuple(r["stage_widths"]),
        tuple(r["stage_depths"]),
        tuple(r["stage_bottleneck_ratios"]),
        tuple(r["stage_group_widths"]),
        r["se_ratio"],
        STEMS[r["stem"]],
        r["block"],
    )
    ctx = Context(r["resolution"], r["in_channels"], r["num_classes"])
    assert design.model_id(ctx) == r["model_id"]
    assert design.block == r["block"] == "X"
    cx = design.complexity(ctx)
    assert (cx.flops, cx.params, cx.acts) == (r["flops"], r["params"], r["acts"])
    # a row written before the block field (no block given) reads the same
    assert (
        Design(
            design.widths, design.depths, design.bottleneck_ratios, design.group_widths, r["se_ratio"], STEMS[r["stem"]]
        )
        == design
    )


# No committed store holds Y designs: these ids were computed on main before the block field existed.
Y_IDS = [
    (lambda: zoo_design("RegNetY-200MF"), Context(), "558caaceb025d524"),
    (
        lambda: Design((16, 32), (1, 2), (1.0, 2.0), (8, 8), se_ratio=0.25, stem=STEMS["cifar"]),
        Context(32, 3, 10),
        "0b5f88a0310e6bd0",
    ),
    (
        lambda: Design((16, 32), (2, 2), (1.0, 2.0), (8, 8), se_ratio=0.25, stem=STEMS["cifar"]),
        Context(32, 3, 10),
        "144ae6f32432e6a7",
    ),
]


@pytest.mark.parametrize("make,ctx,expected", Y_IDS)
def test_ids_of_y_designs_are_unchanged(make, ctx, expected):
    design = make()
    assert design.block == "Y"
    assert design.model_id(ctx) == expected
    explicit = Design(
        design.widths, design.depths, design.bottleneck_ratios, design.group_widths, 0.25, design.stem, block="Y"
    )
    assert explicit == design and explicit.model_id(ctx) == expected


def test_block_field_is_checked():
    assert block_names() == ["V", "R", "X", "Y", "MB"]
    with pytest.raises(UsageProblem, match="unknown block"):
        Design((8,), (1,), (1.0,), (8,), block="Q")
    with pytest.raises(UsageProblem, match="block X has no SE"):
        Design((8,), (1,), (1.0,), (8,), se_ratio=0.25, block="X")
    with pytest.raises(UsageProblem, match="block Y needs"):
        Design((8,), (1,), (1.0,), (8,), block="Y")
    assert Design((8,), (1,), (1.0,), (8,)).block == "X"
    assert Design.from_sampled([24], [1], 1.0, 16, se_ratio=0.25).block == "Y"


def test_walker_gives_the_same_stages_to_one_design_and_a_batch():
    ws, ds = np.array([[16, 32, 64], [24, 48, 96]]), np.array([[1, 2, 3], [2, 1, 1]])
    b, g = np.ones((2, 3)), np.full((2, 3), 8)
    batch = DesignBatch.from_sampled(ws, ds, b, g, se_ratio=0.25, stem=STEMS["cifar"])
    for i in range(2):
        one = stages(batch.design(i))
        for s_one, s_all in zip(one, stages(batch), strict=True):
            assert (s_one.w_in, s_one.w_out, s_one.d) == (s_all.w_in[i], s_all.w_out[i], s_all.d[i])
            assert s_one.first() == (s_one.w_in, s_one.w_out, 2) and s_one.rest() == (s_one.w_out, s_one.w_out, 1)
    assert [int(s.w_in) for s in stages(batch.design(0))] == [16, 16, 32]  # the cifar stem's 16 first
    assert get_block(batch.block).name == "Y"


def test_sampling_and_counting_never_import_torch():
    code = (
        "import sys, numpy as np; import regspace.sampler, regspace.spaces, regspace.specs, regspace.blocks.network;"
        "from regspace.spaces import SPACES; from regspace.design import STEMS, Context;"
        "from regspace.blocks import block_names; block_names();"
        "b, v = SPACES['Y_a'].derive(SPACES['Y_a'].draw(np.random.default_rng(0), 64), STEMS['cifar']);"
        "b.complexity(Context(32, 3, 10)); b.design(0).model_id(Context());"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_text_form_takes_a_block():
    from regspace.specs import parse_design

    y, _ = parse_design("anynet:d=1,2;w=16,32;b=1,2;g=8;se=0.25;block=Y", stem=STEMS["cifar"])
    assert y.model_id(Context(32, 3, 10)) == "0b5f88a0310e6bd0"  # the same id as without block=Y
    with pytest.raises(UsageProblem, match="unknown block 'Z'"):
        parse_design("anynet:d=1;w=16;block=Z", stem=STEMS["cifar"])


def test_toml_block_follows_the_se_ratio_as_before():
    from regspace.spaces.custom import space_from_dict

    assert space_from_dict({"name": "t1", "block": "Y"}).block == "Y"
    assert space_from_dict({"name": "t2", "base": "Y_a", "se_ratio": 0.0}).block == "X"
    assert space_from_dict({"name": "t3", "block": "X", "se_ratio": 0.25}).block == "Y"
    with pytest.raises(UsageProblem, match=r"block must be .*'X' or 'Y'"):
        space_from_dict({"name": "t4", "block": "Z"})
