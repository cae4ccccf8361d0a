"""The causal input layer: a kernel-size-k causal convolution over one-hot codes, as embedding lookups.

Legend: B batch, T time, Q classes, R residual channels, k kernel size.

Why lookups: the input at time t is the one-hot vector e(x_t) ∈ {0,1}^Q, and a convolution tap
multiplies it by a (Q, R) matrix W[j]. The product e(c) @ W[j] just selects row c of W[j]. So

    y[:, t] = b + Σ_j e(x[:, t - (k-1-j)]) @ W[j]  =  b + Σ_j W[j][x[:, t - (k-1-j)]]

is k row gathers instead of k (B·T, Q) × (Q, R) products, and the one-hot tensor (Q times larger
than the codes) is never built. Positions before t = 0 contribute nothing (zero history).
"""

from __future__ import annotations

from ..backend import array_module, backend_of


def causal_embedding_forward(codes, W, b, t_out: int | None = None):
    """codes (B, T) int, W (k, Q, R), b (R,) -> y (B, t_out, R)   (docs/backprop.md §1).

    t_out: compute only the last t_out positions T - t_out … T-1 (default: all T), as in
    conv.causal_conv_forward.
    """
    k = W.shape[0]
    T = codes.shape[1]
    t_out = T if t_out is None else t_out
    first = T - t_out  # the input position of y[:, 0]
    y = W[k - 1][codes[:, first:]]  # (B, t_out, R)   the present sample
    y += b
    for j in range(k - 1):
        shift = k - 1 - j
        lo = max(0, shift - first)  # outputs before lo would read codes before t = 0: the zero history
        if lo < t_out:
            y[:, lo:] += W[j][codes[:, first + lo - shift : T - shift]]
    return y, (codes, W.shape, t_out)


def causal_embedding_backward(dy, cache):
    """dW[j][c] = Σ over positions whose tap-j input was code c of dy;  db = Σ dy.

    Returns (dW, db). The codes get no gradient (they are integers). Repeated codes must accumulate,
    which plain fancy-index assignment does not do: hence the backend's scatter_add.
    """
    codes, w_shape, t_out = cache
    xp = array_module(dy)
    scatter_add = backend_of(dy).scatter_add
    k, _, R = w_shape
    T = codes.shape[1]
    first = T - t_out
    dW = xp.zeros(w_shape, dtype=dy.dtype)
    for j in range(k):
        shift = k - 1 - j
        lo = max(0, shift - first)
        if lo < t_out:
            src = codes[:, first + lo - shift : T - shift]  # (B, t_out - lo)   tap j's input codes
            scatter_add(dW[j], src.reshape(-1), dy[:, lo:].reshape(-1, R))
    db = dy.reshape(-1, R).sum(axis=0)
    return dW, db
