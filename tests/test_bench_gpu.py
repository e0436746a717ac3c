"""benchmarks/bench_gpu.py on a machine without a GPU: one line and exit 0; and its pure helpers (which GPU
nvidia-smi should watch, which precision a capability must give, what the summary line says) on hand-made
inputs."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_gpu.py"


def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_the_benchmark_says_so_in_one_line_and_exits_0(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                       env=env)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("bench_gpu: no CUDA GPU here") and p.stdout.count("\n") == 1 and p.stderr == ""


@pytest.mark.parametrize(
    "index, visible, uuid, want",
    [
        (0, None, "4f2c5d3e-1111-2222", "GPU-4f2c5d3e-1111-2222"),  # torch's UUID wins
        (0, "3,1", "", "3"),  # torch's GPU 0 is physical GPU 3
        (1, "GPU-aaaa,GPU-bbbb", None, "GPU-bbbb"),
        (0, None, None, "0"),
    ],
)
def test_the_gpu_nvidia_smi_watches_is_the_one_torch_used(index, visible, uuid, want):
    assert bench().smi_id(index, visible, uuid) == want


def test_precision_and_kernels_by_capability():
    b = bench()
    assert [b.expected_precision(c) for c in ((7, 0), (7, 5), (8, 0), (8, 9), (9, 0))] == [
        "16-mixed", "16-mixed", "bf16-mixed", "bf16-mixed", "bf16-mixed"]  # fmt: skip
    cu130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]
    assert not b.has_kernels(cu130, (7, 0))  # issue 23 fault 3: a V100 with the default CUDA 13 build
    assert b.has_kernels(cu130, (8, 9)) and b.has_kernels(cu130, (12, 1)) and b.has_kernels(cu130, (13, 0))
    assert b.has_kernels(["sm_50", "sm_60", "sm_70", "sm_90"], (7, 0)) and not b.has_kernels(["sm_90"], (10, 0))


@pytest.mark.parametrize(
    "text, want",
    [
        ("trained 8 of 8 models (ok 8, diverged 0, failed 0) in 0m30s, 960 models/hour", None),
        ("trained 8 of 8 models (ok 8, …), 2 OOM retries, 960 models/hour", 2),
        ("…; OOM retries: 3; recipe quick", 3),
        ("retried 1 model after out of memory", 1),
        ("1 out-of-memory retry", 1),
    ],
)
def test_oom_retries_are_read_from_the_summary_defensively(text, want):
    assert bench().oom_retries(text) == want


def test_summary_numbers():
    line = "trained 12 of 12 models (ok 12, diverged 0, failed 0) in 0m40s, 1080 models/hour, 4 worker(s) × 4 thread(s)"
    assert bench().summary_numbers(line) == {"models_per_hour": 1080.0, "workers": 4}
    assert bench().summary_numbers("nothing to train") == {"models_per_hour": None, "workers": None}


def test_the_fp16_section_wants_every_model_diverged_in_16_mixed_and_none_failed():
    import pandas as pd

    b = bench()

    def rows(*specs):
        return pd.DataFrame([{"model_id": f"m{i}", "status": s, "reason": r, "precision": p}
                             for i, (s, r, p) in enumerate(specs)])  # fmt: skip

    nan = "loss became nan at epoch 1, step 2"
    assert b.judge_fp16(rows(("diverged", nan, "16-mixed"), ("diverged", nan, "16-mixed"))) == []
    assert b.judge_fp16(rows(("diverged", nan, "16-mixed"), ("failed", "CUDA error", "16-mixed"))) == [
        "fp16 divergence: m1 failed at lr 1e+08: CUDA error"]  # fmt: skip
    assert b.judge_fp16(rows(("ok", None, "16-mixed"))) == [
        "fp16 divergence: m0 ok at lr 1e+08: no divergence was seen"]  # fmt: skip
    assert b.judge_fp16(rows(("diverged", "stopped", "16-mixed"))) == [
        "fp16 divergence: m0 diverged without the step: stopped"]  # fmt: skip
    assert b.judge_fp16(rows(("diverged", nan, "bf16-mixed"))) == [
        "fp16 divergence: m0 trained in bf16-mixed, not 16-mixed"]  # fmt: skip
    assert b.judge_fp16(pd.DataFrame()) == ["fp16 divergence: no result recorded"]
