# %% [markdown]
# # 08 · Fast generation
#
# Training sees a whole clip at once; generation cannot. To write a second of audio the network must be
# run 16 000 times, each time on a history that includes the sample it just drew. Done naively, every one
# of those runs recomputes the whole receptive field. This chapter shows the naive sampler, the
# **queue algorithm** of fast-WaveNet (Paine et al., 2016) that removes the redundancy, checks that the
# two produce exactly the same audio, and measures how their costs grow with depth.

# %%
import inspect
import os
import time

QUICK = os.environ.get("MINWAVE_QUICK") == "1"  # set by the test suite: smaller runs, same code

import matplotlib.pyplot as plt
import numpy as np

import minwave
from minwave import fastgen
from minwave.sampling import naive_generate
from minwave.threads import set_blas_threads

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (9, 3), "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## The naive sampler: the specification
#
# For each new sample, run the ordinary `model.forward` over the last RF codes and draw from its last
# output. It is obviously right — it *is* the model — and its cost per sample is a whole forward pass
# over RF positions: $O(\mathrm{RF} \cdot L)$, most of it recomputing values already computed for the
# previous sample.

# %%
print(inspect.getsource(naive_generate))

# %% [markdown]
# ## The queue algorithm
#
# Look at the dilated stack again (chapter 03). When sample $t+1$ arrives, only *one* new node per layer
# has to be computed: the rightmost column. Each of those needs the present input of its layer (just
# computed below it) and the layer's input from $d$ steps ago — which was computed $d$ steps ago and can
# simply be kept. So every layer keeps a first-in-first-out **queue** of its last $(k-1)\,d$ inputs:
# read the oldest, push the newest. One step costs one pass down the stack, $O(L)$, whatever the
# receptive field.

# %%
dilations, n_steps = [1, 2, 4, 8], 16
fig, ax = plt.subplots(figsize=(9, 3))
for layer, d in enumerate(dilations, start=1):
    t = n_steps - 1
    ax.plot([t - d, t], [layer - 1, layer], color="C3", linewidth=1.5)
    ax.plot([t, t], [layer - 1, layer], color="C3", linewidth=1.5)
    ax.add_patch(plt.Rectangle((t - d - 0.4, layer - 1 - 0.25), d - 0.2, 0.5, color="C1", alpha=0.25))
for layer in range(len(dilations) + 1):
    ax.plot(range(n_steps - 1), [layer] * (n_steps - 1), "o", color="0.7", markersize=4)
    ax.plot(n_steps - 1, layer, "o", color="C3", markersize=7)
ax.set(
    yticks=range(5),
    yticklabels=["input"] + [f"layer {i + 1} (d={d})" for i, d in enumerate(dilations)],
    xlabel="time →",
    title="one generation step: compute the red column; read the rest from the queues (shaded)",
)
ax.grid(False)
plt.show()

# %% [markdown]
# minwave's fast sampler runs that loop compiled with Numba, all time steps in one call (the queues are
# ring buffers indexed by $t \bmod (k-1)d$). One step of the whole network, all layers (the loop over
# `range(L)`), then the skip sum and the output head:

# %%
print(inspect.getsource(fastgen.network_step.py_func))

# %% [markdown]
# ## Exact agreement
#
# Both samplers follow one contract (see `help(minwave.generate)`): the same uniforms drawn up
# front from the seed, the same inverse-CDF rule in float64. So with the same seed they produce the same
# codes. The model here is untrained, with the output biases nudged so that the output is not uniform
# noise; agreement does not depend on training.

# %%
config = minwave.WaveNetConfig(
    stacks=2, layers_per_stack=6, residual_channels=16, dilation_channels=16, skip_channels=64, n_tags=3
)
model = minwave.WaveNet(config, seed=0)
model.params["head.b2"] += np.random.default_rng(0).standard_normal(256).astype(np.float32)
tags = np.eye(3, dtype=np.float32)  # three streams, one per tag
n = 300 if QUICK else 2000

fast = minwave.generate(model, n, batch=3, tags=tags, seed=1, method="fast")
naive = minwave.generate(model, n, batch=3, tags=tags, seed=1, method="naive")
same = fast == naive
print(f"{fast.shape} codes; identical: {same.all()}")
for b in np.flatnonzero(~same.all(axis=1)):  # rare: see below
    print(f"  stream {b} parts ways at sample {np.argmax(~same[b])}")
