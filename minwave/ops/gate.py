"""The gated activation unit (WaveNet eq. 2, with global conditioning eq. 3).

    z = tanh(W_f ∗ x + V_f · h) ⊙ σ(W_g ∗ x + V_g · h)

Legend: B batch, T time, R residual channels, D dilation channels, G tags.
The filter and gate convolutions share their input, so they are one dilated convolution with 2D
output channels: the first D are the filter pre-activations, the last D the gate's. Likewise the tag
projections V_f, V_g are the two halves of one (G, 2D) matrix V.
"""

from __future__ import annotations

from ..backend import array_module
from .conv import causal_conv_backward, causal_conv_forward


def sigmoid(x):
    """σ(x) = ½(1 + tanh(x/2)): the same function as 1/(1+e^-x), but no exp() to overflow."""
    xp = array_module(x)
    return 0.5 * (1.0 + xp.tanh(0.5 * x))


def gate_forward(pre):
    """z = tanh(f) ⊙ σ(g) where pre = [f | g] along channels.  pre (B, T, 2D) -> z (B, T, D)."""
    xp = array_module(pre)
    D = pre.shape[-1] // 2
    t = xp.tanh(pre[..., :D])
    s = sigmoid(pre[..., D:])
    return t * s, (t, s)


def gate_backward(dz, cache):
    """df = dz ⊙ σ(g) ⊙ (1 - t²),  dg = dz ⊙ t ⊙ σ(g)(1 - σ(g))   (docs/backprop.md §3). -> dpre (B, T, 2D)."""
    t, s = cache
    xp = array_module(dz)
    D = t.shape[-1]
    dpre = xp.empty(t.shape[:-1] + (2 * D,), dtype=dz.dtype)  # written in place: no concatenate copy
    dpre[..., :D] = dz * s * (1 - t * t)
    dpre[..., D:] = dz * t * s * (1 - s)
    return dpre


def gated_unit_forward(x, W, b, dilation: int, tags=None, V=None):
    """One WaveNet layer's non-linear part: dilated causal conv, plus the tag bias V·h, then the gate.

    x (B, T, R), W (k, R, 2D), b (2D,), tags h (B, G) or None, V (G, 2D) or None -> z (B, T, D).
    The tag term is constant over time: one (B, 2D) bias broadcast along T.
    """
    if (tags is None) != (V is None):
        raise ValueError("gated_unit_forward: pass both tags and V, or neither")
    pre, conv_cache = causal_conv_forward(x, W, b, dilation)  # (B, T, 2D)
    if V is not None:
        pre += (tags @ V)[:, None, :]  # (B, 1, 2D)  global conditioning, same for every t
    z, gate_cache = gate_forward(pre)
    return z, (conv_cache, gate_cache, tags)


def gated_unit_backward(dz, cache):
    """Returns (dx, dW, db, dV); dV = hᵀ Σ_t dpre[:, t] (None without tags)   (docs/backprop.md §3-4)."""
    conv_cache, gate_cache, tags = cache
    dpre = gate_backward(dz, gate_cache)  # (B, T, 2D)
    dV = None if tags is None else tags.T @ dpre.sum(axis=1)  # (G, 2D)
    dx, dW, db = causal_conv_backward(dpre, conv_cache)
    return dx, dW, db, dV
