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

import minwave
from minwave import fastgen, ops
from minwave.data import BatchSampler, load_dataset, split_by_file, validation_batches
from minwave.judge import N_CEPSTRA, QUIET, build_judge, window_features, window_spectra
from minwave.presets import get_preset
from minwave.quality import quality
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
# tag vector next to its codes. The model is the `tiny` preset with `n_tags=3`, at its learning rate
# (1e-2: at 3e-3 the wrong tag cost more bits at some checkpoints of 800 steps and not at others). (A
# minute or two on a laptop CPU; in quick mode a few seconds, which is far too short to learn the
# instruments.)

# %%
config = get_preset("tiny").config(n_tags=dataset.n_tags)
model = minwave.WaveNet(config, seed=0)
print(model.summary())
steps, batch, segment = (20, 4, 300) if QUICK else (800, 8, 1000)
sampler = BatchSampler(train_clips, dataset.n_tags, segment, model.receptive_field, batch, seed=0)
opt = minwave.Adam(model.params, lr=1e-2, clip_norm=1.0)  # the tiny preset's rate
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
seconds = 0.5 if QUICK else 2.0
n = int(seconds * dataset.sample_rate)
per_tag = 2  # streams per tag, for the judge below
tag_rows = np.repeat(np.eye(dataset.n_tags, dtype=np.float32), per_tag, axis=0)  # (6, 3)
generated = minwave.mulaw_decode(minwave.generate(model, n, batch=len(tag_rows), tags=tag_rows, seed=0))  # (6, n)

fig, axes = plt.subplots(2, dataset.n_tags, figsize=(13, 5), sharex=True, sharey=True, dpi=50)  # noise-like
# spectrograms do not compress: a low resolution keeps the notebook small
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
# Listening is convincing but not a measurement. So: fit a small classifier on **real** recordings to
# recognise the instrument from a short window, check it on held-out real clips, and then ask it which
# instrument each *generated* clip is.
#
# A judge that must name one of three instruments names one for anything, noise included: it would
# call hiss "pluck" and make a model that only hisses look obedient a third of the time. So the judge
# gets a fourth answer, **noise**, learned from white, low-, high- and band-passed noise and from the
# output of an untrained WaveNet; and every score of the trained model is set against the same score
# of a second untrained WaveNet (another seed), the baseline a model must beat to have learned anything.
#
# The judge is the package's `minwave.judge` (no model inside; `python -m minwave.bench judge` runs it
# on a checkpoint). Its features, for every 0.25 s window:
#
# * the **spectral envelope without its loudness**: the window's power spectrum summed into 40 mel
#   bands, $e_m = \ln E_m - \frac{1}{M}\sum_{m'} \ln E_{m'}$ — scaling the audio by $a$ adds $2 \ln a$ to
#   every $\ln E_m$, and subtracting their mean removes it — smoothed into its first 13 cepstral
#   coefficients (a DCT of $e$);
# * the window's **periodicity** (`minwave.quality`, chapter 08), which tells a tone from noise of the
#   same spectral shape;
# * the **slope** of its loudness in dB/s: a plucked string decays, an organ holds.
#
# The classifier is plain **5 nearest neighbours** in standardised feature space; a clip's verdict is
# the majority of its windows (those within 30 dB of its loudest: the rests between notes do not vote).
# Every real clip is learned twice more with noise 10–40 dB below it, so that an instrument with a
# noise floor — what a half-trained model makes — is still that instrument. The features, whole: each
# window's spectrum and envelope first, then the features from them:

# %%
print(inspect.getsource(window_spectra))
print(inspect.getsource(window_features))

# %% [markdown]
# The judge gets its own split of the real clips, a third held out, and it must recognise those, and
# noise it has not seen, before its verdicts on generated audio mean anything:


