"""Train a WaveNet on a folder of audio, or on the built-in music: `python -m minwave.train [options]`.

    python -m minwave.train                               # tiny preset, built-in music, CPU, a few minutes
    python -m minwave.train --data my_audio/ --preset small --steps 5000 --gpu
    python -m minwave.train --resume --out runs/tiny-20260101-120000 --steps 800

One step: draw a batch of random segments (data.BatchSampler), compute the loss and every gradient by
hand (WaveNet.loss_and_grads), clip the global gradient norm and update with Adam. Around that loop:

    RUN_DIR/checkpoint.npz        parameters, Adam state, step, sampler RNG state, settings (checkpoint.py)
    RUN_DIR/metrics.jsonl         one JSON object per logged step: train and validation bits per sample,
                                  the unigram baseline, gradient norm, samples/s, wall time
    RUN_DIR/loss.png              the loss curves against the unigram baseline (plotting.py)
    RUN_DIR/samples/step_XXXXXX_<tag>.wav   audio generated at each checkpoint, one file per tag

Losses are reported in bits per sample (nats / ln 2) next to the μ-law unigram baseline: the entropy of
the validation audio's code histogram, which is what a model scores that predicts how often each level
occurs and nothing about the past. Clearly below it means the model has learned something audible.

Resuming is exact: the checkpoint holds everything the next step depends on (parameters, Adam's m, v
and t, the batch sampler's RNG state), and nothing else draws from that RNG (validation batches are
fixed, generation has its own seed), so N steps + N resumed steps give the same parameters, bit for
bit, as 2N steps in one go.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
from tqdm import tqdm

from . import checkpoint, distributed
from .backend import BackendError, get_backend, keep_freed_host_memory, out_of_memory_errors
from .checkpoint import CHECKPOINT_NAME, CheckpointError
from .cli_errors import (
    ArgumentParser,
    Interrupted,
    TrainingError,
    UsageError,
    decay,
    fraction,
    interrupt_exit_code,
    interrupt_name,
    non_negative_float,
    non_negative_int,
    os_error_message,
    positive_float,
    positive_int,
    run_cli,
    warn,
)
from .conditioning import CONDITION_TYPES, ConditioningError, channels, clip_features
from .data import (
    BatchSampler,
    DataError,
    LocalBatchSampler,
    fingerprint_changes,
    load_audio,
    load_dataset,
    local_validation_batches,
    split_by_file,
    unigram_bits,
    validation_batches,
)
from .files import atomic_write_audio, atomic_write_text, clean_stale_temporaries, temporary_path
from .memory import check_fits, generation_bytes
from .model import WaveNet, WaveNetConfig
from .mulaw import mulaw_decode
from .optim import Adam, scheduled_lr
from .presets import DEFAULT_PRESET, MODEL_KEYS, PRESETS, RECIPE_BEFORE, TRAIN_KEYS, get_preset
from .quality import Quality, quality
from .synth import ensure_builtin_dataset
from .threads import available_cores, blas_threads_for, largest_product_macs, set_blas_threads

PROG = "minwave.train"
LN2 = math.log(2.0)
VALID_ROWS = 32  # rows of validation audio scored at each evaluation (fixed, so losses are comparable)
METRICS_NAME = "metrics.jsonl"
PLOT_NAME = "loss.png"
SAMPLES_DIR = "samples"

# Settings that define the run: --resume takes them from the checkpoint and refuses different values.
LOCKED = ("data", "preset", "model", "sample_rate", "batch_size", "segment", "seed", "valid_fraction")
# Settings that --resume may change: how long, how fast, how often to report.
CHANGEABLE = ("steps", "lr", "clip_norm", "checkpoint_every", "eval_every", "log_every", "sample_seconds")
# The rest of the recipe (presets.py): how the learning rate moves and the weights are averaged.
LOCKED += ("warmup", "lr_half_life", "ema", "input_noise")


# ----------------------------------------------------------------------------------------- options
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
    add("--steps", type=positive_int, metavar="N", help=f"total training steps of the run {preset_default('steps')}")
    add(
        "--batch-size",
        type=positive_int,
        metavar="B",
        help="segments per step, all ranks together: with mpiexec -n N each rank computes B/N of them "
        f"(docs/distributed.md) {preset_default('batch_size')}",
    )
    add(
        "--segment",
        type=positive_int,
        metavar="T",
        help="samples predicted per segment; each segment also "
        f"carries one receptive field of context {preset_default('segment')}",
    )
    add(
        "--lr",
        type=positive_float,
        metavar="LR",
        help=f"Adam learning rate {preset_default('lr')}; lower it if the loss becomes NaN",
    )
    add(
        "--clip-norm",
        type=non_negative_float,
        metavar="X",
        help=f"clip the global gradient norm to X; 0 turns clipping off {preset_default('clip_norm')}",
    )
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
    add(
        "--seed",
        type=non_negative_int,
        metavar="S",
        help="seed of the initial weights, the validation split and the batches (default 0)",
    )
    add(
        "--sample-rate",
        type=positive_int,
        metavar="HZ",
        help="audio is resampled to this rate and the model generates at it (default 16000)",
    )
    add(
        "--valid-fraction",
        type=fraction,
        metavar="F",
        help="fraction of the files held out for validation (default 0.1)",
    )
    add(
        "--checkpoint-every",
        type=positive_int,
        metavar="N",
        help="save a checkpoint, generated audio and the "
        f"loss plot every N steps and at the end {preset_default('checkpoint_every')}",
    )
    add(
        "--eval-every",
        type=positive_int,
        metavar="N",
        help=f"validation loss every N steps and at each checkpoint {preset_default('eval_every')}",
    )
    add(
        "--log-every",
        type=positive_int,
        metavar="N",
        help=f"a metrics log line every N steps {preset_default('log_every')}",
    )
    add(
        "--condition",
        choices=list(CONDITION_TYPES),
        help="local conditioning (docs/conditioning.md): 'notes' on each file's score (song.notes.csv or "
        "song.mid beside song.wav; the built-in music has them), 'mel' on each file's log-mel spectrogram "
        "(a vocoder). Audio is then not trimmed, so the frames stay aligned. Default: none",
    )
    add(
        "--warmup",
        type=non_negative_int,
        metavar="N",
        help=f"steps of linear learning-rate warm-up; 0: none {preset_default('warmup')}",
    )
    add(
        "--lr-half-life",
        type=non_negative_int,
        metavar="N",
        help="after the warm-up the learning rate halves every N steps; 0 keeps it constant "
        f"{preset_default('lr_half_life')}",
    )
    add(
        "--ema",
        type=decay,
        metavar="D",
        help="decay of the moving average of the weights that validation, the samples and generation use "
        f"(0.999 averages the last ~1000 steps); 0 turns it off {preset_default('ema')}",
    )
    add(
        "--input-noise",
        type=non_negative_int,
        metavar="N",
        help="during training the network reads each past code moved by a random integer in [-N, N] "
        "(the targets stay true), so that it learns to recover from its own sampling errors (FFTNet); "
        f"0: off {preset_default('input_noise')}",
    )
    add(
        "--sample-seconds",
        type=non_negative_float,
        metavar="S",
        help="seconds of audio generated per tag at "
        f"each checkpoint; 0 turns it off {preset_default('sample_seconds')}",
    )
    return parser


_CHECKS = {  # key -> (test, what it must be): the same rules for config files as for the command line
    "steps": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "segment": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "lr": (lambda v: isinstance(v, (int, float)) and 0 < v < math.inf, "a number > 0"),
    "clip_norm": (lambda v: isinstance(v, (int, float)) and 0 <= v < math.inf, "a number >= 0"),
    "checkpoint_every": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "eval_every": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "log_every": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "sample_seconds": (lambda v: isinstance(v, (int, float)) and 0 <= v < math.inf, "a number >= 0"),
    "warmup": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    "lr_half_life": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    "ema": (lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "a number in [0, 1)"),
    "input_noise": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
}


def _option(key: str) -> str:
    return "--" + key.replace("_", "-")


def read_config_file(path: str) -> tuple[dict, dict]:
    """cfg.json -> (model fields, training settings). UsageError for anything it cannot use."""
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--config: cannot read {path} ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UsageError(f"--config: {path} is not valid JSON ({exc})") from None
    if not isinstance(values, dict):
        raise UsageError(f"--config: {path} must hold a JSON object of settings")
    if "n_tags" in values:
        raise UsageError(f"--config: {path} sets n_tags, which the data decides (its tag vocabulary); remove it")
    unknown = sorted(set(values) - set(MODEL_KEYS) - set(TRAIN_KEYS))
    if unknown:
        raise UsageError(
            f"--config: unknown setting {unknown[0]!r} in {path}; known: {', '.join(MODEL_KEYS + TRAIN_KEYS)}"
        )
    model = {k: v for k, v in values.items() if k in MODEL_KEYS}
    train = {k: v for k, v in values.items() if k in TRAIN_KEYS}
    for key, value in train.items():
        test, must = _CHECKS[key]
        if isinstance(value, bool) or not test(value):
            raise UsageError(f"--config: {key} must be {must}, got {value!r}")
    return model, train


def resolve_settings(args) -> tuple[dict, dict]:
    """The run's settings from preset < config file < command line, and the values given explicitly
    (config file + command line), which --resume compares with the checkpoint's."""
    model_given, train_given = read_config_file(args.config) if args.config else ({}, {})
    for key in TRAIN_KEYS:
        if getattr(args, key) is not None:
            train_given[key] = getattr(args, key)
    given: dict = dict(train_given)
    if model_given:
        given["model"] = model_given
    if args.data is not None:
        given["data"] = str(Path(args.data).expanduser().resolve())
    if args.preset is not None:
        given["preset"] = args.preset
    for key in ("seed", "valid_fraction"):
        if getattr(args, key) is not None:
            given[key] = getattr(args, key)
    if args.sample_rate is not None and "sample_rate" in model_given and args.sample_rate != model_given["sample_rate"]:
        raise UsageError(
            f"conflicting sample rates: --sample-rate {args.sample_rate} but --config sets "
            f"sample_rate {model_given['sample_rate']}; give one"
        )
    sample_rate = args.sample_rate or model_given.get("sample_rate", 16000)
    if args.sample_rate is not None or "sample_rate" in model_given:
        given["sample_rate"] = sample_rate

    preset = get_preset(args.preset or DEFAULT_PRESET)
    if getattr(args, "condition", None) is not None:  # stored in the model's config, so --resume keeps it
        model_given = {**model_given, "condition": args.condition}
        given["model"] = model_given
    model = {**preset.model, **{k: v for k, v in model_given.items() if k != "sample_rate"}}
    if model.get("condition") and "cond_channels" not in model:  # notes: 176; mel: 80 bands
        model["cond_channels"] = channels(model["condition"]) if model["condition"] in CONDITION_TYPES else 0
    settings = {
        "preset": preset.name,
        "data": given.get("data"),  # None: the built-in music
        "model": model,
        "sample_rate": sample_rate,
        **preset.train_defaults(),
        **train_given,
        "seed": args.seed if args.seed is not None else 0,
        "valid_fraction": args.valid_fraction if args.valid_fraction is not None else 0.1,
    }
    try:
        WaveNetConfig(**model, sample_rate=sample_rate)  # every model field is checked here
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--config: {exc}") from None
    return settings, given


