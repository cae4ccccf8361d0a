import numpy as np
import pytest

from minwave import Adam
from minwave.optim import global_norm


def reference_adam(p, g, steps, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8):
    """Adam exactly as written in the paper's Algorithm 1."""
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t in range(1, steps + 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return p


def test_matches_the_paper(backend):
    rng = np.random.default_rng(0)
    p0, g = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    params = {"w": backend.asarray(p0.copy())}
    opt = Adam(params, lr=1e-2)
    for _ in range(5):
        opt.step(params, {"w": backend.asarray(g)})
    np.testing.assert_allclose(backend.to_host(params["w"]), reference_adam(p0, g, 5), rtol=1e-12, atol=1e-14)


def test_clipping_scales_by_global_norm():
    params = {"a": np.zeros(2), "b": np.zeros(1)}
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([4.0])}
    assert global_norm(grads) == pytest.approx(5.0)
    clipped, unclipped = (
        Adam(params, lr=1.0, clip_norm=1.0),
        Adam({k: v.copy() for k, v in params.items()}, lr=1.0),
    )
    assert clipped.step(params, grads) == pytest.approx(5.0)  # returns the norm before clipping
    # Adam's first step is sign-like, so compare the moments instead: clipped m is unclipped m / 5
    unclipped.step({k: v.copy() for k, v in params.items()}, grads)
    np.testing.assert_allclose(clipped.m["a"] * 5, unclipped.m["a"])
    np.testing.assert_allclose(clipped.m["b"] * 5, unclipped.m["b"])


def test_state_round_trip_continues_identically():
    rng = np.random.default_rng(1)
    p = {"w": rng.standard_normal(5).astype(np.float32)}
    grads = [{"w": rng.standard_normal(5).astype(np.float32)} for _ in range(6)]
    a = Adam(p, lr=1e-3, clip_norm=1.0)
    pa = {"w": p["w"].copy()}
    for g in grads[:3]:
        a.step(pa, g)
    state = a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert set(state) == {"t", "m/w", "v/w"}
    b = Adam(p, lr=1e-3, clip_norm=1.0)
    b.load_state_dict(state)
    pb = {"w": pa["w"].copy()}
    for g in grads[3:]:
        a.step(pa, g)
        b.step(pb, g)
    np.testing.assert_array_equal(pa["w"], pb["w"])
    assert b.m["w"].dtype == np.float32


def test_bad_arguments():
    p = {"w": np.zeros(2)}
    for kwargs in [dict(lr=0), dict(lr=-1), dict(betas=(1.0, 0.9)), dict(eps=0), dict(clip_norm=0)]:
        with pytest.raises(ValueError):
            Adam(p, **kwargs)
    opt = Adam(p)
    with pytest.raises(ValueError, match="keys"):
        opt.step(p, {"v": np.zeros(2)})
    with pytest.raises(ValueError):
        opt.load_state_dict({"t": np.array(1)})


def test_scheduled_lr_warms_up_then_halves():
    from minwave.optim import scheduled_lr

    assert [scheduled_lr(t, 1.0, warmup=4) for t in (1, 2, 4, 100)] == [0.25, 0.5, 1.0, 1.0]
    assert scheduled_lr(14, 1.0, warmup=4, half_life=10) == 0.5 and scheduled_lr(7, 2.0) == 2.0
    assert scheduled_lr(30, 1.0, half_life=10) == pytest.approx(0.125)


def test_moving_average_of_the_weights():
    """a ← d·a + (1-d)·p with d = min(decay, (1+t)/(10+t)); saved and restored with the moments."""
    p = {"w": np.array([0.0, 1.0])}
    opt = Adam(p, lr=0.1, ema_decay=0.5)
    a = p["w"].copy()
    for t in range(1, 4):
        opt.step(p, {"w": np.array([1.0, -1.0])})
        d = min(0.5, (1 + t) / (10 + t))
        a = d * a + (1 - d) * p["w"]
        np.testing.assert_allclose(opt.ema["w"], a, rtol=1e-12)
    assert opt.ema["w"] is not p["w"]
    state = opt.state_dict()
    assert "ema/w" in state
    other = Adam({"w": np.zeros(2)}, ema_decay=0.5)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.ema["w"], opt.ema["w"])
    with pytest.raises(ValueError, match="differ"):
        Adam({"w": np.zeros(2)}).load_state_dict(state)  # an averaging run's state needs averaging
    with pytest.raises(ValueError, match="ema_decay"):
        Adam(p, ema_decay=1.0)
