# %% [markdown]
# # 02 · Causal convolutions and the receptive field
#
# The network's output at time $t$ is the distribution of the next sample $x_{t+1}$. During training
# the whole clip is fed in at once, so nothing physically stops the output at $t$ from reading
# $x_{t+1}$ — except the way the layers are wired. A **causal** convolution only ever looks backwards.
# This chapter builds that wiring from the package's convolution, measures how far back a stack of
# them sees (its **receptive field**), and checks causality on the real model.

# %%
import inspect
import os

QUICK = os.environ.get("MINWAVE_QUICK") == "1"  # set by the test suite: smaller runs, same code

import matplotlib.pyplot as plt
import numpy as np

import minwave
from minwave import ops

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (9, 3), "axes.grid": True, "grid.alpha": 0.3})
rng = np.random.default_rng(0)

# %% [markdown]
# ## One causal convolution
#
# With kernel size $k$ and dilation $d$ (chapter 03; here $d = 1$), tap $j$ of the kernel looks
# $(k-1-j)\,d$ samples into the past and the last tap is the present sample:
#
# $$y_t = b + \sum_{j=0}^{k-1} x_{t-(k-1-j)d}\, W_j, \qquad x_{t} = 0 \text{ for } t < 0.$$
#
# Nothing with a positive offset: that is all causality is. Arrays are channels-last `(B, T, C)`, so
# each tap is one matrix product over a time-shifted view of the input — no loop over time:

# %%
print(inspect.getsource(ops.causal_conv_forward))

# %% [markdown]
# ## A stack of causal layers
#
# Stacking layers lets an output see further back: each layer with kernel size $k$ adds $k - 1$ samples.
# The figure shows four layers with $k = 2$; the highlighted paths are everything the last output
# depends on.


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
                    color="C3" if on else "0.8",
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
seen = draw_stack([1, 1, 1, 1], title="4 causal layers, kernel 2: each layer reaches one sample further back")
plt.show()
print("the last output sees", seen, "input samples")

# %% [markdown]
# For $L$ layers of kernel size $k$ the receptive field is $L(k-1) + 1$ samples. We can *measure* it
# instead of trusting the formula: feed an impulse into a stack built from `ops.causal_conv_forward`
# with random weights, and see which outputs move. Output $t$ moves only if input $t_0$ lies in its
# receptive field, so the impulse response spans exactly the receptive field — and starts at $t_0$,
# never before it.


# %%
def conv_stack(x, weights, dilation=1):
    """Apply causal convolutions one after another (tanh in between, to make it a real network)."""
    for W, b in weights:
        x, _ = ops.causal_conv_forward(x, W, b, dilation)
        x = np.tanh(x)
    return x


T, C, t0 = 40, 4, 12
fig, axes = plt.subplots(1, 2, figsize=(11, 3))
for ax, (k, L) in zip(axes, [(2, 4), (3, 4)]):
    weights = [(rng.standard_normal((k, C, C)) / np.sqrt(k * C), np.zeros(C)) for _ in range(L)]
    x = rng.standard_normal((1, T, C))
    bumped = x.copy()
    bumped[0, t0] += 1.0  # an impulse at t0 on top of a random signal
    change = np.abs(conv_stack(bumped, weights) - conv_stack(x, weights)).max(axis=-1)[0]  # (T,)
    moved = np.flatnonzero(change > 0)
    ax.bar(np.arange(T), change, color=["C3" if t in moved else "C0" for t in range(T)])
    ax.axvline(t0, color="k", linestyle=":", label=f"impulse at t0 = {t0}")
    title = f"L={L}, k={k}: outputs {moved.min()}…{moved.max()} move ({len(moved)} = L(k-1)+1 = {L * (k - 1) + 1})"
    ax.set(title=title, xlabel="output time t")
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The whole model: logits[:, t] predicts x[:, t+1]
#
# In minwave the input layer is itself a causal $k$-tap convolution, followed by the dilated layers.
# By default (`WaveNetConfig.input = "level"`) it convolves one real channel, the μ-law level of each
# code, $y = (2x + 1)/Q - 1$ (`mulaw.mulaw_level`), with the same `ops.causal_conv_forward` as above,
# so neighbouring codes are neighbouring inputs; `input="embedding"` instead gives every code its own
# learned vector (a convolution over one-hot codes, done as lookups, `ops.causal_embedding_forward`),
# which fits the training audio better but drifts into noise when the model plays on its own samples
# (`docs/free_running.md`). Both are causal in the same way. Output $t$ sees
# $x_{t-\mathrm{RF}+1}, \dots, x_t$ — including $x_t$ itself — and is trained to predict $x_{t+1}$.
# So the targets are the inputs shifted by one, as in the package's loss:
#
# ```python
# logits = self._forward(x[:, :-1], ...)                 # positions 0 … T-2
# loss = softmax_cross_entropy(logits, x[:, 1:])         # targets: the next sample
# ```
#
# (`model.loss` also skips the first RF − 1 positions, whose window would reach before the clip.)

