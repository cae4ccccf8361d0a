"""Sampling audio from a WaveNet, one μ-law code at a time: minwave.generate().

Legend: B streams (batch), H history length (prime), n new samples, Q classes, G tags, RF receptive field,
F frames of C channels and h samples each (local conditioning).

Two samplers, one contract:
- method="naive" (the specification): for every new sample, run the ordinary model.forward over the
  last RF codes and sample from its last position. O(RF) work per sample; NumPy or CuPy (model.xp).
- method="fast" (the default): the fast-WaveNet queue algorithm, Numba-compiled (fastgen.py).
  O(layers) work per sample, on one CPU core; GPU weights are copied to the host first.

Both draw the same uniforms and apply the same inverse-CDF rule, so they return the same codes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np

from .backend import array_module, to_host
from .checks import check_codes, check_cond, check_tags
from .data import frame_window
from .model import WaveNet

METHODS = ("fast", "naive")
TINY_TEMPERATURE = 1e-200  # below this, temperature is 0 (argmax): logits / T would overflow float64
CHUNK = 4096  # fast path: time steps per call of the compiled loop (progress is reported between calls)


def generate(
    model,
    n_samples: int,
    *,
    batch: int = 1,
    tags=None,
    temperature: float = 1.0,
    seed: int | None = 0,
    method: str = "fast",
    prime=None,
    progress: bool | Callable[[int, int], None] = False,
    cond=None,
) -> np.ndarray:
    """Sample n_samples μ-law codes for each of `batch` independent streams. Returns (batch, n_samples) int64.

    model        a WaveNet (any backend, float32 or float64).
    tags         for a tag-conditioned model (n_tags = G > 0): (batch, G) or (G,) (the same for every
                 stream), usually multi-hot; must be None for an unconditioned model.
    temperature  the logits are divided by it before the softmax: < 1 is more conservative, > 1 wilder.
                 temperature == 0 means argmax (greedy decoding), as does any temperature below 1e-200
                 (dividing by it would overflow). Negative, infinite or NaN: ValueError.
    seed         seeds the uniforms (below); the same seed gives the same codes. None: fresh randomness.
    method       "fast" (Numba queue sampler, the default) or "naive" (model.forward per sample).
    prime        codes to continue from: (P,) for every stream, or (batch, P). Default: one silence code.
    progress     True: a tqdm progress bar; a callable: called as progress(done, n_samples) as samples
                 are produced (the fast path every 4096 samples, the naive one every sample); False: quiet.
    cond         for a locally conditioned model (config.condition set): frames (batch, F, C) or (F, C)
                 (the same for every stream) from conditioning.py; frame f conditions the new samples
                 f·h … f·h + h - 1 (the history lies before frame 0 and sees zeros there). They must
                 cover the output: n_samples <= F·h. Must be None for a model without local conditioning.

    The sampling contract, identical for both methods:
    1. History. Generation continues from the history x[0 … H-1]: the prime if given, else the single
       code Q // 2 (μ-law silence). Before x[0] the network sees its zero history, exactly as
       model.forward does. The history is not part of the returned codes.
    2. Randomness. u = np.random.default_rng(seed).random((batch, n_samples)), drawn up front in
       float64: stream b uses u[b, i] for its i-th new sample, and nothing else is random.
    3. Rule. With logits ℓ (Q,) = model.forward(x[: t+1])[t], the distribution of x[t+1]:
           a = float64(ℓ) / temperature,  e_c = exp(a_c - max a),  cdf = cumsum(e)      (float64)
           x[t+1] = #{c : cdf_c <= u · cdf_{Q-1}}   (capped at Q - 1)
       i.e. the first class whose cumulative probability exceeds u. temperature == 0: argmax ℓ (the
       first maximum).

    Why the codes agree, and when they could not: everything after ℓ is the same float64 arithmetic in
    the same order, but the two methods compute ℓ itself in float32 in different orders (and the fast
    path with its own tanh), so their logits differ by rounding. A draw differs only if u falls between
    the two CDFs at some class: measured per draw, about 4e-7 for a freshly initialised network and
    7e-5 for a confident one (docs/generation.md §5). Short outputs agree exactly; a long one may part
    ways once, after which each is still an exact sample up to float32 rounding. The float64 softmax
    and CDF keep the rule itself from adding an error of float32 size.
    """
    _check_model(model)
    n_samples = _positive_int("n_samples", n_samples)
    batch = _positive_int("batch", batch)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    temperature = _check_temperature(temperature)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    host_tags = _check_tags(model, tags, batch)
    frames = _check_cond(model, cond, batch, n_samples)
    history = _check_prime(model, prime, batch)
    report, close = _progress_reporter(progress, n_samples)
    u = np.random.default_rng(seed).random((batch, n_samples))  # (B, n) float64 in [0, 1)
    try:
        if method == "fast":
            from . import fastgen  # Numba: imported (and its cache loaded) on first use

            step_report = None if report is None else (lambda done: report(done, n_samples))
            return fastgen.run(model, history, u, temperature, host_tags, step_report, CHUNK, frames)
        return naive_generate(model, history, u, temperature, host_tags, report, frames)
    finally:
        close()


# ---------------------------------------------------------------------------------------------- naive


def naive_generate(
    model,
    history: np.ndarray,
    u: np.ndarray,
    temperature: float,
    tags=None,
    report: Callable[[int, int], None] | None = None,
    frames=None,
) -> np.ndarray:
    """The reference sampler: model.forward over the last RF codes for every new sample.

    history (B, H) host ints, u (B, n) host float64, tags (B, G) host or None -> (B, n) int64.
    frames (B, F, C) host or None: local conditioning, frame 0 at the first new sample; each window of
    codes gets its window of frames (data.frame_window, with the upsampler's context either side).
    Why a window of RF codes is exact: logits[t] depends on x[t-RF+1 … t] only, and forward() treats
    what lies before its input as the zero history; so the window is the whole past at first
    (t < RF) and, after that, everything logits[t] can see.
    """
    xp, rf = model.xp, model.receptive_field
    B, H = history.shape
    n = u.shape[1]
    seq = xp.zeros((B, H + n), dtype=xp.int64)  # (B, H + n) history, then the new codes
    seq[:, :H] = xp.asarray(history)
    u_dev = xp.asarray(u)  # (B, n)
    tags_dev = None if tags is None else model.backend.asarray(tags, dtype=model.dtype)
    for i in range(n):
        t = H - 1 + i  # the last known position; draw x[t+1]
        lo = max(0, t + 1 - rf)
        window = seq[:, lo : t + 1]  # (B, ≤ RF)
        if frames is None:
            logits = model.forward(window, tags_dev)[:, -1]  # (B, Q)
        else:  # window[:, 0] is new sample lo - H (negative: the history); it predicts up to t + 1 - H
            cuts = [
                frame_window(f, lo - H, t + 2 - lo, model.config.cond_hop, model.config.cond_context) for f in frames
            ]
            cond = model.backend.asarray(np.stack([c for c, _ in cuts]), dtype=model.dtype)  # (B, F', C)
            logits = model.forward(window, tags_dev, cond, cuts[0][1])[:, -1]  # (B, Q)
        seq[:, t + 1] = inverse_cdf(logits, temperature, u_dev[:, i])
        if report is not None:
            report(i + 1, n)
    return to_host(seq[:, H:]).astype(np.int64)


def inverse_cdf(logits, temperature: float, u):
    """The sampling rule of generate()'s docstring, step 3.  logits (B, Q), u (B,) float64 -> codes (B,).

    a = logits / T in float64; cdf = cumsum(exp(a - max a)); code = #{c : cdf_c <= u · cdf_{Q-1}}.
    """
    xp = array_module(logits)
    Q = logits.shape[-1]
    if temperature == 0.0:
        return xp.argmax(logits, axis=-1)
    a = logits.astype(xp.float64) / temperature  # (B, Q)
    cdf = xp.cumsum(xp.exp(a - a.max(axis=-1, keepdims=True)), axis=-1)  # (B, Q), ends at Σ e ≥ 1
    codes = (cdf <= u[:, None] * cdf[:, -1:]).sum(axis=-1)  # (B,)
    return xp.minimum(codes, Q - 1)


# ---------------------------------------------------------------------------------------------- checks


def _check_model(model) -> None:
    if not isinstance(model, WaveNet):
        raise TypeError(f"model must be a minwave.WaveNet, got {type(model).__name__}")


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    temperature = float(temperature)
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be finite and >= 0 (0 means argmax), got {temperature!r}")
    if temperature < TINY_TEMPERATURE:  # logits / temperature would overflow: the limit, argmax
        return 0.0
    return temperature


def _check_tags(model, tags, batch: int) -> np.ndarray | None:
    """-> (B, G) float64 host array, or None for an unconditioned model (checks.check_tags)."""
    host = None if tags is None else to_host(tags)
    return check_tags(host, model.config.n_tags, batch, broadcast=True)


def _check_cond(model, cond, batch: int, n_samples: int) -> np.ndarray | None:
    """-> (B, F, C) float64 host frames, or None for a model without local conditioning."""
    c = model.config
    cond = None if cond is None else to_host(cond)
    cond = check_cond(cond, c.condition, c.cond_channels, batch, broadcast=True)
    if cond is None:
        return None
    if not np.all(np.isfinite(cond)):
        raise ValueError("cond must be finite numbers")
    if n_samples > cond.shape[1] * c.cond_hop:
        raise ValueError(
            f"cond has {cond.shape[1]} frames of {c.cond_hop} samples, fewer than n_samples = {n_samples}; "
            f"pass at least {-(-n_samples // c.cond_hop)} frames"
        )
    return cond


def _check_prime(model, prime, batch: int) -> np.ndarray:
    """-> the history (B, H) int64 on the host: the prime, or one silence code per stream."""
    Q = model.config.quantization_channels
    if prime is None:
        return np.full((batch, 1), Q // 2, dtype=np.int64)
    prime = to_host(prime)
    if prime.ndim == 1:
        prime = np.tile(prime, (batch, 1))  # (B, P): the same history for every stream
    if prime.ndim != 2 or prime.shape[0] != batch or prime.shape[1] < 1:
        raise ValueError(f"prime must have shape (P,) or (batch, P) = ({batch}, P) with P >= 1, got {prime.shape}")
    return np.ascontiguousarray(check_codes(prime, Q, "prime"), dtype=np.int64)


def _progress_reporter(progress, total: int):
    """progress argument -> (report(done, total) or None, close())."""
    if progress is False or progress is None:
        return None, lambda: None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="sample", unit_scale=True, desc="generate", leave=False)

        def report(done, _total):
            bar.update(done - bar.n)

        return report, bar.close
    if callable(progress):
        return progress, lambda: None
    raise ValueError(f"progress must be True, False or a callable progress(done, total), got {progress!r}")
