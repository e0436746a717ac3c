"""The set-up's choice of torch build: which pip arguments for which machine (regspace/torch_index.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

from regspace.torch_index import CPU_INDEX, choose

CPU = ["--extra-index-url", CPU_INDEX]


def never():
    raise AssertionError("reachability must not be probed here")


@pytest.mark.parametrize(
    "system,nvidia,reachable,args",
    [
        ("Linux", False, True, CPU),  # no GPU: the CPU-only build
        ("Linux", False, False, []),  # ...unless its index cannot be reached: the default index
        ("Linux", True, True, []),  # an NVIDIA driver: the default index's CUDA build
        ("Linux", True, False, []),
        ("Darwin", False, True, []),  # macOS and Windows default wheels carry no CUDA
        ("Windows", False, False, []),
    ],
)
def test_pip_arguments_for_each_machine(system, nvidia, reachable, args):
    probe = (lambda: reachable) if system == "Linux" and not nvidia else never
    got, why = choose(system, nvidia, probe)
    assert got == args and why
    if system == "Linux" and not nvidia and not reachable:
        assert "cannot be reached" in why and "default index" in why


def test_override():
    assert choose("Linux", True, never, "cpu")[0] == CPU
    assert choose("Linux", False, never, "default")[0] == []
    assert choose("Linux", False, never, "https://mirror.example/whl")[0] == [
        "--extra-index-url",
        "https://mirror.example/whl",
    ]


def test_script_prints_only_pip_arguments():
    """The Makefile splices stdout into pip's command line: one line of arguments; the reason on stderr."""
    script = Path(__file__).resolve().parents[1] / "regspace" / "torch_index.py"
    p = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"REGSPACE_TORCH_INDEX": "cpu", "PATH": "/usr/bin:/bin"},
    )
    assert p.returncode == 0 and p.stdout.split() == CPU and p.stderr.startswith("set-up: ")
