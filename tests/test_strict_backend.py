"""The CuPy code path, checked without a GPU: the model runs on a strict stand-in for CuPy (strict_xp.py).

The stand-in's arrays refuse what cupy.ndarray refuses (implicit host conversion, host/device mixing,
NumPy functions on device arrays, …). The first half of this file proves that it does refuse them (a
stand-in that refused nothing would make the rest meaningless); the second half runs every part of the
training path on it and holds the results to the NumPy model's.
"""

import dataclasses

import numpy as np
import pytest
from strict_xp import STRICT, CupyIncompatible, StrictArray, strict, strict_backend

import minwave
from minwave import Adam, WaveNet, WaveNetConfig, checkpoint
from minwave.backend import array_module, backend_of, to_host
from minwave.gradcheck import check_gradient, numerical_gradient
from minwave.ops.gate import gate_backward_reference, gate_forward_reference
from minwave.sampling import generate


@pytest.fixture
def strict_be():
    """STRICT, registered with minwave.backend for the duration of one test."""
    with strict_backend() as b:
        yield b


def dev(a):
    """Host data -> a strict (device) array."""
    return strict.asarray(a)


# ============================================================================ the stand-in is strict
# What CuPy itself refuses (TypeError on a real GPU).
REFUSED_BY_CUPY = {
    "np.asarray": lambda a, i: np.asarray(a),
    "np.array": lambda a, i: np.array(a),
    "np.ascontiguousarray": lambda a, i: np.ascontiguousarray(a),
    "device + host": lambda a, i: a + np.ones(a.shape),
    "host + device": lambda a, i: np.ones(a.shape) + a,
    "device * host 0-d": lambda a, i: a * np.array(2.0),
    "device += host": lambda a, i: a.__iadd__(np.ones(a.shape)),
    "host += device": lambda a, i: np.ones(a.shape).__iadd__(a),
    "device @ host": lambda a, i: a @ np.ones((4, 2)),
    "host @ device": lambda a, i: np.ones(3) @ a,
    "ufunc(device, host)": lambda a, i: np.maximum(a, np.zeros(a.shape)),
    "device + list": lambda a, i: a + [1.0, 2.0, 3.0, 4.0],
    "ufunc where=": lambda a, i: np.add(a, 1.0, where=a > 0),
    "xp.exp(host)": lambda a, i: strict.exp(np.ones(3)),
    "xp.clip(device, host, 1)": lambda a, i: strict.clip(a, np.zeros(a.shape), 1.0),
    "float(vector)": lambda a, i: float(a),
    "scatter_add(int64 target)": lambda a, i: STRICT.scatter_add(dev(np.zeros(3, np.int64)), dev([0, 0]), 1),
}
# What CuPy may accept (an implicit host->device copy, a host computation, NumPy dispatch, an undefined
# winner) but minwave must not rely on: refused here so that the GPU path is explicit and deterministic.
REFUSED_HERE = {
    "np.concatenate": lambda a, i: np.concatenate([a, a]),
    "np.sum": lambda a, i: np.sum(a),
    "np.zeros_like": lambda a, i: np.zeros_like(a),
    "np.tensordot": lambda a, i: np.tensordot(a, a, 1),
    "np.where": lambda a, i: np.where(a > 0, a, 0.0),
    "np.add.at": lambda a, i: np.add.at(a, i, 1.0),
    "np.add.at (host index)": lambda a, i: np.add.at(a, np.array([0, 1]), 1.0),
    "a[host idx]": lambda a, i: a[np.array([0, 1])],
    "a[list idx]": lambda a, i: a[[0, 1]],
    "a[device, host]": lambda a, i: a[i, np.array([0, 1, 2])],
    "a[...] = host": lambda a, i: a.__setitem__(Ellipsis, np.zeros(a.shape)),
    "a[0, 0] = host 0-d": lambda a, i: a.__setitem__((0, 0), np.array(1.0)),
    "a[host idx] = 1": lambda a, i: a.__setitem__(np.array([0, 1]), 1.0),
    "a.fill(host)": lambda a, i: a.fill(np.array(1.0)),
    "a[repeated idx] = rows": lambda a, i: a.__setitem__(dev([0, 1, 0]), a[:3] + 1.0),
    "a[repeated (row, col)] -= v": lambda a, i: a.__setitem__((dev([0, 0]), dev([1, -3])), a[:2, 0] - 1.0),
    "xp.sum(host)": lambda a, i: strict.sum(np.ones(3)),
    "xp.zeros_like(host)": lambda a, i: strict.zeros_like(np.ones(3)),
    "xp.concatenate([device, host])": lambda a, i: strict.concatenate([a, np.ones(a.shape)]),
    "scatter_add(host idx)": lambda a, i: STRICT.scatter_add(a, np.array([0, 1]), 1.0),
    "scatter_add(host values)": lambda a, i: STRICT.scatter_add(a, i, np.ones((3, 4))),
}
FORBIDDEN = {**REFUSED_BY_CUPY, **REFUSED_HERE}


