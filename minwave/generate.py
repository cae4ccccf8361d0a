"""Generate audio from a checkpoint: `python -m minwave.generate --checkpoint RUN_DIR/checkpoint.npz --out out.wav`.

    python -m minwave.generate --checkpoint runs/tiny-20260101-120000 --tags pluck --seconds 4 --out pluck.wav
    python -m minwave.generate --checkpoint runs/x/checkpoint.npz --batch 3 --temperature 0.9 --out take.wav
        # writes take_1.wav, take_2.wav, take_3.wav

This file is only the command line; the sampler itself is `minwave.generate(model, n_samples, ...)`
in sampling.py (the Numba fast sampler by default). The audio is written at the model's sample rate
as 16-bit PCM (.wav, .flac or .ogg, chosen by the extension of --out).

Nothing is lost: each file is written atomically (files.py: a temporary file, fsync, rename), so a full
disk, Ctrl-C or SIGTERM leaves an existing OUT.wav as it was; temporary files of killed earlier runs in
the output folder are removed at start. The memory the clips need is checked before generating.
"""

from __future__ import annotations

import io
import shlex
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from . import checkpoint
from .cli_errors import (
    ArgumentParser,
    UsageError,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    run_cli,
    warn,
)
from .files import atomic_write, clean_stale_temporaries
from .memory import check_fits, generation_bytes
from .mulaw import mulaw_decode

PROG = "minwave.generate"
FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m minwave.generate",
        description="Generate audio with a trained WaveNet checkpoint and write it at the model's sample rate.",
    )
    add = parser.add_argument
    add(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="a checkpoint.npz written by minwave.train, or the run folder holding it",
    )
    add(
        "--out",
        required=True,
        metavar="OUT.wav",
        help="output file (.wav, .flac or .ogg); with --batch K > 1, K files OUT_1.wav … OUT_K.wav",
    )
    add("--seconds", type=positive_float, default=2.0, metavar="S", help="length of each clip in seconds (default 2)")
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
        metavar="T",
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
    add("--batch", type=positive_int, default=1, metavar="K", help="independent clips generated together (default 1)")
    add(
        "--method",
        choices=["fast", "naive"],
        default="fast",
        help="fast: the Numba queue sampler (default); "
        "naive: recompute the whole receptive field for every sample (slow, the reference)",
    )
    return parser


def output_paths(out: Path, batch: int) -> list[Path]:
    """OUT itself for one clip; OUT_1 … OUT_K (same extension) for K clips."""
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

    ckpt = checkpoint.load(args.checkpoint)
    rate = ckpt.sample_rate
    n = args.seconds * rate  # checked as a float first: --seconds 1e300 must not reach int()
    check_fits(
        generation_bytes(args.batch, n),
        f"--seconds {args.seconds:g} × --batch {args.batch} at {rate} Hz",
        "generate fewer --seconds or a smaller --batch",
    )
    n = max(int(round(n)), 1)
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
    tags = None if vector is None else np.tile(vector, (args.batch, 1))  # (K, G): the same tags per clip

    try:
        folder.mkdir(parents=True, exist_ok=True)  # before generating: a folder we cannot make fails now
    except OSError as exc:
        raise UsageError(f"--out: cannot create the folder {folder} ({exc.strerror or exc})") from None
    clean_stale_temporaries(folder, lambda message: warn(PROG, message))

    from .sampling import generate  # Numba compiles on first use: after the cheap checks above

    print(
        f"{PROG}: {args.batch} × {n / rate:.2f} s at {rate} Hz from {ckpt.path} (step {ckpt.step})"
        + (f", tags {','.join(names)}" if names else ""),
        file=sys.stderr,
    )
    codes = generate(
        ckpt.model,
        n,
        batch=args.batch,
        tags=tags,
        temperature=args.temperature,
        seed=args.seed,
        method=args.method,
        progress=True,
    )  # (K, n)
    fmt, subtype = FORMATS[out.suffix.lower()]
    for row, path in zip(np.asarray(codes), output_paths(out, args.batch)):
        audio = mulaw_decode(row.astype(np.int64), ckpt.config.quantization_channels).astype(np.float32)  # (n,)
        encoded = io.BytesIO()  # encoded in memory: soundfile would swallow the OSError of a failing write
        sf.write(encoded, audio, rate, format=fmt, subtype=subtype)
        data = encoded.getvalue()
        atomic_write(path, lambda f, data=data: f.write(data))
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m minwave.generate [options]`; returns the exit status (0 on success)."""
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
