"""The figures of a model's card: `python -m minwave.bench card`, one command per figure of docs/pretrained.md.

    python -m minwave.bench card builtin-music --out docs/images          # a shipped model
    python -m minwave.bench card --checkpoint runs/x --out /tmp/card      # a run, before exporting it

A tag-conditioned model (config.condition == ""): --seconds (default 4) of audio per tag, all tags in one
batch of the fast sampler (stream g plays tag g; --seed, --temperature). DIR/NAME.png is a 2 × G grid of
spectrograms (0-4 kHz): on top a real clip of each tag, below the model's clip for that tag. The real
clip is the first held-out file of that tag in the built-in music at the model's sample rate
(data.split_by_file with the run's valid_fraction and seed, the defaults 0.1 and 0), as the model
hears it (μ-law codes decoded, so both rows share the same quantisation floor), cut to the same length.
A file the model trained on is never shown: files whose codes match a training file of the run's data
fingerprint are skipped (the built-in music has grown since some models were trained, and a file held
out of today's split may have been trained on then).

A notes-conditioned model (config.condition == "notes"): each tag plays minwave.bench.notes.MELODIES[tag],
a tune absent from the training data, as long as `generate --melody` makes it (its notes, plus
conditioning.NOTES_TAIL_S), or only its first --seconds when given; one stream per tag, the same call as
`python -m minwave.bench notes pitch` makes, so the figures agree. DIR/NAME.png has one spectrogram per
tag (0-2 kHz, where the fundamentals lie) with the requested notes drawn over it at their fundamental;
its title gives the pitch accuracy and the tonal notes of bench notes (the pitch by librosa.yin, a dev
dependency; without librosa the title says so and the JSON has null).

Every panel's title gives minwave.quality's periodicity (a steady note 0.9-1, white noise 0.1-0.2); all
panels share one colour scale (dB re a full-scale sine, DYNAMIC_RANGE_DB below the loudest bin shown).
The generated clips are written as DIR/NAME_<tag>.wav. One JSON object on stdout: per tag the figures,
the paths written, and the step and metrics (val_bits …) stored in the checkpoint.

NAME is a shipped model (minwave.pretrained.available()); an unknown one is a usage error (exit 2). With
--checkpoint, NAME is the run folder's name; an unreadable checkpoint exits 1, like generate.

Legend: G tags, n samples per clip, F spectrogram frames, K frequency bins.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .. import checkpoint, conditioning, pretrained
from ..cli.errors import ArgumentParser, UsageError, run_cli
from ..data import Clip, load_dataset, split_by_file
from ..files import atomic_write, atomic_write_audio
from ..memory import check_fits, generation_bytes
from ..mulaw import mulaw_decode
from ..quality import quality
from ..sampling import generate
from ..settings import non_negative_float, non_negative_int, positive_float
from ..synth import ensure_builtin_dataset, midi_to_hz
from ..threads import set_blas_threads
from .notes import MELODIES, pitch_accuracy, play_notes, tonal_notes

PROG = "minwave.bench card"
DEFAULT_SECONDS = 4.0  # per tag, for a tag-conditioned model
MAX_SECONDS = 600.0
TAGS_FMAX_HZ = 4000.0  # the harmonics that tell the instruments apart
NOTES_FMAX_HZ = 2000.0  # the fundamentals of MELODIES (98 Hz … 1047 Hz) and their second harmonics
DYNAMIC_RANGE_DB = 80.0  # the colour scale spans this far below the loudest bin of the figure


# ================================================================================== the audio
def unseen_clips(dataset, ckpt) -> list:
    """The built-in clips the model never trained on: split_by_file's held-out files (the run's
    valid_fraction and seed) minus any whose codes match a file the run trained on (its data fingerprint,
    split the same way: split_by_file depends only on the order and tags of the files)."""
    valid_fraction = ckpt.train_args.get("valid_fraction", 0.1)
    seed = ckpt.train_args.get("seed", 0)
    _, held_out = split_by_file(dataset, valid_fraction, seed)
    trained = set()
    fingerprint = ckpt.train_args.get("data_fingerprint") or []  # [path, samples, hash, tags] per file
    if len(fingerprint) > 1:
        files = [Clip(path=row[0], codes=np.zeros(0, np.int64), tags=tuple(row[3])) for row in fingerprint]
        train_files, _ = split_by_file(files, valid_fraction, seed)
        by_path = {row[0]: row for row in fingerprint}
        trained = {by_path[c.path][2] for c in train_files}
    elif len(fingerprint) == 1:  # one file: split in time, so all of it was heard
        trained = {fingerprint[0][2]}
    hashes = {row[0]: row[2] for row in dataset.fingerprint()}
    return [c for c in held_out if hashes[c.path] not in trained]


def spectrogram_db(audio: np.ndarray, sample_rate: int, fmax: float, n_fft: int) -> tuple[np.ndarray, float]:
    """Power in dB re a full-scale sine, (K, F) up to fmax (low frequencies first), and the top bin's Hz.

    Hann window of n_fft samples every n_fft / 8; a sine of amplitude A peaks at 20·log10(A) dB."""
    power = conditioning.power_spectrogram(audio, n_fft // 8, n_fft)  # (F, n_fft/2 + 1)
    bins = int(np.floor(fmax * n_fft / sample_rate)) + 1
    power = power[:, :bins] * 4.0 / (n_fft / 2) ** 2  # Σ Hann = n_fft / 2
    return 10 * np.log10(power.T + 1e-20), (bins - 1) * sample_rate / n_fft  # (K, F)


def fft_size(sample_rate: int, seconds: float) -> int:
    """The power of two nearest to `seconds` of audio (64 ms: 1024 at 16 kHz)."""
    return int(2 ** round(np.log2(seconds * sample_rate)))


def draw(ax, db: np.ndarray, top_hz: float, seconds: float, vmin: float, vmax: float):
    """One spectrogram panel; returns the image (for the colour bar)."""
    image = ax.imshow(
        db, origin="lower", aspect="auto", extent=(0, seconds, 0, top_hz), cmap="magma", vmin=vmin, vmax=vmax
    )
    ax.set_xlabel("time (s)")
    return image


def colour_range(panels: list[np.ndarray]) -> tuple[float, float]:
    vmax = float(max(p.max() for p in panels))
    return vmax - DYNAMIC_RANGE_DB, vmax


def save_figure(fig, path: Path) -> Path:
    """The PNG, written atomically (an image viewer never sees half a file)."""
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))


def say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


# ================================================================================== the two cards
def tag_card(ckpt, name: str, out: Path, seconds: float, seed: int, temperature: float) -> dict:
    """Real and generated spectrograms per tag (module docstring); returns the per-tag figures."""
    from matplotlib.figure import Figure  # not pyplot: no GUI backend (plotting.py)

    config, tags = ckpt.config, ckpt.tag_vocab
    rate, q, G = config.sample_rate, config.quantization_channels, len(tags)
    n = max(1, int(round(seconds * rate)))
    check_fits(generation_bytes(G, n), f"--seconds {seconds:g} × {G} tags at {rate} Hz", "give fewer --seconds")
    dataset = load_dataset(ensure_builtin_dataset(sample_rate=rate), rate, q, warn=lambda message: None)
    unseen = unseen_clips(dataset, ckpt)
    real = {t: next((c for c in unseen if t in c.tags), None) for t in tags}

    say(f"{G} × {n / rate:.2f} s at {rate} Hz, one stream per tag (step {ckpt.step}) ...")
    codes = generate(
        ckpt.generation_model(), n, batch=G, tags=np.eye(G, dtype=np.float32), seed=seed, temperature=temperature
    )
    generated = mulaw_decode(np.asarray(codes), q).astype(np.float32)  # (G, n)

    n_fft = fft_size(rate, 0.064)
    rows, panels = {}, []
    for g, tag in enumerate(tags):
        clip = real[tag]
        real_audio = None if clip is None else mulaw_decode(clip.codes[:n], q)  # as the model hears it
        wav = atomic_write_audio(out / f"{name}_{tag}.wav", generated[g], rate)
        rows[tag] = {
            "periodicity": round(quality(generated[g], rate).periodicity, 3),
            "real_clip": None if clip is None else clip.path,
            "real_periodicity": None if clip is None else round(quality(real_audio, rate).periodicity, 3),
            "wav": str(wav),
        }
        panels.append((real_audio, generated[g]))

    spectra = [[None if a is None else spectrogram_db(a, rate, TAGS_FMAX_HZ, n_fft) for a in pair] for pair in panels]
    vmin, vmax = colour_range([s[0] for pair in spectra for s in pair if s is not None])
    fig = Figure(figsize=(4.2 * G + 1.2, 6.4), layout="constrained")
    axes = fig.subplots(2, G, sharey=True, squeeze=False)
    image = None
    for g, tag in enumerate(tags):
        row = rows[tag]
        for r, spectrum in enumerate(spectra[g]):
            ax = axes[r, g]
            if spectrum is None:
                ax.text(0.5, 0.5, f"no unseen built-in\nclip tagged {tag}", ha="center", va="center")
                ax.set_title(f"real: {tag}")
                continue
            db, top = spectrum
            length = (len(panels[g][r])) / rate
            image = draw(ax, db, top, length, vmin, vmax)
            if r == 0:
                ax.set_title(f"real: {tag} ({row['real_clip']})\nperiodicity {row['real_periodicity']:.2f}")
            else:
                ax.set_title(f"generated: {tag}\nperiodicity {row['periodicity']:.2f}")
        axes[0, g].set_xlabel("")
    axes[0, 0].set_ylabel("Hz")
    axes[1, 0].set_ylabel("Hz")
    fig.colorbar(image, ax=axes, label="dB re full-scale sine", shrink=0.9)
    fig.suptitle(f"{name}: {heading(ckpt)}; seed {seed}, temperature {temperature:g}; held-out real clips above")
    figure = save_figure(fig, out / f"{name}.png")
    return {"figure": str(figure), "tags": rows}


def notes_card(ckpt, name: str, out: Path, seconds: float | None, seed: int, temperature: float) -> dict:
    """Each tag plays its MELODIES tune; spectrograms with the requested notes (module docstring)."""
    from matplotlib.figure import Figure

    config = ckpt.config
    rate = config.sample_rate
    tags = [t for t in ckpt.tag_vocab if t in MELODIES]
    if not tags:
        raise UsageError(
            f"{name}: none of its tags ({', '.join(ckpt.tag_vocab) or 'none'}) has a melody in "
            f"minwave.bench.notes.MELODIES ({', '.join(MELODIES)})"
        )
    try:
        import librosa  # noqa: F401  (pitch_accuracy's tracker)

        has_librosa = True
    except ImportError:
        has_librosa = False
    model = ckpt.generation_model()
    n_fft = fft_size(rate, 0.128)  # finer in frequency: pluck's G2 and B2 are 25 Hz apart
    rows, clips = {}, []
    for tag in tags:
        notes = conditioning.parse_melody(MELODIES[tag])
        n = conditioning.notes_samples(notes, rate)  # generate's rule
        if seconds is not None:
            n = min(n, max(1, int(round(seconds * rate))))  # its first --seconds; notes past the end are cut
        check_fits(generation_bytes(1, n), f"{n / rate:.2f} s at {rate} Hz", "give fewer --seconds")
        say(f"{tag} plays {MELODIES[tag]!r}: {n / rate:.2f} s at {rate} Hz (step {ckpt.step}) ...")
        audio = play_notes(model, notes, n, ckpt.tag_vector([tag]), seed, temperature)  # (n,)
        wav = atomic_write_audio(out / f"{name}_{tag}.wav", audio, rate)
        accuracy, judged = pitch_accuracy(audio, rate, notes) if has_librosa else (None, None)
        tonal, notes_judged = tonal_notes(audio, rate, notes)
        rows[tag] = {
            "melody": MELODIES[tag],
            "seconds": round(n / rate, 3),
            "periodicity": round(quality(audio, rate).periodicity, 3),
            "pitch_accuracy": None if accuracy is None else round(accuracy, 3),
            "judged_frames": judged,
            "tonal_notes": f"{tonal}/{notes_judged}",
            "wav": str(wav),
        }
        clips.append((audio, notes))

    spectra = [spectrogram_db(audio, rate, NOTES_FMAX_HZ, n_fft) for audio, _ in clips]
    vmin, vmax = colour_range([db for db, _ in spectra])
    fig = Figure(figsize=(4.6 * len(tags) + 1.2, 4.2), layout="constrained")
    axes = fig.subplots(1, len(tags), sharey=True, squeeze=False)[0]
    axes[0].set_ylabel("Hz")
    for ax, tag, (audio, notes), (db, top) in zip(axes, tags, clips, spectra):
        length = len(audio) / rate
        image = draw(ax, db, top, length, vmin, vmax)
        for note in notes:  # the requested notes, at their fundamental
            start, end = note.onset_s, min(note.onset_s + note.duration_s, length)
            if start < end:
                ax.hlines(midi_to_hz(note.pitch), start, end, colors="cyan", linewidth=1.2, linestyles=(0, (3, 2)))
        ax.set_xlim(0, length)
        row = rows[tag]
        pitch = (
            f"pitch {row['pitch_accuracy']:.2f} ({row['judged_frames']} frames)"
            if has_librosa
            else "pitch: librosa not installed"
        )
        ax.set_title(f"{tag}: periodicity {row['periodicity']:.2f}, tonal notes {row['tonal_notes']}\n{pitch}")
    fig.colorbar(image, ax=axes, label="dB re full-scale sine", shrink=0.9)
    fig.suptitle(f"{name}: {heading(ckpt)}; unseen melodies (cyan: the notes asked for); seed {seed}")
    figure = save_figure(fig, out / f"{name}.png")
    return {"figure": str(figure), "tags": rows, "pitch_tracker": "librosa.yin" if has_librosa else None}


def heading(ckpt) -> str:
    val = ckpt.metrics.get("val_bits")
    return f"step {ckpt.step}" + (f", validation {val:.2f} bits/sample" if isinstance(val, (int, float)) else "")


# ================================================================================== command line
def build_parser() -> ArgumentParser:
    shipped = ", ".join(pretrained.available()) or "none in this installation"
    parser = ArgumentParser(prog="python -m minwave.bench card", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", metavar="NAME", help=f"a shipped model: {shipped}")
    parser.add_argument("--checkpoint", metavar="RUN", help="a run folder (or its checkpoint.npz) instead of NAME")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for NAME.png and NAME_<tag>.wav")
    parser.add_argument(
        "--seconds",
        type=positive_float,
        default=None,
        help=f"per tag (default {DEFAULT_SECONDS:g}); for a notes model, the first SECONDS of each melody "
        "(default: the whole melody)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seeds the sampling (default 0)")
    parser.add_argument("--temperature", type=non_negative_float, default=1.0, help="sampling temperature (default 1)")
    return parser


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if (args.name is None) == (args.checkpoint is None):
        raise UsageError("give either NAME (a shipped model) or --checkpoint RUN (a run folder), not both")
    if args.seconds is not None and args.seconds > MAX_SECONDS:
        raise UsageError(f"--seconds: at most {MAX_SECONDS:g}, got {args.seconds:g}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a folder")
    if args.name is not None:
        try:
            ckpt, name, source = pretrained.load_pretrained(args.name), args.name, f"pretrained {args.name}"
        except checkpoint.CheckpointError as exc:
            raise UsageError(str(exc)) from None
    else:
        ckpt, source = checkpoint.load(args.checkpoint), str(args.checkpoint)  # unreadable: exit 1
        name = run_name(Path(args.checkpoint))
    config = ckpt.config
    if config.condition not in ("", "notes"):
        raise UsageError(f"{source} is conditioned on {config.condition}; the card draws tag-only and notes models")
    if not ckpt.tag_vocab:
        raise UsageError(f"{source} has no tags; the card shows a tag-conditioned model, one panel per tag")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out: cannot create the folder {out} ({exc.strerror or exc})") from None
    restore = set_blas_threads(1)
    try:
        if config.condition == "notes":
            card = notes_card(ckpt, name, out, args.seconds, args.seed, args.temperature)
        else:
            seconds = args.seconds if args.seconds is not None else DEFAULT_SECONDS
            card = tag_card(ckpt, name, out, seconds, args.seed, args.temperature)
    finally:
        restore()
    report = {
        "model": name,
        "source": source,
        "condition": config.condition or "tags",
        "step": ckpt.step,
        "metrics": ckpt.metrics,
        "seed": args.seed,
        "temperature": args.temperature,
        **card,
        "written": [card["figure"], *(row["wav"] for row in card["tags"].values())],
    }
    print(json.dumps(report, indent=1))
    return 0


def run_name(path: Path) -> str:
    """runs/x or runs/x/checkpoint.npz -> 'x'; other.npz -> 'other'."""
    path = path.resolve()
    if path.is_dir():
        return path.name
    return path.parent.name if path.name == checkpoint.CHECKPOINT_NAME else path.stem


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, _main, argv)
