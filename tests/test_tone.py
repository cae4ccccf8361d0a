"""The whole purpose, end to end: train for seconds on a tone, generate free-running, hear the tone.

Like ibab/tensorflow-wavenet's check_waveform: bits per sample can fall while the generated audio is
noise (docs/free_running.md), so these tests judge what the model *generates*, from a silent start,
with both samplers: its periodicity (quality.py) and its pitch.
"""

import numpy as np
import pytest

from minwave import WaveNet, WaveNetConfig, generate
from minwave.mulaw import mulaw_decode, mulaw_encode
from minwave.optim import Adam
from minwave.quality import quality
from minwave.threads import set_blas_threads

SR = 16000


def tone_codes(f0: float, seconds: float = 1.5, lead_in: float = 0.1) -> np.ndarray:
    """μ-law codes of a sine at f0 after a short silence (so the model also learns how a note starts)."""
    t = np.arange(int(seconds * SR)) / SR
    audio = np.concatenate([np.zeros(int(lead_in * SR)), 0.5 * np.sin(2 * np.pi * f0 * t)])
    return mulaw_encode(audio)


def train(model, clips, tags=None, steps=300, segment=400, batch=4, seed=0):
    """Adam on random segments of the clips (row i from clip i mod len(clips), with its tags)."""
    optimizer = Adam(model.params, lr=1e-2, clip_norm=1.0)
    rng = np.random.default_rng(seed)
    length = segment + model.receptive_field + 1
    rows = np.arange(batch) % len(clips)
    restore = set_blas_threads(1)  # products this small only slow down with more (threads.py)
    try:
        for _ in range(steps):
            starts = rng.integers(0, len(clips[0]) - length, batch)
            x = np.stack([clips[i][s : s + length] for i, s in zip(rows, starts)])
            loss, grads = model.loss_and_grads(x, None if tags is None else tags[rows])
            optimizer.step(model.params, grads)
    finally:
        restore()
    return loss


def cents(f, f0):
    return abs(1200 * np.log2(f / f0))


def small_config(**overrides):
    return WaveNetConfig(
        stacks=1, layers_per_stack=6, residual_channels=16, dilation_channels=16, skip_channels=32, **overrides
    )


@pytest.mark.slow
def test_one_tone_is_generated_free_running_by_both_samplers():
    model = WaveNet(small_config(), seed=0)  # the default input layer: the μ-law level
    assert model.config.input == "level"
    train(model, [tone_codes(261.6)])
    for method, n in [("fast", 8000), ("naive", 3000)]:
        codes = generate(model, n, seed=1, method=method)[0]  # from one silence code: nothing primed
        q = quality(mulaw_decode(codes[1000:]), SR)  # after the note's first 60 ms, its onset
        assert q.periodicity >= 0.9, (method, q)
        assert cents(q.pitch_hz, 261.6) < 50, (method, q)


@pytest.mark.slow
def test_each_tag_generates_its_own_tone():
    model = WaveNet(small_config(n_tags=2), seed=0)
    tags = np.eye(2)  # tag 0: C4, tag 1: G4
    train(model, [tone_codes(261.6), tone_codes(392.0)], tags=tags)
    codes = generate(model, 8000, batch=2, tags=tags, seed=2)
    for row, f0 in zip(codes, (261.6, 392.0)):
        q = quality(mulaw_decode(row[1000:]), SR)
        assert q.periodicity >= 0.9 and cents(q.pitch_hz, f0) < 50, (f0, q)
