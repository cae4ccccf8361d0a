# %% [markdown]
# # 06 · Residual and skip connections
#
# A WaveNet is deep: the paper's models have 30 or more gated layers. Stacked plainly, one on top of
# the other, such a network is hard to train, because the gradient reaching the first layers is the
# product of 30 layers' Jacobians and tends to vanish. WaveNet wires every layer in two ways
# (Figure 4 of the paper):
#
# * a **residual** connection: the layer *adds* to a running stream instead of replacing it,
#   $\mathbf{x}_{l+1} = \mathbf{x}_l + \mathbf{z}_l W^{res}_l$, so the stream has an identity path from
#   the input to the top;
# * a **skip** connection: every layer's gate output also goes straight to the output head,
#   $\text{skip} = \sum_l \mathbf{z}_l W^{skip}_l$, so every layer is one step from the loss.
#
# This chapter removes them, one at a time, and measures what happens to the gradients.

# %%
import inspect
import os

QUICK = os.environ.get("MINWAVE_QUICK") == "1"  # set by the test suite: smaller runs, same code

import matplotlib.pyplot as plt
import numpy as np

import minwave
from minwave import ops
from minwave.data import BatchSampler, load_dataset, split_by_file, unigram_bits
from minwave.optim import global_norm
from minwave.synth import ensure_builtin_dataset

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (9, 3), "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## In the package
#
# Both are one line of forward pass each. Their backward passes show the two rules that make them work:
# the identity path copies the gradient unchanged (`dx = dx_next`), and *fan-out means sum* — a gate
# output that feeds both the residual stream and the skip sum gets the sum of both gradients.

# %%
print(inspect.getsource(ops.residual_forward))
print(inspect.getsource(ops.residual_backward))

# %% [markdown]
# And the model's whole backward pass, which walks the layers in reverse with exactly those two rules
# (the loop over `reversed(range(L))`: the residual backward, then the skip path's share added to `dz`):

# %%
print(inspect.getsource(minwave.WaveNet._backward))

# %% [markdown]
# ## A WaveNet with the connections removable
#
# To compare, we need a network in which each connection can be switched off. It is built here from the
# package's own ops, following `WaveNet._forward` and `_backward` step by step:
#
# * `residual=False`: $\mathbf{x}_{l+1} = \mathbf{z}_l W^{res}_l + b$, no identity path (a 1×1 conv);
# * `skip=False`: only the last layer feeds the head (the other layers' skip columns are zeroed).
#
# With both on it must reproduce `model.loss_and_grads` — which we check first. (The package skips
# positions the loss never reads, so the two agree to float32 rounding rather than bit for bit.)
#
# The input layer here is the one-hot lookup, `ops.causal_embedding_forward`, so the model we compare
# with is built with `input="embedding"`. The package's default input layer (`input="level"`, the
# μ-law level as one real channel, chapter 02) would need one more convolution in this rebuild and
# changes nothing below: residual and skip paths start after the input layer.


