"""NDS's standard design spaces (NDS §3, Table 1; docs/design.md §2): Vanilla, ResNet, ResNeXt-A and
ResNeXt-B in the CIFAR setting — three stages with strides 1, 2, 2 after the preset's stem.

Per stage i, independently and uniformly over a finite list: depth d_i and width w_i, and for ResNeXt the
bottleneck ratio b_i (bottleneck width w_i / b_i) and the *number* of groups of the 3×3 conv. NDS writes a
domain as (a, b, n), n values from a to b spaced about evenly in log space; the lists below are those
values (docs/design.md §2 says which were checked against which source).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from regspace.blocks import get_block
from regspace.design import DesignBatch, Stem
from regspace.spaces.anynet import AnyNetSpace
from regspace.spaces.distributions import Param

NDS_STRIDES = (1, 2, 2)  # pycls's CIFAR ResNet: stage 1 keeps the stem's resolution

# Vanilla and ResNet: d (1, 24, 9), w (16, 256, 12).
NDS_D = Param("d", "choice", values=(1, 2, 3, 4, 6, 8, 12, 16, 24))
NDS_W = Param("w", "choice", values=(16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256))
# ResNeXt-A: d (1, 16, 5), w (16, 256, 5), b (1, 4, 3), groups (1, 4, 3).
# ResNeXt-B: d (1, 16, 5), w (64, 1024, 5), b (1, 4, 3), groups (1, 16, 5).
RESNEXT_D = Param("d", "choice", values=(1, 2, 4, 8, 16))
RESNEXT_A_W = Param("w", "choice", values=(16, 32, 64, 128, 256))
RESNEXT_B_W = Param("w", "choice", values=(64, 128, 256, 512, 1024))
RESNEXT_B = Param("b", "choice", values=(1, 2, 4))
RESNEXT_A_GROUPS = Param("g", "choice", values=(1, 2, 4))
RESNEXT_B_GROUPS = Param("g", "choice", values=(1, 2, 4, 8, 16))


@dataclass(frozen=True)
class NDSSpace(AnyNetSpace):
    """Per-stage d_i, w_i (and for ResNeXt b_i and groups_i), each uniform over its list.

    ``g`` here is NDS's number of groups, drawn as such; the design's group width (channels per group,
    regspace's g everywhere else, and the store's g_i columns) is (w_i / b_i) / groups_i, an integer for
    every value in these lists. V and R blocks have no b or g: ``b`` and ``g`` are None.
    """

    stages: int = 3
    d: Param = NDS_D
    w: Param = NDS_W
    b: Param | None = None
    g: Param | None = None
    strides: tuple[int, ...] = NDS_STRIDES

    family = "nds"

    def params(self) -> list[Param]:
        return [p for p in (self.d, self.w, self.b, self.g) if p is not None]

    def for_block(self, block: str) -> NDSSpace:
        """For a user-defined NDS space: blocks that read b and g draw them (ResNeXt-A's laws unless this
        space has its own); V and R blocks have none."""
        if {"b", "g"} & get_block(block).uses:
            return self if self.b is not None else dataclasses.replace(self, b=RESNEXT_B, g=RESNEXT_A_GROUPS)
        return dataclasses.replace(self, b=None, g=None)

    def group_widths(self, raw) -> tuple[np.ndarray, np.ndarray]:
        """(b, group width), each (N, stages): ones for blocks without a bottleneck."""
        w = np.asarray(raw["w"], dtype=np.int64)
        if self.b is None:
            return np.ones(w.shape), np.ones(w.shape, dtype=np.int64)
        b = np.asarray(raw["b"], dtype=np.float64)
        bottleneck = np.rint(w / b).astype(np.int64)
        # at least 1: a user-defined space may draw more groups than bottleneck channels
        return b, np.maximum(1, bottleneck // np.asarray(raw["g"], dtype=np.int64))

    def derive(self, raw, stem: Stem):
        b, g = self.group_widths(raw)
        n = len(b)
        batch = DesignBatch.from_sampled(
            raw["w"],
            raw["d"],
            b,
            g,
            se_ratio=self.se_ratio,
            stem=stem,
            block=self.block,
            strides=np.broadcast_to(np.asarray(self.strides), (n, self.stages)),
            head_width=self.head_width,
            activation=self.activations(raw),
        )
        return batch, raw["_valid"]

    def columns(self, raw):
        b, g = self.group_widths(raw)
        cols = {}
        for i in range(self.stages):
            cols[f"d{i + 1}"] = raw["d"][:, i]
            cols[f"w{i + 1}"] = raw["w"][:, i]
            if self.b is not None:
                cols[f"b{i + 1}"] = b[:, i]
                cols[f"g{i + 1}"] = g[:, i]
        return cols

    def parameter_rows(self) -> list[tuple[str, str]]:
        names = {"g": "groups"}  # NDS's number of groups, not a group width
        return [(names.get(name, name), text) for name, text in super().parameter_rows()]


NDS_SPACES = [
    NDSSpace(
        name="Vanilla",
        title="Vanilla",
        se_ratio=0.0,
        dof=6,
        aliases=("NDS-Vanilla",),
        description="NDS: V blocks (two 3×3 conv, no residual), 3 stages, d (1, 24, 9), w (16, 256, 12)",
        block="V",
    ),
    NDSSpace(
        name="ResNet",
        title="ResNet",
        se_ratio=0.0,
        dof=6,
        aliases=("NDS-ResNet",),
        description="NDS: residual basic blocks (R), 3 stages, d (1, 24, 9), w (16, 256, 12)",
        block="R",
    ),
    NDSSpace(
        name="ResNeXt-A",
        title="ResNeXt-A",
        se_ratio=0.0,
        dof=12,
        aliases=("NDS-ResNeXt-A",),
        description="NDS: X blocks, 3 stages, d (1, 16, 5), w (16, 256, 5), b (1, 4, 3), groups (1, 4, 3)",
        block="X",
        d=RESNEXT_D,
        w=RESNEXT_A_W,
        b=RESNEXT_B,
        g=RESNEXT_A_GROUPS,
    ),
    NDSSpace(
        name="ResNeXt-B",
        title="ResNeXt-B",
        se_ratio=0.0,
        dof=12,
        aliases=("NDS-ResNeXt-B",),
        description="NDS: X blocks, 3 stages, d (1, 16, 5), w (64, 1024, 5), b (1, 4, 3), groups (1, 16, 5)",
        block="X",
        d=RESNEXT_D,
        w=RESNEXT_B_W,
        b=RESNEXT_B,
        g=RESNEXT_B_GROUPS,
    ),
]
