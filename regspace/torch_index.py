"""Which package index the set-up installs torch from (run by the Makefile before regspace is installed).

On Linux, the default index's torch wheel is the CUDA build (several GB). A machine with no NVIDIA
driver needs only the CPU build, which PyTorch publishes on its own CPU-only index; that index is
added when it answers, and the default index is used when it does not (pip then installs the default
wheel). Other systems' default wheels carry no CUDA, so they use the default index.

    python3 regspace/torch_index.py     # prints pip's extra arguments; the reason goes to stderr

$REGSPACE_TORCH_INDEX overrides the choice: "cpu", "default", or an index URL. Standard library only.
"""

from __future__ import annotations

import glob
import os
import platform
import shutil
import sys
import urllib.request

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def has_nvidia_driver() -> bool:
    return bool(
        shutil.which("nvidia-smi") or os.path.exists("/proc/driver/nvidia/version") or glob.glob("/dev/nvidia[0-9]*")
    )


def reachable(url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/torch/", method="HEAD"), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def choose(system: str, nvidia: bool, cpu_index_reachable, override: str | None = None) -> tuple[list[str], str]:
    """(pip arguments, the reason in one line). ``cpu_index_reachable`` is called only when it matters."""
    if override:
        if override == "default":
            return [], "torch from the default index ($REGSPACE_TORCH_INDEX=default)"
        url = CPU_INDEX if override == "cpu" else override
        return ["--extra-index-url", url], f"torch from {url} ($REGSPACE_TORCH_INDEX)"
    if system != "Linux":
        return [], f"torch from the default index ({system}: its wheels carry no CUDA)"
    if nvidia:
        return [], "NVIDIA driver found: torch's CUDA build from the default index"
    if cpu_index_reachable():
        return ["--extra-index-url", CPU_INDEX], f"no NVIDIA GPU: torch's CPU-only build from {CPU_INDEX}"
    return [], (
        f"no NVIDIA GPU, but {CPU_INDEX} cannot be reached: torch from the default index "
        "(on Linux that can be the multi-GB CUDA build)"
    )


def main() -> None:
    args, why = choose(
        platform.system(), has_nvidia_driver(), lambda: reachable(CPU_INDEX), os.environ.get("REGSPACE_TORCH_INDEX")
    )
    print(f"set-up: {why}", file=sys.stderr)
    print(" ".join(args))


if __name__ == "__main__":
    main()
