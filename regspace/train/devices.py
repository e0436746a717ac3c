"""Which devices `regspace train --devices` means: never a silent fall-back to the CPU.

- ``auto`` (the default): every visible GPU when the machine has an NVIDIA driver; the CPU, said in
  one line, when it has none;
- ``cpu``: the CPU;
- ``0`` or ``0,1``: those GPUs, by index.

GPUs asked for (or a driver present under ``auto``) with a torch that has no CUDA, or that sees no
GPU, stop with one line: a sweep that quietly trained on the CPU would take days and mix devices.
The parent imports torch only on a machine with an NVIDIA driver.
"""

from __future__ import annotations

import os

from regspace.errors import RegspaceError, UsageProblem


def parse_devices(spec: str | None) -> str | tuple[int, ...]:
    """'auto', 'cpu', or a tuple of GPU indices."""
    s = "auto" if spec is None else spec.strip().lower()
    if s in ("auto", "cpu"):
        return s
    try:
        ids = tuple(int(x) for x in s.split(",") if x.strip())
    except ValueError:
        ids = ()
    if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise UsageProblem(f"cannot read --devices {spec!r}: use auto, cpu, or GPU indices such as 0 or 0,1")
    return ids


def torch_cuda() -> tuple[str | None, int]:
    """(torch's CUDA version or None for a CPU-only build, number of GPUs torch sees)."""
    import torch

    return torch.version.cuda, (torch.cuda.device_count() if torch.version.cuda else 0)


def resolve_devices(spec: str | None, *, driver: bool | None = None, cuda=None, say=None) -> list[int]:
    """GPU indices to train on; [] means the CPU. ``driver`` and ``cuda`` are probes (tests replace them)."""
    want = parse_devices(spec)
    if want == "cpu":
        return []
    if driver is None:
        from regspace.torch_index import has_nvidia_driver

        driver = has_nvidia_driver()
    if not driver:
        if want == "auto":
            if say:
                say("no NVIDIA driver on this machine: training on the CPU")
            return []
        raise RegspaceError(f"--devices {spec}: this machine has no NVIDIA driver", hint="use --devices cpu")
    version, count = (cuda or torch_cuda)()
    asked = "an NVIDIA driver is present" if want == "auto" else f"--devices {spec} asks for GPUs"
    if version is None:
        raise RegspaceError(
            f"{asked}, but this torch is a CPU-only build",
            hint="install torch's CUDA build, or pass --devices cpu to train on the CPU",
        )
    if count == 0:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        raise RegspaceError(f"{asked}, but torch sees no GPU{where}", hint="check the driver, or pass --devices cpu")
    if want == "auto":
        return list(range(count))
    missing = [i for i in want if i >= count]
    if missing:
        raise RegspaceError(f"--devices {spec}: GPU {missing[0]} does not exist; torch sees {count} GPU(s)")
    return list(want)


# -- several workers per GPU ---------------------------------------------------------------------
CUDA_CONTEXT_BYTES = 600 << 20  # what each worker process's CUDA context and torch runtime take on the GPU
MAX_PER_DEVICE = 8


MEASURED_MARGIN = 1.2  # on a measured scale: the allocator's fragmentation over a worker's life of models


def model_bytes(acts: int, params: int, batch_size: int) -> int:
    """The part of a worker's GPU memory that grows with the model (an fp32 upper bound): activations kept
    for the backward pass, and weights with gradients, momentum and a copy."""
    return 4 * 3 * acts * batch_size + 4 * 4 * params


def gpu_model_bytes(acts: int, params: int, data_bytes: int, batch_size: int, scale: float = 1.0) -> int:
    """One worker's GPU memory for a model: the resident dataset, the model's part (:func:`model_bytes`)
    times ``scale`` (1: the estimate; else :func:`measured_scale` with its margin), and the CUDA context."""
    return data_bytes + int(scale * model_bytes(acts, params, batch_size)) + CUDA_CONTEXT_BYTES


def measured_scale(measured: list[dict], data_bytes: int, batch_size: int) -> float | None:
    """How much of its estimate a model really took, from this recipe's earlier GPU results: the largest
    ratio (peak − dataset) / :func:`model_bytes` over the measured models, with MEASURED_MARGIN on top.
    ``measured``: rows with acts, params and peak_reserved_mb (what the allocator held, caching included;
    results before schema 6 have only peak_memory_mb, the allocated peak, which then stands in). None when
    no row has a peak. The CUDA context is not in either peak: :func:`gpu_model_bytes` adds it."""
    ratios = []
    for r in measured:
        peak = r.get("peak_reserved_mb") or r.get("peak_memory_mb")
        est = model_bytes(int(r["acts"]), int(r["params"]), batch_size)
        if peak and est > 0:
            ratios.append(max(0.0, peak * 2**20 - data_bytes) / est)
    return MEASURED_MARGIN * max(ratios) if ratios else None


