import numpy as np
import pytest

from regspace.design import STEMS, Context, Design, DesignBatch
from regspace.presets import PRESETS
from regspace.spaces import SPACES


def test_tiny_network_by_hand():
    """One stage (w=8, d=1, b=1, g=8) after a cifar stem at 8×8×1, 2 classes, counted by hand."""
    design = Design((8,), (1,), (1.0,), (8,), stem=STEMS["cifar"])
    cx = design.complexity(Context(resolution=8, in_channels=1, num_classes=2))
    # stem 9216 | shortcut 2048 | 1x1 8192 | 3x3/s2 9216 | 1x1 1024 | fc 18
    assert cx.flops == 29714
    assert cx.params == 144 + 32 + 128 + 16 + 128 + 16 + 576 + 16 + 64 + 16 + 18
    assert cx.acts == 1024 + 128 + 512 + 128 + 128 + 2


def test_se_block_counts_its_convs_at_one_by_one():
    x = Design((8,), (1,), (1.0,), (8,), se_ratio=0.0, stem=STEMS["cifar"])
    y = Design((8,), (1,), (1.0,), (8,), se_ratio=0.25, stem=STEMS["cifar"])
    ctx = Context(8, 1, 2)
    w_se = round(0.25 * 16)  # on the block *input* width (the stem's 16)
    extra_params = 8 * w_se + w_se + w_se * 8 + 8
    assert y.complexity(ctx).params - x.complexity(ctx).params == extra_params
    assert y.complexity(ctx).flops - x.complexity(ctx).flops == extra_params
    assert y.complexity(ctx).acts - x.complexity(ctx).acts == w_se + 8


def _by_hand(h1: int, h2: int, h3: int) -> tuple[int, int, int]:
    """(flops, params, acts) of Design((16, 32), (1, 1), b=1, g=16) with the imagenet stem and 10 classes,
    written out layer by layer for side lengths h1 (after the stem), h2 (stage 1), h3 (stage 2)."""
    a1, a2, a3 = h1 * h1, h2 * h2, h3 * h3
    layers = [  # (flops, params, acts); BN adds 2·channels params
        (27 * 32 * a1, 27 * 32 + 64, 32 * a1),  # stem 3x3, 3 -> 32, stride 2
        (32 * 16 * a2, 32 * 16 + 32, 16 * a2),  # stage 1 projection 1x1, 32 -> 16, stride 2
        (32 * 16 * a1, 32 * 16 + 32, 16 * a1),  # 1x1, 32 -> 16 (w_b = 16)
        (9 * 16 * 16 * a2, 9 * 16 * 16 + 32, 16 * a2),  # 3x3, stride 2, 1 group (g = 16 = w_b)
        (16 * 16 * a2, 16 * 16 + 32, 16 * a2),  # 1x1, 16 -> 16
        (16 * 32 * a3, 16 * 32 + 64, 32 * a3),  # stage 2 projection 1x1, 16 -> 32, stride 2
        (16 * 32 * a2, 16 * 32 + 64, 32 * a2),  # 1x1, 16 -> 32 (w_b = 32)
        (9 * 32 * 32 * a3 // 2, 9 * 32 * 32 // 2 + 64, 32 * a3),  # 3x3, stride 2, 2 groups of 16
        (32 * 32 * a3, 32 * 32 + 64, 32 * a3),  # 1x1, 32 -> 32
        (32 * 10 + 10, 32 * 10 + 10, 10),  # head FC with bias
    ]
    return tuple(sum(x[i] for x in layers) for i in range(3))


@pytest.mark.parametrize(
    "resolution,sides", [(224, (112, 56, 28)), (225, (113, 57, 29)), (226, (113, 57, 29)), (7, (4, 2, 1))]
)
def test_odd_resolution_uses_ceiling_division(resolution, sides):
    """Each strided layer maps h to (h - 1) // 2 + 1: 225 -> 113 -> 57 -> 29, not 112 -> 56 -> 28."""
    d = Design((16, 32), (1, 1), (1.0, 1.0), (16, 16), stem=STEMS["imagenet"])
    cx = d.complexity(Context(resolution, 3, 10))
    assert (cx.flops, cx.params, cx.acts) == _by_hand(*sides)


@pytest.mark.parametrize("name", list(SPACES))
def test_batch_equals_one_at_a_time(name):
    space = SPACES[name]
    rng = np.random.default_rng(1)
    raw = space.draw(rng, 256)
    batch, valid = space.derive(raw, STEMS["cifar"])
    ctx = PRESETS["cifar"].context
    cx = batch.complexity(ctx)
    for i in np.flatnonzero(valid)[:20]:
        one = batch.design(int(i)).complexity(ctx)
        assert (one.flops, one.params, one.acts) == (cx.flops[i], cx.params[i], cx.acts[i])


def test_batch_model_ids_match_design_ids():
    space = SPACES["X_c"]
    raw = space.draw(np.random.default_rng(0), 16)
    batch, _ = space.derive(raw, STEMS["imagenet"])
    ctx = Context()
    assert batch.model_ids(ctx) == [batch.design(i).model_id(ctx) for i in range(16)]


def test_design_rejects_incompatible_groups():
    from regspace.errors import UsageProblem

    with pytest.raises(UsageProblem):
        Design((24,), (1,), (1.0,), (16,))
    d = Design.from_sampled([24], [1], 1.0, 16)
    assert d.widths == (32,) and d.group_widths == (16,)


def test_batch_from_sampled_is_the_same_rule():
    w = np.array([[24, 56, 152, 368], [8, 16, 24, 1000]])
    b = np.array([[1, 1, 1, 1], [4, 4, 4, 4]], dtype=float)
    g = np.array([[16, 16, 16, 16], [32, 32, 32, 32]])
    batch = DesignBatch.from_sampled(w, [[1] * 4] * 2, b, g, se_ratio=0.0, stem=STEMS["cifar"])
    for i in range(2):
        one = Design.from_sampled(w[i].tolist(), [1] * 4, b[i].tolist(), g[i].tolist(), stem=STEMS["cifar"])
        assert batch.design(i) == one
