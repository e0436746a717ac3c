"""Which package index the set-up installs torch from (run by the Makefile before regspace is installed).

On Linux, the default index's torch wheel is one CUDA build (for torch 2.13, CUDA 13: it needs a driver of
the R580 branch or newer and has no kernels for GPUs older than Turing, sm_75). So:

- no NVIDIA driver: PyTorch's CPU-only index (a few hundred MB instead of several GB) when it answers;
- an NVIDIA driver: the PyTorch CUDA index (cu130, cu128 or cu126) that this driver can run and whose
  wheels carry kernels for every GPU here (nvidia-smi's driver_version, the "CUDA Version" it reports,
  and compute_cap), newest first, among the indexes that answer with the pinned torch;
- otherwise the default index, with one line saying why;
- other systems' default wheels carry no CUDA, so they use the default index.

    python3 regspace/torch_index.py     # prints pip's extra arguments; the reason goes to stderr

$REGSPACE_TORCH_INDEX overrides the choice: "cpu", "default", "cu126" (any PyTorch variant), or an index
URL. Standard library only.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

WHL = "https://download.pytorch.org/whl"
CPU_INDEX = f"{WHL}/cpu"

# Which driver runs which CUDA major version. Source: NVIDIA's CUDA Compatibility guide, "Minor Version
# Compatibility" table (CUDA 12.x needs a driver >= 525, CUDA 13.x >= 580; a newer driver runs older CUDA
# by backward compatibility), and the CUDA Toolkit release notes' "CUDA Toolkit and Corresponding Driver
# Versions" table for the toolkits' own minimums on Linux x86_64: 12.6 GA >= 560.28.03, 12.8 GA >= 570.26,
# 13.0 GA >= 580.65.06. PyTorch's wheels carry their CUDA runtime, so minor version compatibility is what
# applies: a cu128 wheel on a 535 driver runs, without the features that need a newer driver (PTX JIT of
# newer PTX among them: a GPU newer than the wheel's architectures then has no kernels either way).
# Uncertain: whether every library in a cu12x wheel (cuDNN, NCCL) keeps to the 525 minimum; a 525–559
# driver is the case to watch.
MIN_DRIVER = {13: 580, 12: 525}

# PyTorch's published CUDA variants for the pinned torch, newest first, with the GPU architectures their
# Linux x86_64 wheels carry kernels for (compute capabilities; "ptx": also PTX of the last one, which newer
# GPUs compile at load). Source: PyTorch's RELEASE.md "PyTorch CUDA Support Matrix" and the 2.11 notice
# "Dropping Volta support from CUDA-12.8 binaries" (pytorch/pytorch#172352): cu126 keeps Maxwell to Hopper,
# cu128 and cu130 start at Turing and add Blackwell. Uncertain: that the 2.13 matrix is unchanged from 2.11
# (a variant missing from the index is skipped: the index is asked whether it has the pinned torch), and the
# aarch64 (SBSA) lists, which differ slightly.
VARIANTS = (
    ("cu130", 13, ((7, 5), (8, 0), (8, 6), (9, 0), (10, 0), (12, 0)), True),
    ("cu128", 12, ((7, 5), (8, 0), (8, 6), (9, 0), (10, 0), (12, 0)), False),
    ("cu126", 12, ((5, 0), (6, 0), (7, 0), (7, 5), (8, 0), (8, 6), (9, 0)), False),
)


@dataclass(frozen=True)
class Gpus:
    """What nvidia-smi says about this machine's GPUs: the driver version ("580.65.06"), the CUDA version
    the driver reports ("13.0"; None when unread) and each GPU's compute capability ((7, 0) for a V100)."""

    driver: str | None = None
    cuda: str | None = None
    capabilities: tuple[tuple[int, int], ...] = ()

    def cuda_major(self) -> int | None:
        """The newest CUDA major version this driver runs: from the driver version (MIN_DRIVER), else from
        the CUDA version nvidia-smi reports."""
        m = re.match(r"(\d+)\.", self.driver or "")
        if m:
            branch = int(m.group(1))
            majors = [k for k, v in MIN_DRIVER.items() if branch >= v]
            return max(majors) if majors else 11
        m = re.match(r"(\d+)\.", self.cuda or "")
        return int(m.group(1)) if m else None


def covers(archs: tuple, ptx: bool, capability: tuple[int, int]) -> bool:
    """Whether a wheel with kernels for ``archs`` runs on a GPU of ``capability``: a kernel built for sm_XY
    runs on sm_XZ with Z >= Y (same major); PTX of the last arch also runs on any newer GPU."""
    if any(a[0] == capability[0] and a[1] <= capability[1] for a in archs):
        return True
    return ptx and capability >= archs[-1]


def has_nvidia_driver() -> bool:
    return bool(
        shutil.which("nvidia-smi") or os.path.exists("/proc/driver/nvidia/version") or glob.glob("/dev/nvidia[0-9]*")
    )


