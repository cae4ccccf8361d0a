"""Writing files so that nothing is ever lost, and cleaning up after writers that were killed.

Every file minwave writes over an existing one (checkpoints, generated audio, the metrics log) goes
through atomic_write: the bytes go to `NAME.tmp-<pid>` in the same folder, are flushed and fsync'ed,
and only then renamed over NAME with os.replace. A rename within one filesystem is all-or-nothing, so
a full disk, an exception or a kill at any moment leaves the old file or the new one, never half of one.

A failed write removes its temporary file. A writer killed outright (kill -9, power loss) cannot, so
the next run calls remove_stale_temporaries(folder): every `*.tmp-<pid>` whose process no longer
exists is deleted, and the caller reports it.

    atomic_write(path, lambda f: np.savez(f, **arrays))
    removed = remove_stale_temporaries(run_dir)       # [Path, …] of dead writers' leftovers
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_TEMPORARY = re.compile(r"^(?P<name>.+)\.tmp-(?P<pid>[0-9]+)$")


def temporary_path(path: Path) -> Path:
    """NAME -> NAME.tmp-<this process id>, in the same folder (so the rename stays on one filesystem)."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call write(f) on a temporary file, fsync it, and rename it over `path`. Returns the path.

    Any exception (a full disk, Ctrl-C, SIGTERM turned into an exception) removes the temporary file,
    leaves `path` as it was, and propagates.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them "the" file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no debris, and the old file untouched
        raise
    fsync_folder(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """atomic_write of UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_audio(path: str | os.PathLike, audio, sample_rate: int, format: str = "WAV", subtype="PCM_16") -> Path:
    """atomic_write of an audio file (soundfile's format and subtype names).

    Encoded in memory first: soundfile writing to a file would swallow the OSError of a failing write."""
    import io

    import soundfile as sf

    encoded = io.BytesIO()
    sf.write(encoded, audio, sample_rate, format=format, subtype=subtype)
    data = encoded.getvalue()
    return atomic_write(path, lambda f: f.write(data))


def fsync_folder(folder: Path) -> None:
    """Make a rename itself durable (POSIX); not possible, nor needed, on every platform."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, and is someone else's
        return True
    return True


def stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """The `*.tmp-<pid>` files in `folder` (not below it) whose writing process is gone, sorted."""
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    stale = []
    for name in names:
        match = _TEMPORARY.match(name)
        if match and int(match["pid"]) != os.getpid() and not process_alive(int(match["pid"])):
            if (folder / name).is_file():
                stale.append(folder / name)
    return sorted(stale)


def remove_stale_temporaries(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """Delete the leftovers of killed writers in `folder` -> (removed, could not remove)."""
    removed, kept = [], []
    for path in stale_temporaries(folder):
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:  # another process cleaned it up first
            pass
        except OSError:
            kept.append(path)
    return removed, kept


def clean_stale_temporaries(folder: str | os.PathLike, warn: Callable[[str], None]) -> list[Path]:
    """remove_stale_temporaries, reported through warn(one line) when there was anything; -> removed."""
    removed, kept = remove_stale_temporaries(folder)
    parts = []
    if removed:
        parts.append(
            f"removed {len(removed)} temporary files left by killed runs ({removed[0].name}"
            + (", …)" if len(removed) > 1 else ")")
            + f" in {Path(folder)}"
        )
    if kept:
        parts.append(f"could not remove {len(kept)} such files (e.g. {kept[0]}); delete them by hand")
    if parts:
        warn("; ".join(parts))
    return removed
