"""The residual basic block (ResNet; NDS §4, pycls's ResBasicBlock): R.

act(f(x) + shortcut(x)), f = 3×3 conv (stride s), BN, activation, 3×3 conv, BN; the shortcut is the
identity, or a projection (1×1 conv stride s + BN) where the shape changes. It reads no block parameter
but the activation. :func:`count` and :func:`build` describe the same block, layer for layer.
"""

from __future__ import annotations

from regspace.blocks import BlockKind
from regspace.blocks import layers as L


def count(cx: L.Cx, w_in, w_out, stride, p: dict) -> L.Cx:
    """Complexity of one block; vectorised over batches (w_in, w_out, stride may be (N,) arrays)."""
    cx = L.projection(cx, w_in, w_out, stride)
    cx = L.norm2d(L.conv2d(cx, w_in, w_out, 3, stride=stride), w_out)
    return L.norm2d(L.conv2d(cx, w_out, w_out, 3), w_out)


def build(w_in: int, w_out: int, stride: int, p: dict):
    """The block's nn.Module (imports torch); its final BN is the second one."""
    from regspace.blocks import torch_layers as T

    act = p["activation"]
    proj = T.projection(w_in, w_out, stride)
    layers = [T.conv(w_in, w_out, 3, stride=stride), T.norm(w_out), T.activation(act), T.conv(w_out, w_out, 3)]
    return T.Residual([*layers, T.norm(w_out)], proj, act)


def _no_se(se_ratio):
    return f"block R has no SE (se ratio {se_ratio})" if se_ratio else None


KINDS = (
    BlockKind("R", "residual basic: two 3×3 conv–BN layers and a (projection) shortcut", count, build, check=_no_se),
)
