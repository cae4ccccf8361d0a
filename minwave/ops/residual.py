"""Residual and skip paths (WaveNet §2.4, Fig. 4).

Legend: B batch, T time, R residual channels, D dilation channels, S skip channels, L layers.

Each layer's gate output z feeds two 1×1 convolutions: one back into the residual stream
(x_next = x + z @ W_res + b_res) and one into the skip sum. Fan-out means sum: the gradient reaching
z is the sum of what comes back along both paths.
"""

from __future__ import annotations

from .conv import bias_grad, conv1x1_backward, conv1x1_forward, sum_outer


def residual_forward(x, z, W, b):
    """x_next = x + z @ W + b.   x (B, T, R), z (B, T, D), W (D, R), b (R,) -> (B, T, R)."""
    x_next = z @ W
    x_next += x  # in place: one (B, T, R) array, no temporaries
    x_next += b
    return x_next, (z, W)


def residual_backward(dx_next, cache):
    """dx = dx_next (the identity path),  dz = dx_next @ Wᵀ,  dW = Σ zᵀ dx_next,  db = Σ dx_next.

    Returns (dx, dz, dW, db)   (docs/backprop.md §5).
    """
    z, W = cache
    return dx_next, dx_next @ W.T, sum_outer(z, dx_next), bias_grad(dx_next)


def skip_forward(zs, W, b):
    """skip = Σ_l z_l @ W_l + b, computed as ONE product of the stacked gate outputs.

    zs (B, T, L·D) holds z_1 … z_L side by side; W (L·D, S) holds W_1 … W_L stacked by rows, so
    zs @ W = Σ_l z_l @ W_l. One (L·D)-deep GEMM instead of L thin ones. -> (B, T, S).
    """
    return conv1x1_forward(zs, W, b)


def skip_backward(dskip, cache):
    """dzs = dskip @ Wᵀ (layer l's slice is its dz_l),  dW = Σ zsᵀ dskip,  db = Σ dskip."""
    return conv1x1_backward(dskip, cache)
