"""Finite-difference gradient checks: the independent reference every hand-written backward is held to.

    ∂f/∂θ_i ≈ (f(θ + ε e_i) - f(θ - ε e_i)) / 2ε        error O(ε²), in float64

Compare with the analytic gradient by one error metric everywhere (tests, notebooks, docs/backprop.md §9):

    max_i |a_i - n_i| / max(|a_i| + |n_i|, 1e-4)

relative for entries above 1e-4, and for smaller ones an absolute error scaled by 1e-4: a whole model's
loss is a mean over many positions, so some gradient entries are ~1e-7, and there the float64 round-off
of the finite difference (~1e-12) is no longer small relative to the entry. The bar is 1e-6.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .backend import array_module, to_host


def numerical_gradient(f: Callable[[], float], x, eps: float = 1e-5, indices=None) -> np.ndarray:
    """Central differences of the scalar f() with respect to the array x, perturbed in place.

    indices: flat indices to probe (default: all). Returns a host float64 array shaped like x with
    NaN where not probed. x must be float64 for the result to mean anything.
    """
    xp = array_module(x)
    if x.dtype != xp.float64:
        raise ValueError(f"gradient checks need float64 arrays, got {x.dtype}")
    flat = x.reshape(-1)  # a view: writing into it perturbs x
    grad = np.full(x.size, np.nan)
    for i in range(x.size) if indices is None else indices:
        old = float(flat[i])
        flat[i] = old + eps
        f_plus = float(f())
        flat[i] = old - eps
        f_minus = float(f())
        flat[i] = old
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad.reshape(x.shape)


ERROR_FLOOR = 1e-4  # below this |a| + |n|, the error is absolute (scaled by the floor): see the module docstring
TOLERANCE = 1e-6  # the bar every check in tests/ and notebooks/ holds a correct backward to


def relative_error(analytic, numeric, floor: float = ERROR_FLOOR) -> float:
    """max_i |a_i - n_i| / max(|a_i| + |n_i|, floor) over the entries where numeric is not NaN."""
    a = np.asarray(to_host(analytic), dtype=np.float64).reshape(-1)
    n = np.asarray(numeric, dtype=np.float64).reshape(-1)
    probed = ~np.isnan(n)
    a, n = a[probed], n[probed]
    return float(np.max(np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), floor)))


def sample_indices(size: int, count: int, seed: int = 0) -> np.ndarray | None:
    """Up to `count` distinct flat indices of an array of `size` entries (None: probe all)."""
    if size <= count:
        return None
    return np.sort(np.random.default_rng(seed).choice(size, count, replace=False))


def check_gradient(
    f: Callable[[], float], x, analytic, eps: float = 1e-5, max_entries: int | None = None, seed: int = 0
) -> float:
    """Relative error between `analytic` (df/dx) and central differences of f at x (sampled entries)."""
    indices = None if max_entries is None else sample_indices(x.size, max_entries, seed)
    return relative_error(analytic, numerical_gradient(f, x, eps, indices))
