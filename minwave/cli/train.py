"""`python -m minwave.train [options]`: the command line of training (the loop itself is train.py).

    python -m minwave.train                               # tiny preset, built-in music, CPU, a few minutes
    python -m minwave.train --data my_audio/ --preset small --steps 5000 --gpu
    python -m minwave.train --resume --out runs/tiny-20260101-120000 --steps 800
    mpiexec -n 2 python -m minwave.train --batch-size 8   # 2 processes, one model (docs/distributed.md)

Parse the options, resolve the settings (settings.py: preset < config file < command line, or the
checkpoint's with --resume), check what can be checked before any data is loaded (the run folder, the
memory of one step), then call train.train(). Every error the user can fix ends as one line (errors.py).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from .. import checkpoint, distributed
from ..backend import BackendError, get_backend, keep_freed_host_memory
from ..checkpoint import CHECKPOINT_NAME, CheckpointError
from ..conditioning import CONDITION_TYPES
from ..files import clean_stale_temporaries, temporary_path
from ..presets import DEFAULT_PRESET, MODEL_KEYS, PRESETS, TRAIN_KEYS, get_preset
from ..settings import RULES, check_stored_settings, option_name, resolve_settings, resume_settings
from ..train import PROG, SAMPLES_DIR, check_step_memory, train
from .errors import ArgumentParser, UsageError, exit_program, os_error_message, run_cli, warn


def build_parser() -> ArgumentParser:
    tiny = get_preset(DEFAULT_PRESET)
    presets = "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())

    def preset_default(key: str) -> str:
        return f"(default: the preset's; {tiny.name}: {getattr(tiny, key):g})"

    parser = ArgumentParser(
        prog="python -m minwave.train",
        description="Train a WaveNet on a folder of audio (or the built-in music) and write checkpoints, "
        "a metrics log, a loss plot and generated audio to a run folder.",
        epilog="Settings come from the preset, then the --config file, then the command line, each "
        "overriding the one before. With --resume, the run's own data, model, batch, segment, seed and split are "
        "used, and only --steps, --lr, --clip-norm, the reporting intervals and --gpu may change. "
        "Started as `mpiexec -n N python -m minwave.train ...`, N processes train one model, each on B/N rows "
        "of every batch, and rank 0 writes the run folder (docs/distributed.md).",
    )
    add = parser.add_argument

    def setting(key: str, metavar: str, text: str) -> None:
        """--key, parsed by the setting's rule (settings.RULES): the same rule checks config files and checkpoints."""
        add(option_name(key), type=RULES[key], metavar=metavar, help=text)

    add(
        "--data",
        metavar="DIR",
        help="folder of audio (any format libsndfile decodes: WAV, FLAC, MP3, Ogg Vorbis/Opus, AIFF …; "
        "searched recursively, symlinked folders followed; tags from tags.csv "
        "or the first sub-folder). Default: the built-in tagged music, synthesised on first use",
    )
    add(
        "--preset",
        choices=list(PRESETS),
        help=f"model size and training defaults (default {DEFAULT_PRESET}). {presets}",
    )
    add(
        "--config",
        metavar="CFG.JSON",
        help=f"JSON object overriding the preset: model fields "
        f"({', '.join(MODEL_KEYS)}) and training settings ({', '.join(TRAIN_KEYS)})",
    )
    setting("steps", "N", f"total training steps of the run {preset_default('steps')}")
    setting(
        "batch_size",
        "B",
        "segments per step, all ranks together: with mpiexec -n N each rank computes B/N of them "
        f"(docs/distributed.md) {preset_default('batch_size')}",
    )
    setting(
        "segment",
        "T",
        "samples predicted per segment; each segment also "
        f"carries one receptive field of context {preset_default('segment')}",
    )
    setting("lr", "LR", f"Adam learning rate {preset_default('lr')}; lower it if the loss becomes NaN")
    setting("clip_norm", "X", f"clip the global gradient norm to X; 0 turns clipping off {preset_default('clip_norm')}")
    add(
        "--gpu",
        action="store_true",
        help='train on the GPU with CuPy (pip install "minwave[gpu]"); stops with '
        "an error if CuPy or a CUDA device is missing, never falls back to the CPU",
    )
    add("--out", metavar="RUN_DIR", help="the run folder (default: runs/<preset>-<date>-<time>)")
    add(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint, exactly as if it had "
        "not stopped; --steps is the new total",
    )
    setting("seed", "SEED", "seed of the initial weights, the validation split and the batches (default 0)")
    setting("sample_rate", "HZ", "audio is resampled to this rate and the model generates at it (default 16000)")
    setting("valid_fraction", "FRACTION", "fraction of the files held out for validation (default 0.1)")
    setting(
        "checkpoint_every",
        "N",
        "save a checkpoint, generated audio and the "
        f"loss plot every N steps and at the end {preset_default('checkpoint_every')}",
    )
    setting("eval_every", "N", f"validation loss every N steps and at each checkpoint {preset_default('eval_every')}")
    setting("log_every", "N", f"a metrics log line every N steps {preset_default('log_every')}")
    add(
        "--condition",
        choices=list(CONDITION_TYPES),
        help="local conditioning (docs/conditioning.md): 'notes' on each file's score (song.notes.csv or "
        "song.mid beside song.wav; the built-in music has them), 'mel' on each file's log-mel spectrogram "
        "(a vocoder). Audio is then not trimmed, so the frames stay aligned. Default: none",
    )
    setting("warmup", "N", f"steps of linear learning-rate warm-up; 0: none {preset_default('warmup')}")
    setting(
        "lr_half_life",
        "N",
        "after the warm-up the learning rate halves every N steps; 0 keeps it constant "
        f"{preset_default('lr_half_life')}",
    )
    setting(
        "ema",
        "DECAY",
        "decay of the moving average of the weights that validation, the samples and generation use "
        f"(0.999 averages the last ~1000 steps); 0 turns it off {preset_default('ema')}",
    )
    setting(
        "input_noise",
        "N",
        "during training the network reads each past code moved by a random integer in [-N, N] "
        "(the targets stay true), so that it learns to recover from its own sampling errors (FFTNet); "
        f"0: off {preset_default('input_noise')}",
    )
    setting(
        "input_noise_mix",
        "SHARE",
        "how far below N each row's noise may be: every row of a batch draws its own level m from "
        "N - round(SHARE·N) … N and reads its codes moved by up to ±m, so with 1 the rows range from clean "
        f"to ±N and the network learns both; 0: every row ±N {preset_default('input_noise_mix')}",
    )
    setting(
        "onset_rows",
        "SHARE",
        "with --condition notes: that share of every batch's rows is drawn around a note's onset (the "
        "whole onset frame in the predicted samples) instead of uniformly, so the network sees more "
        f"attacks; 0: uniform rows {preset_default('onset_rows')}",
    )
    setting(
        "sample_seconds",
        "SECONDS",
        f"seconds of audio generated per tag at each checkpoint; 0 turns it off {preset_default('sample_seconds')}",
    )
    return parser


