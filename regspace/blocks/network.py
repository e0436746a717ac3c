"""A network: stem → stages of blocks → head, walked once for both its complexity and its nn.Module.

:func:`stages` is the one walker: it turns a design into per-stage (w_in, w_out, d, stride, block
parameters), and says which blocks a stage holds (the first one at the stage's stride s_i from w_in
to w_out, then d − 1 from w_out to w_out at stride 1). :func:`count` sums the block kind's counter over
it (first block + (d − 1) × the others, vectorised over a DesignBatch); :func:`build_model` calls the
block kind's builder for each block. Importing this module does not import torch; build_model does.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from regspace.blocks import get_block
from regspace.blocks import layers as L


class Stage(NamedTuple):
    """One stage: input and output widths, depth, the first block's stride, and the block parameters
    (each () for one design, or (N,) for a batch)."""

    w_in: object
    w_out: object
    d: object
    stride: object
    params: dict

    def first(self) -> tuple:
        """(w_in, w_out, stride) of the stage's first block."""
        return self.w_in, self.w_out, self.stride

    def rest(self) -> tuple:
        """(w_in, w_out, stride) of each of its d − 1 other blocks."""
        return self.w_out, self.w_out, 1


def stages(design) -> list[Stage]:
    """The stages of ``design`` (a Design, or a DesignBatch: then every value is an (N,) array). The block
    parameters are those ``design.block_params`` names (regspace.design.BLOCK_PARAMS)."""
    widths = np.asarray(design.widths, dtype=np.int64)
    depths = np.asarray(design.depths, dtype=np.int64)
    strides = np.asarray(design.strides, dtype=np.int64)
    per_stage, shared = {}, {}
    for name, (attribute, dtype, is_per_stage) in design.block_params.items():
        if is_per_stage:
            per_stage[name] = np.asarray(getattr(design, attribute), dtype=dtype)
        else:
            shared[name] = getattr(design, attribute)
    w_in = np.zeros(widths.shape[:-1], dtype=np.int64) + design.stem.width
    out = []
    for i in range(widths.shape[-1]):
        params = {k: v[..., i] for k, v in per_stage.items()} | shared
        out.append(Stage(w_in, widths[..., i], depths[..., i], strides[..., i], params))
        w_in = widths[..., i]
    return out


def count(design, context) -> L.Cx:
    """Exact complexity of ``design`` fed by ``context`` (docs/design.md §4): a Cx whose flops, params and
    acts are () int64 for a Design, (N,) int64 for a DesignBatch."""
    kind = get_block(design.block)
    zeros = np.zeros(np.shape(design.widths)[:-1], dtype=np.int64)
    cx = L.Cx(zeros + context.resolution, zeros + context.resolution, zeros, zeros, zeros)
    cx = L.stem(cx, context.in_channels, design.stem)
    w_out = zeros + design.stem.width
    for st in stages(design):
        first = kind.count(cx, *st.first(), st.params)
        rest = kind.count(L.Cx(first.h, first.w), *st.rest(), st.params)
        cx, w_out = L.repeat(first, rest, st.d - 1), st.w_out
    return L.head(cx, w_out, context.num_classes, design.head_width)


def _scalar(x):
    return x.item() if isinstance(x, np.generic | np.ndarray) else x


def build_model(design, context, *, zero_init_final_gamma: bool = False, conv_init: str = "reference"):
    """The nn.Module of one Design fed by ``context`` (imports torch); its parameter count equals
    ``count(design, context).params``. Weights as :func:`regspace.blocks.torch_layers.init_weights`."""
    from regspace.blocks import torch_layers as T

    kind = get_block(design.block)
    stem = T.Stem(context.in_channels, design.stem, design.activation)
    built, w_out = [], design.stem.width
    for st in stages(design):
        p = {k: _scalar(v) for k, v in st.params.items()}
        first, rest = (tuple(_scalar(x) for x in args) for args in (st.first(), st.rest()))
        built.append([kind.build(*first, p)] + [kind.build(*rest, p) for _ in range(int(st.d) - 1)])
        w_out = int(st.w_out)
    head = T.Head(w_out, context.num_classes, design.head_width, design.activation)
    model = T.AnyNet(stem, built, head, design=design, context=context)
    T.init_weights(model, zero_init_final_gamma=zero_init_final_gamma, conv_init=conv_init)
    return model


def count_params(model) -> int:
    """Parameters of an nn.Module."""
    return sum(p.numel() for p in model.parameters())
