"""The residual bottleneck block (DDS §3.1, Fig. 4): X, and Y = X with squeeze-and-excitation.

1×1 conv to the bottleneck width w_b = round(w_out / b), 3×3 group conv (groups w_b / g, stride s),
[SE on the block's input width], 1×1 conv to w_out; BN after each conv, the activation after the first
two and after the residual sum; a projection shortcut (1×1 conv + BN) where the shape changes (pycls's
ResBottleneckBlock). b < 1 gives the inverted bottleneck (w_b wider than the block, DDS §5) and g = 1 the
depthwise conv; the compatibility rule (design.make_compatible) keeps w_b a multiple of g. :func:`count`
and :func:`build` describe the same block, layer for layer.
"""

from __future__ import annotations

import numpy as np

from regspace.blocks import BlockKind
from regspace.blocks import layers as L


def bottleneck_width(w_out, b):
    """w_b = round(w / b), half-to-even as Python's round."""
    return np.round(np.asarray(w_out) / b).astype(np.int64)


def se_width(w_in, se_ratio: float):
    """w_se = round(se_ratio * w_in), on the *block input* width."""
    return np.round(se_ratio * np.asarray(w_in)).astype(np.int64)


def count(cx: L.Cx, w_in, w_out, stride, p: dict) -> L.Cx:
    """Complexity of one block; vectorised over batches (w_in, w_out, p['b'], p['g'] may be (N,) arrays)."""
    w_b = bottleneck_width(w_out, p["b"])
    cx = L.projection(cx, w_in, w_out, stride)
    cx = L.norm2d(L.conv2d(cx, w_in, w_b, 1), w_b)
    cx = L.norm2d(L.conv2d(cx, w_b, w_b, 3, stride=stride, groups=w_b // p["g"]), w_b)
    if p["se_ratio"]:
        cx = L.squeeze_excitation(cx, w_b, se_width(w_in, p["se_ratio"]))
    return L.norm2d(L.conv2d(cx, w_b, w_out, 1), w_out)


def build(w_in: int, w_out: int, stride: int, p: dict):
    """The block's nn.Module (imports torch)."""
    from regspace.blocks import torch_layers as T

    w_b = int(bottleneck_width(w_out, p["b"]))
    proj = T.projection(w_in, w_out, stride)  # built first, as before: the same seed gives the same weights
    act = p["activation"]
    layers = [
        T.conv(w_in, w_b, 1),
        T.norm(w_b),
        T.activation(act),
        T.conv(w_b, w_b, 3, stride=stride, groups=w_b // p["g"]),
        T.norm(w_b),
        T.activation(act),
    ]
    if p["se_ratio"]:
        layers.append(T.SqueezeExcitation(w_b, int(se_width(w_in, p["se_ratio"])), act))
    layers += [T.conv(w_b, w_out, 1), T.norm(w_out)]
    return T.Residual(layers, proj, act)


KINDS = (
    BlockKind(
        "X",
        "residual bottleneck with group convolution",
        count,
        build,
        check=lambda se_ratio: f"block X has no SE (se ratio {se_ratio}); use block Y" if se_ratio else None,
        id_text="",
    ),
    BlockKind(
        "Y",
        "X with squeeze-and-excitation (se ratio of the block input width)",
        count,
        build,
        check=lambda se_ratio: None if se_ratio > 0 else "block Y needs an se ratio > 0",
        id_text="",
    ),
)
