"""`python -m minwave.generate`: generate audio from a checkpoint and write it, one file per clip.

    python -m minwave.generate --checkpoint runs/tiny-20260101-120000 --tags pluck --seconds 4 --out pluck.wav
    python -m minwave.generate --checkpoint runs/x/checkpoint.npz --batch 3 --temperature 0.9 --out take.wav
        # writes take_1.wav, take_2.wav, take_3.wav
    python -m minwave.generate --checkpoint runs/notes --tags organ --melody "C4:0.5 E4:0.5 G4:1" --out tune.wav
    python -m minwave.generate --pretrained builtin-music-notes --tags pluck --melody random --seconds 8 --out pluck.wav
    python -m minwave.generate --checkpoint runs/mel --vocode speech.wav --out again.wav

A model trained with --condition notes plays --notes FILE (a notes.csv or MIDI file) or --melody; one
trained with --condition mel resynthesises --vocode IN.wav from its log-mel spectrogram. The output is
as long as the conditioning (notes: until the last note ends, plus conditioning.NOTES_TAIL_S).
`--melody random` asks the built-in composer (synth.compose: the random walks the built-in music is made
of, from a stream of its own) for --seconds of new melodies in the register of the tag's instrument (one
of the built-in tags pluck, organ, bell), a new one for each --seed.

This file is only the command line (minwave/generate.py runs it under that name); the sampler itself
is `minwave.generate(model, n_samples, ...)` in sampling.py (the Numba fast sampler by default). The
audio is written at the model's sample rate as 16-bit PCM (.wav, .flac or .ogg, chosen by the
extension of --out).

Nothing is lost: each file is written atomically (files.py: a temporary file, fsync, rename), so a full
disk, Ctrl-C or SIGTERM leaves an existing OUT.wav as it was; temporary files of killed earlier runs in
the output folder are removed at start. The memory the clips need is checked before generating.

Legend (ops/__init__.py): B clips (--batch), G tags, F, C local conditioning frames and their channels;
n samples per clip.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np

from .. import checkpoint, conditioning, pretrained, synth
from ..data import DataError, load_audio
from ..files import atomic_write_audio, clean_stale_temporaries
from ..memory import check_fits, generation_bytes
from ..mulaw import mulaw_decode
from ..quality import quality
from ..sampling import generate
from ..settings import non_negative_float, non_negative_int, positive_float, positive_int
from .errors import ArgumentParser, UsageError, exit_program, run_cli, warn

PROG = "minwave.generate"
DEFAULT_SECONDS = 2.0
FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m minwave.generate",
        description="Generate audio with a trained WaveNet checkpoint and write it at the model's sample rate.",
    )
    add = parser.add_argument
    add(
        "--checkpoint",
        metavar="PATH",
        help="a checkpoint.npz written by minwave.train, or the run folder holding it",
    )
    add(
        "--pretrained",
        metavar="NAME",
        help="a model shipped with minwave instead of --checkpoint (docs/pretrained.md): "
        + (", ".join(pretrained.available()) or "none in this installation"),
    )
    add(
        "--out",
        required=True,
        metavar="OUT.wav",
        help="output file (.wav, .flac or .ogg); with --batch B > 1, B files OUT_1.wav … OUT_B.wav",
    )
    add(
        "--seconds",
        type=positive_float,
        metavar="SECONDS",
        help=f"length of each clip in seconds (default {DEFAULT_SECONDS:g}; with --notes, --melody or --vocode "
        "the length follows them, except for --melody random)",
    )
    local = parser.add_mutually_exclusive_group()
    local.add_argument(
        "--notes",
        metavar="FILE",
        help="for a model trained with --condition notes: play the notes of FILE, a notes.csv "
        "(onset_s,duration_s,midi_pitch) or a MIDI file (.mid, needs mido)",
    )
    local.add_argument(
        "--melody",
        metavar='"C4:0.5 E4:0.5 G4:1"',
        help="for a model trained with --condition notes: NAME:SECONDS notes one after another "
        "(C4, F#3, Bb2; R:SECONDS is a rest), or 'random': --seconds of new melodies from the built-in "
        "composer for the tag's instrument",
    )
    local.add_argument(
        "--vocode",
        metavar="IN.wav",
        help="for a model trained with --condition mel: resynthesise IN.wav from its log-mel spectrogram",
    )
    add(
        "--tags",
        metavar="TAG[,TAG…]",
        help="tags to condition on, comma-separated (several tags are mixed "
        "as a multi-hot vector). Default for a tagged model: its first tag",
    )
    add(
        "--temperature",
        type=non_negative_float,
        default=1.0,
        metavar="TEMPERATURE",
        help="divides the logits before sampling: below 1 "
        "is more conservative, above 1 wilder, 0 always takes the most likely level (default 1.0)",
    )
    add(
        "--seed",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="random seed; the same seed gives the same audio (default 0)",
    )
    add("--batch", type=positive_int, default=1, metavar="B", help="independent clips generated together (default 1)")
    add(
        "--method",
        choices=["fast", "naive"],
        default="fast",
        help="fast: the Numba queue sampler (default); "
        "naive: recompute the whole receptive field for every sample (slow, the reference)",
    )
    return parser


def output_paths(out: Path, batch: int) -> list[Path]:
    """OUT itself for one clip; OUT_1 … OUT_B (same extension) for B clips."""
    if batch == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(1, batch + 1)]


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if out.suffix.lower() not in FORMATS:
        raise UsageError(f"--out: {out} must end in {', '.join(FORMATS)}")
    if out.is_dir():
        raise UsageError(f"--out: {out} is a folder; give a file name such as {shlex.quote(str(out / 'out.wav'))}")
    folder = out.parent
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out: {folder} is a file, not a folder")

    if (args.checkpoint is None) == (args.pretrained is None):
        raise UsageError("give either --checkpoint PATH (a run of yours) or --pretrained NAME (a shipped model)")
    ckpt = checkpoint.load(args.checkpoint) if args.pretrained is None else pretrained.load_pretrained(args.pretrained)
    rate = ckpt.sample_rate
    names = [t.strip() for t in args.tags.split(",") if t.strip()] if args.tags is not None else None
    if names == [] and ckpt.tag_vocab:
        raise UsageError(f"--tags: give at least one tag; known tags are {', '.join(ckpt.tag_vocab)}")
    if names is None and ckpt.tag_vocab:
        names = [ckpt.tag_vocab[0]]
        print(f"{PROG}: no --tags given, using '{names[0]}' (known tags: {', '.join(ckpt.tag_vocab)})", file=sys.stderr)
    try:
        vector = ckpt.tag_vector(names or [])
    except ValueError as exc:
        raise UsageError(f"--tags: {exc}") from None
    tags = None if vector is None else np.tile(vector, (args.batch, 1))  # (B, G): the same tags per clip

    seconds = args.seconds if args.seconds is not None else DEFAULT_SECONDS
    if is_random(args.melody):  # --seconds sets its length: check it fits before composing that much music
        check_clip_fits(args.batch, seconds * rate, f"--seconds {seconds:g}", rate)
    frames, n_local = local_conditioning(args, ckpt.config, names, seconds)  # (F, C) and their samples, or None
    if n_local is not None and args.seconds is not None and not is_random(args.melody):
        raise UsageError(f"--seconds: the length follows the conditioning ({n_local / rate:.2f} s); drop --seconds")
    n = n_local if n_local is not None else seconds * rate  # checked as a float first: 1e300 must not reach int()
    check_clip_fits(args.batch, n, f"--seconds {seconds:g}" if n_local is None else f"{n / rate:.2f} s", rate)
    n = max(int(round(n)), 1)

    try:
        folder.mkdir(parents=True, exist_ok=True)  # before generating: a folder we cannot make fails now
    except OSError as exc:
        raise UsageError(f"--out: cannot create the folder {folder} ({exc.strerror or exc})") from None
    clean_stale_temporaries(folder, lambda message: warn(PROG, message))

    print(
        f"{PROG}: {args.batch} × {n / rate:.2f} s at {rate} Hz from {ckpt.path} (step {ckpt.step})"
        + (f", tags {','.join(names)}" if names else ""),
        file=sys.stderr,
    )
    codes = generate(
        ckpt.generation_model(),
        n,
        batch=args.batch,
        tags=tags,
        temperature=args.temperature,
        seed=args.seed,
        method=args.method,
        progress=True,
        cond=frames,
    )  # (B, n)
    fmt, subtype = FORMATS[out.suffix.lower()]
    for row, path in zip(np.asarray(codes), output_paths(out, args.batch)):
        audio = mulaw_decode(row.astype(np.int64), ckpt.config.quantization_channels).astype(np.float32)  # (n,)
        atomic_write_audio(path, audio, rate, fmt, subtype)
        print(path)
        # how tonal it is (quality.py): a steady note scores 0.9-1, noise 0.1-0.2
        print(f"{PROG}: {path.name}: {quality(audio, rate)}", file=sys.stderr)
    return 0


def check_clip_fits(batch: int, n: float, what: str, rate: int) -> None:
    """One line and exit 1 (memory.check_fits) when `batch` clips of n samples would not fit in memory."""
    check_fits(
        generation_bytes(batch, n),
        f"{what} × --batch {batch} at {rate} Hz",
        "generate fewer --seconds or a smaller --batch",
    )


def is_random(melody: str | None) -> bool:
    """--melody random: the built-in composer's melodies instead of given notes."""
    return melody is not None and melody.strip().lower() == "random"


