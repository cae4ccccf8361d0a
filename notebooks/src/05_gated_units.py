# %% [markdown]
# # 05 · Gated activation units
#
# Each WaveNet layer turns its dilated convolution into an output with a **gated activation unit**
# (the paper's eq. 2, borrowed from PixelCNN):
#
# $$\mathbf{z} = \tanh(W_f * \mathbf{x}) \odot \sigma(W_g * \mathbf{x}).$$
#
# Two convolutions of the same input: a *filter* $f$ squashed by tanh into $(-1, 1)$, and a *gate* $g$
# squashed by the sigmoid into $(0, 1)$ that decides, channel by channel and sample by sample, how much
# of the filter gets through. This chapter compares it with a ReLU, derives its backward pass, and
# checks that derivation numerically — the way every gradient in minwave is checked.

# %%
import inspect
import os

QUICK = os.environ.get("MINWAVE_QUICK") == "1"  # set by the test suite: smaller runs, same code

import matplotlib.pyplot as plt
import numpy as np

import minwave
from minwave import ops
from minwave.gradcheck import TOLERANCE, check_gradient

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (9, 3), "axes.grid": True, "grid.alpha": 0.3})
rng = np.random.default_rng(0)

# %% [markdown]
# ## The code
#
# In minwave the two convolutions are one: a dilated convolution with $2D$ output channels, whose first
# $D$ are the filter pre-activations and last $D$ the gate's. The gate op splits them. Below is its
# reference version, the specification; in float32 `ops.gate_forward` runs the same math fused into one
# compiled kernel (Numba on the CPU, CUDA on CuPy), held to the reference by the tests.

# %%
print(inspect.getsource(ops.gate.gate_forward_reference))
print(inspect.getsource(ops.gate.sigmoid))

# %% [markdown]
# ## tanh ⊙ σ against ReLU
#
# A ReLU unit, $\max(0, f)$, is the usual default elsewhere. What the gate adds is a *multiplicative*
# interaction: the left panel shows $z$ as a function of $f$ for a few gate values. With $g \ll 0$ the
# unit is off whatever $f$ says; with $g \gg 0$ it passes $\tanh f$. A ReLU can only switch on the
# sign of its own input. The output is also bounded, $|z| < 1$, so no layer can blow up the signal of
# the next, and it is signed, so a unit can push the residual stream both ways (chapter 06).

# %%
f = np.linspace(-4, 4, 401)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
for g in (-3, -1, 0, 1, 3):
    pre = np.stack([f, np.full_like(f, g)], axis=-1)  # one channel: [f | g]
    z, _ = ops.gate_forward(pre)
    axes[0].plot(f, z, label=f"g = {g}")
axes[0].plot(f, ops.relu_forward(f)[0] / 4, "k--", label="ReLU(f) / 4")
axes[0].set(xlabel="filter f", ylabel="z", title="z = tanh(f) σ(g)")
axes[0].legend(fontsize=8)

F, G = np.meshgrid(np.linspace(-4, 4, 161), np.linspace(-6, 6, 161))
Z, _ = ops.gate_forward(np.stack([F, G], axis=-1).reshape(-1, 2))
im = axes[1].pcolormesh(F, G, Z.reshape(F.shape), cmap="RdBu_r", vmin=-1, vmax=1, shading="auto")
axes[1].set(xlabel="filter f", ylabel="gate g", title="the whole surface")
axes[1].grid(False)
plt.colorbar(im, ax=axes[1])

# derivatives: the gate's, through the package's backward; ReLU's is a step
pre = np.stack([f, np.zeros_like(f)], axis=-1)
_, cache = ops.gate_forward(pre)
dpre = ops.gate_backward(np.ones((len(f), 1)), cache)  # dz = 1
axes[2].plot(f, dpre[:, 0], label="∂z/∂f at g = 0")
axes[2].plot(f, dpre[:, 1], label="∂z/∂g at g = 0")
axes[2].plot(f, ops.relu_backward(np.ones_like(f), ops.relu_forward(f)[1]), "k--", label="ReLU'(f)")
axes[2].set(xlabel="f", title="derivatives")
axes[2].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The price is visible on the right: the gate's derivatives vanish when $|f|$ is large (tanh
# saturates), where a ReLU keeps a slope of 1. That is one reason initialisation matters
# (`minwave.model.init_params` keeps pre-activations near unit variance) and one reason WaveNet needs
# the residual connections of chapter 06. In the paper, gated units modelled audio clearly better than
# ReLUs; exercise 3 lets you measure it.
#
# ## The backward pass, derived
#
# Write $t = \tanh(f)$ and $s = \sigma(g)$, so $z = t\,s$ elementwise. With $dz = \partial\ell/\partial z$
# coming from above, the product rule and the two classic derivatives
# $\tanh' = 1 - \tanh^2$, $\sigma' = \sigma(1-\sigma)$ give
#
# $$df = dz \odot s \odot (1 - t^2), \qquad dg = dz \odot t \odot s \odot (1 - s).$$
#
# Both are written in terms of the *outputs* $t$ and $s$, so the forward pass caches those and the
# backward recomputes nothing. That is the whole of `gate_backward` (its reference version; derivation:
# `docs/backprop.md` §3):

# %%
print(inspect.getsource(ops.gate.gate_backward_reference))

