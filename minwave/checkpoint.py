"""Checkpoints: one .npz file holding everything needed to generate from a model or to resume its training.

    RUN_DIR/checkpoint.npz
        param/<name>    the model's parameters, e.g. param/layers.3.dilated.W    (their own dtype)
        adam/<key>      Adam's state: adam/t, adam/m/<name>, adam/v/<name>      (when saved with one)
        meta            uint8 bytes of UTF-8 JSON: format and format_version, config, dtype, tag_vocab,
                        step, sampler_state, train_args, metrics

Only plain numeric arrays: the file is read with `np.load(..., allow_pickle=False)`, so a checkpoint that
carries pickled Python objects (which could run code when unpickled) is refused, never executed.

Writing is atomic: the arrays go to a temporary file in the same folder (`checkpoint.npz.tmp-<pid>`),
which is flushed and fsync'ed, then renamed over the old checkpoint with os.replace. A rename within
one filesystem is all-or-nothing, so a crash or kill at any moment leaves either the old checkpoint or
the new one, never half of one.

    save("runs/x/checkpoint.npz", model, optimizer, step=1000, tag_vocab=["bell", "organ", "pluck"])
    ckpt = load("runs/x/checkpoint.npz")          # or load("runs/x")
    ckpt.model, ckpt.tag_vocab, ckpt.sample_rate, ckpt.step
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import multi_hot
from .files import atomic_write
from .model import WaveNet, WaveNetConfig

FORMAT = "minwave-checkpoint"
FORMAT_VERSION = 1  # bump when the layout changes; load() refuses any other version
CHECKPOINT_NAME = "checkpoint.npz"


class CheckpointError(ValueError):
    """A checkpoint cannot be read or used; the message is one line saying which file and why."""


@dataclass
class Checkpoint:
    """What load() returns: the model plus everything needed to generate from it or resume training."""

    model: WaveNet
    tag_vocab: list[str]
    step: int
    path: Path
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)  # Adam.state_dict(); {} if none
    sampler_state: dict | None = None  # BatchSampler.get_state() at `step`
    train_args: dict = field(default_factory=dict)  # the training options of the run
    metrics: dict = field(default_factory=dict)  # a summary: wall time, last validation loss, …

    @property
    def config(self) -> WaveNetConfig:
        return self.model.config

    def generation_model(self) -> WaveNet:
        """The model to generate with: the moving average of the weights where the run kept one
        (train --ema, optim.py), else the trained weights themselves (self.model, which resume uses)."""
        ema = {k.removeprefix("ema/"): v for k, v in self.optimizer_state.items() if k.startswith("ema/")}
        if not ema:
            return self.model
        model = WaveNet(self.model.config, dtype=self.model.dtype, backend=self.model.backend)
        try:
            model.load_params(ema)
        except ValueError as exc:
            raise CheckpointError(f"{self.path}: its averaged weights do not fit the model ({exc})") from None
        return model

    @property
    def sample_rate(self) -> int:
        return self.model.config.sample_rate

    @property
    def receptive_field(self) -> int:
        return self.model.receptive_field

    def tag_vector(self, names) -> np.ndarray | None:
        """Tag names -> the (n_tags,) float32 multi-hot vector the model was trained with.

        None for a model without tags (then `names` must be empty). Raises ValueError naming the
        known tags for an unknown name.
        """
        names = [names] if isinstance(names, str) else list(names)  # 'organ' is one tag, not five
        if not all(isinstance(n, str) for n in names):
            raise ValueError(f"tag names must be strings, got {names!r}")
        if not self.tag_vocab:
            if names:
                raise ValueError(f"this model was trained without tags; drop --tags {','.join(names)}")
            return None
        return multi_hot(names, self.tag_vocab)  # (G,); ValueError naming the known tags for an unknown one


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder meaning the checkpoint.npz inside it."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


# ------------------------------------------------------------------------------------------ save
def save(
    path: str | os.PathLike,
    model: WaveNet,
    optimizer=None,
    *,
    step: int,
    tag_vocab=(),
    sampler_state: dict | None = None,
    train_args: dict | None = None,
    metrics: dict | None = None,
) -> Path:
    """Write model (+ Adam state, step, sampler RNG state, …) to `path` atomically. Returns the path."""
    path = Path(path)
    tag_vocab = list(tag_vocab)
    if len(tag_vocab) != model.config.n_tags:
        raise ValueError(f"tag_vocab has {len(tag_vocab)} names but the model has n_tags={model.config.n_tags}")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "dtype": model.dtype.name,
        "tag_vocab": tag_vocab,
        "step": int(step),
        "has_optimizer": optimizer is not None,
        "sampler_state": sampler_state,
        "train_args": train_args or {},
        "metrics": metrics or {},
    }
    # allow_nan=False: NaN is not JSON, and a checkpoint must be readable by any JSON parser
    meta_bytes = json.dumps(meta, allow_nan=False).encode("utf-8")
    arrays = {"meta": np.frombuffer(meta_bytes, dtype=np.uint8)}
    for name, value in model.host_params().items():
        arrays[f"param/{name}"] = np.asarray(value)
    if optimizer is not None:
        for key, value in optimizer.state_dict().items():
            arrays[f"adam/{key}"] = np.asarray(value)
    _atomic_write(path, arrays)
    return path


def _write_npz(f, arrays: dict[str, np.ndarray]) -> None:
    """The actual write (a separate function so a test can make it fail halfway)."""
    np.savez(f, **arrays)


def _atomic_write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Temporary file in the same folder -> flush + fsync -> os.replace over `path` (files.py)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: _write_npz(f, arrays))  # _write_npz looked up now: a test may replace it


# ------------------------------------------------------------------------------------------ load
def load(path: str | os.PathLike, backend="numpy", dtype=None) -> Checkpoint:
    """Read a checkpoint (or RUN_DIR/checkpoint.npz given RUN_DIR) into a Checkpoint on `backend`.

    dtype: the parameters' dtype (default: the one they were saved in). Raises CheckpointError with a
    one-line message for a missing, truncated, foreign, pickled or wrong-version file.
    """
    path = resolve(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there")
    arrays = _read_arrays(path)
    if "meta" not in arrays:
        raise CheckpointError(f"{path}: not a minwave checkpoint (no 'meta' entry)")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a minwave checkpoint")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version}, but this minwave reads version {FORMAT_VERSION}; "
            "use the minwave version that wrote it"
        )

    params = {k.removeprefix("param/"): v for k, v in arrays.items() if k.startswith("param/")}
    adam = {k.removeprefix("adam/"): v for k, v in arrays.items() if k.startswith("adam/")}
    try:
        step, train_args, metrics, sampler_state = _check_meta(meta)
        config = WaveNetConfig.from_dict(meta["config"])
        if not isinstance(meta["tag_vocab"], list) or not all(isinstance(t, str) for t in meta["tag_vocab"]):
            raise ValueError("tag_vocab must be a list of names")
        tag_vocab = list(meta["tag_vocab"])
        if len(tag_vocab) != config.n_tags:
            raise ValueError(f"{len(tag_vocab)} tag names for n_tags={config.n_tags}")
        for name, value in {**params, **adam}.items():
            if value.dtype.kind not in "fiu":
                raise ValueError(f"{name} holds {value.dtype} values, not numbers")
            if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                raise ValueError(f"{name} holds NaN or infinite values, so the model would generate noise or silence")
        model = WaveNet(config, dtype=dtype or meta["dtype"], backend=backend)
        model.load_params(params)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: inconsistent checkpoint ({_reason(exc)})") from None
    return Checkpoint(
        model=model,
        tag_vocab=tag_vocab,
        step=step,
        path=path,
        optimizer_state=adam,
        sampler_state=sampler_state,
        train_args=train_args,
        metrics=metrics,
    )


MAX_STEP = 2**53  # larger steps are not exact in JSON readers that use doubles


def _check_meta(meta: dict) -> tuple[int, dict, dict, dict | None]:
    """The metadata fields a hand-edited file may have spoilt -> (step, train_args, metrics, sampler_state)."""
    step = meta["step"]
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        raise ValueError(f"step must be a whole number from 0 to 2**53, got {step!r}")
    values = {key: meta.get(key) for key in ("train_args", "metrics", "sampler_state")}
    for key, value in values.items():
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{key} must be a JSON object, got {type(value).__name__}")
    return step, values["train_args"] or {}, values["metrics"] or {}, values["sampler_state"]


ZIP_MAGIC = b"PK\x03\x04"  # an .npz is a zip archive of .npy files


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array in the .npz, read with allow_pickle=False; any failure -> CheckpointError."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror or _reason(exc)})") from None
    if magic != ZIP_MAGIC:  # decided before numpy sees it: its messages suggest loading pickles "unsafely"
        raise CheckpointError(f"{path}: not a minwave checkpoint (not an .npz archive)")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({_reason(exc)})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):  # a bare .npy array
        raise CheckpointError(f"{path}: not a minwave checkpoint (a single array, not an .npz archive)")
    arrays = {}
    with npz:
        for key in npz.files:
            try:
                arrays[key] = npz[key]
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise CheckpointError(
                        f"{path}: refused: entry {key!r} holds pickled Python objects, which minwave "
                        "checkpoints never contain (loading them could run arbitrary code)"
                    ) from None
                raise CheckpointError(f"{path}: unreadable entry {key!r} ({_reason(exc)})") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({_reason(exc)})") from None
    return arrays


def _reason(exc: BaseException) -> str:
    """The first line of an exception's text, never numpy's advice to load pickled data "unsafely"."""
    text = str(exc).strip()
    if "pickle" in text:
        return "it holds data that only pickle could read, which minwave never loads"
    text = text.splitlines()[0] if text else type(exc).__name__
    return text if len(text) <= 300 else text[:300] + " …"