# %%
config = minwave.WaveNetConfig(stacks=1, layers_per_stack=5, residual_channels=8, dilation_channels=8, skip_channels=16)
model = minwave.WaveNet(config, seed=0, dtype="float64")
print(f"receptive field by the formula (k-1)(1 + Σd) + 1 = {model.receptive_field}")

# %% [markdown]
# ## A live causality check: perturb the future, nothing changes
#
# Take random codes, compute all logits, then replace every sample after $t_0$ with different random
# codes and compute them again. Every output up to $t_0$ must be *bit for bit* identical; outputs after
# $t_0$ are free to change.

# %%
T, t0 = 200, 120
x = rng.integers(0, 256, size=(2, T))
future_changed = x.copy()
future_changed[:, t0 + 1 :] = rng.integers(0, 256, size=(2, T - t0 - 1))

a, b = model.forward(x), model.forward(future_changed)
diff = np.abs(a - b).max(axis=(0, 2))  # (T,) largest change at each output position
print("outputs 0…t0 identical:", np.array_equal(a[:, : t0 + 1], b[:, : t0 + 1]))
print("outputs after t0 changed:", bool(np.all(diff[t0 + 1 :] > 0)))
assert np.array_equal(a[:, : t0 + 1], b[:, : t0 + 1]), "causality violated!"

fig, ax = plt.subplots(figsize=(9, 2.5))
ax.semilogy(np.arange(T), diff + 1e-20, ".", markersize=3)
ax.axvline(t0 + 0.5, color="C3", label="future changed from here on")
ax.set(
    xlabel="output position t",
    ylabel="max |Δ logits|",
    ylim=(1e-20, None),
    title="perturbing the future (exact zeros drawn at 1e-20)",
)
ax.legend()
plt.show()

# %% [markdown]
# ## Measuring the model's receptive field
#
# The same trick, one sample at a time: change only $x_s$ and see whether output $t_0$ moves. It
# moves for exactly the RF positions $s = t_0 - \mathrm{RF} + 1, \dots, t_0$ and for no other $s$.

# %%
t0 = 150
base = model.forward(x[:1])[0, t0]
moves = []
for s in range(T):
    y = x[:1].copy()
    y[0, s] = (y[0, s] + 128) % 256  # a large change of one sample
    moves.append(not np.array_equal(model.forward(y)[0, t0], base))
seen = np.flatnonzero(moves)
print(f"output {t0} depends on x[{seen.min()}…{seen.max()}]: {len(seen)} samples")
print(f"model.receptive_field = {model.receptive_field}")
assert len(seen) == model.receptive_field and seen.max() == t0

# %% [markdown]
# ## Exercises
#
# 1. Make the check fail: in `conv_stack`, shift the output one step to the left
#    (`x = np.roll(x, -1, axis=1)` after each layer, a "centred" convolution) and rerun the impulse
#    cell. Which outputs now move before $t_0$?
# 2. Using only kernel-size-2 layers without dilation, how many layers would a receptive field of
#    1024 samples (64 ms at 16 kHz) need? Chapter 03 gets there with 10.
# 3. Change `WaveNetConfig(kernel_size=3)` in the model above and predict the new receptive field from
#    the formula before measuring it.