def query_gpus(smi: str | None = None, timeout: float = 20.0) -> Gpus | None:
    """The driver version, the CUDA version and the compute capabilities from nvidia-smi, or None when it is
    missing, fails or times out. A field it cannot answer ("[N/A]", or compute_cap on an old driver) stays
    None / empty."""
    smi = smi or shutil.which("nvidia-smi")
    if not smi:
        return None

    class Hung(Exception):
        pass

    def run(*args):
        try:
            p = subprocess.run([smi, *args], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Hung from None
        except OSError:
            return None
        return p.stdout if p.returncode == 0 else None

    caps, drivers = [], []
    try:  # a hung nvidia-smi is asked once, not three times
        out = run("--query-gpu=driver_version,compute_cap", "--format=csv,noheader")
        if out is None:  # an old driver does not know compute_cap: ask for the driver alone
            out = run("--query-gpu=driver_version", "--format=csv,noheader")
        header = run() or ""
    except Hung:
        return None
    for line in (out or "").strip().splitlines():
        parts = [x.strip() for x in line.split(",")]
        if parts and re.fullmatch(r"\d+(\.\d+)+", parts[0]):
            drivers.append(parts[0])
        if len(parts) > 1 and re.fullmatch(r"\d+\.\d+", parts[1]):
            major, minor = parts[1].split(".")
            caps.append((int(major), int(minor)))
    m = re.search(r"CUDA Version:\s*(\d+\.\d+)", header)
    if not drivers and m is None:
        return None
    return Gpus(drivers[0] if drivers else None, m.group(1) if m else None, tuple(caps))


def pinned_torch() -> str | None:
    """The torch version constraints.txt pins (the set-up installs with it), or None."""
    try:
        text = (Path(__file__).resolve().parents[1] / "constraints.txt").read_text()
    except OSError:
        return None
    m = re.search(r"^torch==([\w.]+)\s*$", text, re.M)
    return m.group(1) if m else None


def reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether the index at ``url`` answers (and, when constraints.txt pins torch, lists that version)."""
    version = pinned_torch()
    try:
        if version is None:
            with urllib.request.urlopen(urllib.request.Request(url + "/torch/", method="HEAD"), timeout=timeout):
                return True
        with urllib.request.urlopen(url + "/torch/", timeout=timeout) as r:
            page = r.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return False
    return re.search(rf"torch-{re.escape(version)}(\+|%2B)", page) is not None


def choose_cuda(gpus: Gpus, reachable) -> tuple[list[str], str]:
    """(pip arguments, the reason in one line) on a Linux machine with an NVIDIA driver."""
    major = gpus.cuda_major()
    caps = sorted(set(gpus.capabilities))
    shown = ", ".join(f"sm_{a}{b}" for a, b in caps) or "compute capability unknown"
    driver = f"driver {gpus.driver}" if gpus.driver else f"a driver for CUDA {gpus.cuda}"
    if major is None:
        return [], "NVIDIA driver found, but nvidia-smi gave no driver version: torch from the default index"
    fitting = [tag for tag, cuda, archs, ptx in VARIANTS if cuda <= major and all(covers(archs, ptx, c) for c in caps)]
    if not fitting:
        if major < min(MIN_DRIVER):
            why = f"{driver} runs CUDA {major}.x at most; torch's CUDA builds need a driver >= {MIN_DRIVER[12]}"
        else:
            why = f"no PyTorch CUDA build has kernels for {shown}"
        hint = "update the driver, or set REGSPACE_TORCH_INDEX"
        return [], f"{why}: torch from the default index, which may not run here ({hint})"
    unknown = "" if caps else " (compute capability unknown: nvidia-smi did not say)"
    for tag in fitting:
        url = f"{WHL}/{tag}"
        if reachable(url):
            return ["--extra-index-url", url], f"{driver}, {shown}: torch's {tag} build from {url}{unknown}"
    return [], (
        f"{driver}, {shown}: the fitting PyTorch indexes ({', '.join(fitting)}) cannot be reached or lack the "
        "pinned torch: torch from the default index (its CUDA 13 build needs a driver >= 580 and sm_75+)"
    )


def choose(
    system: str, nvidia: bool, reachable, override: str | None = None, gpus: Gpus | None = None
) -> tuple[list[str], str]:
    """(pip arguments, the reason in one line). ``reachable(url)`` is called only when it matters; ``gpus``
    is what nvidia-smi said (None: it said nothing)."""
    if override:
        if override == "default":
            return [], "torch from the default index ($REGSPACE_TORCH_INDEX=default)"
        url = CPU_INDEX if override == "cpu" else f"{WHL}/{override}" if re.fullmatch(r"cu\d+", override) else override
        return ["--extra-index-url", url], f"torch from {url} ($REGSPACE_TORCH_INDEX)"
    if system != "Linux":
        return [], f"torch from the default index ({system}: its wheels carry no CUDA)"
    if nvidia:
        if gpus is None:
            return [], "NVIDIA driver found, but nvidia-smi did not answer: torch's CUDA build from the default index"
        return choose_cuda(gpus, reachable)
    if reachable(CPU_INDEX):
        return ["--extra-index-url", CPU_INDEX], f"no NVIDIA GPU: torch's CPU-only build from {CPU_INDEX}"
    return [], (
        f"no NVIDIA GPU, but {CPU_INDEX} cannot be reached: torch from the default index "
        "(on Linux that can be the multi-GB CUDA build)"
    )


def main() -> None:
    override = os.environ.get("REGSPACE_TORCH_INDEX")
    system = platform.system()
    nvidia = has_nvidia_driver()
    gpus = query_gpus() if nvidia and system == "Linux" and not override else None
    args, why = choose(system, nvidia, reachable, override, gpus)
    print(f"set-up: {why}", file=sys.stderr)
    print(" ".join(args))


if __name__ == "__main__":
    main()
