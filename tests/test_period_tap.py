"""The period tap of a note-conditioned model (ops/period.py): its definition, written as a plain loop,
and what it is for — one period back, a periodic signal is its own prediction."""

import numpy as np
import pytest

from minwave import conditioning, ops, synth
from minwave.conditioning import N_PITCHES, PITCH_LOW, Note, midi_to_hz
from minwave.ops.period import pitch_periods

SR = 16000


def reference_tap(levels, frames, hop, offset, reach, t_out, taps=1):
    """r[b, t, m] = Σ_p a_p · ((1 - δ) y[t + 1 - n] + δ y[t - n]), n + δ = (m + 1) τ_p, one sample, one
    key and one lag at a time."""
    B, T = levels.shape
    r = np.zeros((B, T, taps))
    for b in range(B):
        for t in range(T - t_out, T):
            f = (offset + t + 1) // hop
            for p in range(N_PITCHES):
                tau = SR / midi_to_hz(PITCH_LOW + p)
                a = frames[b, f, p]
                if a == 0 or tau < 2:
                    continue
                for m in range(taps):
                    lag = (m + 1) * tau
                    n = int(np.floor(lag))
                    if n > reach:
                        continue
                    y1 = levels[b, t + 1 - n] if t + 1 - n >= 0 else 0.0
                    y0 = levels[b, t - n] if t - n >= 0 else 0.0
                    r[b, t, m] += a * ((1 - (lag - n)) * y1 + (lag - n) * y0)
    return r[:, T - t_out :]


@pytest.mark.parametrize(
    "offset, reach, t_out, taps",
    [(0, 255, 300, 1), (37, 255, 120, 1), (5, 40, 300, 1), (0, 1000, 1, 1), (37, 255, 120, 5)],
)
def test_the_period_tap_is_its_definition(offset, reach, t_out, taps):
    rng = np.random.default_rng(offset + reach)
    B, T, hop = 2, 300, 16
    levels = rng.uniform(-1, 1, (B, T))
    frames = np.zeros((B, (offset + T) // hop + 1, conditioning.NOTE_CHANNELS))
    for b in range(B):  # a melody of low and high keys (some beyond a short reach), with chords
        for f in range(frames.shape[1]):
            for p in rng.choice(N_PITCHES, size=rng.integers(0, 3), replace=False):
                frames[b, f, p] = rng.uniform(0.2, 1.0)
    W = rng.standard_normal((taps, 3))
    out, r = ops.period_tap_forward(levels, frames, W, hop, SR, offset, reach, t_out)
    expected = reference_tap(levels, frames, hop, offset, reach, t_out, taps)
    assert np.abs(expected).max(axis=(0, 1)).min() > 0.1  # keys in reach sound, at every lag
    np.testing.assert_allclose(r, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out, np.einsum("btm,mr->btr", expected, W), rtol=1e-12, atol=1e-12)
    dx0 = rng.standard_normal(out.shape)
    np.testing.assert_allclose(ops.period_tap_backward(dx0, r), np.einsum("btm,btr->mr", r, dx0), rtol=1e-12)


@pytest.mark.parametrize("pitch", [43, 55, 67, 79])
def test_one_period_back_a_tone_predicts_itself(pitch):
    """For a steady tone at the note's pitch, r[t] (the level one period before sample t + 1) is the
    level at t + 1, up to the linear interpolation's error: what the model can copy from."""
    n = 4000
    y = 0.8 * np.sin(2 * np.pi * midi_to_hz(pitch) * np.arange(n) / SR)[None]  # (1, n)
    frames = conditioning.piano_roll([Note(0.0, 1.0, pitch)], n + 1, 256, SR)[None]
    _, r = ops.period_tap_forward(y, frames, np.ones((1, 1)), 256, SR, 0, 255, n)
    settled = slice(300, n - 1)  # one period in: before it the tap reads the zero history
    error = np.abs(r[0, settled, 0] - y[0, 1:][settled]).max()
    assert error < 0.8 * (np.pi * midi_to_hz(pitch) / SR) ** 2 * 2  # interpolation error bound, ~(πf/SR)²
    assert np.abs(y[0, 1:][settled] - y[0, :-1][settled]).max() > 10 * error  # far better than "the last sample"


def test_the_tap_reads_only_periods_inside_the_receptive_field():
    periods = pitch_periods(SR, 255)
    assert min(n for _, n, _ in periods) == 3  # C8, 4186 Hz: 3.8 samples
    assert max(n for _, n, _ in periods) == 244  # C2, 65.4 Hz: 244.6 samples; B1 (61.7 Hz, 259) is beyond
    assert [p for p, _, _ in periods] == list(range(36 - PITCH_LOW, N_PITCHES))
    assert pitch_periods(1000, 10**6)[-1][0] == 71 - PITCH_LOW  # B4 (494 Hz) is the last below 500 Hz


def test_five_periods_back_the_fm_bell_predicts_itself():
    """The built-in bell's partials f ± k · 1.4 f are multiples of f / 5, so its waveform repeats every five
    periods, not every one: the tap's fifth lag predicts a struck bell where its first misses (period_taps)."""
    pitch, n = 79, 8000  # G5, the middle of the bell's register
    y = synth.bell_note(midi_to_hz(pitch), 0.5, SR, np.random.default_rng(0))[None, :n]  # (1, n)
    frames = conditioning.piano_roll([Note(0.0, 1.0, pitch)], n + 1, 256, SR)[None]
    _, r = ops.period_tap_forward(y, frames, np.ones((5, 1)), 256, SR, 0, 511, n)
    settled = slice(300, n - 1)  # five periods in (5 · 39.9 samples)

    def error_db(m):  # the lag's prediction error against the bell's power
        return 10 * np.log10(np.mean((r[0, settled, m] - y[0, 1:][settled]) ** 2) / np.mean(y[0, 1:][settled] ** 2))

    assert error_db(4) < -20 and min(error_db(m) for m in range(4)) > 0