# %%
def loss_and_grads(params, config, x, residual=True, skip=True, stats=None):
    """Cross-entropy (nats) and gradients of a tag-free WaveNet, optionally without residual/skip paths.

    stats: a dict to fill with per-layer diagnostics (the RMS of each gate output z_l, and the norm of
    the gradient reaching each layer's input), or None.
    """
    L, D, rf = config.n_layers, config.dilation_channels, config.receptive_field
    inputs, targets, start = x[:, :-1], x[:, rf:], rf - 1  # predict x[t+1] at positions t >= RF-1
    stream, input_cache = ops.causal_embedding_forward(inputs, params["input.W"], params["input.b"])  # (B, T, R)
    caches, zs = [], []
    for i, d in enumerate(config.dilations):
        z, unit_cache = ops.gated_unit_forward(
            stream, params[f"layers.{i}.dilated.W"], params[f"layers.{i}.dilated.b"], d
        )
        next_cache = None
        if i < L - 1:
            W, b = params[f"layers.{i}.residual.W"], params[f"layers.{i}.residual.b"]
            stream, next_cache = ops.residual_forward(stream, z, W, b) if residual else ops.conv1x1_forward(z, W, b)
        caches.append((unit_cache, next_cache, z.shape))
        zs.append(z[:, start:])
        if stats is not None:
            stats.setdefault("z_rms", []).append(float(np.sqrt(np.mean(z**2))))
    zs = np.concatenate(zs, axis=-1)  # (B, T', L·D)
    keep = np.ones(L * D, dtype=zs.dtype)
    if not skip:
        keep[: (L - 1) * D] = 0  # only the last layer reaches the head
    s, skip_cache = ops.skip_forward(zs * keep, params["skip.W"], params["skip.b"])
    logits, head_cache = ops.head_forward(s, params["head.W1"], params["head.b1"], params["head.W2"], params["head.b2"])
    loss, loss_cache = ops.softmax_cross_entropy_forward(logits, targets)

    g = {}
    dlogits = ops.softmax_cross_entropy_backward(1.0, loss_cache)
    ds, g["head.W1"], g["head.b1"], g["head.W2"], g["head.b2"] = ops.head_backward(dlogits, head_cache)
    dzs, g["skip.W"], g["skip.b"] = ops.skip_backward(ds, skip_cache)
    dzs = dzs * keep
    dstream = None  # gradient of the stream above layer i
    for i in reversed(range(L)):
        unit_cache, next_cache, z_shape = caches[i]
        dz = np.zeros(z_shape, dtype=dzs.dtype)  # (B, T, D)
        if next_cache is not None:
            if residual:
                dstream, dz_next, g[f"layers.{i}.residual.W"], g[f"layers.{i}.residual.b"] = ops.residual_backward(
                    dstream, next_cache
                )
            else:  # nothing but z reaches the next layer: the stream's gradient stops here
                dz_next, g[f"layers.{i}.residual.W"], g[f"layers.{i}.residual.b"] = ops.conv1x1_backward(
                    dstream, next_cache
                )
                dstream = None
            dz += dz_next
        dz[:, start:] += dzs[..., i * D : (i + 1) * D]  # fan-out means sum: the skip path's share
        dx, g[f"layers.{i}.dilated.W"], g[f"layers.{i}.dilated.b"], _ = ops.gated_unit_backward(dz, unit_cache)
        dstream = dx if dstream is None else dstream + dx
        if stats is not None:
            stats.setdefault("dx_norm", []).insert(0, float(np.linalg.norm(dstream)))
    g["input.W"], g["input.b"] = ops.causal_embedding_backward(dstream, input_cache)
    return float(loss), g


# %% [markdown]
# A 30-layer network (six stacks of dilations 1…16, receptive field 188 samples) on batches of the
# built-in music:

# %%
dataset = load_dataset(ensure_builtin_dataset())
train_clips, valid_clips = split_by_file(dataset)
config = minwave.WaveNetConfig(  # the one-hot (embedding) input, which loss_and_grads above rebuilds
    stacks=6, layers_per_stack=5, residual_channels=16, dilation_channels=16, skip_channels=64, input="embedding"
)
model = minwave.WaveNet(config, seed=0)
print(model.summary())
segment, batch = (200, 4) if QUICK else (500, 8)
sampler = BatchSampler(train_clips, 0, segment, model.receptive_field, batch, seed=0)
x, _ = sampler.sample()  # (batch, RF + segment) codes

loss, grads = model.loss_and_grads(x)
loss2, grads2 = loss_and_grads(model.params, config, x)
worst = max(np.abs(grads[k] - grads2[k]).max() / (np.abs(grads[k]).max() + 1e-30) for k in grads)
print(f"package loss {loss:.6f}, rebuilt loss {loss2:.6f}; largest relative gradient difference {worst:.1e}")
assert abs(loss - loss2) < 1e-4 * loss and worst < 1e-3  # the same math, up to float32 rounding