# %% [markdown]
# ## Checking it: finite differences
#
# A derivation can be wrong and a transcription of it even more so. The independent check is the
# definition of the derivative. For a scalar function $\ell(\theta)$,
#
# $$\frac{\partial \ell}{\partial \theta_i} \approx
# \frac{\ell(\theta + \varepsilon e_i) - \ell(\theta - \varepsilon e_i)}{2\varepsilon},$$
#
# with error $O(\varepsilon^2)$; in float64 with $\varepsilon \approx 10^{-5}$ the analytic and numeric
# gradients agree to about $10^{-8}$ relative error when the backward pass is right, and disagree at
# $10^{-2}$ or worse when it is not. Every check in this book and in the test suite uses one error
# metric, $\max_i |a_i - n_i| / \max(|a_i| + |n_i|, 10^{-4})$ — relative, with an absolute floor for
# entries too small for a relative error to mean anything (`docs/backprop.md` §9) — and one bar,
# `gradcheck.TOLERANCE` $= 10^{-6}$. Each check below is an `assert`: a wrong backward stops the notebook.
# To check a backward that returns gradients for an upstream $dz$,
# use the scalar $\ell = \sum dz \odot z$, whose gradient with respect to $z$ is exactly $dz$.
# `minwave.gradcheck` implements the probe:

# %%
print(inspect.getsource(minwave.gradcheck.numerical_gradient))

# %%
B, T, D = 2, 7, 3
pre = rng.standard_normal((B, T, 2 * D))  # float64: finite differences need the precision
dz = rng.standard_normal((B, T, D))


def scalar():
    return float(np.sum(ops.gate_forward(pre)[0] * dz))


_, cache = ops.gate_forward(pre)
dpre = ops.gate_backward(dz, cache)
err = check_gradient(scalar, pre, dpre)
print(f"gate_backward          relative error {err:.1e}")
assert err < TOLERANCE, "gate_backward disagrees with finite differences"

# %% [markdown]
# What a bug looks like: drop the $(1 - t^2)$ factor, a typical slip, and check again.

# %%
t, s = cache
wrong = np.concatenate([dz * s, dz * t * s * (1 - s)], axis=-1)  # df without (1 - t²)
err_wrong = check_gradient(scalar, pre, wrong)
print(f"a wrong gate_backward  relative error {err_wrong:.1e}")
assert err_wrong > 1e-3  # the check can tell

# %% [markdown]
# ## The whole layer, and the whole network
#
# `gated_unit_forward` is the dilated convolution, plus the tag bias of chapter 09, then the gate.
# Its backward returns the gradients for the input and every parameter; each is checked the same way.

# %%
B, T, R, D, G, d = 2, 9, 3, 4, 2, 2
x = rng.standard_normal((B, T, R))
W = rng.standard_normal((2, R, 2 * D)) / np.sqrt(2 * R)
b = rng.standard_normal(2 * D) * 0.1
tags = rng.integers(0, 2, (B, G)).astype(np.float64)
V = rng.standard_normal((G, 2 * D)) * 0.5
dz = rng.standard_normal((B, T, D))


def scalar():
    return float(np.sum(ops.gated_unit_forward(x, W, b, d, tags, V)[0] * dz))


_, cache = ops.gated_unit_forward(x, W, b, d, tags, V)
grads = ops.gated_unit_backward(dz, cache)  # (dx, dW, db, dV)
for name, array, grad in zip(["x", "W", "b", "V"], [x, W, b, V], grads):
    err = check_gradient(scalar, array, grad)
    print(f"gated unit  d{name:2s} {str(array.shape):12s} relative error {err:.1e}")
    assert err < TOLERANCE, f"gated_unit_backward: d{name} disagrees with finite differences"

# %% [markdown]
# And the full model: `WaveNet.loss_and_grads` chains every backward of the book. In float64, every
# parameter tensor is probed at a few entries (the test suite does this for many configurations).
# The loss is a mean over many positions, so some gradient entries are tiny (~$10^{-7}$): there the
# finite difference's round-off is no longer small *relative* to the entry, which is what the metric's
# absolute floor is for. A wrong backward still shows up at $10^{-2}$ and above.

# %%
config = minwave.WaveNetConfig(
    stacks=2,
    layers_per_stack=3,
    residual_channels=4,
    dilation_channels=3,
    skip_channels=5,
    quantization_channels=16,
    n_tags=2,
)
model = minwave.WaveNet(config, seed=1, dtype="float64")
codes = rng.integers(0, 16, (2, model.receptive_field + 8))
tags = np.array([[1.0, 0.0], [0.0, 1.0]])
loss, grads = model.loss_and_grads(codes, tags)
errors = {
    name: check_gradient(lambda: model.loss(codes, tags), p, grads[name], eps=3e-5, max_entries=6)
    for name, p in model.params.items()
}
worst = max(errors, key=errors.get)
print(f"{len(errors)} parameter tensors checked; worst: {worst} with relative error {errors[worst]:.1e}")
for name in list(errors)[:6]:
    print(f"  {name:24s} {errors[name]:.1e}")
assert errors[worst] < TOLERANCE, f"{worst}: the model's backward disagrees with finite differences"

# %% [markdown]
# ## Exercises
#
# 1. Derive the backward pass of a *ReLU-gated* unit $z = \max(0, f)\,\sigma(g)$ and check it with
#    `check_gradient`, as above.
# 2. Vary `eps` in `check_gradient` from $10^{-2}$ to $10^{-10}$ for the gate and plot the relative
#    error. Explain the V shape (truncation error on one side, round-off on the other).
# 3. Measure the paper's claim: train two copies of a tiny model for 200 steps (chapter 07's loop), one
#    with the real gate and one where `ops.gate_forward`/`gate_backward` are replaced by a ReLU of the
#    filter half (monkey-patch `minwave.ops.gate.gate_forward` and `gate_backward`; keep the shapes).
#    Which reaches lower validation bits per sample?
