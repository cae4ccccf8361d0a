"""The output head: ReLU → 1×1 → ReLU → 1×1 on the skip sum, giving Q logits (WaveNet Fig. 4).

Legend: B batch, T time, S skip channels, Q quantization classes.
"""

from __future__ import annotations

from .activations import relu_backward, relu_forward
from .conv import conv1x1_backward, conv1x1_forward


def head_forward(skip, W1, b1, W2, b2):
    """logits = relu(relu(skip) @ W1 + b1) @ W2 + b2.   skip (B, T, S), W1 (S, S), W2 (S, Q) -> (B, T, Q)."""
    a1, relu1_cache = relu_forward(skip)  # skip is the caller's: a new array
    h1, conv1_cache = conv1x1_forward(a1, W1, b1)
    a2, relu2_cache = relu_forward(h1, out=h1)  # h1 is ours and not needed again: overwritten
    logits, conv2_cache = conv1x1_forward(a2, W2, b2)
    return logits, (relu1_cache, conv1_cache, relu2_cache, conv2_cache)


def head_backward(dlogits, cache):
    """The chain rule through the four steps, last first. Returns (dskip, dW1, db1, dW2, db2)."""
    relu1_cache, conv1_cache, relu2_cache, conv2_cache = cache
    da2, dW2, db2 = conv1x1_backward(dlogits, conv2_cache)
    dh1 = relu_backward(da2, relu2_cache, out=da2)  # da2, ours, becomes dh1 in place
    da1, dW1, db1 = conv1x1_backward(dh1, conv1_cache)
    dskip = relu_backward(da1, relu1_cache, out=da1)
    return dskip, dW1, db1, dW2, db2
