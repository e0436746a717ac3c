"""RegNet design spaces (DDS §3.3, §4): stage widths and depths from (d, w0, wa, wm)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regspace.design import Design, DesignBatch, Stem
from regspace.errors import UsageProblem
from regspace.spaces.anynet import ANYNET_B, ANYNET_G
from regspace.spaces.base import Space
from regspace.spaces.distributions import Param

WIDTH_QUANTUM = 8


def regnet_block_widths(d, w0, wa, wm, q: int = WIDTH_QUANTUM):
    """DDS §3.3 widths (docs/design.md §3), vectorised over N designs: per-block widths (N, max d) and
    per-block exponents.

    u_j = w0 + wa·j; s_j = round(log(u_j / w0) / log(wm)); w_j = round(w0·wm^s_j / q)·q.
    Entries with j >= d are masked: width 0, exponent -1.
    """
    d = np.atleast_1d(np.asarray(d, dtype=np.int64))
    w0 = np.atleast_1d(np.asarray(w0, dtype=np.float64))[:, None]
    wa = np.atleast_1d(np.asarray(wa, dtype=np.float64))[:, None]
    wm = np.atleast_1d(np.asarray(wm, dtype=np.float64))[:, None]
    j = np.arange(int(d.max()))
    in_block = j < d[:, None]
    u = j * wa + w0
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.round(np.log(u / w0) / np.log(wm))
        w = np.round(w0 * np.power(wm, s) / q).astype(np.int64) * q
    s = np.where(in_block, s, -1).astype(np.int64)
    return np.where(in_block, w, 0), s, in_block, u


def regnet_stages(d, w0, wa, wm, num_stages: int, q: int = WIDTH_QUANTUM):
    """Stage widths and depths (N, num_stages) and a mask of designs that have exactly
    ``num_stages`` stages with no empty stage (the reference sampler's RegNet constraint)."""
    w, s, in_block, _ = regnet_block_widths(d, w0, wa, wm, q)
    new_stage = np.zeros_like(in_block)
    new_stage[:, 1:] = (w[:, 1:] != w[:, :-1]) & in_block[:, 1:]
    n_distinct = 1 + new_stage.sum(axis=1)
    valid = (n_distinct == s.max(axis=1) + 1) & (n_distinct == num_stages)
    stage_of_block = np.cumsum(new_stage, axis=1)
    widths = np.zeros((len(w), num_stages), dtype=np.int64)
    depths = np.zeros((len(w), num_stages), dtype=np.int64)
    for i in range(num_stages):
        m = (stage_of_block == i) & in_block
        depths[:, i] = m.sum(axis=1)
        widths[:, i] = np.where(m, w, 0).max(axis=1)
    return widths, depths, valid


def regnet_design(
    d, w0, wa, wm, *, b=1.0, g=8, se_ratio=0.0, stem: Stem | None = None, block=None, activation=None
) -> Design:
    """One RegNet design from its parameters (any number of stages); activation None: the block's default."""
    if not (d >= 1 and w0 > 0 and wa >= 0 and wm > 1):
        raise UsageProblem(
            f"RegNet parameters need d >= 1, w0 > 0, wa >= 0, wm > 1 (got d={d}, w0={w0}, wa={wa}, wm={wm})"
        )
    if w0 % WIDTH_QUANTUM:
        raise UsageProblem(f"RegNet w0 must be a multiple of {WIDTH_QUANTUM}, got {w0}")
    w, _, _, _ = regnet_block_widths(d, w0, wa, wm)
    widths, depths = np.unique(w[0], return_counts=True)
    return Design.from_sampled(widths, depths, b, g, se_ratio=se_ratio, stem=stem, block=block, activation=activation)


@dataclass(frozen=True)
class RegNetSpace(Space):
    d: Param = Param("d", "uniform", 1, 63, 1)
    w0: Param = Param("w0", "log_uniform", 8, 256, 8)
    wa: Param = Param("wa", "log_uniform", 0.1, 256, 0.1)
    wm: Param = Param("wm", "log_uniform", 1.5, 3, 0.001)
    b: Param = ANYNET_B
    g: Param = ANYNET_G
    num_stages: int = 4

    family = "regnet"

    def params(self) -> list[Param]:
        return [self.d, self.w0, self.wa, self.wm, self.g, self.b]

    def draw(self, rng, n):
        # The reference sampler's order: d, w0, wa, wm, group width, bottleneck.
        return self.draw_act(rng, {p.name: p.draw(rng, n) for p in self.params()}, n)

    def derive(self, raw, stem: Stem):
        k = self.num_stages
        n = len(raw["d"])
        # Cheap necessary condition first: the last block's exponent must be k - 1. The margin keeps
        # the filter conservative; the exact test runs on the survivors only.
        d, w0, wa, wm = (np.asarray(raw[p], dtype=np.float64) for p in ("d", "w0", "wa", "wm"))
        x = np.log(((d - 1) * wa + w0) / w0) / np.log(wm)
        maybe = np.flatnonzero(np.abs(x - (k - 1)) <= 0.5 + 1e-6)
        widths = np.full((n, k), WIDTH_QUANTUM, dtype=np.int64)
        depths = np.ones((n, k), dtype=np.int64)
        valid = np.zeros(n, dtype=bool)
        if len(maybe):
            ws, ds, ok = regnet_stages(raw["d"][maybe], raw["w0"][maybe], raw["wa"][maybe], raw["wm"][maybe], k)
            widths[maybe], depths[maybe], valid[maybe] = ws, ds, ok
        b = np.repeat(np.asarray(raw["b"], dtype=np.float64)[:, None], k, axis=1)
        g = np.repeat(np.asarray(raw["g"], dtype=np.int64)[:, None], k, axis=1)
        # Rejected rows get a harmless width so the arithmetic stays clean.
        widths = np.where(valid[:, None], widths, WIDTH_QUANTUM)
        depths = np.where(valid[:, None], depths, 1)
        batch = DesignBatch.from_sampled(
            widths,
            depths,
            b,
            g,
            se_ratio=self.se_ratio,
            stem=stem,
            block=self.block,
            strides=self.stage_strides(n, k),
            head_width=self.head_width,
            activation=self.activations(raw),
        )
        return batch, valid

    def columns(self, raw):
        return {p.name: raw[p.name] for p in self.params()}

    def constraints(self) -> list[str]:
        return (
            [f"exactly {self.num_stages} stages, none empty"]
            + (["strides " + ", ".join(map(str, self.strides))] if self.strides else [])
            + ([f"activation {self.activation}"] if self.activation and self.act is None else [])
        )

    def parameter_rows(self) -> list[tuple[str, str]]:
        return [(p.name, p.describe()) for p in self.params()] + self.act_rows()


REGNET_SPACES = [
    RegNetSpace(
        name="RegNet",
        title="RegNet",
        se_ratio=0.0,
        dof=6,
        description="widths and depths from (d, w0, wa, wm); shared b and g as in X_e",
    ),
    RegNetSpace(
        name="RegNetX",
        title="RegNetX",
        se_ratio=0.0,
        dof=4,
        description="RegNet with b = 1 and the reference sampler's ranges",
        d=Param("d", "uniform", 12, 28, 1),
        w0=Param("w0", "log_uniform", 8, 256, 8),
        wa=Param("wa", "log_uniform", 8, 256, 0.1),
        wm=Param("wm", "log_uniform", 2, 3, 0.001),
        b=Param("b", "choice", values=(1,)),
        g=Param("g", "power2_or_log_uniform", 8, 128, 8),
    ),
]
REGNET_SPACES.append(
    RegNetSpace(
        **{
            **{f: getattr(REGNET_SPACES[1], f) for f in ("d", "w0", "wa", "wm", "b", "g", "dof")},
            "name": "RegNetY",
            "title": "RegNetY",
            "se_ratio": 0.25,
            "description": "RegNetX with Y blocks (SE, ratio 0.25)",
        }
    )
)


def _one_change(name: str, alias: str, description: str, dof=None, **change) -> RegNetSpace:
    """RegNetX with one design choice changed (DDS §4, "alternate design choices"): every other law stays RegNetX's."""
    x = REGNET_SPACES[1]
    fields = {f: getattr(x, f) for f in ("d", "w0", "wa", "wm", "b", "g", "se_ratio", "num_stages", "activation")}
    fields.update(change)
    return RegNetSpace(
        name=name, title=name, dof=x.dof if dof is None else dof, aliases=(alias,), description=description, **fields
    )


# DDS's alternate design choices, each one change away from RegNetX (docs/design.md §2). SE is RegNetY.
DDS_VARIANTS = [
    _one_change(
        "RegNetX_inv",
        "RegNetX-inverted",
        "RegNetX with an inverted bottleneck, b = 1/4 (bottleneck 4x wider than the block)",
        b=Param("b", "choice", values=(0.25,)),
    ),
    _one_change(
        "RegNetX_dw",
        "RegNetX-depthwise",
        "RegNetX with depthwise 3x3 convolutions, g = 1",
        dof=REGNET_SPACES[1].dof - 1,
        g=Param("g", "choice", values=(1,)),
    ),
    _one_change(
        "RegNetX_swish",
        "RegNetX-Swish",
        "RegNetX with SiLU/Swish instead of ReLU",
        activation="silu",
    ),
    # DDS §5 (Fig. 15) finds Swish helps most where convolutions are depthwise: the two changes together.
    _one_change(
        "RegNetX_dw_swish",
        "RegNetX-depthwise-Swish",
        "RegNetX with depthwise 3x3 convolutions (g = 1) and SiLU/Swish",
        dof=REGNET_SPACES[1].dof - 1,
        g=Param("g", "choice", values=(1,)),
        activation="silu",
    ),
]
