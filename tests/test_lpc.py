"""The linear-prediction input (ops/lpc.py): its definition, written as a plain loop with a linear
solver; what it is for (a bell's partials predict themselves); its gradient; and the fast sampler
computing the same numbers one sample at a time."""

import numpy as np
import pytest
from test_local_sampling import frames_for, local_model
from test_sampling import multi_hot, one_numba_thread, tiny_model  # noqa: F401  (the fixture is autouse)

from minwave import fastgen, ops
from minwave.backend import to_host
from minwave.gradcheck import check_gradient
from minwave.model import WaveNet, WaveNetConfig
from minwave.mulaw import mulaw_compress, mulaw_expand
from minwave.ops.lpc import SILENCE, WHITE_NOISE, levinson, lpc_prediction
from minwave.sampling import generate
from minwave.synth import bell_note


def reference_prediction(levels, order, window, t_out):
    """e[b, t]: the autocorrelation of the window x_{t-window+1} … x_t summed pair by pair, the normal equations solved
    with numpy.linalg.solve, the prediction companded — one position at a time."""
    B, T = levels.shape
    x = np.concatenate([np.zeros((B, window + order)), mulaw_expand(levels, 256)], axis=1)  # x_i at [i + pad]
    pad = window + order
    e = np.zeros((B, t_out))
    for b in range(B):
        for i, t in enumerate(range(T - t_out, T)):
            seg = x[b, pad + t - window + 1 : pad + t + 1]  # the window
            c = np.array([seg[k:] @ seg[: window - k] for k in range(order + 1)])
            c[0] = c[0] * (1 + WHITE_NOISE) + SILENCE
            a = np.linalg.solve(c[np.abs(np.subtract.outer(np.arange(order), np.arange(order)))], c[1:])
            past = x[b, pad + t + 1 - np.arange(1, order + 1)]  # x_{t+1-j}, j = 1 … order
            e[b, i] = mulaw_compress(np.clip(a @ past, -1, 1), 256)
    return e


@pytest.mark.parametrize("order, window, t_out", [(4, 20, 60), (8, 9, 60), (1, 40, 1), (6, 30, 90)])
def test_the_prediction_is_its_definition(order, window, t_out):
    rng = np.random.default_rng(order + window)
    levels = np.sin(np.arange(90) * rng.uniform(0.1, 2.0, (2, 1))) * 0.7 + 0.05 * rng.standard_normal((2, 90))
    got = lpc_prediction(levels, order, window, 256, t_out)
    np.testing.assert_allclose(got, reference_prediction(levels, order, window, t_out), rtol=1e-9, atol=1e-9)
    W = rng.standard_normal((1, 3))
    out, e = ops.lpc_forward(levels, W, order, window, 256, t_out)
    np.testing.assert_allclose(out, e[..., None] * W[0], rtol=1e-12)
    dx0 = rng.standard_normal(out.shape)
    np.testing.assert_allclose(ops.lpc_backward(dx0, e), np.einsum("bt,btr->r", e, dx0)[None], rtol=1e-12)


def test_levinson_solves_the_toeplitz_system():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 200))
    c = np.stack([(x[:, k:] * x[:, : 200 - k]).sum(axis=1) for k in range(11)], axis=1)  # (3, 11)
    for b in range(3):
        toeplitz = c[b][np.abs(np.subtract.outer(np.arange(10), np.arange(10)))]
        np.testing.assert_allclose(levinson(c)[b], np.linalg.solve(toeplitz, c[b, 1:]), rtol=1e-10, atol=1e-12)


def test_a_bell_predicts_itself():
    """Two FM bells ringing at once (the built-in bell: partials f0 ± k · 1.4 f0, which one period back
    does not repeat): once the window is full, the prediction of order 32 from 512 samples misses the
    next level by more than 10 dB less than the level's own power (12.6 dB when written), where 'the last
    sample again' misses by less than 3 dB (0.5 dB)."""
    rate, rng = 16000, np.random.default_rng(0)
    x = 0.4 * bell_note(880.0, 0.5, rate, rng)[:6000]
    x[2000:] += 0.4 * bell_note(1174.7, 0.5, rate, rng)[:4000]  # a second strike while the first rings
    y = mulaw_compress(x, 256)[None]  # (1, T) the levels
    e = lpc_prediction(y, 32, 512, 256, y.shape[1])
    nxt, guess = y[0, 513:], e[0, 512:-1]  # position t predicts the level at t + 1
    power = np.mean(nxt**2)
    assert 10 * np.log10(np.mean((nxt - guess) ** 2) / power) < -10
    assert 10 * np.log10(np.mean((nxt - y[0, 512:-1]) ** 2) / power) > -3


