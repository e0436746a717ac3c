"""Block families V, R, X/Y (b < 1, g = 1) and MB: each checked against something independent of its counter.

- the built nn.Module's parameter count and torch's own flop count against the analytic counter;
- the compatibility rule against a separate re-typing of pycls's adjust_block_compatibility;
- a DesignBatch counts what its designs count one at a time;
- a tiny model of each kind learns on Fashion-MNIST (CPU).
"""

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from regspace.design import Context, Design, DesignBatch, get_stem, make_compatible
from regspace.errors import UsageProblem
from regspace.specs import parse_design

torch = pytest.importorskip("torch")

from regspace.blocks.network import build_model, count_params  # noqa: E402

BLOCKS = {"V": 0.0, "R": 0.0, "X": 0.0, "Y": 0.25, "MB": 0.25}
CTX = Context(32, 3, 10)


def tiny(block, stem="cifar", head=0, act=None, **kw):
    """Small designs that reach every branch: b < 1 and g = 1 for X/Y, strides 1,2,2,1 with 7 stages."""
    args = dict(
        widths=[8, 16, 24, 24, 32, 40, 40],
        depths=[1, 2, 1, 1, 2, 1, 1],
        bottleneck_ratios=[0.5, 1, 2, 0.25, 1, 4, 1],
        group_widths=[1, 4, 8, 1, 2, 8, 1],
        se_ratio=BLOCKS[block],
        stem=get_stem(stem, 12),
        block=block,
        strides=[1, 2, 2, 1, 1, 2, 1],
        kernels=[3, 5, 3, 3, 5, 3, 7],
        expansions=[1, 4, 6, 1, 2.5, 6, 3],
        head_width=head,
        activation=act,
    )
    args.update(kw)
    return Design.from_sampled(
        args.pop("widths"), args.pop("depths"), args.pop("bottleneck_ratios"), args.pop("group_widths"), **args
    )


@pytest.mark.parametrize("act", ["relu", "silu"])
@pytest.mark.parametrize("head", [0, 48])
@pytest.mark.parametrize("stem", ["cifar", "imagenet", "resnet"])
@pytest.mark.parametrize("block", list(BLOCKS))
def test_param_count_of_the_module_equals_the_counter(block, stem, head, act):
    design = tiny(block, stem, head, act)
    model = build_model(design, CTX)
    assert count_params(model) == design.complexity(CTX).params
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("stem", ["cifar", "resnet"])
@pytest.mark.parametrize("block", list(BLOCKS))
def test_flops_equal_torch_flop_counter(block, stem):
    """torch's FlopCounterMode counts 2 flops per multiply-add of every convolution and matrix product and
    nothing else (no bias, BN, activation, pooling or SE scaling). The counter's flops are multiply-adds
    plus one add per output element of each layer with a bias (pycls's conv2d_cx and linear_cx). Every
    layer with a bias here (the SE convs and the FC) works at 1×1 spatial size on one image, so its bias
    adds equal its bias parameters: counter flops = torch flops / 2 + Σ bias numel, exactly."""
    from torch.utils.flop_counter import FlopCounterMode

    ctx = Context(40, 3, 10)
    design = tiny(block, stem, head=32)
    model = build_model(design, ctx).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 40, 40))
    biases = sum(
        m.bias.numel()
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear) and m.bias is not None
    )
    total = counter.get_total_flops()
    assert total % 2 == 0
    assert total // 2 + biases == design.complexity(ctx).flops


def _pycls_rule(ws, bms, gs):
    """pycls's adjust_block_compatibility re-typed from its definition (bms: bottleneck multipliers
    = 1 / b; the bottleneck is w · bm). Kept apart from regspace.design on purpose."""
    vs = [int(max(1, w * bm)) for w, bm in zip(ws, bms)]
    gs = [int(min(g, v)) for g, v in zip(gs, vs)]
    ms = [math.lcm(g, int(bm)) if bm > 1 else g for g, bm in zip(gs, bms)]
    vs = [max(m, int(round(v / m) * m)) for v, m in zip(vs, ms)]
    ws = [int(v / bm) for v, bm in zip(vs, bms)]
    return ws, gs


