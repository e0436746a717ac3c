"""Reference models that are not RegNets: EfficientNet-B0…B5, ResNet-50/101/152, ResNeXt-50/101/152 (32×4d).

Each is the network of pycls's DDS baselines (``configs/dds_baselines/{effnet,resnet,resnext}``), written
as a regspace Design so that its complexity is counted by the same walker as every sampled design:

- EfficientNet-Bk: seven stages of MB blocks (depthwise k×k, expansion e, SE ratio 0.25 of the block input
  width), strides 1,2,2,2,1,2,1, an imagenet stem (3×3 stride 2) of width stem_w, a 1×1 head of width
  head_w, SiLU throughout. pycls counts each at its own training resolution (224, 240, 260, 300, 380, 456).
- ResNet-n: four stages of X blocks with bottleneck ratio b = 4 (pycls bot_mul 1/4) and one group
  (group width = bottleneck width), strides 1,2,2,2, the resnet stem (7×7 stride 2, 3×3 max-pool) of width
  64, ReLU, no head conv; 224 px.
- ResNeXt-n-32x4d: the same with b = 2 and 32 groups (group widths 4, 8, 16, 32).

Only the figures that define the networks are kept here; flops, params and acts are derived, and
tests/test_zoo.py checks them against pycls's published figures (tests/data/reference_models.tsv).
"""

from __future__ import annotations

from dataclasses import dataclass

from regspace.design import Design, get_stem

# pycls configs/dds_baselines/effnet/EN-Bk: stem width, depths, widths, head width, training resolution.
EN_STRIDES = (1, 2, 2, 2, 1, 2, 1)
EN_EXPANSIONS = (1, 6, 6, 6, 6, 6, 6)
EN_KERNELS = (3, 3, 5, 3, 5, 5, 3)
EN_SE_RATIO = 0.25
EFFICIENTNET = {
    0: (32, (1, 2, 2, 3, 3, 4, 1), (16, 24, 40, 80, 112, 192, 320), 1280, 224),
    1: (32, (2, 3, 3, 4, 4, 5, 2), (16, 24, 40, 80, 112, 192, 320), 1280, 240),
    2: (32, (2, 3, 3, 4, 4, 5, 2), (16, 24, 48, 88, 120, 208, 352), 1408, 260),
    3: (40, (2, 3, 3, 5, 5, 6, 2), (24, 32, 48, 96, 136, 232, 384), 1536, 300),
    4: (48, (2, 4, 4, 6, 6, 8, 2), (24, 32, 56, 112, 160, 272, 448), 1792, 380),
    5: (48, (3, 5, 5, 7, 7, 9, 3), (24, 40, 64, 128, 176, 304, 512), 2048, 456),
}

# pycls configs/dds_baselines/{resnet,resnext}: depth -> blocks per stage; stage widths are shared.
RESNET_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
RESNET_WIDTHS = (256, 512, 1024, 2048)
RESNET_STRIDES = (1, 2, 2, 2)
RESNET_STEM_W = 64


@dataclass(frozen=True)
class Reference:
    """A non-RegNet reference model: its canonical name, its family, the size that orders the family, and
    the input resolution pycls counts it at (pixels)."""

    name: str
    family: str  # "EfficientNet" | "ResNet" | "ResNeXt-32x4d"
    size: int  # EfficientNet: k of Bk; ResNet / ResNeXt: the depth n
    resolution: int = 224


REFERENCES = {
    **{f"EfficientNet-B{k}": Reference(f"EfficientNet-B{k}", "EfficientNet", k, v[4]) for k, v in EFFICIENTNET.items()},
    **{f"ResNet-{n}": Reference(f"ResNet-{n}", "ResNet", n) for n in RESNET_DEPTHS},
    **{f"ResNeXt-{n}-32x4d": Reference(f"ResNeXt-{n}-32x4d", "ResNeXt-32x4d", n) for n in RESNET_DEPTHS},
}


def reference_design(name: str, stem=None):
    """The regspace Design of the canonical reference ``name`` (a key of REFERENCES).

    ``stem``: a regspace Stem to use instead of the model's own (for another context, e.g. CIFAR); by
    default the model's own stem kind and width.
    """
    ref = REFERENCES[name]
    if ref.family == "EfficientNet":
        stem_w, depths, widths, head_w, _ = EFFICIENTNET[ref.size]
        n = len(depths)
        return Design.from_sampled(
            list(widths),
            list(depths),
            [1.0] * n,
            [1] * n,
            se_ratio=EN_SE_RATIO,
            stem=stem or get_stem("imagenet", width=stem_w),
            block="MB",
            strides=list(EN_STRIDES),
            kernels=list(EN_KERNELS),
            expansions=list(EN_EXPANSIONS),
            head_width=head_w,
            activation="silu",
        )
    depths = RESNET_DEPTHS[ref.size]
    if ref.family == "ResNet":  # one group: the group width is the whole bottleneck w / b
        b, gs = 4.0, [w // 4 for w in RESNET_WIDTHS]
    else:  # 32 groups of 4, 8, 16, 32 channels
        b, gs = 2.0, [w // 2 // 32 for w in RESNET_WIDTHS]
    return Design.from_sampled(
        list(RESNET_WIDTHS),
        list(depths),
        [b] * 4,
        gs,
        stem=stem or get_stem("resnet", width=RESNET_STEM_W),
        block="X",
        strides=list(RESNET_STRIDES),
        activation="relu",
    )
