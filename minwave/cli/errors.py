"""What the command-line programs do with errors: one clear line on stderr, a non-zero exit, no traceback.

    def main(argv=None) -> int:
        return run_cli("minwave.train", _main, argv)

Errors that are the user's to fix (a bad option, an unusable data folder or checkpoint, no GPU, a
diverged run, not enough memory, a file that cannot be written: full disk, no permission) print
`PROG: error: MESSAGE` and exit with 2 (bad options) or 1 (the rest). Ctrl-C exits with 130 and
SIGTERM with 143: run_cli turns SIGTERM into the exception `Terminated` (a KeyboardInterrupt), so both
unwind the same way: atomic writes remove their temporary file, the last good checkpoint stays, and the
program says what was kept. Where Python cannot pass that exception on (a weakref callback swallows it;
a class body's __set_name__ wraps it in RuntimeError), the training loop raises it at its next step
(raise_pending) and an error raised after the signal exits as the signal does (interruption). Any
other exception is a bug in minwave and keeps its traceback.

The training loop (train.py) and the settings (settings.py) raise these errors too, so this module
imports nothing of cli/ and cli/__init__.py imports nothing at all: importing it never loads a CLI.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import NoReturn

from ..backend import BackendError, out_of_memory_errors
from ..checkpoint import CheckpointError
from ..data import DataError
from ..memory import NotEnoughMemory


class CLIError(Exception):
    """An error with a one-line message for the user and the exit status to leave with."""

    exit_code = 1


class UsageError(CLIError):
    """Bad, missing or conflicting command-line options."""

    exit_code = 2


class TrainingError(CLIError):
    """Training stopped: the loss diverged, or memory ran out."""


class Interrupted(CLIError):
    """Ctrl-C or SIGTERM, with a message saying what was kept."""

    exit_code = 130

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised wherever the program was, so that it unwinds exactly like Ctrl-C."""

    exit_code = 128 + signal.SIGTERM  # 143, what a shell reports for a process ended by SIGTERM


def interrupt_exit_code(exc: KeyboardInterrupt) -> int:
    """143 for SIGTERM, 130 for Ctrl-C."""
    return Terminated.exit_code if isinstance(exc, Terminated) else 130


def interrupt_name(exc: KeyboardInterrupt) -> str:
    return "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"


_pending: list[Terminated] = []  # a SIGTERM whose exception may have been swallowed (see raise_pending)


def _raise_terminated(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    _pending.append(Terminated())
    raise _pending[-1]


def raise_pending() -> None:
    """Raise the SIGTERM that arrived, if its exception was lost; long loops call this once per round.

    The signal handler raises wherever the program was, and Python cannot pass on an exception raised
    inside a weakref callback or a __del__ method: it prints "Exception ignored" and goes on. A training
    run signalled there would otherwise train to its last step.
    """
    if _pending:
        raise _pending.pop()


def interruption(exc: BaseException) -> KeyboardInterrupt | None:
    """What interrupted the program, if exc is an interruption: exc itself for Ctrl-C or SIGTERM,
    Terminated() for any error raised after a SIGTERM arrived (while run_cli runs, until raise_pending
    raises it again), None for an error of its own.

    An error raised after SIGTERM is its debris: Python turns an exception raised in a class body's
    __set_name__ (while a module is imported) into a RuntimeError, and a library interrupted mid-update
    may fail later with an error of its own.
    """
    if isinstance(exc, KeyboardInterrupt):
        return exc
    return Terminated() if _pending else None


def exit_program(code: int) -> NoReturn:
    """sys.exit(code) for `python -m …`; after SIGTERM (143) the process leaves at once, without the
    interpreter's shutdown: a library the signal interrupted mid-call can crash there (1 run in about
    100 aborted with "Fatal Python error: PyThreadState_Get" after printing its line), and every file
    minwave writes is already closed, atomically."""
    if code == Terminated.exit_code:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad option raises UsageError (one line via run_cli) instead of printing usage."""

    def error(self, message):
        raise UsageError(f"{message} (see --help)")


MAX_MESSAGE = 600  # characters; a longer message (a huge list in it) keeps its start and its end


def error_line(prog: str, message: object, kind: str = "error") -> str:
    """`prog: error: message` with the message forced onto one line of at most MAX_MESSAGE characters."""
    text = " ".join(str(message).split()) or "unknown problem"
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 200] + " … " + text[-197:]
    return f"{prog}: {kind}: {text}"


_OS_HINTS = {
    errno.ENOSPC: "free some disk space, or choose a folder on another disk",
    errno.EDQUOT: "free some space in your quota, or choose another folder",
    errno.EFBIG: "the file is larger than this filesystem or `ulimit -f` allows",
    errno.EROFS: "the filesystem is read-only; choose another folder",
    errno.EACCES: "check the permissions, or choose another folder",
    errno.EPERM: "check the permissions, or choose another folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "that is a folder; give a file name",
}


def os_error_message(exc: OSError) -> str:
    """'cannot write runs/x/checkpoint.npz.tmp-12: No space left on device; free some disk space …'."""
    where = f" {exc.filename}" if exc.filename is not None else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = _OS_HINTS.get(exc.errno)
    return f"file system error{where}: {reason}" + (f"; {hint}" if hint else "")


def warn(prog: str, message: object) -> None:
    """A one-line warning on stderr (used for files skipped while loading data)."""
    print(error_line(prog, message, "warning"), file=sys.stderr, flush=True)


def run_cli(prog: str, body: Callable[[list[str] | None], int | None], argv: list[str] | None) -> int:
    """Call body(argv) and turn the errors a user can fix into one line and an exit status.

    While body runs, SIGTERM raises Terminated (in the main thread; elsewhere signals cannot be caught).
    """
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
    _pending.clear()
    try:
        return int(body(argv) or 0)
    except SystemExit as exc:  # --help and --version exit through argparse
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except CLIError as exc:
        print(error_line(prog, exc), file=sys.stderr, flush=True)
        return exc.exit_code
    except (DataError, CheckpointError, BackendError, NotEnoughMemory) as exc:
        print(error_line(prog, exc), file=sys.stderr, flush=True)
        return 1
    except out_of_memory_errors() as exc:
        print(error_line(prog, f"out of memory ({type(exc).__name__}); try smaller sizes"), file=sys.stderr)
        return 1
    except OSError as exc:  # a full disk, a folder without write permission, a read-only filesystem …
        print(error_line(prog, os_error_message(exc)), file=sys.stderr, flush=True)
        return 1
    except (KeyboardInterrupt, Exception) as exc:  # Ctrl-C, SIGTERM, or an error SIGTERM caused
        stop = interruption(exc)
        if stop is None:
            raise  # a bug in minwave: it keeps its traceback
        print(f"{prog}: {interrupt_name(stop)}", file=sys.stderr, flush=True)
        return interrupt_exit_code(stop)
    finally:
        _pending.clear()
        if in_main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
