"""Taking a design elsewhere (issue 24 §6): `describe --format pycls` checked against pycls's own definitions
(re-typed here from pycls/models/regnet.py, anynet.py, effnet.py, blocks.py and core/config.py; pycls is not
installed), and `export-model` loaded by a Python that never imports regspace."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from regspace.design import Context, get_stem
from regspace.specs import describe_pycls, parse_design

IMAGENET = Context(224, 3, 1000)


# -- pycls's definitions, re-typed -------------------------------------------------------------------


def pycls_generate_regnet(w_a, w_0, w_m, d, q=8):
    """pycls/models/regnet.py generate_regnet: per-stage widths and depths."""
    ws_cont = np.arange(d) * w_a + w_0
    ks = np.round(np.log(ws_cont / w_0) / np.log(w_m))
    ws_all = np.round(np.divide(w_0 * np.power(w_m, ks), q)).astype(int) * q
    ws, ds = np.unique(ws_all, return_counts=True)
    return ws.tolist(), ds.tolist()


def pycls_adjust_block_compatibility(ws, bs, gs):
    """pycls/models/blocks.py adjust_block_compatibility (bs are bot_muls)."""
    vs = [int(max(1, w * b)) for w, b in zip(ws, bs)]
    gs = [int(min(g, v)) for g, v in zip(gs, vs)]
    ms = [np.lcm(g, int(b)) if b > 1 else g for g, b in zip(gs, bs)]
    vs = [max(m, int(round(v / m) * m)) for v, m in zip(vs, ms)]
    ws = [int(v / b) for v, b in zip(vs, bs)]
    return ws, bs, gs


def pycls_regnet_stages(r: dict):
    """pycls's generate_regnet_full on the REGNET section: (ws, ds, ss, bs, gs)."""
    ws, ds = pycls_generate_regnet(r["WA"], r["W0"], r["WM"], r["DEPTH"])
    ss = [r["STRIDE"]] * len(ws)
    ws, bs, gs = pycls_adjust_block_compatibility(ws, [r["BOT_MUL"]] * len(ws), [r["GROUP_W"]] * len(ws))
    return ws, ds, ss, bs, gs


def _conv(w_in, w_out, k, groups=1, bias=False):
    return k * k * w_in * w_out // groups + (w_out if bias else 0)


def _bn(w):
    return 2 * w


STEM_PARAMS = {  # pycls/models/anynet.py: conv k×k from 3 channels + BN
    "res_stem_cifar": lambda w: _conv(3, w, 3) + _bn(w),
    "simple_stem_in": lambda w: _conv(3, w, 3) + _bn(w),
    "res_stem_in": lambda w: _conv(3, w, 7) + _bn(w),
}


