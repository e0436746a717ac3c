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


def gpu_model_bytes(acts: int, params: int, data_bytes: int, batch_size: int) -> int:
    """An upper bound on one worker's GPU memory for a model: activations kept for the backward pass (fp32
    bound), weights with gradients, momentum and a copy, the resident dataset, and the CUDA context."""
    return 4 * 3 * acts * batch_size + 4 * 4 * params + data_bytes + CUDA_CONTEXT_BYTES


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
