"""Issue 23, faults 2, 4 and 6, provoked on the CPU: environment errors are not model results, a model
out of memory beside other workers goes again alone, one bad GPU does not stop the others.

No GPU here: torch's CUDA errors are raised by fakes (real torch exception types with the messages
torch and CUDA print), the workers of the pool tests are fake targets on fake "cuda:i" slots (the pool
never imports torch), and compute modes come from a fake nvidia-smi on PATH."""

import os
import signal
import time
from pathlib import Path

import pytest
from test_pool import InMemoryWork, ok_worker

from regspace.errors import RegspaceError
from regspace.train.pool import WorkerPool
from regspace.train.recipe import Recipe
from regspace.train.records import Result

RECIPE = Recipe()

# -- the one classification ---------------------------------------------------------------------------
STICKY_TAIL = (
    "\nCUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below "
    "might be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1\nCompile with "
    "`TORCH_USE_CUDA_DSA` to enable device-side assertions.\n"
)
OOM_MESSAGE = (
    "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.06 GiB "
    "is free. Including non-PyTorch memory, this process has 78.12 GiB memory in use. Of the allocated memory "
    "75.50 GiB is allocated by PyTorch, and 1.98 GiB is reserved by PyTorch but unallocated."
)


def _exc(kind: str, message: str):
    import torch

    cls = {"runtime": RuntimeError, "accelerator": torch.AcceleratorError, "oom": torch.OutOfMemoryError,
           "value": ValueError, "assertion": AssertionError}[kind]  # fmt: skip
    return cls(message)


NO_KERNEL = "CUDA error: no kernel image is available for execution on the device" + STICKY_TAIL
CUDNN_NOT_SUPPORTED = (
    "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a non-contiguous input."
)
CUBLAS_FAILED = (
    "CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm( handle, opa, opb, m, n, k, &alpha, a, "
    "lda, b, ldb, &beta, c, ldc)`"
)
CPU_ALLOC = (
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried to allocate "
    "1073741824 bytes."
)
WRONG_CHANNELS = (
    "Given groups=1, weight of size [64, 3, 3, 3], expected input[128, 1, 28, 28] to have 3 channels, but got 1 "
    "channels instead"
)


@pytest.mark.parametrize(
    "kind, message, want",
    [
        ("accelerator", NO_KERNEL, "environment"),
        ("runtime", NO_KERNEL, "environment"),
        ("runtime", CUDNN_NOT_SUPPORTED, "environment"),
        ("runtime", "GET was unable to find an engine to execute this computation", "environment"),
        (
            "runtime",
            "cuDNN Frontend error: [cudnn_frontend] Error: No execution plans support the graph.",
            "environment",
        ),
        ("accelerator", "CUDA error: an illegal memory access was encountered" + STICKY_TAIL, "environment"),
        ("runtime", "CUDA error: device-side assert triggered" + STICKY_TAIL, "environment"),
        ("runtime", "CUDA error: unspecified launch failure" + STICKY_TAIL, "environment"),
        ("runtime", "CUDA error: misaligned address" + STICKY_TAIL, "environment"),
        ("runtime", "CUDA error: uncorrectable ECC error encountered" + STICKY_TAIL, "environment"),
        ("runtime", "CUDA error: CUDA-capable device(s) is/are busy or unavailable" + STICKY_TAIL, "environment"),
        ("runtime", CUBLAS_FAILED, "environment"),
        ("runtime", "\"slow_conv2d_cpu\" not implemented for 'Half'", "environment"),
        ("oom", OOM_MESSAGE, "out of memory"),
        ("runtime", "CUDA error: out of memory" + STICKY_TAIL, "out of memory"),
        ("runtime", "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`", "out of memory"),
        ("runtime", "mat1 and mat2 shapes cannot be multiplied (128x512 and 256x10)", "model"),
        ("runtime", WRONG_CHANNELS, "model"),
        ("runtime", CPU_ALLOC, "model"),
        ("oom", CPU_ALLOC, "model"),
        ("value", "batch size 512 exceeds the 100 training images", "model"),
        ("runtime", "training stopped early", "model"),
    ],
)
def test_environment_errors_are_told_from_model_errors(kind, message, want):
    from regspace.train.faults import classify

    assert classify(_exc(kind, message)) == want


