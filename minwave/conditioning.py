"""Local conditioning features at frame rate: a piano roll from notes, a log-mel spectrogram from audio.

Legend: T samples, F frames, h hop (samples per frame), C channels, P pitches (88), M mel bands.

Frame f stands for the samples f·h … f·h + h - 1; a clip of T samples has F = ceil(T / h) frames.
docs/conditioning.md is the reference for both feature sets; in short:

    piano roll (C = 2P = 176)   channels 0 … 87: how much of frame f pitch 21 + p sounds (0 … 1, the
                                fraction of the frame's h samples inside the note); channels 88 … 175:
                                1 where a note of that pitch starts inside frame f (its onset flag).
    log-mel (C = M)             (ln max(mel, 1e-5) - LOG_MEL_SHIFT) / LOG_MEL_SCALE of the power
                                spectrogram through a Slaney mel filter bank, Hann window of 4h samples
                                centred on the middle of frame f's samples.

Notes are (onset_s, duration_s, midi_pitch) in seconds; they come from a notes.csv, a melody string
("C4:0.5 E4:0.5 R:0.25 G4:1"), or a standard MIDI file (through `mido`, an optional extra).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

PITCH_LOW, PITCH_HIGH = 21, 108  # A0 … C8: the 88 keys of a piano
N_PITCHES = PITCH_HIGH - PITCH_LOW + 1
NOTE_CHANNELS = 2 * N_PITCHES  # [sounding | onset]
NOTES_HEADER = ("onset_s", "duration_s", "midi_pitch")
NOTES_SUFFIX = ".notes.csv"  # song.wav's notes live in song.notes.csv, beside it
MIDI_SUFFIXES = (".mid", ".midi")

MEL_FMIN = 40.0  # Hz; below this the built-in instruments (and most music) have nothing
LOG_MEL_FLOOR = 1e-5  # power floor before the log: -115 dB, silence rather than -inf
# The model sees (ln mel - SHIFT) / SCALE: about -0.1 … 0.25, centred on the built-in music's mean ln mel
# (-7.1, std 5.2). Small on purpose: Adam moves every entry of U by about lr per step, so the conditioning
# term U·c moves by up to lr·Σ|c_j| — with 80 dense bands of unit size that outran the rest of the network
# (validation bits 5.47 at step 1000 against 4.24 without conditioning; 4.20 at this scale: docs/benchmarks.md).
LOG_MEL_SHIFT, LOG_MEL_SCALE = -7.0, 50.0
CONDITION_TYPES = ("notes", "mel")
NOTES_TAIL_S = 0.25  # audio generated after the last note ends: the release of the last note


class ConditioningError(ValueError):
    """Bad conditioning input: the message is one line that says what to fix."""


class Note(NamedTuple):
    onset_s: float
    duration_s: float
    pitch: int  # MIDI note number, 60 = C4


# ---------------------------------------------------------------------------------------------------
# Frames


def n_frames(n_samples: int, hop: int) -> int:
    """F = ceil(T / h): the frames that cover T samples."""
    return -(-int(n_samples) // int(hop))


def channels(cond_type: str, n_mels: int = 80) -> int:
    """C for a conditioning type: 176 for notes, n_mels for mel."""
    if cond_type == "notes":
        return NOTE_CHANNELS
    if cond_type == "mel":
        return int(n_mels)
    raise ConditioningError(f"conditioning type must be one of {CONDITION_TYPES}, got {cond_type!r}")


# ---------------------------------------------------------------------------------------------------
# Notes -> piano roll


def piano_roll(notes: Sequence[Note], n_samples: int, hop: int, sample_rate: int) -> np.ndarray:
    """Notes -> (F, 176) float32 frames for a clip of n_samples samples, F = ceil(n_samples / hop).

    sounding[f, p] = |[onset, onset + duration) ∩ frame f| / h in samples (0 … 1, summed over notes of
    the same pitch and capped at 1): a note starting or ending inside a frame gives a fraction, which
    tells the model where in the frame it happens. onset[f, p] = 1 for the frame holding a note's first
    sample. Times are rounded to whole samples; notes past the end are cut there.
    """
    F = n_frames(n_samples, hop)
    roll = np.zeros((F, NOTE_CHANNELS), dtype=np.float64)  # (F, 2P)
    edges = np.arange(F + 1) * hop  # frame f is samples edges[f] … edges[f+1] - 1
    for note in notes:
        p = _check_pitch(note.pitch, "note") - PITCH_LOW
        start = int(round(note.onset_s * sample_rate))
        end = min(int(round((note.onset_s + note.duration_s) * sample_rate)), F * hop)
        if note.onset_s < 0 or note.duration_s <= 0:
            raise ConditioningError(f"note {note}: onset must be >= 0 s and duration > 0 s")
        if start >= F * hop or end <= start:
            continue  # after the end of the clip (or shorter than one sample)
        overlap = np.clip(np.minimum(edges[1:], end) - np.maximum(edges[:-1], start), 0, None)  # (F,)
        roll[:, p] += overlap / hop
        roll[start // hop, N_PITCHES + p] = 1.0
    np.minimum(roll, 1.0, out=roll)
    return roll.astype(np.float32)


def midi_to_hz(note):
    """Equal temperament, A4 = MIDI 69 = 440 Hz: f = 440 · 2^((note - 69) / 12). Numbers or arrays of any module."""
    return 440.0 * 2.0 ** ((note - 69) / 12)


def notes_duration_s(notes: Sequence[Note]) -> float:
    """When the last note ends (0 for no notes)."""
    return max((n.onset_s + n.duration_s for n in notes), default=0.0)


def notes_samples(notes: Sequence[Note], sample_rate: int) -> int:
    """How much audio playing `notes` takes: until the last note ends, plus NOTES_TAIL_S of release."""
    return int(round((notes_duration_s(notes) + NOTES_TAIL_S) * sample_rate))


def _check_pitch(pitch, what: str) -> int:
    if int(pitch) != pitch or not PITCH_LOW <= pitch <= PITCH_HIGH:
        raise ConditioningError(
            f"{what}: MIDI pitch {pitch} is outside the piano roll's range {PITCH_LOW} … {PITCH_HIGH} (A0 … C8)"
        )
    return int(pitch)


# ---------------------------------------------------------------------------------------------------
# Note names and the melody syntax

_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_NAME = re.compile(r"^([A-Ga-g])(#|b)?(-?\d+)$")
_MELODY_HELP = "expected NAME:SECONDS tokens separated by spaces, e.g. 'C4:0.5 F#3:1 Bb2:0.25 R:0.5' (R is a rest)"


def note_number(name: str) -> int:
    """'C4' -> 60, 'F#3' -> 54, 'Bb2' -> 46, 'A4' -> 69: MIDI = 12 · (octave + 1) + pitch class ± 1."""
    m = _NAME.match(name)
    if not m:
        raise ConditioningError(f"{name!r} is not a note name (a letter A-G, optional # or b, an octave: C4, F#3, Bb2)")
    letter, accidental, octave = m.groups()
    return 12 * (int(octave) + 1) + _PITCH_CLASS[letter.upper()] + {"#": 1, "b": -1, None: 0}[accidental]


def note_name(pitch: int) -> str:
    """60 -> 'C4' (sharps for the black keys)."""
    names = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
    return f"{names[pitch % 12]}{pitch // 12 - 1}"


def parse_melody(text: str) -> list[Note]:
    """'C4:0.5 E4:0.5 R:0.25 G4:1' -> notes one after another (a rest R:SECONDS only moves time on).

    Anything else is a ConditioningError naming the bad token.
    """
    tokens = str(text).split()
    if not tokens:
        raise ConditioningError(f"--melody is empty: {_MELODY_HELP}")
    notes, t = [], 0.0
    for token in tokens:
        name, sep, seconds = token.partition(":")
        try:
            duration = float(seconds) if sep else math.nan
        except ValueError:
            duration = math.nan
        if not (math.isfinite(duration) and duration > 0):
            raise ConditioningError(f"--melody: {token!r} has no duration > 0 in seconds; {_MELODY_HELP}")
        if name in ("R", "r"):
            t += duration
            continue
        try:
            pitch = note_number(name)
        except ConditioningError:
            raise ConditioningError(f"--melody: {token!r} does not start with a note name; {_MELODY_HELP}") from None
        notes.append(Note(t, duration, _check_pitch(pitch, f"--melody: {token!r}")))
        t += duration
    if not notes:
        raise ConditioningError("--melody holds only rests: give at least one note")
    return notes


# ---------------------------------------------------------------------------------------------------
# notes.csv and MIDI files


def write_notes_csv(path: str | Path, notes: Sequence[Note]) -> None:
    """Header onset_s,duration_s,midi_pitch, then one row per note (times to the microsecond)."""
    rows = [",".join(NOTES_HEADER)] + [f"{n.onset_s:.6f},{n.duration_s:.6f},{int(n.pitch)}" for n in notes]
    Path(path).write_text("\n".join(rows) + "\n")


def read_notes_csv(path: str | Path) -> list[Note]:
    """A notes.csv -> notes. Blank lines are skipped; anything malformed is a one-line ConditioningError."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConditioningError(f"cannot read notes file {path}: {exc}") from exc
    header = tuple(cell.strip().lower() for cell in rows[0]) if rows else ()
    if header != NOTES_HEADER:
        raise ConditioningError(f"{path} must start with the header line '{','.join(NOTES_HEADER)}'")
    notes = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        try:
            if len(row) != 3:
                raise ValueError
            onset, duration, pitch = float(row[0]), float(row[1]), float(row[2])
            if not (math.isfinite(onset) and onset >= 0 and math.isfinite(duration) and duration > 0):
                raise ValueError
        except ValueError:
            raise ConditioningError(
                f"{path} line {line}: expected 'onset_s,duration_s,midi_pitch' with onset >= 0 and duration > 0, "
                f"got {','.join(row)!r}"
            ) from None
        notes.append(Note(onset, duration, _check_pitch(pitch, f"{path} line {line}")))
    if not notes:
        raise ConditioningError(f"{path} holds no notes")
    return notes