def resume_settings(stored: dict, given: dict, run_dir: Path, step: int) -> dict:
    """The checkpoint's settings with the changes --resume allows; UsageError for a conflicting option."""
    stored = {**RECIPE_BEFORE, **stored}  # a run from before the recipe settings trained without them
    missing = [k for k in LOCKED + CHANGEABLE if k not in stored]
    if missing:
        raise CheckpointError(
            f"{run_dir / CHECKPOINT_NAME}: holds no training settings ({missing[0]!r} "
            "missing), so it cannot be resumed; it can still be used for generation"
        )
    for key in LOCKED:
        if key not in given:
            continue
        if key == "model":
            for field, value in given["model"].items():
                if field != "sample_rate" and stored["model"].get(field) != value:
                    said = f"--condition {value}" if field == "condition" else f"--config sets {field}={value!r}"
                    raise UsageError(
                        f"--resume: {said} but the run in {run_dir} "
                        f"has {field}={stored['model'].get(field)!r}; drop it, or start a new run "
                        "with another --out"
                    )
        elif given[key] != stored[key]:
            shown = stored[key] if stored[key] is not None else "the built-in music"
            raise UsageError(
                f"--resume: {_option(key)} {given[key]} conflicts with the run in {run_dir}, "
                f"which has {_option(key)} {shown}; drop it, or start a new run with another --out"
            )
    settings = dict(stored)
    settings.update({k: given[k] for k in CHANGEABLE if k in given})
    if settings["steps"] <= step:
        raise UsageError(
            f"--resume: the run in {run_dir} is already at step {step}; pass --steps larger "
            f"than {step} to train further"
        )
    return settings


