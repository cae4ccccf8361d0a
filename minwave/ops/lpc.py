"""The linear-prediction input: the next sample as the samples before it predict it (a short-term predictor).

Legend: B batch, T time, R residual channels; the predictor's order and window (in samples) are
written out as words, so that no letter of the package's legend (docs/architecture.md) means two things.

A sum of decaying sinusoids — a bell's inharmonic partials, several notes ringing at once — is
predicted almost exactly by a linear combination of the few samples before it, the short-term predictor
of every speech coder (LPC; backward-adaptive, as in G.728, when the coefficients come from the past
samples themselves). A WaveNet reads μ-law levels, so to predict linearly it would have to undo the
companding and fit the coefficients in its layers. The period tap (ops/period.py) copies one pitch
period back, which a bell's partials (f0 ± k · 1.4 f0) do not repeat. So here the input layer gets,
beside the level y_t, the linear prediction of the next sample from the last `window` samples up to t,
refitted at every position:

    x_i = F⁻¹(y_i) the linear samples (x_i = 0 before the first position: the zero history)
    c_k(t) = Σ_{i=t-window+1+k}^{t} x_i · x_{i-k}    k = 0 … order: the autocorrelation of the window
    c_0 ← c_0 · (1 + λ) + ε                          a floor 40 dB under the signal (λ = 1e-4), ε for silence
    a(t) solves Σ_{j=1}^{order} a_j c_{|m-j|} = c_m, m = 1 … order   (Toeplitz: Levinson–Durbin)
    e(t) = F(clip(Σ_{j=1}^{order} a_j · x_{t+1-j}, -1, 1))                                  (B, T)
    x_0[:, t] += e(t) · W_lpc                                                              W_lpc (1, R)

F is μ-law companding (mulaw.py), so e is on the levels' own scale. The autocorrelation method's matrix
is positive definite, so the recursion is stable. e(t) reads x_{t-window+1} … x_t (order < window), so
a model with this input reads window - 1 samples further back (WaveNetConfig.lpc_reach).
e is made of the data alone: the backward pass is the projection's, dW_lpc = Σ_{b,t} e[b, t] · dx_0[b, t].
The fast sampler (fastgen.py) computes the same numbers one sample at a time.
"""

from __future__ import annotations

from ..backend import array_module
from ..mulaw import mulaw_compress, mulaw_expand
from .conv import sum_outer

WHITE_NOISE = 1e-4  # λ: c_0 raised by this fraction, a noise floor 40 dB under the window's power
SILENCE = 1e-9  # ε: keeps the system solvable on an all-zero window


def levinson(c):
    """c (..., order+1) autocorrelations -> a (..., order): the predictor Σ_j a_j x_{t+1-j} (Levinson–Durbin).

    Order m's coefficients come from order m-1's through the reflection coefficient
    κ_m = (c_m - Σ_{j<m} a_j c_{m-j}) / E_{m-1}, with E the prediction error's power, E_m = E_{m-1}(1 - κ_m²).
    The recursion runs on copies with the lag first, (order+1, positions), so that every step works on a
    few long contiguous rows.
    """
    xp = array_module(c)
    lead, order = c.shape[:-1], c.shape[-1] - 1
    c = c.reshape(-1, order + 1).T.copy()  # (order+1, positions)
    a = xp.zeros((order, c.shape[1]), dtype=c.dtype)  # (order, positions): row j-1 holds a_j
    power = c[0].copy()
    for m in range(1, order + 1):
        kappa = (c[m] - (a[: m - 1] * c[m - 1 : 0 : -1]).sum(axis=0)) / power
        if m > 1:  # a_j <- a_j - κ_m a_{m-j}, j = 1 … m-1
            a[: m - 1] = a[: m - 1] - kappa * a[m - 2 :: -1]
        a[m - 1] = kappa
        power = power * (1.0 - kappa * kappa)
    return a.T.reshape(lead + (order,))


def lpc_prediction(levels, order: int, window: int, quantization_channels: int, t_out: int):
    """e (B, t_out) at the last t_out positions of levels y (B, T): the μ-law level of each next sample's
    linear prediction from the `window` samples up to the position (module docstring), float64."""
    xp = array_module(levels)
    B, T = levels.shape
    x = mulaw_expand(levels, quantization_channels)  # (B, T) float64
    t0 = T - t_out  # the first position computed
    pad = window + order  # zeros before the first sample: the zero history
    xz = xp.concatenate([xp.zeros((B, pad)), x], axis=1)  # x_i at [i + pad]
    c = xp.empty((B, t_out, order + 1))
    hi = t0 + pad + 1 + xp.arange(t_out)  # where the running sum up to i = t is kept
    for k in range(order + 1):
        prod = xp.zeros((B, T + pad + 1))  # running sums: [i + pad + 1] = Σ_{i' ≤ i} x_i' x_{i'-k}
        prod[:, k + 1 :] = xp.cumsum(xz[:, k:] * xz[:, : T + pad - k], axis=1)
        c[:, :, k] = prod[:, hi] - prod[:, hi - window + k]  # minus Σ up to i = t - window + k
    c[:, :, 0] = c[:, :, 0] * (1.0 + WHITE_NOISE) + SILENCE
    a = levinson(c)  # (B, t_out, order)
    idx = t0 + pad + xp.arange(t_out)[:, None] - xp.arange(order)[None, :]  # x_{t+1-j} at [t + 1 - j + pad]
    guess = (a * xz[:, idx]).sum(axis=-1)  # (B, t_out)
    return mulaw_compress(guess, quantization_channels)


def lpc_forward(levels, W, order: int, window: int, quantization_channels: int, t_out: int):
    """x_0's prediction term e[..., None] · W (B, t_out, R), and the cache e (B, t_out). W (1, R)."""
    e = lpc_prediction(levels, order, window, quantization_channels, t_out).astype(levels.dtype)
    return e[:, :, None] * W[0], e


def lpc_backward(dx0, e):
    """dW (1, R) = Σ_{b,t} e[b, t] · dx_0[b, t], for x_0's gradient dx0 (B, t_out, R)."""
    return sum_outer(e[:, :, None], dx0)
