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
import minwave.cli.train
import minwave.train
from minwave.data import load_dataset, split_by_file
from minwave.presets import get_preset
from minwave.quality import quality
from minwave.sampling import inverse_cdf
from minwave.synth import ensure_builtin_dataset

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (9, 3), "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## The data
#
# Synthesised melodies, the same number per instrument, a few seconds each at 16 kHz (the cell prints
# the counts and the range of lengths); the instrument is the clip's tag (from the dataset's `tags.csv`).
# The training script holds out 10 % of the files of each instrument
# for validation, so the validation loss is measured on melodies the model never saw.

# %%
root = ensure_builtin_dataset()
dataset = load_dataset(root)
for tag in dataset.tag_vocab:
    clips = [c for c in dataset.clips if tag in c.tags]
    print(f"{tag:6s} {len(clips)} clips, {sum(len(c) for c in clips) / dataset.sample_rate:.0f} s")
    display(Audio(minwave.mulaw_decode(clips[0].codes[: int(1.5 * dataset.sample_rate)]), rate=dataset.sample_rate))
lengths = [len(c) / dataset.sample_rate for c in dataset.clips]
print(f"{len(dataset.clips)} clips of {min(lengths):.1f} to {max(lengths):.1f} s")

# %% [markdown]
# ## One training step
#
# The heart of `minwave/train.py` is the loop of chapter 04, written once as `train_step`: compute the
# loss and every gradient by hand (`model.loss_and_grads`, on a batch of random segments, each with one
# receptive field of context in front), average them over the processes when there are several
# (docs/distributed.md), then one step of Adam. Everything else in the script (a learning-rate schedule,
# validation, checkpoints, samples, logging) is named helpers around this function, whole:

# %%
print(inspect.getsource(minwave.train.train_step))

# %% [markdown]
# The optimiser's step, whole: it clips the gradient's global norm first, then moves every parameter
# (and, with `--ema`, the moving average of the weights that validation, samples and export use):

# %%
print(inspect.getsource(minwave.Adam.step))

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
#
# The run is made in three legs (`--resume` continues a run exactly where its checkpoint stopped), and
# after each leg we generate one clip per instrument from the checkpoint: the listening lab at the end
# plays them in order, so you hear what the model learns as the loss falls.

# %%
run_dir = Path("runs") / f"notebook07-{time.strftime('%Y%m%d-%H%M%S')}"
args = ["--preset", "tiny", "--out", str(run_dir), "--seed", "0"]
legs = [20, 40, 60] if QUICK else [100, 200, 400]  # the step at the end of each leg (the preset's own: 2000)
if QUICK:
    args += [
        "--batch-size",
        "4",
        "--segment",
        "300",
        "--eval-every",
        "10",
        "--checkpoint-every",
        "10",
        "--log-every",
        "5",
        "--sample-seconds",
        "0",
        "--warmup",
        "5",  # the preset warms up for 100 steps, longer than the whole quick run
    ]
listen_seconds = 0.25 if QUICK else 2.0
at_checkpoint = {}  # step -> (3, n) generated audio, one row per tag
start = time.perf_counter()
for i, steps in enumerate(legs):
    leg = args + ["--steps", str(steps)] if i == 0 else ["--resume", "--out", str(run_dir), "--steps", str(steps)]
    print("python -m minwave.train", " ".join(leg))
    status = minwave.cli.train.main(leg)
    assert status == 0, "training failed: see the message above"
    ckpt = minwave.load(run_dir)
    tags = np.eye(len(ckpt.tag_vocab), dtype=np.float32)  # one stream per tag: rows of the identity
    n = int(listen_seconds * ckpt.sample_rate)
    at_checkpoint[ckpt.step] = minwave.mulaw_decode(minwave.generate(ckpt.model, n, batch=len(tags), tags=tags, seed=0))
print(f"{legs[-1]} steps in three legs, {time.perf_counter() - start:.0f} s")

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
assert valid[-1][1] < last["unigram_bits"], "the model has not learned more than the code histogram"

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
codes = minwave.generate(ckpt.model, n, batch=len(ckpt.tag_vocab), tags=tags, seed=0)  # (3, n) μ-law codes
audio = minwave.mulaw_decode(codes)  # (3, n) floats in [-1, 1]
assert np.array_equal(audio, at_checkpoint[ckpt.step])  # the same seed gives the same clips as after the last leg

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
# ## A listening lab
#
# Ears first, then one number to check them against: `minwave.quality` measures how *periodic* a clip
# is (a held note scores 0.9–1, white noise 0.1–0.2; the training script logs the same figure for its
# samples). Whatever you hear, the model cannot know melody: its receptive field is 16 ms, a fraction
# of one note. A receptive field that spans notes would need many more layers, or conditioning on a
# slower signal (chapter 11), as the paper does for speech.
#
# ### 1. The same seed at each checkpoint
#
# The clips generated after each leg of the run, for the first instrument: the same seed, so the same
# random numbers, read through a model that knows more each time.


