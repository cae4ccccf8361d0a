"""The ways in: the console scripts pip installs (minwave-train, minwave-generate, minwave-bench,
minwave-pretrained) and the documented `python -m` commands reach the CLIs, and `minwave.generate`
stays the sampling function whatever has been imported."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

SCRIPTS = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["scripts"]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_runs_its_cli(name):
    module, function = SCRIPTS[name].split(":")
    assert callable(getattr(importlib.import_module(module), function))
    result = run_python(
        f"import sys; from {module} import {function}; sys.argv = [{name!r}, '--help']; sys.exit({function}())"
    )
    assert result.returncode == 0 and "usage" in result.stdout.lower() + result.stderr.lower()


@pytest.mark.parametrize("module", ["minwave.train", "minwave.generate", "minwave.bench", "minwave.pretrained"])
def test_python_dash_m_runs_its_cli(module):
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "usage" in result.stdout.lower() + result.stderr.lower(), result.stderr
    assert "Warning" not in result.stderr  # e.g. runpy's "found in sys.modules" when the package imports it


def test_generate_is_the_function_after_import_minwave_generate():
    """Importing the module minwave.generate (as runpy and tools do) binds it to the package's attribute;
    it must still generate: a fresh interpreter imports it first, then samples a tiny model."""
    code = """
import minwave
import minwave.generate
model = minwave.WaveNet(minwave.WaveNetConfig(stacks=1, layers_per_stack=2, residual_channels=4,
                                              dilation_channels=4, skip_channels=8, quantization_channels=16))
codes = minwave.generate(model, 5, batch=2, seed=0)
assert codes.shape == (2, 5) and 0 <= codes.min() and codes.max() < 16, codes
from minwave.sampling import generate
assert (codes == generate(model, 5, batch=2, seed=0)).all()
print("ok")
"""
    result = run_python(code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
