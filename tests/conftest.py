"""Shared fixtures: every backend-parametrised test runs on NumPy, and on CuPy when a GPU is present."""

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
