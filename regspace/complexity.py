"""Exact analytic complexity of AnyNet networks (docs/design.md §4): flops (multiply-adds), params, acts.

Each function counts one layer and mirrors one constructor in ``regspace.models.anynet``; the
test suite proves the two agree (module parameter count == analytic params) for every space.

The functions are pure and written so that every argument may be a Python int or a numpy int64
array: one code path serves a single design and a batch of a million sampler candidates.
Nothing here imports torch.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Cx(NamedTuple):
    """Walk state: spatial size (h, w) and the running totals."""

    h: object
    w: object
    flops: object = 0
    params: object = 0
    acts: object = 0


def _where(mask, a: Cx, b: Cx) -> Cx:
    if isinstance(mask, (bool, np.bool_)):
        return a if mask else b
    return Cx(*(np.where(mask, x, y) for x, y in zip(a, b)))


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


def stem(cx: Cx, in_channels, width, stride) -> Cx:
    """3×3 conv (stride from the stem preset), BN, ReLU."""
    return norm2d(conv2d(cx, in_channels, width, 3, stride=stride), width)


def squeeze_excitation(cx: Cx, w_b, w_se) -> Cx:
    """SE on w_b channels: two 1×1 convs with bias at 1×1; the spatial size is then restored."""
    inner = conv2d(conv2d(gap2d(cx), w_b, w_se, 1, bias=True), w_se, w_b, 1, bias=True)
    return inner._replace(h=cx.h, w=cx.w)


def bottleneck_width(w_out, b):
    """w_b = round(w / b), half-to-even as Python's round."""
    return np.round(np.asarray(w_out) / b).astype(np.int64)


def se_width(w_in, se_ratio: float):
    """w_se = round(se_ratio * w_in), on the *block input* width."""
    return np.round(se_ratio * np.asarray(w_in)).astype(np.int64)


def block(cx: Cx, w_in, w_out, stride, b, g, se_ratio: float) -> Cx:
    """X block (Y block when se_ratio > 0): projection shortcut, 1×1, 3×3 group conv, [SE], 1×1."""
    w_b = bottleneck_width(w_out, b)
    proj = (w_in != w_out) | (stride != 1)
    shortcut = norm2d(conv2d(cx, w_in, w_out, 1, stride=stride), w_out)._replace(h=cx.h, w=cx.w)
    cx = _where(proj, shortcut, cx)
    cx = norm2d(conv2d(cx, w_in, w_b, 1), w_b)
    cx = norm2d(conv2d(cx, w_b, w_b, 3, stride=stride, groups=w_b // g), w_b)
    if se_ratio:
        cx = squeeze_excitation(cx, w_b, se_width(w_in, se_ratio))
    return norm2d(conv2d(cx, w_b, w_out, 1), w_out)


def stage(cx: Cx, w_in, w_out, d, b, g, se_ratio: float, stride=2) -> Cx:
    """d blocks: the first one strided (w_in -> w_out), then d-1 identical (w_out -> w_out) blocks."""
    first = block(cx, w_in, w_out, stride, b, g, se_ratio)
    rest = block(Cx(first.h, first.w), w_out, w_out, 1, b, g, se_ratio)
    n = d - 1
    return Cx(
        first.h,
        first.w,
        first.flops + n * rest.flops,
        first.params + n * rest.params,
        first.acts + n * rest.acts,
    )


def head(cx: Cx, w_in, num_classes) -> Cx:
    """Global average pool, then a fully connected layer with bias."""
    return linear(gap2d(cx), w_in, num_classes, bias=True)


def network(
    widths,
    depths,
    bottleneck_ratios,
    group_widths,
    *,
    se_ratio: float,
    stem_width: int,
    stem_stride: int,
    resolution: int,
    in_channels: int,
    num_classes: int,
) -> Cx:
    """Complexity of a whole network.

    ``widths``, ``depths``, ``bottleneck_ratios`` and ``group_widths`` are (n_stages,) sequences for
    one design or (N, n_stages) arrays for N designs at once; the result's fields have shape () or (N,).
    """
    widths = np.asarray(widths, dtype=np.int64)
    depths = np.asarray(depths, dtype=np.int64)
    bs = np.asarray(bottleneck_ratios, dtype=np.float64)
    gs = np.asarray(group_widths, dtype=np.int64)
    zeros = np.zeros(widths.shape[:-1], dtype=np.int64)
    cx = Cx(zeros + resolution, zeros + resolution, zeros, zeros, zeros)
    cx = stem(cx, in_channels, stem_width, stem_stride)
    w_in = zeros + stem_width
    for i in range(widths.shape[-1]):
        w = widths[..., i]
        cx = stage(cx, w_in, w, depths[..., i], bs[..., i], gs[..., i], se_ratio)
        w_in = w
    return head(cx, w_in, num_classes)
