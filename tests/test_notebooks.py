"""Execute every chapter notebook (notebooks/NN_*.ipynb) top to bottom and fail on any error.

The notebooks run in quick mode (MINWAVE_QUICK=1: small models and short runs, the same code) in a
temporary working directory, with MINWAVE_CACHE pointing at a temporary folder so the built-in dataset
is synthesised there. Together they take a few minutes on 2 CPU cores.

    python -m pytest tests/test_notebooks.py            # all chapters
    python -m pytest tests/test_notebooks.py -k 07      # one chapter
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
SOURCES = sorted((NOTEBOOKS_DIR / "src").glob("[0-9][0-9]_*.py"))
MAX_BYTES = 2_000_000  # outputs are stored in the repository: keep every notebook small
CELL_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def dataset_cache(tmp_path_factory):
    """One temporary MINWAVE_CACHE for all notebooks: the built-in dataset is synthesised once."""
    return tmp_path_factory.mktemp("minwave-cache")


def test_there_are_twelve_chapters_in_order():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(12)], [p.name for p in NOTEBOOKS]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch, dataset_cache):
    # The kernel is a subprocess that inherits this environment.
    monkeypatch.setenv("MINWAVE_QUICK", "1")
    monkeypatch.setenv("MINWAVE_CACHE", str(dataset_cache))
    # One BLAS thread: the notebooks' matrices are small, and a multi-threaded BLAS on a busy 2-core
    # machine can spin-wait for cores it does not get (measured: up to 100× slower products).
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},  # working directory: runs/ etc. go here
    )
    client.execute()  # raises CellExecutionError, with the cell and the traceback, on any error


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_small_and_ends_with_exercises(path):
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB; keep it < 2 MB"
    nb = nbformat.read(path, as_version=4)
    last = nb.cells[-1]
    assert last.cell_type == "markdown" and "Exercises" in last.source.splitlines()[0], (
        f"{path.name} must end with an Exercises markdown cell"
    )


def _load_build():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS_DIR / "_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shown_sources(code: str) -> list[str]:
    """The expressions X of every inspect.getsource(X) in a cell; each must be printed whole."""
    shown = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "inspect.getsource":
            shown.append(ast.unparse(node.args[0]))
    return shown


def _import_namespace(cells) -> dict:
    """Run only the import statements of a notebook's code cells: enough to resolve minwave.x.y names."""
    namespace: dict = {}
    for cell in cells:
        for node in ast.parse(cell.source).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                exec(compile(ast.Module([node], []), "<imports>", "exec"), namespace)
    return namespace


def test_the_sources_build_every_stored_notebook():
    assert [s.stem for s in SOURCES] == [p.stem for p in NOTEBOOKS]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_stored_notebook_equals_its_source(source):
    """The stored notebook is what notebooks/_build.py builds from src/ (cells, in order), and every
    function it prints with inspect.getsource is printed whole and as the package has it now."""
    built = _load_build().build(source)
    stored = nbformat.read(NOTEBOOKS_DIR / f"{source.stem}.ipynb", as_version=4)
    rebuild = f"rebuild: python notebooks/_build.py --execute {source.stem[:2]}"
    assert [(c.cell_type, c.source) for c in stored.cells] == [(c.cell_type, c.source) for c in built.cells], rebuild
    namespace = _import_namespace([c for c in built.cells if c.cell_type == "code"])
    for cell in stored.cells:
        if cell.cell_type != "code":
            continue
        for expr in _shown_sources(cell.source):
            assert f"print(inspect.getsource({expr}))" in cell.source, (
                f"{source.name}: show whole functions: print(inspect.getsource({expr})), not a slice of it"
            )
            printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            assert inspect.getsource(eval(expr, namespace)) in printed, f"{source.name}: {expr} changed; {rebuild}"
