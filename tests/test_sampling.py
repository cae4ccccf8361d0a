"""minwave.generate: the fast (Numba queue) sampler against the naive one (model.forward per sample).

The naive sampler is the specification (STYLE rule 9): the fast one must return the same codes, and
its per-step logits must be model.forward's to float32 rounding.
"""

import json
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from minwave import WaveNet, WaveNetConfig, fastgen
from minwave.backend import to_host
from minwave.sampling import generate, inverse_cdf


@pytest.fixture(autouse=True)
def one_numba_thread():
    """The naive sampler calls model.forward once per sample on a few dozen positions: there the ops'
    threaded Numba kernels cost more per call than they save (and wait long on a busy machine)."""
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(threads)


def tiny_config(**overrides):
    base = dict(
        stacks=1,
        layers_per_stack=3,
        kernel_size=2,
        residual_channels=8,
        dilation_channels=8,
        skip_channels=16,
        quantization_channels=32,
        n_tags=0,
    )
    base.update(overrides)
    return WaveNetConfig(**base)


def tiny_model(seed=1, dtype="float32", backend="numpy", **overrides):
    """A tiny WaveNet with biases moved off zero (so that every bias is exercised)."""
    model = WaveNet(tiny_config(**overrides), seed=seed, dtype=dtype, backend=backend)
    rng = np.random.default_rng(seed + 100)
    params = model.host_params()
    for name in params:
        if name.endswith((".b", ".b1", ".b2")):
            params[name] = params[name] + 0.2 * rng.standard_normal(params[name].shape)
    model.load_params(params)
    return model


def multi_hot(batch, n_tags, seed=0):
    return (np.random.default_rng(seed).random((batch, n_tags)) > 0.5).astype(np.float64)


# ============================================================================ fast == naive
CASES = [  # kernel_size, stacks, n_tags, temperature, prime length, batch, seed
    (2, 1, 0, 1.0, 0, 1, 0),
    (2, 2, 0, 0.7, 0, 3, 1),
    (3, 1, 3, 1.0, 0, 3, 2),
    (3, 2, 0, 1.0, 12, 1, 3),
    (2, 2, 3, 0.7, 12, 3, 4),
    (3, 2, 3, 0.7, 5, 3, 5),
    (2, 1, 3, 1.0, 40, 1, 6),  # prime longer than the receptive field (RF = 8)
]


@pytest.mark.parametrize("input_layer", ["level", "embedding"])
@pytest.mark.parametrize("k, stacks, n_tags, temperature, n_prime, batch, seed", CASES)
def test_fast_equals_naive(k, stacks, n_tags, temperature, n_prime, batch, seed, input_layer):
    model = tiny_model(seed=seed, kernel_size=k, stacks=stacks, n_tags=n_tags, input=input_layer)
    tags = multi_hot(batch, n_tags, seed) if n_tags else None
    rng = np.random.default_rng(seed)
    prime = rng.integers(0, 32, (batch, n_prime)) if n_prime else None
    n = 120
    fast = generate(model, n, batch=batch, tags=tags, temperature=temperature, seed=seed, prime=prime)
    naive = generate(model, n, batch=batch, tags=tags, temperature=temperature, seed=seed, prime=prime, method="naive")
    assert fast.shape == (batch, n) and fast.dtype == np.int64
    np.testing.assert_array_equal(fast, naive)
    assert len(np.unique(fast)) > 5  # a real random walk over the classes, not a constant


def test_default_path():
    """generate(model, n) with every default: fast, batch 1, no prime, seed 0, temperature 1."""
    model = tiny_model()
    codes = generate(model, 200)
    assert codes.shape == (1, 200) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 32
    np.testing.assert_array_equal(codes, generate(model, 200))  # deterministic for a fixed seed
    np.testing.assert_array_equal(codes, generate(model, 200, method="naive"))
    assert not np.array_equal(codes, generate(model, 200, seed=1))
    fresh = generate(model, 50, seed=None)  # fresh randomness: any valid codes
    assert fresh.shape == (1, 50) and fresh.min() >= 0 and fresh.max() < 32