# %%
def untrained_output(seed, seconds=3.0):
    """What an untrained tag-conditioned WaveNet generates: one stream per tag."""
    untrained = minwave.WaveNet(config, seed=seed)
    eye = np.eye(dataset.n_tags, dtype=np.float32)
    codes = minwave.generate(untrained, int(seconds * dataset.sample_rate), batch=dataset.n_tags, tags=eye, seed=seed)
    return list(minwave.mulaw_decode(codes))


judge, held_out = build_judge(dataset, dataset.sample_rate, seed=1, noise=untrained_output(seed=100))
CLASSES = judge.classes  # the tags, then 'noise'
assert CLASSES[:-1] == dataset.tag_vocab
print(f"judge: {len(judge.train_y)} training windows of {len(CLASSES)} classes")
print("held-out clips (the judge's own split) and noise it has not seen, judged right:")
for name, row in held_out.items():
    clips, windows = row["clip_accuracy"], row["window_accuracy"]
    print(f"  {name:6s} {clips:5.0%} of {row['clips']} clips, {windows:5.0%} of their windows")
assert min(row["clip_accuracy"] for row in held_out.values()) >= 0.9, "no use as a judge: it fails on real clips"

fig, ax = plt.subplots(figsize=(9, 3))
for k, name in enumerate(CLASSES):  # the mean standardised feature vector of each class's training windows
    ax.plot(judge.train_z[judge.train_y == k].mean(axis=0), marker="o", label=name)
ax.set(xticks=range(N_CEPSTRA + 2), xticklabels=[f"c{j}" for j in range(1, N_CEPSTRA + 1)] + ["period.", "slope"])
ax.set(ylabel="mean z", title="what the judge sees: each class's average window")
ax.legend()
plt.show()

# %% [markdown]
# Now the generated clips, each window labelled with the tag it was generated for — and, as the
# baseline, the same from an untrained WaveNet with another seed than the one the judge saw.


# %%
def confusion(streams, rows):
    """confusion[asked tag, class said] over the 0.25 s windows of the streams that vote."""
    counts = np.zeros((dataset.n_tags, len(CLASSES)), dtype=int)
    for stream, tag_vector in zip(streams, rows):
        for said in judge.windows(stream):
            if said != QUIET:
                counts[int(np.argmax(tag_vector)), CLASSES.index(said)] += 1
    return counts


baseline_streams = untrained_output(seed=7, seconds=seconds)
runs = {
    "trained": (generated, tag_rows),
    "untrained (baseline)": (baseline_streams, np.eye(dataset.n_tags)),
}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, (name, (streams, rows)) in zip(axes, runs.items()):
    counts = confusion(streams, rows)
    as_asked = np.trace(counts[:, : dataset.n_tags]) / counts.sum()
    ax.imshow(counts, cmap="Blues")
    for i in range(dataset.n_tags):
        for j in range(len(CLASSES)):
            ax.text(j, i, counts[i, j], ha="center", va="center")
    ax.set(xticks=range(len(CLASSES)), yticks=range(dataset.n_tags), xticklabels=CLASSES)
    ax.set(yticklabels=dataset.tag_vocab, xlabel="the judge says", ylabel="generated for")
    ax.set_title(f"{name}: {as_asked:.0%} of windows as asked")
    ax.grid(False)
    verdicts = [judge.classify_clip(s) for s in streams]
    asked = [dataset.tag_vocab[int(np.argmax(r))] for r in rows]
    clips_as_asked = np.mean([v == a for v, a in zip(verdicts, asked)])
    print(f"{name:22s} clips as asked: {clips_as_asked:4.0%} (verdicts {verdicts}); windows called noise: "
          f"{counts[:, -1].sum() / counts.sum():.0%}")  # fmt: skip
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The shipped model, judged and heard
#
# The package ships a tag-conditioned model trained for longer on the same music (`docs/pretrained.md`:
# the command, the machine, the figures). The same judge scores it, and each instrument plays twice:
# first a held-out real clip, then the shipped model's clip for that tag (one player each), with both
# spectrograms.