def test_a_cuda_error_under_another_exception_is_still_the_environment():
    """Lightning's teardown after a sticky error raises its own exception from the CUDA one."""
    from regspace.train.faults import classify

    try:
        try:
            raise _exc("accelerator", "CUDA error: an illegal memory access was encountered" + STICKY_TAIL)
        except RuntimeError as inner:
            raise RuntimeError("teardown failed") from inner
    except RuntimeError as e:
        assert classify(e) == "environment"


# -- fit_one on a fake GPU: environment errors raise, OOM is handed to the pool, model errors are results --
@pytest.fixture
def fake_gpu(monkeypatch):
    """torch.cuda as a device whose empty_cache() raises a sticky error when the device is broken."""
    import torch

    state = {"broken": False, "emptied": 0}

    def empty_cache():
        if state["broken"]:
            raise _exc("accelerator", "CUDA error: an illegal memory access was encountered" + STICKY_TAIL)
        state["emptied"] += 1

    monkeypatch.setattr(torch.cuda, "empty_cache", empty_cache)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake H200")
    return state


def _fit_raising(monkeypatch, error):
    """fit_one for a small model on 'cuda:0', where building the training batches raises ``error``."""
    import torch
    from test_pool import row

    from regspace.train import fit
    from regspace.train.records import Task

    def boom(*a, **k):
        raise error

    monkeypatch.setattr(fit, "batches_for", boom)
    data = fit.PreparedData(None, None, None, torch.zeros(1), torch.ones(1), 10, {}, "fashion-mnist")
    return fit.fit_one(Task.from_row(row(0)), RECIPE, data, device=torch.device("cuda", 0))


def test_a_sticky_cuda_error_is_raised_not_recorded_and_no_empty_cache_after_it(monkeypatch, fake_gpu):
    fake_gpu["broken"] = True
    sticky = _exc("accelerator", "CUDA error: an illegal memory access was encountered" + STICKY_TAIL)
    with pytest.raises(type(sticky)) as raised:
        _fit_raising(monkeypatch, sticky)
    assert raised.value is sticky  # the error itself, not empty_cache()'s second one


def test_no_kernel_image_is_raised_not_recorded(monkeypatch, fake_gpu):
    with pytest.raises(RuntimeError, match="no kernel image"):
        _fit_raising(monkeypatch, RuntimeError("CUDA error: no kernel image is available for execution on the device"))
    assert fake_gpu["emptied"] == 0


def test_cuda_out_of_memory_goes_to_the_pool_with_the_failed_row(monkeypatch, fake_gpu):
    from regspace.train.faults import ModelOutOfMemory

    with pytest.raises(ModelOutOfMemory) as raised:
        _fit_raising(monkeypatch, _exc("oom", OOM_MESSAGE))
    r = raised.value.result
    assert r.status == "failed" and r.reason.startswith("OutOfMemoryError: CUDA out of memory. Tried to allocate")
    assert r.recipe_hash == RECIPE.hash and r.device == "cuda:0 Fake H200 (bf16-mixed)"
    assert fake_gpu["emptied"] == 1  # out of memory is not sticky: the cache is freed for the neighbours


def test_a_shape_error_is_still_the_models_result(monkeypatch, fake_gpu):
    r = _fit_raising(monkeypatch, RuntimeError("mat1 and mat2 shapes cannot be multiplied (128x512 and 256x10)"))
    assert (
        r.status == "failed"
        and r.reason == "RuntimeError: mat1 and mat2 shapes cannot be multiplied (128x512 and 256x10)"
    )
    assert fake_gpu["emptied"] == 1


# -- the worker: a device check before "ready", and what it tells the parent ------------------------------
class FakeConn:
    def __init__(self, tasks=()):
        self.sent, self.tasks = [], list(tasks)

    def send(self, msg):
        self.sent.append(msg)

    def recv(self):
        return self.tasks.pop(0) if self.tasks else None


class FakeDataset:
    num_classes = 10

    def __init__(self, fail=None):
        self.fail = fail

    def arrays(self):
        if self.fail:
            raise self.fail
        import numpy as np

        x = np.zeros((64, 1, 28, 28), np.uint8)
        y = np.arange(64, dtype=np.int64) % 10
        return {"train_x": x, "train_y": y, "test_x": x[:0], "test_y": y[:0]}


