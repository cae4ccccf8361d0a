import numpy as np
import pytest

import minwave
from minwave import Adam, WaveNet, WaveNetConfig
from minwave.backend import to_host
from minwave.gradcheck import check_gradient


def tiny_config(**overrides):
    base = dict(
        stacks=1,
        layers_per_stack=3,
        kernel_size=2,
        residual_channels=4,
        dilation_channels=3,
        skip_channels=5,
        quantization_channels=8,
        n_tags=0,
    )
    base.update(overrides)
    return WaveNetConfig(**base)


def random_batch(model, T, B=2, seed=0):
    rng = np.random.default_rng(seed)
    x = model.backend.asarray(rng.integers(0, model.config.quantization_channels, (B, T)))
    tags = None
    if model.config.n_tags:
        tags = model.backend.asarray((rng.random((B, model.config.n_tags)) > 0.5).astype(np.float64))
    return x, tags


@pytest.mark.parametrize("input_layer", ["level", "embedding"])
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("stacks", [1, 2])
@pytest.mark.parametrize("n_tags", [0, 3])
def test_model_gradients_match_finite_differences(backend, k, stacks, n_tags, input_layer):
    cfg = tiny_config(kernel_size=k, stacks=stacks, n_tags=n_tags, input=input_layer)
    model = WaveNet(cfg, seed=1, dtype="float64", backend=backend)
    # biases start at zero; move them off it so their gradients are exercised in general position
    rng = np.random.default_rng(2)
    for name, p in model.params.items():
        if name.endswith((".b", ".b1", ".b2")):
            p += backend.asarray(0.1 * rng.standard_normal(p.shape))
    x, tags = random_batch(model, model.receptive_field + 6)
    loss, grads = model.loss_and_grads(x, tags)
    assert set(grads) == set(model.params)
    worst = []
    for name, p in model.params.items():
        assert grads[name].shape == p.shape
        # The loss is a mean over many positions, so some gradient entries are ~1e-6: there the
        # round-off of small eps and the O(eps²) curvature error of large eps both reach ~1e-6 relative.
        # eps = 3e-5 balances them; measured worst case 2.5e-7; a wrong backward shows up as 1e-2 and more.
        err = check_gradient(lambda: model.loss(x, tags), p, grads[name], eps=3e-5, max_entries=12)
        assert err < 1e-6, f"{name}: relative error {err:.2e}"
        worst.append(err)
    print(f"worst relative error {max(worst):.1e}")


def test_receptive_field_formula():
    assert WaveNetConfig().receptive_field == 2048  # 2 × (1 … 512), k = 2: 1 + 1 + 2·1023
    assert tiny_config().receptive_field == 1 + 1 + (1 + 2 + 4)
    assert tiny_config(kernel_size=3, stacks=2).receptive_field == 1 + 2 * (1 + 2 * 7)
    assert WaveNetConfig(stacks=3, layers_per_stack=10).dilations[-1] == 512


