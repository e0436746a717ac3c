"""Designs: immutable values from which both the complexity and the nn.Module are derived.

A :class:`Design` is a network body (per-stage widths w_i, depths d_i, bottleneck ratios b_i, group
widths g_i, strides s_i, and MBConv's kernels k_i and expansions e_i), its block kind (``block``, see
:mod:`regspace.blocks`; SE ratio; activation), its stem and its optional head conv. A :class:`Context`
is what the network is fed (resolution, input channels, classes). Both are plain frozen dataclasses; the
model id is a hash of their canonical text, so the same network sampled twice is recognised.

:class:`DesignBatch` holds N designs of the same shape as numpy arrays: the sampler builds and measures
batches without creating one Python object per candidate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import ClassVar

import numpy as np

from regspace.blocks import get_block, network
from regspace.blocks import layers as L
from regspace.errors import UsageProblem

MAX_STAGES = 7  # the store's per-stage sampled-parameter columns (d1..d7, …) hold this many
DEFAULT_STRIDE = 2  # every stage halves the resolution in its first block unless told (DDS §3.1)
DEFAULT_KERNEL = 3  # MBConv's depthwise kernel
DEFAULT_EXPANSION = 1.0  # MBConv's expansion of the block input width
ACTIVATIONS = ("relu", "silu")


@dataclass(frozen=True)
class Stem:
    """The stem: its name (the store's ``stem`` column), output width, first conv's stride, and kind:
    ``cifar`` 3×3 conv s1, ``imagenet`` 3×3 conv s2, ``resnet`` 7×7 conv s2 + 3×3 max-pool s2; each
    followed by BN and the activation (pycls's ResStemCifar, SimpleStem, ResStem). Kind defaults to the name."""

    name: str
    width: int
    stride: int
    kind: str = ""

    def __post_init__(self):
        kind = self.kind or self.name
        if kind not in STEM_KINDS:
            raise UsageProblem(f"unknown stem kind {kind!r}: choose one of {', '.join(STEM_KINDS)}")
        if int(self.width) != self.width or self.width < 1:
            raise UsageProblem(f"stem width must be a positive integer, got {self.width!r}")
        object.__setattr__(self, "kind", kind)

    @property
    def kernel(self) -> int:
        return 7 if self.kind == "resnet" else 3

    @property
    def pool(self) -> bool:
        """A 3×3 stride-2 max-pool after the conv (the resnet stem)."""
        return self.kind == "resnet"


STEM_KINDS = ("cifar", "imagenet", "resnet")
STEMS = {
    "imagenet": Stem("imagenet", width=32, stride=2),
    "cifar": Stem("cifar", width=16, stride=1),
    "resnet": Stem("resnet", width=64, stride=2),
}


def get_stem(name: str, width: int | None = None) -> Stem:
    """The stem called ``name`` (cifar | imagenet | resnet), with ``width`` output channels if given."""
    try:
        stem = STEMS[name.lower()]
    except (KeyError, AttributeError):
        raise UsageProblem(f"unknown stem {name!r}: choose one of {', '.join(STEMS)}") from None
    return stem if width is None or width == stem.width else replace(stem, width=int(width))


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

    pycls's adjust_block_compatibility in DDS notation (bottleneck width w / b), for every b > 0 and g ≥ 1:
        v = max(1, int(w / b)); g = min(g, v); m = lcm(g, q); v = max(m, round(v / m)·m); w = v·b
    where q is the denominator of b as a fraction (b = 1/2: q = 2; integer b: q = 1), so that w is an
    integer and the bottleneck w / b = v is a multiple of g. Returns (widths, group_widths) as int64 arrays.
    """
    w = np.asarray(widths, dtype=np.float64)
    b = np.asarray(bottleneck_ratios, dtype=np.float64)
    g = np.asarray(group_widths, dtype=np.int64)
    w, b, g = np.broadcast_arrays(w, b, g)
    v = np.maximum(1, np.trunc(w / b).astype(np.int64))
    g = np.minimum(g, v)
    q = np.ones(b.shape, dtype=np.int64)
    num = np.ones(b.shape, dtype=np.int64)
    # b = p/q in lowest terms (b = 1/2: q = 2; integer b: q = 1); a float drawn from a quantised range
    # is within 1e-6 of its fraction. Few distinct ratios: the fractions are cheap.
    for value in np.unique(b):
        f = Fraction(float(value)).limit_denominator(1000)
        q[b == value], num[b == value] = f.denominator, f.numerator
    m = np.lcm(g, q)
    # np.round is half-to-even, like Python's round().
    v = np.maximum(m, (np.round(v / m) * m).astype(np.int64))
    return v * num // q, g.copy()


# The values a block kind reads (BlockKind's ``p``), by the name blocks use: (attribute of Design and
# DesignBatch, dtype, one per stage?). A block kind with a parameter of its own adds its field here; the
# store's design columns follow (regspace.schema).
BLOCK_PARAMS = {
    "b": ("bottleneck_ratios", np.float64, True),
    "g": ("group_widths", np.int64, True),
    "se_ratio": ("se_ratio", np.float64, False),
    "k": ("kernels", np.int64, True),
    "e": ("expansions", np.float64, True),
    "activation": ("activation", str, False),
}


# A block's per-stage parameters that it does not read (BlockKind.uses) hold these neutral values: a V
# block given b = 2, or an X block given k = 5, is the same network as without, so it must be the same
# design and have the same id. (attribute, value)
UNUSED = {"b": ("bottleneck_ratios", 1.0), "g": ("group_widths", 1), "k": ("kernels", DEFAULT_KERNEL),
          "e": ("expansions", DEFAULT_EXPANSION)}  # fmt: skip


def _neutral(block: str, values: dict) -> dict:
    """``values`` (b, g, k, e: per-stage arrays or scalars) with those ``block`` does not read set neutral."""
    uses = get_block(block).uses

    def neutral(k, v):
        if k in uses or v is None:
            return v
        return UNUSED[k][1] if np.ndim(v) == 0 else np.full(np.shape(v), UNUSED[k][1])

    return {k: neutral(k, v) for k, v in values.items()}


def _check_unused(design) -> None:
    """Refuse a Design or DesignBatch whose block does not read a parameter that is not neutral (UNUSED)."""
    uses = get_block(design.block).uses
    for name, (attribute, neutral) in UNUSED.items():
        if name not in uses and np.any(np.asarray(getattr(design, attribute)) != neutral):
            raise UsageProblem(
                f"block {design.block} has no {name} (it is {neutral:g} for every stage of such a design); "
                f"leave {name} out"
            )


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


def activation_of(activation: str | None, block: str) -> str:
    """The activation, checked; None means the block kind's default (silu for MB, else relu)."""
    name = activation if activation is not None else get_block(block).activation
    if name not in ACTIVATIONS:
        raise UsageProblem(f"unknown activation {name!r}: choose one of {', '.join(ACTIVATIONS)}")
    return name


def _per_stage(values, default, n: int, name: str, cast) -> tuple:
    if values is None or (not np.isscalar(values) and len(values) == 0):
        return (cast(default),) * n
    if np.isscalar(values):
        return (cast(values),) * n
    out = tuple(cast(x) for x in values)
    if len(out) != n:
        raise UsageProblem(f"a design with {n} stages needs {n} values of {name} (or one shared), got {len(out)}")
    return out


def _check_body(n, strides, kernels, expansions, head_width) -> None:
    if n > MAX_STAGES:
        raise UsageProblem(f"a design has at most {MAX_STAGES} stages, got {n}")
    for s in strides:
        if s not in (1, 2):
            raise UsageProblem(f"stage strides must be 1 or 2, got {s}")
    for k in kernels:
        if k < 1 or k % 2 == 0:
            raise UsageProblem(f"kernel sizes must be odd and positive, got {k}")
    for e in expansions:
        if not e > 0:
            raise UsageProblem(f"expansions must be positive, got {e:g}")
    if int(head_width) != head_width or head_width < 0:
        raise UsageProblem(f"head width must be a non-negative integer (0: no head conv), got {head_width!r}")


@dataclass(frozen=True)
class Design:
    """One network body. Build with :meth:`from_sampled` to apply the compatibility rule.

    ``block`` names the block kind (regspace.blocks); left out, it is Y when se_ratio > 0, else X.
    ``strides`` (1 or 2 per stage; default 2), ``kernels`` (odd; default 3) and ``expansions`` (default
    1) may be left empty; ``activation`` None is the block's default (silu for MB, else relu);
    ``head_width`` > 0 adds a 1×1 conv + BN + activation of that width before pooling.
    """

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    bottleneck_ratios: tuple[float, ...]
    group_widths: tuple[int, ...]
    se_ratio: float = 0.0
    stem: Stem = field(default_factory=lambda: STEMS["imagenet"])
    block: str | None = None
    strides: tuple[int, ...] = ()
    kernels: tuple[int, ...] = ()
    expansions: tuple[float, ...] = ()
    head_width: int = 0
    activation: str | None = None
    block_params: ClassVar[dict] = BLOCK_PARAMS

    def __post_init__(self):
        n = len(self.widths)
        if not (len(self.depths) == len(self.bottleneck_ratios) == len(self.group_widths) == n) or n == 0:
            raise UsageProblem("a design needs the same number (≥ 1) of widths, depths, b and g per stage")
        set_ = object.__setattr__
        set_(self, "strides", _per_stage(self.strides, DEFAULT_STRIDE, n, "strides", int))
        set_(self, "kernels", _per_stage(self.kernels, DEFAULT_KERNEL, n, "kernels", int))
        set_(self, "expansions", _per_stage(self.expansions, DEFAULT_EXPANSION, n, "expansions", float))
        set_(self, "head_width", int(self.head_width))
        _check_body(n, self.strides, self.kernels, self.expansions, self.head_width)
        for w, d, b, g in zip(self.widths, self.depths, self.bottleneck_ratios, self.group_widths):
            if min(w, d, g) < 1 or b <= 0:
                raise UsageProblem(f"stage values must be positive (w={w}, d={d}, b={b}, g={g})")
            w_b = round(w / b)
            if w_b % g:
                fixed, g_fixed = make_compatible(w, b, g)
                raise UsageProblem(
                    f"bottleneck width w/b = {w_b} (w={w}, b={b:g}) is not a multiple of the group width g={g}; "
                    f"the compatibility rule gives w={int(fixed)}, g={int(g_fixed)}"
                )
        if not 0 <= self.se_ratio < 1:
            raise UsageProblem(f"se ratio must be in [0, 1), got {self.se_ratio}")
        set_(self, "block", block_of(self.block, self.se_ratio))
        set_(self, "activation", activation_of(self.activation, self.block))
        _check_unused(self)

    @classmethod
    def from_sampled(
        cls,
        widths,
        depths,
        bottleneck_ratios,
        group_widths,
        *,
        se_ratio=0.0,
        stem=None,
        block=None,
        strides=None,
        kernels=None,
        expansions=None,
        head_width=0,
        activation=None,
    ):
        """A design from raw (sampled) per-stage values; b, g, strides, kernels and expansions may be
        scalars shared by all stages. Values the block does not read (BlockKind.uses) become neutral
        (UNUSED), and the compatibility rule applies to the blocks that read b and g."""
        n = len(widths)
        bs = np.broadcast_to(np.asarray(bottleneck_ratios, dtype=np.float64), (n,))
        gs = np.broadcast_to(np.asarray(group_widths, dtype=np.int64), (n,))
        if np.any(bs <= 0) or np.any(gs < 1) or np.any(np.asarray(widths) < 1):
            raise UsageProblem("stage values must be positive (w, b, g)")
        name = block_of(block, float(se_ratio))
        v = _neutral(name, {"b": bs, "g": gs, "k": kernels, "e": expansions})
        bs, gs, kernels, expansions = v["b"], v["g"], v["k"], v["e"]
        ws, gs = make_compatible(widths, bs, gs) if {"b", "g"} & get_block(name).uses else (widths, gs)
        return cls(
            widths=tuple(int(x) for x in ws),
            depths=tuple(int(x) for x in depths),
            bottleneck_ratios=tuple(float(x) for x in bs),
            group_widths=tuple(int(x) for x in gs),
            se_ratio=float(se_ratio),
            stem=stem or STEMS["imagenet"],
            block=block,
            strides=_per_stage(strides, DEFAULT_STRIDE, n, "strides", int),
            kernels=_per_stage(kernels, DEFAULT_KERNEL, n, "kernels", int),
            expansions=_per_stage(expansions, DEFAULT_EXPANSION, n, "expansions", float),
            head_width=head_width,
            activation=activation,
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
            self.strides,
            self.kernels,
            self.expansions,
            self.head_width,
            self.activation,
        )

    def model_id(self, context: Context) -> str:
        return hash_id(self.canonical(context))


def canonical_text(
    widths,
    depths,
    bs,
    gs,
    se_ratio,
    stem: Stem,
    context: Context,
    block: str,
    strides=(),
    kernels=(),
    expansions=(),
    head_width: int = 0,
    activation: str = "relu",
) -> str:
    """The text a model id hashes. X and Y add nothing for their block (ids written before the block field
    stay the same); other kinds append their own part (BlockKind.canonical). Strides, kernels, expansions,
    the head conv, the activation and a non-3×3 stem kind add a key only when they differ from the
    default, so every id written before them stays the same."""
    join = ",".join
    stem_kind = "" if stem.kind == stem.name else f"~{stem.kind}"
    text = (
        f"v1;stem={stem.name}{stem_kind}:{stem.width}/{stem.stride};res={context.resolution};in={context.in_channels};"
        f"classes={context.num_classes};se={_fmt_ratio(se_ratio)};w={join(str(int(x)) for x in widths)};"
        f"d={join(str(int(x)) for x in depths)};b={join(_fmt_ratio(x) for x in bs)};"
        f"g={join(str(int(x)) for x in gs)}" + get_block(block).canonical()
    )
    if any(int(s) != DEFAULT_STRIDE for s in strides):
        text += f";s={join(str(int(x)) for x in strides)}"
    if any(int(k) != DEFAULT_KERNEL for k in kernels):
        text += f";k={join(str(int(x)) for x in kernels)}"
    if any(float(e) != DEFAULT_EXPANSION for e in expansions):
        text += f";e={join(_fmt_ratio(x) for x in expansions)}"
    if head_width:
        text += f";head={int(head_width)}"
    if activation != "relu":
        text += f";act={activation}"
    return text


def hash_id(text: str) -> str:
    """16 hex digits of SHA-256: stable across machines, Python versions and runs."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stage_array(values, default, shape, dtype):
    out = np.zeros(shape, dtype=dtype) + (default if values is None else np.asarray(values, dtype=dtype))
    return out.astype(dtype)


@dataclass(frozen=True)
class DesignBatch:
    """N designs with the same number of stages and the same block, as (N, n_stages) arrays (already
    compatible): widths, depths, bottleneck_ratios, group_widths, strides, kernels, expansions; the SE
    ratio, stem, block and head width are shared. ``block`` and ``activation`` as in :class:`Design`;
    strides, kernels and expansions left None take their defaults. ``activation`` is one name shared by
    every row, or an (N,) array of names (a space that draws it per model, TOML ``[params.act]``); the
    complexity does not depend on it."""

    widths: np.ndarray
    depths: np.ndarray
    bottleneck_ratios: np.ndarray
    group_widths: np.ndarray
    se_ratio: float
    stem: Stem
    block: str | None = None
    strides: np.ndarray | None = None
    kernels: np.ndarray | None = None
    expansions: np.ndarray | None = None
    head_width: int = 0
    activation: str | None = None
    block_params: ClassVar[dict] = BLOCK_PARAMS

    def __post_init__(self):
        set_ = object.__setattr__
        shape = np.shape(self.widths)
        set_(self, "strides", _stage_array(self.strides, DEFAULT_STRIDE, shape, np.int64))
        set_(self, "kernels", _stage_array(self.kernels, DEFAULT_KERNEL, shape, np.int64))
        set_(self, "expansions", _stage_array(self.expansions, DEFAULT_EXPANSION, shape, np.float64))
        set_(self, "head_width", int(self.head_width))
        if len(shape) == 2:
            _check_body(
                shape[1],
                np.unique(self.strides).tolist(),
                np.unique(self.kernels).tolist(),
                np.unique(self.expansions).tolist(),
                self.head_width,
            )
        set_(self, "block", block_of(self.block, self.se_ratio))
        if np.ndim(self.activation) == 0:
            set_(self, "activation", activation_of(self.activation, self.block))
        else:
            rows = list(self.activation)
            if len(rows) != shape[0]:
                raise UsageProblem(f"{shape[0]} designs need {shape[0]} activations (or one shared), got {len(rows)}")
            named = {a: activation_of(a, self.block) for a in set(rows)}  # few distinct names: check each once
            set_(self, "activation", np.array([named[a] for a in rows], dtype=object))
        _check_unused(self)

    def activations(self) -> list[str]:
        """The activation of each row (N names), shared or drawn per row."""
        if isinstance(self.activation, np.ndarray):
            return self.activation.tolist()
        return [self.activation] * len(self)

    def __len__(self) -> int:
        return len(self.widths)

    @classmethod
    def from_sampled(
        cls,
        widths,
        depths,
        bottleneck_ratios,
        group_widths,
        *,
        se_ratio,
        stem,
        block=None,
        strides=None,
        kernels=None,
        expansions=None,
        head_width=0,
        activation=None,
    ) -> DesignBatch:
        name = block_of(block, float(se_ratio))
        v = _neutral(name, {"b": bottleneck_ratios, "g": group_widths, "k": kernels, "e": expansions})
        bottleneck_ratios, group_widths, kernels, expansions = v["b"], v["g"], v["k"], v["e"]
        if {"b", "g"} & get_block(name).uses:
            ws, gs = make_compatible(widths, bottleneck_ratios, group_widths)
        else:
            ws = np.asarray(widths, dtype=np.int64)
            gs = np.asarray(group_widths, dtype=np.int64) + np.zeros(ws.shape, dtype=np.int64)
        return cls(
            ws,
            np.asarray(depths, dtype=np.int64),
            np.asarray(bottleneck_ratios, dtype=np.float64) + np.zeros(ws.shape),
            gs,
            float(se_ratio),
            stem,
            block,
            strides,
            kernels,
            expansions,
            head_width,
            activation,
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
            self.strides[index],
            self.kernels[index],
            self.expansions[index],
            self.head_width,
            self.activation[index] if isinstance(self.activation, np.ndarray) else self.activation,
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
            tuple(int(x) for x in self.strides[i]),
            tuple(int(x) for x in self.kernels[i]),
            tuple(float(x) for x in self.expansions[i]),
            self.head_width,
            self.activation[i] if isinstance(self.activation, np.ndarray) else self.activation,
        )

    def model_ids(self, context: Context) -> list[str]:
        """One id per row. Hashing is per row, so call this on accepted candidates only."""
        return [
            hash_id(
                canonical_text(w, d, b, g, self.se_ratio, self.stem, context, self.block, s, k, e, self.head_width, a)
            )
            for w, d, b, g, s, k, e, a in zip(
                self.widths.tolist(),
                self.depths.tolist(),
                self.bottleneck_ratios.tolist(),
                self.group_widths.tolist(),
                self.strides.tolist(),
                self.kernels.tolist(),
                self.expansions.tolist(),
                self.activations(),
            )
        ]