def default_run_dir(preset: str) -> Path:
    """runs/<preset>-<YYYYmmdd-HHMMSS>, with a suffix if that exists already."""
    base = Path("runs") / f"{preset}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir, n = base, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    return run_dir


# ----------------------------------------------------------------------------------------- helpers
def activation_bytes(config: WaveNetConfig, batch_size: int, segment: int, itemsize: int = 4) -> int:
    """Rough size of what one training step keeps for its backward pass (the caches), in bytes.

    Per input position (segment + RF) and layer: the layer input (R), tanh and σ outputs (2D) and the
    gate output z (D). Per predicted position: the L gate outputs side by side for the skip sum (L·D),
    the head's activations (~3S) and the softmax probabilities and logits (2Q). The backward pass adds
    a few temporaries of the same sizes, so the peak is somewhat higher.
    """
    c = config
    t_in, t_out = segment + c.receptive_field, segment
    per_row = t_in * c.n_layers * (c.residual_channels + 3 * c.dilation_channels) + t_out * (
        c.n_layers * c.dilation_channels + 3 * c.skip_channels + 2 * c.quantization_channels
    )
    return batch_size * per_row * itemsize


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def format_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s // 60 % 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def device_batch(batch, backend, cond_offset: int = 0) -> tuple:
    """A batch (x, tags) or (x, tags, cond) from the samplers -> the arguments of model.loss and
    loss_and_grads on `backend`: (x, tags), or (x, tags, cond, cond_offset) with local conditioning."""
    x, tags, *cond = batch
    args = (backend.asarray(x), None if tags is None else backend.asarray(tags))
    return args + ((backend.asarray(cond[0]), cond_offset) if cond else ())