def test_compatibility_rule_is_pycls_rule():
    ws = np.arange(1, 130)
    for b in (0.25, 0.5, 1.0, 2.0, 4.0):
        for g in (1, 2, 3, 4, 6, 8, 16, 24, 32):
            mine_w, mine_g = make_compatible(ws, np.full(len(ws), b), np.full(len(ws), g))
            theirs_w, theirs_g = _pycls_rule(ws.tolist(), [1 / b] * len(ws), [g] * len(ws))
            assert mine_w.tolist() == theirs_w and mine_g.tolist() == theirs_g, (b, g)
            for w, gw in zip(mine_w.tolist(), mine_g.tolist()):
                assert (w / b) == int(w / b) and int(w / b) % gw == 0  # buildable
                Design((w,), (1,), (b,), (gw,))  # the constructor accepts what the rule gives


def test_the_issue_example_and_the_constructor_message():
    from regspace.specs import parse_design

    d, _ = parse_design("anynet:d=1;w=10;b=0.5;g=3", stem=get_stem("imagenet"))
    assert (d.widths, d.group_widths) == ((9,), (3,))
    conv = build_model(d, Context()).stages[0][0].f[3]
    assert (conv.in_channels, conv.groups) == (18, 6)
    with pytest.raises(UsageProblem, match="compatibility rule gives w=9, g=3") as e:
        Design((10,), (1,), (0.5,), (3,))
    assert "from_sampled" not in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("block", list(BLOCKS))
def test_batch_counts_what_its_designs_count(block):
    rng = np.random.default_rng(0)
    n, k = 64, 5
    ws = rng.integers(1, 40, (n, k)) * 8
    ds = rng.integers(1, 4, (n, k))
    bs = rng.choice([0.25, 0.5, 1, 2, 4], (n, k))
    gs = rng.choice([1, 2, 3, 8], (n, k))
    strides = rng.choice([1, 2], (n, k))
    kernels = rng.choice([3, 5, 7], (n, k))
    expansions = rng.choice([1, 3, 6], (n, k)).astype(float)
    batch = DesignBatch.from_sampled(
        ws,
        ds,
        bs,
        gs,
        se_ratio=BLOCKS[block],
        stem=get_stem("resnet", 24),
        block=block,
        strides=strides,
        kernels=kernels,
        expansions=expansions,
        head_width=64,
        activation="silu",
    )
    ctx = Context(64, 3, 100)
    cx = batch.complexity(ctx)
    ids = batch.model_ids(ctx)
    for i in range(n):
        one = batch.design(i).complexity(ctx)
        assert (one.flops, one.params, one.acts) == (cx.flops[i], cx.params[i], cx.acts[i])
        assert batch.design(i).model_id(ctx) == ids[i]


def test_defaults_keep_ids_and_new_fields_change_them():
    base = Design((16, 32), (1, 2), (1.0, 2.0), (8, 8), se_ratio=0.25, stem=get_stem("cifar"))
    assert base.model_id(Context(32, 3, 10)) == "0b5f88a0310e6bd0"  # the id before these fields existed
    explicit = Design(
        base.widths,
        base.depths,
        base.bottleneck_ratios,
        base.group_widths,
        0.25,
        base.stem,
        "Y",
        (2, 2),
        (3, 3),
        (1.0, 1.0),
        0,
        "relu",
    )
    assert explicit == base
    ids = {base.model_id(CTX)}
    for change in (
        dict(strides=(1, 2)),
        dict(head_width=64),
        dict(activation="silu"),
        dict(stem=get_stem("cifar", 24)),
        dict(stem=get_stem("resnet")),
    ):
        ids.add(Design(**{**base.__dict__, **change}).model_id(CTX))
    assert len(ids) == 6
    mb = Design.from_sampled([16, 32], [1, 2], 1.0, 1, block="MB", stem=get_stem("cifar"))
    mb_ids = {Design(**{**mb.__dict__, **change}).model_id(CTX)
              for change in ({}, dict(kernels=(3, 5)), dict(expansions=(1.0, 2.0)))}  # fmt: skip
    assert len(mb_ids) == 3


