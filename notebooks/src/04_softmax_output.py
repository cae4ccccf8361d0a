# %% [markdown]
# # 04 · A categorical output: softmax over 256 classes
#
# A network predicting a number might be expected to output that number: regress the next sample and
# train with squared error. WaveNet instead outputs a **probability for each of the 256 μ-law classes**
# (chapter 01) and trains with cross-entropy. This chapter shows why, on a model trained here on the
# built-in music: some of its predictive distributions are *multimodal* — a small share of positions,
# measured below — which no regression can express.
# Then it derives the loss's gradient and defines the unit every training curve uses, bits per sample.

# %%
import inspect
import os
import time

QUICK = os.environ.get("MINWAVE_QUICK") == "1"  # set by the test suite: smaller runs, same code

import matplotlib.pyplot as plt
import numpy as np
from scipy.ndimage import uniform_filter1d

import minwave
from minwave import ops
from minwave.data import BatchSampler, load_dataset, split_by_file, unigram_bits, validation_batches
from minwave.gradcheck import check_gradient
from minwave.presets import get_preset
from minwave.synth import ensure_builtin_dataset

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (9, 3), "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## A model to look at
#
# The `tiny` preset (one stack of dilations 1…128, 16 channels), trained for a few hundred steps with
# the core API: draw a batch, `loss_and_grads`, one Adam step. Chapter 07 does this properly with the
# training script; here we only need something that has learned a little. (About a minute on a laptop
# CPU; in quick mode a few seconds, and the model has then learned much less.)

# %%
dataset = load_dataset(ensure_builtin_dataset())
train_clips, valid_clips = split_by_file(dataset)
config = get_preset("tiny").config()  # no tags: an unconditional model
model = minwave.WaveNet(config, seed=0)
steps, batch, segment = (30, 4, 300) if QUICK else (300, 8, 1000)
sampler = BatchSampler(train_clips, 0, segment, model.receptive_field, batch, seed=0)
opt = minwave.Adam(model.params, lr=3e-3, clip_norm=1.0)

start = time.perf_counter()
for step in range(steps):
    x, _ = sampler.sample()  # (batch, RF + segment) codes
    loss, grads = model.loss_and_grads(x)
    opt.step(model.params, grads)
    if step % 50 == 0 or step == steps - 1:
        print(f"step {step:4d}  loss {loss / np.log(2):.2f} bits/sample")