assert same.all(), "fast and naive samplers disagree"

# %% [markdown]
# "The same" has one fine print. The two compute the logits in float32 in different orders, so they
# differ by rounding; a draw can come out differently only if its uniform number falls between the two
# slightly different CDFs at some class boundary — measured at a few in ten million draws for a freshly
# initialised network, and at about one in ten thousand for a deliberately over-confident one (the same
# initial weights with `head.W2` scaled ×30; `docs/generation.md` §5).
# Short outputs agree exactly; a long one may part ways once, after which both continuations are
# still exact samples from the model.

# %% [markdown]
# The logits themselves agree to float32 rounding (the two compute the same sums in different orders);
# `fastgen.teacher_forced_logits` runs the queue algorithm on given codes instead of sampled ones:

# %%
codes = fast[:, :1000]
queue_logits = fastgen.teacher_forced_logits(model, codes, tags)
forward_logits = model.forward(codes, tags)
gap, size = np.abs(queue_logits - forward_logits).max(), np.abs(forward_logits).max()
print(f"max |queue - forward| = {gap:.1e}  (logits of size {size:.1f})")
assert gap < 1e-4 * max(size, 1.0), "the queue algorithm's logits are not the model's"

# %% [markdown]
# ## Timings against depth
#
# One stack of $L$ layers with dilations $1 … 2^{L-1}$, so the receptive field doubles with each layer.
# Naive cost per sample grows like $\mathrm{RF} \cdot L$ (timed after a prime of RF samples, so that every
# window is full); the queue algorithm's like $L$. (The first call
# of the fast sampler compiles it — or loads it from Numba's cache — so we warm it up before timing.)
# The clock is the thread's CPU time (`time.thread_time`, as `python -m minwave.bench generate` uses):
# wall time on a busy machine also counts the time the OS gave to other programs, and can make a deeper
# network look faster than a shallower one.

# %%
minwave.generate(minwave.WaveNet(minwave.WaveNetConfig(stacks=1, layers_per_stack=2)), 10)  # compile / load the cache
set_blas_threads(1)  # the naive sampler's products on this thread alone, so its CPU time counts all the work


def per_sample(model, method, n, prime=None):
    """CPU seconds of this thread per generated sample (one BLAS thread: see the cell above)."""
    start = time.thread_time()
    minwave.generate(model, n, method=method, prime=prime)
    return (time.thread_time() - start) / n


depths = [2, 4, 6, 8] if QUICK else [2, 4, 6, 8, 10, 11]
rows = []
for L in depths:
    m = minwave.WaveNet(minwave.WaveNetConfig(stacks=1, layers_per_stack=L), seed=0)  # 32 channels, as the default
    full_window = np.full(m.receptive_field, 128)  # a prime of RF silence codes: every window is full length
    t_naive = per_sample(m, "naive", 20 if QUICK else 200, prime=full_window)
    t_fast = per_sample(m, "fast", 2000 if QUICK else 16000)
    rows.append((L, m.receptive_field, t_naive, t_fast))
    print(
        f"L = {L:2d}  RF = {m.receptive_field:5d}   naive {1e3 * t_naive:7.2f} ms/sample   "
        f"fast {1e6 * t_fast:6.1f} µs/sample   ({t_naive / t_fast:5.0f}× faster)"
    )

L_, rf_, naive_, fast_ = map(np.array, zip(*rows))
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.semilogy(L_, naive_ * 1e3, "o-", label="naive: forward over the receptive field")
ax.semilogy(L_, fast_ * 1e3, "o-", label="fast: queues")
for L, rf, t in zip(L_, rf_, naive_):
    ax.annotate(f"RF {rf}", (L, t * 1e3), textcoords="offset points", xytext=(-10, 6), fontsize=8)
ax.set(xlabel="layers (one stack, dilations 1 … 2^(L-1))", ylabel="ms per sample", title="cost of one generated sample")
ax.legend()
plt.show()

# %% [markdown]
# ## Real-time factor
#
# The **real-time factor** is seconds of audio produced per second of computation: above 1, generation
# keeps up with playback. It depends on the model's size and on how many streams are generated together
# (a batch shares each weight read between streams). Measured here in this thread's CPU time, one core:

