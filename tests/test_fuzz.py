"""Malformed command lines and design strings, fed to the CLI in-process from a seeded generator.

Every one must end in exit 0 or in exactly one clear line ("regspace: error: …") with a non-zero exit
code — never a traceback, never an internal error (exit 70).
"""

import random

import pytest

COMMANDS = {
    "sample": [
        "--space",
        "-n",
        "--total",
        "--flops",
        "--params",
        "--acts",
        "--seed",
        "--preset",
        "--stem",
        "--resolution",
        "--in-channels",
        "--classes",
        "--max-candidates",
        "--queue",
        "--sweep",
    ],
    "describe": ["--preset", "--stem", "--resolution", "--in-channels", "--classes", "--json"],
    "status": ["--recipe-hash", "--json", "--queue", "--sweep"],
    "train": [
        "--space",
        "--limit",
        "--recipe",
        "--epochs",
        "--batch-size",
        "--lr",
        "--wd",
        "--augment",
        "--precision",
        "--data",
        "--data-dir",
        "--train-size",
        "--val-size",
        "--test-size",
        "--resolution",
        "--workers",
        "--devices",
        "--seed",
        "--queue",
        "--heartbeat",
        "--grace",
    ],
    "plot-edf": ["--spaces", "--normalize", "--band", "--bins", "-o", "--recipe-hash", "--error"],
    "plot-scatter": ["--space", "--x", "--boot", "-o"],
    "plot-widths": ["--space", "--top", "-o"],
    "compare": ["--spaces", "--normalize", "--json", "--error"],
    "report": ["-o", "--spaces", "--format"],
    "export": ["-o", "--format"],
    "collect": ["--queue", "--sweep"],
    "spaces": ["--json"],
}
FLAGS = {"--band", "--json"}
VALUES = [
    "",
    "-1",
    "0",
    "1",
    "3",
    "1e9",
    "nan",
    "inf",
    "-inf",
    "abc",
    "X_a",
    "x_Z",
    "RegNetX",
    "360M:400M",
    ":",
    "400M:360M",
    "::",
    "1M:",
    ":2M",
    "0.5G:0.1G",
    "cifar",
    "imagenet",
    "tiny",
    "mnist",
    "quick",
    "cifar10",
    "fashion-mnist",
    "imagefolder:/nonexistent",
    "/dev/null",
    "/etc/passwd",
    "edf.txt",
    "out.png",
    "flops",
    "depth",
    "cpu",
    "99",
    "0,1",
    "a,b,c",
    "\u00e9\u00e8",
    "\x00",
    "--",
    "-",
    "%s%s",
    "{}",
    "[]",
    "sqlite:///nonexistent-dir/q.db",
    "postgresql://x@127.0.0.1:1/none",
    "redis://x",
    "journal:///no/dir/q.log",
    "9" * 40,
    "-9" * 3,
    "0x10",
    "1,2,3,4",
    "2.5",
    "1.0e-300",
]
DESIGNS = [
    "RegNetX-200MF",
    "regnetx-200mg",
    "regnety_032",
    "regnet_y_3_2gf",
    "regnety_030",
    "regnet_y_128gf",
    "timm/regnetx_002.tag",
    "regnetx_99999999999999999999",
    "RegNetX-1e400GF",
    "regnet:",
    "regnet:d=",
    "regnet:d=13",
    "regnet:d=13,w0=24,wa=36.44",
    "regnet:d=13,w0=24,wa=36.44,wm=2.49,g=0",
    "regnet:d=13,w0=24,wa=-1,wm=2.49",
    "regnet:d=1e9,w0=8,wa=1,wm=2",
    "regnet:d=13,w0=24,wa=36.44,wm=1",
    "regnet:d=13,w0=25,wa=36.44,wm=2.49",
    "regnet:d=a,w0=b,wa=c,wm=d",
    "regnet:d=13,d=14,w0=24,wa=1,wm=2",
    "anynet:",
    "anynet:d=1;w=8",
    "anynet:d=1,2;w=8,16;b=3;g=5",
    "anynet:d=0;w=8",
    "anynet:d=1;w=0",
    "anynet:d=1,1;w=8",
    "anynet:d=1;w=8;b=1,2",
    "anynet:d=1;w=8;se=2",
    "anynet:d=1;w=8;g=0",
    "anynet:d=1;w=99999999",
    "anynet:d=;w=",
    "anynet:x=1",
    # block families (issue 21): every new key, good and bad values
    "anynet:d=1,2;w=16,24;s=1,2;block=MB;k=3,5;e=1,6;se=0.25;stem=cifar;stem_w=16;head=64;act=silu",
    "anynet:d=1;w=10;b=0.5;g=3",
    "anynet:d=1;w=8;block=V;b=2",
    "anynet:d=1;w=8;block=R;act=gelu",
    "anynet:d=1;w=8;block=MB;k=4",
    "anynet:d=1;w=8;block=MB;e=0",
    "anynet:d=1;w=8;s=3",
    "anynet:d=1;w=8;stem=resnet;stem_w=-1",
    "anynet:d=1;w=8;head=1e9",
    "anynet:d=1,1,1,1,1,1,1,1;w=8,8,8,8,8,8,8,8",
    "anynet:d=1;w=8;block=",
    "EfficientNet-B3",
    "efficientnet_b9",
    "resnext50_32x8d",
    "R-50",
    "resnet18",
    ":",
    "",
    "\x00",
]


