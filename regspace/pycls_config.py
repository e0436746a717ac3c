"""A design as the reference code's own config (pycls's pycls/core/config.py keys), so pycls builds the
same network: `regspace describe DESIGN --format pycls`.

The mapping (pycls's names; DDS's b is pycls's 1 / bot_mul):

- stems: cifar -> res_stem_cifar (3×3 s1), imagenet -> simple_stem_in (3×3 s2), resnet -> res_stem_in
  (7×7 s2 + 3×3 max-pool s2); pycls's AnyNet and EfficientNet take 3 input channels, always;
- blocks: V -> vanilla_block, R -> res_basic_block, X -> res_bottleneck_block, Y -> the same with SE_ON
  (SE on the block's input width, as pycls's), all under MODEL.TYPE anynet; a RegNet generated from
  (d, w0, wa, wm) with b and g shared and every stride 2 -> MODEL.TYPE regnet with the REGNET keys
  (pycls regenerates the widths itself: regnet.py's generate_regnet, then adjust_block_compatibility);
- MB -> MODEL.TYPE effnet (EN keys): pycls's EfficientNet has the imagenet stem, a head conv, and SE in
  every block, so only such MB designs can be written.

What pycls cannot build the same raises UsageProblem with one line saying why; nothing approximate is
printed. Pure: no torch.
"""

from __future__ import annotations

from regspace.blocks.bottleneck import bottleneck_width
from regspace.blocks.bottleneck import se_width as bottleneck_se_width
from regspace.blocks.mbconv import se_width as mbconv_se_width
from regspace.design import Context, Design
from regspace.errors import UsageProblem

STEM_TYPES = {"cifar": "res_stem_cifar", "imagenet": "simple_stem_in", "resnet": "res_stem_in"}
BLOCK_TYPES = {"V": "vanilla_block", "R": "res_basic_block", "X": "res_bottleneck_block", "Y": "res_bottleneck_block"}
PYCLS_QUANTUM = 8  # generate_regnet's q (its default, which RegNet configs use)


def _cannot(reason: str) -> UsageProblem:
    return UsageProblem(f"pycls cannot build this design: {reason}")


def _block_inputs(design: Design) -> list[int]:
    """Each block's input width, in order (first block of a stage: the previous stage's width)."""
    out, w_in = [], design.stem.width
    for w, d in zip(design.widths, design.depths):
        out += [w_in] + [w] * (d - 1)
        w_in = w
    return out


def _number(x: float) -> float | int:
    """A whole float as an int, in lists (pycls's configs write [1, 6, 6]; yacs checks the type of a
    scalar key against its default, so scalars keep their type: BOT_MUL 1.0)."""
    return int(x) if float(x).is_integer() else float(x)


