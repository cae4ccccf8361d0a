"""The gated activation unit (WaveNet eq. 2, with global conditioning eq. 3 and local conditioning §2.5).

    z = tanh(W_f ∗ x + V_f · h + U_f · c_t) ⊙ σ(W_g ∗ x + V_g · h + U_g · c_t)

Legend: B batch, T time, R residual channels, D dilation channels, G tags.
The local term U · c_t arrives here already computed (the model projects the upsampled conditioning,
docs/conditioning.md): one (B, T, 2D) array added to the pre-activations.
The filter and gate convolutions share their input, so they are one dilated convolution with 2D
output channels: the first D are the filter pre-activations, the last D the gate's. Likewise the tag
projections V_f, V_g are the two halves of one (G, 2D) matrix V.
"""

from __future__ import annotations

from ..backend import array_module, backend_of
from .conv import causal_conv_backward, causal_conv_forward


def sigmoid(x):
    """σ(x) = ½(1 + tanh(x/2)): the same function as 1/(1+e^-x), but no exp() to overflow."""
    xp = array_module(x)
    return 0.5 * (1.0 + xp.tanh(0.5 * x))


def gate_forward_reference(pre):
    """z = tanh(f) ⊙ σ(g) where pre = [f | g] along channels.  pre (B, T, 2D) -> z (B, T, D).

    The specification of gate_forward: plain array operations, any backend, any dtype.
    """
    xp = array_module(pre)
    D = pre.shape[-1] // 2
    t = xp.tanh(pre[..., :D])
    s = sigmoid(pre[..., D:])
    return t * s, (t, s)


def gate_backward_reference(dz, cache):
    """df = dz ⊙ σ(g) ⊙ (1 - t²),  dg = dz ⊙ t ⊙ σ(g)(1 - σ(g))   (docs/backprop.md §3). -> dpre (B, T, 2D)."""
    t, s = cache
    xp = array_module(dz)
    D = t.shape[-1]
    dpre = xp.empty(t.shape[:-1] + (2 * D,), dtype=dz.dtype)  # written in place: no concatenate copy
    dpre[..., :D] = dz * s * (1 - t * t)
    dpre[..., D:] = dz * t * s * (1 - s)
    return dpre


def gate_forward(pre):
    """z = tanh(f) ⊙ σ(g), as gate_forward_reference; cache (t, s).

    In float32 (training) a backend may supply the same math fused into one kernel
    (backend.fused_gate_forward: Numba on the CPU, a CUDA kernel on CuPy), which reads pre once and
    writes t, s, z once, instead of making a temporary array per operation. tests/test_ops.py holds
    the fused kernels to the reference; float64 (the gradient checks) always takes the reference.
    """
    fused = backend_of(pre).fused_gate_forward
    if fused is not None and pre.dtype == array_module(pre).float32:
        return fused(pre)
    return gate_forward_reference(pre)


def gate_backward(dz, cache):
    """dpre = [dz ⊙ s ⊙ (1 - t²) | dz ⊙ t ⊙ s ⊙ (1 - s)], as gate_backward_reference (fused in float32)."""
    fused = backend_of(dz).fused_gate_backward
    if fused is not None and dz.dtype == array_module(dz).float32:
        t, s = cache
        return fused(dz, t, s)
    return gate_backward_reference(dz, cache)


def gated_unit_forward(x, W, b, dilation: int, tags=None, V=None, t_out: int | None = None, local=None):
    """One WaveNet layer's non-linear part: dilated causal conv, plus the tag bias V·h, then the gate.

    x (B, T, R), W (k, R, 2D), b (2D,), tags h (B, G) or None, V (G, 2D) or None -> z (B, t_out, D).
    The tag term is constant over time: one (B, 2D) bias broadcast along T. t_out: only the last t_out
    positions (default all T), as in conv.causal_conv_forward. local: the local-conditioning term
    U · c_t (B, t_out, 2D) for the same positions, or None.
    """
    if (tags is None) != (V is None):
        raise ValueError("gated_unit_forward: pass both tags and V, or neither")
    pre, conv_cache = causal_conv_forward(x, W, b, dilation, t_out)  # (B, t_out, 2D)
    if V is not None:
        pre += (tags @ V)[:, None, :]  # (B, 1, 2D)  global conditioning, same for every t
    if local is not None:
        pre += local  # (B, t_out, 2D)  local conditioning, one value per position
    z, gate_cache = gate_forward(pre)
    return z, (conv_cache, gate_cache, tags, local is not None)


def gated_unit_backward(dz, cache):
    """Returns (dx, dW, db, dV); dV = hᵀ Σ_t dpre[:, t] (None without tags)   (docs/backprop.md §3-4).

    When the forward pass had a `local` term: (dx, dW, db, dV, dlocal), dlocal = dpre (an added term
    passes its gradient through unchanged).
    """
    conv_cache, gate_cache, tags, has_local = cache
    dpre = gate_backward(dz, gate_cache)  # (B, T, 2D)
    dV = None if tags is None else tags.T @ dpre.sum(axis=1)  # (G, 2D)   (B, 2D) summed over time first
    dx, dW, db = causal_conv_backward(dpre, conv_cache)
    return (dx, dW, db, dV, dpre) if has_local else (dx, dW, db, dV)