# %% [markdown]
# ## Signals and gradients per layer, at initialisation
#
# For each variant, three measurements on the same batch of real audio, layer by layer:
#
# * **forward**: the RMS of each layer's gate output $\mathbf{z}_l$ — what the layer contributes;
# * **backward**: the norm of the gradient reaching each layer's input $\mathbf{x}_l$;
# * **learning signal**: the norm of the gradient of each layer's dilated-convolution weights, which is
#   (roughly) the product of the two.
#
# A stack without residual connections gets the usual fan-in initialisation for its 1×1 layers,
# $W \sim \mathcal{N}(0, 1/D)$: the package's residual weights are scaled down by a further
# $1/\sqrt{L}$ for a residual stream (see `init_params`), which would starve a plain stack from the start.
#
# But fan-in initialisation is not neutral for a plain stack of *gated* layers. At initialisation the
# gate's pre-activations are near zero, where $\sigma(g) \approx \tfrac12$: the gated unit passes
# about half of its input's size, so a plain stack halves its signal (and, on the way back, its gradient)
# at every layer. That is a property of the initialisation, not of the wiring, and it can be undone by
# a gain: so the plain stack appears twice, once with $\mathcal{N}(0, 1/D)$ and once with its 1×1
# weights scaled ×2. Whatever still separates the variants after that is the architecture.

# %%
variants = {  # name: (connections, gain of the plain 1×1 weights)
    "residual + skip (WaveNet)": (dict(residual=True, skip=True), 1),
    "residual only": (dict(residual=True, skip=False), 1),
    "skip only": (dict(residual=False, skip=True), 1),
    "neither (plain stack)": (dict(residual=False, skip=False), 1),
    "neither, 1×1 weights ×2": (dict(residual=False, skip=False), 2),
}
rng = np.random.default_rng(1)
plain_residual = {
    f"layers.{i}.residual.W": (rng.standard_normal((16, 16)) / 4).astype(np.float32) for i in range(config.n_layers - 1)
}  # N(0, 1/D), D = 16


def initial_params(residual, gain=1):
    params = {k: v.copy() for k, v in minwave.WaveNet(config, seed=0).params.items()}
    if not residual:
        params.update({k: gain * v for k, v in plain_residual.items()})
    return params


layers = np.arange(1, config.n_layers + 1)
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
ratio = {}  # gradient reaching the first layer / reaching the last
for name, (flags, gain) in variants.items():
    stats = {}
    _, g = loss_and_grads(initial_params(flags["residual"], gain), config, x, **flags, stats=stats)
    ratio[name] = stats["dx_norm"][0] / stats["dx_norm"][-1]
    print(f"{name:28s} ‖∂ℓ/∂x_1‖ / ‖∂ℓ/∂x_L‖ = {ratio[name]:.1e}")
    axes[0].semilogy(layers, stats["z_rms"], "o-", markersize=3, label=name)
    axes[1].semilogy(layers, stats["dx_norm"], "o-", markersize=3, label=name)
    axes[2].semilogy(
        layers,
        [np.linalg.norm(g[f"layers.{i}.dilated.W"]) for i in range(config.n_layers)],
        "o-",
        markersize=3,
        label=name,
    )
axes[0].set(title="forward: RMS of z_l", xlabel="layer (1 = nearest the input)")
axes[1].set(title="backward: ‖∂ℓ/∂x_l‖", xlabel="layer")
axes[2].set(title="‖∂ℓ/∂W_dilated,l‖", xlabel="layer")
fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3)
plt.tight_layout(rect=(0, 0.12, 1, 1))
plt.show()
# the claims of the next paragraph, as checks: the plain stack's gradient vanishes with fan-in weights,
# a gain of 2 undoes most of that, and the identity path needs no gain at all
assert ratio["neither (plain stack)"] < 1e-3 * ratio["neither, 1×1 weights ×2"]
assert ratio["residual + skip (WaveNet)"] > 1e-2

