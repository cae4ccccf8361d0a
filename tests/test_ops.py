"""Every op's backward against central finite differences in float64 (max relative error < 1e-6).

Each check uses the scalar f = Σ out ⊙ R for a fixed random R, whose gradient w.r.t. out is R.
"""

import numpy as np
import pytest

from minwave import ops
from minwave.backend import to_host
from minwave.gradcheck import check_gradient

TOL = 1e-6


def rand(backend, rng, *shape):
    return backend.asarray(rng.standard_normal(shape))


def check_op(forward, backward, inputs, names, backend, rng, max_entries=60):
    """Gradcheck the inputs of `forward(*inputs)` named in `names` (None marks a constant input).

    `backward` returns one gradient per named input, in order.
    """
    out, cache = forward(*inputs)
    R = rand(backend, rng, *out.shape)
    grads = backward(R, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    xp = backend.xp

    def f():
        return xp.sum(forward(*inputs)[0] * R)

    named = [(name, x) for name, x in zip(names, inputs) if name is not None]
    assert len(grads) == len(named)
    for (name, x), grad in zip(named, grads):
        assert grad.shape == x.shape, name
        err = check_gradient(f, x, grad, max_entries=max_entries)
        assert err < TOL, f"{name}: relative error {err:.2e}"


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("dilation", [1, 2, 4])
@pytest.mark.parametrize("shape", [(2, 11, 3, 4), (1, 7, 5, 2)])
def test_causal_conv(backend, k, dilation, shape):
    B, T, C_in, C_out = shape
    rng = np.random.default_rng(k * 10 + dilation)
    x, W, b = rand(backend, rng, B, T, C_in), rand(backend, rng, k, C_in, C_out), rand(backend, rng, C_out)

    def fwd(x, W, b):
        return ops.causal_conv_forward(x, W, b, dilation)

    check_op(fwd, ops.causal_conv_backward, [x, W, b], ["x", "W", "b"], backend, rng)


def conv_reference(x, W, b, dilation):
    """The loop-over-time definition of a dilated causal convolution: the specification of the GEMM one."""
    B, T, _ = x.shape
    k = W.shape[0]
    y = np.tile(b, (B, T, 1)).astype(np.float64)
    for t in range(T):
        for j in range(k):
            src = t - (k - 1 - j) * dilation
            if src >= 0:
                y[:, t] += x[:, src] @ W[j]
    return y


@pytest.mark.parametrize("k,dilation", [(2, 1), (2, 4), (3, 2), (4, 3), (2, 50)])
def test_causal_conv_matches_loop_definition(k, dilation):
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((2, 20, 3)), rng.standard_normal((k, 3, 5)), rng.standard_normal(5)
    y, _ = ops.causal_conv_forward(x, W, b, dilation)
    np.testing.assert_allclose(y, conv_reference(x, W, b, dilation), rtol=1e-12, atol=1e-12)


def test_conv1x1(backend):
    rng = np.random.default_rng(1)
    x, W, b = rand(backend, rng, 2, 6, 4), rand(backend, rng, 4, 3), rand(backend, rng, 3)
    check_op(ops.conv1x1_forward, ops.conv1x1_backward, [x, W, b], ["x", "W", "b"], backend, rng)


@pytest.mark.parametrize("k", [2, 3])
def test_causal_embedding(backend, k):
    rng = np.random.default_rng(2)
    Q = 7
    codes = backend.asarray(rng.integers(0, Q, (3, 9)))  # repeated codes: gradients must accumulate
    W, b = rand(backend, rng, k, Q, 4), rand(backend, rng, 4)
    check_op(
        ops.causal_embedding_forward,
        ops.causal_embedding_backward,
        [codes, W, b],
        [None, "W", "b"],
        backend,
        rng,
        max_entries=None,
    )


@pytest.mark.parametrize("k", [2, 3])
def test_causal_embedding_is_a_one_hot_convolution(k):
    rng = np.random.default_rng(3)
    Q = 6
    codes = rng.integers(0, Q, (2, 10))
    W, b = rng.standard_normal((k, Q, 4)), rng.standard_normal(4)
    one_hot = np.eye(Q)[codes]  # (B, T, Q)
    y, _ = ops.causal_embedding_forward(codes, W, b)
    np.testing.assert_allclose(y, conv_reference(one_hot, W, b, dilation=1), rtol=1e-12, atol=1e-12)


def test_gate(backend):
    rng = np.random.default_rng(4)
    pre = rand(backend, rng, 2, 5, 6)
    check_op(ops.gate_forward, ops.gate_backward, [pre], ["pre"], backend, rng)


def test_gate_is_tanh_times_sigmoid():
    pre = np.linspace(-30, 30, 12).reshape(1, 2, 6)
    z, _ = ops.gate_forward(pre)
    np.testing.assert_allclose(z, np.tanh(pre[..., :3]) / (1 + np.exp(-pre[..., 3:])), rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("k,dilation", [(2, 1), (3, 2), (2, 4)])
@pytest.mark.parametrize("with_tags", [False, True])
def test_gated_unit(backend, k, dilation, with_tags):
    rng = np.random.default_rng(5)
    x, W, b = rand(backend, rng, 2, 9, 3), rand(backend, rng, k, 3, 8), rand(backend, rng, 8)
    if with_tags:
        tags = backend.asarray((rng.random((2, 3)) > 0.5).astype(float))
        V = rand(backend, rng, 3, 8)

        def fwd(x, W, b, V):
            return ops.gated_unit_forward(x, W, b, dilation, tags, V)

        check_op(fwd, ops.gated_unit_backward, [x, W, b, V], ["x", "W", "b", "V"], backend, rng)
    else:

        def fwd(x, W, b):
            return ops.gated_unit_forward(x, W, b, dilation)

        out, cache = fwd(x, W, b)
        assert ops.gated_unit_backward(out, cache)[3] is None
        check_op(fwd, lambda d, c: ops.gated_unit_backward(d, c)[:3], [x, W, b], ["x", "W", "b"], backend, rng)


def test_gated_unit_rejects_half_conditioning():
    x, W, b = np.zeros((1, 3, 2)), np.zeros((2, 2, 4)), np.zeros(4)
    with pytest.raises(ValueError):
        ops.gated_unit_forward(x, W, b, 1, tags=np.zeros((1, 2)))


def test_residual(backend):
    rng = np.random.default_rng(6)
    x, z, W, b = (
        rand(backend, rng, 2, 5, 3),
        rand(backend, rng, 2, 5, 4),
        rand(backend, rng, 4, 3),
        rand(backend, rng, 3),
    )
    check_op(ops.residual_forward, ops.residual_backward, [x, z, W, b], ["x", "z", "W", "b"], backend, rng)


def test_skip_is_sum_of_per_layer_projections(backend):
    rng = np.random.default_rng(7)
    L, D, S = 3, 4, 5
    zs, W, b = rand(backend, rng, 2, 6, L * D), rand(backend, rng, L * D, S), rand(backend, rng, S)
    check_op(ops.skip_forward, ops.skip_backward, [zs, W, b], ["zs", "W", "b"], backend, rng)
    skip, _ = ops.skip_forward(zs, W, b)
    per_layer = sum(zs[..., l * D : (l + 1) * D] @ W[l * D : (l + 1) * D] for l in range(L)) + b
    np.testing.assert_allclose(to_host(skip), to_host(per_layer), rtol=1e-12)


def test_relu(backend):
    rng = np.random.default_rng(8)
    x = rand(backend, rng, 3, 4, 5)
    x[np.abs(to_host(x)) < 1e-3] = 0.5  # keep finite differences away from the kink
    check_op(ops.relu_forward, ops.relu_backward, [x], ["x"], backend, rng)


def test_head(backend):
    rng = np.random.default_rng(9)
    S, Q = 6, 5
    skip = rand(backend, rng, 2, 4, S)
    W1, b1, W2, b2 = (
        rand(backend, rng, S, S),
        rand(backend, rng, S),
        rand(backend, rng, S, Q),
        rand(backend, rng, Q),
    )
    check_op(
        ops.head_forward,
        ops.head_backward,
        [skip, W1, b1, W2, b2],
        ["skip", "W1", "b1", "W2", "b2"],
        backend,
        rng,
    )


@pytest.mark.parametrize("shape", [(2, 5, 7), (11, 3)])
def test_softmax_cross_entropy(backend, shape):
    rng = np.random.default_rng(10)
    logits = rand(backend, rng, *shape)
    targets = backend.asarray(rng.integers(0, shape[-1], shape[:-1]))
    loss, cache = ops.softmax_cross_entropy_forward(logits, targets)
    dlogits = ops.softmax_cross_entropy_backward(1.0, cache)
    err = check_gradient(lambda: ops.softmax_cross_entropy_forward(logits, targets)[0], logits, dlogits)
    assert err < TOL
    # the definition, written the naive way
    host, t = to_host(logits).reshape(-1, shape[-1]), to_host(targets).reshape(-1)
    naive = -np.mean(np.log(np.exp(host)[np.arange(len(t)), t] / np.exp(host).sum(1)))
    assert abs(float(loss) - naive) < 1e-12


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [-5000.0, 5000.0, 0.0]], dtype=np.float32)
    loss, cache = ops.softmax_cross_entropy_forward(logits, np.array([0, 0]))
    assert np.isfinite(float(loss)) and abs(float(loss) - 5000.0) < 1e-3
    assert np.all(np.isfinite(ops.softmax_cross_entropy_backward(1.0, cache)))