# %%
shipped = minwave.load_pretrained("builtin-music")
assert shipped.tag_vocab == dataset.tag_vocab
shipped_seconds = 1.0 if QUICK else 2.0
one_per_tag = np.eye(dataset.n_tags, dtype=np.float32)
n_shipped = int(shipped_seconds * dataset.sample_rate)
shipped_clips = minwave.mulaw_decode(minwave.generate(shipped.model, n_shipped, batch=dataset.n_tags, tags=one_per_tag))
real_clips = {
    tag: next(minwave.mulaw_decode(c.codes) for c in valid_clips if c.tags[0] == tag) for tag in dataset.tag_vocab
}  # held out from training
fig, axes = plt.subplots(2, dataset.n_tags, figsize=(12, 5), sharey=True, dpi=50)
for i, tag in enumerate(dataset.tag_vocab):
    for row, (who, clip) in enumerate([("real", real_clips[tag]), ("shipped model", shipped_clips[i])]):
        clip = clip[: int(shipped_seconds * dataset.sample_rate)]
        axes[row, i].specgram(clip, NFFT=1024, Fs=dataset.sample_rate, noverlap=768, cmap="magma", vmin=-120)
        axes[row, i].set(ylim=(0, 4000), title=f"{who}, {tag}: judged {judge.classify_clip(clip)}, "
                         f"periodicity {quality(clip, dataset.sample_rate).periodicity:.2f}")  # fmt: skip
plt.tight_layout()
plt.show()
gap = np.zeros(int(0.3 * dataset.sample_rate))  # a short silence between the two
for i, tag in enumerate(dataset.tag_vocab):
    print(f"{tag}: {shipped_seconds:.0f} s of a real clip, then {shipped_seconds:.0f} s of the shipped model")
    display(Audio(np.concatenate([real_clips[tag][:n_shipped], gap, shipped_clips[i]]), rate=dataset.sample_rate))

# %% [markdown]
# Two measurements, two questions. The loss with wrong tags shows whether the model *uses* the tag:
# the rows printed above say on how many held-out rows a wrong tag costs bits, and by how much on
# average. The judge asks the harder question — does the generated audio sound like the instrument,
# and not merely like noise? Read its per-tag rates against the untrained baseline: only the margin
# over the baseline is evidence that training taught the model an instrument. After seconds of
# training (quick mode, the test suite) there is little margin to see; after the full run of this
# notebook read your own. Train longer or larger (`python -m minwave.train --preset small`) and run the
# same measurement on its checkpoint: `python -m minwave.bench judge --checkpoint RUN` generates 8 clips
# per tag, judges them with this judge (fitted at the model's sample rate) and prints, per tag, the
# fraction judged as asked and as noise next to the untrained baseline's (`docs/conditioning.md`).
#
# ## From the command line
#
# `python -m minwave.train` conditions on tags automatically whenever the data has them, and
# `python -m minwave.generate --tags pluck` picks the instrument (several tags, comma-separated, are
# mixed as a multi-hot vector). `docs/conditioning.md` has the details.

# %% [markdown]
# ## Exercises
#
# 1. Generate with the tag vector `[0.5, 0.5, 0]` (half bell, half organ). What does the judge say,
#    and what do you hear? Is the model ever trained on such a vector?
# 2. Plot the per-layer tag bias $V_l^\top \mathbf{m}$ for the three tags (`model.params["layers.0.cond.V"]`).
#    Which gate channels does each instrument open or close?
# 3. The judge's envelope keeps the register: the cepstra of a mel envelope move when the pitch does.
#    Transpose a held-out clip three semitones up (`scipy.signal.resample(audio, round(len(audio) * 2 ** (-3 / 12)))`,
#    played at the same rate) and ask `judge.windows` again. Is the judge recognising timbre, or the register each
#    instrument plays in? And the generated clips?