def lpc_model(seed=0, **overrides):
    return tiny_model(seed=seed, lpc_order=3, lpc_window=12, **overrides)


def test_the_input_widens_the_receptive_field_and_is_checked():
    base = tiny_model(stacks=1)
    model = lpc_model(stacks=1)
    assert model.receptive_field == base.receptive_field + 11  # x_{t-window+1} … x_t: window - 1 further back
    assert "input.lpc.W" in model.params and "input.lpc.W" not in base.params
    assert "linear prediction" in model.summary()
    with pytest.raises(ValueError, match="lpc_window must exceed lpc_order"):
        WaveNetConfig(lpc_order=8, lpc_window=8)
    with pytest.raises(ValueError, match="lpc_order must be >= 0"):
        WaveNetConfig(lpc_order=-1)


def test_gradients_of_a_whole_model_with_the_input():
    model = WaveNet(WaveNetConfig(stacks=1, layers_per_stack=3, residual_channels=4, dilation_channels=4,
                                  skip_channels=8, quantization_channels=16, lpc_order=4, lpc_window=20),
                    seed=0, dtype="float64")  # fmt: skip
    rng = np.random.default_rng(0)
    x = np.clip(8 + np.round(6 * np.sin(np.arange(200) * 0.3)) + rng.integers(-1, 2, 200), 0, 15).astype(np.int64)[None]
    _, grads = model.loss_and_grads(x)
    for name in ("input.lpc.W", "input.W", "layers.0.dilated.W"):
        err = check_gradient(lambda: model.loss(x), model.params[name], grads[name], eps=3e-5, max_entries=12)
        assert err < 1e-6, f"{name}: relative error {err:.2e}"


@pytest.mark.parametrize("stacks, n_tags, n_prime, batch, seed", [(1, 0, 0, 1, 0), (2, 3, 12, 3, 1), (1, 3, 40, 2, 2)])
def test_fast_equals_naive_with_the_input(stacks, n_tags, n_prime, batch, seed):
    model = lpc_model(seed=seed, stacks=stacks, n_tags=n_tags)
    tags = multi_hot(batch, n_tags, seed) if n_tags else None
    prime = np.random.default_rng(seed).integers(0, 32, (batch, n_prime)) if n_prime else None
    kw = dict(batch=batch, tags=tags, seed=seed, prime=prime)
    fast = generate(model, 120, **kw)
    np.testing.assert_array_equal(fast, generate(model, 120, method="naive", **kw))
    assert len(np.unique(fast)) > 5
    params = model.host_params()
    params["input.lpc.W"] = params["input.lpc.W"] * 0
    model.load_params(params)
    assert not np.array_equal(fast, generate(model, 120, **kw))  # the input is used


def test_teacher_forced_logits_equal_forward_with_the_input_and_notes():
    model = local_model("notes", kernel_size=3, stacks=2, n_tags=2, lpc_order=5, lpc_window=30)
    B, T = 2, 3 * model.receptive_field + 7
    codes = np.random.default_rng(0).integers(0, 32, (B, T))
    tags = multi_hot(B, 2)
    frames = frames_for("notes", T + 1, B)
    expected = to_host(model.forward(codes, tags, frames))
    got = fastgen.teacher_forced_logits(model, codes, tags, frames)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_the_input_on_the_strict_cupy_stand_in():
    from strict_xp import strict_backend

    cfg = WaveNetConfig(stacks=1, layers_per_stack=2, residual_channels=4, dilation_channels=3, skip_channels=5,
                        quantization_channels=8, lpc_order=3, lpc_window=10)  # fmt: skip
    x = np.random.default_rng(0).integers(0, 8, (2, cfg.receptive_field + 30))
    ref_loss, ref_grads = WaveNet(cfg, seed=1, dtype="float64").loss_and_grads(x)
    with strict_backend() as backend:
        loss, grads = WaveNet(cfg, seed=1, dtype="float64", backend=backend).loss_and_grads(backend.asarray(x))
        assert abs(loss - ref_loss) < 1e-9
        np.testing.assert_allclose(to_host(grads["input.lpc.W"]), ref_grads["input.lpc.W"], rtol=1e-9, atol=1e-12)
