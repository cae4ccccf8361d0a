"""How much memory this process may still use, and a check to run before spending it.

A process can be stopped by three different limits, and only one of them raises MemoryError:

    MemAvailable (/proc/meminfo)     what the machine can give without swapping; past it, the kernel's
                                     OOM killer ends the process with SIGKILL (exit 137, no message)
    the cgroup limit (memory.max)    a container's or systemd unit's share; same silent SIGKILL
    the address-space limit          `ulimit -v` (RLIMIT_AS); past it, malloc fails and NumPy raises
                                     MemoryError

So a run that would not fit must be refused *before* it allocates: `check_fits(need, what, fix)`
compares an estimate with the smallest of the three and raises NotEnoughMemory with one line naming
the option to change. On the GPU the device's free memory (plus what CuPy's pool holds) is the limit.

    check_fits(3_000_000_000, "a training step with --batch-size 64", "try a smaller --batch-size")
"""

from __future__ import annotations

import resource
from pathlib import Path


class NotEnoughMemory(RuntimeError):
    """An estimate does not fit in the memory available; the message says which option to change."""


def format_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}" if n < 1e6 else f"{n:.2g} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # 'max' (no limit) -> None


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """limit - usage of this process's cgroup and its ancestors (v2), or of the v1 memory cgroup."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    rooms = []
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if controllers == "":  # cgroup v2: walk from our group up to the root
            folder = Path("/sys/fs/cgroup") / rel.lstrip("/")
            while True:
                limit, usage = _read_int(folder / "memory.max"), _read_int(folder / "memory.current")
                if limit is not None and usage is not None:
                    rooms.append(limit - usage)
                if folder == Path("/sys/fs/cgroup") or folder.parent == folder:
                    break
                folder = folder.parent
        elif "memory" in controllers.split(","):  # cgroup v1
            for folder in (Path("/sys/fs/cgroup/memory") / rel.lstrip("/"), Path("/sys/fs/cgroup/memory")):
                limit = _read_int(folder / "memory.limit_in_bytes")
                usage = _read_int(folder / "memory.usage_in_bytes")
                if limit is not None and usage is not None and limit < 2**60:  # 2**63-ish means none
                    rooms.append(limit - usage)
                    break
    return max(min(rooms), 0) if rooms else None


def _address_space_room() -> int | None:
    """RLIMIT_AS (ulimit -v) minus the address space already mapped (VmSize)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return max(soft - int(line.split()[1]) * 1024, 0)
    except (OSError, ValueError, IndexError):
        pass
    return soft  # pragma: no cover - no /proc: at least the limit itself


def available_memory() -> tuple[int | None, str]:
    """(bytes this process can still allocate, which limit that is), or (None, '') where none is known."""
    candidates = [
        (_mem_available(), "free memory (MemAvailable)"),
        (_cgroup_room(), "the cgroup memory limit"),
        (_address_space_room(), "the address-space limit (ulimit -v)"),
    ]
    known = [(n, source) for n, source in candidates if n is not None]
    return min(known) if known else (None, "")


def check_fits(need: float, what: str, fix: str, backend=None) -> None:
    """Raise NotEnoughMemory if `need` bytes (an estimate) exceed what is available.

    backend: a Backend with device_memory_free (CuPy): the GPU's free memory is the limit instead.
    The message: '<what> needs about 12.0 GB, but only 3.0 GB is available (<which limit>); <fix>'.
    """
    device_free = getattr(backend, "device_memory_free", None)
    if device_free is not None:
        available, source = device_free(), f"free on the GPU ({backend.name})"
    else:
        available, source = available_memory()
    if available is not None and need > available:
        raise NotEnoughMemory(
            f"{what} needs about {format_bytes(need)}, but only {format_bytes(available)} is available "
            f"({source}); {fix}"
        )


def generation_bytes(batch: int, n_samples: float) -> float:
    """Host memory for generating `batch` clips of n_samples and writing them (sampling.generate).

    The sampler draws every uniform up front, float64 (B, n), and returns int64 codes (B, n); each clip
    is then decoded to float64 and float32 (12 bytes a sample) and its codes copied to int64 (8 more).
    The network's own state is a few KB per stream and is left out.
    """
    return batch * n_samples * 16 + n_samples * 20
