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


def resolve_devices(spec: str | None, *, driver: bool | None = None, cuda=torch_cuda, say=None) -> list[int]:
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
    version, count = cuda()
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