@pytest.fixture
def in_process_worker(monkeypatch):
    """Run regspace.train.worker.worker_main in this process: its signal handlers and thread settings are
    left alone, and its os._exit() ends the call, not pytest."""
    import torch

    from regspace.train import worker

    class Exited(Exception):
        pass

    def exit_(code):
        raise Exited(code)

    monkeypatch.setattr(worker.os, "_exit", exit_)
    monkeypatch.setattr(worker.signal, "signal", lambda *a: None)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(torch, "set_num_interop_threads", lambda n: None)

    def run(conn, dataset, device="cpu"):
        config = {"threads": 1, "recipe": Recipe(val_size=16, train_size=32, batch_size=8).to_dict(),
                  "data": dataset, "dataset": "fashion-mnist", "recycle": 10, "device": device}  # fmt: skip
        try:
            worker.worker_main(conn, config)
        except Exited:
            return "exited"
        return "returned"

    return run


def test_the_worker_checks_its_device_before_it_is_ready(monkeypatch, in_process_worker):
    from regspace.train import fit

    calls = []
    real = fit.preflight
    monkeypatch.setattr(fit, "preflight", lambda *a, **k: (calls.append((a, k)), real(*a, **k)))
    conn = FakeConn()
    assert in_process_worker(conn, FakeDataset()) == "returned"
    assert [m[0] for m in conn.sent] == ["ready"]
    (device, precision), _ = calls[0]
    assert str(device) == "cpu" and precision in ("32-true", "bf16-mixed")


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("CUDA error: no kernel image is available for execution on the device"),
        RuntimeError("device check: a tiny network's loss is nan in 16-mixed"),  # any failure of the check
    ],
)
def test_a_failed_device_check_is_one_environment_line(monkeypatch, in_process_worker, error):
    from regspace.train import fit

    def fail(*a, **k):
        raise error

    monkeypatch.setattr(fit, "preflight", fail)
    conn = FakeConn()
    assert in_process_worker(conn, FakeDataset()) == "exited"
    assert conn.sent == [("fatal", f"RuntimeError: {error}", "environment")]


def test_start_up_errors_after_the_check_say_whose_they_are(in_process_worker):
    import torch

    conn = FakeConn()
    in_process_worker(conn, FakeDataset(FileNotFoundError("no such dataset file")))
    assert conn.sent == [("fatal", "FileNotFoundError: no such dataset file", "setup")]
    conn = FakeConn()
    in_process_worker(conn, FakeDataset(torch.OutOfMemoryError(OOM_MESSAGE)))
    assert conn.sent == [("fatal", f"OutOfMemoryError: {OOM_MESSAGE}", "out of memory")]


def test_the_worker_reports_oom_and_environment_errors_during_a_model(monkeypatch, in_process_worker):
    from test_pool import row

    from regspace.train import fit
    from regspace.train.faults import ModelOutOfMemory
    from regspace.train.records import Task

    failed = Result.failed("m00", reason=f"OutOfMemoryError: {OOM_MESSAGE}", recipe_hash="r")

    def fit_one(task, *a, **k):
        if task.model_id == "m00":
            raise ModelOutOfMemory(failed)
        raise _exc("accelerator", "CUDA error: an illegal memory access was encountered" + STICKY_TAIL)

    monkeypatch.setattr(fit, "fit_one", fit_one)
    monkeypatch.setattr("torch.cuda.empty_cache", lambda: None)
    conn = FakeConn([Task.from_row(row(0)), Task.from_row(row(1))])
    assert in_process_worker(conn, FakeDataset()) == "exited"
    assert [m[0] for m in conn.sent] == ["ready", "oom", "fatal"]
    assert conn.sent[1] == ("oom", "m00", failed, False)
    assert conn.sent[2] == (
        "fatal",
        "AcceleratorError: CUDA error: an illegal memory access was encountered",
        "environment",
    )


# -- the pool: fake workers on fake GPU slots ----------------------------------------------------------------
@pytest.fixture
def deadline():
    """Fail (rather than hang) if the pool does not finish: a pool that ignores a message waits forever."""

    def alarm(signum, frame):
        raise TimeoutError("the pool did not finish in time")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def gpu_pool(work, tmp_path, target, devices, recycle=16, **config):
    return WorkerPool(
        work,
        devices=devices,
        config={"threads": 1, "data_path": str(tmp_path), **config},
        recipe=RECIPE,
        recycle=recycle,
        target=target,
        preload=(),
    )


def _busy_dir(config) -> Path:
    d = Path(config["data_path"]) / "busy" / config["device"]
    d.mkdir(parents=True, exist_ok=True)
    return d


