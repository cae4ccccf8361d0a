"""The upsampler of local conditioning (ops/upsample.py): finite-difference gradients, loop definitions,
and the strict CuPy stand-in."""

import numpy as np
import pytest
from strict_xp import strict, strict_backend
from test_ops import check_op, rand

from minwave import ops
from minwave.backend import to_host


def frame_conv_reference(c, W):
    """The loop definition: y[:, f] = Σ_j c[:, f + j - a] @ W[j], zeros outside the frames."""
    B, F, _ = c.shape
    K = W.shape[0]
    a = (K - 1) // 2
    y = np.zeros((B, F, W.shape[2]))
    for f in range(F):
        for j in range(K):
            g = f + j - a
            if 0 <= g < F:
                y[:, f] += c[:, g] @ W[j]
    return y


@pytest.mark.parametrize("K", [1, 3, 5])
@pytest.mark.parametrize("F", [1, 2, 6])
def test_frame_conv_gradients(backend, K, F):
    rng = np.random.default_rng(K * 10 + F)
    c, W = rand(backend, rng, 2, F, 3), rand(backend, rng, K, 3, 4)
    check_op(ops.frame_conv_forward, ops.frame_conv_backward, [c, W], ["c", "W"], backend, rng, max_entries=None)


@pytest.mark.parametrize("K", [1, 3, 5])
@pytest.mark.parametrize("F", [1, 2, 7])
def test_frame_conv_matches_loop_definition(K, F):
    rng = np.random.default_rng(0)
    c, W = rng.standard_normal((2, F, 3)), rng.standard_normal((K, 3, 5))
    y, _ = ops.frame_conv_forward(c, W)
    np.testing.assert_allclose(y, frame_conv_reference(c, W), rtol=1e-12, atol=1e-12)


def test_frame_conv_rejects_an_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        ops.frame_conv_forward(np.zeros((1, 3, 2)), np.zeros((2, 2, 2)))


@pytest.mark.parametrize("hop,start,length", [(4, 0, 12), (4, 3, 6), (3, 5, 1), (5, 0, 1), (1, 1, 2)])
def test_repeat_is_nearest_neighbour(hop, start, length):
    rng = np.random.default_rng(1)
    y = rng.standard_normal((2, 3, 4))
    u, _ = ops.repeat_forward(y, hop, start, length)
    expected = np.stack([y[:, (start + i) // hop] for i in range(length)], axis=1)
    np.testing.assert_array_equal(u, expected)


@pytest.mark.parametrize("hop,start,length", [(4, 0, 12), (4, 3, 6), (3, 5, 1), (1, 1, 2)])
def test_repeat_gradients(backend, hop, start, length):
    rng = np.random.default_rng(2)
    y = rand(backend, rng, 2, 3, 4)

    def fwd(y):
        return ops.repeat_forward(y, hop, start, length)

    check_op(fwd, ops.repeat_backward, [y], ["y"], backend, rng, max_entries=None)


@pytest.mark.parametrize("start,length", [(-1, 2), (0, 13), (11, 2), (0, 0)])
def test_repeat_rejects_samples_outside_the_frames(start, length):
    with pytest.raises(ValueError, match="not all inside 3 frames of 4"):
        ops.repeat_forward(np.zeros((1, 3, 2)), 4, start, length)


@pytest.mark.parametrize("K", [1, 3])
def test_upsample_gradients(backend, K):
    rng = np.random.default_rng(3)
    c, W = rand(backend, rng, 2, 4, 3), rand(backend, rng, K, 3, 2)

    def fwd(c, W):
        return ops.upsample_forward(c, W, 3, 2, 9)

    check_op(fwd, ops.upsample_backward, [c, W], ["c", "W"], backend, rng, max_entries=None)


def test_identity_initialised_upsampler_holds_each_frame():
    """W[a] = I, other taps 0 (the model's initialisation): the upsampler is an exact repeat."""
    rng = np.random.default_rng(4)
    c = rng.standard_normal((1, 5, 3))
    W = np.zeros((3, 3, 3))
    W[1] = np.eye(3)
    u, _ = ops.upsample_forward(c, W, 4, 0, 20)
    np.testing.assert_array_equal(u, np.repeat(c, 4, axis=1))


def test_upsample_looks_ahead_one_frame_for_three_taps():
    """Changing frame f+1 changes the samples of frame f (look-ahead a = 1), frame f+2 does not."""
    rng = np.random.default_rng(5)
    c, W = rng.standard_normal((1, 6, 2)), rng.standard_normal((3, 2, 2))
    hop = 4
    u0, _ = ops.upsample_forward(c, W, hop, 0, 24)
    c2 = c.copy()
    c2[:, 3] += 1.0
    u1, _ = ops.upsample_forward(c2, W, hop, 0, 24)
    changed = np.any(u0 != u1, axis=(0, 2))  # (24,) which samples moved
    assert changed.tolist() == [False] * 8 + [True] * 12 + [False] * 4  # frames 2, 3, 4 only


def test_upsampler_on_the_strict_cupy_stand_in():
    rng = np.random.default_rng(6)
    c, W = rng.standard_normal((2, 4, 3)), rng.standard_normal((3, 3, 2))
    du = rng.standard_normal((2, 9, 2))
    u, cache = ops.upsample_forward(c, W, 3, 2, 9)
    dc, dW = ops.upsample_backward(du, cache)
    with strict_backend():
        su, scache = ops.upsample_forward(strict.asarray(c), strict.asarray(W), 3, 2, 9)
        sdc, sdW = ops.upsample_backward(strict.asarray(du), scache)
        for host, dev in ((u, su), (dc, sdc), (dW, sdW)):
            np.testing.assert_allclose(to_host(dev), host, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("with_tags", [False, True])
@pytest.mark.parametrize("t_out", [None, 6])
def test_gated_unit_with_a_local_term(backend, with_tags, t_out):
    """The local term U·c_t enters the gate's pre-activations; its gradient is dpre."""
    rng = np.random.default_rng(7)
    # pre-activations of about unit variance: a saturated gate would leave ~1e-7 gradients, all rounding
    x, W, b = 0.4 * rand(backend, rng, 2, 9, 3), rand(backend, rng, 2, 3, 8), rand(backend, rng, 8)
    local = 0.5 * rand(backend, rng, 2, t_out or 9, 8)
    tags = backend.asarray((rng.random((2, 3)) > 0.5).astype(float)) if with_tags else None
    if with_tags:
        V = rand(backend, rng, 3, 8)

        def fwd(x, W, b, V, local):
            return ops.gated_unit_forward(x, W, b, 2, tags, V, t_out=t_out, local=local)

        check_op(fwd, ops.gated_unit_backward, [x, W, b, V, local], ["x", "W", "b", "V", "local"], backend, rng)
    else:

        def fwd(x, W, b, local):
            return ops.gated_unit_forward(x, W, b, 2, t_out=t_out, local=local)

        def bwd(dz, cache):
            dx, dW, db, dV, dlocal = ops.gated_unit_backward(dz, cache)
            assert dV is None
            return dx, dW, db, dlocal

        check_op(fwd, bwd, [x, W, b, local], ["x", "W", "b", "local"], backend, rng)
