"""The training loop: `train(settings, run_dir, backend)`, a loop around `train_step(model, optimizer, batch)`.

`python -m minwave.train [options]` is its command line (cli/train.py), which resolves the settings
(settings.py: preset < config file < command line) and calls train(). One step: draw a batch of random
segments (data.BatchSampler), compute the loss and every gradient by hand (WaveNet.loss_and_grads),
clip the global gradient norm and update with Adam (train_step). Around that loop, named helpers
evaluate (validation_bits), listen (make_samples) and save:

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

Legend (ops/__init__.py): B batch rows, T time steps, RF receptive field, G tags, F, C local
conditioning frames and their channels, R, D, S, Q, L as in the model.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shlex
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
from tqdm import tqdm

from . import checkpoint, distributed
from .backend import out_of_memory_errors
from .checkpoint import CHECKPOINT_NAME, CheckpointError
from .cli.errors import (
    Interrupted,
    TrainingError,
    UsageError,
    exit_program,
    interrupt_exit_code,
    interrupt_name,
    interruption,
    os_error_message,
    raise_pending,
    warn,
)
from .conditioning import ConditioningError, clip_features, onset_frames
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
from .files import atomic_write_audio, atomic_write_text
from .memory import check_fits, format_bytes, generation_bytes
from .model import WaveNet, WaveNetConfig
from .mulaw import mulaw_decode
from .optim import Adam, scheduled_lr
from .quality import Quality, quality
from .sampling import generate
from .synth import ensure_builtin_dataset
from .threads import available_cores, blas_threads_for, largest_product_macs, set_blas_threads

PROG = "minwave.train"
LN2 = math.log(2.0)
VALID_ROWS = 32  # rows of validation audio scored at each evaluation (fixed, so losses are comparable)
METRICS_NAME = "metrics.jsonl"
PLOT_NAME = "loss.png"
SAMPLES_DIR = "samples"


# ----------------------------------------------------------------------------------------- helpers
PEAK_OVER_ACTIVATIONS = 1.5  # a step's measured peak is 1.2-1.5 × activation_bytes (tiny and small presets)


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


def check_step_memory(s: dict, backend) -> None:
    """NotEnoughMemory, naming the options, if one training step would not fit (memory.py)."""
    config = WaveNetConfig(**s["model"], sample_rate=s["sample_rate"])
    check_fits(
        PEAK_OVER_ACTIVATIONS * activation_bytes(config, s["batch_size"], s["segment"]),
        f"a training step with --batch-size {s['batch_size']} and --segment {s['segment']}",
        "try a smaller --batch-size or --segment",
        backend,
    )


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


def noisy_codes(
    x: np.ndarray,
    n: int,
    quantization_channels: int,
    rng: np.random.Generator,
    rows: slice | None = None,
    batch_size: int = 0,
    mix: float = 0.0,
) -> np.ndarray:
    """x (B, T) codes, each moved by a uniform random integer in [-n, n], kept within 0 … Q-1.

    mix > 0 (--input-noise-mix): each row b draws its own level m_b, uniform over the integers
    n - round(mix · n) … n, and its codes move by a uniform integer in [-m_b, m_b] instead: with mix 1
    some rows are clean and some as noisy as n, so the network learns to use a clean past and to
    survive a noisy one. mix 0 draws exactly what it always did.

    With data-parallel ranks x is rows `rows` of a global batch of batch_size rows (data.BatchSampler's
    shard): the noise is drawn for the whole batch and this rank's rows taken, so N ranks move every code
    exactly as one process does.
    """
    if rows is None:
        rows, batch_size = slice(0, len(x)), len(x)
    m = rng.integers(n - round(mix * n), n + 1, (batch_size, 1)) if mix else n  # (B, 1) each row's level, or n
    noise = rng.integers(-m, m + 1, (batch_size, x.shape[1]))[rows]  # (B, T) drawn, this rank's rows kept
    return np.clip(x + noise, 0, quantization_channels - 1)


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
    most F·h samples long (h: the hop).

    Uses the fast generator with a fixed seed, so clips from successive checkpoints differ only because
    the model changed.
    """
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


def listen(
    model: WaveNet, optimizer: Adam, tag_vocab: list[str], step: int, s: dict, folder: Path, frames=None
) -> list[Sample]:
    """A checkpoint's audio, generated from the averaged weights (make_samples); written by write_samples."""
    with averaged_weights(model, optimizer):
        return make_samples(model, tag_vocab, step, s["sample_seconds"], s["seed"], folder, frames)


def median_periodicity(samples: list[Sample]) -> float:
    """How tonal a checkpoint's audio is: the median periodicity of its clips (quality.py)."""
    return float(np.median([sample.quality.periodicity for sample in samples]))


def quality_fields(samples: list[Sample], tag_vocab: list[str], data_tone: float) -> dict:
    """A checkpoint's metrics-row fields: its clips' median periodicity next to the validation audio's,
    and each clip's periodicity, flatness and pitch."""
    per_clip = {
        tag or "untagged": {
            "periodicity": _json_float(q.periodicity, 3),
            "flatness": _json_float(q.flatness, 3),
            "pitch_hz": _json_float(q.pitch_hz, 1),
        }
        for tag, (_, _, q) in zip(tag_vocab or [""], samples)
    }
    return {
        "sample_periodicity": _json_float(median_periodicity(samples), 3),
        "data_periodicity": _json_float(data_tone, 3),
        "samples": per_clip,
    }