def crowded_worker(conn, config):
    """A GPU worker whose models "big" models run out of memory when another worker trains beside it on the
    same device, and whose "huge" models run out of memory even alone. Logs each run and who was beside."""
    conn.send(("ready", {"pid": os.getpid()}))
    busy = _busy_dir(config)
    done = 0
    while (task := conn.recv()) is not None:
        me = busy / str(os.getpid())
        me.touch()
        beside = 0
        for _ in range(10):  # a model's time on the device: is anyone else training there meanwhile?
            time.sleep(0.05)
            beside = max(beside, len(list(busy.iterdir())) - 1)
        me.unlink()
        with open(Path(config["data_path"]) / "log", "a") as f:
            f.write(f"{task.model_id} {config['device']} {beside}\n")
        done += 1
        last = done >= config["recycle"]
        mid = task.model_id
        if mid in config["huge"] or (mid in config["big"] and beside):
            conn.send(
                ("oom", mid, Result.failed(mid, reason=f"OutOfMemoryError: {OOM_MESSAGE}", recipe_hash="r"), last)
            )
        else:
            conn.send(("result", mid, Result.ok(mid, error=10.0, min_error=9.0, epochs=1, recipe_hash="r"), last))
        if last:
            return


def runs(tmp_path) -> list[tuple[str, str, int]]:
    return [(m, d, int(b)) for m, d, b in (line.split() for line in (tmp_path / "log").read_text().splitlines())]


def test_out_of_memory_beside_other_workers_is_retried_alone(tmp_path, deadline):
    """Fault 4: m00 fits alone but not beside a neighbour at its peak: retried alone, then ok. m01 does not
    fit even alone: failed, once. Neither is recorded as failed while it had neighbours."""
    work = InMemoryWork(6)
    summary = gpu_pool(work, tmp_path, crowded_worker, ["cuda:0", "cuda:0"], big=["m00"], huge=["m01"]).run()
    by_id = {r.model_id: r for r in work.results}
    assert sorted(by_id) == [f"m{i:02d}" for i in range(6)] and len(work.results) == 6
    assert by_id["m00"].status == "ok"
    assert by_id["m01"].status == "failed" and "CUDA out of memory" in by_id["m01"].reason
    assert summary.ok == 5 and summary.failed == 1 and summary.oom_retries == 2
    log = runs(tmp_path)
    assert [b for m, _, b in log if m == "m00"] == [1, 0]  # beside a neighbour, then alone
    assert [b for m, _, b in log if m == "m01"] == [1, 0]
    assert "2 retried alone after running out of GPU memory beside other workers" in summary.line()


def test_out_of_memory_alone_on_a_device_is_final_at_once(tmp_path, deadline):
    """One worker per device: nobody to make room, so out of memory is the model's result (no retry)."""
    work = InMemoryWork(3)
    summary = gpu_pool(work, tmp_path, crowded_worker, ["cuda:0", "cuda:1"], big=[], huge=["m02"]).run()
    assert summary.failed == 1 and summary.oom_retries == 0 and summary.ok == 2
    assert [m for m, _, _ in runs(tmp_path)].count("m02") == 1


def bad_gpu1_worker(conn, config):
    """GPU 1 has no kernel image for this torch: its workers fail the device check at start-up."""
    if config["device"] == "cuda:1":
        conn.send(("fatal", "RuntimeError: CUDA error: no kernel image is available for execution on the device",
                   "environment"))  # fmt: skip
        os._exit(1)
    ok_worker(conn, config)


def sticky_gpu1_worker(conn, config):
    """GPU 1 passes its check, then hits a sticky error in the first model it trains."""
    if config["device"] != "cuda:1":
        return ok_worker(conn, config)
    conn.send(("ready", {"pid": os.getpid()}))
    task = conn.recv()
    with open(Path(config["data_path"]) / "sticky", "a") as f:
        f.write(task.model_id + "\n")
    conn.send(("fatal", "AcceleratorError: CUDA error: an illegal memory access was encountered", "environment"))
    os._exit(1)


