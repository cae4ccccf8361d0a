# %% [markdown]
# # 00 · What WaveNet is
#
# WaveNet (van den Oord et al., 2016, *A Generative Model for Raw Audio*) is a neural network that
# writes sound one sample at a time. In its plainest form it sees no notes, phonemes or spectrograms:
# it reads a short window of the past waveform — 2048 samples, 128 ms, for this book's default network;
# 16 ms for the `tiny` preset the chapters train — and says what the next sample is likely to be; then
# that sample is appended and it is asked again, 16 000 times for every second of audio. (The paper's
# text-to-speech WaveNet does see more: it is *locally conditioned* on linguistic features at a slower
# rate; chapter 11 conditions on notes and mel spectrograms the same way.)
#
# This book builds it from scratch with the `minwave` package: every layer is a pair of small NumPy
# functions, `forward` and `backward`, that you can read, plot and check. This first chapter states
# the one idea everything else serves, and shows the pieces we are going to take apart.

# %%
import os

QUICK = os.environ.get("MINWAVE_QUICK") == "1"  # set by the test suite: smaller runs, same code

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Audio, display

import minwave
from minwave.data import load_dataset
from minwave.presets import get_preset
from minwave.synth import ensure_builtin_dataset

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (9, 3), "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## Raw audio is a long list of numbers
#
# A digital recording is the air pressure at the microphone measured at regular instants. At the
# 16 kHz sample rate used throughout this book that is 16 000 numbers per second, each between −1 and 1.
# minwave comes with a small built-in dataset of synthesised melodies on three instruments (a plucked
# string, an organ and a bell); the first call renders it into a cache folder, about a second's work.

# %%
root = ensure_builtin_dataset()
dataset = load_dataset(root)
print(f"{len(dataset.clips)} clips, {dataset.seconds:.0f} s at {dataset.sample_rate} Hz, tags {dataset.tag_vocab}")
clip = dataset.clips[0]
audio = minwave.mulaw_decode(clip.codes)  # the dataset stores μ-law codes (chapter 01); decode to floats
print(f"{clip.path}: {len(audio)} samples = {len(audio) / 16000:.2f} s, tags {clip.tags}")
display(Audio(audio[: 2 * 16000], rate=16000))

# %%
sr = dataset.sample_rate
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
t = np.arange(len(audio)) / sr
axes[0].plot(t, audio, linewidth=0.3)
axes[0].set(title="two seconds of a clip", xlabel="time (s)", xlim=(0, 2))
zoom = slice(3000, 3000 + 160)  # 10 ms
axes[1].plot(t[zoom] * 1000, audio[zoom], ".-", markersize=3, linewidth=0.5)
axes[1].set(title="10 ms of it: 160 samples", xlabel="time (ms)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The one idea: predict the next sample
#
# Any joint distribution over a sequence can be written, exactly, with the chain rule of probability:
#
# $$p(\mathbf{x}) = \prod_{t=1}^{T} p(x_t \mid x_1, \dots, x_{t-1}).$$
#
# WaveNet models each factor with one network that looks at the past samples and outputs a
# distribution over the next one. Three consequences shape the whole design:
#
# * **Training is parallel.** All the factors of a recorded clip can be evaluated at once, because the
#   whole past is known: one forward pass over a clip gives every $p(x_t \mid x_{<t})$. The loss is
#   $-\log p(\mathbf{x}) = -\sum_t \log p(x_t \mid x_{<t})$, a sum of per-sample cross-entropies.
# * **Causality is a hard constraint.** The prediction for $x_t$ must not look at $x_t$ or anything
#   after it, or training would teach the network to copy the answer (chapter 02).
# * **Generation is sequential.** To write new audio we must sample $x_1$, feed it back, sample $x_2$,
#   and so on: 16 000 network evaluations per second of sound (chapter 08 makes that fast).
#
# The network needs to see far enough into the past to capture pitch (a 100 Hz tone repeats every 160
# samples) and a little of the note's envelope, yet stay cheap per sample. Dilated convolutions
# (chapter 03) give it a window of thousands of samples for a few dozen layers.

# %% [markdown]
# ## The network we will take apart
#
# `minwave.WaveNet` is the whole model. Its `summary()` lists the layers of the default configuration,
# two stacks of ten dilated layers, exactly as the chapters will introduce them.

# %%
model = minwave.WaveNet(minwave.WaveNetConfig(), seed=0)
print(model.summary())
tiny = get_preset("tiny").config()
for name, c in [("default", model.config), ("tiny preset", tiny)]:
    ms = 1000 * c.receptive_field / c.sample_rate
    print(f"{name:12s} reads {c.receptive_field} samples = {ms:.0f} ms of the past")
assert model.receptive_field == 2048 and tiny.receptive_field == 257  # the 128 ms and 16 ms of the text

# %% [markdown]
# The call that matters: `model.forward(codes)` takes a batch of sample sequences (as integer μ-law
# codes, chapter 01) and returns, for every position $t$, 256 logits — the distribution of the
# *next* sample $x_{t+1}$ given $x_{\le t}$.

# %%
codes = clip.codes[None, :4000]  # (batch 1, 4000 samples)
logits = model.forward(codes)  # (1, 4000, 256)
print("codes", codes.shape, "-> logits", logits.shape)
log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))  # log-softmax over the 256 classes
next_codes = codes[0, 1:]  # the sample each position must predict
log_p = log_probs[0, np.arange(len(next_codes)), next_codes]  # log p(x_{t+1} | x_≤t) for every t
print(f"log p(first 4000 samples) = {log_p.sum():.0f} nats = {-log_p.sum() / np.log(2) / 8000:.2f} kB to encode")