# %%
def periodicity(audio):
    return quality(audio, ckpt.sample_rate).periodicity


real_tone = np.median([periodicity(minwave.mulaw_decode(c.codes)) for c in dataset.clips[:6]])
print(f"real clips of the dataset: periodicity {real_tone:.2f} (median of six)")
for step, clips in at_checkpoint.items():
    rows = [f"{tag} {periodicity(a):.2f}" for tag, a in zip(ckpt.tag_vocab, clips)]
    print(f"step {step:4d}: periodicity " + ", ".join(rows))
    display(Audio(clips[0], rate=ckpt.sample_rate))

# %% [markdown]
# ### 2. Temperature
#
# `generate(..., temperature=T)` divides the logits by $T$ before the softmax: below 1 the model plays
# safe (the likeliest codes get likelier), above 1 it takes risks. The same seed at four temperatures:

# %%
for temperature in (0.5, 0.8, 1.0, 1.2):
    a = minwave.mulaw_decode(minwave.generate(ckpt.model, n, tags=tags[0], temperature=temperature, seed=0)[0])
    print(f"temperature {temperature}: periodicity {periodicity(a):.2f}, RMS {np.sqrt(np.mean(a**2)):.3f}")
    display(Audio(a, rate=ckpt.sample_rate, normalize=False))

# %% [markdown]
# ### 3. Continuing a real clip, and exposure bias
#
# Prime the model with the start of a held-out clip (one it never trained on) and let it continue: that
# is **free-running** generation, each new sample drawn from the model's prediction given its *own*
# previous samples. Training never does that: it is **teacher-forced**, every prediction made from the
# *true* past. To hear the difference, draw each sample of the same stretch from the model's prediction
# given the true past instead (`model.forward` on the real clip, then the sampler's own rule,
# `sampling.inverse_cdf`). Teacher-forced, the model's errors never compound: each draw starts again
# from the truth. Free-running, an unusual draw becomes the past of the next prediction, and the model
# is asked about pasts it never saw in training — the gap between the two is called *exposure bias*.

# %%
_, held_out = split_by_file(dataset, 0.1, 0)  # the training script's split (seed 0): files it never saw
clip = held_out[0]
rf, sr = ckpt.model.receptive_field, ckpt.sample_rate
prime_len, cont_len = rf + int(0.25 * sr), int((0.25 if QUICK else 1.5) * sr)
real = clip.codes[: prime_len + cont_len]
tag_vector = np.asarray(clip.tag_vector, dtype=np.float32)

free = minwave.generate(ckpt.model, cont_len, tags=tag_vector, prime=real[:prime_len], seed=0)[0]
logits = ckpt.model.forward(real[None, :-1], tag_vector[None])[0, prime_len - 1 :]  # predicts real[prime_len:]
u = np.random.default_rng(0).random(len(logits))
forced = np.array([inverse_cdf(logits[i : i + 1], 1.0, u[i : i + 1])[0] for i in range(len(logits))])

lab = {
    "real continuation": real[prime_len:],
    "teacher-forced draws": forced,
    "free-running continuation": free,
}
for name, c in lab.items():
    a = minwave.mulaw_decode(c)
    print(f"{name:26s} periodicity {periodicity(a):.2f}")
    display(Audio(np.concatenate([minwave.mulaw_decode(real[:prime_len]), a]), rate=sr, normalize=False))
print(f"(each player starts with the {prime_len / sr:.2f} s prime from {clip.path}, tags {clip.tags})")

# %% [markdown]
# Listen for where the three part ways. The teacher-forced draws follow the real clip with some noise
# added, since each sample is a fresh guess from the true past. The free-running continuation starts
# like the prime, and then is on its own. How long it keeps the note, and the gap between its
# periodicity and the teacher-forced one, is how much this model suffers from exposure bias. (Why the
# package's default input layer was chosen to keep that gap small: `docs/free_running.md`.) Longer
# training (`--resume`), a bigger preset (`--preset small`: 2 stacks, 32 channels) and a GPU (chapter 10)
# all change these numbers: rerun the lab on their checkpoints.
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
tiny_lr = get_preset("tiny").lr
print(f"(exercise 2: --lr 0.03 is {0.03 / tiny_lr:.0f}× the tiny preset's learning rate, {tiny_lr:g})")

# %% [markdown]
# ## Exercises
#
# 1. Resume the run to four times as many steps and plot the curves again. Is the validation loss still
#    falling? Does the audio change in the way the numbers suggest?
# 2. Train with `--lr 0.03` (three times the `tiny` preset's 0.01). What happens to the training curve, and what does
#    gradient clipping (`--clip-norm`) change? The metrics log has the gradient norm of every logged step.
# 3. Record a few minutes of your own audio (one instrument, or speech), put it in a folder and train on
#    it with `--data`. Compare the unigram baseline of your data with the built-in one: what does it tell
#    you about the recordings?