def test_a_bad_gpu_is_excluded_in_one_line_and_the_others_go_on(tmp_path, capfd, deadline):
    """Fault 6: GPU 1's workers fail their check; GPU 0 trains every model; one line names GPU 1 and why."""
    work = InMemoryWork(5)
    summary = gpu_pool(work, tmp_path, bad_gpu1_worker, ["cuda:0", "cuda:1", "cuda:0", "cuda:1"], sleep=0.5).run()
    assert summary.ok == 5 and summary.failed == 0 and {r.device for r in work.results} == {"cuda:0"}
    err = capfd.readouterr().err
    line = "GPU 1 excluded: RuntimeError: CUDA error: no kernel image is available for execution on the device"
    assert err.count("excluded") == 1 and line in err
    assert list(summary.excluded) == ["cuda:1"] and "excluded: GPU 1" in summary.line()


def test_the_model_in_flight_on_an_excluded_gpu_goes_back_unrecorded(tmp_path, deadline, capfd):
    """Fault 2: a sticky CUDA error while training is the environment's: GPU 1 is excluded and its model
    trains on GPU 0, with no `failed` row."""
    work = InMemoryWork(6)
    summary = gpu_pool(work, tmp_path, sticky_gpu1_worker, ["cuda:0", "cuda:1"], sleep=0.1).run()
    struck = (tmp_path / "sticky").read_text().split()
    assert len(struck) == 1 and struck[0] in work.retried
    assert (
        summary.ok == 6
        and summary.failed == 0
        and sorted(r.model_id for r in work.results) == [f"m{i:02d}" for i in range(6)]
    )
    assert "GPU 1 excluded: AcceleratorError: CUDA error: an illegal memory access" in capfd.readouterr().err


def all_bad_worker(conn, config):
    conn.send(("ready", {"pid": os.getpid()}))
    task = conn.recv()
    with open(Path(config["data_path"]) / "log", "a") as f:
        f.write(f"{os.getpid()} {task.model_id}\n")
    time.sleep(0.2)
    conn.send(("fatal", "RuntimeError: CUDA error: unspecified launch failure", "environment"))
    os._exit(1)


def test_when_every_gpu_is_bad_the_run_stops_with_one_line_and_no_failed_model(tmp_path, deadline):
    work = InMemoryWork(4)
    with pytest.raises(RegspaceError, match=r"training worker failed on GPU [01]: RuntimeError: CUDA error: "
                       r"unspecified launch failure; no device is left"):  # fmt: skip
        gpu_pool(work, tmp_path, all_bad_worker, ["cuda:0", "cuda:1"]).run()
    assert work.results == [] and work.closed is False  # nothing recorded; the source gave back what it held


def oom_at_upload_worker(conn, config):
    """After a recycle, the third worker to start finds no room for its data (its neighbour is at its peak)."""
    starts = Path(config["data_path"]) / "starts"
    with open(starts, "a") as f:
        f.write(f"{os.getpid()}\n")
    if len(starts.read_text().split()) == 3:
        conn.send(("fatal", f"OutOfMemoryError: {OOM_MESSAGE}", "out of memory"))
        os._exit(1)
    ok_worker(conn, config)


def test_no_room_for_the_data_after_a_recycle_retires_one_worker_not_the_run(tmp_path, capfd, deadline):
    work = InMemoryWork(6)
    summary = gpu_pool(work, tmp_path, oom_at_upload_worker, ["cuda:0", "cuda:0"], recycle=1).run()
    assert summary.ok == 6 and summary.failed == 0 and not summary.excluded
    err = capfd.readouterr().err
    assert "GPU 0: a worker stopped, no room beside 1 other(s) (OutOfMemoryError: CUDA out of memory." in err
    assert "1 worker(s) go on there" in err


def exclusive_worker(conn, config):
    """A GPU in EXCLUSIVE_PROCESS mode that nvidia-smi did not report: the second process is refused."""
    lock = Path(config["data_path"]) / "holder"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL)
        os.close(fd)
    except FileExistsError:
        conn.send(("fatal", "RuntimeError: CUDA error: CUDA-capable device(s) is/are busy or unavailable",
                   "environment"))  # fmt: skip
        os._exit(1)
    ok_worker(conn, config)


def test_a_gpu_that_refuses_a_second_process_keeps_its_first_worker(tmp_path, capfd, deadline):
    work = InMemoryWork(4)
    summary = gpu_pool(work, tmp_path, exclusive_worker, ["cuda:0", "cuda:0"], sleep=0.5).run()
    assert summary.ok == 4 and not summary.excluded
    assert "GPU 0: a worker stopped, the device refuses another process" in capfd.readouterr().err