def train_step(model: WaveNet, optimizer: Adam, batch: tuple, comm=None, inputs=None) -> tuple[float, float]:
    """One training step: the loss and every gradient by hand, averaged over the ranks, then Adam.

    batch: the arguments of model.loss_and_grads (x, tags[, cond, cond_offset]); inputs: noisy codes the
    network reads instead of x (--input-noise). Returns (loss in nats, the gradient norm before clipping).
    A loss that is not finite makes no update (returned with a NaN norm): the parameters stay good.
    """
    loss, grads = model.loss_and_grads(*batch, inputs=inputs)
    if comm is not None:
        loss, grads = comm.allreduce_mean(loss, grads)  # over all ranks' rows (distributed.py)
    if not math.isfinite(loss):
        return loss, math.nan
    return loss, optimizer.step(model.params, grads)


def noisy_codes(x: np.ndarray, n: int, quantization_channels: int, rng: np.random.Generator) -> np.ndarray:
    """x (B, T) codes, each moved by a uniform random integer in [-n, n], kept within 0 … Q-1."""
    return np.clip(x + rng.integers(-n, n + 1, x.shape), 0, quantization_channels - 1)


@contextlib.contextmanager
def averaged_weights(model: WaveNet, optimizer: Adam):
    """Inside: the model holds the optimizer's moving average of its weights (if it keeps one)."""
    if optimizer.ema is None:
        yield model
        return
    live, model.params = model.params, optimizer.ema
    try:
        yield model
    finally:
        model.params = live


def validation_bits(model: WaveNet, batches, backend, cond_offset: int = 0) -> float:
    """Mean cross-entropy over the fixed validation batches, in bits per sample.

    Every row predicts the same number of samples, so batches are weighted by their rows.
    """
    total, rows = 0.0, 0
    for batch in batches:
        args = device_batch(batch, backend, cond_offset)  # x, tags[, cond, cond_offset]
        loss = model.loss(*args)
        total += loss * len(args[0])
        rows += len(args[0])
    return total / rows / LN2


def safe_name(tag: str) -> str:
    """A tag as a piece of a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", tag).strip("-.") or "tag"


def sample_names(tag_vocab: list[str], step: int) -> list[str]:
    """One file name per tag (or one for an untagged model), distinct even when two tags differ only in
    characters a file name drops ('a b' and 'a/b'): later ones get their index appended."""
    names, seen = [], set()
    for i, tag in enumerate(tag_vocab or [""]):
        stem = f"step_{step:06d}" + (f"_{safe_name(tag)}" if tag_vocab else "")
        if stem.lower() in seen:
            stem = f"{stem}-{i}"
        seen.add(stem.lower())
        names.append(stem + ".wav")
    return names


def clip_periodicity(clips, quantization_channels: int, sample_rate: int) -> float:
    """Median periodicity of real clips (quality.py): the level a model's samples are compared with."""
    return float(
        np.median([quality(mulaw_decode(c.codes, quantization_channels), sample_rate).periodicity for c in clips])
    )


class Sample(NamedTuple):
    """One generated clip of a checkpoint: where it goes, the audio, and how tonal it is."""

    path: Path
    audio: np.ndarray  # (n,) float32 in [-1, 1]
    quality: Quality


def make_samples(
    model: WaveNet, tag_vocab: list[str], step: int, seconds: float, seed: int, folder: Path, frames=None
) -> list[Sample]:
    """`seconds` of audio per tag (one untagged clip for an untagged model), measured (quality.py);
    write_samples() writes them.

    frames (F, C): the local conditioning of every clip, for a model that has it; the clips are then at
    most F·hop samples long.

    Uses the fast generator with a fixed seed, so clips from successive checkpoints differ only because
    the model changed.
    """
    from .sampling import generate  # imported here: Numba compiles on first use, not at import

    n = max(int(round(seconds * model.config.sample_rate)), 1)
    if frames is not None:
        n = min(n, len(frames) * model.config.cond_hop)
    tags = np.eye(len(tag_vocab), dtype=np.float32) if tag_vocab else None  # (G, G): one stream per tag
    codes = generate(model, n, batch=max(len(tag_vocab), 1), tags=tags, seed=seed, method="fast", cond=frames)
    samples = []
    for row, name in zip(np.asarray(codes), sample_names(tag_vocab, step)):
        audio = mulaw_decode(row.astype(np.int64), model.config.quantization_channels).astype(np.float32)  # (n,)
        samples.append(Sample(folder / name, audio, quality(audio, model.config.sample_rate)))
    return samples


def write_samples(samples: list[Sample], sample_rate: int) -> None:
    """Each clip as a 16-bit WAV, written atomically."""
    for sample in samples:
        sample.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_audio(sample.path, sample.audio, sample_rate)


def read_metrics(path: Path, up_to_step: int) -> list[dict]:
    """The rows of an existing metrics log up to a step (later rows belong to steps a resume redoes)."""
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= up_to_step:
                rows.append(row)
    return rows


def _json_float(x: float | None, digits: int = 5) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


# ----------------------------------------------------------------------------------------- training
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
        _check_stored_settings(ckpt)
        settings = resume_settings(ckpt.train_args, given, run_dir, ckpt.step)
    settings["gpu"] = bool(args.gpu)
    _check_step_memory(settings, backend)  # before any data is loaded or memory spent
    if comm.rank == 0:  # rank 0 alone writes the run folder
        _prepare_run_dir(run_dir, settings["data"])
    status = train(settings, run_dir, backend, ckpt, comm)
    comm.close()  # every rank got here: end MPI normally
    return status