def pycls_anynet_params(p: dict, num_classes: int) -> int:
    """Parameters of pycls's AnyNet built from an ANYNET section (anynet.py, block by block)."""
    total = STEM_PARAMS[p["STEM_TYPE"]](p["STEM_W"])
    se_r = p.get("SE_R", 0.25) if p["SE_ON"] else 0
    n = len(p["DEPTHS"])
    bms, gws = p.get("BOT_MULS") or [None] * n, p.get("GROUP_WS") or [None] * n
    w_in = p["STEM_W"]
    for d, w, s, bm, gw in zip(p["DEPTHS"], p["WIDTHS"], p["STRIDES"], bms, gws):
        for i in range(d):
            stride = s if i == 0 else 1
            kind = p["BLOCK_TYPE"]
            if kind != "vanilla_block" and (w_in != w or stride != 1):
                total += _conv(w_in, w, 1) + _bn(w)  # projection
            if kind in ("vanilla_block", "res_basic_block"):
                total += _conv(w_in, w, 3) + _bn(w) + _conv(w, w, 3) + _bn(w)
            else:
                w_b = int(round(w * bm))
                w_se = int(round(w_in * se_r))
                total += _conv(w_in, w_b, 1) + _bn(w_b) + _conv(w_b, w_b, 3, groups=w_b // gw) + _bn(w_b)
                if w_se:
                    total += _conv(w_b, w_se, 1, bias=True) + _conv(w_se, w_b, 1, bias=True)
                total += _conv(w_b, w, 1) + _bn(w)
            w_in = w
    if p["HEAD_W"] > 0:
        total += _conv(w_in, p["HEAD_W"], 1) + _bn(p["HEAD_W"])
        w_in = p["HEAD_W"]
    return total + w_in * num_classes + num_classes


def pycls_effnet_params(p: dict, num_classes: int) -> int:
    """Parameters of pycls's EffNet built from an EN section (effnet.py)."""
    total = _conv(3, p["STEM_W"], 3) + _bn(p["STEM_W"])
    w_in = p["STEM_W"]
    for d, w, e, k in zip(p["DEPTHS"], p["WIDTHS"], p["EXP_RATIOS"], p["KERNELS"]):  # strides: no parameters
        for _ in range(d):
            w_exp = int(w_in * e)
            if w_exp != w_in:
                total += _conv(w_in, w_exp, 1) + _bn(w_exp)
            total += _conv(w_exp, w_exp, k, groups=w_exp) + _bn(w_exp)
            w_se = int(w_in * p["SE_R"])
            total += _conv(w_exp, w_se, 1, bias=True) + _conv(w_se, w_exp, 1, bias=True)
            total += _conv(w_exp, w, 1) + _bn(w)
            w_in = w
    total += _conv(w_in, p["HEAD_W"], 1) + _bn(p["HEAD_W"])
    return total + p["HEAD_W"] * num_classes + num_classes


# pycls/core/config.py's defaults' types: yacs refuses a merged scalar of another type (1 for BOT_MUL 1.0)
PYCLS_TYPES = {
    "MODEL": {"TYPE": str, "NUM_CLASSES": int, "ACTIVATION_FUN": str},
    "ANYNET": {"STEM_TYPE": str, "STEM_W": int, "BLOCK_TYPE": str, "DEPTHS": list, "WIDTHS": list, "STRIDES": list,
               "BOT_MULS": list, "GROUP_WS": list, "HEAD_W": int, "SE_ON": bool, "SE_R": float},
    "REGNET": {"STEM_TYPE": str, "STEM_W": int, "BLOCK_TYPE": str, "STRIDE": int, "SE_ON": bool, "SE_R": float,
               "DEPTH": int, "W0": int, "WA": float, "WM": float, "GROUP_W": int, "BOT_MUL": float, "HEAD_W": int},
    "EN": {"STEM_W": int, "DEPTHS": list, "WIDTHS": list, "EXP_RATIOS": list, "SE_R": float, "STRIDES": list,
           "KERNELS": list, "HEAD_W": int, "DC_RATIO": float, "DROPOUT_RATIO": float},
}  # fmt: skip


def _config(spec: str, context: Context = IMAGENET, stem: str = "imagenet"):
    design, _ = parse_design(spec, stem=get_stem(stem))
    cfg = yaml.safe_load(describe_pycls([spec], stem=get_stem(stem), context=context))
    for section, keys in cfg.items():
        for k, v in keys.items():
            assert type(v) is PYCLS_TYPES[section][k], (section, k, v)  # a key pycls has, of its type
    return design, cfg


@pytest.mark.parametrize(
    "spec",
    ["RegNetX-200MF", "RegNetX-3.2GF", "RegNetY-200MF", "RegNetY-1.6GF", "RegNetY-32GF",
     "regnet:d=10,w0=16,wa=10,wm=2.5,g=64,b=2",  # g above the bottleneck width: pycls clips it, as regspace
     "regnet:d=12,w0=24,wa=20,wm=2.2,g=8,b=0.5"],  # inverted bottleneck (bot_mul 2)
)  # fmt: skip
def test_regnet_keys_regenerate_the_design_by_pycls_rules(spec):
    design, cfg = _config(spec)
    assert cfg["MODEL"]["TYPE"] == "regnet" and cfg["MODEL"]["NUM_CLASSES"] == 1000
    r = cfg["REGNET"]
    ws, ds, ss, bs, gs = pycls_regnet_stages(r)
    assert ws == list(design.widths) and ds == list(design.depths)
    assert gs == list(design.group_widths) and ss == list(design.strides)
    assert bs == [1 / b for b in design.bottleneck_ratios]
    assert r["SE_ON"] == (design.block == "Y") and r["SE_R" if r["SE_ON"] else "STEM_W"] == (
        design.se_ratio if r["SE_ON"] else design.stem.width
    )
    anynet = {"STEM_TYPE": r["STEM_TYPE"], "STEM_W": r["STEM_W"], "BLOCK_TYPE": r["BLOCK_TYPE"], "DEPTHS": ds,
              "WIDTHS": ws, "STRIDES": ss, "BOT_MULS": bs, "GROUP_WS": gs, "HEAD_W": r["HEAD_W"],
              "SE_ON": r["SE_ON"], "SE_R": r.get("SE_R", 0.25)}  # fmt: skip
    assert pycls_anynet_params(anynet, 1000) == design.complexity(IMAGENET).params


@pytest.mark.parametrize(
    "spec, stem, block_type",
    [
        ("anynet:d=1,2,4,2;w=32,64,128,256;b=2;g=16;s=1,2,2,2", "imagenet", "res_bottleneck_block"),
        ("anynet:d=1,3,2;w=24,48,96;b=1,2,4;g=8,16,24;se=0.25", "resnet", "res_bottleneck_block"),
        ("anynet:d=2,2;w=16,32;block=R;head=64", "cifar", "res_basic_block"),
        ("anynet:d=1,2;w=16,32;block=V;act=silu", "cifar", "vanilla_block"),
    ],
)
def test_anynet_keys_build_the_same_network(spec, stem, block_type):
    design, cfg = _config(spec, stem=stem)
    a = cfg["ANYNET"]
    assert cfg["MODEL"]["TYPE"] == "anynet" and cfg["MODEL"]["ACTIVATION_FUN"] == design.activation
    assert a["BLOCK_TYPE"] == block_type
    assert a["STEM_TYPE"] == {"cifar": "res_stem_cifar", "imagenet": "simple_stem_in", "resnet": "res_stem_in"}[stem]
    assert (a["DEPTHS"], a["WIDTHS"], a["STRIDES"]) == (list(design.depths), list(design.widths), list(design.strides))
    if block_type == "res_bottleneck_block":
        assert a["BOT_MULS"] == [1 / b for b in design.bottleneck_ratios] and a["GROUP_WS"] == list(design.group_widths)
    assert pycls_anynet_params(a, 1000) == design.complexity(IMAGENET).params


def test_mbconv_design_is_an_effnet_config():
    spec = "anynet:d=1,2,2,3;w=16,24,40,80;s=1,2,2,2;block=MB;e=1,6,6,6;k=3,3,5,3;se=0.25;head=1280"
    design, cfg = _config(spec)
    e = cfg["EN"]
    assert cfg["MODEL"] == {"TYPE": "effnet", "NUM_CLASSES": 1000, "ACTIVATION_FUN": "silu"}
    assert (e["DEPTHS"], e["WIDTHS"], e["STRIDES"], e["KERNELS"]) == (
        list(design.depths),
        list(design.widths),
        list(design.strides),
        list(design.kernels),
    )
    assert e["EXP_RATIOS"] == list(design.expansions) and e["SE_R"] == 0.25 and e["HEAD_W"] == 1280
    assert e["DC_RATIO"] == 0 and e["DROPOUT_RATIO"] == 0
    assert pycls_effnet_params(e, 1000) == design.complexity(IMAGENET).params


@pytest.mark.parametrize(
    "args, why",
    [
        (["RegNetX-200MF", "--preset", "mnist"], "1 channels"),
        (["anynet:d=1,2;w=16,24;block=MB;se=0.25"], "no head conv"),
        (["anynet:d=1,2;w=16,24;block=MB;head=64"], "no SE"),
        (["anynet:d=1,2;w=16,24;block=MB;se=0.25;head=64;stem=cifar"], "stem is cifar"),
        (["anynet:d=1,2;w=16,24;block=MB;se=0.02;head=64"], "SE of width 0"),
        (["anynet:d=1,2;w=16,24;b=1;g=8;se=0.01"], "SE of width 0"),
    ],
)
def test_what_pycls_cannot_build_is_one_line(run_cli, args, why):
    code, out, err = run_cli("describe", *args, "--format", "pycls")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("regspace: error:") and why in lines[0], err


def test_several_designs_are_yaml_documents(run_cli):
    code, out, _ = run_cli("describe", "RegNetX-200MF", "anynet:d=1,1;w=16,32;block=R", "--format", "pycls")
    docs = list(yaml.safe_load_all(out))
    assert code == 0 and [d["MODEL"]["TYPE"] for d in docs] == ["regnet", "anynet"]
    assert out.startswith("# RegNetX-200MF: ")


# -- export-model ------------------------------------------------------------------------------------

CHILD = r"""
import sys, torch
program = torch.export.load(sys.argv[1]).module()
x = torch.load(sys.argv[2])
torch.save(program(x), sys.argv[3])
print([m for m in sys.modules if m.split(".")[0] == "regspace"])
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec, context",
    [
        ("anynet:d=1,2;w=16,32;b=2;g=8;se=0.25", Context(16, 3, 10)),  # Y: SE, projection, bottleneck
        ("anynet:d=1,2;w=16,24;s=1,2;block=MB;e=1,4;k=3,5;se=0.25;head=64", Context(16, 1, 7)),
        ("anynet:d=1,1;w=8,16;block=V;stem=resnet", Context(32, 3, 5)),
    ],
)
def test_exported_program_runs_without_regspace(tmp_path, spec, context):
    import torch

    from regspace.model_export import export_model

    design, _ = parse_design(spec, stem=get_stem("cifar"))
    path = tmp_path / "net.pt2"
    info = export_model(design, context, path, seed=5)
    assert info["params"] == design.complexity(context).params
    x = torch.randn(
        3, context.in_channels, context.resolution, context.resolution, generator=torch.Generator().manual_seed(1)
    )  # noqa: E501  (batch 3: not the example's 2)
    torch.save(x, tmp_path / "x.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # regspace is not even importable there
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.strip().replace("'", '"')) == []  # no regspace module was loaded
    from regspace.blocks.network import build_model

    torch.manual_seed(5)
    with torch.no_grad():  # the module itself, in eval mode: BatchNorm on its running statistics
        expected = build_model(design, context).eval()(x)
    got = torch.load(tmp_path / "y.pt")
    assert got.shape == (3, context.num_classes)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_export_model_command(run_cli, tmp_path):
    out_file = tmp_path / "a" / "n.pt2"
    code, out, _ = run_cli("export-model", "anynet:d=1;w=8;block=R", "-o", out_file, "--preset", "mnist")
    assert code == 0 and (tmp_path / "a" / "n.pt2").exists() and "initialised weights (seed 0)" in out
    (tmp_path / "file").write_text("")
    code, _, err = run_cli("export-model", "anynet:d=1;w=8;block=R", "-o", tmp_path / "file" / "n.pt2")
    assert code != 0 and len(err.strip().splitlines()) == 1 and err.startswith("regspace: error:")
