"""The one place that knows about NumPy vs CuPy.

Math code never asks "is this NumPy or CuPy?". It asks this module for the array module `xp` that owns
its arrays (`array_module(x)`), or it is handed a `Backend` when it creates arrays from nothing.
Everything CuPy-specific in minwave lives in this file.

    backend = get_backend("numpy")      # or "cupy"
    xp = backend.xp                     # numpy or cupy
    backend.to_host(a)                  # -> numpy.ndarray (a copy from the GPU, or `a` itself)
    backend.asarray(a)                  # host data -> this backend's array
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

GPU_INSTALL_HINT = 'pip install "minwave[gpu]"  (needs an NVIDIA GPU with a CUDA 12 driver)'


class BackendError(RuntimeError):
    """The requested array backend cannot be used here (message says what to install or check)."""


@dataclass(frozen=True)
class Backend:
    """An array module plus the few operations whose spelling differs between NumPy and CuPy."""

    name: str
    xp: ModuleType
    array_type: type
    to_host: Callable[[Any], np.ndarray]
    scatter_add: Callable[[Any, Any, Any], None]  # target[idx] += values, accumulating repeated idx
    synchronize: Callable[[], None]
    # Optional fused float32 kernels for the gate (ops/gate.py says what they compute; None: the plain
    # array code there runs instead): pre -> (z, (t, s)) and (dz, t, s) -> dpre.
    fused_gate_forward: Callable[[Any], Any] | None = None
    fused_gate_backward: Callable[[Any, Any, Any], Any] | None = None
    device_memory_held: Callable[[], int] | None = None  # bytes the GPU memory pool holds (None on the CPU)
    device_memory_free: Callable[[], int] | None = None  # bytes still allocatable on the GPU (None on the CPU)

    def asarray(self, a, dtype=None):
        """Host (or same-backend) data -> an array of this backend."""
        return self.xp.asarray(a, dtype=dtype)

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"


def keep_freed_host_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the OS.

    A training step allocates and frees the same few hundred MB of activations every time. By default
    glibc hands freed memory at the top of its heap back to the OS and serves large arrays with mmap, so
    every step gets fresh pages that the kernel must fault in and zero: a tenth of the step time on the
    benchmark machine (docs/benchmarks.md). A fixed mmap threshold of 32 MiB (glibc's largest) and no
    trimming make arrays below 32 MiB come back from the heap, already mapped. The price: the process
    keeps its peak heap until it exits. Process-wide; glibc only. Returns whether it was applied.
    Opt-in, because it changes the whole process: `python -m minwave.train` and the benchmark call it;
    a library import never does.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's <malloc.h>
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc
        return False


def _numpy_backend() -> Backend:
    from .ops import numba_kernels  # compiled on first use (and cached on disk by Numba)

    return Backend(
        name="numpy",
        xp=np,
        array_type=np.ndarray,
        to_host=np.asarray,
        scatter_add=numba_kernels.scatter_add,  # np.add.at, compiled for the embedding's row case
        synchronize=lambda: None,
        fused_gate_forward=numba_kernels.gate_forward,
        fused_gate_backward=numba_kernels.gate_backward,
    )


def _cupy_fused_gate(cupy):
    """The gate's forward and backward as two CUDA element-wise kernels: the math of
    ops.gate.gate_forward_reference / gate_backward_reference, one pass each, no temporaries."""
    forward_kernel = cupy.ElementwiseKernel(
        "T f, T g",
        "T t, T s, T z",
        "t = tanh(f); s = (T)0.5 * ((T)1 + tanh((T)0.5 * g)); z = t * s;",
        "minwave_gate_forward",
    )
    backward_kernel = cupy.ElementwiseKernel(
        "T dz, T t, T s",
        "T df, T dg",
        "df = dz * s * ((T)1 - t * t); dg = dz * t * s * ((T)1 - s);",
        "minwave_gate_backward",
    )

    def gate_forward(pre):
        D = pre.shape[-1] // 2
        act = cupy.empty_like(pre)  # [t | s] side by side, the cache
        t, s = act[..., :D], act[..., D:]
        z = cupy.empty(pre.shape[:-1] + (D,), dtype=pre.dtype)
        forward_kernel(pre[..., :D], pre[..., D:], t, s, z)
        return z, (t, s)

    def gate_backward(dz, t, s):
        D = dz.shape[-1]
        dpre = cupy.empty(dz.shape[:-1] + (2 * D,), dtype=dz.dtype)  # [df | dg]
        backward_kernel(dz, t, s, dpre[..., :D], dpre[..., D:])
        return dpre

    return gate_forward, gate_backward


def _cupy_backend() -> Backend:
    try:
        import cupy
        import cupyx
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise BackendError(f"backend 'cupy' needs CuPy, which is not installed: {GPU_INSTALL_HINT}") from exc
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # pragma: no cover - depends on the machine
        raise BackendError(f"backend 'cupy': no usable CUDA device ({exc}); check the driver or use the CPU") from exc
    if n_devices < 1:  # pragma: no cover
        raise BackendError("backend 'cupy': CuPy is installed but no CUDA device is present; use the CPU")
    gate_forward, gate_backward = _cupy_fused_gate(cupy)
    return Backend(
        name="cupy",
        xp=cupy,
        array_type=cupy.ndarray,
        to_host=cupy.asnumpy,
        scatter_add=cupyx.scatter_add,
        synchronize=lambda: cupy.cuda.Device().synchronize(),
        fused_gate_forward=gate_forward,
        fused_gate_backward=gate_backward,
        device_memory_held=lambda: cupy.get_default_memory_pool().total_bytes(),
        # free on the device, plus what CuPy's pool holds but no array uses (it is reused first)
        device_memory_free=lambda: cupy.cuda.runtime.memGetInfo()[0] + cupy.get_default_memory_pool().free_bytes(),
    )


_FACTORIES = {"numpy": _numpy_backend, "cupy": _cupy_backend}
_CACHE: dict[str, Backend] = {}
# Backends that own arrays other than np.ndarray, checked before NumPy by array_module(). A test may
# register a strict stand-in here (tests/strict_xp.py).
_REGISTERED: list[Backend] = []


def get_backend(backend: str | Backend = "numpy") -> Backend:
    """'numpy' | 'cupy' | a Backend instance -> Backend. Raises BackendError with the fix if unavailable."""
    if isinstance(backend, Backend):
        return backend
    if backend not in _FACTORIES:
        raise ValueError(f"unknown backend {backend!r}: choose 'numpy' or 'cupy'")
    if backend not in _CACHE:
        _CACHE[backend] = _FACTORIES[backend]()
        if backend != "numpy":
            register(_CACHE[backend])
    return _CACHE[backend]


def register(backend: Backend) -> None:
    """Let array_module() recognise this backend's arrays."""
    if all(b.array_type is not backend.array_type for b in _REGISTERED):
        _REGISTERED.insert(0, backend)


