"""Benchmarks: `python -m minwave.bench generate` (sampling speed) and `python -m minwave.bench train`.

Each subcommand lives in its own module (generate.py, train.py) with a `main(argv) -> int`; __main__.py
only dispatches. Results and the machines they were measured on: docs/benchmarks.md.
"""

import platform
from pathlib import Path


def cpu_name() -> str:
    """The processor's model name, for the machine line of every report."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
