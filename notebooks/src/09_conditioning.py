# %% [markdown]
# # 09 · Conditioning on tags
#
# An unconditional WaveNet trained on three instruments produces some mixture of them, and you cannot
# choose which. **Global conditioning** (the paper's §2.5, used there for the speaker identity) adds one
# input that is the same for the whole clip — here, the instrument tag — so that the model learns
# $p(\mathbf{x} \mid \mathbf{m}) = \prod_t p(x_t \mid x_{<t}, \mathbf{m})$. This chapter shows how little
# it takes in the code, trains a tag-conditioned model, generates each instrument, and *measures*
# whether the tags are obeyed with a small classifier trained on the real recordings.

# %%
import inspect
import os
import time

QUICK = os.environ.get("MINWAVE_QUICK") == "1"  # set by the test suite: smaller runs, same code

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Audio, display
from scipy.signal import stft

import minwave
from minwave import fastgen, ops
from minwave.data import BatchSampler, load_dataset, split_by_file, validation_batches
from minwave.presets import get_preset
from minwave.synth import ensure_builtin_dataset

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (9, 3), "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## The math: one bias per layer
#
# With tags as a multi-hot vector $\mathbf{m} \in \{0, 1\}^G$ (`tags` in the code; the paper writes
# $\mathbf{h}$, a letter minwave keeps for the hop of chapter 11), one-hot for one instrument, every layer
# $l$ gets a matrix $V_l$ of shape $(G, 2D)$ and the gated unit becomes
#
# $$\mathbf{z}_l = \tanh(W_{f,l} * \mathbf{x}_l + V_{f,l}^\top \mathbf{m})
# \odot \sigma(W_{g,l} * \mathbf{x}_l + V_{g,l}^\top \mathbf{m}).$$
#
# $V^\top \mathbf{m}$ does not depend on time: it is a per-clip *bias* on the filter and gate
# pre-activations, which can open some gates and close others for each instrument. In the package it is
# one line of `gated_unit_forward` (the `tags @ V` term; `local` is chapter 11's conditioning), and its
# gradient one line of the backward, `dV = tags^T Σ_t dpre` (`docs/backprop.md` §4):

# %%
print(inspect.getsource(ops.gated_unit_forward))
print(inspect.getsource(ops.gated_unit_backward))

# %% [markdown]
# At generation time the tags are fixed for the whole clip, so the fast sampler folds $V_l^\top
# \mathbf{m}$ into layer $l$'s bias **once per `generate` call** — conditioning costs nothing per sample.
# `fastgen.pack` gathers the weights for the Numba kernels; in its loop over layers, the line with
# `tags @ V` is the fold:

# %%
print(inspect.getsource(fastgen.pack))

# %% [markdown]
# ## Where tags come from
#
# A data folder may carry a `tags.csv` with a header `file,tags` and one row per file, tags separated by
# `;` — or, without it, each file's first sub-folder name is its tag. The built-in dataset uses the CSV:

# %%
root = ensure_builtin_dataset()
print((root / "tags.csv").read_text().splitlines()[:4], "...")
dataset = load_dataset(root)
train_clips, valid_clips = split_by_file(dataset)  # held-out files, stratified by tag
print(f"tag vocabulary {dataset.tag_vocab}; clip {dataset.clips[0].path} has tag vector {dataset.clips[0].tag_vector}")

# %% [markdown]
# ## Training a tag-conditioned model
#
# Exactly the loop of chapter 04, with the batch's tags passed along: `BatchSampler` returns each row's
# tag vector next to its codes. The model is the `tiny` preset with `n_tags=3`. (A few minutes on a laptop
# CPU; in quick mode a few seconds, which is far too short to learn the instruments.)

# %%
config = get_preset("tiny").config(n_tags=dataset.n_tags)
model = minwave.WaveNet(config, seed=0)
print(model.summary())
steps, batch, segment = (20, 4, 300) if QUICK else (800, 8, 1000)
sampler = BatchSampler(train_clips, dataset.n_tags, segment, model.receptive_field, batch, seed=0)
opt = minwave.Adam(model.params, lr=3e-3, clip_norm=1.0)
valid = validation_batches(valid_clips, dataset.n_tags, 1000, model.receptive_field, 8, max_rows=12)