def test_streams_are_independent_and_prime_broadcasts():
    """Stream b of a batch depends only on its own uniforms u[b]; a (P,) prime is every stream's."""
    model = tiny_model(n_tags=2)
    prime = np.arange(10) % 32
    tags = np.array([1.0, 0.0])  # (G,): the same tags for every stream
    batch = generate(model, 100, batch=3, tags=tags, prime=prime, seed=7)
    again = generate(model, 100, batch=3, tags=np.tile(tags, (3, 1)), prime=np.tile(prime, (3, 1)), seed=7)
    np.testing.assert_array_equal(batch, again)
    assert not np.array_equal(batch[0], batch[1])  # different uniforms, different streams


# ============================================================================ the fast path's logits
@pytest.mark.parametrize("input_layer", ["level", "embedding"])
@pytest.mark.parametrize("k, stacks, n_tags", [(2, 1, 0), (3, 2, 3), (2, 2, 3)])
def test_teacher_forced_logits_equal_forward(k, stacks, n_tags, input_layer):
    """The queue algorithm over given codes reproduces model.forward, every position, to float32 rounding.

    T is several receptive fields, so every queue wraps around many times.
    """
    model = tiny_model(kernel_size=k, stacks=stacks, n_tags=n_tags, input=input_layer)
    B, T = 2, 4 * model.receptive_field + 7
    codes = np.random.default_rng(0).integers(0, 32, (B, T))
    tags = multi_hot(B, n_tags) if n_tags else None
    expected = to_host(model.forward(codes, tags))  # (B, T, Q)
    got = fastgen.teacher_forced_logits(model, codes, tags)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_teacher_forced_logits_on_generated_codes():
    """Per-step logits of a generated sequence (history + samples) match model.forward on it."""
    model = tiny_model(kernel_size=3, stacks=2)
    codes = generate(model, 120, batch=2, seed=3)
    seq = np.concatenate([np.full((2, 1), 16), codes], axis=1)  # the silence code, then the samples
    np.testing.assert_allclose(
        fastgen.teacher_forced_logits(model, seq), to_host(model.forward(seq)), rtol=1e-5, atol=1e-5
    )


def test_float64_and_default_size_model_logits():
    """A float64 model is sampled in float32; and the default-size network's logits (RF 2047) agree too."""
    model = WaveNet(WaveNetConfig(), seed=0)
    codes = np.random.default_rng(0).integers(0, 256, (1, 2100))
    np.testing.assert_allclose(fastgen.teacher_forced_logits(model, codes), model.forward(codes), rtol=1e-4, atol=1e-4)
    model64 = tiny_model(dtype="float64")
    np.testing.assert_array_equal(generate(model64, 100), generate(model64, 100, method="naive"))


# ============================================================================ temperature
def greedy(model, n, prime):
    """The argmax sequence, the slow and obvious way."""
    seq = list(prime)
    for _ in range(n):
        seq.append(int(np.argmax(to_host(model.forward(np.array([seq])))[0, -1])))
    return np.array(seq[len(prime) :])


@pytest.mark.parametrize("method", ["fast", "naive"])
def test_temperature_zero_is_argmax(method):
    model = tiny_model(stacks=2)
    prime = [3, 30, 7]
    expected = greedy(model, 40, prime)
    np.testing.assert_array_equal(generate(model, 40, temperature=0, prime=prime, method=method)[0], expected)
    # and the limit temperature -> 0 of the sampler is that same sequence
    np.testing.assert_array_equal(generate(model, 40, temperature=1e-6, prime=prime, method=method)[0], expected)
    # a temperature so small that logits / T overflows is that limit too, not all-zero codes
    np.testing.assert_array_equal(generate(model, 40, temperature=1e-320, prime=prime, method=method)[0], expected)


