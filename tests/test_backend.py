import numpy as np
import pytest

import minwave.backend as backend_module
from minwave.backend import BackendError, array_module, get_backend, to_host


def test_numpy_backend_is_the_default():
    b = get_backend()
    assert b.name == "numpy" and b.xp is np
    a = np.arange(3)
    assert array_module(a) is np
    assert to_host(a) is a
    assert get_backend(b) is b


def test_keep_freed_host_memory_applies_on_linux():
    import sys

    from minwave.backend import keep_freed_host_memory

    # glibc's mallopt returns 1 on success; elsewhere the function declines and says so
    assert keep_freed_host_memory() is sys.platform.startswith("linux")


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="numpy"):
        get_backend("jax")


def test_missing_cupy_gives_the_install_command(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name.startswith("cupy"):
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cupy)
    monkeypatch.setattr(backend_module, "_CACHE", {})
    with pytest.raises(BackendError, match=r'pip install "minwave\[gpu\]"'):
        get_backend("cupy")
    assert backend_module.cupy_available() is False


def test_numpy_scatter_add_accumulates_repeats():
    target = np.zeros((3, 2))
    get_backend("numpy").scatter_add(target, np.array([0, 2, 0]), np.ones((3, 2)))
    np.testing.assert_array_equal(target, [[2, 2], [0, 0], [1, 1]])


@pytest.mark.gpu
def test_cupy_round_trip():
    b = get_backend("cupy")
    a = b.asarray(np.arange(6.0))
    assert array_module(a) is b.xp
    np.testing.assert_array_equal(to_host(a), np.arange(6.0))
    target = b.xp.zeros((3, 2))
    b.scatter_add(target, b.asarray(np.array([0, 2, 0])), b.xp.ones((3, 2)))
    np.testing.assert_array_equal(to_host(target), [[2, 2], [0, 0], [1, 1]])
