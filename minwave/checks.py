"""The argument checks that the model, the samplers and the fast kernels share, written once.

Each takes an array already on the caller's array module (NumPy or CuPy), checks it and returns it (the
tags converted as asked), or raises a one-line ValueError that names the argument and what to pass.
Ground floor: imports nothing of minwave; model.py, sampling.py and fastgen.py import it at the top.

Legend: B batch (streams), T time, Q classes (quantization channels), G tags, F frames, C features
per frame (local conditioning).
"""

from __future__ import annotations

import numpy as np


def check_codes(x, quantization_channels: int, name: str = "x", min_length: int = 1):
    """x (B, T): integer μ-law codes in 0..Q-1, with B >= 1 and T >= min_length. Returns x."""
    if x.ndim != 2:
        raise ValueError(f"{name} must be (batch, time) integer codes, got shape {tuple(x.shape)}")
    if x.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer codes, got dtype {x.dtype}")
    if x.shape[0] < 1 or x.shape[1] < min_length:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; need batch >= 1 and time >= {min_length}")
    if int(x.min()) < 0 or int(x.max()) >= quantization_channels:
        raise ValueError(f"{name} codes must lie in 0..{quantization_channels - 1}")
    return x


def check_tags(tags, n_tags: int, batch: int, xp=np, dtype=np.float64, broadcast: bool = False):
    """tags -> (B, G) array of xp in dtype, or None for a model without tags (G = 0, tags None).

    broadcast: also accept (G,), the same tags for every stream (generate's contract); model.forward
    takes (B, G) only. A NaN tag would make every output NaN, so tags must be finite.
    """
    shapes = f"({batch}, {n_tags})" + (f" or ({n_tags},)" if broadcast else "")
    if n_tags == 0:
        if tags is not None:
            raise ValueError("this model has n_tags=0: pass tags=None")
        return None
    if tags is None:
        raise ValueError(f"this model is conditioned on {n_tags} tags: pass tags of shape {shapes}")
    tags = xp.asarray(tags, dtype=dtype)
    if broadcast and tags.shape == (n_tags,):
        tags = xp.tile(tags, (batch, 1))  # (B, G)
    if tags.shape != (batch, n_tags):
        raise ValueError(f"tags must have shape (batch, n_tags) = {shapes}, got {tuple(tags.shape)}")
    if not bool(xp.isfinite(tags).all()):
        raise ValueError("tags must be finite numbers (multi-hot 0/1), got NaN or infinity")
    return tags


def check_cond(cond, condition: str, channels: int, batch: int, xp=np, dtype=np.float64, broadcast: bool = False):
    """cond -> (B, F, C) frames of xp in dtype, or None for a model without local conditioning
    (condition "", cond None). broadcast: also accept (F, C), the same frames for every stream
    (generate's contract); model.forward takes (B, F, C) only. Whether the frames cover enough samples
    is the caller's check (it knows how many it needs)."""
    if not condition:
        if cond is not None:
            raise ValueError("this model has no local conditioning: pass cond=None")
        return None
    shapes = (f"(F, {channels}) or " if broadcast else "") + f"(batch, F, {channels})"
    if cond is None:
        raise ValueError(f"this model is conditioned on {condition}: pass cond of shape {shapes}")
    cond = xp.asarray(cond, dtype=dtype)
    if broadcast and cond.ndim == 2:
        cond = xp.tile(cond, (batch, 1, 1))  # (B, F, C)
    if cond.ndim != 3 or cond.shape[0] != batch or cond.shape[2] != channels:
        raise ValueError(f"cond must have shape {shapes} = ({batch}, F, {channels}), got {tuple(cond.shape)}")
    return cond