def random_melody_notes(names: list[str] | None, seconds: float, seed: int) -> list[conditioning.Note]:
    """--melody random -> synth.compose's score for the (one) tag's instrument, as notes."""
    if not names or len(names) != 1 or names[0] not in synth.INSTRUMENTS:
        raise UsageError(
            f"--melody random: the composer writes for one built-in instrument ({', '.join(synth.INSTRUMENTS)}); "
            f"got --tags {','.join(names or []) or '(none)'}. Give --melody NOTES or --notes FILE instead"
        )
    return synth.compose(names[0], seconds, seed)


def local_conditioning(
    args, config, names: list[str] | None = None, seconds: float = DEFAULT_SECONDS
) -> tuple[np.ndarray | None, int | None]:
    """--notes / --melody / --vocode -> (frames (F, C), the samples they cover), or (None, None).

    Checks that the option fits the model: notes for a notes model, a recording for a mel model, and one
    of them for any model trained with local conditioning. `names` and `seconds`: the tags and the
    length, for --melody random.
    """
    given = next((o for o in ("notes", "melody", "vocode") if getattr(args, o) is not None), None)
    option = f"--{given}"
    wanted = {"notes": "--notes FILE or --melody", "mel": "--vocode IN.wav"}
    if not config.condition:
        if given:
            raise UsageError(f"{option}: this checkpoint has no local conditioning (train with --condition)")
        return None, None
    if given is None or (config.condition == "notes") != (given in ("notes", "melody")):
        raise UsageError(f"this checkpoint is conditioned on {config.condition}: pass {wanted[config.condition]}")
    rate, hop = config.sample_rate, config.cond_hop
    try:
        if given == "vocode":
            audio = load_audio(args.vocode, rate)  # (T,) at the model's rate
            if len(audio) == 0:
                raise UsageError(f"--vocode: {args.vocode} holds no audio")
            return conditioning.mel_features(audio, rate, hop, config.cond_channels), len(audio)
        if given == "melody" and is_random(args.melody):
            notes = random_melody_notes(names, seconds, args.seed)
            n = int(round(seconds * rate))  # exactly --seconds: the composer's last note is cut there
            return conditioning.note_features(notes, n, hop, rate), n
        if given == "melody":
            notes = conditioning.parse_melody(args.melody)
        else:
            notes = conditioning.read_notes(args.notes)
    except (conditioning.ConditioningError, DataError) as exc:
        message = str(exc)
        raise UsageError(message if message.startswith(option) else f"{option}: {message}") from None
    n = conditioning.notes_samples(notes, rate)
    try:
        return conditioning.note_features(notes, n, hop, rate), n
    except conditioning.ConditioningError as exc:
        raise UsageError(f"{option}: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    """`python -m minwave.generate [options]`; returns the exit status (0 on success)."""
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    exit_program(main())
