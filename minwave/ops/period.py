"""The period tap of a note-conditioned model: the input one or more pitch periods back (a long-term predictor).

Legend: B batch, T time, R residual channels, F frames, P pitches (88), h hop; τ_p = sample_rate / f_p,
the period of pitch p in samples; a lag of (m + 1) · τ_p samples is n = ⌊(m + 1) · τ_p⌋ whole ones and
δ = (m + 1) · τ_p - n of one more.

A periodic sound repeats itself one period later: x[s] ≈ x[s - τ]. A WaveNet can copy from τ back only
by routing the signal through the one path of its dilated layers whose dilations add up to τ, and which
path depends on the note — a small network learns some notes' paths wrong and copies from 2τ or 4τ
instead (the same note an octave or two low). Speech coders have long solved this with a long-term
predictor (the adaptive codebook of CELP; Quasi-Periodic WaveNet, Wu et al. 2019, adapts the dilations
instead). Here the input layer gets, beside the level y_t, the level one period before the sample it predicts:

    r[:, t, m] = Σ_p a_p · ((1 - δ) · y[:, t + 1 - n] + δ · y[:, t - n]),  n + δ = (m + 1) · τ_p   (B, T, taps)
    x_0[:, t] += r[:, t] @ W_tap                                                        W_tap (taps, R)

y(t + 1 - (m + 1)τ) by linear interpolation; a_p = sounding[:, s // h, p] (0 … 1) of the frame holding
the predicted sample s (position t predicts the sample one after it). The sum runs over the pitches that
sound: one for a melody, several for a chord. taps = WaveNetConfig.period_taps lags, one, two, … periods
back, each with its own row of W_tap: one period is enough for a harmonic tone, but a sound whose partials
are not multiples of f sits on a longer period (the built-in FM bell's partials f ± k · 1.4 f are
multiples of f / 5: it repeats every 5 periods, docs/conditioning.md). Causal: τ_p ≥ 2 (pitches below
the Nyquist frequency), so t + 1 - n < t. It reads at most `reach` samples back (WaveNetConfig.tap_reach:
the dilated layers' own span, 256 in the `tiny` preset, so C2 at 65 Hz and up); a lag beyond the reach
adds nothing. The model's receptive field grows by the reach (every input position the layers read looks
that far back), so a window of RF codes still determines a position's output (what the naive sampler
relies on). Levels before the first position are the zero history, as everywhere in the model.

r is made of the data alone: the backward pass is the projection's, dW_tap = Σ_{b,t} r[b, t]ᵀ · dx_0[b, t].
"""

from __future__ import annotations

import math

from ..backend import array_module
from ..conditioning import N_PITCHES, PITCH_LOW, midi_to_hz
from .conv import sum_outer
from .upsample import repeat_forward


def pitch_periods(sample_rate: int, reach: int, periods: int = 1) -> list[tuple[int, int, float]]:
    """[(p, n, δ)] for every key p (0 … 87) whose lag `periods` · τ_p = n + δ the tap reads: τ_p ≥ 2 (a
    pitch at or above the Nyquist frequency has no period to copy) and n <= reach."""
    out = []
    for p in range(N_PITCHES):
        tau = sample_rate / midi_to_hz(PITCH_LOW + p)
        lag = periods * tau
        n = math.floor(lag)
        if tau >= 2 and n <= reach:
            out.append((p, n, lag - n))
    return out


def period_tap_forward(levels, frames, W, hop: int, sample_rate: int, offset: int, reach: int, t_out: int):
    """x_0's period term r @ W (B, t_out, R) at the last t_out positions of levels y (B, T), and the cache
    r (B, t_out, taps). Position t predicts sample offset + t + 1 of the frames (B, F, ≥ P: the sounding
    fractions in channels 0 … P-1), which must cover it. W (taps, R): row m reads m + 1 periods back.

    reach: the farthest lag read (WaveNetConfig.tap_reach). Only the pitches sounding in the frames used
    are visited (a melody has a handful of the 88); each is a few (B, t_out) operations.
    """
    xp = array_module(levels)
    B, T = levels.shape
    t0 = T - t_out  # the first position computed
    first, last = offset + t0 + 1, offset + T  # the samples predicted
    f0, f1 = first // hop, last // hop
    if first < 0 or f1 >= frames.shape[1]:
        raise ValueError(f"period_tap_forward: samples {first} … {last} lie outside {frames.shape[1]} frames of {hop}")
    sounding = frames[:, f0 : f1 + 1, :N_PITCHES]  # (B, F', P)
    active = {int(p) for p in xp.nonzero(sounding.max(axis=(0, 1)) > 0)[0].tolist()}
    r = xp.zeros((B, t_out, W.shape[0]), dtype=levels.dtype)
    padded = xp.concatenate([xp.zeros((B, reach + 1), dtype=levels.dtype), levels], axis=1)  # y[i]: [i + reach + 1]
    held = {}  # p -> (B, t_out) a_p, held over each frame's samples
    for m in range(W.shape[0]):
        for p, n, d in pitch_periods(sample_rate, reach, m + 1):
            if p not in active:
                continue
            if p not in held:
                held[p] = repeat_forward(frames[:, :, p : p + 1], hop, first, t_out)[0][:, :, 0]
            i = reach + 1 + t0 - n  # padded index of y[t0 - n]
            r[:, :, m] += held[p] * ((1 - d) * padded[:, i + 1 : i + 1 + t_out] + d * padded[:, i : i + t_out])
    return r @ W, r


def period_tap_backward(dx0, r):
    """dW (taps, R) = Σ_{b,t} r[b, t]ᵀ · dx_0[b, t], for x_0's gradient dx0 (B, t_out, R), r (B, t_out, taps)."""
    return sum_outer(r, dx0)
