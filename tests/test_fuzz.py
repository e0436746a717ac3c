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


@pytest.mark.slow
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



# -- this turn's inputs (issue 25 §4): new commands and options, block text forms, [hparams] in space files,
# study files with regimes, seeds and drawn hyperparameters. In process, no training.

NEW_COMMANDS = {
    "describe": ["--format", "--preset", "--resolution", "--stem", "--json"],
    "export-model": ["--preset", "--resolution", "--stem", "--in-channels", "--seed"],
    "train": ["--seeds", "--seed", "--space", "--epochs"],
    "importance": ["--spaces", "--seed", "--json", "--error", "--draws", "--recipe-hash"],
    "trends": ["--space", "--top", "--plot", "--json", "--error", "--draws"],
    "speed": ["--plot", "--json", "--recipe-hash"],
    "fidelity": ["--top", "--k", "--epochs", "--train-size", "--spaces", "--json", "--plot", "--seed"],
    "compare": ["--draws", "--epoch", "--spaces"],
}
NEW_REQUIRED = {
    "export-model": ["-o"],
    "importance": ["--method", "--boot", "--perm"],  # PED-ANOVA and few resamples: seconds, not minutes
    "fidelity": ["--long-hash"],  # analyses a recorded check: never trains
}
NEW_GOOD = {
    "--format": ["pycls", "text", "json", "yaml", ""],
    "--seeds": ["0,1", "0,1,2", "0,0", "1,", "-1", "a,b", "2147483648", ""],
    "--method": ["ped-anova", "auto-ish", "fanova2", ""],
    "--boot": ["0", "2"],
    "--perm": ["19", "3"],
    "--top": ["4", "3", "0.2", "1.5", "0"],
    "--k": ["16", "8", "0"],
    "--long-hash": ["abc", "", "0" * 12],
    "--space": ["RegNetX", "X_a", "RegNetX@1M:2M", "X_a@", "@"],
    "--spaces": ["X_a,RegNetX", "RegNetX@1M:2M", "X_a@3M:6M,RegNetX"],
    "--draws": ["1", "8", "0"],
    "--epoch": ["1", "9"],
    "-o": ["net.pt2", "/dev/null/net.pt2", ""],
    "--plot": ["t.png", "t.gif", "/dev/null/t.png"],
}
# block text forms (issue 21's keys, turn by turn): every key with good, odd and bad values
BLOCK_FORMS = [
    "anynet:d=1;w=8;block=mb",
    "anynet:d=1;w=8;block=Y;se=0",
    "anynet:d=1;w=8;block=X;b=0.25;g=1",
    "anynet:d=1;w=8;block=MB;e=6;k=7",
    "anynet:d=1;w=8;block=MB;se=0",
    "anynet:d=1;w=8;k=3",
    "anynet:d=1;w=8;e=6",
    "anynet:d=1;w=8;act=silu,relu",
    "anynet:d=1;w=8;act=",
    "anynet:d=1;w=8;s=1;s=2",
    "anynet:d=1,2;w=8;s=1,2",
    "anynet:d=1;w=8;block=V;head=0;stem=imagenet",
    "anynet:d=1;w=8;stem=cifar;stem_w=0",
    "anynet:d=1;w=8;block=R;se=0.25",
    "anynet:d=1;w=8;block=MB;e=1.5;k=3",
    "anynet:d=2;w=16;block=MB;e=6;k=5;se=0.25;head=1280;act=silu;stem=imagenet",
    "regnet:d=13,w0=24,wa=36.44,wm=2.49,g=8,block=Y",
    "regnet:d=13,w0=24,wa=36.44,wm=2.49,se=0.25",
    "RegNetY-200MF",
    "EfficientNet-B0",
    "ResNet-50",
]


def new_command_lines(n=70, seed=2):
    """Command lines for this turn's commands and options; a few export-model lines (each may export)."""
    rng = random.Random(seed)
    out, exports = [], 0
    for _ in range(n):
        cmd = rng.choice(list(NEW_COMMANDS))
        if cmd == "export-model":
            exports += 1
            if exports > 3:
                cmd = "describe"
        args = [cmd]
        if cmd in ("describe", "export-model"):
            args += rng.sample(BLOCK_FORMS + DESIGNS[:8], 1 if cmd == "export-model" else rng.randint(1, 3))
        opts = list(NEW_REQUIRED.get(cmd, [])) + rng.sample(NEW_COMMANDS[cmd], rng.randint(0, 3))
        for opt in dict.fromkeys(opts):
            args.append(opt)
            if opt in FLAGS:
                continue
            pool = NEW_GOOD.get(opt) or GOOD.get(opt)
            args.append(rng.choice(pool if pool and rng.random() < 0.7 else VALUES))
        out.append(args)
    return out