# %% [markdown]
# Read the backward panel from right to left, the way the gradient travels. Without a residual
# connection, the gradient reaching layer $l$ has been multiplied by every layer's Jacobian above it.
# The gate's derivatives are $\partial z/\partial f = \sigma(g)(1 - \tanh^2 f)$, which approaches 1 for
# an open gate, and $\partial z/\partial g = \tanh(f)\,\sigma(g)(1 - \sigma(g)) \le \tfrac14$; at
# initialisation, with $g \approx 0$, the filter's is about ½. So each fan-in-initialised plain layer
# roughly halves the gradient, and over 30 layers the first receive orders of magnitude less than the
# last (the ratios printed above). Scaling the plain 1×1 weights ×2 makes up for most of the ½ and
# the ratio comes back to within about an order of magnitude of 1 (exercise 4: ×3): most of the
# vanishing here was the initialisation's doing. The residual stream does not
# need such a gain: the identity path carries the input up and the gradient down unchanged whatever
# the layers' weights, and each layer only adds its own correction. The forward panel shows the same
# on the way up.
#
# The skip connections fix a different thing: they give every layer a direct line to the loss. In the
# "skip only" network the gradient for the *first* layers is fine (they are one step from the head),
# but the deep layers get almost nothing to work with, because their input has faded away.
#
# ## Training them
#
# The same data, the same Adam, the same number of steps. How fast does each variant learn?

# %%
steps = 6 if QUICK else 300
curves = {}
for name, (flags, gain) in variants.items():
    params = initial_params(flags["residual"], gain)
    opt = minwave.Adam(params, lr=3e-3, clip_norm=1.0)
    sampler = BatchSampler(train_clips, 0, segment, config.receptive_field, batch, seed=0)  # same batches for all
    losses = []
    for _ in range(steps):
        x, _ = sampler.sample()
        loss, g = loss_and_grads(params, config, x, **flags)
        opt.step(params, g)
        losses.append(loss / np.log(2))
    curves[name] = losses
    below = np.mean(losses[-10:]) < unigram_bits(train_clips)
    print(f"{name:28s} last 10 steps: {np.mean(losses[-10:]):.2f} bits/sample, {'below' if below else 'above'} unigram")

fig, ax = plt.subplots(figsize=(9, 3.5))
smooth = max(1, steps // 30)
for name, losses in curves.items():
    ax.plot(np.convolve(losses, np.ones(smooth) / smooth, mode="valid"), label=name)
ax.axhline(unigram_bits(train_clips), color="gray", linestyle="--", label="unigram baseline")
ax.set(xlabel="step", ylabel="training bits/sample", title=f"{config.n_layers} layers, {steps} steps")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Let the curves carry the argument: the printed lines say which variants got below the unigram
# baseline (learned something about the signal, not only the code histogram) in the same number of
# steps. Compare the two plain stacks first — any gap between them is initialisation — and then the
# better of them with the residual and skip variants — that gap is architecture. Residual connections
# make the depth trainable without a hand-tuned gain, and the skip sum gives every layer a direct
# line to the loss. (In quick mode, `MINWAVE_QUICK=1` as the test suite runs it, the runs are far too
# short to separate the variants.)

# %% [markdown]
# ## Exercises
#
# 1. Make the network deeper (`stacks=12`) and redraw the gradient-norm plot. How does the ratio
#    between the first and last layer of the plain stack change with depth?
# 2. Plot `global_norm(g)` (from `minwave.optim`) during training for each variant. Which variants rely
#    on gradient clipping?
# 3. The package scales the residual weights by $1/\sqrt{L}$ at initialisation. Remove that scaling
#    (multiply them by $\sqrt{L}$ in `initial_params`) and measure the variance of the residual stream
#    after each layer. Why does it grow, and why does that matter for the gate's tanh?
# 4. Add a plain stack with its 1×1 weights scaled ×3 to `variants`. Is its gradient ratio flat? Does it
#    train as well as the residual network, and is it as forgiving of a gain chosen a little wrong?
