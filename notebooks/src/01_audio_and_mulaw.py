# %% [markdown]
# # 01 · Audio as numbers: μ-law and quantization
#
# WaveNet predicts a *class* for every sample: one of 256 levels. Audio is usually stored with 16 bits
# (65 536 levels), far too many classes for a softmax. This chapter shows how WaveNet gets down to
# 256 without the result sounding like an old telephone: **μ-law companding**, then 8-bit quantization.

# %%
import inspect
import os

QUICK = os.environ.get("MINWAVE_QUICK") == "1"  # set by the test suite: smaller runs, same code

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Audio, display

import minwave
from minwave.data import load_audio, load_dataset, unigram_bits
from minwave.mulaw import mulaw_compress
from minwave.synth import ensure_builtin_dataset

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (9, 3), "axes.grid": True, "grid.alpha": 0.3})
root = ensure_builtin_dataset()
dataset = load_dataset(root)
sr = dataset.sample_rate

# %% [markdown]
# ## A waveform and its spectrogram
#
# One clip of each instrument. The waveform shows loudness over time; the spectrogram (a short-time
# Fourier transform, brightness = energy in dB) shows which frequencies are present: the organ's
# steady harmonics, the plucked string's bright attack that mellows, the bell's inharmonic partials.


# %%
def first_clip(tag):
    return next(c for c in dataset.clips if tag in c.tags)


fig, axes = plt.subplots(2, 3, figsize=(12, 5), sharex=True)
for col, tag in enumerate(dataset.tag_vocab):
    x = minwave.mulaw_decode(first_clip(tag).codes)[: 3 * sr]  # 3 s, floats in [-1, 1]
    axes[0, col].plot(np.arange(len(x)) / sr, x, linewidth=0.3)
    axes[0, col].set_title(tag)
    axes[1, col].specgram(x, NFFT=512, Fs=sr, noverlap=384, cmap="magma", vmin=-120)
    axes[1, col].set(xlabel="time (s)", ylim=(0, 6000))
    axes[1, col].grid(False)
