"""ReLU, the non-linearity of the output head (WaveNet Fig. 4). Any shape."""

from __future__ import annotations

from ..backend import array_module


def relu_forward(x):
    """y = max(x, 0)."""
    xp = array_module(x)
    y = xp.maximum(x, 0)
    return y, y  # backward needs only where y > 0, and y itself tells us


def relu_backward(dy, cache):
    """dx = dy · [y > 0]   (docs/backprop.md §6)."""
    y = cache
    return dy * (y > 0)
