"""An MBConv AnyNet space laid out as EfficientNet-B0, and its ladder MB_a → MB_e (docs/design.md §2).

MB_a draws, per stage and independently, d_i ∈ {1…4}, w_i ∈ {8, 16, …, 320}, expansion e_i ∈ {1, 3, 6}
and depthwise kernel k_i ∈ {3, 5}; every design has EfficientNet-B0's seven stages (strides 1, 2, 2, 2, 1,
2, 1), a 32-channel stem of the preset's kind, a 1280-channel 1×1 head conv, SE ratio 0.25 of the block
input width and SiLU/Swish throughout (EfficientNet §4, Table 1; pycls configs/dds_baselines/effnet).
The ladder adds one constraint at a time, as DDS §3.2 does for X_a → X_e: shared e, shared k,
non-decreasing widths, non-decreasing depths.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from regspace.design import DesignBatch, Stem
from regspace.spaces.anynet import AnyNetSpace
from regspace.spaces.distributions import Param

EN_STRIDES = (1, 2, 2, 2, 1, 2, 1)  # EfficientNet-B0's stage strides
EN_STEM_WIDTH = 32
EN_HEAD_WIDTH = 1280
EN_SE_RATIO = 0.25

MB_D = Param("d", "uniform", 1, 4, 1)
MB_W = Param("w", "uniform", 8, 320, 8)
MB_E = Param("e", "choice", values=(1, 3, 6))
MB_K = Param("k", "choice", values=(3, 5))

MB_STAGE_PARAMS = ("d", "w", "e", "k")


@dataclass(frozen=True)
class MBConvSpace(AnyNetSpace):
    """Per-stage d_i, w_i, e_i, k_i of MB blocks; optionally shared across stages or non-decreasing.

    The draw (shared, non-decreasing by the stars-and-bars law) is AnyNet's; b and g do not apply to MB
    blocks and are neither drawn nor stored.
    """

    stages: int = len(EN_STRIDES)
    d: Param = MB_D
    w: Param = MB_W
    e: Param = MB_E
    k: Param = MB_K
    strides: tuple[int, ...] = EN_STRIDES
    stem_width: int = EN_STEM_WIDTH
    head_width: int = EN_HEAD_WIDTH
    activation: str = "silu"

    family = "mbconv"

    def params(self) -> list[Param]:
        return [self.d, self.w, self.e, self.k]

    def derive(self, raw, stem: Stem):
        n = len(raw["d"])
        ones = np.ones((n, self.stages))
        batch = DesignBatch.from_sampled(
            raw["w"],
            raw["d"],
            ones,
            ones.astype(np.int64),
            se_ratio=self.se_ratio,
            stem=dataclasses.replace(stem, width=self.stem_width),
            block=self.block,
            strides=np.broadcast_to(np.asarray(self.strides), (n, self.stages)),
            kernels=raw["k"],
            expansions=raw["e"],
            head_width=self.head_width,
            activation=self.activations(raw),
        )
        return batch, raw["_valid"]

    def columns(self, raw):
        cols = {}
        for p in MB_STAGE_PARAMS:
            for i in range(self.stages):
                cols[f"{p}{i + 1}"] = raw[p][:, i]
        return cols

    def constraints(self) -> list[str]:
        out = [f"shared {p}" for p in MB_STAGE_PARAMS if p in self.shared]
        out += [f"{p}_i+1 >= {p}_i" for p in MB_STAGE_PARAMS if p in self.increasing]
        out.append("strides " + ", ".join(map(str, self.strides)))
        act = "{" + ", ".join(map(str, self.act.values)) + "}" if self.act is not None else self.activation
        return out + [f"stem {self.stem_width}, head {self.head_width}, activation {act}"]


def _mb_ladder() -> list[MBConvSpace]:
    """MB_a → MB_e: each step adds one constraint to the previous one."""
    per_stage = len(MB_STAGE_PARAMS) * len(EN_STRIDES)
    steps = [
        ("a", frozenset(), frozenset(), per_stage, "MBConv, EfficientNet-B0 layout: per-stage d, w, e, k"),
        ("b", frozenset({"e"}), frozenset(), per_stage - 6, "MB_a with one shared expansion e"),
        ("c", frozenset({"e", "k"}), frozenset(), per_stage - 12, "shared e and shared kernel k"),
        ("d", frozenset({"e", "k"}), frozenset({"w"}), per_stage - 12, "MB_c with non-decreasing widths"),
        ("e", frozenset({"e", "k"}), frozenset({"w", "d"}), per_stage - 12, "MB_d with non-decreasing depths"),
    ]
    return [
        MBConvSpace(
            name=f"MB_{letter}",
            title=f"AnyNetMB_{letter.upper()}",
            se_ratio=EN_SE_RATIO,
            dof=dof,
            aliases=(f"AnyNetMB_{letter.upper()}", f"AnyNetMB{letter.upper()}"),
            description=desc,
            block="MB",
            shared=shared,
            increasing=increasing,
        )
        for letter, shared, increasing, dof, desc in steps
    ]


MB_SPACES = _mb_ladder()
