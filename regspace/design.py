"""Designs: immutable values from which both the complexity and the nn.Module are derived.

A :class:`Design` is a network body (per-stage widths w_i, depths d_i, bottleneck ratios b_i, group
widths g_i), its block kind (``block``, see :mod:`regspace.blocks`; SE ratio) and its stem. A
:class:`Context` is what the network is fed (resolution, input channels, classes). Both are plain frozen
dataclasses; the model id is a hash of their canonical text, so the same network sampled twice is
recognised.

:class:`DesignBatch` holds N designs of the same shape as numpy arrays: the sampler builds and measures
batches without creating one Python object per candidate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from regspace.blocks import get_block, network
from regspace.blocks import layers as L
from regspace.errors import UsageProblem


@dataclass(frozen=True)
class Stem:
    """The stem: a 3×3 conv, BN, ReLU with this output width and stride."""

    name: str
    width: int
    stride: int


STEMS = {
    "imagenet": Stem("imagenet", width=32, stride=2),
    "cifar": Stem("cifar", width=16, stride=1),
}


def get_stem(name: str) -> Stem:
    try:
        return STEMS[name.lower()]
    except KeyError:
        raise UsageProblem(f"unknown stem {name!r}: choose one of {', '.join(STEMS)}") from None


@dataclass(frozen=True)
class Context:
    """What a network is fed: square input resolution (pixels), input channels, output classes."""

    resolution: int = 224
    in_channels: int = 3
    num_classes: int = 1000

    def __post_init__(self):
        for name in ("resolution", "in_channels", "num_classes"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise UsageProblem(f"{name.replace('_', ' ')} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class Complexity:
    """flops: multiply-adds; params: parameter count; acts: output activations of all convs/FC."""

    flops: int
    params: int
    acts: int


def make_compatible(widths, bottleneck_ratios, group_widths):
    """The compatibility rule (docs/design.md §3), the one place it is applied (vectorised; any array shape).

    The bottleneck width w/b must be a multiple of the group width g, and g may not exceed it:
        v = max(1, int(w / b)); g = min(g, v); v = max(g, int(round(v / g) * g)); w = int(v * b)
    Returns (widths, group_widths) as int64 arrays.
    """
    w = np.asarray(widths, dtype=np.float64)
    b = np.asarray(bottleneck_ratios, dtype=np.float64)
    g = np.asarray(group_widths, dtype=np.int64)
    v = np.maximum(1, np.trunc(w / b).astype(np.int64))
    g = np.minimum(g, v)
    # np.round is half-to-even, like Python's round().
    v = np.maximum(g, (np.round(v / g) * g).astype(np.int64))
    return np.trunc(v * b).astype(np.int64), g


# The values a block kind reads (BlockKind's ``p``), by the name blocks use: (attribute of Design and
# DesignBatch, dtype, one per stage?). A block kind with a parameter of its own adds its field here.
BLOCK_PARAMS = {
    "b": ("bottleneck_ratios", np.float64, True),
    "g": ("group_widths", np.int64, True),
    "se_ratio": ("se_ratio", np.float64, False),
}


def _fmt_ratio(b: float) -> str:
    return format(float(b), "g")


def block_of(block: str | None, se_ratio: float) -> str:
    """The block kind, checked; None means the kind implied by the SE ratio (designs and rows written
    before the block field: Y when se_ratio > 0, else X)."""
    name = block if block is not None else ("Y" if se_ratio > 0 else "X")
    problem = get_block(name).check(se_ratio)
    if problem:
        raise UsageProblem(problem)
    return name


@dataclass(frozen=True)
class Design:
    """One network body. Build with :meth:`from_sampled` to apply the compatibility rule.

    ``block`` names the block kind (regspace.blocks); left out, it is Y when se_ratio > 0, else X.
    """

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    bottleneck_ratios: tuple[float, ...]
    group_widths: tuple[int, ...]
    se_ratio: float = 0.0
    stem: Stem = field(default_factory=lambda: STEMS["imagenet"])
    block: str | None = None
    block_params: ClassVar[dict] = BLOCK_PARAMS

    def __post_init__(self):
        n = len(self.widths)
        if not (len(self.depths) == len(self.bottleneck_ratios) == len(self.group_widths) == n) or n == 0:
            raise UsageProblem("a design needs the same number (≥ 1) of widths, depths, b and g per stage")
        for w, d, b, g in zip(self.widths, self.depths, self.bottleneck_ratios, self.group_widths):
            if min(w, d, g) < 1 or b <= 0:
                raise UsageProblem(f"stage values must be positive (w={w}, d={d}, b={b}, g={g})")
            w_b = round(w / b)
            if w_b % g:
                raise UsageProblem(
                    f"bottleneck width {w_b} (w={w}, b={b}) is not a multiple of group width g={g}; "
                    "use Design.from_sampled to apply the compatibility rule"
                )
        if not 0 <= self.se_ratio < 1:
            raise UsageProblem(f"se ratio must be in [0, 1), got {self.se_ratio}")
        object.__setattr__(self, "block", block_of(self.block, self.se_ratio))

    @classmethod
    def from_sampled(cls, widths, depths, bottleneck_ratios, group_widths, *, se_ratio=0.0, stem=None, block=None):
        """A design from raw (sampled) per-stage values; b and g may be scalars shared by all stages."""
        n = len(widths)
        bs = np.broadcast_to(np.asarray(bottleneck_ratios, dtype=np.float64), (n,))
        gs = np.broadcast_to(np.asarray(group_widths, dtype=np.int64), (n,))
        ws, gs = make_compatible(widths, bs, gs)
        return cls(
            widths=tuple(int(x) for x in ws),
            depths=tuple(int(x) for x in depths),
            bottleneck_ratios=tuple(float(x) for x in bs),
            group_widths=tuple(int(x) for x in gs),
            se_ratio=float(se_ratio),
            stem=stem or STEMS["imagenet"],
            block=block,
        )

    @property
    def depth(self) -> int:
        return sum(self.depths)

    def block_widths(self) -> list[int]:
        """Per-block output widths w_j, j = 0 .. depth-1."""
        return [w for w, d in zip(self.widths, self.depths) for _ in range(d)]

    def complexity(self, context: Context) -> Complexity:
        cx = network.count(self, context)
        return Complexity(int(cx.flops), int(cx.params), int(cx.acts))

    def canonical(self, context: Context) -> str:
        """Canonical text of (design, context): the model id hashes this."""
        return canonical_text(
            self.widths,
            self.depths,
            self.bottleneck_ratios,
            self.group_widths,
            self.se_ratio,
            self.stem,
            context,
            self.block,
        )

    def model_id(self, context: Context) -> str:
        return hash_id(self.canonical(context))


def canonical_text(widths, depths, bs, gs, se_ratio, stem: Stem, context: Context, block: str) -> str:
    """The text a model id hashes. X and Y add nothing for their block (ids written before the block field
    stay the same); other kinds append their own part (BlockKind.canonical)."""
    join = ",".join
    return (
        f"v1;stem={stem.name}:{stem.width}/{stem.stride};res={context.resolution};in={context.in_channels};"
        f"classes={context.num_classes};se={_fmt_ratio(se_ratio)};w={join(str(int(x)) for x in widths)};"
        f"d={join(str(int(x)) for x in depths)};b={join(_fmt_ratio(x) for x in bs)};"
        f"g={join(str(int(x)) for x in gs)}" + get_block(block).canonical()
    )


def hash_id(text: str) -> str:
    """16 hex digits of SHA-256: stable across machines, Python versions and runs."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DesignBatch:
    """N designs with the same number of stages and the same block, as (N, n_stages) arrays (already
    compatible). ``block`` as in :class:`Design`."""

    widths: np.ndarray
    depths: np.ndarray
    bottleneck_ratios: np.ndarray
    group_widths: np.ndarray
    se_ratio: float
    stem: Stem
    block: str | None = None
    block_params: ClassVar[dict] = BLOCK_PARAMS

    def __post_init__(self):
        object.__setattr__(self, "block", block_of(self.block, self.se_ratio))

    def __len__(self) -> int:
        return len(self.widths)

    @classmethod
    def from_sampled(
        cls, widths, depths, bottleneck_ratios, group_widths, *, se_ratio, stem, block=None
    ) -> DesignBatch:
        ws, gs = make_compatible(widths, bottleneck_ratios, group_widths)
        return cls(
            ws,
            np.asarray(depths, dtype=np.int64),
            np.asarray(bottleneck_ratios, dtype=np.float64) + np.zeros(ws.shape),
            gs,
            float(se_ratio),
            stem,
            block,
        )

    def take(self, index) -> DesignBatch:
        return DesignBatch(
            self.widths[index],
            self.depths[index],
            self.bottleneck_ratios[index],
            self.group_widths[index],
            self.se_ratio,
            self.stem,
            self.block,
        )

    def complexity(self, context: Context) -> L.Cx:
        """Vectorised: fields flops, params, acts are (N,) int64 arrays."""
        return network.count(self, context)

    def design(self, i: int) -> Design:
        return Design(
            tuple(int(x) for x in self.widths[i]),
            tuple(int(x) for x in self.depths[i]),
            tuple(float(x) for x in self.bottleneck_ratios[i]),
            tuple(int(x) for x in self.group_widths[i]),
            self.se_ratio,
            self.stem,
            self.block,
        )

    def model_ids(self, context: Context) -> list[str]:
        """One id per row. Hashing is per row, so call this on accepted candidates only."""
        return [
            hash_id(canonical_text(w, d, b, g, self.se_ratio, self.stem, context, self.block))
            for w, d, b, g in zip(
                self.widths.tolist(),
                self.depths.tolist(),
                self.bottleneck_ratios.tolist(),
                self.group_widths.tolist(),
            )
        ]
