"""The console scripts pip installs (minwave-train, minwave-generate, minwave-bench) point at the CLIs."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

SCRIPTS = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_runs_its_cli(name):
    module, function = SCRIPTS[name].split(":")
    assert callable(getattr(importlib.import_module(module), function))
    code = f"import sys; from {module} import {function}; sys.argv = [{name!r}, '--help']; sys.exit({function}())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "usage" in result.stdout.lower() + result.stderr.lower()
