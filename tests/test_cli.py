"""The command line: fast start, no torch where nothing trains, one clear line on bad input."""

import json
import re
import subprocess
import sys
import time

import pytest


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "regspace", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_help_and_spaces_do_not_import_torch():
    code = (
        "import sys; from regspace.cli import main; "
        "[main(a) for a in (['--help'], ['spaces'], ['describe', 'RegNetX-200MF'])]; "
        "bad = [m for m in ('torch', 'pytorch_lightning', 'lightning', 'matplotlib', 'optuna') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_startup_is_quick():
    # Not a timing assertion on the result: a loose guard against an accidental torch import (~2 s).
    run("--help")
    t = time.perf_counter()
    assert run("--help").returncode == 0
    assert time.perf_counter() - t < 5


@pytest.mark.parametrize(
    "args,needle",
    [
        (["sample", "--space", "X_q"], "did you mean"),
        (["sample", "--space", "X_a", "--flops", "400M:300M"], "minimum is larger"),
        (["sample", "--space", "X_a", "--flops", "lots"], "cannot read flops"),
        (["sample", "--space", "X_a", "--flops", "0:3M"], "must be positive"),
        (["sample", "--space", "X_a", "-n", "0"], "-n"),
        (["sample", "--space", "X_a", "-n", "-5"], "-n"),
        (["sample", "--space", "X_a", "--preset", "tiny"], "unknown preset"),
        (["sample", "--space", "X_a", "--flops", "1:2", "--max-candidates", "50000"], "widen"),
        (["describe", "RegNetX-999MF"], "unknown reference model"),
        (["describe", "regnet:d=0,w0=24,wa=1,wm=2"], "d >= 1"),
        (["describe", "regnet:d=10,w0=20,wa=1,wm=2"], "multiple of 8"),
        (["describe", "anynet:d=1,2;w=8"], "2 depths but 1 widths"),
        (["describe", "anynet:d=1;w=-8"], "must be positive"),
        (["describe", "anynet:d=1;w=8;x=3"], "unknown key"),
        (["describe", "RegNetX-200MF", "--resolution", "0"], "--resolution"),
        (["bogus"], "No such command"),
        (["sample"], "--space"),
    ],
)
def test_bad_input_is_one_line(tmp_path, run_cli, args, needle):
    code, out, err = run_cli(*args, "--store", tmp_path / "s") if args[0] == "sample" else run_cli(*args)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("regspace: error:"), err
    assert needle in lines[0]
    assert "Traceback" not in err


def test_sample_reports_draws_and_acceptance(tmp_path, run_cli):
    code, out, err = run_cli(
        "sample", "--space", "X_a", "-n", 50, "--preset", "imagenet", "--flops", "360M:400M", "--store", tmp_path / "s"
    )
    assert code == 0
    assert "sampled 50 X_a draws" in out and "50 distinct network(s)" in out and "50 new to the store" in out
    m = re.search(r"([\d,]+) candidates, ([\d.e+-]+)% met the space's constraints and the budget", out)
    assert m and float(m[2]) == float(f"{100 * 50 / int(m[1].replace(',', '')):.3g}")


def test_status_json(tmp_path, run_cli):
    run_cli("sample", "--space", "RegNetX", "-n", 7, "--store", tmp_path / "s")
    code, out, _ = run_cli("status", "--store", tmp_path / "s", "--json")
    rows = json.loads(out)
    assert rows[0]["space"] == "RegNetX" and rows[0]["draws"] == 7 and rows[0]["sampled"] == 7
    assert rows[0]["pending"] == 7


def test_version(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and out.startswith("regspace ")


def test_describe_prints_the_valid_designs_and_a_line_per_invalid_one(run_cli):
    """Issue 25 §4: several designs, one of them invalid — the valid ones are described, the invalid one is
    one error line naming it, and the command exits 2; one invalid design alone is one error line."""
    code, out, err = run_cli("describe", "RegNetX-200MF", "anynet:d=1;w=8;k=5", "ResNet-50")
    assert code == 2
    assert "RegNetX-200MF" in out and "ResNet-50" in out and "anynet:d=1;w=8;k=5" not in out
    assert err.count("regspace: error:") == 1 and "anynet:d=1;w=8;k=5: " in err and "block X has no k" in err
    code, out, err = run_cli("describe", "--json", "RegNetX-200MF", "nonsense")
    assert code == 2 and [r["name"] for r in json.loads(out)] == ["RegNetX-200MF"] and "nonsense" in err
    code, out, err = run_cli("describe", "nonsense")
    assert code == 2 and out == "" and err.count("regspace: error:") == 1
