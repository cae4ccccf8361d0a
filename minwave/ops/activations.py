"""ReLU, the non-linearity of the output head (WaveNet Fig. 4). Any shape."""

from __future__ import annotations

from ..backend import array_module


def relu_forward(x, out=None):
    """y = max(x, 0). out=x overwrites x (for a caller that owns x and has no further use for it)."""
    xp = array_module(x)
    y = xp.maximum(x, 0, out=out)
    return y, y  # backward needs only where y > 0, and y itself tells us


def relu_backward(dy, cache, out=None):
    """dx = dy · [y > 0]   (docs/backprop.md §6). out=dy overwrites dy, as relu_forward's out."""
    y = cache
    xp = array_module(dy)
    return xp.multiply(dy, y > 0, out=out)
