"""generate() with local conditioning: the fast sampler (projection at frame rate, indexed per sample)
against the naive one (model.forward on each window with its window of frames), code for code."""

import numpy as np
import pytest
from test_sampling import multi_hot, one_numba_thread, tiny_model  # noqa: F401  (the fixture is autouse)

from minwave import conditioning, fastgen
from minwave.backend import to_host
from minwave.sampling import generate

HOP = 8


def local_model(source, seed=1, **overrides):
    channels = conditioning.NOTE_CHANNELS if source == "notes" else 5
    model = tiny_model(seed=seed, condition=source, cond_channels=channels, cond_hop=HOP, **overrides)
    params = model.host_params()  # the upsampler off its identity start, so every tap matters
    params["cond.up.W"] = params["cond.up.W"] + 0.3 * np.random.default_rng(seed).standard_normal(
        params["cond.up.W"].shape
    )
    model.load_params(params)
    return model


def frames_for(source, n_samples, batch, seed=0):
    """(batch, F, C) frames covering n_samples: a random melody's piano roll, or random 'mel' frames."""
    rng = np.random.default_rng(seed)
    if source == "notes":
        rolls = []
        for _ in range(batch):
            t, notes = 0.0, []
            while t < n_samples / 16000:
                d = rng.uniform(0.5, 3) * HOP / 16000  # notes a few frames long
                # high keys: periods of 4 … 15 samples, some within the tiny models' period-tap reach
                notes.append(conditioning.Note(t, d, int(rng.integers(84, 109))))
                if rng.random() < 0.3:  # a chord: two periods in one frame
                    notes.append(conditioning.Note(t, d * rng.uniform(0.3, 1.5), int(rng.integers(84, 109))))
                t += d
            rolls.append(conditioning.piano_roll(notes, n_samples, HOP, 16000))
        return np.stack(rolls)
    return rng.standard_normal((batch, -(-n_samples // HOP), 5)).astype(np.float32)


CASES = [  # source, kernel_size, stacks, n_tags, prime length, batch, seed, period_taps
    ("notes", 2, 1, 0, 0, 1, 0, 1),
    ("notes", 3, 2, 3, 0, 3, 1, 1),
    ("notes", 2, 2, 3, 12, 3, 2, 1),
    ("notes", 3, 2, 3, 0, 3, 7, 3),  # lags of one, two and three periods (a reach of 30 samples)
    ("notes", 3, 2, 0, 12, 2, 8, 2),
    ("mel", 2, 1, 0, 0, 3, 3, 1),
    ("mel", 3, 2, 0, 5, 1, 4, 1),
    ("mel", 3, 1, 3, 40, 3, 5, 1),  # a prime longer than the receptive field
    ("mel", 2, 2, 3, 0, 3, 6, 1),
]


@pytest.mark.parametrize("source, k, stacks, n_tags, n_prime, batch, seed, taps", CASES)
def test_fast_equals_naive_with_local_conditioning(source, k, stacks, n_tags, n_prime, batch, seed, taps):
    model = local_model(source, seed=seed, kernel_size=k, stacks=stacks, n_tags=n_tags, period_taps=taps)
    tags = multi_hot(batch, n_tags, seed) if n_tags else None
    prime = np.random.default_rng(seed).integers(0, 32, (batch, n_prime)) if n_prime else None
    n = 120
    frames = frames_for(source, n, batch, seed)
    kw = dict(batch=batch, tags=tags, seed=seed, prime=prime, cond=frames)
    if source == "notes":  # the period tap reads some of these pitches, from one and from two at a time
        a, _, _, m = fastgen.period_slots(model.config, batch, frames)
        assert (a > 0).any() and a.shape[2] >= 2
        assert set(np.unique(m[a > 0]).tolist()) == set(range(taps))  # every lag read
    fast = generate(model, n, **kw)
    naive = generate(model, n, method="naive", **kw)
    np.testing.assert_array_equal(fast, naive)
    assert len(np.unique(fast)) > 5
    other = generate(model, n, **{**kw, "cond": frames_for(source, n, batch, seed + 50)})
    assert not np.array_equal(fast, other)  # the frames are used


@pytest.mark.parametrize(
    "source, input, taps",
    [("notes", "level", 1), ("notes", "embedding", 1), ("notes", "level", 3), ("mel", "level", 1)],
)
@pytest.mark.parametrize("offset", [0, 5, 2 * HOP + 3])
def test_teacher_forced_logits_equal_forward_with_local_conditioning(source, input, taps, offset):
    model = local_model(source, kernel_size=3, stacks=2, n_tags=2, input=input, period_taps=taps)
    B, T = 2, 3 * model.receptive_field + 7
    codes = np.random.default_rng(0).integers(0, 32, (B, T))
    tags = multi_hot(B, 2)
    frames = frames_for(source, offset + T + 1, B)
    expected = to_host(model.forward(codes, tags, frames, offset))
    got = fastgen.teacher_forced_logits(model, codes, tags, frames, offset)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_frames_broadcast_and_the_projection_is_per_frame():
    model = local_model("mel")
    frames = frames_for("mel", 64, 1)[0]  # (F, C)
    one = generate(model, 64, batch=2, cond=frames, seed=3)
    np.testing.assert_array_equal(one, generate(model, 64, batch=2, cond=np.stack([frames] * 2), seed=3))
    p = fastgen.pack(model.params, model.config, None, 2, np.stack([frames] * 2), first_sample=-1)
    L, D = model.config.n_layers, model.config.dilation_channels
    assert p.cond.shape == (2, 8 + 2, L * 2 * D)  # F + 2 context frames, L·2D per frame: not per sample
    assert p.cond_at.tolist() == [HOP, -1 + HOP]


def test_local_conditioning_arguments_are_checked():
    model = local_model("mel")
    frames = frames_for("mel", 64, 2)
    with pytest.raises(ValueError, match="conditioned on mel: pass cond"):
        generate(model, 64)
    with pytest.raises(ValueError, match="fewer than n_samples = 65; pass at least 9 frames"):
        generate(model, 65, batch=2, cond=frames)
    with pytest.raises(ValueError, match=r"cond must have shape \(F, 5\) or \(batch, F, 5\)"):
        generate(model, 64, batch=3, cond=frames)
    with pytest.raises(ValueError, match=r"cond must have shape"):
        generate(model, 64, batch=2, cond=frames[..., :4])
    bad = frames.copy()
    bad[0, 1, 2] = np.nan
    with pytest.raises(ValueError, match="cond must be finite"):
        generate(model, 64, batch=2, cond=bad)
    with pytest.raises(ValueError, match="no local conditioning: pass cond=None"):
        generate(tiny_model(), 64, cond=frames[0])
    with pytest.raises(ValueError, match="pass cond exactly for a locally conditioned model"):
        fastgen.teacher_forced_logits(model, np.zeros((1, 5), np.int64))


def test_both_samplers_from_a_device_model_with_frames():
    """The strict CuPy stand-in: the naive sampler moves each window of frames to the device explicitly,
    the fast one reads device weights and device frames; both give the NumPy model's codes."""
    from strict_xp import strict_backend

    from minwave import WaveNet

    ref = local_model("mel", n_tags=2)
    frames = frames_for("mel", 40, 2)
    tags = multi_hot(2, 2)
    expected = generate(ref, 40, batch=2, tags=tags, cond=frames, seed=4, method="naive")
    with strict_backend() as backend:
        m = WaveNet(ref.config, backend=backend)
        m.load_params(ref.host_params())
        naive = generate(
            m, 40, batch=2, tags=backend.asarray(tags), cond=backend.asarray(frames), seed=4, method="naive"
        )
        fast = generate(m, 40, batch=2, tags=tags, cond=backend.asarray(frames), seed=4)
    np.testing.assert_array_equal(naive, expected)
    np.testing.assert_array_equal(fast, expected)