history, start = [], time.perf_counter()
for step in range(1, steps + 1):
    x, tags = sampler.sample()  # (B, RF + segment) codes, (B, 3) one-hot tags
    loss, grads = model.loss_and_grads(x, tags)
    opt.step(model.params, grads)
    if step % max(1, steps // 4) == 0 or step == steps:
        val = np.mean([model.loss(x, t) for x, t in valid]) / np.log(2)
        history.append((step, val))
        print(f"step {step:4d}  train {loss / np.log(2):.2f}  validation {val:.2f} bits/sample")
print(f"{steps} steps in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# Do the tags matter to the model? Score every held-out row with its **true** tag and with each
# **wrong** one: if the model uses the tag, a wrong one must cost bits. We count the rows, not only the
# average, so that one clip cannot hide behind the others.


# %%
def row_bits(x, t):
    """Bits/sample of each row of a validation batch, tags t (B, G)."""
    return np.array([model.loss(x[i : i + 1], t[i : i + 1]) for i in range(len(x))]) / np.log(2)


true_bits = np.concatenate([row_bits(x, t) for x, t in valid])
wrong_bits = np.concatenate(  # per row, the cheaper of the two wrong tags
    [np.minimum(row_bits(x, np.roll(t, 1, 1)), row_bits(x, np.roll(t, 2, 1))) for x, t in valid]
)
costlier = np.mean(wrong_bits > true_bits)
print(f"true tags   {true_bits.mean():.3f} bits/sample (mean of {len(true_bits)} held-out rows)")
print(f"wrong tags  {wrong_bits.mean():.3f} bits/sample (the cheaper of the two wrong tags, per row)")
print(f"the wrong tag costs more bits on {costlier:.0%} of the rows")
if not QUICK:
    assert wrong_bits.mean() > true_bits.mean(), "after the full run the model should use its tag"

# %% [markdown]
# ## Generating each instrument
#
# One stream per tag, next to a real held-out clip of that instrument: listen to each pair.

# %%
seconds = 0.5 if QUICK else 3.0
n = int(seconds * dataset.sample_rate)
per_tag = 2  # streams per tag, for the classifier below
tag_rows = np.repeat(np.eye(dataset.n_tags, dtype=np.float32), per_tag, axis=0)  # (6, 3)
generated = minwave.mulaw_decode(minwave.generate(model, n, batch=len(tag_rows), tags=tag_rows, seed=0))  # (6, n)

fig, axes = plt.subplots(2, dataset.n_tags, figsize=(13, 5), sharex=True, sharey=True)
for col, tag in enumerate(dataset.tag_vocab):
    real = minwave.mulaw_decode(next(c for c in valid_clips if tag in c.tags).codes[:n])
    fake = generated[col * per_tag]
    for row, (name, audio) in enumerate([("real", real), ("generated", fake)]):
        axes[row, col].specgram(audio, NFFT=512, Fs=dataset.sample_rate, noverlap=384, cmap="magma", vmin=-120)
        axes[row, col].set(title=f"{name}: {tag}", ylim=(0, 6000))
        axes[row, col].grid(False)
        print(f"{tag}, {name}")
        display(Audio(audio[: 2 * dataset.sample_rate], rate=dataset.sample_rate, normalize=False))
for ax in axes[1]:
    ax.set_xlabel("time (s)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Are the tags obeyed? A classifier as the judge
#
# Listening is convincing but not a measurement. So: train a small classifier on **real** recordings to
# recognise the instrument from a short window, check it on held-out real clips, and then ask it which
# instrument each *generated* clip is.
#
# A judge that must name one of three instruments names one for anything, noise included: it would
# call hiss "pluck" and make a model that only hisses look obedient a third of the time. So the judge
# gets a fourth answer, **noise**, trained on white and low-passed noise and on the output of an
# untrained WaveNet; and every score of the trained model is set against the same score of a second
# untrained WaveNet (another seed), the baseline a model must beat to have learned anything.
#
# Features: the average log-energy in 40 frequency bands (log-spaced, 60 Hz–7 kHz) over a 0.25 s window.
# Classifier: multinomial logistic regression, trained with the package's softmax cross-entropy from
# chapter 04 and plain gradient descent. It gets its own split of the real clips, a third held out.

# %%
WINDOW = int(0.25 * dataset.sample_rate)
edges = np.geomspace(60, 7000, 41)  # 40 bands
CLASSES = dataset.tag_vocab + ["noise"]
NOISE = len(CLASSES) - 1


def features(audio):
    """audio (T,) -> (windows, 40) band log-energies of each 0.25 s window."""
    freqs, _, spec = stft(audio, fs=dataset.sample_rate, nperseg=512)  # (257 freqs, frames)
    power = np.abs(spec) ** 2
    band = np.digitize(freqs, edges) - 1  # which band each frequency falls in (-1 / 40: outside)
    frames_per_window = WINDOW // 256  # stft hop is nperseg/2 = 256 samples
    rows = []
    for start in range(0, power.shape[1] - frames_per_window + 1, frames_per_window):
        p = power[:, start : start + frames_per_window].mean(axis=1)
        rows.append([np.log(p[band == b].sum() + 1e-10) for b in range(40)])
    return np.array(rows)


def labelled(audios, label):
    X = [features(a) for a in audios]
    return np.concatenate(X), np.full(sum(len(f) for f in X), label)


noise_rng = np.random.default_rng(1)


def noise_clips(count, seconds=3.0):
    """White (width 1) and low-passed (moving average of 2…24 samples) noise at random levels, via μ-law."""
    clips = []
    for _ in range(count):
        x = noise_rng.standard_normal(int(seconds * dataset.sample_rate))
        width = int(noise_rng.integers(1, 25))
        x = np.convolve(x, np.ones(width) / width, mode="same")
        x *= noise_rng.uniform(0.05, 0.8) / np.abs(x).max()
        clips.append(minwave.mulaw_decode(minwave.mulaw_encode(x)))
    return clips


def untrained_output(seed, seconds=3.0):
    """What an untrained tag-conditioned WaveNet generates: one 3 s stream per tag."""
    untrained = minwave.WaveNet(config, seed=seed)
    eye = np.eye(dataset.n_tags, dtype=np.float32)
    codes = minwave.generate(untrained, int(seconds * dataset.sample_rate), batch=dataset.n_tags, tags=eye, seed=seed)
    return list(minwave.mulaw_decode(codes))


judge_train, judge_test = split_by_file(dataset, 1 / 3, seed=1)  # the judge's own split: a third of the clips held out
parts = [labelled([minwave.mulaw_decode(c.codes)], dataset.tag_vocab.index(c.tags[0])) for c in judge_train]
parts += [labelled(noise_clips(24) + untrained_output(seed=100), NOISE)]
X_train, y_train = map(np.concatenate, zip(*parts))
parts = [labelled([minwave.mulaw_decode(c.codes)], dataset.tag_vocab.index(c.tags[0])) for c in judge_test]
parts += [labelled(noise_clips(12), NOISE)]
X_test, y_test = map(np.concatenate, zip(*parts))
mean, std = X_train.mean(0), X_train.std(0) + 1e-6

W, b = np.zeros((40, len(CLASSES))), np.zeros(len(CLASSES))
Xn = (X_train - mean) / std
for _ in range(300):  # gradient descent on the mean cross-entropy
    loss, cache = ops.softmax_cross_entropy_forward(Xn @ W + b, y_train)
    dlogits = ops.softmax_cross_entropy_backward(1.0, cache)
    W -= 0.5 * (Xn.T @ dlogits + 1e-3 * W)
    b -= 0.5 * dlogits.sum(0)


def classify(X):
    return np.argmax(((X - mean) / std) @ W + b, axis=1)


said = classify(X_test)
print(f"judge: {len(X_train)} training windows, final loss {float(loss):.3f}")
print(f"held-out windows ({len(judge_test)} real clips and 12 noise clips), correct per class:")
per_class = {}
for k, name in enumerate(CLASSES):
    per_class[name] = np.mean(said[y_test == k] == k)
    print(f"  {name:6s} {per_class[name]:5.0%} of {np.sum(y_test == k)} windows")
assert min(per_class.values()) >= 0.7, "the judge cannot tell the held-out classes apart: no use as a judge"

# %% [markdown]
# Now the generated clips, each window labelled with the tag it was generated for — and, as the
# baseline, the same from an untrained WaveNet with another seed than the one the judge saw.


# %%
def judge(streams, rows):
    """confusion[asked tag, class said] over all 0.25 s windows of the streams."""
    confusion = np.zeros((dataset.n_tags, len(CLASSES)), dtype=int)
    for stream, tag_vector in zip(streams, rows):
        for k in classify(features(stream)):
            confusion[int(np.argmax(tag_vector)), k] += 1
    return confusion


baseline_streams = untrained_output(seed=7, seconds=seconds)
verdicts = {
    "trained": judge(generated, tag_rows),
    "untrained (baseline)": judge(baseline_streams, np.eye(dataset.n_tags)),
}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, (name, confusion) in zip(axes, verdicts.items()):
    as_asked = np.trace(confusion[:, : dataset.n_tags]) / confusion.sum()
    ax.imshow(confusion, cmap="Blues")
    for i in range(dataset.n_tags):
        for j in range(len(CLASSES)):
            ax.text(j, i, confusion[i, j], ha="center", va="center")
    ax.set(xticks=range(len(CLASSES)), yticks=range(dataset.n_tags), xticklabels=CLASSES)
    ax.set(yticklabels=dataset.tag_vocab, xlabel="the judge says", ylabel="generated for")
    ax.set_title(f"{name}: {as_asked:.0%} as asked")
    ax.grid(False)
    rates = ", ".join(f"{t} {confusion[i, i] / confusion[i].sum():.0%}" for i, t in enumerate(dataset.tag_vocab))
    noise = confusion[:, NOISE].sum() / confusion.sum()
    print(f"{name:22s} as asked: {as_asked:4.0%} ({rates}); called noise: {noise:.0%}")
plt.tight_layout()
plt.show()

# %% [markdown]
# Two measurements, two questions. The loss with wrong tags shows whether the model *uses* the tag:
# the rows printed above say on how many held-out rows a wrong tag costs bits, and by how much on
# average. The judge asks the harder question — does the generated audio sound like the instrument,
# and not merely like noise? Read its per-tag rates against the untrained baseline: only the margin
# over the baseline is evidence that training taught the model an instrument. After seconds of
# training (quick mode, the test suite) there is little margin to see; after the full run of this
# notebook read your own. Train longer or larger (`python -m minwave.train --preset small`) and run the
# same measurement on its checkpoint.
#
# ## From the command line
#
# `python -m minwave.train` conditions on tags automatically whenever the data has them, and
# `python -m minwave.generate --tags pluck` picks the instrument (several tags, comma-separated, are
# mixed as a multi-hot vector). `docs/conditioning.md` has the details.

# %% [markdown]
# ## Exercises
#
# 1. Generate with the tag vector `[0.5, 0.5, 0]` (half bell, half organ). What does the classifier say,
#    and what do you hear? Is the model ever trained on such a vector?
# 2. Plot the per-layer tag bias $V_l^\top \mathbf{m}$ for the three tags (`model.params["layers.0.cond.V"]`).
#    Which gate channels does each instrument open or close?
# 3. The classifier uses only average spectra. Train it on features that ignore pitch (subtract each
#    window's mean log-energy and use band *differences*) and check whether the generated clips are still
#    recognised: is the model learning timbre, or only the register each instrument plays in?