def read_midi(path: str | Path) -> list[Note]:
    """A standard MIDI file -> notes, through `mido` (pip install "minwave[midi]").

    Every track and channel but the General MIDI drum channel (10) is read; tempo changes are
    applied by mido. A note-on with velocity 0 ends a note, as a note-off does.
    """
    try:
        import mido
    except ImportError:
        raise ConditioningError(f'reading {path} needs mido: pip install "minwave[midi]"') from None
    try:
        midi = mido.MidiFile(str(path))
    except (OSError, ValueError, EOFError, KeyError, IndexError) as exc:
        raise ConditioningError(f"cannot read MIDI file {path}: {exc}") from exc
    notes, sounding, t = [], {}, 0.0
    for msg in midi:  # merged tracks, msg.time in seconds since the previous message
        t += msg.time
        if msg.type not in ("note_on", "note_off") or msg.channel == 9:
            continue
        key = (msg.channel, msg.note)
        if msg.type == "note_on" and msg.velocity > 0:
            sounding.setdefault(key, t)
        elif key in sounding:
            start = sounding.pop(key)
            if t > start:
                notes.append(Note(start, t - start, _check_pitch(msg.note, f"{path}")))
    notes.sort()
    if not notes:
        raise ConditioningError(f"{path} holds no notes (outside the drum channel)")
    return notes


