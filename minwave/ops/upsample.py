"""The upsampler of local conditioning: frame rate -> sample rate (WaveNet §2.5; docs/conditioning.md).

Legend: B batch, F frames, C conditioning channels, T samples, h hop (samples per frame),
K frame-convolution taps (odd), a = (K-1)/2 its look-ahead (and look-back) in frames.

Local conditioning comes as a time series c (B, F, C) at one frame per h samples (a piano roll, a
log-mel spectrogram). The upsampler is two steps, each a forward/backward pair:

    y[:, f] = Σ_j c[:, f + j - a] @ W[j]          frame_conv: a learned centred convolution over frames,
                                                    zeros outside 0 … F-1; sees a frames ahead and a back
    u[:, i] = y[:, (start + i) // h]              repeat: nearest-neighbour, each frame held for h samples

Why convolve-then-repeat (and not the paper's transposed convolution, nor r9y9's repeat-then-convolve):
everything after the learned part is a row selection, and a row selection commutes with the per-layer
projection U that follows it: repeat(y) @ U = repeat(y @ U). So the model (and the fast sampler) can
project at frame rate, L·2D numbers per frame, and index the projection at sample rate, instead of
materialising L·2D numbers per *sample* (h times more). A transposed convolution with stride h would
need h different (C, C) matrices (one per phase inside a frame) and a convolution after the repeat
runs at sample rate; both break that shortcut. The frame convolution starts as an exact repeat
(W[a] = I, other taps 0: kan-bayashi's initialisation), so training begins from "hold each frame".

There is no bias: frames outside the clip are zeros and stay zeros after both steps, so a position
without conditioning gets exactly no conditioning term (the layer's own bias is already there).
"""

from __future__ import annotations

from ..backend import array_module
from .conv import sum_outer


def frame_conv_forward(c, W):
    """y[:, f] = Σ_j c[:, f + j - a] @ W[j],  a = (K-1)/2, c[:, f] = 0 outside 0 … F-1.

    c (B, F, C_in), W (K, C_in, C_out) with K odd -> y (B, F, C_out). Tap j looks j - a frames ahead
    (negative: back). One matrix product per tap over all (B, F) positions, no loop over frames.
    """
    K = W.shape[0]
    if K % 2 != 1:
        raise ValueError(f"frame_conv_forward: the kernel needs an odd number of taps, got {K}")
    a = (K - 1) // 2
    F = c.shape[1]
    y = c @ W[a]  # (B, F, C_out)   the centre tap, no shift
    for j in range(K):
        s = j - a  # output f reads input f + s
        if j == a or abs(s) >= F:
            continue
        if s > 0:
            y[:, : F - s] += c[:, s:] @ W[j]  # the last s outputs would read past the end: zeros
        else:
            y[:, -s:] += c[:, : F + s] @ W[j]  # the first -s outputs would read before the start
    return y, (c, W)


def frame_conv_backward(dy, cache):
    """dc[:, g] = Σ_j dy[:, g - (j - a)] @ W[j]ᵀ,  dW[j] = Σ_{b,f} c[:, f + j - a]ᵀ dy[:, f].

    Returns (dc, dW) with the shapes of (c, W) (docs/conditioning.md, "The upsampler").
    """
    c, W = cache
    xp = array_module(dy)
    K = W.shape[0]
    a = (K - 1) // 2
    F = c.shape[1]
    dc = dy @ W[a].T  # (B, F, C_in)
    dW = xp.empty_like(W)
    dW[a] = sum_outer(c, dy)
    for j in range(K):
        s = j - a
        if j == a:
            continue
        if abs(s) >= F:  # the tap only ever read zeros
            dW[j] = 0
        elif s > 0:
            dc[:, s:] += dy[:, : F - s] @ W[j].T
            dW[j] = sum_outer(c[:, s:], dy[:, : F - s])
        else:
            dc[:, : F + s] += dy[:, -s:] @ W[j].T
            dW[j] = sum_outer(c[:, : F + s], dy[:, -s:])
    return dc, dW


def repeat_forward(y, hop: int, start: int, length: int):
    """u[:, i] = y[:, (start + i) // hop] for i = 0 … length-1: frame f held for samples f·hop … f·hop+hop-1.

    y (B, F, C) -> u (B, length, C). start: the sample (on y's frame grid, 0 = first sample of frame 0)
    of u[:, 0]; every sample read must lie in a frame of y: 0 <= start and start + length <= F·hop.
    """
    F = y.shape[1]
    if hop < 1 or start < 0 or length < 1 or start + length > F * hop:
        raise ValueError(
            f"repeat_forward: samples {start} … {start + length - 1} are not all inside {F} frames of {hop}"
        )
    xp = array_module(y)
    f0, f1 = start // hop, (start + length - 1) // hop  # the first and last frame read
    held = xp.repeat(y[:, f0 : f1 + 1], hop, axis=1)  # (B, (f1 - f0 + 1)·hop, C)
    lo = start - f0 * hop
    return held[:, lo : lo + length], (y.shape, hop, start)


def repeat_backward(du, cache):
    """dy[:, f] = Σ of du over the samples frame f was held for (fan-out means sum). Returns dy (B, F, C).

    The samples are laid into whole frames (zeros where u did not reach), then each frame's h rows are
    summed: one reshape and one reduction, no scatter.
    """
    y_shape, hop, start = cache
    xp = array_module(du)
    B, length, C = du.shape
    f0, f1 = start // hop, (start + length - 1) // hop
    lo = start - f0 * hop
    blocks = xp.zeros((B, (f1 - f0 + 1) * hop, C), dtype=du.dtype)  # whole frames f0 … f1
    blocks[:, lo : lo + length] = du
    dy = xp.zeros(y_shape, dtype=du.dtype)
    dy[:, f0 : f1 + 1] = blocks.reshape(B, f1 - f0 + 1, hop, C).sum(axis=2)
    return dy


def upsample_forward(c, W, hop: int, start: int, length: int):
    """The whole upsampler: u = repeat(frame_conv(c, W)) (B, length, C_out), samples start … start+length-1.

    The model does not call this: it puts its per-layer projection U between the two steps, where
    it is h times cheaper (the module docstring); this is the same map without U, for tests and pictures.
    """
    y, conv_cache = frame_conv_forward(c, W)  # (B, F, C_out)
    u, repeat_cache = repeat_forward(y, hop, start, length)  # (B, length, C_out)
    return u, (conv_cache, repeat_cache)


def upsample_backward(du, cache):
    """Returns (dc, dW): repeat_backward, then frame_conv_backward."""
    conv_cache, repeat_cache = cache
    return frame_conv_backward(repeat_backward(du, repeat_cache), conv_cache)
