"""What the command-line tools do with errors: one clear line on stderr, a non-zero exit, no traceback.

    def main(argv=None) -> int:
        return run_cli("minwave.train", _main, argv)

Errors that are the user's to fix (a bad option, an unusable data folder or checkpoint, no GPU, a
diverged run, out of memory) print `PROG: error: MESSAGE` and exit with 2 (bad options) or 1 (the rest);
Ctrl-C exits with 130. Any other exception is a bug in minwave and keeps its traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

from .backend import BackendError, out_of_memory_errors
from .checkpoint import CheckpointError
from .data import DataError


class CLIError(Exception):
    """An error with a one-line message for the user and the exit status to leave with."""

    exit_code = 1


class UsageError(CLIError):
    """Bad, missing or conflicting command-line options."""

    exit_code = 2


class TrainingError(CLIError):
    """Training stopped: the loss diverged, or memory ran out."""


class Interrupted(CLIError):
    """Ctrl-C, with a message saying what was kept."""

    exit_code = 130


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad option raises UsageError (one line via run_cli) instead of printing usage."""

    def error(self, message):
        raise UsageError(f"{message} (see --help)")


# Option types shared by the CLIs; their __name__ is what argparse's "invalid <type> value" message shows.
def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(text)
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(text)
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise ValueError(text)
    return value


positive_int.__name__ = "positive integer"
non_negative_int.__name__ = "non-negative integer"
positive_float.__name__ = "positive number"
non_negative_float.__name__ = "non-negative number"
fraction.__name__ = "fraction between 0 and 1"


def error_line(prog: str, message: object, kind: str = "error") -> str:
    """`prog: error: message` with the message forced onto one line."""
    text = " ".join(str(message).split()) or "unknown problem"
    return f"{prog}: {kind}: {text}"


def warn(prog: str, message: object) -> None:
    """A one-line warning on stderr (used for files skipped while loading data)."""
    print(error_line(prog, message, "warning"), file=sys.stderr, flush=True)


def run_cli(prog: str, body: Callable[[list[str] | None], int | None], argv: list[str] | None) -> int:
    """Call body(argv) and turn the errors a user can fix into one line and an exit status."""
    try:
        return int(body(argv) or 0)
    except SystemExit as exc:  # --help and --version exit through argparse
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except CLIError as exc:
        print(error_line(prog, exc), file=sys.stderr, flush=True)
        return exc.exit_code
    except (DataError, CheckpointError, BackendError) as exc:
        print(error_line(prog, exc), file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return 130
    except out_of_memory_errors() as exc:
        print(error_line(prog, f"out of memory ({type(exc).__name__}); try smaller sizes"), file=sys.stderr)
        return 1