def default_run_dir(preset: str) -> Path:
    """runs/<preset>-<YYYYmmdd-HHMMSS>, with a suffix if that exists already."""
    base = Path("runs") / f"{preset}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir, n = base, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    return run_dir


def _prepare_run_dir(run_dir: Path, data: str | None) -> None:
    """Refuse an --out inside --data, make the folder, prove it is writable, remove what killed runs
    left. Done before the data is loaded, so a bad --out costs no time."""
    if data is not None:
        run_real, data_real = run_dir.resolve(), Path(data).resolve()
        if run_real == data_real or data_real in run_real.parents:
            raise UsageError(
                f"--out {run_dir} is inside --data {data}: the run's own samples would become training "
                "data; choose an --out outside it"
            )
    probe = temporary_path(run_dir / ".minwave-write-test")  # a kill leaves it to the stale-file cleanup
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"minwave checks that it can write here\n")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--out: cannot write in {run_dir}: {os_error_message(exc)}") from None
    for folder in (run_dir, run_dir / SAMPLES_DIR):
        clean_stale_temporaries(folder, lambda m: warn(PROG, m))


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.resume and args.out is None:
        raise UsageError("--resume needs --out RUN_DIR: the run folder to continue")
    settings, given = resolve_settings(args)
    run_dir = Path(args.out) if args.out is not None else default_run_dir(settings["preset"])
    ckpt_path = run_dir / CHECKPOINT_NAME
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--out: {run_dir} is a file, not a folder")
    if not args.resume and ckpt_path.exists():
        raise UsageError(
            f"--out: {run_dir} already holds a checkpoint; pass --resume to continue that run, or choose another --out"
        )
    if args.resume and not ckpt_path.exists():
        raise CheckpointError(
            f"--resume: no checkpoint in {run_dir} ({ckpt_path} does not exist); start without --resume"
        )

    comm = distributed.connect(gpu=args.gpu)  # MPI when started by mpiexec (one device per rank), else one process
    if comm.rank != 0:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # rank 0 reports; the others print only errors
    try:
        backend = get_backend("cupy" if args.gpu else "numpy")
        keep_freed_host_memory()  # reuse the step's activation memory instead of faulting in fresh pages
    except BackendError as exc:
        raise BackendError(f"--gpu: {exc}") from None

    ckpt = None
    if args.resume:
        ckpt = checkpoint.load(ckpt_path, backend=backend)
        check_stored_settings(ckpt)
        settings = resume_settings(ckpt.train_args, given, run_dir, ckpt.step)
    settings["gpu"] = bool(args.gpu)
    check_step_memory(settings, backend)  # before any data is loaded or memory spent
    if comm.rank == 0:  # rank 0 alone writes the run folder
        _prepare_run_dir(run_dir, settings["data"])
    status = train(settings, run_dir, backend, ckpt, comm)
    comm.close()  # every rank got here: end MPI normally
    return status


def main(argv: list[str] | None = None) -> int:
    """`python -m minwave.train [options]`; returns the exit status (0 on success)."""
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    exit_program(main())
