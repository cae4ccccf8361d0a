# %% [markdown]
# # 03 · Dilated convolutions
#
# Chapter 02 ended with a problem: plain causal layers of kernel size 2 add one sample of context each,
# so seeing 64 ms of audio (1024 samples) would take 1023 layers. WaveNet's answer is the **dilated**
# convolution: a convolution whose taps are $d$ samples apart instead of adjacent. Doubling $d$ from
# layer to layer — 1, 2, 4, …, 512 — doubles the receptive field with every layer.

# %%
import inspect
import os
import time

QUICK = os.environ.get("MINWAVE_QUICK") == "1"  # set by the test suite: smaller runs, same code

import matplotlib.pyplot as plt
import numpy as np

import minwave
from minwave import ops
from minwave.threads import set_blas_threads

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (9, 3), "axes.grid": True, "grid.alpha": 0.3})
rng = np.random.default_rng(0)

# %% [markdown]
# ## The stacked-dilation figure
#
# The same drawing as in chapter 02, now with dilations 1, 2, 4, 8 (compare the paper's Figure 3).
# Four layers see 16 samples instead of 5, and every sample of the window is reached by exactly one
# path: the path to the sample $s$ steps back takes the long edge of layer $i$ exactly when bit $i$ of
# $s$ is set.


# %%
def draw_stack(dilations, n_steps=16, kernel_size=2, ax=None, title=None):
    """Nodes = (layer, time); edges from each tap's input; the receptive field of the last output in red."""
    ax = ax or plt.gca()
    n_layers = len(dilations) + 1  # the input row plus one row per layer
    reach = {(n_layers - 1, n_steps - 1)}  # nodes the last output depends on, found top-down
    for layer in range(n_layers - 1, 0, -1):
        d = dilations[layer - 1]
        for t in range(n_steps):
            for j in range(kernel_size):
                src = t - (kernel_size - 1 - j) * d
                if src < 0:
                    continue
                on = (layer, t) in reach
                if on:
                    reach.add((layer - 1, src))
                ax.plot(
                    [src, t],
                    [layer - 1, layer],
                    color="C3" if on else "0.85",
                    linewidth=1.5 if on else 0.7,
                    zorder=2 if on else 1,
                )
    for layer in range(n_layers):
        for t in range(n_steps):
            on = (layer, t) in reach
            ax.plot(t, layer, "o", color="C3" if on else "C0", markersize=6 if on else 4, zorder=3)
    names = ["input"] + [f"layer {i + 1} (d={d})" for i, d in enumerate(dilations)]
    ax.set(yticks=range(n_layers), yticklabels=names, xlabel="time →", title=title)
    ax.grid(False)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return sum(1 for layer, _ in reach if layer == 0)


fig, ax = plt.subplots(figsize=(9, 3))
seen = draw_stack([1, 2, 4, 8], title="dilations 1, 2, 4, 8: the last output sees 16 samples")
plt.show()
print("input samples seen:", seen)

# %% [markdown]
# In the code, dilation is one integer: tap $j$ reads the input shifted by $(k-1-j)\,d$ instead of
# $(k-1-j)$. Nothing else changes, and the cost of a layer does not depend on $d$
# (`ops.causal_conv_forward`, printed whole in chapter 02: tap $j$ adds `x[:, t - shift] @ W[j]` with
# `shift = (k - 1 - j) * dilation`). Checked against the formula written as a loop over time:

# %%
k, C_in, C_out, T_check = 2, 3, 4, 50
x_check = rng.standard_normal((2, T_check, C_in))
W_check, b_check = rng.standard_normal((k, C_in, C_out)), rng.standard_normal(C_out)
for dilation in (1, 4, 16):
    y, _ = ops.causal_conv_forward(x_check, W_check, b_check, dilation)
    loop = np.tile(b_check, (2, T_check, 1))
    for t in range(T_check):
        for j in range(k):
            if t - (k - 1 - j) * dilation >= 0:  # x before t = 0 is zero
                loop[:, t] += x_check[:, t - (k - 1 - j) * dilation] @ W_check[j]
    print(f"dilation {dilation:2d}: package vs loop, max difference {np.abs(y - loop).max():.1e}")
    assert np.allclose(y, loop, rtol=1e-12, atol=1e-12)

# %% [markdown]
# ## Receptive field: $2^L$ for $L$ layers
#
# With kernel size 2, a layer of dilation $d$ adds $d$ samples. For dilations $1, 2, \dots, 2^{L-1}$
# the stack sees $1 + (1 + 2 + \dots + 2^{L-1}) = 2^L$ samples; plain layers see $L + 1$.

# %%
L = np.arange(1, 11)
fig, ax = plt.subplots(figsize=(7, 3))
ax.semilogy(L, 2.0**L, "o-", label="dilated 1, 2, …, 2^(L-1):  2^L")
ax.semilogy(L, L + 1, "o-", label="plain (d = 1):  L + 1")
ax.set(xlabel="layers L", ylabel="receptive field (samples)", xticks=L)
ax.legend()
plt.show()

# %% [markdown]
# ### 1, 2, …, 512 covers 1024 samples — measured
#
# Build the ten dilated layers from `ops.causal_conv_forward` with random weights and put an impulse
# into the input: exactly 1024 outputs respond.

# %%
dilations = [2**i for i in range(10)]  # 1, 2, 4, ..., 512
C, T, t0 = 4, 3000, 500
weights = [(rng.standard_normal((2, C, C)) / np.sqrt(2 * C), np.zeros(C)) for _ in dilations]


