"""`python -m minwave.bench threads`: does a training step slow down when another process is busy?

    python -m minwave.bench threads                  # the tiny preset
    python -m minwave.bench threads --preset small

Times the median training step (loss_and_grads, 3 tags, the preset's batch and segment) with 1 and 2
BLAS threads, each without and then with one extra process spinning (`while True: pass`), in one run,
so each ratio compares two measurements made minutes apart on the same machine. minwave's own choice
is what minwave.threads.blas_threads_for gives the preset (docs/benchmarks.md, "BLAS threads").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from ..model import WaveNet
from ..presets import PRESETS, get_preset
from ..threads import blas_threads_for, largest_product_macs


def step_time(model, x, tags, steps: int) -> float:
    model.loss_and_grads(x, tags)  # warm-up: allocations, caches
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        model.loss_and_grads(x, tags)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minwave.bench threads", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="tiny", help="the model and batch (tiny)")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per case (default 12)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    from threadpoolctl import threadpool_limits

    preset = get_preset(args.preset)
    model = WaveNet(preset.config(n_tags=3))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (preset.batch_size, preset.segment + model.receptive_field + 1))
    tags = np.eye(3)[np.arange(preset.batch_size) % 3]
    chosen = blas_threads_for(largest_product_macs(model.config, preset.batch_size, preset.segment))
    times = {}
    for busy in (0, 1):
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            time.sleep(0.5)
            for threads in (1, 2):
                with threadpool_limits(threads, user_api="blas"):
                    times[busy, threads] = step_time(model, x, tags, args.steps)
        finally:
            for p in spinners:
                p.kill()
    print(f"{args.preset} preset, batch {preset.batch_size} × {preset.segment}; load average {os.getloadavg()[0]:.1f}")
    for threads in (1, 2):
        mark = "  <- minwave's choice" if threads == chosen else ""
        print(
            f"{threads} BLAS thread{'s' * (threads > 1)}: step {times[0, threads] * 1e3:.0f} ms, with one busy "
            f"process {times[1, threads] * 1e3:.0f} ms ({times[1, threads] / times[0, threads]:.2f}×){mark}"
        )
    return 0