_STORED_CHECKS = {  # what a checkpoint's training settings must look like, beyond _CHECKS
    "data": (lambda v: v is None or isinstance(v, str), "a folder name or null"),
    "preset": (lambda v: v in PRESETS, f"one of {', '.join(PRESETS)}"),
    "model": (lambda v: isinstance(v, dict), "a JSON object of model fields"),
    "sample_rate": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "seed": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    "valid_fraction": (lambda v: isinstance(v, (int, float)) and 0 < v < 1, "a number between 0 and 1"),
    "data_fingerprint": (lambda v: isinstance(v, list) and all(isinstance(r, list) and r for r in v), "a list"),
}


def _check_stored_settings(ckpt: checkpoint.Checkpoint) -> None:
    """A hand-edited checkpoint gets one line naming the setting, never a traceback later."""
    for key, value in ckpt.train_args.items():
        if key not in _CHECKS and key not in _STORED_CHECKS:
            continue  # "gpu", and settings a later minwave may add
        test, must = _CHECKS.get(key) or _STORED_CHECKS[key]
        if isinstance(value, bool) or not test(value):
            raise CheckpointError(
                f"{ckpt.path}: its training setting {key} is {value!r}, not {must}, so the run cannot be "
                "resumed (was the file edited?); it can still be used for generation"
            )
    wall = ckpt.metrics.get("wall_s", 0.0)
    if isinstance(wall, bool) or not isinstance(wall, (int, float)) or not 0 <= wall < math.inf:
        raise CheckpointError(f"{ckpt.path}: its metrics wall_s is {wall!r}, not a number of seconds >= 0")


PEAK_OVER_ACTIVATIONS = 1.5  # a step's measured peak is 1.2-1.5 × activation_bytes (tiny and small presets)


def _check_step_memory(s: dict, backend) -> None:
    """NotEnoughMemory, naming the options, if one training step would not fit (memory.py)."""
    config = WaveNetConfig(**s["model"], sample_rate=s["sample_rate"])
    check_fits(
        PEAK_OVER_ACTIVATIONS * activation_bytes(config, s["batch_size"], s["segment"]),
        f"a training step with --batch-size {s['batch_size']} and --segment {s['segment']}",
        "try a smaller --batch-size or --segment",
        backend,
    )


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


