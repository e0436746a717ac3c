"""`--devices`: what each value means on each kind of machine, and never a silent fall-back to the CPU."""

import os

import pytest

from regspace.errors import RegspaceError, UsageProblem
from regspace.train.devices import parse_devices, resolve_devices


def cuda(version, count):
    return lambda: (version, count)


def never():
    raise AssertionError("torch must not be asked on a machine without an NVIDIA driver")


@pytest.mark.parametrize(
    "spec,want",
    [(None, "auto"), ("auto", "auto"), ("CPU", "cpu"), ("0", (0,)), ("1", (1,)), ("0,1", (0, 1)), ("2, 0", (2, 0))],
)
def test_parse(spec, want):
    assert parse_devices(spec) == want


@pytest.mark.parametrize("spec", ["", "gpu", "-1", "0,0", "1.5", ","])
def test_parse_refuses_malformed_values(spec):
    with pytest.raises(UsageProblem, match="cannot read --devices"):
        parse_devices(spec)


def test_auto_without_a_driver_trains_on_the_cpu_and_says_so():
    said = []
    assert resolve_devices("auto", driver=False, cuda=never, say=said.append) == []
    assert said == ["no NVIDIA driver on this machine: training on the CPU"]


def test_cpu_is_the_cpu_even_with_gpus():
    assert resolve_devices("cpu", driver=True, cuda=cuda("12.8", 4)) == []


def test_gpus_by_index():
    assert resolve_devices("auto", driver=True, cuda=cuda("12.8", 2)) == [0, 1]
    assert resolve_devices("0", driver=True, cuda=cuda("12.8", 2)) == [0]  # "0" is GPU 0, not "no GPU"
    assert resolve_devices("1", driver=True, cuda=cuda("12.8", 2)) == [1]
    assert resolve_devices("1,0", driver=True, cuda=cuda("12.8", 2)) == [1, 0]
    with pytest.raises(RegspaceError, match="GPU 2 does not exist; torch sees 2"):
        resolve_devices("0,2", driver=True, cuda=cuda("12.8", 2))


@pytest.mark.parametrize("spec", ["auto", "0"])
def test_refused_when_torch_has_no_cuda(spec):
    with pytest.raises(RegspaceError, match="CPU-only build"):
        resolve_devices(spec, driver=True, cuda=cuda(None, 0))