NEW_LINES = new_command_lines()


@pytest.mark.parametrize("args", NEW_LINES, ids=lambda a: " ".join(a)[:60].encode("unicode_escape").decode())
def test_new_commands_are_one_clear_line_or_success(args, tmp_path, monkeypatch, run_cli, trained_store):
    test_one_clear_line_or_success(args, tmp_path, monkeypatch, run_cli, trained_store)


HPARAM_TABLES = [
    '[hparams.lr]\ndist = "log_uniform"\nlow = 0.05\nhigh = 1',
    '[hparams.weight_decay]\ndist = "log_uniform"\nlow = 1e-5\nhigh = 1e-3',
    "[hparams.momentum]\nvalues = [0.8, 0.9]",
    '[hparams.lr]\ndist = "log_uniform"\nlow = 1\nhigh = 0.05',
    '[hparams.lr]\ndist = "log_uniform"\nlow = -1\nhigh = 1',
    '[hparams.lr]\ndist = "normal"\nlow = 0\nhigh = 1',
    "[hparams.lr]\nvalues = []",
    '[hparams.lr]\nvalues = ["fast"]',
    '[hparams.epochs]\ndist = "uniform"\nlow = 1\nhigh = 9',
    '[hparams.momentum]\ndist = "uniform"\nlow = 0.5\nhigh = 1.5',
    "[hparams.label_smoothing]\nvalues = [0, 1]",
    "[hparams]\nlr = 0.1",
    'hparams = "lr"',
]


