"""How many BLAS threads a training step should use: as many as help, never so many that they spin.

OpenBLAS splits one matrix product across its threads and makes them wait for each other by spinning.
When a product is small (the tiny preset's are (9000 × 16) @ (16 × 32)), splitting saves microseconds
and the hand-offs cost more; and when another process holds a core, a thread that spins waits for a
core it does not get: measured on a 2-core machine with two other jobs, a tiny-preset step ran 12×
slower with two OpenBLAS threads than with one (docs/benchmarks.md, "BLAS threads").

So the thread count follows the size of the largest product in a step (threadpoolctl sets it, for
whichever BLAS NumPy was built with): one thread for every whole MIN_MACS_PER_THREAD multiply-adds, at
least one, never more than the cores this process may run on.
The environment wins: with OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS set, minwave
leaves the count alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")  # a user's BLAS choice
THREAD_VARIABLES = (*BLAS_THREAD_VARIABLES, "NUMBA_NUM_THREADS")  # every pool a benchmark's child process pins
MIN_MACS_PER_THREAD = 2_000_000_000  # the tiny (1.3e8) and small (1.2e9) presets get one thread, the
# paper preset (3.2e10) two: on a 2-core machine with other jobs, 2 threads made a tiny step 3.9× and a
# small step 8× slower than 1 thread (docs/benchmarks.md, "BLAS threads")


def available_cores() -> int:
    """The cores this process may run on (its affinity mask; os.cpu_count() where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def largest_product_macs(config, batch_size: int, segment: int) -> int:
    """Multiply-adds of the largest single matrix product in a training step of this shape.

    The candidates: a layer's dilated tap over every input position (B·T_in × R @ R × 2D), the skip
    product (B·T_out × L·D @ L·D × S) and the head (B·T_out × S @ S × S, then S × Q).
    """
    c = config
    t_in, t_out = batch_size * (segment + c.receptive_field), batch_size * segment
    tap = t_in * c.residual_channels * 2 * c.dilation_channels
    skip = t_out * c.n_layers * c.dilation_channels * c.skip_channels
    head = t_out * c.skip_channels * max(c.skip_channels, c.quantization_channels)
    return max(tap, skip, head)


def blas_threads_for(macs: int, cores: int | None = None) -> int:
    """Threads for a product of `macs` multiply-adds: one per whole MIN_MACS_PER_THREAD, in 1 … `cores`."""
    cores = available_cores() if cores is None else cores
    return max(1, min(cores, int(macs // MIN_MACS_PER_THREAD)))


def set_blas_threads(threads: int) -> Callable[[], None]:
    """Hold every BLAS pool at `threads` from now on; returns the function that restores the old counts.

    Nothing changes when the environment sets a thread count (the user's choice wins)."""
    if any(os.environ.get(name) for name in BLAS_THREAD_VARIABLES):
        return lambda: None
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas").restore_original_limits
