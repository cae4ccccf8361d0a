"""Softmax cross-entropy over Q classes (WaveNet §2.2: a categorical distribution per sample).

Legend: N positions (any leading shape, flattened), Q classes.
"""

from __future__ import annotations

from ..backend import array_module


def softmax_cross_entropy_forward(logits, targets):
    """loss = -(1/N) Σ_n log softmax(logits_n)[targets_n], in nats.

    logits (..., Q) float, targets (...) int in 0..Q-1 -> (loss as a 0-d array, cache).
    Stable: log softmax(a)_c = (a_c - m) - log Σ_j exp(a_j - m) with m = max_j a_j (log-sum-exp),
    so no exp() overflows whatever the logits.
    """
    xp = array_module(logits)
    Q = logits.shape[-1]
    flat = logits.reshape(-1, Q)  # (N, Q)
    flat_targets = targets.reshape(-1)  # (N,)
    n = flat.shape[0]
    shifted = flat - flat.max(axis=1, keepdims=True)  # (N, Q) the one new (N, Q) array: worked on in place
    shifted_target = shifted[xp.arange(n), flat_targets]  # (N,) a_target - m, taken before exp overwrites it
    probs = xp.exp(shifted, out=shifted)  # exp(a - m)
    sum_exp = probs.sum(axis=1, keepdims=True)  # (N, 1)
    loss = -(shifted_target - xp.log(sum_exp[:, 0])).mean()
    probs /= sum_exp  # cached: the backward pass is just probs - one-hot
    return loss, (probs, flat_targets, logits.shape)


def softmax_cross_entropy_backward(dloss, cache):
    """dlogits = dloss · (softmax(logits) - onehot(targets)) / N   (docs/backprop.md §7)."""
    probs, flat_targets, logits_shape = cache
    xp = array_module(probs)
    n = probs.shape[0]
    dlogits = probs.copy()
    dlogits[xp.arange(n), flat_targets] -= 1  # each (row, target) pair once: no repeated indices
    dlogits *= dloss / n
    return dlogits.reshape(logits_shape)
