# %% [markdown]
# # 07 · Training end to end
#
# Every part is in place: μ-law classes (01), causal dilated convolutions (02–03), the softmax output and
# its loss (04), gated units (05), residual and skip paths (06). This chapter trains a WaveNet on the
# built-in tagged music with the package's training script, plots what it reports, and listens to what
# the model learned.

# %%
import inspect
import json
import os
import time
from pathlib import Path

QUICK = os.environ.get("MINWAVE_QUICK") == "1"  # set by the test suite: smaller runs, same code

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Audio, display

import minwave
import minwave.train
from minwave.data import load_dataset
from minwave.synth import ensure_builtin_dataset

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (9, 3), "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## The data
#
# 36 synthesised melodies, 12 per instrument, each 4–5 s at 16 kHz; the instrument is the clip's tag
# (from the dataset's `tags.csv`). The training script holds out 10 % of the files of each instrument
# for validation, so the validation loss is measured on melodies the model never saw.

# %%
root = ensure_builtin_dataset()
dataset = load_dataset(root)
for tag in dataset.tag_vocab:
    clips = [c for c in dataset.clips if tag in c.tags]
    print(f"{tag:6s} {len(clips)} clips, {sum(len(c) for c in clips) / dataset.sample_rate:.0f} s")
    display(Audio(minwave.mulaw_decode(clips[0].codes[: int(1.5 * dataset.sample_rate)]), rate=dataset.sample_rate))

# %% [markdown]
# ## One training step
#
# The heart of `minwave/train.py` is four lines: draw a batch of random segments (each with one
# receptive field of context in front), compute the loss and every gradient by hand, clip and apply Adam.

# %%
src = inspect.getsource(minwave.train.train)
start = src.index("            batch = device_batch(sampler.sample()")
print(src[start : src.index("\n", src.index("norm = optimizer.step", start))])

# %% [markdown]
# ## A real run
#
# `python -m minwave.train` does the rest: it loads the data, splits it, builds the model from a preset
# (`tiny` here: one stack of dilations 1…128, 16 channels), logs training and validation bits per sample
# against the unigram baseline, and writes checkpoints, a metrics log and audio samples to a run folder.
# The same command line works from a terminal; here we call its `main()` with the arguments.
#
# With the defaults of the `tiny` preset this takes a few minutes on a laptop CPU. In quick mode
# (`MINWAVE_QUICK=1`, the test suite) it is cut to a few dozen small steps, which is not enough to learn
# anything audible — run the notebook without it for the real experiment.

# %%
run_dir = Path("runs") / f"notebook07-{time.strftime('%Y%m%d-%H%M%S')}"
args = ["--preset", "tiny", "--out", str(run_dir), "--seed", "0"]
if QUICK:
    args += [
        "--steps",
        "30",
        "--batch-size",
        "4",
        "--segment",
        "300",
        "--eval-every",
        "10",
        "--checkpoint-every",
        "30",
        "--log-every",
        "5",
        "--sample-seconds",
        "0",
    ]
print("python -m minwave.train", " ".join(args))
start = time.perf_counter()
status = minwave.train.main(args)
print(f"exit status {status}, {time.perf_counter() - start:.0f} s")
assert status == 0, "training failed: see the message above"

# %% [markdown]
# ## Loss curves
#
# The run folder's `metrics.jsonl` has one JSON line per logged step. Training loss is averaged over the
# steps since the last log line; validation loss is measured on fixed held-out batches (so successive
# points are comparable). Both are in bits per sample; the dashed line is the unigram baseline, what
# a model scores that knows only how often each μ-law class occurs.

# %%
rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
train = [(r["step"], r["train_bits"]) for r in rows if r["train_bits"] is not None]
valid = [(r["step"], r["val_bits"]) for r in rows if r["val_bits"] is not None]
fig, ax = plt.subplots(figsize=(9, 3.5))
ax.plot(*zip(*train), label="training", alpha=0.7)
ax.plot(*zip(*valid), "o-", markersize=4, label="validation")
baseline = rows[-1]["unigram_bits"]
ax.axhline(baseline, color="gray", linestyle="--", label=f"unigram baseline ({baseline:.2f})")
ax.axhline(8, color="gray", linestyle=":", label="uniform (8 bits)")
ax.set(xlabel="step", ylabel="bits per sample", title="tiny preset on the built-in music")
ax.legend()
plt.show()
last = rows[-1]
print(
    f"final: training {last['train_bits']:.2f}, validation {valid[-1][1]:.2f} bits/sample "
    f"(baseline {last['unigram_bits']:.2f}); {last['samples_per_s'] / 1000:.1f}k samples/s, {last['wall_s']:.0f} s"
)