@pytest.mark.parametrize("spec", ["auto", "0,1"])
def test_refused_when_torch_sees_no_gpu(spec, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(RegspaceError, match="torch sees no GPU \\(CUDA_VISIBLE_DEVICES=''\\)"):
        resolve_devices(spec, driver=True, cuda=cuda("12.8", 0))


def test_gpu_asked_on_a_machine_without_a_driver():
    with pytest.raises(RegspaceError, match="no NVIDIA driver"):
        resolve_devices("0", driver=False, cuda=never)


def test_bad_devices_value_fails_before_any_work(tmp_path, run_cli):
    assert (
        run_cli(
            "sample", "--space", "X_c", "-n", 1, "--preset", "mnist", "--flops", "0.5M:1.5M", "--store", tmp_path / "s"
        )[0]
        == 0
    )
    code, _, err = run_cli("train", "--store", tmp_path / "s", "--devices", "gpu0")
    assert code == 2 and "cannot read --devices 'gpu0'" in err and err.count("\n") == 1


def test_mixed_precisions_are_warned_about(tmp_path, run_cli):
    """compare warns when one recipe's results come from different precisions or device kinds; schema-1
    results carry both only inside the device text, and are read from there."""
    from regspace.store import Store
    from regspace.synthetic import make_synthetic_store

    make_synthetic_store(tmp_path / "s", ("X_a", "RegNetX"), n=6)
    st = Store.open(tmp_path / "s")
    ids = st.models().model_id.tolist()
    st.append_rows(
        "results",
        [
            {
                "model_id": m,
                "recipe_hash": "mixed",
                "status": "ok",
                "error": 10.0 + i,
                "device": "cuda:0 NVIDIA H200 (bf16-mixed)" if i % 2 else "cpu AMD EPYC (32-true)",
            }
            for i, m in enumerate(ids)
        ],
    )
    code, out, err = run_cli("compare", "--store", tmp_path / "s", "--recipe-hash", "mixed")
    assert code == 0
    assert "mix precisions (6 bf16-mixed, 6 32-true)" in err or "mix precisions (6 32-true, 6 bf16-mixed)" in err
    assert "mix device kinds" in err
    code, out, err = run_cli("compare", "--store", tmp_path / "s", "--recipe-hash", "synthetic000")
    assert code == 0 and "mix" not in err


GIB = 1 << 30


def test_workers_per_device_from_free_memory():
    from regspace.train.devices import workers_per_device

    # small models (0.9 GiB each) on an 80 GiB GPU: as many as the cores allow, at most 8
    assert workers_per_device(int(0.9 * GIB), [80 * GIB], cores=16) == 8
    assert workers_per_device(int(0.9 * GIB), [80 * GIB, 80 * GIB], cores=8) == 4  # 8 cores over 2 GPUs
    # ...but at least 2 for a small model even when the cores are few, if memory holds them
    assert workers_per_device(int(0.9 * GIB), [80 * GIB], cores=1) == 2
    # big models: what the tightest GPU holds (90 % of free memory)
    assert workers_per_device(10 * GIB, [80 * GIB, 35 * GIB], cores=64) == 3
    assert workers_per_device(3 * GIB, [4 * GIB], cores=64) == 1


def test_workers_per_device_refuses_oversubscription():
    from regspace.train.devices import workers_per_device

    assert workers_per_device(2 * GIB, [40 * GIB], cores=4, asked=6) == 6  # asked: not capped by cores
    with pytest.raises(RegspaceError, match="--workers-per-device 20: each worker needs about 2.0 GiB.*room for 18"):
        workers_per_device(2 * GIB, [40 * GIB], cores=4, asked=20)
    with pytest.raises(RegspaceError, match="needs about 50.0 GiB of GPU memory, but a GPU has only 40.0 GiB free"):
        workers_per_device(50 * GIB, [40 * GIB], cores=4)


def test_model_memory_bound_grows_with_batch_and_size():
    from regspace.train.devices import CUDA_CONTEXT_BYTES, gpu_model_bytes

    base = gpu_model_bytes(1_000_000, 100_000, 50 << 20, 128)
    assert base == 12 * 1_000_000 * 128 + 16 * 100_000 + (50 << 20) + CUDA_CONTEXT_BYTES
    assert gpu_model_bytes(1_000_000, 100_000, 50 << 20, 256) > base


def test_workers_per_device_on_the_cpu_is_refused(tmp_path, run_cli):
    assert (
        run_cli(
            "sample", "--space", "X_c", "-n", 1, "--preset", "mnist", "--flops", "0.5M:1.5M", "--store", tmp_path / "s"
        )[0]
        == 0
    )
    code, _, err = run_cli(
        "train",
        "--store",
        tmp_path / "s",
        "--devices",
        "cpu",
        "--workers-per-device",
        "2",
        "--train-size",
        "256",
        "--val-size",
        "128",
    )
    assert code == 1 and "--workers-per-device applies to GPUs" in err


def test_measured_gpu_memory_replaces_the_estimate(monkeypatch):
    """Earlier results of the recipe on a GPU recorded their peak memory: sizing uses it."""
    import regspace.train.devices as dev
    from regspace.train.runner import Parallelism, plan_slots

    monkeypatch.setattr(dev, "has_nvidia_driver", lambda: True, raising=False)
    monkeypatch.setattr("regspace.torch_index.has_nvidia_driver", lambda: True)
    monkeypatch.setattr(dev, "torch_cuda", lambda: ("12.8", 1))
    monkeypatch.setattr(dev, "gpu_free_bytes", lambda ids: [40 * GIB for _ in ids])
    monkeypatch.setattr(dev, "gpu_compute_modes", lambda ids: ["default" for _ in ids])  # not this machine's GPUs
    monkeypatch.setattr("regspace.train.runner.cpu_count", lambda: 64)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # a cap in the environment would change the threads
    big = [{"acts": 50_000_000, "params": 1_000_000}]  # estimated: 12·50M·128 B ≈ 72 GiB: refused
    with pytest.raises(RegspaceError, match="needs about"):
        plan_slots(Parallelism(devices="auto"), big, data_bytes=0, batch_size=128, planned=None)
    measured = [{**big[0], "peak_memory_mb": 2000, "peak_reserved_mb": None}]  # a schema-5 row: allocated only
    devices, threads = plan_slots(
        Parallelism(devices="auto"), big, data_bytes=0, batch_size=128, planned=None, measured=measured
    )  # measured: 2 GB -> 2.9 GB with the context: 12 fit, 8 taken
    assert devices == ["cuda:0"] * 8 and threads == 8


@pytest.mark.parametrize(
    "capability, emulated_bf16, want",
    [((7, 0), True, "16-mixed"), ((7, 5), True, "16-mixed"), ((8, 0), True, "bf16-mixed"), ((9, 0), True, "bf16-mixed"),
     ((6, 1), False, "16-mixed")],
)  # fmt: skip
def test_auto_precision_on_a_gpu_follows_its_compute_capability(monkeypatch, capability, emulated_bf16, want):
    """Issue 23 fault 1: torch.cuda.is_bf16_supported() counts emulation and says True on a V100 (7.0) or a
    T4 (7.5), whose cuDNN has no bf16 convolutions; auto must pick fp16 with loss scaling there, bf16 from
    sm80 on. The GPU is a fake: its capability and its emulated-bf16 answer are set here."""
    import torch

    from regspace.train.fit import resolve_precision
    from regspace.train.recipe import Recipe

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: emulated_bf16)
    assert resolve_precision(Recipe(), "cuda", torch.device("cuda", 0)) == want
    assert resolve_precision(Recipe(precision="32-true"), "cuda", torch.device("cuda", 0)) == "32-true"


