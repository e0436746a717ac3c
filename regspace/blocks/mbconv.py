"""MBConv, the mobile inverted bottleneck (MobileNetV2; EfficientNet; pycls's effnet.MBConv): MB.

[1×1 conv to w_exp = int(w_in · e), BN, activation — only when w_exp != w_in], depthwise k×k conv
(stride s), BN, activation, [SE on the w_exp channels with w_se = int(w_in · se_ratio) — when w_se > 0],
linear 1×1 projection to w_out, BN; the residual x + f(x) (no activation after it) when s = 1 and
w_in == w_out. Reads e, k, se_ratio and the activation (default silu). :func:`count` and :func:`build`
describe the same block, layer for layer.
"""

from __future__ import annotations

import numpy as np

from regspace.blocks import BlockKind
from regspace.blocks import layers as L


def expanded_width(w_in, e):
    """w_exp = int(w_in · e), truncated as pycls."""
    return np.trunc(np.asarray(w_in) * np.asarray(e)).astype(np.int64)


def se_width(w_in, se_ratio: float):
    """w_se = int(w_in · se_ratio), on the *block input* width, truncated as pycls."""
    return np.trunc(np.asarray(w_in) * se_ratio).astype(np.int64)


def count(cx: L.Cx, w_in, w_out, stride, p: dict) -> L.Cx:
    """Complexity of one block; vectorised over batches (w_in, w_out, stride, p['e'], p['k'] may be (N,) arrays)."""
    w_exp = expanded_width(w_in, p["e"])
    cx = L.where(w_exp != w_in, L.norm2d(L.conv2d(cx, w_in, w_exp, 1), w_exp), cx)
    cx = L.norm2d(L.conv2d(cx, w_exp, w_exp, p["k"], stride=stride, groups=w_exp), w_exp)
    if p["se_ratio"]:
        # w_se = 0 adds nothing (the SE is left out): its convs would count 0 weights and w_exp + 0 biases.
        w_se = se_width(w_in, p["se_ratio"])
        cx = L.where(w_se > 0, L.squeeze_excitation(cx, w_exp, w_se), cx)
    return L.norm2d(L.conv2d(cx, w_exp, w_out, 1), w_out)


def build(w_in: int, w_out: int, stride: int, p: dict):
    """The block's nn.Module (imports torch)."""
    from regspace.blocks import torch_layers as T

    act = p["activation"]
    w_exp = int(expanded_width(w_in, p["e"]))
    layers = [T.conv(w_in, w_exp, 1), T.norm(w_exp), T.activation(act)] if w_exp != w_in else []
    layers += [T.conv(w_exp, w_exp, int(p["k"]), stride=stride, groups=w_exp), T.norm(w_exp), T.activation(act)]
    w_se = int(se_width(w_in, p["se_ratio"]))
    if w_se:
        layers.append(T.SqueezeExcitation(w_exp, w_se, act))
    layers += [T.conv(w_exp, w_out, 1), T.norm(w_out)]
    return T.Inverted(layers, skip=stride == 1 and w_in == w_out)


KINDS = (
    BlockKind(
        "MB",
        "MBConv: 1×1 expansion by e, depthwise k×k, SE, linear 1×1 projection, residual where the shape allows",
        count,
        build,
        activation="silu",
    ),
)