# %%
from minwave.presets import PRESETS

n = 4000 if QUICK else 32000
print(f"{'model':36s} {'batch':>5s} {'samples/s':>10s} {'real-time factor':>17s}")
for name in ["tiny", "small"] + ([] if QUICK else ["paper"]):
    m = minwave.WaveNet(PRESETS[name].config(), seed=0)
    for batch in (1, 4):
        start = time.thread_time()
        minwave.generate(m, n, batch=batch)
        rate = batch * n / (time.thread_time() - start)
        desc = f"{name}: {m.config.n_layers} layers, {m.config.residual_channels} ch"
        print(f"{desc:36s} {batch:5d} {rate:10.0f} {rate / m.config.sample_rate:17.2f}")

# %% [markdown]
# The naive sampler is no competitor here: at the receptive field of the default network (2048, the last
# row of the depth table) it is hundreds of times slower than the queues (the table prints the factor),
# and the gap doubles with every layer added. `docs/generation.md` has the derivation and more
# measurements.

# %% [markdown]
# ## A trained model, played
#
# Everything above ran on untrained weights, because speed and exactness do not depend on training. The
# package ships a trained model of the built-in music (`docs/pretrained.md` gives the command that made
# it): the same sampler plays it. Three instruments, one stream each, generated together; the check of
# exact agreement is repeated on the trained weights (a short stretch: the naive sampler is slow), and the
# time is this thread's CPU time.

# %%
from IPython.display import Audio, display

from minwave.quality import quality

shipped = minwave.load_pretrained("builtin-music")
print(shipped.model.summary())
rate = shipped.sample_rate
tags = np.eye(len(shipped.tag_vocab), dtype=np.float32)  # one stream per tag
check = 200 if QUICK else 1000
fast = minwave.generate(shipped.model, check, batch=len(tags), tags=tags, seed=0)
naive = minwave.generate(shipped.model, check, batch=len(tags), tags=tags, seed=0, method="naive")
print(f"fast == naive on the trained model, {check} samples x {len(tags)} streams: {(fast == naive).all()}")
assert (fast == naive).all(), "the samplers disagree on the trained model"

seconds = 1.0 if QUICK else 4.0
start = time.thread_time()
clips = minwave.mulaw_decode(minwave.generate(shipped.model, int(seconds * rate), batch=len(tags), tags=tags, seed=0))
cpu = time.thread_time() - start
print(
    f"{len(tags)} x {seconds:.0f} s generated in {cpu:.1f} s of CPU time: {len(tags) * seconds / cpu:.1f} x real time"
)
fig, axes = plt.subplots(1, len(tags), figsize=(12, 3), sharey=True)
for ax, tag, clip in zip(axes, shipped.tag_vocab, clips):
    q = quality(clip, rate)
    ax.specgram(clip, NFFT=1024, Fs=rate, noverlap=768, cmap="magma", vmin=-120)
    ax.set(ylim=(0, 4000), title=f"{tag}: periodicity {q.periodicity:.2f}", xlabel="s")
    print(f"{tag:6s} periodicity {q.periodicity:.2f}, pitch {q.pitch_hz:.0f} Hz")
axes[0].set_ylabel("Hz")
plt.tight_layout()
plt.show()
for tag, clip in zip(shipped.tag_vocab, clips):
    print(tag)
    display(Audio(clip, rate=rate))

# %% [markdown]
# Read the periodicity beside the pictures: a held note scores 0.9–1 and noise 0.1–0.2 (chapter 07). The
# card in `docs/pretrained.md` reports the same figures over more clips, and what the model still lacks.

# %% [markdown]
# ## Exercises
#
# 1. Why must the fast sampler process the prime (the history given with `prime=`) sample by sample
#    instead of all at once, even though the prime is known in advance? What does it compute for it?
# 2. Time `minwave.generate(model, n, batch=B)` for B = 1, 2, 4, 8, 16 and plot samples per second. Where does
#    batching stop helping, and why (think of what is read from memory per step)?
# 3. The queue of layer $l$ holds $(k-1)\,d_l$ vectors of R floats. How much memory do all the queues of
#    the `paper` preset take per stream? Compare with the activations a training step keeps.