# -- compute modes, read up front ---------------------------------------------------------------------------
def test_compute_modes_decide_workers_per_gpu(tmp_path, monkeypatch, capsys):
    """Fault 6: GPU 1 in EXCLUSIVE_PROCESS takes one worker (said once), GPU 2 PROHIBITED is excluded (said
    once); read from a fake nvidia-smi, through CUDA_VISIBLE_DEVICES' renumbering."""
    from test_devices import _fake_smi

    import regspace.train.devices as dev
    from regspace.train.runner import Parallelism, plan_slots

    modes = (
        'printf "0, GPU-aaaa, Default\\n1, GPU-bbbb, Exclusive_Process\\n2, GPU-cccc, Prohibited\\n'
        '3, GPU-dddd, [N/A]\\n"'
    )
    _fake_smi(tmp_path, monkeypatch, modes)
    assert dev.gpu_compute_modes([0, 1, 2, 3]) == ["default", "exclusive_process", "prohibited", None]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,1,0")
    assert dev.gpu_compute_modes([0, 1, 2]) == ["prohibited", "exclusive_process", "default"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")

    monkeypatch.setattr("regspace.torch_index.has_nvidia_driver", lambda: True)
    monkeypatch.setattr(dev, "torch_cuda", lambda: ("12.8", 3))
    monkeypatch.setattr(dev, "gpu_free_bytes", lambda ids: [40 << 30 for _ in ids])
    monkeypatch.setattr("regspace.train.runner.cpu_count", lambda: 12)
    models = [{"acts": 1000, "params": 1000}]
    devices, _ = plan_slots(Parallelism(devices="auto", workers_per_device=3), models, data_bytes=0,
                            batch_size=128, planned=None)  # fmt: skip
    assert devices == ["cuda:0", "cuda:1", "cuda:0", "cuda:0"]
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "GPU 2 excluded: its compute mode is Prohibited (no process may use it)",
        "GPU 1 is in EXCLUSIVE_PROCESS compute mode: 1 worker there, not 3",
    ]


def test_every_gpu_prohibited_is_one_error(tmp_path, monkeypatch):
    from regspace.train.devices import check_compute_modes

    with pytest.raises(RegspaceError, match="every GPU asked for is in compute mode Prohibited"):
        check_compute_modes([0, 1], modes=lambda ids: ["prohibited"] * len(ids))
    assert check_compute_modes([0, 1], modes=lambda ids: [None, "default"]) == ([0, 1], set())


def test_16_mixed_on_the_cpu_records_the_bf16_that_lightning_runs():
    """Lightning has no fp16 AMP on the CPU: asked for 16-mixed it warns and trains bf16-mixed. The result
    must say what ran, not what was asked (so the diverged path under fp16 can only be checked on a GPU)."""
    from regspace.train.fit import resolve_precision

    assert resolve_precision(Recipe(precision="16-mixed"), "cpu") == "bf16-mixed"
    assert resolve_precision(Recipe(precision="32-true"), "cpu") == "32-true"


def test_auto_precision_on_the_cpu_follows_its_bf16_and_the_override(monkeypatch, tmp_path):
    """auto is bf16-mixed where /proc/cpuinfo lists avx512_bf16 or amx_bf16, else 32-true; REGSPACE_CPU_BF16=0
    gives 32-true on any CPU (to match an fp32-only machine)."""
    import builtins

    from regspace.train import fit

    real_open = builtins.open

    def cpuinfo(flags):
        f = tmp_path / f"cpuinfo-{len(flags)}"
        f.write_text(f"processor : 0\nflags : fpu sse2 {flags}\n")
        return lambda path, *a, **k: real_open(f if path == "/proc/cpuinfo" else path, *a, **k)

    monkeypatch.delenv("REGSPACE_CPU_BF16", raising=False)
    for flags, want in (("avx512f avx512_bf16", "bf16-mixed"), ("amx_bf16", "bf16-mixed"), ("avx512f", "32-true")):
        monkeypatch.setattr(builtins, "open", cpuinfo(flags))
        assert fit.resolve_precision(Recipe(precision="auto"), "cpu") == want, flags
    monkeypatch.setattr(builtins, "open", cpuinfo("avx512_bf16"))
    monkeypatch.setenv("REGSPACE_CPU_BF16", "0")
    assert fit.resolve_precision(Recipe(precision="auto"), "cpu") == "32-true"
