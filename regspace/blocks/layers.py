"""Exact analytic complexity of the layers every block is made of (docs/design.md §4).

flops are multiply-adds, params the parameter count, acts the output activations of every conv and FC.
Each function counts one layer and mirrors one constructor in :mod:`regspace.blocks.torch_layers`
(same name); the test suite proves the two agree (module parameter count == analytic params) for every
space. The functions are pure, and every argument may be a Python int or a numpy int64 array: one code
path serves a single design and a batch of a million sampler candidates. Nothing here imports torch.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Cx(NamedTuple):
    """Walk state: spatial size (h, w) and the running totals; each () or (N,)."""

    h: object
    w: object
    flops: object = 0
    params: object = 0
    acts: object = 0


def where(mask, a: Cx, b: Cx) -> Cx:
    """``a`` where ``mask`` holds, else ``b`` (mask: a bool, or an (N,) array for a batch)."""
    if isinstance(mask, (bool, np.bool_)):
        return a if mask else b
    return Cx(*(np.where(mask, x, y) for x, y in zip(a, b)))


def repeat(first: Cx, rest: Cx, n) -> Cx:
    """``first`` followed by ``n`` more layers (or blocks) costing ``rest`` each; the size is first's."""
    return Cx(
        first.h, first.w, first.flops + n * rest.flops, first.params + n * rest.params, first.acts + n * rest.acts
    )


def conv2d(cx: Cx, w_in, w_out, k: int, *, stride=1, groups=1, bias: bool = False) -> Cx:
    """k×k convolution, padding k//2: h <- (h-1)//stride + 1."""
    h = (cx.h - 1) // stride + 1
    w = (cx.w - 1) // stride + 1
    flops = k * k * w_in * w_out * h * w // groups + (w_out * h * w if bias else 0)
    params = k * k * w_in * w_out // groups + (w_out if bias else 0)
    return Cx(h, w, cx.flops + flops, cx.params + params, cx.acts + w_out * h * w)


def norm2d(cx: Cx, channels) -> Cx:
    """BatchNorm: a scale and a shift per channel; no flops or acts counted."""
    return cx._replace(params=cx.params + 2 * channels)


def gap2d(cx: Cx) -> Cx:
    """Global average pooling: spatial size becomes 1×1, nothing counted."""
    return cx._replace(h=cx.h * 0 + 1, w=cx.w * 0 + 1)


def linear(cx: Cx, w_in, w_out, *, bias: bool = True) -> Cx:
    flops = w_in * w_out + (w_out if bias else 0)
    return cx._replace(flops=cx.flops + flops, params=cx.params + flops, acts=cx.acts + w_out)


def pool2d(cx: Cx, channels, k: int, *, stride=1) -> Cx:
    """k×k max-pool, padding k//2: no flops or params; its output counts as acts (as pycls)."""
    h = (cx.h - 1) // stride + 1
    w = (cx.w - 1) // stride + 1
    return Cx(h, w, cx.flops, cx.params, cx.acts + channels * h * w)


def stem(cx: Cx, in_channels, stem) -> Cx:
    """The stem (a design.Stem): k×k conv (stem.kernel, stem.stride), BN, activation [, 3×3 max-pool s2]."""
    cx = norm2d(conv2d(cx, in_channels, stem.width, stem.kernel, stride=stem.stride), stem.width)
    return pool2d(cx, stem.width, 3, stride=2) if stem.pool else cx


def squeeze_excitation(cx: Cx, w_b, w_se) -> Cx:
    """SE on w_b channels: two 1×1 convs with bias at 1×1; the spatial size is then restored."""
    inner = conv2d(conv2d(gap2d(cx), w_b, w_se, 1, bias=True), w_se, w_b, 1, bias=True)
    return inner._replace(h=cx.h, w=cx.w)


def projection(cx: Cx, w_in, w_out, stride) -> Cx:
    """The projection shortcut: a strided 1×1 conv + BN from the block input, counted where the shape changes
    (w_in != w_out or stride != 1). The returned size is the input's: the block's main path sets it."""
    proj = (w_in != w_out) | (stride != 1)
    return where(proj, norm2d(conv2d(cx, w_in, w_out, 1, stride=stride), w_out)._replace(h=cx.h, w=cx.w), cx)


def head(cx: Cx, w_in, num_classes, head_width: int = 0) -> Cx:
    """[1×1 conv to head_width, BN, activation, when head_width > 0], global average pool, then a fully
    connected layer with bias."""
    if head_width:
        cx = norm2d(conv2d(cx, w_in, head_width, 1), head_width)
        w_in = head_width
    return linear(gap2d(cx), w_in, num_classes, bias=True)