def hparam_spaces(n=30, seed=3):
    """RegNet/AnyNet TOML spaces that draw recipe fields too ([hparams.*]), good and bad."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        base = rng.choice(['base = "RegNetX"', 'base = "X_c"', 'family = "regnet"', 'base = "MB_e"'])
        out.append("\n".join([f'name = "hp{i}"', base, *rng.sample(HPARAM_TABLES, rng.randint(1, 2))]) + "\n")
    return out


@pytest.mark.parametrize("text", hparam_spaces(), ids=lambda t: t.splitlines()[2][:40])
def test_toml_spaces_with_hparams_are_one_clear_line_or_success(text, tmp_path, run_cli):
    test_toml_spaces_with_new_fields_are_one_clear_line_or_success(text, tmp_path, run_cli)


# A valid study with regimes, seeds, a drawn lr and a top-K check; each fuzzed file changes one to three
# of its parts to an odd or bad value (like the command lines above: mostly well-formed).
STUDY_BASE = {
    "spaces": '["X_c", "RegNetX"]',
    "regimes": '["1M:2M", "3M:6M"]',
    "models_per_space": "8",
    "round": "4",
    "seeds": "2",
    "seed": "3",
    "preset": '"mnist"',
}
STUDY_KEYS = {
    "spaces": ['["RegNetX"]', '"RegNetX"', "[]", '["X_q"]', '["SPACE_FILE"]', '["SPACE_FILE", "RegNetX"]', "3",
               '["RegNetX@1M:2M"]'],
    "regimes": ['["3M:6M", "1M:2M"]', '["1M:3M", "2M:6M"]', '["1M:2M"]', '["1M:", "3M:6M"]', '["a:b", "3M:6M"]',
                '"1M:2M"', "[1, 2]", "[]", '["1:2", "3M:6M"]', '["2M:1M", "3M:6M"]', '["1G:2G", "3G:6G"]'],
    "seeds": ["1", "3", "0", "-1", '"2"', "true", "1.5", "99999999999"],
    "models_per_space": ["2", "7", "0", '"8"'],
    "round": ["1", "0", "99"],
    "seed": ['"x"', "-1", "18446744073709551616"],
    "preset": ['"cifar"', '"tiny"', '"imagenet"'],
}
RECIPE_BASE = ["epochs = 1", "train_size = 64", 'lr = {dist = "log_uniform", low = 0.1, high = 0.8}']
RECIPE_LINES = [
    'lr = {dist = "log_uniform", low = 0.8, high = 0.1}',
    'lr = {dist = "uniform", low = 0, high = 1}',
    'lr = {dist = "log_uniform", low = 0.1, high = 0.8, q = 0.1}',
    'weight_decay = {dist = "log_uniform", low = 1e-5, high = 1e-3}',
    "momentum = {values = [0.5, 0.9]}",
    'momentum = {dist = "uniform", low = 0.5, high = 2}',
    'label_smoothing = {values = [0, 0.1]}',
    'epochs = {dist = "uniform", low = 1, high = 3}',
    "lr = {}",
    'lr = "fast"',
    "lr = 0.3",
    "epochs = 0",
    "epochs = 1.5",
    "bogus = 1",
    'base = "nope"',
    'base = "cifar"',
]
FIDELITY_BASE = ['select = "top"', "top = 4"]
FIDELITY_LINES = ['select = "best"', "top = 3", 'top = "4"', "top = true", "per_space = 99", 'spaces = ["RegNetX"]',
                  'spaces = ["X_a"]', 'select = "random"', "seed = -3", "bogus = 1"]  # fmt: skip
FIDELITY_RECIPES = ["epochs = 3", "val_size = 10", 'lr = {dist = "log_uniform", low = 0.2, high = 0.9}', "",
                    "epochs = 1\ntrain_size = 64"]  # fmt: skip


def study_files(n=40, seed=4):
    """Study files with regimes, seeds, drawn recipe fields and a top-K fidelity check: the valid base with
    one to three of its parts changed to an odd or bad value (a few files keep the base)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        top = dict(STUDY_BASE)
        recipe, fidelity, fid_recipe = list(RECIPE_BASE), list(FIDELITY_BASE), "epochs = 2"
        budget = ""
        for _ in range(rng.randint(0, 3)):
            where = rng.random()
            if where < 0.5:
                key = rng.choice(sorted(STUDY_KEYS))
                top[key] = rng.choice(STUDY_KEYS[key])
            elif where < 0.7:
                recipe.append(rng.choice(RECIPE_LINES))
            elif where < 0.85:
                fidelity.append(rng.choice(FIDELITY_LINES))
            elif where < 0.95:
                fid_recipe = rng.choice(FIDELITY_RECIPES)
            else:
                budget = '[budget]\nflops = "1M:2M"' if rng.random() < 0.5 else '[budget]\nparams = ":1M"'
        # a field given twice is TOML's own error (one line too), but it hides the rest: keep the last
        recipe = list({line.split("=")[0].strip(): line for line in recipe}.values())
        fidelity = list({line.split("=")[0].strip(): line for line in fidelity}.values())
        lines = [f'name = "st{i}"', 'output = "out"', *(f"{k} = {v}" for k, v in top.items()), budget,
                 "[recipe]", *recipe, "[fidelity]", *fidelity, "[fidelity.recipe]", fid_recipe]  # fmt: skip
        out.append("\n".join(lines) + "\n")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("text", study_files(), ids=lambda t: t.splitlines()[0])
def test_study_files_are_one_clear_line_and_sample_or_stop_in_one(text, tmp_path, run_cli):
    """`study status` on a study file: one line (its mistake, or "has not started"). A file that loads is
    sampled in process (every population, regimes apart) — it samples, or stops with one line — and then
    `study status` and `study report` answer with a table or one line."""
    from regspace.errors import RegspaceError
    from regspace.study import load_study, open_store, sample_study

    (tmp_path / "space.toml").write_text('name = "hp"\nbase = "RegNetX"\n[hparams.lr]\ndist = "log_uniform"\n'
                                         "low = 0.1\nhigh = 0.8\n")  # fmt: skip
    path = tmp_path / "study.toml"
    path.write_text(text.replace("SPACE_FILE", str(tmp_path / "space.toml")))

    def one_line(code, err):
        assert "Traceback" not in err and code != 70, err
        if code != 0:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("regspace: error:"), (text, err)

    code, _, err = run_cli("study", "status", path)
    one_line(code, err)
    assert code != 0  # nothing has started
    try:
        study = load_study(path)
        sample_study(open_store(study), study)
    except RegspaceError as e:  # UsageProblem included
        assert "\n" not in e.line(), e.line()
        return
    for command in ("status", "report"):
        one_line(*run_cli("study", command, path)[::2])