@pytest.mark.parametrize("method", ["fast", "naive"])
def test_model_forced_to_one_class_generates_it(method):
    model = tiny_model(n_tags=2)
    params = model.host_params()
    params["head.W2"] = np.zeros_like(params["head.W2"])
    params["head.b2"] = np.where(np.arange(32) == 11, 30.0, 0.0)  # p(11) = 1 - 31·e^-30
    model.load_params(params)
    codes = generate(model, 50, batch=2, tags=multi_hot(2, 2), seed=5, method=method)
    assert np.all(codes == 11)


def test_inverse_cdf_rule():
    """The rule on hand-made distributions: u picks the first class whose cumulative probability exceeds it."""
    logits = np.log(np.array([[0.1, 0.2, 0.3, 0.4]] * 5, dtype=np.float32))
    u = np.array([0.0, 0.05, 0.1001, 0.65, 0.9999])
    np.testing.assert_array_equal(inverse_cdf(logits, 1.0, u), [0, 0, 1, 3, 3])
    np.testing.assert_array_equal(inverse_cdf(logits, 0.0, u), [3] * 5)
    cdf = np.zeros(4)
    assert [fastgen.sample_code(logits[0], 1.0, x, cdf) for x in u] == [0, 0, 1, 3, 3]


# ============================================================================ chunks and progress
def test_chunking_does_not_change_the_result():
    """The compiled loop runs in chunks with the queues kept between them: any chunk size, same codes."""
    model = tiny_model(kernel_size=3, n_tags=2)
    rng = np.random.default_rng(0)
    history = rng.integers(0, 32, (2, 9))
    u = rng.random((2, 130))
    tags = multi_hot(2, 2)
    whole = fastgen.run(model, history, u, 0.9, tags)
    for chunk in (1, 7, 64):
        seen = []
        np.testing.assert_array_equal(fastgen.run(model, history, u, 0.9, tags, seen.append, chunk), whole)
        assert seen == sorted(seen) and seen[-1] == 130


