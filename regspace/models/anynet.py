"""nn.Module for any :class:`~regspace.design.Design` (stem → stages of X/Y blocks → head).

Each module mirrors one counting function of :mod:`regspace.complexity` (named in its docstring);
``tests/test_models.py`` checks that parameter counts agree for designs of every space.
"""

from __future__ import annotations

import torch
from torch import nn

from regspace.complexity import bottleneck_width, se_width
from regspace.design import Context, Design


def conv(w_in: int, w_out: int, k: int, *, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    """complexity.conv2d: padding k//2."""
    return nn.Conv2d(w_in, w_out, k, stride=stride, padding=k // 2, groups=groups, bias=bias)


def norm(channels: int) -> nn.BatchNorm2d:
    """complexity.norm2d."""
    return nn.BatchNorm2d(channels)


class Stem(nn.Module):
    """complexity.stem: 3×3 conv, BN, ReLU."""

    def __init__(self, in_channels: int, width: int, stride: int):
        super().__init__()
        self.conv = conv(in_channels, width, 3, stride=stride)
        self.bn = norm(width)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class SqueezeExcitation(nn.Module):
    """complexity.squeeze_excitation: pool → 1×1 conv (bias) → ReLU → 1×1 conv (bias) → sigmoid → scale."""

    def __init__(self, w_b: int, w_se: int):
        super().__init__()
        self.reduce = conv(w_b, w_se, 1, bias=True)
        self.expand = conv(w_se, w_b, 1, bias=True)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        s = torch.sigmoid(self.expand(torch.relu(self.reduce(s))))
        return x * s


class Block(nn.Module):
    """complexity.block: X block (residual bottleneck with group conv); Y block with SE."""

    def __init__(self, w_in: int, w_out: int, stride: int, b: float, g: int, se_ratio: float):
        super().__init__()
        w_b = int(bottleneck_width(w_out, b))
        self.proj = None
        if w_in != w_out or stride != 1:
            self.proj = nn.Sequential(conv(w_in, w_out, 1, stride=stride), norm(w_out))
        layers = [
            conv(w_in, w_b, 1),
            norm(w_b),
            nn.ReLU(inplace=True),
            conv(w_b, w_b, 3, stride=stride, groups=w_b // g),
            norm(w_b),
            nn.ReLU(inplace=True),
        ]
        if se_ratio:
            layers.append(SqueezeExcitation(w_b, int(se_width(w_in, se_ratio))))
        layers += [conv(w_b, w_out, 1), norm(w_out)]
        self.f = nn.Sequential(*layers)
        self.relu = nn.ReLU(inplace=True)

    @property
    def final_bn(self) -> nn.BatchNorm2d:
        # A property, not an attribute: an attribute would register the BN twice (aliased state_dict keys).
        return self.f[-1]

    def forward(self, x):
        shortcut = x if self.proj is None else self.proj(x)
        return self.relu(self.f(x) + shortcut)


class Head(nn.Module):
    """complexity.head: global average pool, then FC with bias."""

    def __init__(self, w_in: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(w_in, num_classes)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


class AnyNet(nn.Module):
    """The network of a design, fed as described by a context."""

    def __init__(
        self, design: Design, context: Context, *, zero_init_final_gamma: bool = False, conv_init: str = "reference"
    ):
        super().__init__()
        self.design, self.context = design, context
        self.stem = Stem(context.in_channels, design.stem.width, design.stem.stride)
        stages, w_in = [], design.stem.width
        for w, d, b, g in zip(design.widths, design.depths, design.bottleneck_ratios, design.group_widths):
            blocks = [Block(w_in if i == 0 else w, w, 2 if i == 0 else 1, b, g, design.se_ratio) for i in range(d)]
            stages.append(nn.Sequential(*blocks))
            w_in = w
        self.stages = nn.Sequential(*stages)
        self.head = Head(w_in, context.num_classes)
        self._init_weights(zero_init_final_gamma, conv_init)

    def _init_weights(self, zero_init_final_gamma: bool, conv_init: str):
        # As pycls (and torchvision): He-normal convs with fan_out = k·k·out_channels, NOT divided by the
        # groups; BN at 1/0; small-normal FC. conv_init="grouped" divides by the groups (the fan-out one
        # filter really sees): an experiment option only, see experiments/README.md.
        for m in self.modules():
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
            for m in self.modules():
                if isinstance(m, Block):
                    nn.init.zeros_(m.final_bn.weight)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


def build_model(design: Design, context: Context, **kwargs) -> AnyNet:
    return AnyNet(design, context, **kwargs)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
