"""The nn.Module built from a design has exactly the analytic parameter count (every space)."""

import zlib

import numpy as np
import pytest
import torch

from regspace.design import STEMS, Context
from regspace.models import build_model, count_params
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
        for m in model.modules() if m.__class__.__name__ == "SqueezeExcitation"
    )
    fc_bias = ctx.num_classes
    assert counter.get_total_flops() // 2 == design.complexity(ctx).flops - se_bias - fc_bias