print(f"{steps} steps in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# ## What the model predicts
#
# For every position $t$ of a held-out clip, `softmax(model.forward(codes)[0, t])` is a distribution
# over the 256 classes of $x_{t+1}$. Stacked side by side they make an image: time across, class up,
# brightness = probability. The white dots are the samples that actually came next.


# %%
def predict(codes):
    """codes (T,) -> softmax probabilities (T, 256) of the next sample at every position."""
    logits = model.forward(codes[None])[0]  # (T, 256)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


n = 8000 if QUICK else 32000  # 0.5 s or 2 s of each held-out clip
held_out = {c.tags[0]: c for c in valid_clips}  # one clip per instrument
codes = {tag: clip.codes[:n] for tag, clip in held_out.items()}
probs = {tag: predict(c) for tag, c in codes.items()}

tag, window = "pluck", slice(3000, 3300)
fig, ax = plt.subplots(figsize=(10, 3.5))
ax.imshow(
    probs[tag][window].T ** 0.5,
    origin="lower",
    aspect="auto",
    cmap="magma",
    extent=(window.start, window.stop, -0.5, 255.5),
)  # sqrt: makes small probabilities visible
ax.plot(
    np.arange(window.start, window.stop), codes[tag][window.start + 1 : window.stop + 1], ".", color="w", markersize=2
)
ax.set(xlabel="position t", ylabel="class of x[t+1]", title=f"p(x[t+1] | x[≤t]) on {held_out[tag].path} (sqrt scale)")
ax.grid(False)
plt.show()

# %% [markdown]
# ## Why not a regression?
#
# A network trained with squared error learns the *conditional mean* $\mathbb{E}[x_{t+1} \mid x_{\le t}]$.
# Where the model is unsure between two quite different continuations — the waveform may turn up or
# down, a new note may or may not start — the mean lies *between* them, at a value the signal rarely
# takes. A softmax can put its mass on both.
#
# Most predictions of a trained model are sharp and single-peaked; then mean and mode agree and a
# regression would do as well. To find the others, we score each distribution for two-peakedness: the
# largest probability mass that lies on the smaller side of a deep valley (a class where the smoothed
# distribution drops below half of the peaks on both sides), and keep distributions clearly sharper
# than the code histogram (entropy below 6.5 bits; the histogram has about 7.6).


# %%
def two_peakedness(p, width=9):
    """Per row of p (N, Q): max over split classes c at a deep valley of min(P(< c), P(≥ c)); 0 if none."""
    smooth = uniform_filter1d(p, width, axis=1, mode="constant")
    left = np.maximum.accumulate(smooth, axis=1)  # highest point at or below c
    right = np.maximum.accumulate(smooth[:, ::-1], axis=1)[:, ::-1]  # highest point at or above c
    valley = smooth < 0.5 * np.minimum(left, right)
    below = np.cumsum(p, axis=1) - p  # P(class < c)
    return np.where(valley, np.minimum(below, 1 - below), 0).max(axis=1)


levels = minwave.mulaw_decode(np.arange(256))  # the amplitude of each class
shares = {}
fig, axes = plt.subplots(1, 3, figsize=(13, 3))
for ax, (tag, p) in zip(axes, probs.items()):
    entropy = -(p * np.log2(p)).sum(axis=1)
    score = np.where(entropy < 6.5, two_peakedness(p), 0)
    score[: model.receptive_field] = 0  # positions whose receptive field reaches before the clip
    t = int(np.argmax(score))
    mean_amplitude = p[t] @ levels  # what a squared-error regression would answer
    ax.bar(np.arange(256), p[t], width=1.0, label="p(x[t+1] | past)")
    ax.axvline(minwave.mulaw_encode(mean_amplitude), color="C3", linestyle="--", label="regression (mean)")
    ax.axvline(codes[tag][t + 1], color="k", linestyle=":", label="actual next sample")
    ax.set(title=f"{tag}, t = {t}", xlabel="class")
    shares[tag] = np.mean(score > 0.2)
    print(f"{tag}: {shares[tag]:.1%} of positions are two-peaked (score > 0.2)")
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()
print(f"two-peaked at {min(shares.values()):.1%} to {max(shares.values()):.1%} of positions: a minority")
assert max(shares.values()) < 0.5

# %% [markdown]
# So multimodal predictions exist, but at a minority of positions: the shares printed above (the fully
# trained run of this notebook finds them at around one position in a hundred). Rare is enough to
# matter: a regression would answer those positions with a value between the modes, a value the signal
# rarely takes, and generation draws from exactly these distributions.
#
# (The share of two-peaked positions depends on how long the model trained: an untrained model
# predicts roughly the code histogram everywhere, which is itself two-peaked — see chapter 01 — but too
# broad to pass the entropy filter. In quick mode the model has barely started, so these panels may show
# little; run the notebook without `MINWAVE_QUICK` to see a trained model.)

# %% [markdown]
# ## Cross-entropy and its gradient
#
# The loss for one position with logits $a \in \mathbb{R}^{256}$ and true class $y$ is the negative
# log-probability of the truth,
#
# $$\ell = -\log \operatorname{softmax}(a)_y = -a_y + \log \sum_j e^{a_j},$$
#
# averaged over the $N$ positions of the batch. Differentiating, $\partial \ell / \partial a_j =
# \operatorname{softmax}(a)_j - [j = y]$: the predicted probabilities minus the one-hot truth, divided by
# $N$ for the mean. The gradient pushes up the true class and pushes every other class down in
# proportion to how much mass it stole. (`docs/backprop.md` §7.) The forward pass subtracts the largest
# logit before exponentiating (log-sum-exp), so it never overflows:

# %%
print(inspect.getsource(ops.softmax_cross_entropy_forward))
print(inspect.getsource(ops.softmax_cross_entropy_backward))

# %%
rng = np.random.default_rng(0)
a = rng.standard_normal((3, 5, 256))  # (B, T, Q) logits, float64
y = rng.integers(0, 256, (3, 5))
loss, cache = ops.softmax_cross_entropy_forward(a, y)
da = ops.softmax_cross_entropy_backward(1.0, cache)
err = check_gradient(lambda: float(ops.softmax_cross_entropy_forward(a, y)[0]), a, da, max_entries=200)
print(f"loss {float(loss):.3f} nats; gradient vs finite differences: relative error {err:.1e}")
assert err < 1e-6, "softmax_cross_entropy_backward disagrees with finite differences"

tag = "pluck"
t = 3000  # one position of the clip above
g = probs[tag][t].copy()
g[codes[tag][t + 1]] -= 1  # softmax - one-hot, for one position
fig, ax = plt.subplots(figsize=(9, 2.5))
ax.bar(np.arange(256), g, width=1.0, color=np.where(g < 0, "C2", "C3"))
ax.set_yscale("symlog", linthresh=1e-3)
ax.set(xlabel="class", ylabel="∂ℓ/∂a", title=f"the gradient at t = {t}: p − 1 at the truth, +p everywhere else")
plt.show()

# %% [markdown]
# ## Bits per sample
#
# Dividing the mean cross-entropy (nats) by $\ln 2$ gives **bits per sample**: the average number of
# bits an arithmetic coder driven by the model would spend on each sample. It is comparable across
# models, datasets and sample lengths, and has two natural reference lines: 8 bits (a uniform guess
# over 256 classes) and the unigram entropy (a model that knows only the code histogram, chapter 01).

# %%
batches = validation_batches(valid_clips, 0, 1000, model.receptive_field, 8, max_rows=16)
val_bits = np.mean([model.loss(x) for x, _ in batches]) / np.log(2)
print("uniform               8.00 bits/sample")
print(f"unigram baseline      {unigram_bits(valid_clips):.2f} bits/sample")
print(f"this model            {val_bits:.2f} bits/sample on held-out clips after {steps} steps")
assert val_bits < 8.0  # below a uniform guess even after the quick run; the full run also beats the unigram
if not QUICK:
    assert val_bits < unigram_bits(valid_clips), "300 steps should take the model below the unigram baseline"

# %% [markdown]
# The loss is not spread evenly in time. Plotting each sample's cost, $-\log_2 p(x_{t+1} \mid x_{\le t})$,
# under the waveform shows where the model is surprised: the note onsets, where nothing in the past
# announced the new pitch.

# %%
tag = "pluck"
p, c = probs[tag], codes[tag]
surprise = -np.log2(p[np.arange(len(c) - 1), c[1:]])  # bits spent on x[t+1], for t = 0 … T-2
fig, axes = plt.subplots(2, 1, figsize=(10, 4), sharex=True)
time_s = np.arange(len(c)) / dataset.sample_rate
axes[0].plot(time_s, minwave.mulaw_decode(c), linewidth=0.3)
axes[0].set(ylabel="amplitude", title=held_out[tag].path)
smooth = np.convolve(surprise, np.ones(100) / 100, mode="valid")  # 100-sample moving average
axes[1].plot(time_s[100 : 100 + len(smooth)], smooth)
axes[1].axhline(unigram_bits(valid_clips), color="gray", linestyle="--", label="unigram baseline")
axes[1].axvspan(0, model.receptive_field / dataset.sample_rate, color="0.9", label="receptive field not yet full")
axes[1].set(xlabel="time (s)", ylabel="bits/sample")
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Exercises
#
# 1. Sample from one of the two-peaked distributions above 1000 times (`np.random.default_rng().choice(256,
#    p=...)`) and histogram the amplitudes. Now compute the squared error of always answering with the
#    mean, and of answering with a sample. Which is lower, and why does it not matter for generation?
# 2. With 65 536 classes (16-bit audio without companding), how many parameters would the last layer
#    `head.W2` need for this model? The paper found 256 μ-law classes good enough; what would be lost?
# 3. The gradient $\mathrm{softmax}(a) - \mathrm{onehot}(y)$ sums to zero over classes. Why, and what
#    does that mean for the gradient of `head.b2` averaged over a batch?