@pytest.mark.parametrize("block, unused", [("V", "b"), ("R", "g"), ("X", "k"), ("Y", "e"), ("MB", "g")])
def test_one_network_one_id_whatever_its_block_does_not_read(block, unused):
    """A parameter the block does not read cannot make a second design (nor a second id) of one network:
    from_sampled sets it neutral; a Design built with another value is refused; so is the text form."""
    se = 0.25 if block in ("Y", "MB") else 0.0
    plain = Design.from_sampled([16, 32], [1, 2], 1.0, 1 if block in ("MB", "V", "R") else 8, se_ratio=se,
                                block=block, stem=get_stem("cifar"))  # fmt: skip
    other = {"b": dict(bottleneck_ratios=2.0), "g": dict(group_widths=4), "k": dict(kernels=5),
             "e": dict(expansions=6.0)}[unused]  # fmt: skip
    sampled = Design.from_sampled([16, 32], [1, 2], **{"bottleneck_ratios": 1.0, "group_widths": plain.group_widths,
                                  **other}, se_ratio=se, block=block, stem=get_stem("cifar"))  # fmt: skip
    assert sampled == plain and sampled.model_id(CTX) == plain.model_id(CTX)
    attribute = next(iter(other))
    value = other[attribute]
    with pytest.raises(UsageProblem, match=f"block {block} has no {unused}"):
        Design(**{**plain.__dict__, attribute: (value,) * 2})
    spec = f"anynet:d=1,2;w=16,32;block={block};se={se};{unused}={value:g}"
    with pytest.raises(UsageProblem, match=f"block {block} has no {unused}"):
        parse_design(spec, stem=get_stem("cifar"))


def test_zero_init_last_bn_of_each_residual_branch():
    torch.manual_seed(0)
    for block, expect in (("V", 0), ("R", 3), ("X", 3), ("MB", 2)):
        d = Design.from_sampled(
            [16, 16],
            [1, 2],
            1.0,
            16,
            stem=get_stem("cifar", 16),
            block=block,
            strides=[1, 2],
            se_ratio=0.25 if block == "MB" else 0.0,
        )
        model = build_model(d, CTX, zero_init_final_gamma=True)
        zeroed = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) and (m.weight == 0).all()]
        # V: no residual; R/X: each block's last BN; MB: the projection BN of blocks with a residual
        # (stage 1's block, 16 -> 16 at s1, and stage 2's second block; not stage 2's strided first).
        assert len(zeroed) == expect, block
        if block == "R":
            assert all(b.f[4] in zeroed for stage in model.stages for b in stage)


FMNIST = Path("/usr/share/datasets/fashion-mnist")


def _fashion_mnist(n):
    with gzip.open(FMNIST / "train-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16)[: n * 784].reshape(n, 1, 28, 28)
    with gzip.open(FMNIST / "train-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    x = (x.astype(np.float32) / 255.0 - 0.286) / 0.353
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))


@pytest.mark.slow
@pytest.mark.skipif(not FMNIST.exists(), reason="no Fashion-MNIST on this machine")
@pytest.mark.parametrize("block", list(BLOCKS))
def test_each_block_kind_learns_fashion_mnist(block):
    torch.manual_seed(0)
    x, y = _fashion_mnist(512)
    d = Design.from_sampled(
        [16, 32],
        [1, 1],
        0.5 if block in "XY" else 1.0,
        4 if block in "XY" else 1,
        se_ratio=BLOCKS[block],
        stem=get_stem("cifar", 8),
        block=block,
        expansions=[1, 4],
        strides=[2, 2],
    )
    model = build_model(d, Context(28, 1, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True)
    losses = []
    for step in range(24):
        i = torch.arange(step * 64, step * 64 + 64) % 512
        loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-4:]) < 0.75 * np.mean(losses[:4]), losses  # ~1.3 against ~2.3


def _choice(*values):
    return {"dist": "choice", "values": list(values)}


TOML_SPACES = [
    # the issue's case: b < 1 with a g that does not divide the bottleneck before the rule
    {"name": "t_inv", "base": "X_c", "params": {"b": _choice(0.5), "g": _choice(3)}},
    {"name": "t_dw", "base": "Y_a", "params": {"b": _choice(0.25, 0.5, 4), "g": _choice(1, 3, 5)}},
    {"name": "t_rg", "family": "regnet", "params": {"b": _choice(0.5), "g": _choice(3, 6)}},
]


@pytest.mark.parametrize("spec", TOML_SPACES, ids=lambda s: s["name"])
def test_every_sampled_design_of_a_toml_space_is_buildable(spec):
    """Every design a space stores is buildable, and its module has the counter's parameters."""
    from regspace.spaces.custom import space_from_dict

    space = space_from_dict(spec)
    batch, valid = space.derive(space.draw(np.random.default_rng(1), 2048), get_stem("cifar"))
    cx = batch.complexity(CTX)
    idx = np.flatnonzero(valid & (cx.params < 2_000_000))[:4]
    assert len(idx) == 4
    for i in idx:
        design = batch.design(int(i))  # the constructor refuses a bottleneck that is not a multiple of g
        assert count_params(build_model(design, CTX)) == cx.params[i]