def unregister(backend: Backend) -> None:
    _REGISTERED[:] = [b for b in _REGISTERED if b.array_type is not backend.array_type]


def backend_of(a) -> Backend:
    """The Backend owning array `a` (NumPy for anything not claimed by a registered backend)."""
    for b in _REGISTERED:
        if isinstance(a, b.array_type):
            return b
    return get_backend("numpy")


def array_module(a) -> ModuleType:
    """The `xp` of array `a`: what ops call to get tanh, exp, zeros_like ... for their inputs."""
    return backend_of(a).xp


def to_host(a) -> np.ndarray:
    """Any backend's array (or a Python scalar) -> numpy.ndarray."""
    return backend_of(a).to_host(a)


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        get_backend("cupy")
    except BackendError:
        return False
    return True


def out_of_memory_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "out of memory": MemoryError, plus CuPy's OutOfMemoryError when CuPy
    imports, so a training loop can catch both without naming CuPy itself."""
    try:
        import cupy
    except ImportError:
        return (MemoryError,)
    cupy_oom = getattr(cupy.cuda.memory, "OutOfMemoryError", None)
    if isinstance(cupy_oom, type) and issubclass(cupy_oom, BaseException):
        return (MemoryError, cupy_oom)
    return (MemoryError,)  # pragma: no cover - a CuPy without the usual class
