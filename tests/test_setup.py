"""The set-up's choice of torch build: which pip arguments for which machine (regspace/torch_index.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

from regspace.torch_index import CPU_INDEX, WHL, Gpus, choose, query_gpus

CPU = ["--extra-index-url", CPU_INDEX]


def never(url=None):
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
    probe = (lambda url: reachable) if system == "Linux" and not nvidia else never
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


def cuda_index(tag):
    return ["--extra-index-url", f"{WHL}/{tag}"]


V100, T4, A100, H100, B200, RTX5090, GB10, P100, GTX1080, K80 = (
    (7, 0), (7, 5), (8, 0), (9, 0), (10, 0), (12, 0), (12, 1), (6, 0), (6, 1), (3, 7)
)  # fmt: skip


@pytest.mark.parametrize(
    "driver, cuda, caps, want",
    [
        ("580.65.06", "13.0", [V100], "cu126"),  # issue 23: the default cu130 build has no sm_70 kernels
        ("535.104.05", "12.2", [V100], "cu126"),
        ("535.104.05", "12.2", [T4], "cu128"),  # a 12.x driver: no CUDA 13 build
        ("525.60.13", "12.0", [A100], "cu128"),  # the 12.x minimum (minor version compatibility)
        ("580.65.06", "13.0", [H100], "cu130"),
        ("570.86.15", "12.8", [B200], "cu128"),
        ("575.51.03", "12.9", [RTX5090, GB10], "cu128"),  # sm_121 runs sm_120 kernels
        ("580.95.05", "13.0", [GB10], "cu130"),
        ("550.54.14", "12.4", [P100, GTX1080], "cu126"),  # Pascal: only the 12.6 build
        ("580.65.06", "13.0", [T4, T4], "cu130"),
        ("580.65.06", "13.0", [V100, A100], "cu126"),  # mixed: every GPU needs kernels
        (None, "12.4", [A100], "cu128"),  # no driver version: the CUDA version nvidia-smi reports
    ],
)  # fmt: skip
def test_a_gpu_machine_gets_the_cuda_build_its_driver_and_gpus_run(driver, cuda, caps, want):
    """Issue 23 fault 3: the index follows the driver (which CUDA it runs) and the GPUs' compute capability
    (which architectures a build has kernels for); the reason names both and the build."""
    asked = []
    args, why = choose("Linux", True, lambda url: asked.append(url) or True, gpus=Gpus(driver, cuda, tuple(caps)))
    assert args == cuda_index(want) and asked == [f"{WHL}/{want}"]
    assert want in why and f"sm_{caps[0][0]}{caps[0][1]}" in why and (driver or "CUDA 12.4") in why


@pytest.mark.parametrize(
    "driver, caps, says",
    [
        ("470.256.02", [K80], "runs CUDA 11.x at most; torch's CUDA builds need a driver >= 525"),
        ("535.104.05", [K80], "no PyTorch CUDA build has kernels for sm_37"),
        ("580.65.06", [V100, B200], "no PyTorch CUDA build has kernels for sm_70, sm_100"),
    ],
)
def test_no_fitting_cuda_build_falls_back_to_the_default_index_in_one_line(driver, caps, says):
    args, why = choose("Linux", True, never, gpus=Gpus(driver, None, tuple(caps)))
    assert args == [] and says in why and "default index" in why and "\n" not in why


def test_an_index_that_does_not_answer_is_skipped_for_the_next_fitting_one():
    gpus = Gpus("580.65.06", "13.0", (H100,))
    asked = []
    args, why = choose("Linux", True, lambda url: asked.append(url) or url.endswith("cu126"), gpus=gpus)
    assert args == cuda_index("cu126") and asked == [f"{WHL}/cu130", f"{WHL}/cu128", f"{WHL}/cu126"]
    args, why = choose("Linux", True, lambda url: False, gpus=gpus)
    assert args == [] and "cu130, cu128, cu126" in why and "cannot be reached" in why


def test_unknown_capability_is_said():
    args, why = choose("Linux", True, lambda url: True, gpus=Gpus("580.65.06", "13.0", ()))
    assert args == cuda_index("cu130") and "compute capability unknown" in why


def test_override_by_variant():
    assert choose("Linux", True, never, "cu126")[0] == cuda_index("cu126")


def _fake_smi(tmp_path, monkeypatch, body):
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\n{body}\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    return str(smi)


HEADER = "| NVIDIA-SMI 580.65.06   Driver Version: 580.65.06   CUDA Version: 13.0 |"


@pytest.mark.parametrize(
    "body, want",
    [
        (f'case "$1" in --query-gpu=*) printf "580.65.06, 7.0\\n580.65.06, 7.0\\n";; *) echo "{HEADER}";; esac',
         Gpus("580.65.06", "13.0", (V100, V100))),
        # an old driver does not know compute_cap: the first query fails, the driver alone is asked
        ('case "$1" in --query-gpu=driver_version,compute_cap) exit 2;; --query-gpu=*) echo "470.256.02";; '
         '*) echo "CUDA Version: 11.4";; esac', Gpus("470.256.02", "11.4", ())),
        ('case "$1" in --query-gpu=*) echo "[N/A], [N/A]";; *) echo "CUDA Version: 12.8";; esac',
         Gpus(None, "12.8", ())),
        ("exit 9", None),
        ("sleep 30", None),
    ],
)  # fmt: skip
def test_nvidia_smi_is_read_defensively(tmp_path, monkeypatch, body, want):
    smi = _fake_smi(tmp_path, monkeypatch, body)
    assert query_gpus(smi, timeout=2) == want


def test_the_script_reads_the_gpus_and_says_which_build(tmp_path, monkeypatch, capsys):
    """main() end to end with a fake nvidia-smi (a V100 on a CUDA 13 driver) and the index answering."""
    import regspace.torch_index as ti

    _fake_smi(tmp_path, monkeypatch, f'case "$1" in --query-gpu=*) echo "580.65.06, 7.0";; *) echo "{HEADER}";; esac')
    monkeypatch.delenv("REGSPACE_TORCH_INDEX", raising=False)
    monkeypatch.setattr(ti.platform, "system", lambda: "Linux")
    monkeypatch.setattr(ti, "reachable", lambda url: True)
    ti.main()
    out, err = capsys.readouterr()
    assert out.split() == cuda_index("cu126")
    assert err.startswith("set-up: driver 580.65.06, sm_70: torch's cu126 build") and err.count("\n") == 1


def test_an_index_counts_only_when_it_lists_the_pinned_torch(tmp_path):
    """reachable() reads the index's torch page over loopback: an index without the pinned version (a
    variant PyTorch stopped building) does not count."""
    import functools
    import http.server
    import threading

    from regspace.torch_index import pinned_torch, reachable

    version = pinned_torch()
    for tag, listed in (("cu126", version), ("cu118", "2.7.1")):
        (tmp_path / tag / "torch").mkdir(parents=True)
        (tmp_path / tag / "torch" / "index.html").write_text(
            f'<a href="torch-{listed}%2B{tag}-cp311-cp311-manylinux_2_28_x86_64.whl">torch</a>'
        )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert reachable(f"{base}/cu126") and not reachable(f"{base}/cu118") and not reachable(f"{base}/cu999")
    finally:
        server.shutdown()