def test_ops_keep_float32():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 8, 3)).astype(np.float32)
    W, b = rng.standard_normal((2, 3, 4)).astype(np.float32), np.zeros(4, np.float32)
    z, cache = ops.gated_unit_forward(x, W, b, 2)
    assert z.dtype == np.float32
    assert all(g.dtype == np.float32 for g in ops.gated_unit_backward(z, cache)[:3])


# ---------------------------------------------------------------- computing only the last t_out outputs
@pytest.mark.parametrize("k,dilation", [(2, 1), (3, 2), (2, 4)])
@pytest.mark.parametrize("t_out", [1, 5, 9, 12])
def test_causal_conv_last_outputs_are_the_full_outputs(k, dilation, t_out):
    """t_out < T gives exactly the last t_out positions of the full convolution, zero history or not."""
    rng = np.random.default_rng(12)
    x, W, b = rng.standard_normal((2, 12, 3)), rng.standard_normal((k, 3, 4)), rng.standard_normal(4)
    y, _ = ops.causal_conv_forward(x, W, b, dilation, t_out=t_out)
    assert y.shape == (2, t_out, 4)
    np.testing.assert_allclose(y, conv_reference(x, W, b, dilation)[:, -t_out:], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k,dilation,t_out", [(2, 1, 9), (3, 2, 4), (2, 4, 2), (2, 3, 11)])
def test_causal_conv_last_outputs_gradients(backend, k, dilation, t_out):
    rng = np.random.default_rng(13)
    x, W, b = rand(backend, rng, 2, 11, 3), rand(backend, rng, k, 3, 4), rand(backend, rng, 4)

    def fwd(x, W, b):
        return ops.causal_conv_forward(x, W, b, dilation, t_out=t_out)

    check_op(fwd, ops.causal_conv_backward, [x, W, b], ["x", "W", "b"], backend, rng)


@pytest.mark.parametrize("k,t_out", [(2, 1), (2, 8), (3, 3), (3, 10)])
def test_causal_embedding_last_outputs(backend, k, t_out):
    rng = np.random.default_rng(14)
    Q = 6
    codes = backend.asarray(rng.integers(0, Q, (2, 10)))
    W, b = rand(backend, rng, k, Q, 4), rand(backend, rng, 4)
    full, _ = ops.causal_embedding_forward(codes, W, b)
    last, _ = ops.causal_embedding_forward(codes, W, b, t_out)
    np.testing.assert_allclose(to_host(last), to_host(full)[:, -t_out:], rtol=1e-12, atol=1e-12)

    def fwd(codes, W, b):
        return ops.causal_embedding_forward(codes, W, b, t_out)

    check_op(fwd, ops.causal_embedding_backward, [codes, W, b], [None, "W", "b"], backend, rng, max_entries=None)


def test_gated_unit_last_outputs_gradients(backend):
    rng = np.random.default_rng(15)
    x, W, b = rand(backend, rng, 2, 10, 3), rand(backend, rng, 2, 3, 8), rand(backend, rng, 8)
    tags, V = backend.asarray((rng.random((2, 3)) > 0.5).astype(float)), rand(backend, rng, 3, 8)

    def fwd(x, W, b, V):
        return ops.gated_unit_forward(x, W, b, 2, tags, V, t_out=7)

    check_op(fwd, ops.gated_unit_backward, [x, W, b, V], ["x", "W", "b", "V"], backend, rng)


# ---------------------------------------------------------------- the fused float32 kernels and their specification
def gate_inputs(rng, shape=(3, 17, 10)):
    pre = rng.standard_normal(shape).astype(np.float32) * 4
    pre.reshape(-1)[:8] = [0.0, -0.0, 1e-8, -1e-8, 9.0, -9.0, 60.0, -60.0]  # tiny, and saturated both ways
    return pre


def test_fused_gate_forward_matches_the_reference():
    from minwave.backend import get_backend

    fused = get_backend("numpy").fused_gate_forward
    pre = gate_inputs(np.random.default_rng(16))
    z, (t, s) = fused(pre)
    z_ref, (t_ref, s_ref) = ops.gate.gate_forward_reference(pre.astype(np.float64))
    assert z.dtype == t.dtype == s.dtype == np.float32 and z.shape == t.shape == s.shape == (3, 17, 5)
    for got, want in [(z, z_ref), (t, t_ref), (s, s_ref)]:
        np.testing.assert_allclose(got, want, rtol=0, atol=5e-7)  # float32 rounding: |error| ≤ ~2 ulp of 1
    np.testing.assert_allclose(t[np.abs(t_ref) < 1e-3], t_ref[np.abs(t_ref) < 1e-3], rtol=1e-6, atol=0)
    # a time-shifted (non-contiguous) view gives the same as its copy; NaN propagates; ±inf saturate
    np.testing.assert_array_equal(fused(pre[:, 3:])[0], fused(pre[:, 3:].copy())[0])
    special = np.array([[np.nan, np.inf, -np.inf, 0.0]], np.float32)  # f = (nan, inf), g = (-inf, 0)
    z_special, (t_special, s_special) = fused(special)
    assert np.isnan(t_special[0, 0]) and t_special[0, 1] == 1.0 and s_special[0, 0] == 0.0 and s_special[0, 1] == 0.5


def test_fused_gate_backward_matches_the_reference():
    from minwave.backend import get_backend

    backend = get_backend("numpy")
    rng = np.random.default_rng(17)
    pre = gate_inputs(rng)
    z, cache = backend.fused_gate_forward(pre)
    dz = rng.standard_normal(z.shape).astype(np.float32)
    dpre = backend.fused_gate_backward(dz, *cache)
    want = ops.gate.gate_backward_reference(dz.astype(np.float64), tuple(a.astype(np.float64) for a in cache))
    assert dpre.dtype == np.float32 and dpre.shape == pre.shape
    np.testing.assert_allclose(dpre, want, rtol=1e-6, atol=1e-7)


def test_gate_takes_the_fused_kernel_in_float32_only(monkeypatch):
    import dataclasses

    from minwave.backend import get_backend

    numpy_backend, calls = get_backend("numpy"), []

    def spy(pre):
        calls.append(pre.dtype)
        return numpy_backend.fused_gate_forward(pre)

    spying = dataclasses.replace(numpy_backend, fused_gate_forward=spy)
    monkeypatch.setattr(ops.gate, "backend_of", lambda a: spying)
    ops.gate_forward(np.zeros((1, 2, 4), np.float32))
    ops.gate_forward(np.zeros((1, 2, 4), np.float64))  # float64, the gradient checks' dtype: the reference
    assert calls == [np.float32]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_scatter_add_matches_add_at(dtype):
    from minwave.backend import get_backend

    scatter_add = get_backend("numpy").scatter_add
    rng = np.random.default_rng(18)
    idx = rng.integers(0, 7, 500)  # many repeats
    values = rng.standard_normal((500, 3)).astype(dtype)
    got, want = np.zeros((7, 3), dtype), np.zeros((7, 3), dtype)
    scatter_add(got, idx, values)
    np.add.at(want, idx, values)
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-12)
    # other forms (here: a 1-D target) go to np.add.at itself
    flat = np.zeros(7, dtype)
    scatter_add(flat, idx, values[:, 0])
    np.testing.assert_allclose(flat, want[:, 0], rtol=1e-5)
    with pytest.raises(IndexError):
        scatter_add(got, np.array([7]), values[:1])