@pytest.mark.parametrize("input_layer", ["level", "embedding"])
@pytest.mark.parametrize("k,stacks", [(2, 1), (3, 1), (2, 2)])
def test_causality_and_exact_receptive_field(k, stacks, input_layer):
    model = WaveNet(tiny_config(kernel_size=k, stacks=stacks, input=input_layer), seed=3, dtype="float64")
    # positive head biases: with 5 skip channels every ReLU can be off at some position, and the
    # logits there are constant whatever the input (a dead head, not a causality fact)
    for name in ("skip.b", "head.b1"):
        model.params[name] = model.params[name] + 2.0
    rf = model.receptive_field
    T = rf + 12
    x, _ = random_batch(model, T, B=1)
    base = model.forward(x)
    for t in [0, 5, T // 2, T - 1]:
        x2 = x.copy()
        x2[:, t] = (x2[:, t] + 1) % model.config.quantization_channels
        changed = np.any(np.abs(model.forward(x2) - base) > 1e-12, axis=-1)[0]  # (T,)
        # logits[:, s] depend on x[:, s-RF+1 … s]: exactly positions s = t … t+RF-1 change
        expected = np.zeros(T, bool)
        expected[t : t + rf] = True
        np.testing.assert_array_equal(changed, expected)


def test_forward_shapes_and_dtype():
    model = WaveNet(tiny_config(), seed=0)
    x, _ = random_batch(model, 20, B=3)
    logits = model.forward(x)
    assert logits.shape == (3, 20, 8)
    assert logits.dtype == np.float32
    assert all(p.dtype == np.float32 for p in model.params.values())


def test_loss_positions_match_forward():
    model = WaveNet(tiny_config(), seed=0, dtype="float64")
    x, _ = random_batch(model, model.receptive_field + 9)
    logits = model.forward(x)
    rf = model.receptive_field
    lg = logits[:, rf - 1 : -1]
    targets = x[:, rf:]
    logp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
    expected = -np.take_along_axis(logp, targets[..., None], -1).mean()
    assert abs(model.loss(x) - expected) < 1e-12


def test_tags_change_the_output():
    model = WaveNet(tiny_config(n_tags=2), seed=0, dtype="float64")
    x, _ = random_batch(model, 16, B=1)
    a = model.forward(x, np.array([[1.0, 0.0]]))
    b = model.forward(x, np.array([[0.0, 1.0]]))
    assert np.abs(a - b).max() > 1e-3


def test_bad_inputs_are_rejected():
    model = WaveNet(tiny_config(), seed=0)
    rf = model.receptive_field
    with pytest.raises(ValueError, match="integer"):
        model.forward(np.zeros((1, 5)))
    with pytest.raises(ValueError, match="batch, time"):
        model.forward(np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match="codes must lie"):
        model.forward(np.full((1, 5), 8))
    with pytest.raises(ValueError, match="n_tags=0"):
        model.forward(np.zeros((1, 5), int), tags=np.zeros((1, 1)))
    with pytest.raises(ValueError, match="time >="):
        model.loss(np.zeros((1, rf), int))
    tagged = WaveNet(tiny_config(n_tags=2), seed=0)
    with pytest.raises(ValueError, match="conditioned"):
        tagged.forward(np.zeros((1, 5), int))
    with pytest.raises(ValueError, match="shape"):
        tagged.forward(np.zeros((1, 5), int), tags=np.zeros((2, 2)))


@pytest.mark.parametrize(
    "bad",
    [
        dict(kernel_size=1),
        dict(stacks=0),
        dict(residual_channels=2.5),
        dict(n_tags=-1),
        dict(quantization_channels=True),
        dict(input="onehot"),
    ],
)
def test_bad_config_is_rejected(bad):
    with pytest.raises(ValueError):
        tiny_config(**bad)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError):
        WaveNet(tiny_config(), dtype="float16")
    with pytest.raises(ValueError):
        WaveNet(tiny_config(), backend="tpu")
    with pytest.raises(TypeError):
        WaveNet({"stacks": 1})


def test_default_model_summary_and_counts():
    model = WaveNet()  # the default path: 2 × 10 layers, float32, NumPy
    assert model.config == WaveNetConfig()
    assert model.num_params() == sum(p.size for p in model.params.values())
    assert model.macs_per_sample() == 20 * 2 * 32 * 64 + 19 * 32 * 32 + 20 * 32 * 256 + 2 * 256 * 256
    text = model.summary()
    for needle in ["2048 samples", "128.0 ms", f"{model.num_params():,}", "dilations 1, 2, 4", "512"]:
        assert needle in text
    assert len(text.splitlines()) <= 24


def test_config_round_trip():
    cfg = tiny_config(n_tags=4)
    assert WaveNetConfig.from_dict(cfg.to_dict()) == cfg
    assert WaveNetConfig().input == "level"  # the default: chosen by free-running quality (docs/free_running.md)
    old = {k: v for k, v in cfg.to_dict().items() if k != "input"}  # a checkpoint from before the choice
    assert WaveNetConfig.from_dict(old).input == "embedding"
    with pytest.raises(ValueError, match="unknown"):
        WaveNetConfig.from_dict({**cfg.to_dict(), "colour": 1})


def test_same_seed_same_params_and_load_params():
    a, b = WaveNet(tiny_config(), seed=5), WaveNet(tiny_config(), seed=5)
    c = WaveNet(tiny_config(), seed=6)
    assert all(np.array_equal(a.params[n], b.params[n]) for n in a.params)
    assert not np.array_equal(a.params["skip.W"], c.params["skip.W"])
    c.load_params(a.host_params())
    assert all(np.array_equal(a.params[n], c.params[n]) for n in a.params)
    c.params["skip.W"] += 1.0  # loaded parameters are copies, not views of the source
    assert not np.array_equal(a.params["skip.W"], c.params["skip.W"])
    with pytest.raises(ValueError):
        c.load_params({"skip.W": a.params["skip.W"]})
    c.load_params({k: v.tolist() for k, v in a.host_params().items()})  # nested lists are arrays too
    with pytest.raises(TypeError, match="dict"):
        c.load_params([("skip.W", a.params["skip.W"])])


def test_adam_memorises_a_short_sequence():
    model = WaveNet(
        tiny_config(
            layers_per_stack=4,
            residual_channels=16,
            dilation_channels=16,
            skip_channels=32,
            quantization_channels=32,
        ),
        seed=0,
    )
    rng = np.random.default_rng(0)
    x = rng.integers(0, 32, (1, model.receptive_field + 64))
    opt = Adam(model.params, lr=3e-3, clip_norm=10.0)
    first = None
    for _ in range(300):
        loss, grads = model.loss_and_grads(x)
        first = loss if first is None else first
        opt.step(model.params, grads)
    assert first > 3.0  # ≈ ln 32 at the start
    assert model.loss(x) < 0.05


