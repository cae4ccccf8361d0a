"""A WaveNet with local conditioning (notes or mel frames): whole-model gradients, causality in x, the
frames each position sees, windows cut by data.frame_window, argument checks, the strict stand-in."""

import dataclasses

import numpy as np
import pytest
from strict_xp import strict_backend
from test_model import tiny_config

from minwave import WaveNet, WaveNetConfig
from minwave.backend import to_host
from minwave.conditioning import NOTE_CHANNELS
from minwave.data import frame_window
from minwave.gradcheck import numerical_gradient, relative_error, sample_indices

HOP = 4
CHANNELS = {"notes": NOTE_CHANNELS, "mel": 3}


def local_config(**overrides):
    """test_model's tiny network, conditioned on 3 features per frame of HOP samples."""
    return tiny_config(**{"condition": "mel", "cond_channels": 3, "cond_hop": HOP, **overrides})


def random_inputs(model, T, B=2, seed=0, offset=0):
    """Codes (B, T), tags or None, and frames that cover samples offset … offset + T (B, F, C)."""
    rng = np.random.default_rng(seed)
    c = model.config
    x = rng.integers(0, c.quantization_channels, (B, T))
    tags = (rng.random((B, c.n_tags)) > 0.5).astype(np.float64) if c.n_tags else None
    shape = (B, (offset + T) // c.cond_hop + 1, c.cond_channels)
    if c.condition == "notes":  # some keys sounding (0 … 1) — the top ones within the period tap's reach — and onsets
        cond = rng.random(shape) * (rng.random(shape) < 0.2)
    else:
        cond = rng.standard_normal(shape)
    return x, tags, cond


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("n_tags", [0, 2])
@pytest.mark.parametrize("offset", [0, 3])
@pytest.mark.parametrize("condition, taps", [("mel", 1), ("notes", 1), ("notes", 2)])
def test_model_gradients_with_local_conditioning(backend, k, n_tags, offset, condition, taps):
    config = local_config(
        kernel_size=k, n_tags=n_tags, condition=condition, cond_channels=CHANNELS[condition], period_taps=taps
    )
    model = WaveNet(config, seed=1, dtype="float64", backend=backend)
    rng = np.random.default_rng(2)
    for name, p in model.params.items():  # off the initial zeros and identity: general position
        if name.endswith((".b", ".b1", ".b2")) or name == "cond.up.W":
            p += backend.asarray(0.1 * rng.standard_normal(p.shape))
    x, tags, cond = random_inputs(model, model.receptive_field + 9, offset=offset)
    x, cond = backend.asarray(x), backend.asarray(cond)
    tags = None if tags is None else backend.asarray(tags)
    loss, grads = model.loss_and_grads(x, tags, cond, offset)
    assert set(grads) == set(model.params)
    assert {"cond.up.W", "layers.0.cond.U", "layers.2.cond.U"} <= set(grads)
    assert ("input.tap.W" in grads) == (condition == "notes")  # the period tap
    if condition == "notes":  # one row per lag, each of them read
        assert model.params["input.tap.W"].shape[0] == taps and float(abs(grads["input.tap.W"]).min()) > 0
    for name, p in model.params.items():
        assert grads[name].shape == p.shape
        # A wrong backward shows up as 1e-2 and more; round-off reaches ~1e-6 here (measured worst 1.1e-6,
        # on dilated.W; a U entry of 2.5e-6 was off by 9e-12, moving with eps). Entries below 1e-5 are
        # compared absolutely (floor), the rest to 1e-5 relative. eps 1e-5, not test_model's 3e-5: with
        # 5 skip channels one ReLU input sat 2e-5 from its kink, and a step across it is no derivative.
        probe = sample_indices(p.size, 12)
        numeric = numerical_gradient(lambda: model.loss(x, tags, cond, offset), p, eps=1e-5, indices=probe)
        err = relative_error(grads[name], numeric, floor=1e-5)
        assert err < 1e-5, f"{name}: relative error {err:.2e}"


@pytest.mark.parametrize("condition", ["mel", "notes"])
def test_causality_in_x_is_unchanged(condition):
    """Changing x[t] moves logits t … t + RF - 1 and no others; with notes, the period tap's reach is
    part of RF (it moves those of them whose inputs look back a sounding note's period to t)."""
    model = WaveNet(
        local_config(kernel_size=3, condition=condition, cond_channels=CHANNELS[condition]), seed=3, dtype="float64"
    )
    for name in ("skip.b", "head.b1"):
        model.params[name] = model.params[name] + 2.0
    rf = model.receptive_field
    T = rf + 12
    x, _, cond = random_inputs(model, T, B=1)
    base = model.forward(x, cond=cond)
    for t in [0, 5, T // 2, T - 1]:
        x2 = x.copy()
        x2[:, t] = (x2[:, t] + 1) % model.config.quantization_channels
        changed = np.any(np.abs(model.forward(x2, cond=cond) - base) > 1e-12, axis=-1)[0]
        expected = np.zeros(T, bool)
        expected[t : t + rf] = True
        if condition == "mel":
            np.testing.assert_array_equal(changed, expected)
        else:
            assert changed[t] and not np.any(changed & ~expected)
            assert t + model.config.tap_reach >= T or changed[t + 1 : t + rf].sum() > rf - model.config.tap_reach


def test_each_position_sees_the_frame_of_the_sample_it_predicts_and_one_either_side():
    """logits[:, t] predicts sample offset + t + 1; changing frame f moves exactly the positions whose
    predicted sample lies in frames f-1, f, f+1 (the upsampler's look-back and look-ahead), and those
    after them that see the first layer's output through the layers above it."""
    model = WaveNet(local_config(), seed=4, dtype="float64")
    model.params["cond.up.W"] = model.params["cond.up.W"] + 0.3  # every tap in use
    for name in ("skip.b", "head.b1"):
        model.params[name] = model.params[name] + 2.0
    c = model.config
    reach = (c.kernel_size - 1) * sum(c.dilations[1:])  # the layers above the first one
    T, offset = 40, 2
    x, _, cond = random_inputs(model, T, B=1, offset=offset)
    base = model.forward(x, cond=cond, cond_offset=offset)
    for f in (0, 3, 7):
        cond2 = cond.copy()
        cond2[:, f] += 1.0
        changed = np.any(np.abs(model.forward(x, cond=cond2, cond_offset=offset) - base) > 1e-12, axis=-1)[0]
        predicted_frame = (offset + np.arange(T) + 1) // HOP  # (T,)
        direct = np.abs(predicted_frame - f) <= 1
        expected = np.zeros(T, bool)
        for t in np.flatnonzero(direct):
            expected[t : t + reach + 1] = True  # z_0 at t reaches the outputs t … t + reach
        np.testing.assert_array_equal(changed, expected)


@pytest.mark.parametrize("start", [0, 5, 13, -3])
def test_a_frame_window_gives_the_whole_clips_logits(start):
    """Conditioning a stretch of a clip by its frame_window equals conditioning it by the whole clip."""
    model = WaveNet(local_config(), seed=5, dtype="float64")
    model.params["cond.up.W"] = model.params["cond.up.W"] + 0.2
    rng = np.random.default_rng(6)
    n = 60
    clip = rng.integers(0, 8, n)
    frames = rng.standard_normal((-(-n // HOP), 3))
    # the whole clip, with a silence prefix of 8 samples: x[:, 0] is sample -8
    x_all = np.concatenate([np.full(8, 4), clip])[None]
    padded = np.concatenate([np.zeros((2, 3)), frames, np.zeros((2, 3))])[None]  # frames -2 …
    whole = model.forward(x_all, cond=padded, cond_offset=0)  # x_all[:, 0] is sample -8, frame -2 starts there
    T = 20
    x = x_all[:, start + 8 : start + 8 + T]
    window, offset = frame_window(frames, start, T + 1, HOP, model.config.cond_context)
    part = model.forward(x, cond=window[None], cond_offset=offset)
    # the part's own zero history differs from the whole clip's past: compare positions with a full RF
    rf = model.receptive_field
    np.testing.assert_allclose(part[:, rf - 1 :], whole[:, start + 8 + rf - 1 : start + 8 + T], rtol=1e-12)


def test_local_conditioning_arguments_are_checked():
    model = WaveNet(local_config(), seed=0)
    x, _, cond = random_inputs(model, 12, B=2)
    with pytest.raises(ValueError, match="conditioned on mel: pass cond"):
        model.forward(x)
    with pytest.raises(ValueError, match=r"cond must have shape .* \(2, F, 3\)"):
        model.forward(x, cond=cond[:, :, :2])
    with pytest.raises(ValueError, match=r"cond must have shape"):
        model.forward(x, cond=cond[:1])
    with pytest.raises(ValueError, match="too few for samples up to 12"):
        model.forward(x, cond=cond[:, :3])  # 3 frames of 4 cover samples 0 … 11
    model.forward(x, cond=cond[:, :4])  # 4 frames are enough
    with pytest.raises(ValueError, match="cond_offset must be an integer >= 0"):
        model.forward(x, cond=cond, cond_offset=-1)
    with pytest.raises(ValueError, match="cond_offset must be an integer >= 0"):
        model.forward(x, cond=cond, cond_offset=1.5)
    plain = WaveNet(local_config(condition="", cond_channels=0), seed=0)
    assert not any("cond" in name for name in plain.params)
    with pytest.raises(ValueError, match="no local conditioning: pass cond=None"):
        plain.forward(x, cond=cond)


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(condition="midi"), "condition must be"),
        (dict(condition="mel", cond_channels=0), "exactly when condition is set"),
        (dict(condition="", cond_channels=3), "exactly when condition is set"),
        (dict(condition="notes", cond_channels=3), "must be 176 for notes"),
        (dict(cond_hop=0), "cond_hop must be >= 1"),
        (dict(period_taps=0), "period_taps must be >= 1"),
        (dict(period_taps=2), "period_taps > 1 needs condition 'notes'"),  # a mel model has no period tap
    ],
)
def test_bad_local_config_is_rejected(overrides, match):
    with pytest.raises(ValueError, match=match):
        local_config(**overrides)


def test_config_round_trip_and_summary():
    cfg = local_config(condition="notes", cond_channels=176, cond_hop=256)
    assert WaveNetConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.cond_context == 1 and local_config(condition="", cond_channels=0).cond_context == 0
    text = WaveNet(cfg).summary()
    assert "local conditioning on notes: 176 channels per 256 samples" in text
    assert "period tap: the input one pitch period back" in text
    assert "the input 1 … 5 pitch periods back" in WaveNet(dataclasses.replace(cfg, period_taps=5)).summary()
    old = {k: v for k, v in cfg.to_dict().items() if k != "period_taps"}  # a checkpoint from before the field
    assert WaveNetConfig.from_dict(old).period_taps == 1


def test_upsampler_starts_as_an_exact_repeat():
    model = WaveNet(local_config(cond_channels=5), seed=0, dtype="float64")
    up = to_host(model.params["cond.up.W"])
    np.testing.assert_array_equal(up[1], np.eye(5))
    assert not up[0].any() and not up[2].any()


@pytest.mark.parametrize("condition, taps", [("mel", 1), ("notes", 1), ("notes", 2)])
def test_float32_matches_float64_and_strict_stand_in(condition, taps):
    config = local_config(n_tags=2, condition=condition, cond_channels=CHANNELS[condition], period_taps=taps)
    m64 = WaveNet(config, seed=7, dtype="float64")
    m32 = WaveNet(config, seed=7, dtype="float32")
    x, tags, cond = random_inputs(m64, m64.receptive_field + 10, offset=1)
    l64, g64 = m64.loss_and_grads(x, tags, cond, 1)
    l32, g32 = m32.loss_and_grads(x, tags, cond, 1)
    assert abs(l64 - l32) < 1e-5
    for name in g64:
        np.testing.assert_allclose(g32[name], g64[name], rtol=2e-3, atol=2e-5, err_msg=name)
    with strict_backend() as backend:
        ms = WaveNet(dataclasses.replace(m64.config), seed=7, dtype="float64", backend=backend)
        xs, ts, cs = (backend.asarray(a) for a in (x, tags, cond))
        ls, gs = ms.loss_and_grads(xs, ts, cs, 1)
        assert abs(ls - l64) < 1e-12
        for name in g64:
            np.testing.assert_allclose(to_host(gs[name]), g64[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_a_model_learns_what_only_the_frames_tell():
    """End to end: codes that change at every frame boundary to a value only the frame announces. Trained
    for a few seconds through LocalBatchSampler's rows and windows, the model predicts the boundaries
    from the frames; with the frames shifted by one (a misalignment) it cannot."""
    from minwave import Adam
    from minwave.data import Clip, LocalBatchSampler, local_validation_batches

    rng = np.random.default_rng(0)
    hop, n_clips, n_frames = 4, 6, 200
    clips, frames = [], []
    for i in range(n_clips):
        k = rng.integers(0, 4, n_frames)  # (F,) the value of each frame
        frames.append(np.eye(4, dtype=np.float32)[k])  # (F, 4) one-hot
        clips.append(Clip(f"c{i}.wav", np.repeat(2 * k, hop)))  # codes 0, 2, 4, 6, held for a frame
    model = WaveNet(local_config(cond_channels=4, cond_hop=hop), seed=0)
    ctx = model.config.cond_context
    sampler = LocalBatchSampler(clips, frames, hop, ctx, 0, 64, model.receptive_field, 8, quantization_channels=8)
    valid = local_validation_batches(clips, frames, hop, ctx, 0, 64, model.receptive_field, 8, 8)
    opt = Adam(model.params, lr=1e-2)
    for _ in range(150):
        x, _, cond = sampler.sample()
        opt.step(model.params, model.loss_and_grads(x, None, cond, sampler.cond_offset)[1])

    def bits(shift):
        return np.mean([model.loss(x, None, np.roll(c, shift, axis=1), sampler.cond_offset) for x, _, c in valid])

    # a boundary every 4 samples with 4 equally likely values: ln 4 / 4 = 0.35 nats without the frames
    assert bits(0) < 0.1 < 0.3 < bits(1), (bits(0), bits(1))
