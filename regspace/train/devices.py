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
    """Free memory of these GPUs, from nvidia-smi (no CUDA context in the parent); torch as a fall-back."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        p = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if p.returncode == 0:
            free = {int(i): int(m) << 20 for i, m in (line.split(",") for line in p.stdout.strip().splitlines())}
            # CUDA_VISIBLE_DEVICES renumbers GPUs; nvidia-smi does not: map torch's index to the physical one
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            physical = [int(x) for x in visible.split(",")] if visible and visible.replace(",", "").isdigit() else None
            try:
                return [free[physical[i] if physical else i] for i in ids]
            except (KeyError, IndexError):
                pass
    import torch

    return [torch.cuda.mem_get_info(i)[0] for i in ids]