def train(settings: dict, run_dir: Path, backend, ckpt: checkpoint.Checkpoint | None = None, comm=None) -> int:
    """The training run described by `settings` (see resolve_settings), from `ckpt` if resuming.

    comm: the ranks training together (distributed.connect(); None: this process alone). Rank 0 alone
    writes the run folder and prints."""
    s, comm = settings, comm or distributed.SingleProcess()
    if s["batch_size"] % comm.size:
        if comm.rank != 0:  # every rank finds it; rank 0 says it, and its MPI_Abort ends this one
            time.sleep(10)
            raise SystemExit(2)
        raise UsageError(
            f"--batch-size {s['batch_size']} does not divide among {comm.size} ranks; "
            f"use a multiple of {comm.size} (it is the batch of all ranks together)"
        )
    sample_rate, Q = s["sample_rate"], s["model"]["quantization_channels"]
    receptive_field = WaveNetConfig(**s["model"], sample_rate=sample_rate).receptive_field

    # ---- data: the built-in music goes through exactly the same loader as a user's folder
    if s["data"] is None:
        try:
            root = ensure_builtin_dataset(sample_rate=sample_rate)
        except ValueError as exc:
            raise UsageError(
                f"--sample-rate {sample_rate}: the built-in music cannot be made at this rate ({exc})"
            ) from None
        source = f"built-in music ({root})"
    else:
        root = Path(s["data"])
        source = str(root)
    say = (lambda m: warn(PROG, m)) if comm.rank == 0 else (lambda m: None)  # every rank loads; rank 0 warns
    condition = s["model"].get("condition", "")
    trim = {"trim_db": None} if condition else {}  # notes are timed from each file's first sample
    dataset = load_dataset(root, sample_rate, Q, min_samples=receptive_field, warn=say, **trim)
    try:
        train_clips, valid_clips = split_by_file(dataset, s["valid_fraction"], s["seed"])
    except ValueError as exc:
        raise DataError(f"--data: cannot hold out validation audio: {exc}; add more or longer files") from None
    if ckpt is not None and "data_fingerprint" in s:  # older checkpoints have none: nothing to compare
        changes = fingerprint_changes(s["data_fingerprint"], dataset.fingerprint())
        if changes:
            raise DataError(
                f"--resume: the data in {source} changed since this run started ({changes}), so resuming "
                "would not continue the same run; restore the data, or start a new run with another --out"
            )
    s["data_fingerprint"] = dataset.fingerprint()  # saved with the settings in every checkpoint
    check_fits(
        generation_bytes(max(dataset.n_tags, 1), s["sample_seconds"] * sample_rate),
        f"--sample-seconds {s['sample_seconds']:g} for {max(dataset.n_tags, 1)} tag(s) at every checkpoint",
        "lower --sample-seconds (0 turns the samples off)",
    )
    config = WaveNetConfig(**s["model"], n_tags=dataset.n_tags, sample_rate=sample_rate)
    if ckpt is not None and (ckpt.tag_vocab != dataset.tag_vocab or ckpt.config != config):
        raise DataError(
            f"--resume: the data in {source} now has tags {dataset.tag_vocab or 'none'}, but the "
            f"run was trained with {ckpt.tag_vocab or 'none'}; restore the data or start a new run"
        )

    # ---- model, optimizer, batches: fresh, or exactly where the checkpoint left them
    model = ckpt.model if ckpt is not None else WaveNet(config, seed=s["seed"], backend=backend)
    comm.broadcast_params(model.params)  # every rank starts from rank 0's parameters
    optimizer = Adam(model.params, lr=s["lr"], clip_norm=s["clip_norm"] or None, ema_decay=s["ema"] or None)
    sampler_class, clips_args = BatchSampler, (train_clips,)
    if condition:  # local conditioning: every clip's frames, and rows that carry theirs
        try:
            train_frames = clip_features(root, train_clips, config, load_audio)  # [(F_i, C), ...]
            valid_frames = clip_features(root, valid_clips, config, load_audio)
        except ConditioningError as exc:
            raise DataError(str(exc)) from None
        local = (config.cond_hop, config.cond_context)
        sampler_class, clips_args = LocalBatchSampler, (train_clips, train_frames, *local)
    sampler = sampler_class(
        *clips_args,
        dataset.n_tags,
        s["segment"],
        receptive_field,
        s["batch_size"],
        seed=s["seed"],
        quantization_channels=Q,
        shard=(comm.rank, comm.size),  # this rank's B/N rows of the same batch
    )
    step, wall_before, rows = 0, 0.0, []
    metrics_path, ckpt_path = run_dir / METRICS_NAME, run_dir / CHECKPOINT_NAME
    if ckpt is not None:
        try:
            optimizer.load_state_dict(ckpt.optimizer_state)
            sampler.set_state(ckpt.sampler_state)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{ckpt.path}: cannot resume from it ({exc})") from None
        step, wall_before = ckpt.step, float(ckpt.metrics.get("wall_s", 0.0))
        rows = read_metrics(metrics_path, step)
    valid_args = (dataset.n_tags, s["segment"], receptive_field, s["batch_size"], Q)
    if condition:
        valid = local_validation_batches(valid_clips, valid_frames, *local, *valid_args, max_rows=VALID_ROWS)
    else:
        valid = validation_batches(valid_clips, *valid_args, max_rows=VALID_ROWS)
    cond_offset = getattr(sampler, "cond_offset", 0)
    sample_frames = valid_frames[0] if condition else None  # checkpoint audio follows a held-out clip's frames
    baseline = unigram_bits(valid_clips, Q)
    data_tone = clip_periodicity(valid_clips, Q, sample_rate)  # what the samples' periodicity is compared with
    threads = blas_threads_for(
        largest_product_macs(config, s["batch_size"] // comm.size, s["segment"]),
        cores=max(1, available_cores() // comm.local_size),  # the ranks on this machine share its cores
    )

    if comm.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in rows))  # drops rows a resume redoes

    tags_text = ", ".join(dataset.tag_vocab) if dataset.tag_vocab else "none"
    print(f"{PROG}: {'resuming' if ckpt else 'new run'} in {run_dir}" + (f" at step {step}" if ckpt else ""))
    print(
        f"data      {source}: {len(dataset.clips)} clips "
        f"({', '.join(f'{n} {fmt}' for fmt, n in dataset.format_counts().items())}), "
        f"{dataset.seconds:.1f} s at {sample_rate} Hz, "
        f"tags: {tags_text}"
    )
    print(
        f"split     {len(train_clips)} clips for training, {len(valid_clips)} held out for validation "
        f"(seed {s['seed']})"
    )
    print(model.summary())
    act = activation_bytes(config, s["batch_size"], s["segment"], model.dtype.itemsize)
    print(
        f"batch     {s['batch_size']} × ({s['segment']} + {receptive_field} context) samples, "
        f"activations ≈ {format_bytes(act)}; lr {s['lr']:g}, clip norm {s['clip_norm'] or 'off'}, "
        f"{backend.name}" + (f", {threads} BLAS thread{'s' * (threads > 1)}" if backend.name == "numpy" else "")
    )
    print(f"baseline  μ-law unigram: {baseline:.3f} bits per sample (a model that learns goes below this)")
    print(
        f"tone      validation audio periodicity {data_tone:.2f} (quality.py: a held note 0.9-1, noise "
        "0.1-0.2); the samples written at each checkpoint are scored the same way"
    )

    val_bits = ckpt.metrics.get("val_bits") if ckpt is not None else None  # the latest validation loss
    saved_step = ckpt.step if ckpt is not None else None  # the step checkpoint.npz holds
    samples: list[Sample] = []  # the latest checkpoint's audio and its quality
    tone = ckpt.metrics.get("sample_periodicity") if ckpt is not None else None  # their median periodicity

    def listen() -> dict:
        """Generate the checkpoint's audio and measure it (save_checkpoint writes it): the metrics row's
        quality fields."""
        nonlocal samples, tone
        with averaged_weights(model, optimizer):
            samples = make_samples(
                model, dataset.tag_vocab, step, s["sample_seconds"], s["seed"], run_dir / SAMPLES_DIR, sample_frames
            )
        tone = float(np.median([sample.quality.periodicity for sample in samples]))
        per_clip = {
            tag or "untagged": {
                "periodicity": _json_float(q.periodicity, 3),
                "flatness": _json_float(q.flatness, 3),
                "pitch_hz": _json_float(q.pitch_hz, 1),
            }
            for tag, (_, _, q) in zip(dataset.tag_vocab or [""], samples)
        }
        return {
            "sample_periodicity": _json_float(tone, 3),
            "data_periodicity": _json_float(data_tone, 3),
            "samples": per_clip,
        }

    def save_checkpoint(wall_s: float, train_bits: float | None) -> None:
        """checkpoint.npz (atomically), then this checkpoint's audio (from listen(), if any) and the plot."""
        nonlocal saved_step
        summary = {
            "wall_s": round(wall_s, 3),
            "train_bits": _json_float(train_bits),
            "val_bits": _json_float(val_bits),
            "unigram_bits": _json_float(baseline),
            "sample_periodicity": _json_float(tone, 3),
            "data_periodicity": _json_float(data_tone, 3),
        }
        checkpoint.save(
            ckpt_path,
            model,
            optimizer,
            step=step,
            tag_vocab=dataset.tag_vocab,
            sampler_state=sampler.get_state(),
            train_args=s,
            metrics=summary,
        )
        saved_step = step
        write_samples(samples, sample_rate)  # listen() ran at this step whenever there are samples
        from .plotting import plot_losses  # matplotlib is imported only when a plot is written

        plot_losses(rows, run_dir / PLOT_NAME, baseline, title=f"minwave {s['preset']} — {run_dir.name}")

    samples_per_step = s["batch_size"] * s["segment"]  # predictions per step
    window_bits, window_norms, window_time = [], [], 0.0  # since the last metrics row
    train_bits = None
    t_start = time.perf_counter()
    restore_threads = set_blas_threads(threads) if backend.name == "numpy" else (lambda: None)
    bar = tqdm(
        total=s["steps"],
        initial=step,
        desc="train",
        unit="step",
        dynamic_ncols=True,
        mininterval=0.5,
        file=sys.stderr,
        disable=comm.rank != 0,
    )
    try:
        while step < s["steps"]:
            t0 = time.perf_counter()
            drawn = sampler.sample()  # x (B, segment + RF), tags[, cond]: host arrays
            batch = device_batch(drawn, backend, cond_offset)  # the arguments of loss_and_grads
            inputs = None  # what the network reads instead of x: noisy codes with --input-noise
            if s["input_noise"]:  # a generator of the step alone (and the rank): resume stays exact
                rng = np.random.default_rng((s["seed"], step, comm.rank))
                inputs = backend.asarray(noisy_codes(drawn[0], s["input_noise"], Q, rng))
            optimizer.lr = scheduled_lr(step + 1, s["lr"], s["warmup"], s["lr_half_life"])  # optim.py
            loss, norm = train_step(model, optimizer, batch, comm, inputs)
            if not math.isfinite(loss):  # no update was made: the parameters are still the good ones
                raise TrainingError(_diverged(f"the loss became {loss}", step + 1, saved_step, s, run_dir))
            if not math.isfinite(norm):  # this update spoilt the parameters: never save them
                raise TrainingError(_diverged(f"the gradient norm became {norm}", step + 1, saved_step, s, run_dir))
            window_time += time.perf_counter() - t0
            step += 1
            window_bits.append(loss / LN2)
            window_norms.append(norm)

            at_checkpoint = step % s["checkpoint_every"] == 0 or step == s["steps"]
            at_eval = at_checkpoint or step % s["eval_every"] == 0
            if at_eval:
                with averaged_weights(model, optimizer):  # fixed batches: no training RNG
                    val_bits = validation_bits(model, valid, backend, cond_offset)
            heard = listen() if at_checkpoint and comm.rank == 0 and s["sample_seconds"] > 0 else {}
            if at_eval or step % s["log_every"] == 0:
                train_bits = float(np.mean(window_bits))
                row = {
                    "step": step,
                    "train_bits": _json_float(train_bits),
                    "val_bits": _json_float(val_bits) if at_eval else None,
                    "unigram_bits": _json_float(baseline),
                    "grad_norm": _json_float(float(np.mean(window_norms))),
                    "lr": _json_float(optimizer.lr, 8),
                    "samples_per_s": round(len(window_bits) * samples_per_step / max(window_time, 1e-9), 1),
                    "wall_s": round(wall_before + time.perf_counter() - t_start, 3),
                    **heard,  # at a checkpoint: how tonal its generated audio is
                }
                rows.append(row)
                if comm.rank == 0:
                    with open(metrics_path, "a", encoding="utf-8") as f:
                        f.write(json.dumps(row) + "\n")
                window_bits, window_norms, window_time = [], [], 0.0
                val = f"{val_bits:.3f}" if val_bits is not None else "-"
                tone_text = f", tone {tone:.2f} (data {data_tone:.2f})" if tone is not None else ""
                bar.set_postfix_str(
                    f"loss {train_bits:.3f} bits, val {val} (unigram {baseline:.3f}){tone_text}, "
                    f"{row['samples_per_s'] / 1000:.1f}k samples/s",
                    refresh=False,
                )
            if at_checkpoint and comm.rank == 0:
                save_checkpoint(wall_before + time.perf_counter() - t_start, train_bits)
            bar.update(1)
    except out_of_memory_errors() as exc:
        raise TrainingError(
            f"out of memory ({type(exc).__name__}) with --batch-size {s['batch_size']} and --segment {s['segment']} "
            f"(activations ≈ {format_bytes(act)}); try a smaller --batch-size or --segment"
        ) from None
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (cli_errors.Terminated)
        kept = _kept(saved_step, ckpt_path, run_dir)
        raise Interrupted(f"{interrupt_name(exc)} at step {step}; {kept}", interrupt_exit_code(exc)) from None
    except OSError as exc:  # a full disk or a lost folder while writing the log, a checkpoint or samples
        kept = _kept(saved_step, ckpt_path, run_dir)
        raise TrainingError(f"{os_error_message(exc)} (at step {step}); {kept}") from None
    except sf.LibsndfileError as exc:  # libsndfile writing a sample file reports a full disk as "System error."
        kept = _kept(saved_step, ckpt_path, run_dir)
        raise TrainingError(
            f"cannot write the audio samples in {run_dir / SAMPLES_DIR} ({exc.error_string}; is the disk full?) "
            f"at step {step}; {kept}"
        ) from None
    finally:
        bar.close()
        restore_threads()

    wall = wall_before + time.perf_counter() - t_start
    verdict = "below" if val_bits < baseline else "NOT below"
    print(
        f"done      step {step}: validation {val_bits:.3f} bits per sample, {verdict} the unigram baseline "
        f"{baseline:.3f}; wall time {format_seconds(wall)}"
    )
    if val_bits >= baseline:
        print("          (train longer: --resume --steps N, or try a larger --preset)")
    print(f"checkpoint {ckpt_path}")
    print(f"metrics   {metrics_path}")
    print(f"loss plot {run_dir / PLOT_NAME}")
    if samples:
        print(f"samples   {', '.join(str(sample.path) for sample in samples)}")
        per_tag = ", ".join(f"{tag} {x.quality.periodicity:.2f}" for tag, x in zip(dataset.tag_vocab, samples))
        print(
            f"          periodicity {tone:.2f}"
            + (f" ({per_tag})" if per_tag else "")
            + f", validation audio {data_tone:.2f} (a held note 0.9-1, noise 0.1-0.2)"
        )
    example_tag = f" --tags {shlex.quote(dataset.tag_vocab[0])}" if dataset.tag_vocab else ""
    length = {  # with local conditioning the length follows the notes or the recording
        "": "--seconds 4",
        "notes": "--melody 'C4:0.5 E4:0.5 G4:1'",
        "mel": f"--vocode {shlex.quote(str(root / valid_clips[0].path))}",
    }[config.condition]
    print(
        f"generate  python -m minwave.generate --checkpoint {shlex.quote(str(ckpt_path))}{example_tag} "
        f"{length} --out out.wav"
    )
    return 0


def _kept(saved_step: int | None, ckpt_path: Path, run_dir: Path) -> str:
    """What an interrupted or failed run leaves: which checkpoint, and the command that continues it."""
    if saved_step is None:
        return "no checkpoint was saved yet"
    return (
        f"{ckpt_path} holds step {saved_step}; continue with: "
        f"python -m minwave.train --resume --out {shlex.quote(str(run_dir))}"
    )


def _diverged(what: str, step: int, saved_step: int | None, s: dict, run_dir: Path) -> str:
    """The one-line message for a NaN/inf: which step, what was kept, what to try."""
    if saved_step is not None:
        kept = (
            f"{run_dir / CHECKPOINT_NAME} still holds step {saved_step}; lower the learning rate, "
            f"e.g. python -m minwave.train --resume --out {shlex.quote(str(run_dir))} --lr {s['lr'] / 3:.3g}"
        )
    else:
        kept = f"no checkpoint had been saved yet; start again with a lower --lr than {s['lr']:g}"
    return f"{what} at step {step}; stopped without saving it. {kept}"


def main(argv: list[str] | None = None) -> int:
    """`python -m minwave.train [options]`; returns the exit status (0 on success)."""
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
