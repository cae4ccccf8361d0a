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
from minwave.train import noisy_codes

SR = 16000


RF = 65  # the receptive field of small_config(): 2 + (2 - 1)(1 + 2 + … + 32) samples


def tone_codes(f0: float, samples: int = 401) -> np.ndarray:
    """μ-law codes of a sine at f0 after RF - 1 samples of silence (how a note starts from nothing).

    The sine's first sample is 0, so the clip starts with exactly RF silent codes: an all-silent receptive
    field comes only right before the onset, as it does at the start of generation, so the note starts at
    once, at a time the test does not draw.
    """
    t = np.arange(samples) / SR
    return mulaw_encode(np.concatenate([np.zeros(RF - 1), 0.5 * np.sin(2 * np.pi * f0 * t)]))


def train(model, clips, tags=None, steps=400, batch=4, noise=3, ema=0.98, seed=0):
    """Adam on the clips' starts (row i is clip i mod len(clips), with its tags); the model ends holding
    the moving average of its weights.

    The recipe of `minwave.train`, small: the network reads codes moved by up to ±noise (--input-noise),
    so that its own sampling errors do not throw it off the tone, and the averaged weights (--ema) are
    steadier than the last step's. Without them (and with random starts, where the onset is rare) 3 to 7
    training seeds in 8 failed these tests.
    """
    optimizer = Adam(model.params, lr=1e-2, clip_norm=1.0, ema_decay=ema)
    rng = np.random.default_rng(seed)
    rows = np.arange(batch) % len(clips)
    x = np.stack([clips[i] for i in rows])  # (B, RF - 1 + T): every row holds the onset and the note
    restore = set_blas_threads(1)  # products this small only slow down with more (threads.py)
    try:
        for _ in range(steps):
            inputs = noisy_codes(x, noise, model.config.quantization_channels, rng)
            loss, grads = model.loss_and_grads(x, None if tags is None else tags[rows], inputs=inputs)
            optimizer.step(model.params, grads)
    finally:
        restore()
    model.params = optimizer.ema
    return loss


def cents(f, f0):
    return abs(1200 * np.log2(f / f0))


def small_config(**overrides):
    return WaveNetConfig(
        stacks=1, layers_per_stack=6, residual_channels=16, dilation_channels=16, skip_channels=32, **overrides
    )


def heard_right(codes, f0s) -> tuple[dict, list]:
    """For each pitch, how many of its rows play it (periodicity >= 0.9, within 50 cents), judged after
    the note's first 60 ms; and what was heard, for the message."""
    right, heard = dict.fromkeys(f0s, 0), []
    for row, f0 in zip(codes, f0s):
        q = quality(mulaw_decode(row[1000:]), SR)
        right[f0] += bool(q.periodicity >= 0.9 and cents(q.pitch_hz, f0) < 50)
        heard.append((f0, round(q.periodicity, 2), round(q.pitch_hz, 1)))
    return right, heard


# Each pitch is asked of three rows (three sampling streams) and two must play it. A model this small,
# trained for seconds, does not learn every time: in scratch runs of exactly these tests over training
# seeds 0-63 (tags) and 0-31 (one tone), 4 of 64 and 2 of 32 seeds failed (a pitch played as noise,
# as silence or as the wrong note), so each test trains a second seed before it fails: both fail about 1
# time in 250.
SEEDS = (0, 1)


@pytest.mark.slow
def test_one_tone_is_generated_free_running_by_both_samplers():
    for seed in SEEDS:
        model = WaveNet(small_config(), seed=seed)  # the default input layer: the μ-law level
        assert model.config.input == "level" and model.receptive_field == RF
        train(model, [tone_codes(392.0)], seed=seed)
        heard = {}
        for method, n in [("fast", 8000), ("naive", 3000)]:
            codes = generate(model, n, batch=3, seed=1, method=method)  # from one silence code: nothing primed
            heard[method] = heard_right(codes, [392.0] * 3)
        if all(right[392.0] >= 2 for right, _ in heard.values()):
            return
    raise AssertionError(f"training seeds {SEEDS}: neither model plays G4 in 2 of 3 rows, last heard {heard}")


@pytest.mark.slow
def test_each_tag_generates_its_own_tone():
    tags = np.eye(2)  # tag 0: G4, tag 1: C5
    for seed in SEEDS:
        model = WaveNet(small_config(n_tags=2), seed=seed)
        train(model, [tone_codes(392.0), tone_codes(523.3)], tags=tags, seed=seed)
        codes = generate(model, 8000, batch=6, tags=np.tile(tags, (3, 1)), seed=2)
        right, heard = heard_right(codes, [392.0, 523.3] * 3)
        if right[392.0] >= 2 and right[523.3] >= 2:
            return
    raise AssertionError(f"training seeds {SEEDS}: neither model plays each tag's pitch, last heard {heard}")