@pytest.mark.parametrize("method", ["fast", "naive"])
def test_progress(method, capsys):
    model = tiny_model()
    calls = []
    codes = generate(model, 40, method=method, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (40, 40) and all(total == 40 for _, total in calls)
    np.testing.assert_array_equal(generate(model, 40, method=method, progress=True), codes)


# ============================================================================ arguments
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="fastest"), "method"),
        (dict(n_samples=0), "n_samples"),
        (dict(n_samples=-3), "n_samples"),
        (dict(n_samples=2.5), "n_samples"),
        (dict(batch=0), "batch"),
        (dict(temperature=-0.5), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(temperature=float("inf")), "temperature"),
        (dict(temperature="hot"), "temperature"),
        (dict(seed=-1), "seed"),
        (dict(seed=1.5), "seed"),
        (dict(tags=np.ones((1, 2))), "n_tags=0"),
        (dict(prime=np.array([1, 2, 99])), "prime codes"),
        (dict(prime=np.array([0.5, 1.0])), "integer"),
        (dict(prime=np.zeros((2, 4), dtype=int)), "prime must have shape"),
        (dict(prime=np.zeros(0, dtype=int)), "prime must have shape"),
        (dict(progress="yes"), "progress"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    model = tiny_model()
    kwargs = {"n_samples": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(model, kwargs.pop("n_samples"), **kwargs)


def test_bad_tags_raise_value_error():
    model = tiny_model(n_tags=3)
    with pytest.raises(ValueError, match="conditioned on 3 tags"):
        generate(model, 10)
    with pytest.raises(ValueError, match="tags must have shape"):
        generate(model, 10, batch=2, tags=np.ones((3, 3)))
    with pytest.raises(ValueError, match="tags must have shape"):
        generate(model, 10, tags=np.ones(2))
    with pytest.raises(TypeError, match="WaveNet"):
        generate("model.npz", 10)


# ============================================================================ other backends
def test_device_weights_are_moved_to_the_host():
    """A model on the strict CuPy stand-in: the fast path copies its weights to the host, the naive
    path runs on the 'device'; both give the NumPy model's codes."""
    strict_xp = pytest.importorskip("strict_xp")
    host_model = tiny_model(n_tags=2)
    tags = multi_hot(2, 2)
    expected = generate(host_model, 60, batch=2, tags=tags, temperature=0.8)
    with strict_xp.strict_backend() as backend:
        model = WaveNet(host_model.config, backend=backend)
        model.load_params(host_model.host_params())
        for method in ("fast", "naive"):
            codes = generate(model, 60, batch=2, tags=tags, temperature=0.8, method=method)
            assert isinstance(codes, np.ndarray)
            np.testing.assert_array_equal(codes, expected)


@pytest.mark.gpu
def test_cupy_model():
    host_model = tiny_model(stacks=2)
    model = WaveNet(host_model.config, backend="cupy")
    model.load_params(host_model.host_params())
    expected = generate(host_model, 80, batch=2)
    np.testing.assert_array_equal(generate(model, 80, batch=2), expected)
    np.testing.assert_array_equal(generate(model, 80, batch=2, method="naive"), expected)


# ============================================================================ the Numba cache
def test_second_process_loads_the_kernels_from_the_cache():
    """cache=True: a new process finds the compiled kernels on disk (this one has just written them)."""
    model = tiny_model()
    generate(model, 5)
    fastgen.teacher_forced_logits(model, np.zeros((1, 3), dtype=np.int64))
    script = textwrap.dedent("""
        import numpy as np
        from minwave import WaveNet, WaveNetConfig, fastgen
        from minwave.sampling import generate
        cfg = WaveNetConfig(stacks=1, layers_per_stack=3, residual_channels=8, dilation_channels=8,
                            skip_channels=16, quantization_channels=32)
        model = WaveNet(cfg)
        generate(model, 5)
        fastgen.teacher_forced_logits(model, np.zeros((1, 3), dtype=np.int64))
        misses = sum(sum(f.stats.cache_misses.values()) for f in (fastgen.sample_steps, fastgen.teacher_forced_steps))
        hits = sum(sum(f.stats.cache_hits.values()) for f in (fastgen.sample_steps, fastgen.teacher_forced_steps))
        print(hits, misses)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    hits, misses = map(int, out.stdout.split())
    assert (hits, misses) == (2, 0)


# ============================================================================ python -m minwave.bench
def test_bench_dispatcher(capsys, monkeypatch):
    from minwave.bench import __main__ as bench

    assert bench.main(["nope"]) == 2
    assert "unknown subcommand 'nope'" in capsys.readouterr().err
    monkeypatch.setitem(bench.SUBCOMMANDS, "missing", "a benchmark this checkout does not have")
    assert bench.main(["missing"]) == 2
    assert "minwave/bench/missing.py is missing" in capsys.readouterr().err


def test_bench_generate_measures_and_reports(tmp_path, monkeypatch):
    """The benchmark's measurements and report, in-process on a tiny network (the CLI runs the same
    code in a single-threaded worker process)."""
    from minwave.bench import generate as bench

    full_size = bench.sgemm_peak
    monkeypatch.setattr(bench, "sgemm_peak", lambda cpu=False: full_size(256, cpu))

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_config(n_tags=2).to_dict()))
    args = bench.parse_args(
        ["--config", str(config), "--seconds", "0.05", "--naive-seconds", "0.05", "--depths", "2-3", "--batch", "4"]
    )
    res = bench.run_worker(args)
    assert res["config"]["n_tags"] == 0 and res["fast_b1"] > res["naive_b1"] > 0
    assert 0 < res["traffic"]["read_bytes"] <= res["traffic"]["dense_bytes"]
    text = bench.report(res)
    for part in ("fast batch 1", "fast batch 4", "naive batch 1", "of the sgemm peak", "depth sweep"):
        assert part in text
    bench.plot_sweep(res["sweep"], 1, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0