def dilated_stack(x):
    for (W, b), d in zip(weights, dilations):
        x, _ = ops.causal_conv_forward(x, W, b, d)
        x = np.tanh(x)
    return x


x = rng.standard_normal((1, T, C))
bumped = x.copy()
bumped[0, t0] += 1.0
moved = np.flatnonzero(np.abs(dilated_stack(bumped) - dilated_stack(x)).max(axis=-1)[0] > 0)
print(f"an impulse at t={t0} moves outputs {moved.min()}…{moved.max()}: {len(moved)} samples")
assert len(moved) == 1024 and moved.min() == t0

# %% [markdown]
# The package's `WaveNetConfig` uses exactly this pattern, repeated `stacks` times. Its receptive field
# is one sample more than the dilated stack's, because minwave's input layer is itself a causal 2-tap
# convolution (chapter 02): $(k-1)(1 + \sum d) + 1$.

# %%
for stacks in (1, 2, 3):
    c = minwave.WaveNetConfig(stacks=stacks, layers_per_stack=10)
    print(
        f"{stacks} × (1…512): {c.n_layers} layers, receptive field {c.receptive_field} samples"
        f" = {1000 * c.receptive_field / c.sample_rate:.0f} ms"
    )

# %% [markdown]
# Why repeat the 1…512 block instead of going on to 1024, 2048, …? The paper's reasons: each block is
# a big, cheap receptive-field increase, and repeating it adds depth (more non-linearity, more
# capacity) at the resolution where the detail is, without making the window so long that the
# training examples get huge.
#
# ## What it costs: parameters and multiply-adds
#
# Three ways to see 1024 samples with $C$ channels in and out, per output sample:
#
# * **one 1024-tap convolution**: $1024 \cdot C^2$ weights, $1024 \cdot C^2$ multiply-adds;
# * **1023 plain kernel-2 layers**: $1023 \cdot 2C^2$ of each (and 1023 layers to train through);
# * **ten dilated kernel-2 layers**: $10 \cdot 2C^2$ of each.

# %%
C = 32
rows = [  # (name, layers, kernel size)
    ("one 1024-tap convolution", 1, 1024),
    ("1023 plain layers, k = 2", 1023, 2),
    ("10 dilated layers, k = 2", 10, 2),
]
print(f"{'C = 32 channels':28s} {'layers':>7s} {'parameters':>12s} {'MACs/sample':>12s}")
for name, n_layers, k in rows:
    n = n_layers * k * C * C
    print(f"{name:28s} {n_layers:7d} {n:12,d} {n:12,d}")
print(f"dilated is {1024 / 20:.0f}× cheaper than the single wide convolution")

# %% [markdown]
# And measured: the same `ops.causal_conv_forward` runs a $(1024, C, C)$ kernel (1024 shifted matrix
# products) and the ten dilated layers (two each).

# %%
T = 1000 if QUICK else 8000
set_blas_threads(1)  # the products on this thread alone, so its CPU time (below) counts all the work
x = rng.standard_normal((1, T, C)).astype(np.float32)
W_wide = (rng.standard_normal((1024, C, C)) / np.sqrt(1024 * C)).astype(np.float32)
W_dil = [(rng.standard_normal((2, C, C)) / np.sqrt(2 * C)).astype(np.float32) for _ in dilations]
b = np.zeros(C, np.float32)


def timed(f, repeats=3):
    """Best of `repeats` in thread CPU time: what this computation cost, whatever else the machine runs."""
    best = np.inf
    for _ in range(repeats):
        start = time.thread_time()
        f()
        best = min(best, time.thread_time() - start)
    return best


def run_dilated():
    h = x
    for W, d in zip(W_dil, dilations):
        h, _ = ops.causal_conv_forward(h, W, b, d)


t_wide = timed(lambda: ops.causal_conv_forward(x, W_wide, b, 1))
t_dil = timed(run_dilated)
print(
    f"T = {T} samples: one 1024-tap convolution {1000 * t_wide:.1f} ms, ten dilated layers {1000 * t_dil:.2f} ms"
    f"  ({t_wide / t_dil:.0f}× faster, CPU time of this thread)"
)
assert t_wide > 5 * t_dil  # the order of magnitude the multiply-add count predicts

# %% [markdown]
# The measured ratio is close to the 51× of the multiply-add count: both versions do the same kind of
# work — matrix products on shifted views — and the wide one does 51 times more of it. (With very short
# inputs the fixed cost of each call starts to show, and the ratio drops.) It is the difference between
# a model that trains on a laptop and one that does not.
#
# The full WaveNet also has residual, skip and output layers; `summary()` counts all of them:

# %%
print(minwave.WaveNet(minwave.WaveNetConfig(stacks=1, layers_per_stack=10)).summary())

# %% [markdown]
# ## Exercises
#
# 1. With kernel size 3 and dilations $1, 3, 9, \dots, 3^{L-1}$, show that the receptive field is
#    $3^L$ and that every sample in it is again reached by exactly one path (think in base 3).
# 2. What goes wrong with dilations $1, 4, 16, \dots$ and kernel size 2? Draw it with `draw_stack`
#    and count the input samples the last output sees.
# 3. Time `run_dilated` for `T` = 1000, 4000, 16000. Is the cost linear in T? Is the wide convolution's?
