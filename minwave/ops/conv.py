"""Dilated causal convolution and the 1×1 convolution, channels-last.

Legend: B batch, T time, C_in / C_out channels, k kernel size, d dilation.

With time on axis 1 and channels last, a convolution tap is a matrix product `x @ W[j]` over all
(B, T) positions at once, and a dilated causal convolution is k such products on time-shifted views
of x: no im2col copy, no Python loop over time.
"""

from __future__ import annotations

from ..backend import array_module


def sum_outer(a, b):
    """Σ over all leading (batch, time) positions of the outer product a[..., :, None] · b[..., None, :].

    a (..., C_in), b (..., C_out) -> (C_in, C_out). This is every weight gradient of a convolution.
    """
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def causal_conv_forward(x, W, b, dilation: int):
    """y[:, t] = b + Σ_j x[:, t - (k-1-j)·d] @ W[j],  with x[:, t] = 0 for t < 0   (docs/backprop.md §2).

    x (B, T, C_in), W (k, C_in, C_out), b (C_out,) -> y (B, T, C_out).
    Tap j looks (k-1-j)·d samples into the past; the last tap is the present sample. Output t never
    sees input after t: that is causality.
    """
    k = W.shape[0]
    T = x.shape[1]
    y = x @ W[k - 1]  # (B, T, C_out)   the present tap, no shift
    y += b
    for j in range(k - 1):
        shift = (k - 1 - j) * dilation
        if shift < T:  # a tap further back than the sequence only ever sees the zero history
            y[:, shift:] += x[:, : T - shift] @ W[j]
    return y, (x, W, dilation)


def causal_conv_backward(dy, cache):
    """dx[:, t] = Σ_j dy[:, t + (k-1-j)·d] @ W[j]ᵀ,  dW[j] = Σ_{b,t} x[:, t - (k-1-j)·d]ᵀ dy[:, t],  db = Σ dy.

    Returns (dx, dW, db) with the shapes of (x, W, b).
    """
    x, W, dilation = cache
    xp = array_module(dy)
    k = W.shape[0]
    T = x.shape[1]
    dx = dy @ W[k - 1].T  # (B, T, C_in)
    dW = xp.zeros_like(W)
    dW[k - 1] = sum_outer(x, dy)
    for j in range(k - 1):
        shift = (k - 1 - j) * dilation
        if shift < T:
            dx[:, : T - shift] += dy[:, shift:] @ W[j].T
            dW[j] = sum_outer(x[:, : T - shift], dy[:, shift:])
    db = dy.sum(axis=(0, 1))
    return dx, dW, db


def conv1x1_forward(x, W, b):
    """y = x @ W + b: a 1×1 convolution is a dense layer applied at every time step.

    x (..., C_in), W (C_in, C_out), b (C_out,) -> y (..., C_out).
    """
    return x @ W + b, (x, W)


def conv1x1_backward(dy, cache):
    """dx = dy @ Wᵀ,  dW = Σ xᵀ dy,  db = Σ dy   (docs/backprop.md §4). Returns (dx, dW, db)."""
    x, W = cache
    return dy @ W.T, sum_outer(x, dy), dy.reshape(-1, dy.shape[-1]).sum(axis=0)