def test_deep_stack_trains_stably():
    """30 layers, default widths scaled down: a few Adam steps keep activations and loss finite and falling."""
    cfg = WaveNetConfig(
        stacks=3,
        layers_per_stack=10,
        residual_channels=8,
        dilation_channels=8,
        skip_channels=16,
        quantization_channels=16,
    )
    model = WaveNet(cfg, seed=0)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 16, (1, model.receptive_field + 200))
    x[:, ::2] = 3  # some structure to learn
    logits = model.forward(x)
    assert np.abs(logits).max() < 20  # no exploding activations at init
    opt = Adam(model.params, lr=1e-3, clip_norm=1.0)
    losses = []
    for _ in range(25):
        loss, grads = model.loss_and_grads(x)
        losses.append(loss)
        opt.step(model.params, grads)
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.3


@pytest.mark.gpu
def test_numpy_and_cupy_agree():
    cfg = tiny_config(stacks=2, kernel_size=3, n_tags=2)
    cpu = WaveNet(cfg, seed=0, backend="numpy")
    gpu = WaveNet(cfg, seed=0, backend="cupy")
    x, tags = random_batch(cpu, cpu.receptive_field + 30)
    tags = tags.astype(np.float32)
    loss_cpu, grads_cpu = cpu.loss_and_grads(x, tags)
    loss_gpu, grads_gpu = gpu.loss_and_grads(gpu.backend.asarray(x), gpu.backend.asarray(tags))
    assert abs(loss_cpu - loss_gpu) < 1e-5 * max(1.0, abs(loss_cpu))
    for name in grads_cpu:
        np.testing.assert_allclose(to_host(grads_gpu[name]), grads_cpu[name], rtol=2e-3, atol=2e-6, err_msg=name)


def test_public_api_exports():
    for name in ["WaveNet", "WaveNetConfig", "Adam", "mulaw_encode", "mulaw_decode", "get_backend"]:
        assert hasattr(minwave, name)


def test_training_pass_runs_each_layer_only_where_the_loss_needs_it():
    """first[l]: where layer l's input starts; the top layer's outputs start at the first loss position."""
    model = WaveNet()  # the default 2 × (1 … 512) network
    rf, k = model.receptive_field, model.config.kernel_size
    first = model._input_starts(rf - 1)
    assert first[-1] == rf - 1  # the skip sum and head: the loss positions only
    assert first[0] == k - 1  # the bottom layer reaches back to the start of x, never before it
    assert all(b - a == (k - 1) * d for a, b, d in zip(first, first[1:], model.dilations))
    assert model._input_starts(0) == [0] * (model.config.n_layers + 1)  # forward(): every position


@pytest.mark.parametrize("n_tags", [0, 3])
def test_float32_training_pass_matches_float64(n_tags):
    """The float32 path (fused kernels, in-place work) computes the float64 reference's loss and gradients."""
    cfg = tiny_config(stacks=2, kernel_size=3, n_tags=n_tags, residual_channels=8, dilation_channels=6)
    m32, m64 = WaveNet(cfg, seed=4, dtype="float32"), WaveNet(cfg, seed=4, dtype="float64")
    x, tags = random_batch(m64, m64.receptive_field + 40, B=3)
    loss32, grads32 = m32.loss_and_grads(x, tags)
    loss64, grads64 = m64.loss_and_grads(x, tags)
    assert abs(loss32 - loss64) < 1e-5 * abs(loss64)
    for name, g in grads64.items():
        assert grads32[name].dtype == np.float32
        np.testing.assert_allclose(grads32[name], g, rtol=1e-3, atol=1e-5 * np.abs(g).max(), err_msg=name)


def test_noisy_inputs_change_what_the_network_reads_not_the_targets():
    model = WaveNet(tiny_config(), seed=0, dtype="float64")
    x, _ = random_batch(model, model.receptive_field + 9)
    loss, grads = model.loss_and_grads(x)
    same, same_grads = model.loss_and_grads(x, inputs=x.copy())
    assert same == loss and all(np.array_equal(grads[k], same_grads[k]) for k in grads)
    shifted = np.clip(x + 1, 0, model.config.quantization_channels - 1)
    noisy, _ = model.loss_and_grads(x, inputs=shifted)
    logits = model.forward(shifted[:, :-1])[:, model.receptive_field - 1 :]  # what the network predicts …
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets = x[:, model.receptive_field :]  # … scored against the true codes
    assert abs(noisy + np.take_along_axis(logp, targets[..., None], -1).mean()) < 1e-12
    with pytest.raises(ValueError, match="shape"):
        model.loss_and_grads(x, inputs=x[:, 1:])
