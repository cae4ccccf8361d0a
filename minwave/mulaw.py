"""μ-law companding: float audio in [-1, 1] <-> integer classes 0..Q-1 (WaveNet §2.2).

    F(x) = sign(x) · ln(1 + μ|x|) / ln(1 + μ),   μ = Q - 1

F squeezes loud samples together and spreads quiet ones apart, so 256 classes (8 bits) sound far
better than 8-bit linear quantization. After companding, [-1, 1] is cut into Q equal bins.

Out-of-range input is clipped to [-1, 1] first: a sample at 1.3 is encoded as 1.0. Silence (0.0)
maps to the middle class Q // 2; -1 maps to class 0 and +1 to class Q - 1.
"""

from __future__ import annotations

from .backend import array_module


def _check_channels(quantization_channels: int) -> int:
    if int(quantization_channels) != quantization_channels or quantization_channels < 2:
        raise ValueError(f"quantization_channels must be an integer >= 2, got {quantization_channels!r}")
    return int(quantization_channels)


def mulaw_compress(x, quantization_channels: int = 256):
    """F(x) for x clipped to [-1, 1]; returns floats in [-1, 1] (no quantization)."""
    xp = array_module(x)
    mu = _check_channels(quantization_channels) - 1
    x = xp.clip(xp.asarray(x, dtype=xp.float64), -1.0, 1.0)
    return xp.sign(x) * xp.log1p(mu * xp.abs(x)) / xp.log1p(mu)


def mulaw_expand(y, quantization_channels: int = 256):
    """F⁻¹(y) = sign(y) · ((1 + μ)^|y| - 1) / μ."""
    xp = array_module(y)
    mu = _check_channels(quantization_channels) - 1
    y = xp.asarray(y, dtype=xp.float64)
    return xp.sign(y) * xp.expm1(xp.abs(y) * xp.log1p(mu)) / mu


def mulaw_encode(x, quantization_channels: int = 256):
    """Float audio (any shape) -> int64 codes in 0..Q-1.

    The companded value y ∈ [-1, 1] is mapped to bin floor((y + 1) / 2 · Q), with y = 1 put in the top
    bin. Bins are symmetric about zero when Q is even, and 0.0 lands in bin Q // 2.
    """
    xp = array_module(x)
    q = _check_channels(quantization_channels)
    y = mulaw_compress(x, q)
    codes = xp.floor((y + 1.0) / 2.0 * q).astype(xp.int64)
    return xp.clip(codes, 0, q - 1)


def mulaw_level(codes, quantization_channels: int = 256):
    """Int codes 0..Q-1 -> the companded level at the centre of each bin, (2c + 1)/Q - 1 ∈ (-1, 1), float64.

    This is what the model's "level" input layer sees (model.py): neighbouring codes, neighbouring values.
    """
    xp = array_module(codes)
    q = _check_channels(quantization_channels)
    return (xp.asarray(codes).astype(xp.float64) + 0.5) / q * 2.0 - 1.0


def mulaw_decode(codes, quantization_channels: int = 256):
    """Int codes 0..Q-1 -> float64 audio in [-1, 1], each code mapped to the centre of its bin.

    Round trip: |decode(encode(x)) - x| is at most half a bin in the companded domain, i.e. within one
    quantization step of the reconstruction grid.
    """
    xp = array_module(codes)
    q = _check_channels(quantization_channels)
    codes = xp.asarray(codes)
    if codes.dtype.kind not in "iu":
        raise ValueError(f"mulaw_decode expects integer codes, got dtype {codes.dtype}")
    if codes.size and bool(((codes < 0) | (codes >= q)).any()):  # code 300 would decode to 6.9, not audio
        raise ValueError(f"mulaw_decode expects codes in 0..{q - 1}, got values outside that range")
    y = (codes.astype(xp.float64) + 0.5) / q * 2.0 - 1.0
    return mulaw_expand(y, q)
