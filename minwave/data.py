"""Audio folders in, μ-law codes and tags out; random training batches and fixed validation batches.

    dataset = load_dataset("my_audio/", sample_rate=16000, min_samples=model.receptive_field)
    train, valid = split_by_file(dataset, valid_fraction=0.1, seed=0)
    sampler = BatchSampler(train, dataset.n_tags, segment_length=4096,
                           receptive_field=model.receptive_field, batch_size=8, seed=0)
    x, tags = sampler.sample()           # (B, RF + segment) int64 codes, (B, G) float32 or None

What a data folder may hold
---------------------------
* Audio files anywhere below the folder (symlinked sub-folders are followed, each folder once): every
  file the installed libsndfile decodes, found by trying rather than by a list of extensions: WAV,
  FLAC, MP3, Ogg Vorbis and Opus (.ogg/.oga/.opus), AIFF, CAF, W64, AU … (soundfile.available_formats()).
  Names starting with '.' are skipped (editor and macOS '._' files); other files that are not audio
  are reported once, counted by extension. Each file is mixed down to mono, resampled to
  `sample_rate`, trimmed of leading and trailing silence and μ-law encoded (mulaw.py).
* Float files are checked: NaN or infinite samples become silence and values beyond ±1 are clipped,
  each with a warning; a file whose decoded and resampled size would not fit in the memory available
  (memory.py) is skipped with a warning naming it.
* Tags, for global conditioning, from one of:
    - a `tags.csv` in the folder: header `file,tags`, one row per file, `file` relative to the folder,
      tags separated by ';' (`pluck_03.wav,pluck` or `take1.flac,piano;slow`);
    - otherwise the first sub-folder name: `piano/a.wav` has tag 'piano', files directly in the
      folder have none.
  If no file has a tag, the dataset has no tags (n_tags = 0) and batches carry `tags = None`.

Problems with individual files (unreadable, truncated, too short, silent, missing from or extra in
tags.csv) are reported through `warn(message)` and the file is skipped or used as far as it goes;
`warn` defaults to `warnings.warn(message, DataWarning)`, and the training CLI can pass `print`.
Problems that leave nothing to train on raise `DataError`, whose message is one line saying what is
wrong and what to do.

Shape legend (the package's, ops/__init__.py): B batch, RF receptive field, segment = segment_length
(predictions per row), G n_tags, Q quantization channels, T samples in a clip.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import struct
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import dataclass
from math import gcd
from pathlib import Path, PurePosixPath

import numpy as np
import soundfile as sf

from .memory import NotEnoughMemory, check_fits
from .mulaw import mulaw_encode

TAGS_FILE = "tags.csv"
NOTES_SUFFIXES = (".notes.csv", ".mid", ".midi")  # song.wav's notes for local conditioning (conditioning.py)
# Extensions that promise audio: a file with one of them that fails to decode is reported by name as
# broken; any other file is tried too, and if it fails it is only counted as "not audio". This is a
# hint for messages, not a gate: what is read is decided by trying soundfile on the file.
_ALIASES = {"AIFF": (".aif", ".aiff", ".aifc"), "AU": (".au", ".snd"), "OGG": (".ogg", ".oga", ".opus")}
AUDIO_EXTENSIONS = frozenset(
    ext for fmt in sf.available_formats() for ext in _ALIASES.get(fmt, ("." + fmt.lower(),))
) | {".wav", ".flac", ".ogg", ".mp3"}


class DataError(ValueError):
    """The data folder cannot be used; the message is one line naming the problem and the fix."""


class DataWarning(UserWarning):
    """A file in the data folder was skipped or used only in part."""


@dataclass
class Clip:
    """One audio file as μ-law codes.

    path:       the file, relative to the data folder, with '/' separators ('piano/a.wav').
    codes:      int64 (T,) μ-law codes in 0..Q-1.
    tags:       the clip's tags, in the order given.
    tag_vector: float32 (G,) multi-hot over the dataset's tag vocabulary (G = 0 when there are no tags).
    """

    path: str
    codes: np.ndarray
    tags: tuple[str, ...] = ()
    tag_vector: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    format: str = ""  # libsndfile's name for the file's format: 'WAV', 'FLAC', 'MP3', 'OGG', 'AIFF', …

    def __len__(self) -> int:
        return len(self.codes)


@dataclass
class AudioDataset:
    """All clips of a data folder, plus what is needed to interpret them."""

    clips: list[Clip]
    tag_vocab: list[str]  # sorted; position k is entry k of every tag_vector
    sample_rate: int
    quantization_channels: int

    @property
    def n_tags(self) -> int:
        return len(self.tag_vocab)

    @property
    def n_samples(self) -> int:
        return sum(len(c) for c in self.clips)

    @property
    def seconds(self) -> float:
        return self.n_samples / self.sample_rate

    def tag_vector(self, tags: Sequence[str]) -> np.ndarray:
        """Tag names -> float32 (G,) multi-hot; an unknown tag raises ValueError listing the known ones."""
        return multi_hot(tags, self.tag_vocab)

    def format_counts(self) -> dict[str, int]:
        """Clips per file format, most common first: {'MP3': 12, 'WAV': 3}."""
        return dict(Counter(c.format or "?" for c in self.clips).most_common())

    def fingerprint(self) -> list[list]:
        """What the model trains on, per clip: [path, samples, blake2b of the codes (16 hex digits), tags].

        Taken after decoding, resampling and trimming, so copying the folder or touching a file does not
        change it, while any change that would change the batches (a file added, removed, edited, or
        re-tagged; another sample rate) does. Stored in the checkpoint; --resume compares it.
        """
        return [
            [
                c.path,
                len(c),
                hashlib.blake2b(np.ascontiguousarray(c.codes).tobytes(), digest_size=8).hexdigest(),
                list(c.tags),
            ]
            for c in self.clips
        ]


def fingerprint_changes(old: Sequence, new: Sequence) -> str | None:
    """None if two fingerprints (AudioDataset.fingerprint) are equal, else one line saying what changed."""
    old_by_path = {row[0]: list(row) for row in old}
    new_by_path = {row[0]: list(row) for row in new}
    if old_by_path == new_by_path:
        return None
    changes = []
    for label, names in [
        ("added", sorted(set(new_by_path) - set(old_by_path))),
        ("removed", sorted(set(old_by_path) - set(new_by_path))),
        ("changed", sorted(p for p in set(old_by_path) & set(new_by_path) if old_by_path[p] != new_by_path[p])),
    ]:
        if names:
            shown = ", ".join(f"'{n}'" for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            changes.append(f"{len(names)} {label} ({shown})")
    return "; ".join(changes)


def multi_hot(tags: Sequence[str], tag_vocab: Sequence[str]) -> np.ndarray:
    """float32 (G,) with 1.0 at the position of each tag in tag_vocab."""
    vector = np.zeros(len(tag_vocab), dtype=np.float32)
    for tag in tags:
        if tag not in tag_vocab:
            known = ", ".join(tag_vocab) if tag_vocab else "none (this dataset has no tags)"
            raise ValueError(f"unknown tag {tag!r}: known tags are {known}")
        vector[list(tag_vocab).index(tag)] = 1.0
    return vector


# ---------------------------------------------------------------------------------------------------
# Files


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


@dataclass
class FolderScan:
    """Every candidate file below a data folder, and the sub-folders that could not be read."""

    files: list[Path]  # sorted; hidden names, tags.csv and notes files (NOTES_SUFFIXES) left out
    unreadable: list[tuple[Path, str]]  # (folder, reason)


def scan_folder(root: str | Path) -> FolderScan:
    """Walk root recursively, following symlinked sub-folders (each real folder once, so a link loop
    ends); hidden names skipped. DataError if root itself cannot be listed."""
    root = Path(root)
    try:
        os.listdir(root)
    except OSError as exc:
        raise DataError(f"--data: cannot read folder '{root}' ({exc.strerror or exc}); check its permissions") from None
    unreadable: list[tuple[Path, str]] = []
    seen: set[tuple[int, int]] = set()
    files: list[Path] = []
    walker = os.walk(root, followlinks=True, onerror=lambda e: unreadable.append((Path(e.filename), e.strerror)))
    for folder, subfolders, names in walker:
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:  # a symlink back to a folder already walked
            subfolders[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in names:
            path = Path(folder) / name
            if name.startswith(".") or (Path(folder) == root and name == TAGS_FILE):
                continue
            if name.lower().endswith(NOTES_SUFFIXES):  # an audio file's score (conditioning.py), not audio
                continue
            if path.is_file():
                files.append(path)
    return FolderScan(sorted(files), sorted(unreadable))


def audio_format(path: str | Path) -> str | None:
    """libsndfile's format name ('WAV', 'MP3', 'OGG', …) if soundfile can open the file, else None."""
    try:
        return sf.info(str(path)).format
    except (RuntimeError, OSError, ValueError, EOFError, TypeError):  # sf.LibsndfileError is a RuntimeError
        return None


