"""The nn.Module built from a design has exactly the analytic parameter count (every space)."""

import zlib

import numpy as np
import pytest
import torch

from regspace.blocks.network import build_model, count_params
from regspace.design import STEMS, Context
from regspace.presets import PRESETS
from regspace.spaces import SPACES
from regspace.zoo import zoo_design


def designs_of(space_name, n, stem):
    space = SPACES[space_name]
    raw = space.draw(np.random.default_rng(zlib.crc32(space_name.encode())), 4096)
    batch, valid = space.derive(raw, stem)
    cx = batch.complexity(PRESETS["cifar"].context)
    # keep them small enough to build quickly, but of every shape the space produces
    idx = np.flatnonzero(valid & (cx.params < 3_000_000))[:n]
    assert len(idx) == n
    return [batch.design(int(i)) for i in idx]


@pytest.mark.slow
@pytest.mark.parametrize("space_name", list(SPACES))
def test_param_count_equals_analytic_for_every_space(space_name):
    for stem, ctx in ((STEMS["cifar"], Context(32, 3, 10)), (STEMS["imagenet"], Context(64, 1, 7))):
        for design in designs_of(space_name, 4, stem):
            model = build_model(design, ctx)
            assert count_params(model) == design.complexity(ctx).params, design


@pytest.mark.parametrize("space_name", ["X_a", "Y_e", "RegNetY"])
def test_output_shape(space_name):
    design = designs_of(space_name, 1, STEMS["cifar"])[0]
    ctx = Context(28, 1, 10)
    model = build_model(design, ctx).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 1, 28, 28))
    assert y.shape == (2, 10)


def test_conv_flops_match_torch_flop_counter():
    """torch's FlopCounterMode counts 2 flops per multiply-add of convs and linears (no bias, no BN)."""
    from torch.utils.flop_counter import FlopCounterMode

    design = zoo_design("RegNetY-200MF")
    ctx = Context(224, 3, 1000)
    model = build_model(design, ctx).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 224, 224))
    # analytic flops also count bias adds: the SE convs' and the FC's
    se_bias = sum(
        m.reduce.out_channels + m.expand.out_channels
        for m in model.modules()
        if m.__class__.__name__ == "SqueezeExcitation"
    )
    fc_bias = ctx.num_classes
    assert counter.get_total_flops() // 2 == design.complexity(ctx).flops - se_bias - fc_bias


def test_init_is_the_reference_one():
    """Conv weights ~ N(0, 2 / (k·k·out_channels)), not divided by the groups (pycls, torchvision);
    BN 1/0 (the quick recipe zero-inits each block's last BN scale); FC N(0, 0.01²), bias 0."""
    from regspace.design import Design

    torch.manual_seed(0)
    design = Design((64, 256), (1, 2), (1.0, 1.0), (8, 8), stem=STEMS["cifar"])  # 3x3 convs with 8 and 32 groups
    for conv_init, divide in (("reference", False), ("grouped", True)):
        model = build_model(design, Context(32, 3, 10), zero_init_final_gamma=True, conv_init=conv_init)
        grouped = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
        assert len(grouped) == 3
        for m in grouped:
            k2 = m.kernel_size[0] * m.kernel_size[1]
            expected = (2.0 / (k2 * m.out_channels / (m.groups if divide else 1))) ** 0.5
            assert m.weight.std().item() == pytest.approx(expected, rel=0.05)
    fc = model.head.fc
    assert fc.weight.std().item() == pytest.approx(0.01, rel=0.1) and (fc.bias == 0).all()
    blocks = [m for m in model.modules() if type(m).__name__ == "Residual"]
    assert len(blocks) == 3
    assert all((b.final_bn.weight == 0).all() for b in blocks)
    assert (model.stem.bn.weight == 1).all() and (model.stem.bn.bias == 0).all()


def test_state_dict_holds_no_aliased_tensors():
    """Each tensor is registered once (a block's last BN is not also stored under a second name)."""
    from regspace.design import Design

    model = build_model(
        Design((16, 32), (2, 2), (1.0, 2.0), (8, 8), se_ratio=0.25, stem=STEMS["cifar"]), Context(32, 3, 10)
    )
    sd = model.state_dict()
    pointers = [t.data_ptr() for t in sd.values() if t.numel()]
    assert len(pointers) == len(set(pointers)), [k for k in sd if "final_bn" in k]
    assert not any("final_bn" in k for k in sd)
