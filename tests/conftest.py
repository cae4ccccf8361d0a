"""Shared fixtures: every backend-parametrised test runs on NumPy, and on CuPy when a GPU is present."""

import json

import pytest

from minwave.backend import cupy_available, get_backend

BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)]


def pytest_collection_modifyitems(config, items):
    if cupy_available():
        return
    skip = pytest.mark.skip(reason='needs CuPy and a CUDA device (pip install "minwave[gpu]")')
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """A minwave Backend: NumPy always, CuPy on machines with a GPU."""
    return get_backend(request.param)


# A model and training settings small enough for end-to-end CLI tests in seconds (tests/test_cli.py,
# tests/test_train.py): a --config file holding TEST_CONFIG.
TEST_CONFIG = {
    "stacks": 1,
    "layers_per_stack": 3,
    "residual_channels": 4,
    "dilation_channels": 4,
    "skip_channels": 8,
    "quantization_channels": 32,
    "batch_size": 2,
    "segment": 64,
    "log_every": 1,
    "eval_every": 2,
    "checkpoint_every": 2,
    "sample_seconds": 0,
}


@pytest.fixture
def builtin_cache(tmp_path_factory, monkeypatch):
    """The built-in dataset is synthesised once per test session, into a temporary folder."""
    monkeypatch.setenv("MINWAVE_CACHE", str(tmp_path_factory.getbasetemp() / "minwave-cache"))


@pytest.fixture
def cfg(tmp_path):
    """A --config file holding TEST_CONFIG."""
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(TEST_CONFIG))
    return path


def two_step_runs(tmp_path_factory, name: str, config: dict, variants: dict[str, list[str]]) -> dict:
    """Train one 2-step run per variant (extra command-line options) on the built-in music, with `config`
    as the --config file; returns {variant: run folder}. For module-scoped fixtures: read only."""
    from minwave.cli import train  # the test session's package, imported when a fixture needs it

    folder = tmp_path_factory.mktemp(name)
    path = folder / "cfg.json"
    path.write_text(json.dumps(config))
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINWAVE_CACHE", str(tmp_path_factory.getbasetemp() / "minwave-cache"))
        for variant, extra in variants.items():
            out[variant] = folder / f"run-{variant}"
            assert train.main(["--config", str(path), "--steps", "2", *extra, "--out", str(out[variant])]) == 0
    return out