@pytest.mark.parametrize("op", list(FORBIDDEN), ids=list(FORBIDDEN))
def test_stand_in_refuses_what_cupy_refuses(strict_be, op):
    a = dev(np.arange(12.0).reshape(3, 4))  # (3, 4)
    i = dev(np.array([0, 2, 1]))  # a device index array, distinct entries
    with pytest.raises(CupyIncompatible):  # a TypeError, as CuPy raises
        FORBIDDEN[op](a, i)


def test_stand_in_refusals_name_the_problem(strict_be):
    a = dev(np.arange(3.0))
    with pytest.raises(CupyIncompatible, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(a)
    with pytest.raises(CupyIncompatible, match=r"xp\.concatenate"):
        np.concatenate([a, a])
    with pytest.raises(CupyIncompatible, match="xp.asarray"):
        a + np.ones(3)
    with pytest.raises(CupyIncompatible, match="scatter_add"):
        a[dev([0, 0])] = a[:2]
    a[dev([0, 0])] = a[2]  # one value to a repeated target is well defined: allowed


def test_stand_in_allows_what_cupy_allows(strict_be):
    host = np.arange(12.0).reshape(3, 4)
    a = dev(host)
    assert isinstance(a, StrictArray) and not isinstance(a, np.ndarray)  # like cupy.ndarray
    host[0, 0] = 99.0  # asarray copied: the "device" does not alias host memory
    assert float(a[0, 0]) == 0.0
    # arithmetic with device arrays, Python scalars and NumPy scalars; NumPy ufuncs dispatch
    for r in (a + 1, 2.0 * a, a * np.float32(2), a / np.float64(3), -a, a**2, a @ a.T, np.exp(a), np.maximum(a, 0)):
        assert isinstance(r, StrictArray)
    assert (a @ a.T).shape == (3, 3)
    # reductions are 0-d device arrays (CuPy never returns a Python scalar); float()/int()/.item() sync
    for r in (a.sum(), a.max(), a.min(), a.mean(), strict.sum(a), strict.log1p(255)):
        assert isinstance(r, StrictArray) and r.shape == ()
    assert float(a.sum()) == 66.0 and int(a.max()) == 11 and a[1, 2].item() == 6.0
    assert f"{a.mean():.2f}" == "5.50"
    assert a.sum(axis=0).shape == (4,) and a.astype(np.float32).dtype == np.float32
    # views share memory, in place
    v = a[:, 1:]  # (3, 3)
    v += 100.0
    a[:, 0] = a[:, 1]
    a.reshape(-1)[0] = -1.0
    expected = np.arange(12.0).reshape(3, 4)
    expected[:, 1:] += 100.0
    expected[:, 0] = expected[:, 1]
    expected[0, 0] = -1.0
    np.testing.assert_array_equal(to_host(a), expected)
    # device index arrays; a 0-d device value; explicit host copies
    idx = dev(np.array([2, 0]))
    np.testing.assert_array_equal(to_host(a[idx]), expected[[2, 0]])
    a[idx, idx] = a[0, 0]
    assert type(to_host(a)) is np.ndarray and type(a.get()) is np.ndarray
    assert backend_of(a) is STRICT and array_module(a) is strict


def test_stand_in_scatter_add_accumulates_and_empty_is_poisoned(strict_be):
    target = strict.zeros((3, 2))
    STRICT.scatter_add(target, dev(np.array([0, 2, 0])), strict.ones((3, 2)))
    np.testing.assert_array_equal(to_host(target), [[2, 2], [0, 0], [1, 1]])
    # device memory is not zeroed: code that reads xp.empty before writing it must fail here
    assert np.isnan(to_host(strict.empty((2, 2)))).all()
    assert np.isnan(to_host(strict.empty_like(target))).all()


# ============================================================================ the model on the stand-in
def tiny_config():
    return WaveNetConfig(
        stacks=2,
        layers_per_stack=2,
        kernel_size=3,
        residual_channels=4,
        dilation_channels=3,
        skip_channels=5,
        quantization_channels=8,
        n_tags=2,
    )


def host_batch(config, T, B=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, config.quantization_channels, (B, T))  # (B, T) int64 codes
    tags = (rng.random((B, config.n_tags)) > 0.5).astype(np.float64)  # (B, G)
    return x, tags


@pytest.fixture
def models(strict_be):
    """(strict model, NumPy model): same config, seed, float64; biases moved off zero identically."""
    cfg = tiny_config()
    on_strict = WaveNet(cfg, seed=1, dtype="float64", backend=strict_be)
    on_numpy = WaveNet(cfg, seed=1, dtype="float64", backend="numpy")
    rng = np.random.default_rng(2)
    for name in on_numpy.params:
        if name.endswith((".b", ".b1", ".b2")):
            shift = 0.1 * rng.standard_normal(on_numpy.params[name].shape)
            on_numpy.params[name] += shift
            on_strict.params[name] += strict_be.asarray(shift)
    return on_strict, on_numpy


def assert_close(device_value, host_value, tol=1e-9):
    np.testing.assert_allclose(to_host(device_value), host_value, rtol=tol, atol=tol)


def test_parameters_live_on_the_strict_backend(models):
    m, ref = models
    assert all(isinstance(p, StrictArray) and p.dtype == np.float64 for p in m.params.values())
    host = m.host_params()
    assert set(host) == set(ref.params)
    for name, p in host.items():
        assert type(p) is np.ndarray
        np.testing.assert_array_equal(p, ref.params[name])
    assert m.num_params() == ref.num_params() and "strict/float64" in m.summary()


def test_forward_matches_numpy_for_device_and_host_inputs(models, strict_be):
    m, ref = models
    x, tags = host_batch(m.config, T=m.receptive_field + 4)
    expected = ref.forward(x, tags)  # (B, T, Q)
    on_device = m.forward(strict_be.asarray(x), strict_be.asarray(tags))
    assert isinstance(on_device, StrictArray) and on_device.shape == expected.shape
    assert_close(on_device, expected)
    assert_close(m.forward(x, tags), expected)  # host inputs: _check_inputs moves them with xp.asarray


def test_loss_and_grads_match_numpy(models, strict_be):
    m, ref = models
    x, tags = host_batch(m.config, T=m.receptive_field + 6)
    loss, grads = m.loss_and_grads(strict_be.asarray(x), strict_be.asarray(tags))
    ref_loss, ref_grads = ref.loss_and_grads(x, tags)
    assert type(loss) is float and abs(loss - ref_loss) < 1e-9
    device_loss = m.loss(strict_be.asarray(x), strict_be.asarray(tags))
    assert type(device_loss) is float and abs(device_loss - ref_loss) < 1e-9
    assert set(grads) == set(ref_grads)
    for name, g in grads.items():
        assert isinstance(g, StrictArray) and g.shape == ref_grads[name].shape, name
        assert_close(g, ref_grads[name])


def test_adam_with_clipping_and_its_state_round_trip(models, strict_be):
    m, ref = models
    x, tags = host_batch(m.config, T=m.receptive_field + 6)
    opt = Adam(m.params, lr=1e-2, clip_norm=0.05)  # a small clip norm: the clipping branch runs
    ref_opt = Adam(ref.params, lr=1e-2, clip_norm=0.05)
    for _ in range(3):
        _, grads = m.loss_and_grads(strict_be.asarray(x), strict_be.asarray(tags))
        norm = opt.step(m.params, grads)
        ref_norm = ref_opt.step(ref.params, ref.loss_and_grads(x, tags)[1])
        assert type(norm) is float and norm > 0.05 and abs(norm - ref_norm) < 1e-9 * ref_norm
    for name, p in m.params.items():
        assert isinstance(p, StrictArray)
        assert_close(p, ref.params[name])

    state = opt.state_dict()
    assert all(type(v) is np.ndarray for v in state.values()) and int(state["t"]) == 3
    for key, value in ref_opt.state_dict().items():
        np.testing.assert_allclose(state[key], value, rtol=1e-9, atol=1e-12)
    # restore host state into a fresh optimizer over device parameters, then both take one more step
    restored = Adam(m.params, lr=1e-2, clip_norm=0.05)
    restored.load_state_dict(ref_opt.state_dict())
    assert all(isinstance(v, StrictArray) for v in restored.m.values()) and restored.t == 3
    restored.step(m.params, m.loss_and_grads(strict_be.asarray(x), strict_be.asarray(tags))[1])
    ref_opt.step(ref.params, ref.loss_and_grads(x, tags)[1])
    for name, p in m.params.items():
        assert_close(p, ref.params[name])


def test_load_params_from_host_and_device(models, strict_be):
    m, ref = models
    fresh = WaveNet(m.config, seed=7, dtype="float64", backend=strict_be)
    fresh.load_params(ref.params)  # host arrays
    assert all(isinstance(p, StrictArray) for p in fresh.params.values())
    other = WaveNet(m.config, seed=7, dtype="float32", backend=strict_be)
    other.load_params(m.params)  # device arrays, and a dtype change
    for name, p in other.params.items():
        assert isinstance(p, StrictArray) and p.dtype == np.float32
        assert_close(p, ref.params[name], tol=1e-6)
        assert_close(fresh.params[name], ref.params[name])


def test_checkpoint_save_and_load_on_the_strict_backend(models, strict_be, tmp_path):
    m, ref = models
    x, tags = host_batch(m.config, T=m.receptive_field + 6)
    opt = Adam(m.params, clip_norm=1.0)
    opt.step(m.params, m.loss_and_grads(strict_be.asarray(x), strict_be.asarray(tags))[1])
    path = checkpoint.save(tmp_path / "checkpoint.npz", m, opt, step=1, tag_vocab=["a", "b"])
    ckpt = checkpoint.load(path, backend=strict_be)
    assert all(isinstance(p, StrictArray) for p in ckpt.model.params.values())
    for name, p in ckpt.model.params.items():
        assert_close(p, to_host(m.params[name]), tol=0)
    resumed = Adam(ckpt.model.params, clip_norm=1.0)
    resumed.load_state_dict(ckpt.optimizer_state)
    assert resumed.t == 1


def test_mulaw_on_device_arrays(strict_be):
    audio = np.linspace(-1.2, 1.2, 101)  # includes out-of-range samples: clipped
    codes = minwave.mulaw_encode(dev(audio))
    assert isinstance(codes, StrictArray) and codes.dtype == np.int64
    np.testing.assert_array_equal(to_host(codes), minwave.mulaw_encode(audio))
    decoded = minwave.mulaw_decode(codes)
    assert isinstance(decoded, StrictArray)
    np.testing.assert_allclose(to_host(decoded), minwave.mulaw_decode(minwave.mulaw_encode(audio)), rtol=1e-12)
    for q in (2, 256):
        c = minwave.mulaw_encode(dev(audio.astype(np.float32)), q)
        np.testing.assert_array_equal(to_host(c), minwave.mulaw_encode(audio.astype(np.float32), q))


def test_gradient_checks_run_on_device_parameters(models, strict_be):
    m, ref = models
    x, tags = host_batch(m.config, T=m.receptive_field + 6)
    dx, dtags = strict_be.asarray(x), strict_be.asarray(tags)
    _, grads = m.loss_and_grads(dx, dtags)
    for name in ("layers.1.dilated.W", "layers.2.cond.V", "input.W", "head.b2"):
        err = check_gradient(lambda: m.loss(dx, dtags), m.params[name], grads[name], eps=3e-5, max_entries=3)
        assert err < 1e-6, f"{name}: relative error {err:.2e}"
    # the finite differences themselves agree with the NumPy model's, entry for entry
    indices = [0, 5, 17]
    on_device = numerical_gradient(lambda: m.loss(dx, dtags), m.params["skip.W"], indices=indices)
    on_host = numerical_gradient(lambda: ref.loss(x, tags), ref.params["skip.W"], indices=indices)
    assert type(on_device) is np.ndarray
    np.testing.assert_allclose(on_device.reshape(-1)[indices], on_host.reshape(-1)[indices], rtol=1e-7)


def test_float32_model_stays_float32_on_device(strict_be):
    """The training dtype: nothing on the hot path may promote to float64 (STYLE rule 8)."""
    m = WaveNet(tiny_config(), seed=1, dtype="float32", backend=strict_be)
    ref = WaveNet(tiny_config(), seed=1, dtype="float32", backend="numpy")
    x, tags = host_batch(m.config, T=m.receptive_field + 6)
    assert m.forward(strict_be.asarray(x), strict_be.asarray(tags)).dtype == np.float32
    loss, grads = m.loss_and_grads(strict_be.asarray(x), strict_be.asarray(tags))
    assert abs(loss - ref.loss(x, tags)) < 1e-5
    assert all(g.dtype == np.float32 for g in grads.values())
    opt = Adam(m.params, clip_norm=0.05)
    opt.step(m.params, grads)
    assert all(p.dtype == np.float32 for p in m.params.values())
    assert all(v.dtype == np.float32 for v in [*opt.m.values(), *opt.v.values()])


# ============================================================================ sampling on the stand-in
@pytest.mark.parametrize("temperature", [0.8, 0.0])
def test_naive_and_fast_samplers_on_device_model(models, strict_be, temperature):
    """generate() from a model whose weights are on the device: the naive sampler runs model.forward on
    device arrays, the fast one copies the weights to the host; both must give the NumPy model's codes."""
    m, ref = models
    tags = np.array([[1.0, 0.0], [0.0, 1.0]])  # (B, G)
    prime = np.array([[1, 2, 3], [4, 5, 6]])  # (B, P)
    kwargs = dict(batch=2, temperature=temperature, seed=3)
    expected = generate(ref, 30, tags=tags, prime=prime, method="naive", **kwargs)  # (B, n)
    naive = generate(m, 30, tags=strict_be.asarray(tags), prime=strict_be.asarray(prime), method="naive", **kwargs)
    assert type(naive) is np.ndarray and naive.dtype == np.int64  # host codes: callers may np.asarray them
    np.testing.assert_array_equal(naive, expected)
    fast = generate(m, 30, tags=tags, prime=prime, method="fast", **kwargs)
    np.testing.assert_array_equal(fast, expected)


# ============================================================================ CuPy's fused gate kernels
def test_elementwise_kernel_stand_in_is_strict(strict_be):
    kernel = strict.ElementwiseKernel("T x, T y", "T z", "z = x * (T)2 + y", "axpy")
    x, y = dev(np.arange(3.0)), dev(np.ones(3))
    np.testing.assert_array_equal(to_host(kernel(x, y)), [1.0, 3.0, 5.0])
    out = strict.zeros((2, 3))
    kernel(x, y, out[1])  # an output view is written in place
    np.testing.assert_array_equal(to_host(out), [[0, 0, 0], [1, 3, 5]])
    with pytest.raises(TypeError, match="mismatched"):
        kernel(x, y.astype(np.float32))
    with pytest.raises(CupyIncompatible):
        kernel(x, np.ones(3))
    with pytest.raises(TypeError, match="number of arguments"):
        kernel(x)
    with pytest.raises(NotImplementedError):
        strict.ElementwiseKernel("T x", "T z", "z = x > 0 ? x : 0", "relu")


def cupy_fused_gate():
    """The CuPy strict_be's fused gate kernels (minwave.backend), built on the stand-in instead of CuPy."""
    from minwave.backend import _cupy_fused_gate

    return _cupy_fused_gate(strict)


def test_cupy_fused_gate_matches_the_reference(strict_be):
    fused_forward, fused_backward = cupy_fused_gate()
    rng = np.random.default_rng(0)
    pre = dev(rng.standard_normal((2, 5, 6)).astype(np.float32))  # (B, T, 2D)
    dz = dev(rng.standard_normal((2, 5, 3)).astype(np.float32))  # (B, T, D)
    z, (t, s) = fused_forward(pre)
    z_ref, (t_ref, s_ref) = gate_forward_reference(pre)
    for got, want in ((z, z_ref), (t, t_ref), (s, s_ref)):
        assert isinstance(got, StrictArray) and got.dtype == np.float32
        np.testing.assert_allclose(to_host(got), to_host(want), rtol=1e-6, atol=1e-7)
    dpre = fused_backward(dz, t, s)
    assert dpre.shape == pre.shape and dpre.dtype == np.float32
    want = gate_backward_reference(dz, (t_ref, s_ref))
    np.testing.assert_allclose(to_host(dpre), to_host(want), rtol=1e-6, atol=1e-7)


def test_float32_model_with_the_cupy_fused_gate():
    """The CuPy strict_be's training configuration: float32 with the fused gate, against NumPy's model."""
    fused_forward, fused_backward = cupy_fused_gate()
    fused = dataclasses.replace(STRICT, fused_gate_forward=fused_forward, fused_gate_backward=fused_backward)
    ref = WaveNet(tiny_config(), seed=1, dtype="float32", backend="numpy")
    x, tags = host_batch(ref.config, T=ref.receptive_field + 6)
    ref_loss, ref_grads = ref.loss_and_grads(x, tags)
    with strict_backend(fused):  # registered instead of STRICT: backend_of() must find the fused variant
        m = WaveNet(tiny_config(), seed=1, dtype="float32", backend=fused)
        assert backend_of(m.params["input.W"]) is fused
        loss, grads = m.loss_and_grads(fused.asarray(x), fused.asarray(tags))
        assert abs(loss - ref_loss) < 1e-5
        for name, g in grads.items():
            assert g.dtype == np.float32, name
            np.testing.assert_allclose(to_host(g), ref_grads[name], rtol=1e-3, atol=1e-5, err_msg=name)


# ============================================================================ `train --gpu` on the stand-in
def test_train_with_gpu_flag_runs_and_resumes_on_the_stand_in(tmp_path, monkeypatch, capsys):
    """python -m minwave.train --gpu, with CuPy replaced by the stand-in: batches to the device, steps,
    validation, checkpoints, generated samples, then --resume from the checkpoint onto the device."""
    import soundfile as sf

    from minwave.cli import train

    real_get_backend = train.get_backend
    monkeypatch.setattr(train, "get_backend", lambda name: STRICT if name == "cupy" else real_get_backend(name))
    data = tmp_path / "data"
    for tag, f0 in (("low", 220.0), ("high", 440.0)):
        (data / tag).mkdir(parents=True)
        for i in range(2):  # 0.3 s tones, two files per tag
            t = np.arange(4800) / 16000
            sf.write(data / tag / f"{i}.wav", 0.5 * np.sin(2 * np.pi * f0 * (1 + 0.1 * i) * t), 16000)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(
        '{"stacks": 1, "layers_per_stack": 3, "residual_channels": 4, "dilation_channels": 4, "skip_channels": 8,'
        ' "quantization_channels": 32, "batch_size": 2, "segment": 64, "log_every": 1, "eval_every": 2,'
        ' "checkpoint_every": 2, "sample_seconds": 0.01}'
    )
    run_dir = tmp_path / "run"
    common = ["--data", data, "--config", cfg, "--out", run_dir, "--gpu", "--valid-fraction", "0.25"]
    with strict_backend():
        assert train.main([str(a) for a in [*common, "--steps", "2"]]) == 0
        assert train.main([str(a) for a in [*common, "--steps", "4", "--resume"]]) == 0
    out = capsys.readouterr().out
    assert "strict" in out  # the run said which backend it trained on
    ckpt = checkpoint.load(run_dir)  # back on the host
    assert ckpt.step == 4 and all(np.isfinite(p).all() for p in ckpt.model.host_params().values())
    assert list((run_dir / "samples").glob("*.wav"))