def find_audio_files(root: str | Path) -> list[Path]:
    """Every file below root that soundfile can open as audio (decided by trying), sorted; hidden
    names skipped, symlinked sub-folders followed."""
    return [p for p in scan_folder(root).files if audio_format(p) is not None]


def _default_warn(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=3)


def load_audio(path: str | Path, sample_rate: int, warn: Callable[[str], None] | None = None) -> np.ndarray:
    """Read an audio file as float32 (T,) mono at `sample_rate`, clipped to [-1, 1].

    Channels are averaged. Resampling is polyphase with an anti-aliasing filter
    (scipy.signal.resample_poly) by the exact ratio up/down = sample_rate/file_rate reduced by their
    gcd, e.g. 44100 -> 16000 is up 160, down 441. NaN or infinite samples become 0 and samples beyond
    ±1 are clipped, each reported through `warn` (default: a DataWarning). Raises DataError if the
    file cannot be read or decoded, holds no finite sample, or would not fit in memory once decoded.
    """
    return _decode(Path(path), sample_rate, warn or _default_warn)[0]


DECODE_BYTES_PER_FRAME = 4  # float32 per channel as read; plus 4 for the mono mix
RESAMPLE_BYTES_PER_SAMPLE = 24  # resample_poly works in float64: its input, its output and a float32 copy