REQUIRED = {
    "sample": ["--space"],
    "plot-scatter": ["--space"],
    "plot-widths": ["--space"],
    "export": ["-o"],
    "collect": ["--queue"],
}
SPACE_VALUES = ["X_a", "x_b", "AnyNetX_C", "X_d", "x_e", "RegNet", "regnetx", "RegNetY", "Y_c", "X_q", "", "RegNetZ",
                "Vanilla", "ResNeXt-B", "MB_e", "RegNetX_swish", "mb_q"]  # fmt: skip
GOOD = {
    "--space": SPACE_VALUES,
    "--spaces": ["X_a", "X_a,RegNetX", "regnetx", "X_e", "X_a,,", ","],
    "-o": [
        "out.png",
        "out.svg",
        "out.pdf",
        "out.html",
        "out.md",
        "out.csv",
        "out.json",
        "out.parquet",
        "out.gif",
        "/dev/null/x.png",
        "",
    ],
    "--x": ["d,w4,g,b,wa,wm,flops", "d1,w1", "flops", "bogus", "d,,", ""],
    "--normalize": ["flops", "params", "acts", "depth"],
    "--error": ["error", "min_error", "test_error"],
    "--format": ["html", "md", "csv", "parquet", "json", "xml"],
}


def command_lines(n=240, seed=0):
    """Mostly well-formed command lines with one or two bad or extreme values, plus some junk."""
    rng = random.Random(seed)
    out = []
    reports = 0
    for _ in range(n):
        cmd = rng.choice(list(COMMANDS))
        if cmd == "report":  # a report that succeeds renders 8 figures (seconds each): a few suffice here
            reports += 1
            if reports > 4:
                cmd = rng.choice([c for c in COMMANDS if c != "report"])
        args = [cmd]
        if cmd == "describe":
            args += rng.sample(DESIGNS, rng.randint(1, 3))
        opts = list(REQUIRED.get(cmd, [])) + rng.sample(COMMANDS[cmd], min(len(COMMANDS[cmd]), rng.randint(0, 3)))
        if rng.random() < 0.08:
            opts.append(rng.choice(["--bogus", "-z"]))
        for opt in dict.fromkeys(opts):
            args.append(opt)
            if opt in FLAGS:
                continue
            pool = GOOD.get(opt) if rng.random() < 0.6 else None
            args.append(rng.choice(pool or VALUES))
        if rng.random() < 0.05:
            rng.shuffle(args)
        out.append(args)
    return out


LINES = command_lines()