axes[1, 0].set_ylabel("frequency (Hz)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The companding curve
#
# μ-law (ITU-T G.711, the telephone standard) bends the amplitude axis before quantizing:
#
# $$F(x) = \operatorname{sign}(x)\,\frac{\ln(1 + \mu |x|)}{\ln(1 + \mu)}, \qquad \mu = 255.$$
#
# Quiet samples are spread over many levels, loud samples are squeezed together. The ear is roughly
# logarithmic in loudness, so a fixed *relative* error sounds about equally loud at every level;
# 256 equal steps on the curve give roughly that. Here is the package's code:

# %%
print(inspect.getsource(minwave.mulaw_encode))

# %%
x = np.linspace(-1, 1, 2001)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
axes[0].plot(x, mulaw_compress(x), label="μ-law F(x), μ = 255")
axes[0].plot(x, x, "--", label="linear")
axes[0].set(xlabel="amplitude x", ylabel="F(x)", title="the companding curve")
axes[0].legend()
# the gap between neighbouring levels: tiny near 0, wide near ±1 (linear: the same everywhere)
levels = minwave.mulaw_decode(np.arange(256))  # the 256 values the codes decode to
axes[1].semilogy((levels[1:] + levels[:-1]) / 2, np.diff(levels), ".", label="μ-law")
axes[1].axhline(2 / 255, color="C1", linestyle="--", label="8-bit linear")
axes[1].set(xlabel="amplitude", ylabel="step to the next level", title="quantization step size")
axes[1].legend()
plt.tight_layout()
plt.show()
print("smallest μ-law step:", np.diff(levels).min(), "  largest:", np.diff(levels).max(), "  linear step:", 2 / 255)

# %% [markdown]
# ## 8-bit linear vs 8-bit μ-law: the error, measured and heard
#
# Both use 256 levels. Linear quantization has the same step everywhere, so a quiet passage is
# quantized as coarsely as a loud one. We measure the signal-to-noise ratio (SNR) of each on the same
# clip played loud (peak 0.8) and quiet (peak 0.02, a soft passage in a real recording).
#
# The source is the 16-bit WAV file (`load_audio`), not the dataset's codes, which are μ-law already.
# Linear 8-bit quantization is not in the package (WaveNet does not use it), so it is the two lines below.


# %%
def linear8(x):
    """Round to the nearest of 256 equally spaced levels in [-1, 1]."""
    return np.round((np.clip(x, -1, 1) + 1) / 2 * 255) / 255 * 2 - 1


def snr_db(clean, noisy):
    return 10 * np.log10(np.sum(clean**2) / np.sum((clean - noisy) ** 2))


pluck = load_audio(root / first_clip("pluck").path, sr)[: 2 * sr]  # the 16-bit WAV itself, not μ-law codes
rows, snr = [], {}
for name, gain in [("loud (peak 0.8)", 1.0), ("quiet (peak 0.02)", 0.025)]:
    clean = pluck * gain
    mu = minwave.mulaw_decode(minwave.mulaw_encode(clean))
    lin = linear8(clean)
    rows.append((name, clean, mu, lin))
    snr[name] = snr_db(clean, lin), snr_db(clean, mu)
    print(f"{name:18s}  SNR linear 8-bit {snr[name][0]:5.1f} dB   μ-law 8-bit {snr[name][1]:5.1f} dB")
(lin_loud, mu_loud), (lin_quiet, mu_quiet) = snr.values()
print(f"32 dB quieter: μ-law loses {mu_loud - mu_quiet:.1f} dB of SNR, linear {lin_loud - lin_quiet:.1f} dB")
assert mu_loud - mu_quiet < 12 < 30 < lin_loud - lin_quiet and mu_loud > lin_loud  # the claims below

# %% [markdown]
# Made 32 dB quieter, the μ-law version loses about 8 dB of SNR (its error shrinks with the signal,
# though not quite in proportion), while the linear quantizer's error stays the same size, so its SNR
# falls by about the full 32 dB:
# the noise is as loud as the music. Even on the loud clip μ-law wins, because most samples of a
# decaying note are quiet. The error against amplitude shows why:

# %%
_, clean, mu, lin = rows[0]
bins = np.geomspace(1e-4, 1, 25)  # |sample| bands, evenly spaced in dB
which = np.digitize(np.abs(clean), bins)
fig, ax = plt.subplots(figsize=(8, 3))
for name, y in [("linear 8-bit", lin), ("μ-law 8-bit", mu)]:
    rms = [np.sqrt(np.mean((clean - y)[which == i] ** 2)) if np.any(which == i) else np.nan for i in range(1, 25)]
    ax.loglog(np.sqrt(bins[1:] * bins[:-1]), rms, "o-", markersize=3, label=name)
ax.set(xlabel="|sample|", ylabel="RMS error", title="quantization error against amplitude (loud clip)")
ax.legend()
plt.show()

# %% [markdown]
# Listen to the quiet version (turn the volume up; the players are not normalised, so levels are
# honest — the quiet clip is quiet). Linear 8-bit adds an audible grainy noise; μ-law sounds clean.

# %%
_, clean, mu, lin = rows[1]
boost = 0.8 / np.abs(clean).max()  # play all three at the loud level so the noise can be heard
for name, y in [("original", clean), ("linear 8-bit", lin), ("μ-law 8-bit", mu)]:
    print(name)
    display(Audio(np.clip(y * boost, -1, 1)[: int(1.5 * sr)], rate=sr, normalize=False))

# %% [markdown]
# ## The classes the network will predict
#
# After companding, every sample of the dataset is an integer code 0…255 (silence is 128). The
# histogram of codes over the whole dataset is the distribution a network would predict if it ignored
# the past; its entropy, the **unigram baseline**, is the line every training curve must get below.

# %%
counts = sum(np.bincount(c.codes, minlength=256) for c in dataset.clips)
fig, ax = plt.subplots(figsize=(9, 3))
ax.bar(np.arange(256), counts / counts.sum(), width=1.0)
ax.set(xlabel="μ-law code", ylabel="frequency", title="code histogram of the built-in dataset")
plt.show()
print(f"unigram entropy: {unigram_bits(dataset.clips):.2f} bits/sample (8.00 would be uniform)")

# %% [markdown]
# The histogram is spread over the whole range because μ-law did its job: a linear quantizer would
# have piled the quiet samples into the few codes around 128.

# %%
lin_codes = np.round((np.concatenate([minwave.mulaw_decode(c.codes) for c in dataset.clips]) + 1) / 2 * 255)
p = np.bincount(lin_codes.astype(int), minlength=256) / len(lin_codes)
print(f"entropy of linear 8-bit codes: {-(p[p > 0] * np.log2(p[p > 0])).sum():.2f} bits/sample")

# %% [markdown]
# ## Exercises
#
# 1. `mulaw_encode` maps 0.0 to code 128, −1 to 0 and +1 to 255. Which code does a sample of 0.001
#    get, and which sample value does that code decode to? Check with the functions above.
# 2. Repeat the SNR measurement with `quantization_channels=16` (4-bit μ-law) and `mulaw_decode(...,
#    16)`. How many dB does each bit buy? Does the rule "6 dB per bit" of linear quantization hold?
# 3. Why is the entropy of the linear codes lower than the entropy of the μ-law codes, even though
#    linear quantization sounds worse? (Hint: what does a low entropy mean for a *predictor*?)