SMI = """#!/bin/sh
{body}
"""
TWO_GPUS = 'printf "0, GPU-aaaa1111-0000, 1000\\n1, GPU-bbbb2222-0000, 2000\\n"'


def _fake_smi(tmp_path, monkeypatch, body, visible=None):
    """A fake nvidia-smi on PATH, and torch's fall-back answering 7 MiB for any GPU (to see when it is used)."""
    import torch

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(SMI.format(body=body))
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (7 << 20, 0))


@pytest.mark.parametrize(
    "body, visible, want_mib",
    [
        (TWO_GPUS, None, [1000, 2000]),
        (TWO_GPUS, "1,0", [2000, 1000]),  # torch's GPU 0 is physical GPU 1
        (TWO_GPUS, "GPU-bbbb,GPU-aaaa1111", [2000, 1000]),  # UUIDs, by prefix
        (TWO_GPUS, "MIG-4f2c5d3e-0000", [7]),  # a MIG slice: not its GPU's memory; torch answers
        ('printf "0, GPU-aaaa, [N/A]\\n1, GPU-bbbb, 2000\\n"', None, [7, 7]),  # [N/A]: torch answers
        ("sleep 60", None, [7, 7]),  # nvidia-smi hangs: after its time-out, torch answers
        ("exit 9", None, [7, 7]),
    ],
)  # fmt: skip
def test_free_gpu_memory_reads_nvidia_smi_only_where_it_answers_for_these_gpus(
    tmp_path, monkeypatch, body, visible, want_mib
):
    """Issue 23 fault 7: "[N/A]", a time-out, and CUDA_VISIBLE_DEVICES given as UUIDs or MIG ids were misread
    (a crash, or another GPU's memory). A fake nvidia-smi on PATH plays each case."""
    import subprocess

    from regspace.train import devices as dev

    run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: run(*a, **{**k, "timeout": min(k.get("timeout", 30), 2)}))
    _fake_smi(tmp_path, monkeypatch, body, visible)
    ids = list(range(len(want_mib)))
    assert dev.gpu_free_bytes(ids) == [m << 20 for m in want_mib]


