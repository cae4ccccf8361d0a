"""Named model sizes with the training settings that suit them: `python -m minwave.train --preset NAME`.

    tiny    1 × (1 … 128), 16 channels   48 k parameters    2000 steps, about 3 minutes on a laptop CPU (the default)
    small   2 × (1 … 256), 32 channels   0.2 M parameters   3000 steps, about an hour on a CPU, minutes on a GPU
    paper   3 × (1 … 512), 64 channels   1.3 M parameters   the paper's three 10-layer blocks; for a GPU

A preset fills in every model field (except n_tags, which the data decides, and sample_rate, which
--sample-rate decides) and every training default. A `--config cfg.json` file may override any of
them, and command-line options override both: preset < config file < command line (settings.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from .model import WaveNetConfig

# Model fields a preset or config file may set; n_tags comes from the data's tag vocabulary.
MODEL_KEYS = tuple(f.name for f in fields(WaveNetConfig) if f.name != "n_tags")
# Training settings a preset or config file may set (each also a command-line option).
TRAIN_KEYS = (
    "steps",
    "batch_size",
    "segment",
    "lr",
    "clip_norm",
    "checkpoint_every",
    "eval_every",
    "log_every",
    "sample_seconds",
    "warmup",
    "lr_half_life",
    "ema",
    "input_noise",
    "input_noise_mix",
    "onset_rows",
)


@dataclass(frozen=True)
class Preset:
    """A model shape plus the training settings it was tuned with."""

    name: str
    description: str
    model: dict = field(default_factory=dict)  # WaveNetConfig fields (MODEL_KEYS)
    steps: int = 400
    batch_size: int = 8
    segment: int = 1000  # predictions per row; a row is segment + receptive_field samples
    lr: float = 3e-3
    clip_norm: float = 1.0  # global gradient-norm clipping; 0 turns it off
    checkpoint_every: int = 100
    eval_every: int = 50
    log_every: int = 10
    sample_seconds: float = 1.0  # audio generated per tag at each checkpoint; 0 turns it off
    warmup: int = 0  # steps of linear learning-rate warm-up; 0: none
    lr_half_life: int = 0  # after the warm-up, the learning rate halves every this many steps; 0: constant
    ema: float = 0.0  # decay of the weights' moving average used for validation, samples and export; 0: off
    input_noise: int = 0  # each input code moves by up to ± this many levels during training; 0: off
    input_noise_mix: float = 0.0  # 0: every row ± input_noise; 1: each row's level drawn from 0 … input_noise
    onset_rows: float = 0.0  # share of each batch's rows drawn around a note's onset (notes conditioning); 0: off

    def train_defaults(self) -> dict:
        return {key: getattr(self, key) for key in TRAIN_KEYS}

    def config(self, n_tags: int = 0, sample_rate: int = 16000) -> WaveNetConfig:
        return WaveNetConfig(**{**self.model, "n_tags": n_tags, "sample_rate": sample_rate})


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="tiny",
            description="1 × (1…128) stack, 16 channels: tonal audio from the built-in music in 2-3 minutes on a CPU",
            model=dict(
                stacks=1,
                layers_per_stack=8,
                kernel_size=2,
                residual_channels=16,
                dilation_channels=16,
                skip_channels=64,
                quantization_channels=256,
            ),
            steps=2000,  # about 3 minutes on a quiet 2-core CPU (docs/pretrained.md, "The recipe")
            batch_size=8,
            segment=1000,
            lr=1e-2,  # measured: 4.18 bits at step 400 on the built-in music, against 4.50 with 3e-3
            checkpoint_every=500,
            eval_every=100,
            log_every=10,
            sample_seconds=1.0,
            # The recipe (docs/pretrained.md): input noise is the lever that makes free-running audio
            # tonal (periodicity 0.16-0.2 without it); warm-up, decay and averaged weights steady it.
            # Noise 6: the default notes run's samples 0.63 against 0.44 with 3 (tags only: 0.29 and 0.30).
            warmup=100,
            lr_half_life=1000,
            ema=0.998,
            input_noise=6,
        ),
        Preset(
            name="small",
            description="2 × (1…256) stack, 32 channels: clearer audio; about an hour on a CPU, minutes on a GPU",
            model=dict(
                stacks=2,
                layers_per_stack=9,
                kernel_size=2,
                residual_channels=32,
                dilation_channels=32,
                skip_channels=128,
                quantization_channels=256,
            ),
            steps=3000,
            batch_size=8,
            segment=2000,
            lr=2e-3,
            checkpoint_every=500,
            eval_every=250,
            log_every=10,
            sample_seconds=2.0,
            warmup=200,  # the tiny preset's recipe, scaled to the longer run (not tuned separately)
            lr_half_life=1500,
            ema=0.999,
            input_noise=3,
        ),
        Preset(
            name="paper",
            description="3 × (1…512) stack, 64 channels, as in the WaveNet paper: meant for a GPU (--gpu)",
            model=dict(
                stacks=3,
                layers_per_stack=10,
                kernel_size=2,
                residual_channels=64,
                dilation_channels=64,
                skip_channels=256,
                quantization_channels=256,
            ),
            steps=50000,
            batch_size=16,
            segment=4000,
            lr=1e-3,
            checkpoint_every=2000,
            eval_every=1000,
            log_every=50,
            sample_seconds=2.0,
        ),
    ]
}
DEFAULT_PRESET = "tiny"


def get_preset(name: str) -> Preset:
    """The preset called `name`; ValueError listing the known ones otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
