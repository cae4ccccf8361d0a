"""The period tap of a note-conditioned model: the input one pitch period back (a long-term predictor).

Legend: B batch, T time, R residual channels, F frames, P pitches (88), h hop; τ_p = sample_rate / f_p,
the period of pitch p in samples, n_p = ⌊τ_p⌋ and δ_p = τ_p - n_p.

A periodic sound repeats itself one period later: x[s] ≈ x[s - τ]. A WaveNet can copy from τ back only
by routing the signal through the one path of its dilated layers whose dilations add up to τ, and which
path depends on the note — a small network learns some notes' paths wrong and copies from 2τ or 4τ
instead (the same note an octave or two low). Speech coders have long solved this with a long-term
predictor (the adaptive codebook of CELP; Quasi-Periodic WaveNet, Wu et al. 2019, adapts the dilations
instead). Here the input layer gets, beside the level y_t, the level one period before the sample it predicts:

    r[:, t] = Σ_p a_p · ((1 - δ_p) · y[:, t + 1 - n_p] + δ_p · y[:, t - n_p])             (B, T)
    x_0[:, t] += r[:, t] · W_tap                                                          W_tap (1, R)

y(t + 1 - τ) by linear interpolation; a_p = sounding[:, (s) // h, p] (0 … 1) of the frame holding the
predicted sample s (position t predicts the sample one after it). The sum runs over the pitches that sound:
one for a melody, several for a chord. Causal: n_p ≥ 2 (pitches below the Nyquist frequency), so
t + 1 - n_p < t. It reads at most `reach` samples back (WaveNetConfig.tap_reach: the dilated layers' own
span, 256 in the `tiny` preset, so C2 at 65 Hz and up); a pitch with n_p > reach adds nothing. The
model's receptive field grows by the reach (every input position the layers read looks that far
back), so a window of RF codes still determines a position's output (what the naive sampler relies on). Levels
before the first position are the zero history, as everywhere in the model.

r is made of the data alone: the backward pass is the projection's, dW_tap = Σ_{b,t} r[b, t] · dx_0[b, t].
"""

from __future__ import annotations

import math

from ..backend import array_module
from ..conditioning import N_PITCHES, PITCH_LOW, midi_to_hz
from .conv import sum_outer
from .upsample import repeat_forward


def pitch_periods(sample_rate: int, reach: int) -> list[tuple[int, int, float]]:
    """[(p, n_p, δ_p)] for every key p (0 … 87) whose period the tap reads: 2 <= n_p = ⌊τ_p⌋ <= reach
    (a pitch at or above the Nyquist frequency, τ_p < 2, has no period to copy)."""
    out = []
    for p in range(N_PITCHES):
        tau = sample_rate / midi_to_hz(PITCH_LOW + p)
        n = math.floor(tau)
        if 2 <= n <= reach:
            out.append((p, n, tau - n))
    return out


def period_tap_forward(levels, frames, W, hop: int, sample_rate: int, offset: int, reach: int, t_out: int):
    """x_0's period term r[..., None] · W (B, t_out, R) at the last t_out positions of levels y (B, T),
    and the cache r (B, t_out). Position t predicts sample offset + t + 1 of the frames (B, F, ≥ P: the
    sounding fractions in channels 0 … P-1), which must cover it. W (1, R).

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
    r = xp.zeros((B, t_out), dtype=levels.dtype)
    padded = xp.concatenate([xp.zeros((B, reach + 1), dtype=levels.dtype), levels], axis=1)  # y[i]: [i + reach + 1]
    for p, n, d in pitch_periods(sample_rate, reach):
        if p not in active:
            continue
        a = repeat_forward(frames[:, :, p : p + 1], hop, first, t_out)[0][:, :, 0]  # (B, t_out) held a_p
        i = reach + 1 + t0 - n  # padded index of y[t0 - n]
        r += a * ((1 - d) * padded[:, i + 1 : i + 1 + t_out] + d * padded[:, i : i + t_out])
    return r[:, :, None] * W[0], r


def period_tap_backward(dx0, r):
    """dW (1, R) = Σ_{b,t} r[b, t] · dx_0[b, t], for x_0's gradient dx0 (B, t_out, R)."""
    return sum_outer(r[:, :, None], dx0)