def read_notes(path: str | Path) -> list[Note]:
    """A notes.csv or a MIDI file (by its suffix) -> notes."""
    path = Path(path)
    if path.suffix.lower() in MIDI_SUFFIXES:
        return read_midi(path)
    return read_notes_csv(path)


def notes_path_for(audio_path: str | Path) -> Path | None:
    """The notes of an audio file: song.notes.csv, else song.mid / song.midi, beside it; None if neither."""
    audio_path = Path(audio_path)
    for candidate in [audio_path.with_name(audio_path.stem + NOTES_SUFFIX)] + [
        audio_path.with_suffix(s) for s in MIDI_SUFFIXES
    ]:
        if candidate.is_file():
            return candidate
    return None


# ---------------------------------------------------------------------------------------------------
# Audio -> log-mel spectrogram


def hz_to_mel(f):
    """The Slaney mel scale (librosa's default, htk=False): linear below 1 kHz (3 per 200 Hz), then
    logarithmic, 27 mels per factor 6.4 above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    linear = f / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, linear)


def mel_to_hz(m):
    """The inverse of hz_to_mel."""
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_points(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(M + 2,) Hz: M + 2 points spaced evenly on the mel scale from fmin to fmax; filter m of
    mel_filterbank rises from point m, peaks at point m + 1 (its centre) and falls to point m + 2."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(M, n_fft/2 + 1) triangular filters, Slaney-normalised (each has area 2 / bandwidth ... in Hz).

    Filter m rises from mel point m to m+1 and falls to m+2, the M + 2 points spaced evenly on the mel
    scale from fmin to fmax; each is scaled by 2 / (f_{m+2} - f_{m}) so that wide filters do not
    collect more energy just for being wide (librosa.filters.mel with norm='slaney').
    """
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ConditioningError(f"mel filter bank: need 0 <= fmin < fmax <= {sample_rate / 2} Hz, got {fmin}, {fmax}")
    fft_hz = np.arange(n_fft // 2 + 1) * sample_rate / n_fft  # (n_fft/2 + 1,) the FFT bins' frequencies
    points = mel_points(n_mels, fmin, fmax)  # (M + 2,)
    width = np.diff(points)  # (M + 1,)
    rise = (fft_hz[None, :] - points[:-2, None]) / width[:-1, None]  # (M, bins)  0 at m, 1 at m+1
    fall = (points[2:, None] - fft_hz[None, :]) / width[1:, None]  # (M, bins)  1 at m+1, 0 at m+2
    weights = np.maximum(0.0, np.minimum(rise, fall))
    return weights * (2.0 / (points[2:] - points[:-2]))[:, None]


def power_spectrogram(audio: np.ndarray, hop: int, n_fft: int) -> np.ndarray:
    """|STFT|² (F, n_fft/2 + 1), F = ceil(T / hop), periodic Hann window of n_fft samples.

    Frame f's window is centred on sample f·h + h/2, the middle of the samples it conditions; the
    audio is zero-padded at both ends so every frame has a full window.
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1:
        raise ConditioningError(f"audio must be one channel (T,), got shape {x.shape}")
    F = n_frames(len(x), hop)
    left = n_fft // 2 - hop // 2  # the first window starts here before sample 0
    right = (F - 1) * hop + n_fft - left - len(x)
    padded = np.pad(x, (left, max(right, 0)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:F]  # (F, n_fft) views
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann (scipy's fftbins)
    spectrum = np.fft.rfft(frames * window, axis=1)  # (F, n_fft/2 + 1)
    return spectrum.real**2 + spectrum.imag**2


def mel_parameters(sample_rate: int, hop: int, n_mels: int) -> dict:
    """The documented log-mel parameters for a model: window 4 hops, 40 Hz … Nyquist."""
    return dict(
        sample_rate=int(sample_rate),
        hop=int(hop),
        n_fft=4 * int(hop),
        n_mels=int(n_mels),
        fmin=MEL_FMIN,
        fmax=sample_rate / 2,
        floor=LOG_MEL_FLOOR,
    )


def log_mel(
    audio, sample_rate: int, hop: int, n_mels: int, n_fft: int, fmin: float, fmax: float, floor: float = LOG_MEL_FLOOR
) -> np.ndarray:
    """ln max(mel, floor) (F, M): the mel power spectrogram, then a floored natural log."""
    power = power_spectrogram(audio, hop, n_fft)  # (F, bins)
    mel = power @ mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax).T  # (F, M)
    return np.log(np.maximum(mel, floor))


def mel_features(audio, sample_rate: int, hop: int, n_mels: int) -> np.ndarray:
    """What a mel-conditioned model sees: (log_mel - LOG_MEL_SHIFT) / LOG_MEL_SCALE, (F, M) float32."""
    lm = log_mel(audio, **mel_parameters(sample_rate, hop, n_mels))
    return ((lm - LOG_MEL_SHIFT) / LOG_MEL_SCALE).astype(np.float32)


def note_features(notes: Sequence[Note], n_samples: int, hop: int, sample_rate: int) -> np.ndarray:
    """What a note-conditioned model sees: the piano roll (F, 176) float32."""
    return piano_roll(notes, n_samples, hop, sample_rate)


def onset_frames(roll: np.ndarray) -> np.ndarray:
    """A piano roll (F, 176) -> the indices of its frames that hold a note's onset (any key's flag)."""
    return np.flatnonzero(roll[:, N_PITCHES:].any(axis=1))


# ---------------------------------------------------------------------------------------------------
# A dataset's frames


def clip_features(root: str | Path, clips, config, load_audio) -> list[np.ndarray]:
    """The conditioning frames of every clip of a dataset loaded from `root` without trimming, for a
    model `config` (its condition, cond_channels, cond_hop, sample_rate): [(F_i, C) float32, ...].

    notes: each audio file's song.notes.csv (or song.mid / song.midi) beside it; a file without one is
    a ConditioningError naming it. mel: the log-mel spectrogram of the file itself (load_audio(path,
    sample_rate), data.load_audio, passed in by the caller), which must have the clip's length.
    """
    root = Path(root)
    frames = []
    missing = [c.path for c in clips if config.condition == "notes" and notes_path_for(root / c.path) is None]
    if missing:
        raise ConditioningError(
            f"--condition notes: {len(missing)} audio files have no notes beside them, e.g. '{missing[0]}' "
            f"(put its notes in {Path(missing[0]).stem}{NOTES_SUFFIX} or {Path(missing[0]).stem}.mid)"
        )
    for clip in clips:
        n = len(clip.codes)
        if config.condition == "notes":
            frames.append(
                piano_roll(read_notes(notes_path_for(root / clip.path)), n, config.cond_hop, config.sample_rate)
            )
        else:
            audio = load_audio(root / clip.path, config.sample_rate)
            if len(audio) != n:
                raise ConditioningError(
                    f"'{clip.path}' decoded to {len(audio)} samples, not the {n} it was loaded with"
                )
            frames.append(mel_features(audio, config.sample_rate, config.cond_hop, config.cond_channels))
    return frames
