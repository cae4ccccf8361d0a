"""`python -m minwave.pretrained RUN_DIR NAME`: export a finished run as a shipped model (see __init__)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..cli.errors import ArgumentParser, run_cli
from . import FOLDER, export

PROG = "minwave.pretrained"


def _main(argv: list[str] | None) -> int:
    parser = ArgumentParser(prog=f"python -m {PROG}", description=__doc__.splitlines()[0])
    parser.add_argument("run", metavar="RUN_DIR", help="a run folder (or its checkpoint.npz)")
    parser.add_argument("name", metavar="NAME", help="the model's name, e.g. builtin-music")
    parser.add_argument("--folder", default=str(FOLDER), help="where to write NAME.npz (default: the package)")
    args = parser.parse_args(argv)
    print(export(args.run, args.name, Path(args.folder)))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