def workers_per_device(
    need_bytes: int, free_bytes: list[int], *, cores: int, asked: int | None = None, small_bytes: int = 2 << 30
) -> int:
    """Workers per GPU: ``asked``, or as many as the tightest GPU's free memory holds (at least 2 when a
    model needs under ``small_bytes``, at most 8), never more than the CPU cores give each worker one.
    Refuses, in one line, a number the free memory cannot hold."""
    tight = min(free_bytes)
    fits = int(0.9 * tight // max(1, need_bytes))
    gib = 1 << 30
    if asked is not None:
        if asked > fits:
            raise RegspaceError(
                f"--workers-per-device {asked}: each worker needs about {need_bytes / gib:.1f} GiB, and a GPU has "
                f"{tight / gib:.1f} GiB free (room for {fits})",
                hint="ask for fewer, or free the GPU",
            )
        return asked
    if fits < 1:
        raise RegspaceError(
            f"a worker needs about {need_bytes / gib:.1f} GiB of GPU memory, "
            f"but a GPU has only {tight / gib:.1f} GiB free",
            hint="use a smaller --batch-size, or free the GPU",
        )
    by_cores = max(1, cores // len(free_bytes))
    want = min(fits, MAX_PER_DEVICE, by_cores)
    if need_bytes < small_bytes:
        want = max(want, min(2, fits))
    return want


# -- host memory of GPU workers -------------------------------------------------------------------
# A GPU worker's own host memory: Python, torch, Lightning and the CUDA, cuDNN and cuBLAS libraries it maps.
# A rough figure (torch processes with a CUDA context commonly hold 1-2 GiB resident); bench_gpu.py prints
# the resident peak of a process that trained on the GPU, to check it against.
GPU_WORKER_HOST_BYTES = 3 << 29  # 1.5 GiB
PINNED_BUFFERS = 6  # mapped layout on a GPU: two pinned batch buffers for each of train, validation and test


def gpu_worker_host_bytes(resident_bytes: int, *, mapped: bool, image_bytes: int, batch_size: int) -> int:
    """Host memory (bytes) one GPU worker needs: the dataset it loads (``resident_bytes``: in memory, the
    whole dataset, held while it is copied to the GPU; mapped, its labels and channel sums), the pinned
    buffers mapped batches are read into (PINNED_BUFFERS of max(batch, EVAL_BATCH) images: see
    train.fit.prepare_tensors and train.pipeline.MappedImages), and the worker's runtime."""
    from regspace.defaults import EVAL_BATCH

    pinned = PINNED_BUFFERS * max(batch_size, EVAL_BATCH) * image_bytes if mapped else 0
    return resident_bytes + pinned + GPU_WORKER_HOST_BYTES


def available_host_bytes() -> int:
    """The host memory available to new processes (/proc/meminfo's MemAvailable: free memory plus what the
    kernel can reclaim), or the free pages where that file is missing."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 8 << 30


def fit_host_memory(n: int, per_worker: int, available: int, say=None) -> int:
    """How many of ``n`` GPU workers the host memory holds (90 % of ``available``): ``n``, or fewer, said in
    one line. At least one: a single worker that does not fit meets its own error when it loads."""
    fits = max(1, int(0.9 * available // max(1, per_worker)))
    if n <= fits:
        return n
    if say:
        gib = 1 << 30
        say(
            f"host memory: {n} GPU workers need about {n * per_worker / gib:.1f} GiB ({per_worker / gib:.1f} GiB "
            f"each: dataset, pinned batches, runtime), {available / gib:.1f} GiB is available: using {fits}"
        )
    return fits


def gpu_free_bytes(ids: list[int]) -> list[int]:
    """Free memory (bytes) of torch's GPUs ``ids``, from nvidia-smi (no CUDA context in the parent); torch's
    mem_get_info as the fall-back whenever nvidia-smi cannot answer for exactly these GPUs.

    nvidia-smi numbers GPUs physically, torch after CUDA_VISIBLE_DEVICES, which may list indices, UUIDs
    (GPU-…, a prefix is enough) or MIG instances; a value of "[N/A]", a time-out, or a MIG id (which this
    query cannot resolve) sends the question to torch rather than read another GPU's memory (issue 23)."""
    found = _smi_for_torch_ids(ids, "memory.free", lambda v: int(v) << 20 if v.isdigit() else None)
    if found is not None and all(v is not None for v in found):
        return found
    import torch

    return [torch.cuda.mem_get_info(i)[0] for i in ids]


def _smi_for_torch_ids(ids: list[int], field: str, parse) -> list | None:
    """nvidia-smi's ``field`` for each of torch's GPUs ``ids``, read by ``parse`` (None where it answers
    nothing usable, or for a GPU this query cannot resolve), or None when nvidia-smi cannot answer.

    nvidia-smi numbers GPUs physically, torch after CUDA_VISIBLE_DEVICES, which may list indices, UUIDs
    (GPU-…, a prefix is enough) or MIG instances (never resolved: a MIG slice is not its GPU)."""
    import shutil
    import subprocess

    answer = _smi_query(shutil.which("nvidia-smi"), subprocess, field, parse)
    if answer is None:
        return None
    by_index, by_uuid = answer
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    entries = [x.strip() for x in visible.split(",")] if visible else None
    found = []
    for i in ids:
        if entries is None:
            found.append(by_index.get(i))
            continue
        entry = entries[i] if i < len(entries) else ""
        if entry.isdigit():
            found.append(by_index.get(int(entry)))
        elif entry.upper().startswith("GPU-"):
            matches = [v for u, v in by_uuid.items() if u.upper().startswith(entry.upper())]
            found.append(matches[0] if len(matches) == 1 else None)
        else:  # MIG-… or anything else
            found.append(None)
    return found


def _smi_query(smi: str | None, subprocess, field: str, parse) -> tuple[dict, dict] | None:
    """({physical index: value}, {uuid: value}) of one nvidia-smi ``--query-gpu`` field, each value read
    by ``parse`` (GPUs it reads as None, such as "[N/A]", are left out), or None when nvidia-smi is
    missing, fails or times out."""
    if not smi:
        return None
    try:
        p = subprocess.run(
            [smi, f"--query-gpu=index,uuid,{field}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (subprocess.TimeoutExpired, OSError):
        return None
    if p.returncode != 0:
        return None
    by_index, by_uuid = {}, {}
    for line in p.stdout.strip().splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        value = parse(parts[2])
        if value is not None:
            by_index[int(parts[0])] = by_uuid[parts[1]] = value
    return by_index, by_uuid


# -- compute modes -------------------------------------------------------------------------------
EXCLUSIVE_PROCESS, PROHIBITED = "exclusive_process", "prohibited"


def gpu_compute_modes(ids: list[int]) -> list[str | None]:
    """nvidia-smi's compute mode of torch's GPUs ``ids``, lower-case ("default", "exclusive_process",
    "prohibited"), None where it cannot say (no nvidia-smi, "[N/A]", a MIG slice)."""
    found = _smi_for_torch_ids(ids, "compute_mode", lambda v: v.lower() if v and not v.startswith("[") else None)
    return found if found is not None else [None] * len(ids)


def check_compute_modes(gpus: list[int], *, modes=None, say=None) -> tuple[list[int], set[int]]:
    """(the GPUs a run may use, those of them that take one worker only), by compute mode: a GPU in
    PROHIBITED mode takes no process (excluded, said in one line); in EXCLUSIVE_PROCESS one process (one
    worker, said in one line when more were planned: the plan says it). ``modes``: a probe (tests).
    Raises RegspaceError when every GPU is prohibited (issue 23, fault 6)."""
    modes = (modes or gpu_compute_modes)(gpus)
    usable, single = [], set()
    for i, mode in zip(gpus, modes):
        if mode == PROHIBITED:
            if say:
                say(f"GPU {i} excluded: its compute mode is Prohibited (no process may use it)")
            continue
        if mode in (EXCLUSIVE_PROCESS, "exclusive_thread"):  # the latter: older drivers' variant
            single.add(i)
        usable.append(i)
    if not usable:
        raise RegspaceError(
            "every GPU asked for is in compute mode Prohibited",
            hint="ask the administrator for `nvidia-smi -c DEFAULT`, or pass --devices cpu",
        )
    return usable, single


def one_worker_where_exclusive(devices: list[str], single: set[int], *, say=None) -> list[str]:
    """``devices`` (one per worker) with one worker only on each GPU of ``single`` (EXCLUSIVE_PROCESS)."""
    out, seen = [], set()
    for d in devices:
        i = int(d.partition(":")[2] or 0) if d.startswith("cuda") else None
        if i in single and i in seen:
            continue
        seen.add(i)
        out.append(d)
    for i in sorted(single):
        n = devices.count(f"cuda:{i}")
        if n > 1 and say:
            say(f"GPU {i} is in EXCLUSIVE_PROCESS compute mode: 1 worker there, not {n}")
    return out
