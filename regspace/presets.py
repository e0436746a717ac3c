"""Presets bundle a stem, an input context and a default complexity budget."""

from __future__ import annotations

from dataclasses import dataclass, field

from regspace.design import STEMS, Context, Stem
from regspace.errors import UsageProblem
from regspace.units import Range, parse_range


@dataclass(frozen=True)
class Budget:
    """Complexity constraints: closed ranges on flops (multiply-adds), params and acts."""

    flops: Range = field(default_factory=Range)
    params: Range = field(default_factory=Range)
    acts: Range = field(default_factory=Range)

    @classmethod
    def parse(cls, flops: str | None = None, params: str | None = None, acts: str | None = None) -> Budget:
        return cls(
            parse_range(flops, what="flops") if flops else Range(),
            parse_range(params, what="params") if params else Range(),
            parse_range(acts, what="acts") if acts else Range(),
        )

    @classmethod
    def from_options(cls, flops: str | None, params: str | None, acts: str | None, *, default: Budget) -> Budget:
        """The --flops/--params/--acts options: ``default`` when none is given; ':' means no limit."""
        if flops is None and params is None and acts is None:
            return default
        return cls.parse(*(None if v == ":" else v for v in (flops, params, acts)))

    def contains(self, cx):
        """Vectorised: a boolean mask over a batch's complexity (regspace.blocks.layers.Cx)."""
        return self.flops.contains(cx.flops) & self.params.contains(cx.params) & self.acts.contains(cx.acts)

    def __str__(self) -> str:
        parts = [f"{k} {getattr(self, k)}" for k in ("flops", "params", "acts") if not getattr(self, k).unbounded]
        return ", ".join(parts) or "no complexity limit"

    def to_dict(self) -> dict:
        return {k: [getattr(self, k).low, getattr(self, k).high] for k in ("flops", "params", "acts")}


@dataclass(frozen=True)
class Preset:
    name: str
    stem: Stem
    context: Context
    budget: Budget
    note: str = ""


PRESETS = {
    "imagenet": Preset(
        "imagenet",
        STEMS["imagenet"],
        Context(resolution=224, in_channels=3, num_classes=1000),
        Budget.parse(flops="360M:400M"),
        "ImageNet as in DDS: 224×224×3, 1000 classes, 360M–400M flops",
    ),
    # The paper's 360M–400M ImageNet designs measured again at 32×32 with the cifar stem (each stage
    # runs on (16/56)² ≈ 8 % of its ImageNet area) have flops 28M–31.5M (5–95 %, median 30M; X_c and
    # RegNetX, experiments/cifar_budget.py). 28.5M–31.5M is that median ± 5 %, as 360M–400M is 380M ± 5 %.
    "cifar": Preset(
        "cifar",
        STEMS["cifar"],
        Context(resolution=32, in_channels=3, num_classes=10),
        Budget.parse(flops="28.5M:31.5M"),
        "CIFAR-style: cifar stem, 32×32×3, 10 classes; budget = the paper's 360M–400M shapes at 32×32",
    ),
    # Fashion-MNIST / MNIST at their native 28×28×1: the same designs have flops 22M–30M (medians 25M
    # for X_c, 28M for RegNetX); 25M–28M covers the middle of both.
    "mnist": Preset(
        "mnist",
        STEMS["cifar"],
        Context(resolution=28, in_channels=1, num_classes=10),
        Budget.parse(flops="25M:28M"),
        "28×28×1 (Fashion-MNIST, MNIST), cifar stem, 10 classes; the paper's shapes at 28×28",
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise UsageProblem(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}") from None


def resolve_context(
    preset_name: str,
    stem: str | None = None,
    resolution: int | None = None,
    in_channels: int | None = None,
    classes: int | None = None,
) -> tuple[Preset, Stem, Context]:
    """A preset with the --stem/--resolution/--in-channels/--classes overrides applied."""
    from regspace.design import get_stem

    preset = get_preset(preset_name)
    ctx = preset.context
    context = Context(
        resolution=resolution if resolution is not None else ctx.resolution,
        in_channels=in_channels if in_channels is not None else ctx.in_channels,
        num_classes=classes if classes is not None else ctx.num_classes,
    )
    return preset, (get_stem(stem) if stem else preset.stem), context
