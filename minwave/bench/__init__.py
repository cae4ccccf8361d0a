"""Benchmarks: `python -m minwave.bench generate` (sampling speed) and `python -m minwave.bench train`.

Each subcommand lives in its own module (generate.py, train.py) with a `main(argv) -> int`; __main__.py
only dispatches. Results and the machines they were measured on: docs/benchmarks.md.
"""

import os
import platform
import resource
from pathlib import Path

from ..threads import THREAD_VARIABLES  # the thread-count variables a benchmark sets for its child processes

__all__ = ["THREAD_VARIABLES", "cpu_name", "machine_cpu_seconds"]


def cpu_name() -> str:
    """The processor's model name, for the machine line of every report."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_cpu_seconds():
    """(CPU seconds used by the whole machine, by this process), or None off Linux: their difference over a
    timed run is the time other programs took from it."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return None
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)  # all but idle and iowait
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return busy / os.sysconf("SC_CLK_TCK"), usage.ru_utime + usage.ru_stime
