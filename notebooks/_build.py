"""Build the chapter notebooks from their sources in notebooks/src/, and optionally run them.

Each chapter is written as a plain Python file in the "percent" format (the one jupytext and VS Code
understand), so it can be read, diffed and reviewed like code:

    # %% [markdown]
    # # A title
    # Some text: every line of a markdown cell starts with "# ".

    # %%
    x = 1 + 1          # a code cell runs to the next "# %%" line

Usage (from the repository root):

    python notebooks/_build.py                 # src/*.py -> notebooks/*.ipynb, without outputs
    python notebooks/_build.py --execute       # ... and run them, storing the outputs (full experiments)
    python notebooks/_build.py --execute --quick 07_training   # quick mode (MINWAVE_QUICK=1), one chapter

Executed notebooks keep their outputs, so a reader browsing the repository sees the plots. The run
uses a temporary working directory and a temporary MINWAVE_CACHE unless MINWAVE_CACHE is set.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
CELL_MARKER = re.compile(r"^# %%( \[markdown\])?\s*$")


def parse_percent(text: str) -> list[nbformat.NotebookNode]:
    """Percent-format source -> notebook cells (blank lines around cells are dropped)."""
    cells: list[nbformat.NotebookNode] = []
    kind, lines = None, []

    def flush():
        if kind is None:
            return
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if kind == "markdown":
            body = [re.sub(r"^# ?", "", line) if line.startswith("#") else line for line in lines]
            cells.append(nbformat.v4.new_markdown_cell("\n".join(body)))
        elif lines:
            cells.append(nbformat.v4.new_code_cell("\n".join(lines)))

    for line in text.splitlines():
        match = CELL_MARKER.match(line)
        if match:
            flush()
            kind, lines = ("markdown" if match.group(1) else "code"), []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def build(source: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = parse_percent(source.read_text(encoding="utf-8"))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{source.stem[:2]}-{i:02d}"  # stable ids: rebuilding gives a small diff
    return nb


def execute(nb: nbformat.NotebookNode, workdir: Path, timeout: int = 1800) -> None:
    from nbclient import NotebookClient

    NotebookClient(nb, kernel_name="python3", timeout=timeout, resources={"metadata": {"path": str(workdir)}}).execute()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = tidy_streams(cell.outputs)


def tidy_streams(outputs: list) -> list:
    """Merge consecutive stdout (or stderr) outputs, and keep what a terminal would show of lines
    rewritten with carriage returns (progress bars), so stored notebooks stay short and readable."""
    merged: list = []
    for out in outputs:
        previous = merged[-1] if merged else None
        if out.output_type == "stream" and previous and previous.output_type == "stream" and previous.name == out.name:
            previous.text += out.text
        else:
            merged.append(out)
    for out in merged:
        if out.output_type == "stream":
            out.text = "\n".join(line.rstrip("\r").split("\r")[-1] for line in out.text.split("\n"))
    return merged


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="source names or prefixes (e.g. 03 or 07_training); default all")
    parser.add_argument("--execute", action="store_true", help="run each notebook and store its outputs")
    parser.add_argument("--quick", action="store_true", help="with --execute: MINWAVE_QUICK=1 (the CI sizes)")
    args = parser.parse_args(argv)

    sources = sorted(SRC.glob("[0-9][0-9]_*.py"))
    if args.chapters:
        sources = [s for s in sources if any(s.stem.startswith(c) for c in args.chapters)]
        if not sources:
            parser.error(f"no chapter matches {args.chapters}; sources are in {SRC}")
    if args.quick:
        os.environ["MINWAVE_QUICK"] = "1"
    if args.execute and not any(os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")):
        # the chapters' products are small: a second BLAS thread only spins on a busy machine (minwave/threads.py;
        # measured: chapter 06 did not finish in 30 min with OpenBLAS's default 2 threads, 5 min with one)
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        os.environ["OMP_NUM_THREADS"] = "1"
    cache = None
    if args.execute and "MINWAVE_CACHE" not in os.environ:
        cache = tempfile.TemporaryDirectory(prefix="minwave-cache-")
        os.environ["MINWAVE_CACHE"] = cache.name
    for source in sources:
        nb = build(source)
        target = HERE / f"{source.stem}.ipynb"
        if args.execute:
            start = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="minwave-nb-") as workdir:
                execute(nb, Path(workdir))
            print(f"{target.name}: executed in {time.perf_counter() - start:.1f} s", flush=True)
        nbformat.write(nb, target)
        print(f"wrote {target.relative_to(HERE.parent)} ({target.stat().st_size / 1e3:.0f} kB)", flush=True)
    if cache is not None:
        cache.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
