"""The settings of a training run: preset < config file < command line (presets.py holds the presets).

    settings, given = resolve_settings(args)                                # args: cli/train.py's options
    settings = resume_settings(ckpt.train_args, given, run_dir, ckpt.step)  # --resume

resolve_settings fills in every setting: the preset's model fields and training defaults, overridden by
a `--config cfg.json` file, overridden by the options given on the command line. Every checkpoint
stores the settings it was trained with; --resume takes them from there, lets the CHANGEABLE ones
change and refuses a different value for a LOCKED one.

The rule of every numeric setting is written once, as a `Number` (`positive_int`, `decay`, …): called
on text it is the argparse type of the option, and its `accepts` checks a value read from a config file
or a checkpoint by the same rule.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from .checkpoint import CHECKPOINT_NAME, Checkpoint, CheckpointError
from .cli.errors import UsageError
from .conditioning import CONDITION_TYPES, channels
from .model import WaveNetConfig
from .presets import DEFAULT_PRESET, MODEL_KEYS, PRESETS, TRAIN_KEYS, get_preset

# Settings that define the run: --resume takes them from the checkpoint and refuses different values
# (the last six are the recipe: how the learning rate moves, the weights are averaged, the inputs noised,
# the rows drawn).
LOCKED = ("data", "preset", "model", "sample_rate", "batch_size", "segment", "seed", "valid_fraction")
LOCKED += ("warmup", "lr_half_life", "ema", "input_noise", "input_noise_mix", "onset_rows")
# Settings that --resume may change: how long, how fast, how often to report.
CHANGEABLE = ("steps", "lr", "clip_norm", "checkpoint_every", "eval_every", "log_every", "sample_seconds")
# What a run stored before the recipe settings existed trained with (resume keeps these values).
RECIPE_BEFORE = {
    "warmup": 0,
    "lr_half_life": 0,
    "ema": 0.0,
    "input_noise": 0,
    "input_noise_mix": 0.0,
    "onset_rows": 0.0,
}


class Number:
    """The rule of a numeric setting: a kind (int, or float, which also takes a JSON integer) and a test.

    Called on text it is an argparse type: the value, or ValueError outside the rule (argparse then says
    "invalid <__name__> value"). `accepts(value)` checks a value read from JSON by the same rule (never
    true or false), and `must` says the rule in words for the error message.
    """

    def __init__(self, name: str, must: str, kind: type, test: Callable[[float], bool]):
        self.__name__, self.must, self.kind, self.test = name, must, kind, test

    def __call__(self, text: str):
        value = self.kind(text)
        if not self.test(value):
            raise ValueError(text)
        return value

    def accepts(self, value) -> bool:
        kinds = int if self.kind is int else (int, float)
        return isinstance(value, kinds) and not isinstance(value, bool) and self.test(value)


positive_int = Number("positive integer", "an integer >= 1", int, lambda v: v >= 1)
non_negative_int = Number("non-negative integer", "an integer >= 0", int, lambda v: v >= 0)
positive_float = Number("positive number", "a number > 0", float, lambda v: 0 < v < math.inf)
non_negative_float = Number("non-negative number", "a number >= 0", float, lambda v: 0 <= v < math.inf)
fraction = Number("fraction between 0 and 1", "a number between 0 and 1", float, lambda v: 0 < v < 1)
decay = Number("number in [0, 1)", "a number in [0, 1)", float, lambda v: 0 <= v < 1)
share = Number("number in [0, 1]", "a number in [0, 1]", float, lambda v: 0 <= v <= 1)

# The rule of every numeric setting: the type of its option, and the check of a config file's or a
# checkpoint's value. Every training setting (TRAIN_KEYS) has one.
RULES = {
    "steps": positive_int,
    "batch_size": positive_int,
    "segment": positive_int,
    "lr": positive_float,
    "clip_norm": non_negative_float,
    "checkpoint_every": positive_int,
    "eval_every": positive_int,
    "log_every": positive_int,
    "sample_seconds": non_negative_float,
    "warmup": non_negative_int,
    "lr_half_life": non_negative_int,
    "ema": decay,
    "input_noise": non_negative_int,
    "input_noise_mix": share,
    "onset_rows": share,
    "sample_rate": positive_int,
    "seed": non_negative_int,
    "valid_fraction": fraction,
}
# What a checkpoint's other stored settings must be: (test, the rule in words).
STORED_RULES = {
    "data": (lambda v: v is None or isinstance(v, str), "a folder name or null"),
    "preset": (lambda v: isinstance(v, str) and v in PRESETS, f"one of {', '.join(PRESETS)}"),
    "model": (lambda v: isinstance(v, dict), "a JSON object of model fields"),
    "data_fingerprint": (lambda v: isinstance(v, list) and all(isinstance(r, list) and r for r in v), "a list"),
}


def option_name(key: str) -> str:
    """'batch_size' -> '--batch-size'."""
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
        if not RULES[key].accepts(value):
            raise UsageError(f"--config: {key} must be {RULES[key].must}, got {value!r}")
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
    if settings["input_noise_mix"] and not settings["input_noise"]:
        raise UsageError(
            f"--input-noise-mix {settings['input_noise_mix']:g} spreads the levels of --input-noise, which is 0: "
            "give --input-noise N too (or leave the mix 0)"
        )
    # (a resumed run has its stored condition, and resume_settings compares its onset rows)
    if settings["onset_rows"] and model.get("condition") != "notes" and not getattr(args, "resume", False):
        raise UsageError(
            f"--onset-rows {settings['onset_rows']:g} draws rows around the notes' onsets, which only a run "
            "with --condition notes has: add it (or leave --onset-rows 0)"
        )
    return settings, given


def check_stored_settings(ckpt: Checkpoint) -> None:
    """A hand-edited checkpoint gets one line naming the setting, never a traceback later."""
    rules = {**{key: (rule.accepts, rule.must) for key, rule in RULES.items()}, **STORED_RULES}
    for key, value in ckpt.train_args.items():
        if key not in rules:
            continue  # "gpu", and settings a later minwave may add
        test, must = rules[key]
        if isinstance(value, bool) or not test(value):
            raise CheckpointError(
                f"{ckpt.path}: its training setting {key} is {value!r}, not {must}, so the run cannot be "
                "resumed (was the file edited?); it can still be used for generation"
            )
    wall = ckpt.metrics.get("wall_s", 0.0)
    if isinstance(wall, bool) or not isinstance(wall, (int, float)) or not 0 <= wall < math.inf:
        raise CheckpointError(f"{ckpt.path}: its metrics wall_s is {wall!r}, not a number of seconds >= 0")


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
                f"--resume: {option_name(key)} {given[key]} conflicts with the run in {run_dir}, "
                f"which has {option_name(key)} {shown}; drop it, or start a new run with another --out"
            )
    settings = dict(stored)
    settings.update({k: given[k] for k in CHANGEABLE if k in given})
    if settings["steps"] <= step:
        raise UsageError(
            f"--resume: the run in {run_dir} is already at step {step}; pass --steps larger "
            f"than {step} to train further"
        )
    return settings
