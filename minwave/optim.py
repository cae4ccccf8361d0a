"""Adam (Kingma & Ba 2015), written out, with optional global-norm gradient clipping.

    g ← g · min(1, max_norm / ‖g‖)              (‖g‖ over all parameters together)
    m ← β1 m + (1-β1) g,   v ← β2 v + (1-β2) g²
    p ← p - lr · m̂ / (√v̂ + ε),   m̂ = m / (1-β1^t),   v̂ = v / (1-β2^t)

With ema_decay, Adam also keeps an exponential moving average of the parameters, the weights used for
validation, generated samples and export (Polyak averaging: the average of the last ~1/(1-decay)
iterates is smoother than any one of them):

    a ← d·a + (1-d)·p,   d = min(ema_decay, (1 + t) / (10 + t))

The warm-up of d keeps a short run's average from being dominated by the initial weights.

The whole state is a flat dict of arrays (`state_dict()`), so a checkpoint can store it with
np.savez and no pickle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .backend import array_module, to_host


def global_norm(grads: dict) -> float:
    """‖g‖₂ over every entry of every gradient, accumulated in float64."""
    total = 0.0
    for g in grads.values():
        xp = array_module(g)
        total += float(xp.sum(xp.square(g, dtype=xp.float64)))
    return math.sqrt(total)


class Adam:
    """Adam over a dict of parameters, updated in place.

    opt = Adam(model.params, lr=1e-3, clip_norm=1.0)
    grad_norm = opt.step(model.params, grads)     # the norm before clipping
    """

    def __init__(
        self,
        params: dict,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        clip_norm: float | None = None,
        ema_decay: float | None = None,
    ):
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a dict of name -> array (model.params), got {type(params).__name__}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if clip_norm is not None and not clip_norm > 0:
            raise ValueError(f"clip_norm must be > 0 or None, got {clip_norm}")
        if ema_decay is not None and not 0 < ema_decay < 1:
            raise ValueError(f"ema_decay must lie in (0, 1) or be None, got {ema_decay}")
        self.ema_decay = ema_decay
        # the averaged parameters (None without ema_decay); xp.array copies: never the live arrays
        self.ema = None if ema_decay is None else {n: array_module(p).array(p) for n, p in params.items()}
        self.lr, self.betas, self.eps, self.clip_norm = float(lr), tuple(betas), float(eps), clip_norm
        self.t = 0
        self.m = {name: array_module(p).zeros_like(p) for name, p in params.items()}
        self.v = {name: array_module(p).zeros_like(p) for name, p in params.items()}

    def step(self, params: dict, grads: dict) -> float:
        """One update of every parameter in place; returns the gradient norm before clipping."""
        if not isinstance(grads, Mapping) or not isinstance(params, Mapping):
            raise TypeError("params and grads must be dicts of name -> array")
        if set(grads) != set(params):
            raise ValueError(f"grads and params differ in keys: {_few(set(grads) ^ set(params))}")
        for name, p in params.items():  # a broadcastable gradient would silently update the wrong way
            if tuple(grads[name].shape) != tuple(p.shape):
                raise ValueError(f"gradient {name}: shape {tuple(grads[name].shape)} != parameter {tuple(p.shape)}")
        norm = global_norm(grads)
        scale = 1.0
        if self.clip_norm is not None and norm > self.clip_norm:
            scale = self.clip_norm / norm
        self.t += 1
        b1, b2 = self.betas
        # bias corrections folded into the step size: lr_t = lr · √(1-β2^t) / (1-β1^t)
        lr_t = self.lr * math.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        eps_t = self.eps * math.sqrt(1 - b2**self.t)  # keeps the update identical to the m̂/√v̂ form
        for name, p in params.items():
            xp = array_module(p)
            g = grads[name] * scale if scale != 1.0 else grads[name]
            m, v = self.m[name], self.v[name]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            p -= lr_t * m / (xp.sqrt(v) + eps_t)
        if self.ema is not None:
            d = min(self.ema_decay, (1 + self.t) / (10 + self.t))
            for name, p in params.items():
                a = self.ema[name]
                a *= d
                a += (1 - d) * p
        return norm

    def state_dict(self) -> dict[str, np.ndarray]:
        """Host copies (snapshots, never views of the live moments): {'t', 'm/<name>', 'v/<name>'}, and
        'ema/<name>' with ema_decay."""
        state = {"t": np.array(self.t, dtype=np.int64)}
        for name in self.m:
            state[f"m/{name}"] = np.array(to_host(self.m[name]))
            state[f"v/{name}"] = np.array(to_host(self.v[name]))
            if self.ema is not None:
                state[f"ema/{name}"] = np.array(to_host(self.ema[name]))
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore from state_dict() output, onto the backend and dtype of the current moments."""
        kinds = ("m", "v", "ema") if self.ema is not None else ("m", "v")
        expected = {"t"} | {f"{k}/{n}" for n in self.m for k in kinds}
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a dict from state_dict(), got {type(state).__name__}")
        if set(state) != expected:
            raise ValueError(f"optimizer state keys differ: {_few(set(state) ^ expected)}")
        t = np.asarray(state["t"])
        if t.size != 1 or t.dtype.kind not in "iu" or int(t.item()) < 0:
            raise ValueError(f"optimizer state t must be one integer >= 0 (the step count), got {t!r}")
        self.t = int(t.item())  # .item() accepts any size-1 array
        for name in self.m:
            pairs = [(self.m, f"m/{name}"), (self.v, f"v/{name}")] + ([(self.ema, f"ema/{name}")] if self.ema else [])
            for moments, key in pairs:
                current = moments[name]
                if tuple(state[key].shape) != tuple(current.shape):
                    raise ValueError(f"optimizer state {key}: shape {state[key].shape} != {current.shape}")
                moments[name] = array_module(current).array(state[key], dtype=current.dtype)  # a copy


def _few(names, shown: int = 3) -> str:
    """A few names of a possibly long set, for a one-line message: "'a', 'b', 'c' and 57 more"."""
    names = sorted(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(repr(n) for n in names[:shown]) + more


def scheduled_lr(step: int, lr: float, warmup: int = 0, half_life: float = 0) -> float:
    """The learning rate of update number `step` (1, 2, …): a linear warm-up over the first `warmup`
    updates, then halving every `half_life` updates after it (0: constant). A function of the step
    alone, so a resumed run follows the same schedule as an uninterrupted one."""
    rate = lr * min(1.0, step / warmup) if warmup > 0 else lr
    if half_life > 0 and step > warmup:
        rate *= 0.5 ** ((step - warmup) / half_life)
    return rate
