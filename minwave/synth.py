"""The built-in dataset: short melodies from three synthesised instruments, tagged by instrument.

No download: the first call to `ensure_builtin_dataset()` renders the clips with NumPy (a few seconds)
and writes them as ordinary 16-bit WAV files plus a `tags.csv`, so the folder is read by `data.py`
exactly like a folder of your own recordings:

    ~/.cache/minwave/builtin-music-v4-16000/
        bell_00.wav ... bell_39.wav  organ_00.wav ...  pluck_39.wav
        bell_00.notes.csv ...        the score of each clip: onset_s,duration_s,midi_pitch (local conditioning)
        tags.csv                     file,tags / pluck_03.wav,pluck / ...
        .manifest.json               written last: its presence marks the folder as complete (hidden, so
                                     data.py does not report it as a file that is not audio)

The instruments are chosen to be easy to tell apart by ear and by spectrum:

    pluck   Karplus–Strong plucked string: a noise burst circulating in a delay line one period
            long, low-passed on every trip, so it starts bright and mellows as it decays.
    organ   additive synthesis: a few steady harmonics (drawbar-like), slow attack, no decay.
    bell    Chowning FM: a carrier at f modulated at 1.4 f, so the partials f ± k·1.4 f are
            inharmonic; the modulation index and the amplitude both decay exponentially.

Every clip is a melody on a musical scale (major, natural minor, major/minor pentatonic, dorian) with
its own key, tempo and rhythm, drawn from `np.random.default_rng([SEED, instrument, clip])`, so the
files are byte-identical on every build (with the same NumPy/libsndfile; libm differences between
machines could in principle flip the last bit of a 16-bit sample).

Time legend: T samples; times in seconds are named `*_s`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from .conditioning import Note, midi_to_hz

DATASET_NAME = "builtin-music"
DATASET_VERSION = 4  # bump when the files change, so old caches are not reused (2: notes.csv; 3: 40 clips
# each; 4: melodies cover each instrument's range evenly)
SEED = 20240517
COMPOSE_SEED = 20240518  # compose()'s melodies: a stream the dataset never draws from
INSTRUMENTS = ("pluck", "organ", "bell")
CLIPS_PER_INSTRUMENT = 40  # 40 × 3 clips of 3.5-6 s: 592 s of music (12 gave 177 s, too few pitches to generalise)
PEAK = 0.8  # peak-normalise every clip to this absolute amplitude
MANIFEST = ".manifest.json"  # hidden: a folder scan (data.py) skips it, so loading the music warns of nothing
NOTES_SUFFIX = ".notes.csv"  # pluck_03.wav's score is pluck_03.notes.csv (conditioning.NOTES_SUFFIX)

# Scale steps in semitones above the root, one octave.
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "natural_minor": (0, 2, 3, 5, 7, 8, 10),
    "major_pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
}
# The lowest and highest MIDI note each instrument plays (pluck low, organ middle, bell high): two octaves
# each, walked evenly, so every note of the range is heard for seconds, not fractions of one (version 3's
# walks from a root piled up in the middle: the organ's C5 sounded for 0.4 s of 190 s).
REGISTERS = {"pluck": (36, 60), "organ": (53, 77), "bell": (67, 91)}
TAIL_S = {"pluck": 0.05, "organ": 0.08, "bell": 0.5}  # a clip's last note's release (the bell rings on)


def default_cache_dir() -> Path:
    """$MINWAVE_CACHE if set, else ~/.cache/minwave."""
    env = os.environ.get("MINWAVE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "minwave"


def ensure_builtin_dataset(root: str | Path | None = None, sample_rate: int = 16000) -> Path:
    """Return the folder of the built-in dataset under `root`, building it on first use.

    root defaults to `default_cache_dir()`; the dataset lives in `root/builtin-music-v2-<rate>/`.
    The clips are rendered directly at `sample_rate` (no resampling). The folder is built in a
    temporary sibling and renamed into place in one step, so a killed or concurrent build never
    leaves a half-written dataset; a complete folder (one with a valid manifest) is reused untouched.
    """
    if int(sample_rate) != sample_rate or sample_rate < 8000:
        raise ValueError(f"sample_rate must be an integer >= 8000 Hz, got {sample_rate!r}")
    sample_rate = int(sample_rate)
    parent = Path(root).expanduser() if root is not None else default_cache_dir()
    final = parent / f"{DATASET_NAME}-v{DATASET_VERSION}-{sample_rate}"
    if _is_complete(final):
        return final

    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=parent))
    try:
        _write_dataset(tmp, sample_rate)
        if final.exists() and not _is_complete(final):
            # Not something we leave behind (we only ever rename complete folders into place):
            # an edited or damaged copy. Move it aside, then remove it.
            stale = Path(tempfile.mkdtemp(prefix=f".{final.name}.stale-", dir=parent))
            os.replace(final, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not _is_complete(final):  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # no-op after a successful rename
    return final


def _is_complete(folder: Path) -> bool:
    """True when folder holds a manifest and every file it lists, with the size it lists."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        return all((folder / name).stat().st_size == entry["bytes"] for name, entry in manifest["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _write_dataset(folder: Path, sample_rate: int) -> None:
    rows, files = [], {}
    for i, instrument in enumerate(INSTRUMENTS):
        for j in range(CLIPS_PER_INSTRUMENT):
            rng = np.random.default_rng([SEED, i, j])  # one stream per clip: clips are independent
            audio, notes = render_clip_and_notes(instrument, rng, sample_rate)  # (T,), the score
            name = f"{instrument}_{j:02d}.wav"
            sf.write(folder / name, audio, sample_rate, subtype="PCM_16")
            rows.append(f"{name},{instrument}")
            files[name] = {"samples": len(audio), "bytes": (folder / name).stat().st_size}
            notes_name = f"{instrument}_{j:02d}{NOTES_SUFFIX}"
            _write_notes(folder / notes_name, notes)
            files[notes_name] = {"samples": 0, "bytes": (folder / notes_name).stat().st_size}
    (folder / "tags.csv").write_text("file,tags\n" + "\n".join(rows) + "\n")
    files["tags.csv"] = {"samples": 0, "bytes": (folder / "tags.csv").stat().st_size}
    manifest = {
        "name": DATASET_NAME,
        "version": DATASET_VERSION,
        "sample_rate": sample_rate,
        "seconds": round(sum(f["samples"] for f in files.values()) / sample_rate, 3),
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")  # last: marks completeness


# ---------------------------------------------------------------------------------------------------
# Melodies


def random_melody(rng: np.random.Generator, instrument: str) -> list[tuple[int, float]]:
    """A short melody: [(midi_note, duration_s), ...], about 3.5-4.5 s of notes.

    A random walk over the notes of a random scale (random key) inside the instrument's REGISTERS range:
    mostly steps, sometimes leaps, reflected at the range's ends, from a uniformly drawn first note, so
    the walk visits the whole range evenly. Note lengths are drawn from {1/2, 1, 3/2, 2} beats at a random
    tempo; the melody ends on the key's root nearest its last note, held, for a sense of closure.
    """
    scale = SCALES[list(SCALES)[rng.integers(len(SCALES))]]
    key = int(rng.integers(12))  # pitch class of the root
    low, high = REGISTERS[instrument]
    allowed = [p for p in range(low, high + 1) if (p - key) % 12 in scale]  # the scale's notes in range
    beat_s = 60.0 / rng.uniform(80, 150)
    target_s = rng.uniform(3.5, 4.5)
    last = len(allowed) - 1

    notes, i, total_s = [], int(rng.integers(len(allowed))), 0.0
    while total_s < target_s:
        beats = rng.choice([0.5, 1.0, 1.0, 1.0, 1.5, 2.0])
        notes.append((allowed[i], beats * beat_s))
        total_s += beats * beat_s
        i += int(rng.choice([-2, -1, -1, 1, 1, 2, 3, -3]))
        i = abs(i) if i < 0 else (2 * last - i if i > last else i)  # reflect at the range's ends
    roots = [p for p in allowed if (p - key) % 12 == 0]
    root = min(roots, key=lambda p: abs(p - notes[-1][0]))
    notes[-1] = (root, max(notes[-1][1], 2 * beat_s))  # resolve to the root, held
    return notes


def compose(instrument: str, seconds: float, seed: int = 0) -> list[Note]:
    """`seconds` of new melodies for `instrument`, one random_melody after another, as the notes a notes
    model plays, Note(onset_s, duration_s, pitch); the last note is cut at `seconds`.

    The melodies come from their own random stream (COMPOSE_SEED, seed), never one of the dataset's
    (SEED, instrument, clip) streams, so what a notes model plays from `compose` is not a training clip.
    `python -m minwave.generate --melody random` plays them.
    """
    if instrument not in REGISTERS:
        raise ValueError(f"no built-in register for {instrument!r}: the composer knows {', '.join(INSTRUMENTS)}")
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    rng = np.random.default_rng([COMPOSE_SEED, int(seed)])
    score, t = [], 0.0
    while t < seconds:
        for pitch, duration_s in random_melody(rng, instrument):
            if t < seconds:
                score.append(Note(float(t), float(min(duration_s, seconds - t)), int(pitch)))
            t += duration_s
    return score


def render_clip(instrument: str, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """One clip of `instrument`: float32 (T,), peak PEAK, 5 ms fade-in and 50 ms fade-out.

    Notes are rendered one by one and overlap-added, so a note rings into the next one as far as its
    instrument lets it (bells ring on, a plucked string is damped when the next note is played).
    """
    return render_clip_and_notes(instrument, rng, sample_rate)[0]


def render_clip_and_notes(
    instrument: str, rng: np.random.Generator, sample_rate: int
) -> tuple[np.ndarray, list[tuple[float, float, int]]]:
    """render_clip, and the score it played: [(onset_s, duration_s, midi_pitch), ...] in time order.

    A note's duration is the time until the next note is played (its instrument may ring on past it).
    """
    melody = random_melody(rng, instrument)
    total_s = sum(d for _, d in melody) + TAIL_S[instrument]
    score, start = [], 0.0
    for note, duration_s in melody:
        score.append((start, duration_s, int(note)))
        start += duration_s
    out = render_notes(
        instrument, [Note(t, d, p) for t, d, p in score], int(round(total_s * sample_rate)), sample_rate, rng
    )
    out *= PEAK / np.max(np.abs(out))
    _fade(out, int(0.005 * sample_rate), int(0.050 * sample_rate))
    return out.astype(np.float32), score


def render_notes(instrument: str, notes: Sequence[Note], n_samples: int, sample_rate: int, rng) -> np.ndarray:
    """The synthesiser playing `notes` on `instrument`: float64 (n_samples,), not normalised.

    Notes are rendered one by one and overlap-added, each at a random 0.7-1.0 of its voice's loudness, so
    a note rings into the next one as far as its instrument lets it (bells ring on, a plucked string is
    damped when the next note is played); what would sound past n_samples is cut.
    """
    if instrument not in REGISTERS:
        raise ValueError(f"no built-in instrument {instrument!r}: the synthesiser plays {', '.join(INSTRUMENTS)}")
    voice = {"pluck": pluck_note, "organ": organ_note, "bell": bell_note}[instrument]
    out = np.zeros(n_samples, dtype=np.float64)  # (T,)
    for note in notes:
        wave = voice(midi_to_hz(note.pitch), note.duration_s, sample_rate, rng)
        i = int(round(note.onset_s * sample_rate))
        n = min(len(wave), n_samples - i)
        if n > 0:
            out[i : i + n] += wave[:n] * rng.uniform(0.7, 1.0)  # a little variation in loudness
    return out


def _write_notes(path: Path, score: list[tuple[float, float, int]]) -> None:
    """The notes.csv format that conditioning.read_notes_csv reads (header onset_s,duration_s,midi_pitch)."""
    rows = ["onset_s,duration_s,midi_pitch"] + [f"{t:.6f},{d:.6f},{p}" for t, d, p in score]
    path.write_text("\n".join(rows) + "\n")


def _fade(x: np.ndarray, n_in: int, n_out: int) -> None:
    """Linear fade-in over the first n_in samples and fade-out over the last n_out, in place."""
    x[:n_in] *= np.linspace(0.0, 1.0, n_in, endpoint=False)
    x[len(x) - n_out :] *= np.linspace(1.0, 0.0, n_out)


# ---------------------------------------------------------------------------------------------------
# Instruments: (frequency_hz, duration_s, sample_rate, rng) -> float64 (T,) with peak around 1


def pluck_note(f0: float, duration_s: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Karplus–Strong plucked string (Karplus & Strong 1983, with Jaffe & Smith's tuning).

        y[n] = x[n] + g · (c0 y[n-N] + c1 y[n-N-1] + c2 y[n-N-2])

    The loop filter (c0, c1, c2) is the two-point average (1/2, 1/2), which low-passes the string
    on every trip round the loop, convolved with a linear-interpolation fractional delay (1-d, d) that
    tunes the loop: its delay N + 1/2 + d equals the period sample_rate / f0 exactly. x is one period
    of noise (the pluck). g < 1 sets the decay: g = 0.996^(147 Hz / f0) loses the same 5 dB per second
    at every pitch (a fixed g would lose f0 · 20 log10(1/g) dB per second: an E4 would die within a
    held note).

    The recursion only looks N or more samples back, so a whole block of N samples can be computed
    at once from the blocks before it: one NumPy operation per period, no per-sample Python loop.
    """
    period = sample_rate / f0
    N = int(np.floor(period - 0.5))
    d = period - 0.5 - N  # fractional part, in [0, 1)
    g = 0.996 ** (midi_to_hz(50) / f0)  # per trip round the loop; D3 = 147 Hz keeps 0.996
    c = np.convolve([0.5, 0.5], [1.0 - d, d]) * g  # (3,) loop filter with loss g
    total = int(round((duration_s + 0.05) * sample_rate))

    pad = N + 2  # zeros before the note so y[n-N-2] exists for n = 0
    y = np.zeros(pad + total)
    y[pad : pad + N] = rng.uniform(-1.0, 1.0, N)  # excitation: one period of white noise
    y[pad : pad + N] -= y[pad : pad + N].mean()  # no DC, or it would ring as an offset
    for s in range(pad, pad + total, N):  # block [s, e) depends only on samples before s
        e = min(s + N, pad + total)
        y[s:e] += c[0] * y[s - N : e - N] + c[1] * y[s - N - 1 : e - N - 1] + c[2] * y[s - N - 2 : e - N - 2]
    y = y[pad:]  # (T,)
    release = int(0.05 * sample_rate)  # the string is damped as the next note starts
    y[-release:] *= np.linspace(1.0, 0.0, release)
    return y / np.max(np.abs(y))


def organ_note(f0: float, duration_s: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Additive organ: steady harmonics 1, 2, 3, 4, 6, 8 with fixed weights, 60 ms attack, 80 ms release.

    Harmonics at or above 0.45 · sample_rate are left out, so nothing aliases.
    """
    harmonics = np.array([1, 2, 3, 4, 6, 8])
    weights = np.array([1.0, 0.6, 0.35, 0.25, 0.12, 0.08])
    keep = harmonics * f0 < 0.45 * sample_rate
    attack, release = int(0.06 * sample_rate), int(0.08 * sample_rate)
    total = int(round(duration_s * sample_rate)) + release
    t = np.arange(total) / sample_rate  # (T,)
    phase0 = rng.uniform(0, 2 * np.pi, len(harmonics))[keep]  # (H,)
    # (T, H) @ (H,) -> (T,): one column per harmonic, weighted sum
    y = np.sin(2 * np.pi * f0 * t[:, None] * harmonics[keep] + phase0) @ weights[keep]
    envelope = np.ones(total)
    envelope[:attack] = np.linspace(0.0, 1.0, attack, endpoint=False)
    envelope[total - release :] = np.linspace(1.0, 0.0, release)
    return y * envelope / weights[keep].sum()


def bell_note(f0: float, duration_s: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """FM bell (Chowning 1973): y = a(t) · sin(2π f0 t + I(t) · sin(2π 1.4 f0 t)).

    The sidebands sit at f0 ± k · 1.4 f0, which are not multiples of f0: an inharmonic, metallic
    spectrum. Both the amplitude a(t) = exp(-t / 0.9 s) and the index I(t) = I0 · exp(-t / 0.5 s)
    decay, so the bell starts bright and ends close to a pure tone. The largest significant sideband,
    about (I0 + 1) · 1.4 f0 above f0, is kept below 0.4 · sample_rate by capping I0.
    """
    ratio = 1.4
    fm = ratio * f0
    index0 = min(4.0, (0.4 * sample_rate - f0) / fm - 1.0)
    total = int(round((duration_s + 3.0) * sample_rate))  # rings on over the next notes
    t = np.arange(total) / sample_rate  # (T,)
    index = max(index0, 0.0) * np.exp(-t / 0.5)
    y = np.exp(-t / 0.9) * np.sin(2 * np.pi * f0 * t + index * np.sin(2 * np.pi * fm * t))
    attack, release = int(0.002 * sample_rate), int(0.2 * sample_rate)  # a strike, but not a click
    y[:attack] *= np.linspace(0.0, 1.0, attack, endpoint=False)
    y[total - release :] *= np.linspace(1.0, 0.0, release)  # already below -30 dB; end it smoothly
    return y * rng.uniform(0.9, 1.0)