def _decode(path: Path, sample_rate: int, warn: Callable[[str], None], name: str = "") -> tuple[np.ndarray, str]:
    """load_audio, also returning the file's format name; messages call the file `name` (default: path)."""
    name = name or str(path)
    if int(sample_rate) != sample_rate or sample_rate < 1:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    try:
        with open(path, "rb"):  # the OS's reason (permission denied …), which libsndfile would hide
            pass
        info = sf.info(str(path))
    except OSError as exc:
        raise DataError(f"'{name}': cannot open it ({exc.strerror or exc})") from exc
    except (RuntimeError, ValueError, EOFError, TypeError) as exc:  # sf.LibsndfileError is a RuntimeError
        raise DataError(f"cannot read '{name}': {_reason(exc)}") from exc
    out_frames = info.frames * sample_rate / max(info.samplerate, 1)
    need = info.frames * (info.channels + 1) * DECODE_BYTES_PER_FRAME
    if info.samplerate != sample_rate:
        need += out_frames * RESAMPLE_BYTES_PER_SAMPLE
    try:
        check_fits(
            need,
            f"'{name}' ({info.frames} frames at {info.samplerate} Hz, resampled to {sample_rate} Hz)",
            "the file is skipped",
        )
    except NotEnoughMemory as exc:
        raise DataError(str(exc)) from exc
    try:
        audio, file_rate = sf.read(str(path), dtype="float32", always_2d=True)  # (T, channels)
    except (RuntimeError, OSError, ValueError, EOFError, TypeError) as exc:
        raise DataError(f"cannot read '{name}': {_reason(exc)}") from exc
    bad = ~np.isfinite(audio)  # (T, channels)
    if bad.any():
        if bad.all():
            raise DataError(f"'{name}': every sample is NaN or infinite")
        warn(f"'{name}': {int(bad.sum())} samples are NaN or infinite; they are set to silence")
        audio[bad] = 0.0
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 1.0:
        over = int((np.abs(audio) > 1.0).sum())
        warn(f"'{name}': {over} samples are beyond full scale (peak {peak:.3g}); they are clipped to ±1")
        np.clip(audio, -1.0, 1.0, out=audio)
    x = audio.mean(axis=1)  # (T,)
    if file_rate != sample_rate and len(x) > 0:
        g = gcd(int(file_rate), int(sample_rate))
        from scipy.signal import resample_poly  # imported here: scipy.signal costs ~1.5 s at CLI start-up

        x = resample_poly(x, int(sample_rate) // g, int(file_rate) // g)  # (T * sample_rate / file_rate,)
    return np.clip(x, -1.0, 1.0).astype(np.float32), info.format  # the filter's ringing may overshoot ±1


def _reason(exc: BaseException | None) -> str:
    """libsndfile's own words for a failure (without the file path it puts in str(exc))."""
    return (getattr(exc, "error_string", None) or str(exc)).strip()


def _wav_truncation(path: Path) -> tuple[int, int] | None:
    """(bytes the WAV header promises, bytes present) if a .wav's data chunk is cut short, else None.

    libsndfile reads a truncated WAV without complaint, returning the samples that are there; this
    check lets load_dataset say so. Headers of streamed WAVs (data size 0 or 0xFFFFFFFF) are not flagged.
    """
    try:
        with open(path, "rb") as f:
            riff = f.read(12)
            if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
                return None
            size_on_disk = path.stat().st_size
            while True:
                header = f.read(8)
                if len(header) < 8:
                    return None
                chunk_id, chunk_size = header[:4], struct.unpack("<I", header[4:])[0]
                if chunk_id == b"data":
                    present = size_on_disk - f.tell()
                    if 0 < chunk_size < 0xFFFFFFFF and present < chunk_size:
                        return chunk_size, present
                    return None
                f.seek(chunk_size + (chunk_size & 1), 1)  # chunks are padded to even sizes
    except OSError:
        return None


def trim_silence(x: np.ndarray, threshold_db: float = -40.0, margin: int = 0) -> np.ndarray:
    """Cut leading and trailing samples quieter than `threshold_db` dB relative to full scale.

    A sample counts as sound when |x| >= 10 ** (threshold_db / 20): -40 dBFS is |x| >= 0.01, the level
    of room noise in a quiet recording. `margin` samples of the quiet part are kept on each side (so a
    note's soft onset is not cut). Quiet passages in the middle are kept. All-silent input -> empty.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0 samples, got {margin}")
    loud = np.flatnonzero(np.abs(x) >= 10.0 ** (threshold_db / 20.0))
    if len(loud) == 0:
        return x[:0]
    return x[max(loud[0] - margin, 0) : loud[-1] + 1 + margin]


# ---------------------------------------------------------------------------------------------------
# Tags


def _read_tags_csv(path: Path) -> dict[str, tuple[str, ...]]:
    """tags.csv -> {relative posix path: tags}. Raises DataError for a malformed file."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: accept Excel's byte-order mark
            reader = csv.reader(f, strict=True)  # strict: an unclosed quote is an error, not a swallowed row
            rows = list(reader)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"--data: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    except csv.Error as exc:
        raise DataError(
            f'--data: {path} line {reader.line_num}: {exc}; check the quotes (a field that starts with " '
            "must end with one)"
        ) from exc
    for line, row in enumerate(rows, start=1):
        if any("\n" in cell or "\r" in cell for cell in row):
            raise DataError(f"--data: {path}: a quoted field near line {line} runs over several lines; close its quote")
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if header != ["file", "tags"]:
        raise DataError(f"--data: {path} must start with the header line 'file,tags' (got {','.join(header)!r})")
    table: dict[str, tuple[str, ...]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue  # blank line
        if len(row) != 2:
            raise DataError(f"--data: {path} line {line} has {len(row)} fields; expected 'file,tag1;tag2'")
        name = PurePosixPath(row[0].strip().replace("\\", "/")).as_posix()
        if name in table:
            raise DataError(f"--data: {path} lists {name!r} twice (line {line}); keep one row per file")
        tags = [t.strip() for t in row[1].split(";")]
        table[name] = tuple(dict.fromkeys(t for t in tags if t))  # drop empties and repeats, keep order
    return table


def _folder_tag(relative: PurePosixPath) -> tuple[str, ...]:
    """The first sub-folder name is the tag; files directly in the data folder have none."""
    return (relative.parts[0],) if len(relative.parts) > 1 else ()


# ---------------------------------------------------------------------------------------------------
# Dataset


def load_dataset(
    root: str | Path,
    sample_rate: int = 16000,
    quantization_channels: int = 256,
    min_samples: int = 1,
    trim_db: float | None = -40.0,
    warn: Callable[[str], None] | None = None,
) -> AudioDataset:
    """Load every audio file below `root` (see the module docstring for the folder layout).

    trim_db:     silence threshold for trim_silence (dBFS), keeping a 10 ms margin; None keeps
                 every sample.
    min_samples: clips shorter than this after trimming are skipped with a warning; pass the model's
                 receptive field. DataError if no clip is long enough.
    warn:        called with a one-line message for every skipped or partly used file;
                 default `warnings.warn(message, DataWarning)`.
    """
    if warn is None:

        def warn(message: str) -> None:
            warnings.warn(message, DataWarning, stacklevel=3)

    if int(min_samples) != min_samples or min_samples < 1:
        raise ValueError(f"min_samples must be an integer >= 1, got {min_samples!r}")
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"--data: folder '{root}' does not exist")
    if not root.is_dir():
        raise DataError(f"--data: '{root}' is a file, not a folder; put the audio in a folder and pass that")

    scan = scan_folder(root)
    for folder, reason in scan.unreadable:
        warn(f"cannot read the folder '{folder}' ({reason}); the files in it are skipped")
    relative = {p: PurePosixPath(p.relative_to(root).as_posix()) for p in scan.files}

    tags_path = root / TAGS_FILE
    table = _read_tags_csv(tags_path) if tags_path.is_file() else None  # a malformed file fails before decoding

    loaded: list[tuple[Path, np.ndarray, str]] = []  # (file, codes, format)
    not_audio: Counter[str] = Counter()  # extension -> files soundfile cannot open, reported once
    n_audio = n_failed = n_silent = n_short = 0
    for path in scan.files:
        name = relative[path].as_posix()
        try:
            x, fmt = _decode(path, sample_rate, warn, name)  # (T,)
        except DataError as exc:
            cause = exc.__cause__
            if isinstance(cause, (RuntimeError, ValueError, EOFError)) and not isinstance(cause, NotEnoughMemory):
                if path.suffix.lower() not in AUDIO_EXTENSIONS:  # a file that does not claim to be audio
                    not_audio[path.suffix.lower() or "(no extension)"] += 1
                    continue
                warn(f"skipping '{name}': cannot decode it ({_reason(cause)})")
            else:  # unreadable, too big for memory, or not one finite sample: the message says which
                warn(f"skipping {exc}" if str(exc).startswith("'") else f"skipping '{name}': {exc}")
            n_audio += 1
            n_failed += 1
            continue
        n_audio += 1
        truncated = _wav_truncation(path) if fmt == "WAV" else None
        if truncated:
            warn(
                f"'{name}' is truncated (its header promises {truncated[0]} bytes of audio, the file "
                f"holds {truncated[1]}); using the {len(x) / sample_rate:.2f} s that are there"
            )
        if 0 < len(x) < min_samples:  # short before any trimming: e.g. a very low --sample-rate
            n_short += 1
            warn(f"skipping '{name}': {len(x)} samples at {sample_rate} Hz, fewer than {min_samples}")
            continue
        if trim_db is not None:
            x = trim_silence(x, trim_db, margin=sample_rate // 100)
        if len(x) == 0:
            n_silent += 1
            warn(f"skipping '{name}': " + (f"silent (below {trim_db} dBFS)" if trim_db is not None else "empty"))
            continue
        if len(x) < min_samples:
            n_short += 1
            warn(f"skipping '{name}': {len(x)} samples after trimming silence, fewer than {min_samples}")
            continue
        loaded.append((path, mulaw_encode(x, quantization_channels), fmt))  # codes: (T,) int64

    if not_audio:
        counts = ", ".join(f"{n} {ext}" for ext, n in not_audio.most_common())
        warn(f"ignored {sum(not_audio.values())} files that are not audio libsndfile can decode: {counts}")
    if n_audio == 0:
        found = f" (found only {', '.join(sorted(not_audio))} files)" if not_audio else ""
        raise DataError(
            f"--data: no audio files found under {root}{found}; minwave reads what libsndfile decodes: "
            "WAV, FLAC, MP3, Ogg Vorbis/Opus, AIFF, CAF, …"
        )
    if table is not None:
        listed = {relative[p].as_posix() for p, _, _ in loaded}
        for name in sorted(set(table) - listed):
            warn(f"{TAGS_FILE} lists '{name}', but there is no such usable audio file under {root}; row ignored")
        unlisted = sorted(name for name in listed if name not in table)
        if unlisted:
            warn(f"{len(unlisted)} audio files are not in {TAGS_FILE} and get no tags, e.g. '{unlisted[0]}'")
        tags_of = {p: table.get(relative[p].as_posix(), ()) for p, _, _ in loaded}
    else:
        tags_of = {p: _folder_tag(relative[p]) for p, _, _ in loaded}

    if not loaded:
        if n_failed == n_audio:
            raise DataError(f"--data: no readable audio in {root} ({n_failed} files failed to load)")
        if n_short == 0:
            raise DataError(
                f"--data: no usable audio in {root}: {n_silent} files are silent or empty "
                f"(threshold {trim_db} dBFS) and {n_failed} failed to load"
            )
        raise DataError(
            f"--data: all clips in {root} are shorter than the receptive field ({min_samples} samples) at "
            f"{sample_rate} Hz; use longer audio, a smaller model or a higher sample rate"
        )

    vocab = sorted({tag for p, _, _ in loaded for tag in tags_of[p]})
    clips = [
        Clip(relative[p].as_posix(), codes, tags_of[p], multi_hot(tags_of[p], vocab), fmt) for p, codes, fmt in loaded
    ]
    return AudioDataset(clips, vocab, int(sample_rate), int(quantization_channels))


def split_by_file(
    dataset: AudioDataset | Sequence[Clip], valid_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Clip], list[Clip]]:
    """Hold out whole files for validation: (train_clips, valid_clips).

    Stratified by tags, so every instrument (tag combination) is validated: the files of each tag
    combination with at least two files are permuted by a seeded generator and round(valid_fraction · n)
    of them, at least 1 and at most n - 1, are held out. (Many tiny groups can therefore hold out more
    than valid_fraction overall.) If no combination has two files, round(valid_fraction · n) files,
    at least 1 and at most n - 1, are drawn from all of them. Both lists keep the dataset's order; the
    same seed and files give the same split, and no audio of a validation file is ever trained on.

    With a single file there is nothing to hold out, so the clip is cut in time instead: the last
    valid_fraction of it is the validation clip, the rest is the training clip (both keep its path
    and tags). The two parts share no samples, but they are the same recording: expect a validation
    loss closer to the training loss than a different file would give.
    """
    clips = list(dataset.clips if isinstance(dataset, AudioDataset) else dataset)
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be between 0 and 1 (exclusive), got {valid_fraction}")
    if not clips:
        raise ValueError("split_by_file needs at least one clip")
    if len(clips) == 1:
        clip = clips[0]
        cut = len(clip) - max(1, int(round(valid_fraction * len(clip))))
        if cut < 1:
            raise ValueError(f"clip '{clip.path}' has {len(clip)} samples, too few to split")
        head, tail = clip.codes[:cut], clip.codes[cut:]
        return [dataclasses.replace(clip, codes=head)], [dataclasses.replace(clip, codes=tail)]

    def n_held_out(n: int) -> int:
        return min(max(int(round(valid_fraction * n)), 1), n - 1)

    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, clip in enumerate(clips):
        groups.setdefault(tuple(sorted(clip.tags)), []).append(i)
    valid: set[int] = set()
    for key in sorted(groups):  # sorted: the same draws in the same order every time
        members = groups[key]
        if len(members) >= 2:
            valid.update(rng.permutation(members)[: n_held_out(len(members))].tolist())
    if not valid:  # every tag combination has a single file: draw from all files
        valid = set(rng.permutation(len(clips))[: n_held_out(len(clips))].tolist())
    return [c for i, c in enumerate(clips) if i not in valid], [c for i, c in enumerate(clips) if i in valid]


# ---------------------------------------------------------------------------------------------------
# Batches


def _window(codes: np.ndarray, start: int, length: int, silence: int) -> np.ndarray:
    """codes[start : start + length]; a clip shorter than `length` is left-padded with the silence code.

    Padding on the left looks like silence before the clip starts, which the model has seen in
    training (trimmed clips start right at the sound, and the receptive field reaches before it).
    """
    if len(codes) >= length:
        return codes[start : start + length]
    row = np.full(length, silence, dtype=np.int64)
    row[length - len(codes) :] = codes
    return row


def _check_batch_args(clips, n_tags, segment_length, receptive_field, batch_size, quantization_channels):
    if not clips:
        raise ValueError("no clips to draw batches from")
    for name, value in [
        ("segment_length", segment_length),
        ("receptive_field", receptive_field),
        ("batch_size", batch_size),
    ]:
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for clip in clips:
        if n_tags > 0 and len(clip.tag_vector) != n_tags:
            raise ValueError(
                f"clip '{clip.path}' has a tag vector of length {len(clip.tag_vector)}, not n_tags={n_tags}"
            )
        if len(clip) and (clip.codes.min() < 0 or clip.codes.max() >= quantization_channels):
            raise ValueError(f"clip '{clip.path}' has codes outside 0..{quantization_channels - 1}")


class BatchSampler:
    """Random training batches: rows of RF context samples followed by segment_length samples to predict.

    A row is `segment_length + receptive_field` consecutive codes. The model reads x[:, :-1] and its
    segment_length outputs with a full receptive field predict x[:, RF:]. The clip of each row is drawn with
    probability proportional to its length (so every sample of the dataset is equally likely to be
    seen, and short clips are not over-trained), the start uniformly among the windows that fit;
    clips shorter than a row are left-padded with the silence code Q // 2 (μ-law of 0.0).

    Reproducible: the same clips and seed give the same batches. get_state()/set_state() save and
    restore the generator (a JSON-serialisable dict) so a resumed run continues the same sequence.

    shard=(r, N): data-parallel training (distributed.py). Every rank draws the whole batch's clips and
    starts from the same generator (a few random numbers per row) but builds only its own rows,
    r·B/N ... (r+1)·B/N - 1. So N ranks together see exactly the rows one process sees, the batch sequence
    does not depend on N, and one generator state (any rank's) resumes a run with any N.
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        n_tags: int,
        segment_length: int,
        receptive_field: int,
        batch_size: int,
        seed: int = 0,
        quantization_channels: int = 256,
        shard: tuple[int, int] = (0, 1),
    ):
        _check_batch_args(clips, n_tags, segment_length, receptive_field, batch_size, quantization_channels)
        rank, ranks = shard
        if not (ranks >= 1 and 0 <= rank < ranks and batch_size % ranks == 0):
            raise ValueError(f"shard {shard}: need 0 <= rank < ranks and batch_size {batch_size} divisible by ranks")
        self.rows = slice(rank * batch_size // ranks, (rank + 1) * batch_size // ranks)  # this rank's rows
        self.clips = list(clips)
        self.n_tags = int(n_tags)
        self.receptive_field = int(receptive_field)
        self.row_length = int(segment_length) + self.receptive_field
        self.batch_size = int(batch_size)
        self.silence = int(quantization_channels) // 2
        self.lengths = np.array([len(c) for c in self.clips], dtype=np.int64)  # (n_clips,)
        self.probabilities = self.lengths / self.lengths.sum()
        self.rng = np.random.default_rng(seed)

    def sample(self) -> tuple[np.ndarray, np.ndarray | None]:
        """-> x int64 (B, RF + segment), tags float32 (B, G) or None when n_tags == 0 (B/N rows with a shard)."""
        which = self.rng.choice(len(self.clips), size=self.batch_size, p=self.probabilities)  # (B,)
        last_start = np.maximum(self.lengths[which] - self.row_length, 0)  # (B,)
        starts = self.rng.integers(0, last_start + 1)  # (B,) uniform in 0..last_start
        which, starts = which[self.rows], starts[self.rows]  # (B/N,) this rank's rows of the batch
        x = np.stack([_window(self.clips[i].codes, s, self.row_length, self.silence) for i, s in zip(which, starts)])
        tags = np.stack([self.clips[i].tag_vector for i in which]).astype(np.float32) if self.n_tags else None
        return x, tags  # (B, RF + segment), (B, G)

    def get_state(self) -> dict:
        """The generator state, a JSON-serialisable dict (numpy's bit_generator.state)."""
        return deepcopy(self.rng.bit_generator.state)

    def set_state(self, state: dict) -> None:
        """Restore a state from get_state(); the next sample() continues where that sampler was."""
        self.rng.bit_generator.state = deepcopy(state)


def validation_batches(
    clips: Sequence[Clip],
    n_tags: int,
    segment_length: int,
    receptive_field: int,
    batch_size: int,
    quantization_channels: int = 256,
    max_rows: int = 64,
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The same validation batches every time, so validation losses are comparable across steps.

    Rows have the layout of BatchSampler's. Each clip gets as many rows as it has disjoint
    segment_length-sample prediction windows, evenly spaced from its start to its end; if that totals more than
    `max_rows`, every clip's count is scaled down proportionally but stays at least 1 (so every
    validation clip is represented, and there may be more than max_rows when clips outnumber it).
    Rows are grouped into batches of `batch_size` (the last may be smaller).
    """
    _check_batch_args(clips, n_tags, segment_length, receptive_field, batch_size, quantization_channels)
    if int(max_rows) != max_rows or max_rows < 1:
        raise ValueError(f"max_rows must be a positive integer, got {max_rows!r}")
    row_length = segment_length + receptive_field
    silence = quantization_channels // 2
    lengths = np.array([len(c) for c in clips])
    counts = np.maximum((lengths - receptive_field) // segment_length, 1)  # disjoint prediction windows
    if counts.sum() > max_rows:
        counts = np.maximum(counts * max_rows // counts.sum(), 1)
    rows, tags = [], []
    for clip, n, count in zip(clips, lengths, counts):
        for start in np.linspace(0, max(n - row_length, 0), count).round().astype(np.int64):
            rows.append(_window(clip.codes, int(start), row_length, silence))
            tags.append(clip.tag_vector)
    batches = []
    for i in range(0, len(rows), batch_size):
        x = np.stack(rows[i : i + batch_size])  # (B, RF + segment)
        t = np.stack(tags[i : i + batch_size]).astype(np.float32) if n_tags else None  # (B, G)
        batches.append((x, t))
    return batches


def unigram_bits(clips: Sequence[Clip], quantization_channels: int = 256) -> float:
    """Entropy of the clips' code histogram, in bits per sample: H = -Σ p(q) log2 p(q).

    The cross-entropy a model reaches by predicting every sample from the histogram alone, ignoring
    the past; a WaveNet that has learned anything scores below it (loss_nats / ln 2 < unigram_bits).
    """
    counts = np.zeros(quantization_channels, dtype=np.int64)
    for clip in clips:
        counts += np.bincount(clip.codes, minlength=quantization_channels)[:quantization_channels]
    if counts.sum() == 0:
        raise ValueError("unigram_bits needs at least one sample")
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


# ---------------------------------------------------------------------------------------------------
# Batches with local conditioning (frames at one per `hop` samples beside each clip: conditioning.py)


def frame_window(frames: np.ndarray, start: int, length: int, hop: int, context: int) -> tuple[np.ndarray, int]:
    """The frames that condition samples start … start+length-1 of a clip, with `context` more frames
    either side for the upsampler's convolution: (window (F', C), offset).

    offset is where sample `start` lies on the window's sample grid (WaveNet.forward's cond_offset);
    start may be negative (before the clip). Frames outside the clip are zeros, as the upsampler's
    convolution pads them, so a window gives exactly the clip's own upsampled values.
    """
    f0 = start // hop - context
    f1 = (start + length - 1) // hop + context + 1  # exclusive
    window = np.zeros((f1 - f0, frames.shape[1]), dtype=frames.dtype)  # (F', C)
    lo, hi = max(f0, 0), min(f1, len(frames))
    if lo < hi:
        window[lo - f0 : hi - f0] = frames[lo:hi]
    return window, start - f0 * hop


def _aligned_row(codes: np.ndarray, start: int, length: int, silence: int) -> np.ndarray:
    """codes[start : start + length] where start may be negative: silence codes before the clip."""
    row = np.full(length, silence, dtype=np.int64)
    row[max(0, -start) :] = codes[max(0, start) : start + length]
    return row


def _aligned_last_start(n, row_length: int, hop: int):
    """The last frame-aligned row start of a clip of n samples (an int, or an int array of lengths): a
    multiple of hop, negative (silence before the clip) when the clip is shorter than a row."""
    return (n - row_length) // hop * hop


class LocalBatchSampler(BatchSampler):
    """BatchSampler's rows, each with the frames that condition it: sample() -> (x, tags, cond).

    frames[i] (F_i, C) belongs to clips[i] (frame f covers samples f·hop … f·hop + hop - 1). Rows start
    on a frame boundary (a multiple of hop; before the clip for one shorter than a row, padded with
    silence), so every row's window of frames has the same offset: `self.cond_offset` = context·hop,
    the cond_offset to pass to the model with x. Clips are drawn as BatchSampler draws them.

    onset_rows > 0 (--onset-rows): the first round(onset_rows · B) rows (at least one) of every batch are
    drawn around a note's onset instead: one of `onsets` (each clip's frames that hold one) uniformly, and a start
    1 … a few frames before it, so that the whole onset frame lies in the row's predicted samples
    (where the clip allows). At 0, exactly the uniform rows above.
    """

    def __init__(self, clips, frames, hop: int, context: int, *args, onsets=None, onset_rows: float = 0.0, **kwargs):
        super().__init__(clips, *args, **kwargs)
        _check_frames(self.clips, frames, hop)
        self.frames, self.hop, self.context = list(frames), int(hop), int(context)
        self.cond_offset = self.context * self.hop
        # each clip's frame-aligned row starts run first … last; a clip shorter than a row has one, before it
        self.last_start = _aligned_last_start(self.lengths, self.row_length, self.hop)  # (n_clips,)
        self.first_start = np.minimum(self.last_start, 0)  # (n_clips,)
        self.onset_rows = max(1, round(onset_rows * self.batch_size)) if onset_rows else 0  # rows 0 … n-1
        if self.onset_rows:
            if onsets is None or len(onsets) != len(self.clips):
                raise ValueError("onset_rows needs each clip's onset frames (onsets, one array per clip)")
            self.onset_clip = np.concatenate([np.full(len(o), i, dtype=np.int64) for i, o in enumerate(onsets)])
            self.onset_frame = np.concatenate([np.asarray(o, dtype=np.int64) for o in onsets])  # (n_onsets,)
            if not len(self.onset_frame):
                raise ValueError("the training clips hold no note onsets to draw rows around")
            # the onset frame f lies in the predicted samples RF … row_length-1 of a row starting at (f - lag)·hop
            self.lags = (-(-self.receptive_field // self.hop), self.row_length // self.hop - 1)
            if self.lags[0] > self.lags[1]:
                raise ValueError(
                    f"a row of {self.row_length} samples cannot predict a whole {self.hop}-sample "
                    f"frame after its {self.receptive_field} samples of context; use a segment of at least "
                    f"{self.lags[0] * self.hop + self.hop - self.receptive_field} samples"
                )

    def sample(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """-> x int64 (B, RF + segment), tags float32 (B, G) or None, cond float32 (B, F', C)."""
        which = self.rng.choice(len(self.clips), size=self.batch_size, p=self.probabilities)  # (B,)
        first, last = self.first_start[which], self.last_start[which]  # (B,) each
        starts = first + self.hop * self.rng.integers(0, (last - first) // self.hop + 1)  # (B,) multiples of hop
        if self.onset_rows:  # rows 0 … n-1: around a note's onset instead
            n = self.onset_rows
            pick = self.rng.integers(0, len(self.onset_frame), n)  # (n,) which onset
            lag = self.rng.integers(self.lags[0], self.lags[1] + 1, n)  # (n,) frames from the row start to it
            which[:n] = self.onset_clip[pick]
            around = (self.onset_frame[pick] - lag) * self.hop  # (n,) starts, clipped to the clip's range
            starts[:n] = np.clip(around, self.first_start[which[:n]], self.last_start[which[:n]])
        which, starts = which[self.rows], starts[self.rows]
        x = np.stack(
            [_aligned_row(self.clips[i].codes, s, self.row_length, self.silence) for i, s in zip(which, starts)]
        )
        tags = np.stack([self.clips[i].tag_vector for i in which]).astype(np.float32) if self.n_tags else None
        cond = np.stack(
            [frame_window(self.frames[i], s, self.row_length, self.hop, self.context)[0] for i, s in zip(which, starts)]
        )
        return x, tags, cond.astype(np.float32)


def _check_frames(clips, frames, hop) -> None:
    if int(hop) != hop or hop < 1:
        raise ValueError(f"hop must be a positive integer, got {hop!r}")
    if len(frames) != len(clips):
        raise ValueError(f"{len(frames)} frame arrays for {len(clips)} clips")
    for clip, f in zip(clips, frames):
        if f.ndim != 2 or len(f) != -(-len(clip) // hop) or f.shape[1] != frames[0].shape[1]:
            raise ValueError(
                f"clip '{clip.path}': frames of shape {f.shape} do not cover {len(clip)} samples at hop {hop}"
            )


def local_validation_batches(
    clips, frames, hop: int, context: int, n_tags: int, segment_length: int, receptive_field: int,
    batch_size: int, quantization_channels: int = 256, max_rows: int = 64,
) -> list[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:  # fmt: skip
    """validation_batches' rows, frame-aligned and with their frames: [(x, tags, cond), ...], fixed.

    cond_offset is context·hop, as for LocalBatchSampler.
    """
    _check_batch_args(clips, n_tags, segment_length, receptive_field, batch_size, quantization_channels)
    _check_frames(clips, frames, hop)
    row_length = segment_length + receptive_field
    silence = quantization_channels // 2
    lengths = np.array([len(c) for c in clips])
    counts = np.maximum((lengths - receptive_field) // segment_length, 1)
    if counts.sum() > max_rows:
        counts = np.maximum(counts * max_rows // counts.sum(), 1)
    rows = []
    for clip, f, n, count in zip(clips, frames, lengths, counts):
        last = _aligned_last_start(int(n), row_length, hop)
        for start in np.unique(np.linspace(min(last, 0), last, count) // hop * hop).astype(np.int64):
            window = frame_window(f, int(start), row_length, hop, context)[0]
            rows.append((_aligned_row(clip.codes, int(start), row_length, silence), clip.tag_vector, window))
    batches = []
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        x = np.stack([r[0] for r in chunk])  # (B, RF + segment)
        t = np.stack([r[1] for r in chunk]).astype(np.float32) if n_tags else None  # (B, G)
        c = np.stack([r[2] for r in chunk]).astype(np.float32)  # (B, F', C)
        batches.append((x, t, c))
    return batches