def pycls_config(design: Design, context: Context, regnet: dict | None = None) -> dict:
    """pycls's config (nested dict: section -> key -> value, in pycls's key order) that builds ``design``
    fed by ``context``: MODEL.TYPE anynet, regnet or effnet, MODEL.NUM_CLASSES, MODEL.ACTIVATION_FUN and
    the family's keys, every one written out (pycls's defaults are not relied on). ``regnet``: the
    generating parameters (d, w0, wa, wm, b, g) when the design is a RegNet (regspace.specs.parse_design).
    Raises UsageProblem (one line) when pycls cannot build the same network."""
    if context.in_channels != 3:
        raise _cannot(f"its input has {context.in_channels} channels; pycls's stems take 3 (RGB)")
    model = {"TYPE": "", "NUM_CLASSES": context.num_classes, "ACTIVATION_FUN": design.activation}
    if design.block == "MB":
        model["TYPE"] = "effnet"
        return {"MODEL": model, "EN": _effnet(design)}
    if design.block not in BLOCK_TYPES:
        raise _cannot(f"pycls has no block like regspace's {design.block}")
    common = {"STEM_TYPE": STEM_TYPES[design.stem.kind], "STEM_W": design.stem.width,
              "BLOCK_TYPE": BLOCK_TYPES[design.block]}  # fmt: skip
    se_on = design.block == "Y"
    if se_on:  # pycls leaves SE out of a block whose round(w_in · se_r) is 0; regspace keeps it
        if min(int(bottleneck_se_width(w, design.se_ratio)) for w in _block_inputs(design)) < 1:
            raise _cannot(f"se ratio {design.se_ratio:g} gives a block an SE of width 0, which pycls leaves out")
    bot_muls = [1 / b for b in design.bottleneck_ratios]
    if design.block in ("X", "Y"):
        for w, b, m in zip(design.widths, design.bottleneck_ratios, bot_muls):
            if int(round(w * m)) != int(bottleneck_width(w, b)):
                raise _cannot(f"bottleneck width round({w} / {b:g}) is not pycls's round({w} · {m!r})")
    if regnet and _regnet_expressible(design, regnet):
        model["TYPE"] = "regnet"
        # the generating g and b: pycls applies the compatibility rule itself, as regspace did
        se = {"SE_R": design.se_ratio} if se_on else {}
        section = {**common, "STRIDE": design.strides[0], "SE_ON": se_on, **se,
                   "DEPTH": int(regnet["d"]), "W0": int(regnet["w0"]), "WA": float(regnet["wa"]),
                   "WM": float(regnet["wm"]), "GROUP_W": int(regnet["g"]),
                   "BOT_MUL": 1 / float(regnet["b"]), "HEAD_W": design.head_width}  # fmt: skip
        return {"MODEL": model, "REGNET": section}
    model["TYPE"] = "anynet"
    section = {**common, "DEPTHS": list(design.depths), "WIDTHS": list(design.widths), "STRIDES": list(design.strides)}
    if design.block in ("X", "Y"):
        section["BOT_MULS"] = [_number(m) for m in bot_muls]
        section["GROUP_WS"] = list(design.group_widths)
    section.update(HEAD_W=design.head_width, SE_ON=se_on, **({"SE_R": design.se_ratio} if se_on else {}))
    return {"MODEL": model, "ANYNET": section}


def _regnet_expressible(design: Design, regnet: dict) -> bool:
    """Whether the REGNET keys say it all (``design`` was generated from ``regnet``, b and g shared, as
    pycls's GROUP_W and BOT_MUL): X or Y, one stride, w0 a multiple of generate_regnet's quantum, and a
    bot_mul its compatibility rule accepts (below 1 or whole). Else the ANYNET form is written."""
    bot_mul = 1 / float(regnet["b"])
    return (
        (bot_mul < 1 or bot_mul % 1 == 0)
        and design.block in ("X", "Y")
        and len(set(design.strides)) == 1
        and float(regnet["w0"]) % PYCLS_QUANTUM == 0
    )


def _effnet(design: Design) -> dict:
    """The EN section of an MB design, or UsageProblem where pycls's EfficientNet differs."""
    if design.stem.kind != "imagenet":
        raise _cannot(f"its stem is {design.stem.name}; pycls's EfficientNet has only the 3×3 stride-2 stem")
    if not design.head_width:
        raise _cannot("it has no head conv; pycls's EfficientNet always has one (EN.HEAD_W)")
    if design.se_ratio <= 0:
        raise _cannot("its MBConv blocks have no SE; pycls's MBConv always has one (EN.SE_R)")
    if min(int(mbconv_se_width(w, design.se_ratio)) for w in _block_inputs(design)) < 1:
        raise _cannot(f"se ratio {design.se_ratio:g} gives a block an SE of width 0; pycls would build it empty")
    return {
        "STEM_W": design.stem.width,
        "DEPTHS": list(design.depths),
        "WIDTHS": list(design.widths),
        "EXP_RATIOS": [_number(e) for e in design.expansions],
        "SE_R": design.se_ratio,
        "STRIDES": list(design.strides),
        "KERNELS": list(design.kernels),
        "HEAD_W": design.head_width,
        "DC_RATIO": 0.0,  # drop-connect and dropout: regspace trains without them
        "DROPOUT_RATIO": 0.0,
    }


def _yaml_value(v) -> str:
    if isinstance(v, bool):
        return "True" if v else "False"  # as pycls's configs write them
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_yaml_value(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(v)  # the shortest text that reads back as the same float
    return str(v)


def to_yaml(config: dict, comment: str = "") -> str:
    """The config as pycls's configs/*.yaml write it (two-level, lists in flow style); ``comment`` lines
    go first, each as a YAML comment."""
    lines = [f"# {c}" for c in comment.splitlines() if c]
    for section, keys in config.items():
        lines.append(f"{section}:")
        lines += [f"  {k}: {_yaml_value(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"