@pytest.mark.parametrize(
    "capability, allowed, want", [((7, 0), True, False), ((8, 0), True, True), ((9, 0), False, False)]
)
def test_tf32_follows_the_recipe_and_is_recorded_for_the_gpu_it_ran_on(monkeypatch, capability, allowed, want):
    """Issue 23 fault 8: on Ampere+ fp32 convolutions run in TF32 unless the recipe says `tf32 = false`; the
    `tf32` column says whether it was on (a V100 has no TF32; the CPU records False). The GPU is a fake."""
    import torch

    from regspace.train.fit import _peak_reserved_mb, apply_tf32
    from regspace.train.recipe import Recipe

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", torch.backends.cudnn.allow_tf32)  # restored after
    assert apply_tf32(Recipe(tf32=allowed), torch.device("cuda", 0)) is want
    assert torch.backends.cudnn.allow_tf32 is allowed
    assert apply_tf32(Recipe(), torch.device("cpu")) is False and torch.backends.cudnn.allow_tf32 is True
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 3 << 30)
    assert _peak_reserved_mb(torch.device("cuda", 0)) == 3072 and _peak_reserved_mb(torch.device("cpu")) is None


def _fake_gpus(monkeypatch, free_gib=40):
    import regspace.train.devices as dev

    monkeypatch.setattr("regspace.torch_index.has_nvidia_driver", lambda: True)
    monkeypatch.setattr(dev, "torch_cuda", lambda: ("12.8", 1))
    monkeypatch.setattr(dev, "gpu_free_bytes", lambda ids: [free_gib * GIB for _ in ids])
    monkeypatch.setattr("regspace.train.runner.cpu_count", lambda: 64)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def test_a_pending_model_ten_times_the_measured_one_is_planned_ten_times_larger(monkeypatch):
    """Issue 23 fault 5: the measured peak replaced every pending model's estimate, so a model 10× the
    measured one was planned as small as it. The measured/estimated ratio now scales each estimate: the
    10× model's plan (beyond the dataset and the CUDA context) is 10× the measured model's, the reserved
    peak (not the allocated one) is what is scaled, and the CUDA context is added once per worker."""
    from regspace.train.devices import CUDA_CONTEXT_BYTES, gpu_model_bytes, measured_scale, model_bytes
    from regspace.train.runner import Parallelism, plan_slots

    _fake_gpus(monkeypatch)
    data = 300 << 20
    small = {"acts": 200_000, "params": 100_000}
    big = {"acts": 2_000_000, "params": 1_000_000}
    measured = [{**small, "peak_memory_mb": 700.0, "peak_reserved_mb": 1000.0}]
    scale = measured_scale(measured, data, 128)
    # by hand: (1000 MiB - 300 MiB) / (12·200k·128 + 16·100k B) = 700 MiB / 308.8 MB, times the 1.2 margin
    assert scale == pytest.approx(1.2 * (700 << 20) / (12 * 200_000 * 128 + 16 * 100_000))
    plan_small, plan_big = (gpu_model_bytes(m["acts"], m["params"], data, 128, scale) for m in (small, big))
    assert plan_big - data - CUDA_CONTEXT_BYTES == pytest.approx(
        10 * (plan_small - data - CUDA_CONTEXT_BYTES), rel=1e-6
    )
    assert plan_small == pytest.approx(data + 1.2 * (700 << 20) + CUDA_CONTEXT_BYTES, rel=1e-6)
    assert model_bytes(big["acts"], big["params"], 128) == 10 * model_bytes(small["acts"], small["params"], 128)
    # the plan for the run: the 10x model's 1.2·7000 MiB + 300 MiB + 600 MiB ≈ 9.1 GiB -> 0.9·40 GiB holds 3
    devices, _ = plan_slots(Parallelism(devices="auto"), [small, big], data_bytes=data, batch_size=128,
                            planned=None, measured=measured)  # fmt: skip
    assert devices == ["cuda:0"] * 3
    # only the small model pending: 1.2·700 + 300 + 600 MiB ≈ 1.7 GiB -> 21 fit, 8 at most
    devices, _ = plan_slots(Parallelism(devices="auto"), [small], data_bytes=data, batch_size=128, planned=None,
                            measured=measured)  # fmt: skip
    assert devices == ["cuda:0"] * 8


