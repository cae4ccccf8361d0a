"""Fused CPU kernels (Numba) for the NumPy backend's element-wise hot spots.

Each kernel computes exactly what a plain-NumPy function elsewhere in ops/ specifies, in one pass over
memory instead of one pass (and one temporary array) per NumPy operation; tests/test_ops.py holds
every kernel to its specification. minwave.backend hands them to the ops. The fast sampler
(fastgen.py) shares this module's JIT settings and its tanh (tanh_pq) rather than writing its own.

    gate_forward(pre)        = ops.gate.gate_forward_reference     (float32)
    gate_backward(dz, t, s)  = ops.gate.gate_backward_reference    (float32)
    scatter_add(W, idx, dy)  = np.add.at(W, idx, dy)               (the embedding's backward)

Why they exist (measured on the 2-core benchmark machine, docs/benchmarks.md): NumPy's float32 tanh
costs about 7 ns per element there, so the plain gate took longer than the layer's convolution
products, and np.add.at about 0.7 µs per 32-float row, 60 times the compiled loop.
Legend: N positions (batch × time, flattened), D gate channels, R channels.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# error_model="numpy": a division by zero gives inf/NaN instead of raising, so the compiler can drop
# the zero check and vectorise the loops (8 float32 lanes with AVX2). No fastmath: NaN still
# propagates, and the arithmetic is IEEE, in the order written. One thread: these kernels take a few
# milliseconds a layer, and a second thread pool beside OpenBLAS's would fight it for the cores.
JIT = dict(cache=True, nogil=True, error_model="numpy")  # every Numba kernel of minwave (fastgen.py too)

F32 = np.float32
# Beyond ±7.905 the rational function below is already 1 to float32 precision; clamping keeps it
# there for any input (and ±inf gives ±1).
TANH_CLAMP = F32(7.90531110763549805)


@njit(inline="always", **JIT)
def tanh_pq(x):
    """tanh(x) = (x·p(x²)) / q(x²), returned undivided as (x·p, q): the rational approximation Eigen (and
    with it TensorFlow and XLA) uses for float32 tanh. Max error against the exact tanh below 4e-7
    (measured on a grid of 2e6 points over ±9: 3.9e-7 as compiled here, 2.6e-7 with fused multiply-adds,
    as in fastgen.gate). Only multiply-adds, so a loop around it vectorises; a call into the C library's tanhf
    does not. Returned undivided so that a caller with two of them (the fast sampler's gate,
    fastgen.gate) can finish with one division.
    """
    x = TANH_CLAMP if x > TANH_CLAMP else x  # NaN fails both comparisons: it passes through
    x = -TANH_CLAMP if x < -TANH_CLAMP else x
    x2 = x * x
    p = F32(-2.76076847742355e-16)
    p = p * x2 + F32(2.00018790482477e-13)
    p = p * x2 + F32(-8.60467152213735e-11)
    p = p * x2 + F32(5.12229709037114e-08)
    p = p * x2 + F32(1.48572235717979e-05)
    p = p * x2 + F32(6.37261928875436e-04)
    p = p * x2 + F32(4.89352455891786e-03)
    q = F32(1.19825839466702e-06)
    q = q * x2 + F32(1.18534705686654e-04)
    q = q * x2 + F32(2.26843463243900e-03)
    q = q * x2 + F32(4.89352518554385e-03)
    return x * p, q


@njit(inline="always", **JIT)
def tanh_float32(x):
    """tanh(x) to float32 precision (max error < 4e-7): tanh_pq, divided."""
    xp_, q = tanh_pq(x)
    return xp_ / q


@njit(**JIT)
def _gate_forward_rows(pre, t, s, z):
    """t = tanh(f), s = σ(g) = ½(1 + tanh(g/2)), z = t·s, row by row; pre (N, 2D) = [f | g]."""
    D = z.shape[1]
    for n in range(pre.shape[0]):
        for c in range(D):
            tn = tanh_float32(pre[n, c])
            sn = F32(0.5) + F32(0.5) * tanh_float32(F32(0.5) * pre[n, D + c])
            t[n, c] = tn
            s[n, c] = sn
            z[n, c] = tn * sn


@njit(**JIT)
def _gate_backward_rows(dz, t, s, dpre):
    """df = dz·s·(1 - t²), dg = dz·t·s·(1 - s), row by row; dpre (N, 2D) = [df | dg]."""
    D = dz.shape[1]
    for n in range(dz.shape[0]):
        for c in range(D):
            tn, sn, g = t[n, c], s[n, c], dz[n, c]
            dpre[n, c] = g * sn * (F32(1.0) - tn * tn)
            dpre[n, D + c] = g * tn * sn * (F32(1.0) - sn)


def gate_forward(pre):
    """pre (..., 2D) float32 -> z (..., D), cache (t, s): as gate.gate_forward_reference."""
    D = pre.shape[-1] // 2
    lead = pre.shape[:-1]
    pre = np.ascontiguousarray(pre).reshape(-1, 2 * D)  # (N, 2D)
    # Every array the kernel touches is C-contiguous, so its inner loop runs over adjacent floats and
    # vectorises; t and s are separate arrays (not two halves of one) for the same reason.
    t, s, z = (np.empty((pre.shape[0], D), dtype=np.float32) for _ in range(3))  # (N, D) each
    _gate_forward_rows(pre, t, s, z)
    return z.reshape(lead + (D,)), (t.reshape(lead + (D,)), s.reshape(lead + (D,)))


def gate_backward(dz, t, s):
    """dz (..., D), t, s from gate_forward -> dpre (..., 2D): as gate.gate_backward_reference."""
    D = dz.shape[-1]

    def rows(a):
        return np.ascontiguousarray(a).reshape(-1, D)  # (N, D), a view unless a was strided

    dpre = np.empty((dz.size // D, 2 * D), dtype=np.float32)  # (N, 2D) = [df | dg]
    _gate_backward_rows(rows(dz), rows(t), rows(s), dpre)
    return dpre.reshape(dz.shape[:-1] + (2 * D,))


@njit(**JIT)
def _scatter_add_rows(target, idx, values):
    """target[idx[n]] += values[n] for every n in order (repeated rows accumulate)."""
    for n in range(idx.shape[0]):
        row = idx[n]
        for c in range(values.shape[1]):
            target[row, c] += values[n, c]


def scatter_add(target, idx, values):
    """np.add.at(target, idx, values): rows of a 2-D target by a 1-D index (the embedding backward)
    take the compiled loop; any other form goes to np.add.at itself."""
    rows = (
        target.ndim == 2
        and idx.ndim == 1
        and idx.dtype.kind in "iu"
        and values.shape == (idx.shape[0], target.shape[1])
        and values.dtype == target.dtype
    )
    if not rows:
        np.add.at(target, idx, values)
        return
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= target.shape[0]):
        raise IndexError(f"scatter_add: row index out of range 0..{target.shape[0] - 1}")
    _scatter_add_rows(target, idx, values)
