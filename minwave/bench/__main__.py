"""`python -m minwave.bench SUBCOMMAND [options]`: dispatch to minwave.bench.SUBCOMMAND.main(argv).

    python -m minwave.bench generate --help
    python -m minwave.bench train --help
    python -m minwave.bench notes --help
    python -m minwave.bench tone --help
    python -m minwave.bench judge --help
    python -m minwave.bench card --help

A subcommand's module is imported only when it is asked for, so one benchmark's imports (PyTorch,
matplotlib, Numba) never slow down or break another.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "generate": "sampling speed: the Numba queue sampler against the naive one, batch 1 and 16, a depth sweep",
    "train": "training-step speed: forward, backward and Adam, optionally against PyTorch",
    "threads": "a training step with 1 and 2 BLAS threads, with and without another busy process",
    "tone": "one note learned, then played free-running: the level input against the embedding",
    "notes": "local conditioning: the fast sampler with and without frames; a notes model's pitch accuracy",
    "judge": "are the tags obeyed? a tag-conditioned model's clips classified by instrument, or as noise",
    "card": "the figures of a model's card: spectrograms of its clips per tag (or per melody), and the wavs",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minwave.bench",
        usage="python -m minwave.bench SUBCOMMAND [options]",
        description="minwave benchmarks. Each subcommand has its own --help.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="subcommands:\n" + "\n".join(f"  {name:10s} {text}" for name, text in SUBCOMMANDS.items()),
    )
    parser.add_argument(
        "subcommand", choices=sorted(SUBCOMMANDS), metavar="SUBCOMMAND", help=f"one of: {', '.join(SUBCOMMANDS)}"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        build_parser().print_help(sys.stderr)
        return 2
    if argv[0] not in ("-h", "--help") and argv[0] not in SUBCOMMANDS:
        print(
            f"minwave.bench: error: unknown subcommand {argv[0]!r}; choose one of: {', '.join(SUBCOMMANDS)}",
            file=sys.stderr,
        )
        return 2
    args = build_parser().parse_args(argv[:1])
    module_name = f"minwave.bench.{args.subcommand}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # a missing dependency inside the module: a real error, keep it
            raise
        print(
            f"minwave.bench: error: the '{args.subcommand}' benchmark is not part of this installation "
            f"(minwave/bench/{args.subcommand}.py is missing)",
            file=sys.stderr,
        )
        return 2
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