def test_there_are_at_least_200():
    assert len(LINES) >= 200


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory):
    from regspace.synthetic import make_synthetic_store

    path = tmp_path_factory.mktemp("fuzz") / "store"
    make_synthetic_store(path, ("X_a", "RegNetX"), n=30, diverged=0.1)
    return path


@pytest.mark.parametrize("args", LINES, ids=lambda a: " ".join(a)[:60].encode("unicode_escape").decode())
def test_one_clear_line_or_success(args, tmp_path, monkeypatch, run_cli, trained_store):
    import shutil

    monkeypatch.chdir(tmp_path)  # outputs land in a scratch directory
    monkeypatch.setenv("REGSPACE_QUEUE_TIMEOUT", "1")
    store = tmp_path / "store"
    shutil.copytree(trained_store, store)  # a store with results, so read commands reach the analyses
    monkeypatch.setenv("REGSPACE_STORE", str(store))
    if args[0] == "train" and "--data-dir" not in args:
        args = [*args, "--data-dir", str(tmp_path / "no-data")]  # stop before real training, after the checks
    code, out, err = run_cli(*args)
    assert "Traceback" not in err and code != 70, err
    if code != 0:
        lines = err.strip().splitlines()
        # `describe` with several designs says one line per design it cannot read (and describes the rest)
        allowed = len(args) - 1 if args[0] == "describe" else 1
        assert 1 <= len(lines) <= allowed and all(line.startswith("regspace: error:") for line in lines), err


def toml_spaces(n=60, seed=1):
    """TOML spaces with the block families' fields (issue 21), each with one or two bad or extreme values."""
    rng = random.Random(seed)
    keys = {
        "family": ['"anynet"', '"regnet"', '"nds"', '"mbconv"', '"vit"', "3"],
        "base": ['"X_c"', '"MB_a"', '"ResNeXt-A"', '"RegNetX"', '"nope"'],
        "block": ['"V"', '"R"', '"X"', '"Y"', '"MB"', '"Z"', "1"],
        "stages": ["1", "3", "7", "8", "0", '"four"'],
        "strides": ["[1, 2, 2]", "[2]", "[3, 1, 1]", "[]", '"2"'],
        "activation": ['"relu"', '"silu"', '"gelu"', "0"],
        "head_width": ["0", "64", "-1", "1.5"],
        "stem_width": ["16", "0"],
        "se_ratio": ["0.25", "0", "2"],
        "shared": ['["e"]', '["b", "g"]', '["q"]'],
        "increasing": ['["w"]', '["k"]', "[1]"],
    }
    params = [
        "[params.b]\nvalues = [0.25, 0.5]", "[params.g]\nvalues = [1, 3]", "[params.k]\nvalues = [3, 5]",
        "[params.e]\nvalues = [1, 6]", '[params.act]\nvalues = ["relu", "silu"]', '[params.act]\nvalues = ["gelu"]',
        "[params.w]\ndist = \"uniform\"\nlow = 12\nhigh = 100\nq = 8", "[params.d]\nvalues = []",
        "[params.zz]\nvalues = [1]",
    ]  # fmt: skip
    out = []
    for i in range(n):
        lines = [f'name = "fz{i}"']
        lines += [f"{k} = {rng.choice(v)}" for k, v in rng.sample(sorted(keys.items()), rng.randint(1, 4))]
        lines += rng.sample(params, rng.randint(0, 2))
        out.append("\n".join(lines) + "\n")
    return out


@pytest.mark.parametrize("text", toml_spaces(), ids=lambda t: t.splitlines()[1][:40] if "\n" in t else t)
def test_toml_spaces_with_new_fields_are_one_clear_line_or_success(text, tmp_path, run_cli):
    """A TOML space with the new fields, well-formed or not: it samples, or it stops with one line."""
    path = tmp_path / "space.toml"
    path.write_text(text)
    code, out, err = run_cli("sample", "--space", path, "-n", "2", "--preset", "mnist", "--max-candidates", "20000",
                             "--store", tmp_path / "s")  # fmt: skip
    assert "Traceback" not in err and code != 70, err
    if code != 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("regspace: error:"), (text, err)

