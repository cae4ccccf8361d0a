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

    A time-shifted view x[:, s:] of a (B, T, C) array cannot be flattened to (B·T, C) without a copy,
    but each batch row x[b, s:] is already a plain matrix; so 3-D inputs become B products, one per
    row, summed: (B, C_in, T') @ (B, T', C_out) -> (B, C_in, C_out) -> (C_in, C_out).
    """
    if a.ndim == 3 and not (a.flags.c_contiguous and b.flags.c_contiguous):
        return (a.transpose(0, 2, 1) @ b).sum(axis=0)
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def bias_grad(dy):
    """db = Σ over all leading positions of dy: (..., C) -> (C,)."""
    return dy.reshape(-1, dy.shape[-1]).sum(axis=0)


def causal_conv_forward(x, W, b, dilation: int, t_out: int | None = None):
    """y[:, t] = b + Σ_j x[:, t - (k-1-j)·d] @ W[j],  with x[:, t] = 0 for t < 0   (docs/backprop.md §2).

    x (B, T, C_in), W (k, C_in, C_out), b (C_out,) -> y (B, t_out, C_out).
    Tap j looks (k-1-j)·d samples into the past; the last tap is the present sample. Output t never
    sees input after t: that is causality.

    t_out: compute only the LAST t_out positions t = T - t_out … T-1 (default: all T). The training
    loss needs only late outputs (model.py), and when T - t_out ≥ (k-1)·d no tap reaches before the
    start of x: the zero history never enters and every tap is one full-length product.
    """
    k = W.shape[0]
    T = x.shape[1]
    t_out = T if t_out is None else t_out
    first = T - t_out  # the input position of output y[:, 0]
    y = x[:, first:] @ W[k - 1]  # (B, t_out, C_out)   the present tap, no shift
    y += b
    for j in range(k - 1):
        shift = (k - 1 - j) * dilation
        lo = max(0, shift - first)  # outputs before lo would read x before t = 0: the zero history
        if lo < t_out:
            y[:, lo:] += x[:, first + lo - shift : T - shift] @ W[j]
    return y, (x, W, dilation, t_out)


def causal_conv_backward(dy, cache):
    """dx[:, t] = Σ_j dy[:, t + (k-1-j)·d] @ W[j]ᵀ,  dW[j] = Σ_{b,t} x[:, t - (k-1-j)·d]ᵀ dy[:, t],  db = Σ dy.

    Returns (dx, dW, db) with the shapes of (x, W, b). With t_out < T only the outputs computed in the
    forward pass send gradient back: dy (B, t_out, C_out) covers output positions T - t_out … T-1.
    """
    x, W, dilation, t_out = cache
    xp = array_module(dy)
    k = W.shape[0]
    T = x.shape[1]
    first = T - t_out
    dW = xp.empty_like(W)
    dx = xp.empty_like(x)  # (B, T, C_in)
    dx[:, :first] = 0  # inputs before the first output: only delayed taps reach them, added below
    dx[:, first:] = dy @ W[k - 1].T  # the present tap
    dW[k - 1] = sum_outer(x[:, first:], dy)
    for j in range(k - 1):
        shift = (k - 1 - j) * dilation
        lo = max(0, shift - first)
        if lo < t_out:
            src = slice(first + lo - shift, T - shift)  # the inputs tap j read, in output order
            dx[:, src] += dy[:, lo:] @ W[j].T
            dW[j] = sum_outer(x[:, src], dy[:, lo:])
        else:  # the tap only ever saw the zero history
            dW[j] = 0
    return dx, dW, bias_grad(dy)


def conv1x1_forward(x, W, b):
    """y = x @ W + b: a 1×1 convolution is a dense layer applied at every time step.

    x (..., C_in), W (C_in, C_out), b (C_out,) -> y (..., C_out).
    """
    y = x @ W
    y += b  # in place: no second (..., C_out) temporary
    return y, (x, W)


def conv1x1_backward(dy, cache):
    """dx = dy @ Wᵀ,  dW = Σ xᵀ dy,  db = Σ dy   (docs/backprop.md §4). Returns (dx, dW, db)."""
    x, W = cache
    return dy @ W.T, sum_outer(x, dy), bias_grad(dy)