# %% [markdown]
# Below the baseline means the model predicts each sample better from its past than from the code
# histogram alone: it has learned something about the *signal* — periodicity, the shape of a wave, how
# a note decays. How far below is a measure of how much.
#
# ## Listening to what it learned
#
# The checkpoint holds everything needed to generate. `minwave.generate` samples one code at a time
# (chapter 08 explains how it does that fast); the model is conditioned on the instrument tag, so we ask
# for one clip per instrument (chapter 09 looks at this closely).

# %%
ckpt = minwave.load(run_dir)  # the checkpoint: model, tag vocabulary, step, …
print(f"step {ckpt.step}, tags {ckpt.tag_vocab}, receptive field {ckpt.model.receptive_field} samples")
seconds = 0.25 if QUICK else 2.0
n = int(seconds * ckpt.sample_rate)
tags = np.eye(len(ckpt.tag_vocab), dtype=np.float32)  # one stream per tag: rows of the identity
start = time.perf_counter()
codes = minwave.generate(ckpt.model, n, batch=len(ckpt.tag_vocab), tags=tags, seed=0)  # (3, n) μ-law codes
print(f"generated {codes.size} samples in {time.perf_counter() - start:.1f} s")
audio = minwave.mulaw_decode(codes)  # (3, n) floats in [-1, 1]

fig, axes = plt.subplots(2, len(ckpt.tag_vocab), figsize=(12, 4.5), sharex=True)
for col, tag in enumerate(ckpt.tag_vocab):
    print(tag)
    display(Audio(audio[col], rate=ckpt.sample_rate))
    t = np.arange(n) / ckpt.sample_rate
    axes[0, col].plot(t, audio[col], linewidth=0.3)
    axes[0, col].set(title=f"generated: {tag}", ylim=(-1, 1))
    axes[1, col].specgram(audio[col], NFFT=512, Fs=ckpt.sample_rate, noverlap=384, cmap="magma", vmin=-120)
    axes[1, col].set(xlabel="time (s)", ylim=(0, 6000))
    axes[1, col].grid(False)
axes[1, 0].set_ylabel("frequency (Hz)")
plt.tight_layout()
plt.show()

# %% [markdown]
# What to listen for. After a few hundred steps the `tiny` preset does not play notes yet: expect
# noisy, low-passed textures whose brightness and rhythm of bursts differ between the tags, rather than
# clean tones — the loss has fallen well below the baseline, but sampling one code at a time compounds
# every small error. It also cannot know melody: its receptive field is 16 ms, a fraction of one note.
# Longer training (`--resume`), a bigger preset (`--preset small`: 2 stacks, 32 channels) and a GPU
# (chapter 10) all help; a receptive field that spans notes would need many more layers, or conditioning
# on a slower signal, as the paper does for speech.
#
# ## Going on from here
#
# The run can be continued exactly where it stopped — the checkpoint holds the parameters, Adam's state
# and the batch sampler's random state — and more audio generated from the command line:
#
# ```bash
# python -m minwave.train --resume --out runs/notebook07-… --steps 2000
# python -m minwave.generate --checkpoint runs/notebook07-… --tags bell --seconds 4 --out bell.wav
# ```

# %%
print(f"python -m minwave.train --resume --out {run_dir} --steps {2 * ckpt.step}")
print(f"python -m minwave.generate --checkpoint {run_dir} --tags {ckpt.tag_vocab[0]} --seconds 4 --out out.wav")

# %% [markdown]
# ## Exercises
#
# 1. Resume the run to four times as many steps and plot the curves again. Is the validation loss still
#    falling? Does the audio change in the way the numbers suggest?
# 2. Train with `--lr 0.03` (ten times the preset). What happens to the training curve, and what does
#    gradient clipping (`--clip-norm`) change? The metrics log has the gradient norm of every logged step.
# 3. Record a few minutes of your own audio (one instrument, or speech), put it in a folder and train on
#    it with `--data`. Compare the unigram baseline of your data with the built-in one: what does it tell
#    you about the recordings?