# %% [markdown]
# ## Bits per sample: one number to watch
#
# The average of $-\log_2 p(x_t \mid x_{<t})$ over samples is the **bits per sample** of the model: the
# size an ideal arithmetic coder driven by the model would need per sample. It is the number the
# training curves of this book plot. Three reference points:
#
# * **8 bits**: a uniform guess over 256 classes — what an untrained network scores (about).
# * **the unigram entropy**: a model that ignores the past and only knows how often each class occurs.
#   A WaveNet that has learned anything about the *signal* must go below this line.
# * **0 bits** would be a perfectly predictable signal; music is not, so real numbers stay well above.

# %%
from minwave.data import unigram_bits

untrained = -log_p.mean() / np.log(2)
model_loss = model.loss(codes) / np.log(2)  # the package's own loss, on positions with a full receptive field
print(f"uniform guess       {np.log2(256):.2f} bits/sample")
print(f"unigram entropy     {unigram_bits(dataset.clips):.2f} bits/sample   (the histogram of codes, chapter 01)")
print(f"untrained WaveNet   {untrained:.2f} bits/sample   (model.loss agrees: {model_loss:.2f})")

# %% [markdown]
# ## Plan of the book
#
# | chapter | what it adds |
# |---|---|
# | 01 audio as numbers | μ-law companding: 256 classes instead of 65 536 levels |
# | 02 causal convolutions | a prediction may only look at the past; the receptive field |
# | 03 dilated convolutions | a window of 1024 samples for 10 layers |
# | 04 a categorical output | a softmax over 256 classes; cross-entropy; bits per sample |
# | 05 gated activation units | tanh ⊙ σ, its backward pass, and the finite-difference check |
# | 06 residual and skip connections | what lets 30 layers train |
# | 07 training end to end | the built-in music, loss curves, listening to the result |
# | 08 fast generation | the queue algorithm: exact, and hundreds of times faster |
# | 09 conditioning on tags | choosing the instrument |
# | 10 on the GPU | the same code on CuPy |
# | 11 local conditioning | notes and mel spectrograms at a slower rate: a melody, a vocoder |
#
# Every chapter runs on a laptop CPU. When the test suite runs them it sets `MINWAVE_QUICK=1`, which
# shrinks the training runs so that all twelve notebooks finish in a few minutes; run them yourself
# without it to see the full experiments.

# %% [markdown]
# ## Exercises
#
# 1. The chain rule holds for *any* ordering of the samples. Why is the time order the natural one for
#    audio, and what would go wrong in generation with a random ordering?
# 2. A 16-bit PCM file costs 16 bits per sample. What compression ratio would a model reaching 4 bits
#    per sample give with an arithmetic coder? Compute the untrained model's figure from the cell above.
# 3. Change `WaveNetConfig()` to `WaveNetConfig(stacks=3)` and read `summary()`: which numbers grow in
#    proportion to the number of layers, and which do not?
