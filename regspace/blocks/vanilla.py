"""The vanilla block (NDS §4, pycls's VanillaBlock): V.

[3×3 conv (stride s on the first), BN, activation] × 2 from w_in to w_out, with no residual. It reads no
block parameter but the activation. :func:`count` and :func:`build` describe the same block, layer for layer.
"""

from __future__ import annotations

from regspace.blocks import BlockKind
from regspace.blocks import layers as L


def count(cx: L.Cx, w_in, w_out, stride, p: dict) -> L.Cx:
    """Complexity of one block; vectorised over batches (w_in, w_out, stride may be (N,) arrays)."""
    cx = L.norm2d(L.conv2d(cx, w_in, w_out, 3, stride=stride), w_out)
    return L.norm2d(L.conv2d(cx, w_out, w_out, 3), w_out)


def build(w_in: int, w_out: int, stride: int, p: dict):
    """The block's nn.Module (imports torch)."""
    from regspace.blocks import torch_layers as T

    act = p["activation"]
    return T.Plain(
        T.conv(w_in, w_out, 3, stride=stride),
        T.norm(w_out),
        T.activation(act),
        T.conv(w_out, w_out, 3),
        T.norm(w_out),
        T.activation(act),
    )


def _no_se(se_ratio):
    return f"block V has no SE (se ratio {se_ratio})" if se_ratio else None


KINDS = (BlockKind("V", "vanilla: two 3×3 conv–BN–activation layers, no residual", count, build, check=_no_se),)