def test_gpu_measurements_join_results_to_their_models(tmp_path):
    """The measurements the plan reads: this recipe's cuda results with a peak, with their model's acts and
    params; CPU results, other recipes and a v5 row without the reserved peak are handled."""
    from regspace.store import Store
    from regspace.train.records import Result
    from regspace.train.runner import gpu_measurements

    st = Store.create(tmp_path / "s")
    st.append_rows("models", [{"model_id": f"m{i}", "space": "X_c", "acts": 1000 * (i + 1), "params": 10 * (i + 1)}
                              for i in range(4)])  # fmt: skip
    ok = dict(error=1.0, min_error=1.0, epochs=1)
    st.append_rows("results", [
        Result.ok("m0", recipe_hash="r", device_kind="cuda", peak_memory_mb=50.0, peak_reserved_mb=64.0, **ok).row(),
        Result.ok("m1", recipe_hash="r", device_kind="cuda", peak_memory_mb=80.0, **ok).row(),  # schema 5: no reserved
        Result.ok("m2", recipe_hash="r", device_kind="cpu", peak_memory_mb=900.0, **ok).row(),
        Result.ok("m3", recipe_hash="other", device_kind="cuda", peak_memory_mb=70.0, **ok).row(),
    ])  # fmt: skip
    got = {r["model_id"]: (r["acts"], r["params"], r["peak_memory_mb"], r["peak_reserved_mb"])
           for r in gpu_measurements(st, "r")}  # fmt: skip
    assert got == {"m0": (1000, 10, 50.0, 64.0), "m1": (2000, 20, 80.0, None)}
    assert gpu_measurements(st, "none") == []


def test_gpu_workers_are_fewer_when_host_memory_cannot_hold_them(monkeypatch, capsys):
    """Issue 23 fault 7: every GPU worker loads the dataset into host memory (and a mapped one pins batch
    buffers), which was not planned: 8 workers × 10 GiB on a host with 40 GiB available swapped or met the
    OOM killer. The plan now holds 0.9 · 40 / 10 = 3 of them and says so in one line; with enough memory
    nothing changes and nothing is said."""
    import regspace.train.devices as dev
    from regspace.train.runner import Parallelism, plan_slots

    _fake_gpus(monkeypatch, free_gib=80)
    small = [{"acts": 1000, "params": 1000}]
    monkeypatch.setattr(dev, "available_host_bytes", lambda: 40 * GIB)
    devices, _ = plan_slots(Parallelism(devices="auto"), small, data_bytes=0, batch_size=128, planned=None,
                            host_bytes=10 * GIB)  # fmt: skip
    err = capsys.readouterr().err
    assert devices == ["cuda:0"] * 3 and err.count("\n") == 1
    assert (
        "host memory: 8 GPU workers need about 80.0 GiB (10.0 GiB each" in err
        and "40.0 GiB is available: using 3" in err
    )
    monkeypatch.setattr(dev, "available_host_bytes", lambda: 200 * GIB)
    devices, _ = plan_slots(Parallelism(devices="auto"), small, data_bytes=0, batch_size=128, planned=None,
                            host_bytes=10 * GIB)  # fmt: skip
    assert devices == ["cuda:0"] * 8 and capsys.readouterr().err == ""


def test_a_gpu_workers_host_memory_by_hand():
    """In memory: the dataset plus the runtime. Mapped: labels and sums plus six pinned buffers of
    max(batch, 512) images (two each for train, validation and test) plus the runtime."""
    from regspace.train.devices import GPU_WORKER_HOST_BYTES, gpu_worker_host_bytes

    assert (
        gpu_worker_host_bytes(2 * GIB, mapped=False, image_bytes=3072, batch_size=1024)
        == 2 * GIB + GPU_WORKER_HOST_BYTES
    )
    assert gpu_worker_host_bytes(5_000, mapped=True, image_bytes=3 * 224 * 224, batch_size=256) == (
        5_000 + 6 * 512 * 150_528 + GPU_WORKER_HOST_BYTES)  # fmt: skip
    assert (
        gpu_worker_host_bytes(0, mapped=True, image_bytes=100, batch_size=1024)
        == 6 * 1024 * 100 + GPU_WORKER_HOST_BYTES
    )
