"""Whose fault an exception raised while training is: the environment's, the model's, or the neighbours'.

One rule, :func:`classify`, read by the training worker (regspace.train.worker) and by
:func:`~regspace.train.fit.fit_one`:

- ``ENVIRONMENT``: the device or the set-up cannot train anything — no kernel image for this GPU's
  architecture, cuDNN/cuBLAS without support for the chosen precision, a precision the device has no
  kernels for, or a *sticky* CUDA error (an illegal memory access, a device-side assert, an unspecified
  launch failure, an ECC error…) after which the process's CUDA context is unusable. Never a model's
  result: the device is excluded and the model goes back to the work source (issue 23, faults 2 and 6).
- ``OUT_OF_MEMORY``: CUDA ran out of memory. The model's result only when it trained alone on its
  device; beside other workers it is retried alone (issue 23, fault 4).
- ``MODEL``: anything else (a shape error, a value error, the CPU allocator failing): the model's result.

No torch here: the rule reads the exception's type names and message, so the parent (which never
imports torch) and the tests can use it on real-looking messages.
"""

from __future__ import annotations

ENVIRONMENT = "environment"
OUT_OF_MEMORY = "out of memory"
MODEL = "model"

# Substrings (matched case-insensitively) of torch/CUDA/cuDNN/cuBLAS messages that mean the device or the
# set-up, not the model. Sticky errors are CUDA's "the context is corrupted" family (cudaErrorIllegalAddress,
# cudaErrorAssert, cudaErrorLaunchFailure, cudaErrorMisalignedAddress, cudaErrorIllegalInstruction,
# cudaErrorECCUncorrectable, cudaErrorLaunchTimeout, cudaErrorHardwareStackError…).
_ENVIRONMENT_PATTERNS = (
    # this torch build has no kernels for the GPU's architecture
    "no kernel image is available for execution on the device",
    "is not compatible with the current pytorch installation",
    "the provided ptx was compiled with an unsupported toolchain",
    "ptx jit compiler",
    # cuDNN / cuBLAS refusing the precision or the architecture
    "cudnn_status_not_supported",
    "cudnn_status_arch_mismatch",
    "cudnn_status_not_initialized",
    "cudnn_status_execution_failed",
    "unable to find an engine to execute this computation",  # cuDNN v8 API: no engine for this dtype/arch
    "no execution plans support the graph",  # cuDNN frontend (v9)
    "cudnn version incompatibility",
    "cublas_status_not_supported",
    "cublas_status_arch_mismatch",
    "cublas_status_not_initialized",
    "cublas_status_execution_failed",
    "cublas_status_internal_error",
    "not implemented for 'bfloat16'",  # an op without kernels in the chosen precision on this device
    "not implemented for 'half'",
    # sticky CUDA errors: the process's CUDA context is unusable afterwards
    "illegal memory access",
    "device-side assert triggered",  # not "device-side assertions", which every CUDA error's hint names
    "unspecified launch failure",
    "misaligned address",
    "an illegal instruction was encountered",
    "uncorrectable ecc error",
    "the launch timed out and was terminated",
    "hardware stack error",
    "cuda error: unknown error",
    # the device or driver is unavailable (a GPU in EXCLUSIVE_PROCESS or PROHIBITED mode, a lost GPU)
    "busy or unavailable",
    "no cuda-capable device is detected",
    "cuda driver version is insufficient",
    "cuda driver initialization failed",
    "invalid device ordinal",
    "gpu is lost",
    "operation not permitted when stream is capturing",
)
_OOM_PATTERNS = (
    "cuda out of memory",
    "cuda error: out of memory",
    "cublas_status_alloc_failed",
    "cudnn_status_alloc_failed",
)
_CPU_ALLOCATOR = ("defaultcpuallocator", "alloc_cpu")
_OOM_TYPES = ("OutOfMemoryError",)  # torch.OutOfMemoryError (= torch.cuda.OutOfMemoryError)
_ENVIRONMENT_TYPES = ("AcceleratorError", "CudaError", "DeferredCudaCallError")  # torch's CUDA error types


def classify(exc: BaseException) -> str:
    """ENVIRONMENT, OUT_OF_MEMORY or MODEL for an exception raised while setting up or training a model
    (its class and base-class names, its message and the exceptions it was raised from are read)."""
    names, text = set(), []
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:  # Lightning may re-raise a CUDA error from another one
        seen.add(id(e))
        names |= {c.__name__ for c in type(e).__mro__}
        text.append(str(e))
        e = e.__cause__ or e.__context__
    return classify_message(names, "\n".join(text))


def classify_message(type_names, message: str) -> str:
    """The rule of :func:`classify` on exception type names and a message."""
    low = message.lower()
    cpu = any(p in low for p in _CPU_ALLOCATOR)  # the CPU's memory: the model's result, as before
    if not cpu and (any(p in low for p in _OOM_PATTERNS) or any(n in _OOM_TYPES for n in type_names)):
        return OUT_OF_MEMORY
    if any(p in low for p in _ENVIRONMENT_PATTERNS) or any(n in _ENVIRONMENT_TYPES for n in type_names):
        return ENVIRONMENT
    return MODEL


def first_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message``, as results and fatal lines quote an exception."""
    first = (str(exc).strip().splitlines() or [""])[0][:limit]
    return f"{type(exc).__name__}: {first}"


def busy_device(cause: str) -> bool:
    """The device refused another process ("CUDA-capable device(s) is/are busy or unavailable"): a GPU in
    EXCLUSIVE_PROCESS compute mode that another worker already holds, when nvidia-smi could not say so."""
    return "busy or unavailable" in cause.lower()


class ModelOutOfMemory(Exception):
    """A model ran out of CUDA memory; ``result`` is the ``failed`` Result it would be. The worker pool
    decides whether that is final (the model trained alone on its device) or retried alone."""

    def __init__(self, result):
        super().__init__(result.reason)
        self.result = result


def device_label(device: str) -> str:
    """'GPU 1' for 'cuda:1', 'the CPU' for 'cpu': how one line names a device."""
    if device.startswith("cuda"):
        return f"GPU {device.partition(':')[2] or 0}"
    return "the CPU" if device == "cpu" else device
