"""The torch layers every block is built from, and the network around the blocks. Importing this imports torch.

Each constructor mirrors the counting function of the same name in :mod:`regspace.blocks.layers`;
``tests/test_models.py`` checks that parameter counts agree for designs of every space. The block
modules (e.g. :mod:`regspace.blocks.bottleneck`) compose these; :mod:`regspace.blocks.network` assembles
the network.
"""

from __future__ import annotations

import torch
from torch import nn


def conv(w_in: int, w_out: int, k: int, *, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    """layers.conv2d: padding k//2."""
    return nn.Conv2d(w_in, w_out, k, stride=stride, padding=k // 2, groups=groups, bias=bias)


def norm(channels: int) -> nn.BatchNorm2d:
    """layers.norm2d."""
    return nn.BatchNorm2d(channels)


def activation(name: str = "relu") -> nn.Module:
    """The design's activation: relu (in place) or silu (Swish, x·sigmoid(x))."""
    if name == "silu":
        return nn.SiLU(inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


def projection(w_in: int, w_out: int, stride: int) -> nn.Module | None:
    """layers.projection: 1×1 conv + BN where the shape changes, else None (identity shortcut)."""
    if w_in == w_out and stride == 1:
        return None
    return nn.Sequential(conv(w_in, w_out, 1, stride=stride), norm(w_out))


class Stem(nn.Module):
    """layers.stem: k×k conv, BN, activation [, 3×3 max-pool s2]; ``stem`` a design.Stem."""

    def __init__(self, in_channels: int, stem, act: str = "relu"):
        super().__init__()
        self.conv = conv(in_channels, stem.width, stem.kernel, stride=stem.stride)
        self.bn = norm(stem.width)
        self.af = activation(act)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1) if stem.pool else None

    def forward(self, x):
        x = self.af(self.bn(self.conv(x)))
        return x if self.pool is None else self.pool(x)


class SqueezeExcitation(nn.Module):
    """layers.squeeze_excitation: pool → 1×1 conv (bias) → activation → 1×1 conv (bias) → sigmoid → scale."""

    def __init__(self, w_b: int, w_se: int, act: str = "relu"):
        super().__init__()
        self.reduce = conv(w_b, w_se, 1, bias=True)
        self.af = activation(act)
        self.expand = conv(w_se, w_b, 1, bias=True)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        s = torch.sigmoid(self.expand(self.af(self.reduce(s))))
        return x * s


class Residual(nn.Module):
    """act(f(x) + shortcut(x)): ``f`` the block's layers (the last one a BN), ``proj`` the projection
    shortcut or None for the identity. Blocks R, X and Y."""

    def __init__(self, layers: list[nn.Module], proj: nn.Module | None, act: str = "relu"):
        super().__init__()
        self.proj = proj
        self.f = nn.Sequential(*layers)
        self.af = activation(act)

    @property
    def final_bn(self) -> nn.BatchNorm2d:
        # A property, not an attribute: an attribute would register the BN twice (aliased state_dict keys).
        return self.f[-1]

    def forward(self, x):
        shortcut = x if self.proj is None else self.proj(x)
        return self.af(self.f(x) + shortcut)


class Plain(nn.Sequential):
    """Layers in sequence with no residual (block V): no BN is zero-initialised."""

    final_bn = None


class Inverted(nn.Module):
    """f(x) [+ x when the shape allows]: MBConv's linear bottleneck, no activation after the sum. Its
    ``final_bn`` (the projection BN) is zero-initialised on request only where there is a residual."""

    def __init__(self, layers: list[nn.Module], skip: bool):
        super().__init__()
        self.skip = skip
        self.f = nn.Sequential(*layers)

    @property
    def final_bn(self) -> nn.BatchNorm2d | None:
        return self.f[-1] if self.skip else None

    def forward(self, x):
        return x + self.f(x) if self.skip else self.f(x)


class Head(nn.Module):
    """layers.head: [1×1 conv, BN, activation when head_width > 0], global average pool, then FC with bias."""

    def __init__(self, w_in: int, num_classes: int, head_width: int = 0, act: str = "relu"):
        super().__init__()
        self.conv = None
        if head_width:
            self.conv = nn.Sequential(conv(w_in, head_width, 1), norm(head_width), activation(act))
            w_in = head_width
        self.fc = nn.Linear(w_in, num_classes)

    def forward(self, x):
        if self.conv is not None:
            x = self.conv(x)
        return self.fc(x.mean((2, 3)))


class AnyNet(nn.Module):
    """stem → stages (each a list of blocks) → head; ``design`` and ``context`` are kept for reference.
    Built by :func:`regspace.blocks.network.build_model`."""

    def __init__(self, stem: nn.Module, stages: list[list[nn.Module]], head: nn.Module, *, design, context):
        super().__init__()
        self.design, self.context = design, context
        self.stem = stem
        self.stages = nn.Sequential(*(nn.Sequential(*blocks) for blocks in stages))
        self.head = head

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


def init_weights(model: nn.Module, *, zero_init_final_gamma: bool = False, conv_init: str = "reference") -> None:
    """As pycls (and torchvision): He-normal convs with fan_out = k·k·out_channels, NOT divided by the
    groups; BN at 1/0; small-normal FC. conv_init="grouped" divides by the groups (the fan-out one filter
    really sees): an experiment option only, see experiments/README.md. zero_init_final_gamma zeroes the
    last BN scale of each residual branch (R: the second BN, X/Y: the last, MB with a residual: the
    projection BN; V has none), so every residual block starts as its shortcut."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            if conv_init == "grouped":
                fan_out //= m.groups
            nn.init.normal_(m.weight, mean=0.0, std=(2.0 / fan_out) ** 0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.01)
            nn.init.zeros_(m.bias)
    if zero_init_final_gamma:
        for m in model.modules():
            bn = getattr(m, "final_bn", None) if isinstance(m, Residual | Inverted | Plain) else None
            if bn is not None:
                nn.init.zeros_(bn.weight)
