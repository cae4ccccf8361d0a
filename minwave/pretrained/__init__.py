"""Models that ship inside the package: `minwave.load_pretrained(NAME)`, `generate --pretrained NAME`.

Each is a generation-only checkpoint (checkpoint.py's format, without optimizer state: parameters,
config, tag vocabulary, and the training settings and figures it was made with) in this folder as
NAME.npz, trained by the project's own command; docs/pretrained.md is its card (the exact command,
seed, steps, wall time, machine and measured figures). Export one from a finished run with

    python -m minwave.pretrained RUN_DIR NAME      # its averaged weights (train --ema), else its weights

Names are looked up in this folder only: a name is never a path.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..checkpoint import Checkpoint, CheckpointError, load, save

FOLDER = Path(__file__).resolve().parent
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def available() -> list[str]:
    """The names of the models shipped with this installation."""
    return sorted(p.stem for p in FOLDER.glob("*.npz"))


def path_of(name: str) -> Path:
    """NAME -> its file; CheckpointError naming the shipped models for an unknown one."""
    if not isinstance(name, str) or not _NAME.match(name) or not (FOLDER / f"{name}.npz").is_file():
        known = ", ".join(available()) or "none in this installation"
        raise CheckpointError(f"no pretrained model called {name!r}; shipped: {known}")
    return FOLDER / f"{name}.npz"


def load_pretrained(name: str, backend="numpy") -> Checkpoint:
    """A shipped model, ready to generate: ckpt.model, ckpt.tag_vocab, ckpt.train_args (how it was trained)."""
    return load(path_of(name), backend=backend)


def export(run: str | Path, name: str, folder: Path = FOLDER) -> Path:
    """Write a run's checkpoint as folder/NAME.npz, generation-only: the averaged weights if the run
    kept them (Checkpoint.generation_model), the config, tags, training settings and final metrics."""
    if not _NAME.match(name):
        raise CheckpointError(f"a pretrained model's name is lower-case letters, digits and '-', got {name!r}")
    ckpt = load(run)
    return save(
        Path(folder) / f"{name}.npz",
        ckpt.generation_model(),
        step=ckpt.step,
        tag_vocab=ckpt.tag_vocab,
        train_args=ckpt.train_args,
        metrics=ckpt.metrics,
    )
