"""How tonal is this audio? Two numbers that separate a held note from noise, with no model inside.

Legend: F frames, N samples per frame, τ a lag in samples, sr the sample rate.

Bits per sample say how well a model predicts the *data*; they say nothing about what it generates on
its own. A model can score well and still only make noise (docs/free_running.md). So minwave measures
the generated audio itself, at every checkpoint and after every `generate`:

- **periodicity**: cut the audio into 64 ms frames (hop 32 ms) and keep the voiced ones (loud enough:
  RMS ≥ -40 dBFS and within 30 dB of the loudest frame). In each, the normalised autocorrelation

      r(τ) = Σ_t x[t] x[t+τ] / sqrt(Σ_t x[t]² · Σ_t x[t+τ]²)       (sums over the frame's overlap)

  is 1 at a lag τ where the frame repeats itself exactly. Its highest *peak* for pitches 40–800 Hz
  (τ = sr/800 … sr/40) is the frame's periodicity (0 if r has no peak there: low-passed noise has a
  high r at short lags, but falling, with no peak); the clip's is the median over voiced frames.
  A steady tone scores 0.9–1.0, white noise 0.1–0.2. A clip with no voiced frame scores 0.
- **spectral flatness**: the geometric over the arithmetic mean of a frame's power spectrum (Hann
  window): ≈ 0 for a few harmonic lines, ≈ 0.5 for white noise under a Hann window (1 in the limit of
  an infinitely long, unwindowed one). Median over voiced frames; 1.0 for a clip with no voiced frame.
- **pitch**: for each voiced frame, the smallest lag whose r(τ) is a local peak within 0.1 of the
  frame's best (so that twice the period, which scores as high, does not halve the pitch); the
  clip's pitch is the median of sr / τ over frames. NaN with no voiced frame.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

FRAME_S = 0.064  # frame length, seconds
HOP_S = 0.032
FMIN, FMAX = 40.0, 800.0  # the pitch range searched (Hz)
SILENCE_DB = -40.0  # a frame quieter than this (RMS, dBFS) is not voiced
RANGE_DB = 30.0  # … nor one more than this below the loudest frame


class Quality(NamedTuple):
    """What quality() measures for one clip."""

    periodicity: float  # median frame periodicity over voiced frames, 0 … 1 (0: none voiced)
    flatness: float  # median spectral flatness over voiced frames, 0 … 1 (1: none voiced)
    pitch_hz: float  # median frame pitch over voiced frames (NaN: none voiced)
    voiced: float  # fraction of frames that are voiced

    def __str__(self) -> str:
        pitch = f"{self.pitch_hz:.0f} Hz" if np.isfinite(self.pitch_hz) else "-"
        return f"periodicity {self.periodicity:.2f}, flatness {self.flatness:.2f}, pitch {pitch}"


def frames(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(n,) audio -> (F, N) frames of FRAME_S seconds every HOP_S seconds (the tail that fits no frame
    is dropped; a clip shorter than one frame gives one frame of what there is)."""
    n_frame = max(int(round(FRAME_S * sample_rate)), 2)
    hop = max(int(round(HOP_S * sample_rate)), 1)
    if len(audio) <= n_frame:
        return audio[None, :]
    count = 1 + (len(audio) - n_frame) // hop
    idx = np.arange(n_frame)[None, :] + hop * np.arange(count)[:, None]  # (F, N)
    return audio[idx]


def voiced_mask(fr: np.ndarray) -> np.ndarray:
    """(F, N) frames -> (F,) bool: loud enough to judge (module docstring)."""
    rms = np.sqrt(np.mean(fr * fr, axis=1))
    db = 20 * np.log10(np.maximum(rms, 1e-12))
    return (db >= SILENCE_DB) & (db >= db.max() - RANGE_DB)


def normalised_autocorrelation(fr: np.ndarray, max_lag: int) -> np.ndarray:
    """(F, N) frames -> r (F, max_lag + 1), r[:, τ] as in the module docstring (mean removed first)."""
    fr = fr - fr.mean(axis=1, keepdims=True)
    F, N = fr.shape
    max_lag = min(max_lag, N - 1)
    size = 1 << int(np.ceil(np.log2(2 * N)))  # zero-padded: a linear, not circular, correlation
    spec = np.fft.rfft(fr, size, axis=1)
    ac = np.fft.irfft(spec * np.conj(spec), size, axis=1)[:, : max_lag + 1]  # Σ_t x[t] x[t+τ]
    energy = np.cumsum(fr * fr, axis=1)  # energy[:, i] = Σ_{t ≤ i} x[t]²
    total = energy[:, -1:]
    lags = np.arange(max_lag + 1)
    head = energy[:, N - 1 - lags]  # Σ_{t < N-τ} x[t]²: the first factor's overlap
    tail = total - np.concatenate([np.zeros((F, 1)), energy[:, :max_lag]], axis=1)  # Σ_{t ≥ τ} x[t]²
    return ac / np.sqrt(np.maximum(head * tail, 1e-30))


def quality(audio, sample_rate: int) -> Quality:
    """Periodicity, spectral flatness and pitch of a mono clip (floats in [-1, 1]); module docstring."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"quality() takes one mono clip (n,), got shape {audio.shape}")
    if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 2 * FMAX):
        raise ValueError(f"sample_rate must be an integer above {2 * FMAX:g} Hz, got {sample_rate!r}")
    if audio.size == 0 or not np.all(np.isfinite(audio)):
        raise ValueError("quality() needs a non-empty clip of finite samples")
    fr = frames(audio, sample_rate)
    voiced = voiced_mask(fr)
    if not voiced.any():
        return Quality(0.0, 1.0, float("nan"), 0.0)
    fr = fr[voiced]
    lo, hi = int(np.ceil(sample_rate / FMAX)), int(sample_rate / FMIN)
    r = normalised_autocorrelation(fr, hi + 1)  # (F', hi + 2)
    # only peaks count: low-passed noise has r falling smoothly from lag 0, high at short lags but with
    # no peak; a repeating frame has a peak at its period. Lags lo-1 … hi+1 so that lo and hi can be peaks.
    r_range = r[:, lo - 1 :]
    inner = r_range[:, 1:-1]  # lags lo … hi (fewer if frames are short)
    is_peak = (inner > r_range[:, :-2]) & (inner >= r_range[:, 2:])
    peak_r = np.where(is_peak, inner, -1.0)
    per_frame = np.maximum(peak_r.max(axis=1), 0.0)  # no peak at all: not periodic

    # the smallest lag that is a peak within 0.1 of the frame's best: the period, not a multiple of it
    near_best = is_peak & (inner >= per_frame[:, None] - 0.1)
    first = np.where(near_best.any(axis=1), near_best.argmax(axis=1), 0)
    pitch = sample_rate / (lo + first)
    pitch = np.where(is_peak.any(axis=1), pitch, np.nan)

    power = np.abs(np.fft.rfft(fr * np.hanning(fr.shape[1]), axis=1)) ** 2 + 1e-20
    flat = np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)
    return Quality(
        periodicity=float(np.median(per_frame)),
        flatness=float(np.median(flat)),
        pitch_hz=float(np.nanmedian(pitch)) if np.isfinite(pitch).any() else float("nan"),
        voiced=float(voiced.mean()),
    )
