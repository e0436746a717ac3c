"""The spaces of issue 21 (docs/design.md §2): NDS's Vanilla, ResNet, ResNeXt-A and ResNeXt-B, RegNetX one
design choice away (DDS §4), and the MBConv ladder MB_a … MB_e.

Every design they sample at the mnist and cifar presets builds, and the built module has exactly the
counter's parameters; each space's rows have the structure its definition states; the CLI lists and
samples them. Their laws are checked against an independent simulation in tests/test_population.py.
"""

import numpy as np
import pandas as pd
import pytest

from regspace.blocks.network import build_model, count, count_params
from regspace.presets import PRESETS
from regspace.sampler import sample
from regspace.schema import design_from_row
from regspace.spaces import SPACES

NDS = ["Vanilla", "ResNet", "ResNeXt-A", "ResNeXt-B"]
DDS = ["RegNetX_inv", "RegNetX_dw", "RegNetX_swish", "RegNetX_dw_swish"]
MB = ["MB_a", "MB_b", "MB_c", "MB_d", "MB_e"]
NEW = DDS + NDS + MB

NDS_DOMAINS = {  # NDS Table 1 (docs/design.md §2): d, w, b, number of groups
    "Vanilla": ((1, 2, 3, 4, 6, 8, 12, 16, 24), (16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256), None, None),
    "ResNet": ((1, 2, 3, 4, 6, 8, 12, 16, 24), (16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256), None, None),
    "ResNeXt-A": ((1, 2, 4, 8, 16), (16, 32, 64, 128, 256), (1, 2, 4), (1, 2, 4)),
    "ResNeXt-B": ((1, 2, 4, 8, 16), (64, 128, 256, 512, 1024), (1, 2, 4), (1, 2, 4, 8, 16)),
}
NDS_BLOCK = {"Vanilla": "V", "ResNet": "R", "ResNeXt-A": "X", "ResNeXt-B": "X"}


def population(name, preset, n=20, seed=0) -> pd.DataFrame:
    p = PRESETS[preset]
    r = sample(SPACES[name], n, budget=p.budget, stem=p.stem, context=p.context, seed=seed)
    assert r.n == n
    return pd.DataFrame({k: list(v) for k, v in r.columns.items()})


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["mnist", "cifar"])
@pytest.mark.parametrize("name", NEW)
def test_every_sampled_design_builds_with_the_counted_params(name, preset):
    ctx = PRESETS[preset].context
    df = population(name, preset)
    for _, row in df.iterrows():
        design = design_from_row(row)
        model = build_model(design, ctx)
        assert count_params(model) == int(count(design, ctx).params) == row.params, design


@pytest.mark.parametrize("name", NDS)
def test_nds_rows(name):
    depths, widths, ratios, groups = NDS_DOMAINS[name]
    df = population(name, "cifar", n=200)
    for _, r in df.iterrows():
        design = design_from_row(r)
        assert design.block == NDS_BLOCK[name] and design.activation == "relu"
        assert list(design.strides) == [1, 2, 2] and design.stem.kind == "cifar" and design.stem.width == 16
        assert set(design.depths) <= set(depths) and set(design.widths) <= set(widths)
        if ratios is None:
            continue
        for w, b, g in zip(design.widths, design.bottleneck_ratios, design.group_widths):
            assert b in ratios and (w / b) % g == 0 and (w / b) // g in groups  # g: channels per group
    if ratios is not None:
        # NDS draws the number of groups uniformly: every value of the list appears
        n_groups = {int(round(w / b)) // g for r in df.itertuples() for w, b, g in zip(*_stage(r))}
        assert n_groups == set(groups)


def _stage(r):
    return r.stage_widths, r.stage_bottleneck_ratios, r.stage_group_widths


@pytest.mark.parametrize("name", DDS)
def test_dds_variants_are_regnetx_one_change_away(name):
    x, v = SPACES["RegNetX"], SPACES[name]
    fields = ("d", "w0", "wa", "wm", "b", "g", "se_ratio", "num_stages", "block", "activation", "head_width")
    changed = {f for f in fields if getattr(x, f) != getattr(v, f)}
    assert (
        changed
        == {
            "RegNetX_inv": {"b"},
            "RegNetX_dw": {"g"},
            "RegNetX_swish": {"activation"},
            "RegNetX_dw_swish": {"g", "activation"},
        }[name]
    )
    df = population(name, "mnist", n=100)
    designs = [design_from_row(r) for _, r in df.iterrows()]
    if name == "RegNetX_inv":
        assert all(set(d.bottleneck_ratios) == {0.25} for d in designs)
    if name in ("RegNetX_dw", "RegNetX_dw_swish"):
        assert all(set(d.group_widths) == {1} for d in designs)
    assert {d.activation for d in designs} == {"silu" if name.endswith("swish") else "relu"}


@pytest.mark.parametrize("name", MB)
def test_mbconv_rows(name):
    space = SPACES[name]
    df = population(name, "mnist", n=200)
    for _, r in df.iterrows():
        design = design_from_row(r)
        assert design.block == "MB" and design.activation == "silu" and design.se_ratio == 0.25
        assert list(design.strides) == [1, 2, 2, 2, 1, 2, 1] and design.head_width == 1280
        assert design.stem.width == 32
        assert set(design.depths) <= {1, 2, 3, 4} and all(8 <= w <= 320 and w % 8 == 0 for w in design.widths)
        assert set(design.kernels) <= {3, 5} and set(design.expansions) <= {1, 3, 6}
    cols = {p: df[[f"{p}{i}" for i in range(1, 8)]].to_numpy() for p in "dwek"}
    for p in "dwek":
        if p in space.shared:
            assert (cols[p] == cols[p][:, :1]).all()
        else:
            assert (cols[p] != cols[p][:, :1]).any()
        if p in space.increasing:
            assert (np.diff(cols[p], axis=1) >= 0).all()


def test_efficientnet_b0_is_in_mb_a_only():
    """EfficientNet-B0 (pycls configs/dds_baselines/effnet/EN-B0): in MB_a's domain, not in MB_b's."""
    d, w = [1, 2, 2, 3, 3, 4, 1], [16, 24, 40, 80, 112, 192, 320]
    e, k = [1, 6, 6, 6, 6, 6, 6], [3, 3, 5, 3, 5, 5, 3]
    a = SPACES["MB_a"]
    for p, values in zip((a.d, a.w, a.e, a.k), (d, w, e, k)):
        assert set(values) <= set(p.support().tolist()), p.name
    assert "e" in SPACES["MB_b"].shared and len(set(e)) > 1


def test_new_spaces_are_listed(run_cli):
    code, out, _ = run_cli("spaces")
    assert code == 0
    for name in NEW:
        assert f"\n{name}\t" in out, name


@pytest.mark.parametrize("name", NEW)
def test_sample_cli(tmp_path, run_cli, name):
    code, _, err = run_cli("sample", "--space", name, "-n", 20, "--preset", "mnist", "--store", tmp_path / "s")
    assert code == 0, err
    df = pd.read_parquet(tmp_path / "s" / "models")
    assert df.multiplicity.sum() == 20 and (df.space == name).all()
    assert df.flops.between(25_000_000, 28_000_000).all()