def checkpoint_metrics(
    wall_s: float,
    train_bits: float | None,
    val_bits: float | None,
    baseline: float,
    tone: float | None,
    data_tone: float,
) -> dict:
    """What a checkpoint records of its run (Checkpoint.metrics): the latest losses against the
    baseline, and how tonal the latest samples were against the validation audio."""
    return {
        "wall_s": round(wall_s, 3),
        "train_bits": _json_float(train_bits),
        "val_bits": _json_float(val_bits),
        "unigram_bits": _json_float(baseline),
        "sample_periodicity": _json_float(tone, 3),
        "data_periodicity": _json_float(data_tone, 3),
    }


def write_plot(rows: list[dict], run_dir: Path, baseline: float, preset: str) -> None:
    """RUN_DIR/loss.png: the metrics rows' loss curves against the baseline (plotting.py)."""
    from .plotting import plot_losses  # matplotlib is imported only when a plot is written

    plot_losses(rows, run_dir / PLOT_NAME, baseline, title=f"minwave {preset} — {run_dir.name}")


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
def train(settings: dict, run_dir: Path, backend, ckpt: checkpoint.Checkpoint | None = None, comm=None) -> int:
    """The training run described by `settings` (settings.resolve_settings), from `ckpt` if resuming.

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
    sampler_class, clips_args, extra = BatchSampler, (train_clips,), {}
    if condition:  # local conditioning: every clip's frames, and rows that carry theirs
        try:
            train_frames = clip_features(root, train_clips, config, load_audio)  # [(F_i, C), ...]
            valid_frames = clip_features(root, valid_clips, config, load_audio)
        except ConditioningError as exc:
            raise DataError(str(exc)) from None
        local = (config.cond_hop, config.cond_context)
        sampler_class, clips_args = LocalBatchSampler, (train_clips, train_frames, *local)
        if s["onset_rows"]:  # --onset-rows: rows around the scores' onsets (settings: notes only)
            extra = {"onsets": [onset_frames(f) for f in train_frames], "onset_rows": s["onset_rows"]}
    try:
        sampler = sampler_class(
            *clips_args,
            dataset.n_tags,
            s["segment"],
            receptive_field,
            s["batch_size"],
            seed=s["seed"],
            quantization_channels=Q,
            shard=(comm.rank, comm.size),  # this rank's B/N rows of the same batch
            **extra,
        )
    except ValueError as exc:  # --onset-rows with a segment too short, or no onsets in the training notes
        if not extra:
            raise
        raise UsageError(f"--onset-rows: {exc}") from None
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
            raise_pending()  # a SIGTERM that arrived inside a weakref callback, which swallows exceptions
            t0 = time.perf_counter()
            drawn = sampler.sample()  # x (B, segment + RF), tags[, cond]: host arrays
            batch = device_batch(drawn, backend, cond_offset)  # the arguments of loss_and_grads
            inputs = None  # what the network reads instead of x: noisy codes with --input-noise
            if s["input_noise"]:  # a generator of the step alone: resume stays exact, any number of ranks
                rng = np.random.default_rng((s["seed"], step, 0))
                noisy = noisy_codes(
                    drawn[0], s["input_noise"], Q, rng, sampler.rows, sampler.batch_size, s["input_noise_mix"]
                )
                inputs = backend.asarray(noisy)
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
            heard = {}  # at a checkpoint: its audio, and how tonal it is
            if at_checkpoint and comm.rank == 0 and s["sample_seconds"] > 0:
                samples = listen(model, optimizer, dataset.tag_vocab, step, s, run_dir / SAMPLES_DIR, sample_frames)
                tone = median_periodicity(samples)
                heard = quality_fields(samples, dataset.tag_vocab, data_tone)
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
            if at_checkpoint and comm.rank == 0:  # checkpoint.npz (atomically), then its audio and the plot
                wall = wall_before + time.perf_counter() - t_start
                summary = checkpoint_metrics(wall, train_bits, val_bits, baseline, tone, data_tone)
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
                write_plot(rows, run_dir, baseline, s["preset"])
            bar.update(1)
    except out_of_memory_errors() as exc:
        raise TrainingError(
            f"out of memory ({type(exc).__name__}) with --batch-size {s['batch_size']} and --segment {s['segment']} "
            f"(activations ≈ {format_bytes(act)}); try a smaller --batch-size or --segment"
        ) from None
    except OSError as exc:  # a full disk or a lost folder while writing the log, a checkpoint or samples
        kept = _kept(saved_step, ckpt_path, run_dir)
        raise TrainingError(f"{os_error_message(exc)} (at step {step}); {kept}") from None
    except sf.LibsndfileError as exc:  # libsndfile writing a sample file reports a full disk as "System error."
        kept = _kept(saved_step, ckpt_path, run_dir)
        raise TrainingError(
            f"cannot write the audio samples in {run_dir / SAMPLES_DIR} ({exc.error_string}; is the disk full?) "
            f"at step {step}; {kept}"
        ) from None
    except (KeyboardInterrupt, Exception) as exc:  # Ctrl-C, SIGTERM (cli/errors.py: Terminated), or its debris
        stop = interruption(exc)
        if stop is None:
            raise
        kept = _kept(saved_step, ckpt_path, run_dir)
        raise Interrupted(f"{interrupt_name(stop)} at step {step}; {kept}", interrupt_exit_code(stop)) from None
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


if __name__ == "__main__":  # `python -m minwave.train`: the command line is cli/train.py, which imports this module
    from .cli.train import main

    exit_program(main())
