"""train.py and cli/train.py: exact resume, the run folder (metrics, plot, samples), learning below the
unigram baseline, NaN / out-of-memory / Ctrl-C handling, presets and how settings are layered (settings.py)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import TEST_CONFIG

from minwave import checkpoint, memory, train
from minwave.cli import train as train_cli
from minwave.model import WaveNet, WaveNetConfig
from minwave.optim import Adam
from minwave.plotting import plot_losses
from minwave.presets import DEFAULT_PRESET, PRESETS, TRAIN_KEYS, get_preset
from minwave.settings import RULES, decay, positive_float, positive_int, resolve_settings

# A very small model (receptive field 9) and short rows: a training step takes milliseconds.
pytestmark = pytest.mark.usefixtures("builtin_cache")  # the built-in data goes to a temporary folder


def run(capsys, *argv):
    """python -m minwave.train ARGV in-process -> (exit status, stdout, stderr)."""
    code = train_cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    """The one error line of a failed run (the progress bar may be on stderr too)."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "minwave.train: error:" in line]
    assert len(lines) == 1, err
    return lines[0]


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------ resume
RECIPE = ["--warmup", 3, "--lr-half-life", 4, "--ema", 0.9, "--input-noise", 2, "--input-noise-mix", 1]  # all of it
PLAIN = ["--warmup", 0, "--lr-half-life", 0, "--ema", 0, "--input-noise", 0]  # none of it (the presets have it)


@pytest.mark.parametrize("recipe", [PLAIN, RECIPE], ids=["plain", "recipe"])
def test_resume_is_exact(tmp_path, cfg, capsys, recipe):
    """2N steps in one go == N steps, then --resume for N more: identical parameters, bit for bit.

    The two runs also evaluate and checkpoint at different steps, which must not matter: validation
    and generation never draw from the training batches' RNG.
    """
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert run(capsys, "--config", cfg, "--steps", 8, "--out", whole, "--eval-every", 1, *recipe)[0] == 0
    assert run(capsys, "--config", cfg, "--steps", 4, "--out", split, "--checkpoint-every", 3, *recipe)[0] == 0
    assert checkpoint.load(split).step == 4
    code, out, _ = run(capsys, "--resume", "--out", split, "--steps", 8, "--eval-every", 3)
    assert code == 0 and "resuming" in out and "at step 4" in out

    a, b = checkpoint.load(whole), checkpoint.load(split)
    assert a.step == b.step == 8
    for name in a.model.params:
        np.testing.assert_array_equal(a.model.params[name], b.model.params[name], err_msg=name)
    for key in a.optimizer_state:
        np.testing.assert_array_equal(a.optimizer_state[key], b.optimizer_state[key], err_msg=key)
    assert a.sampler_state == b.sampler_state
    assert [r["step"] for r in metrics(split)] == list(range(1, 9))  # one log, continued
    assert [r["train_bits"] for r in metrics(split)] == [r["train_bits"] for r in metrics(whole)]
    lrs = [r["lr"] for r in metrics(whole)]
    averaged = a.generation_model().params
    if recipe is RECIPE:  # warm-up to 1e-2 (the test config's lr) at step 3, then halving every 4 steps
        assert lrs[:3] == pytest.approx([1e-2 / 3, 2e-2 / 3, 1e-2], rel=1e-5)
        assert lrs[7] == pytest.approx(1e-2 * 0.5**1.25, rel=1e-5)
        assert any(not np.array_equal(averaged[k], a.model.params[k]) for k in averaged)  # generation: the average
    else:
        assert lrs == [lrs[0]] * 8 and all(averaged[k] is a.model.params[k] for k in averaged)


def test_resume_drops_log_rows_of_steps_it_redoes(tmp_path, cfg, capsys):
    """A run killed after its last checkpoint logged steps that the resumed run will do again."""
    run_dir = tmp_path / "run"
    assert run(capsys, "--config", cfg, "--steps", 4, "--out", run_dir)[0] == 0
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 5, "train_bits": 99.0}) + "\n" + '{"step": 6, "train_b')  # cut short
    assert run(capsys, "--resume", "--out", run_dir, "--steps", 6)[0] == 0
    rows = metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6] and rows[4]["train_bits"] != 99.0


def test_resume_may_change_lr_and_length_but_not_the_run(tmp_path, cfg, capsys):
    run_dir = tmp_path / "run"
    assert run(capsys, "--config", cfg, "--steps", 2, "--out", run_dir, *PLAIN)[0] == 0
    assert run(capsys, "--resume", "--out", run_dir, "--steps", 4, "--lr", "0.001")[0] == 0
    ckpt = checkpoint.load(run_dir)
    assert ckpt.step == 4 and ckpt.train_args["lr"] == 0.001 and ckpt.train_args["batch_size"] == 2
    assert metrics(run_dir)[-1]["lr"] == 0.001

    for option, value in [
        ("--batch-size", 3),
        ("--segment", 50),
        ("--seed", 1),
        ("--preset", "small"),
        ("--sample-rate", 8000),
        ("--valid-fraction", 0.3),
        ("--input-noise-mix", 0.5),
        ("--onset-rows", 0.5),
        ("--data", tmp_path),
    ]:
        code, _, err = run(capsys, "--resume", "--out", run_dir, "--steps", 6, option, value)
        assert code == 2 and option in error_line(err) and "conflicts" in err
    code, _, err = run(capsys, "--resume", "--out", run_dir, "--steps", 4)
    assert code == 2 and "already at step 4" in error_line(err)
    assert checkpoint.load(run_dir).step == 4  # nothing was touched


# ------------------------------------------------------------------------------------ the run folder
def test_run_folder_has_log_plot_samples_and_summary(tmp_path, cfg, capsys):
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "--config", cfg, "--steps", 4, "--out", run_dir, "--sample-seconds", 0.02)
    assert code == 0, err
    assert "baseline  μ-law unigram" in out and "activations ≈" in out and "receptive field" in out
    assert "validation" in out and "unigram baseline" in out and "python -m minwave.generate" in out

    rows = metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    training = {"step", "train_bits", "val_bits", "unigram_bits", "grad_norm", "lr", "samples_per_s", "wall_s"}
    listening = {"sample_periodicity", "data_periodicity", "samples"}  # at a checkpoint (steps 2 and 4)
    for r in rows:
        assert set(r) == (training | listening if r["step"] in (2, 4) else training)
        assert math.isfinite(r["train_bits"]) and r["samples_per_s"] > 0 and r["grad_norm"] > 0
    for r in rows[1::2]:  # every generated clip measured, against the validation audio
        assert set(r["samples"]) == {"bell", "organ", "pluck"}
        assert 0 <= r["sample_periodicity"] <= 1 and 0.5 < r["data_periodicity"] <= 1
        assert all(set(q) == {"periodicity", "flatness", "pitch_hz"} for q in r["samples"].values())
    printed = re.search(r"periodicity (\d\.\d\d) .*validation audio", out)  # the logged figure, to 2 digits
    assert printed and abs(float(printed.group(1)) - rows[-1]["sample_periodicity"]) <= 0.0051
    assert rows[0]["val_bits"] is None and rows[1]["val_bits"] > 0  # validation every 2 steps
    assert rows[0]["wall_s"] <= rows[-1]["wall_s"]

    assert (run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    samples = sorted(p.name for p in (run_dir / "samples").iterdir())
    assert samples == [f"step_{s:06d}_{t}.wav" for s in (2, 4) for t in ("bell", "organ", "pluck")]
    audio, rate = sf.read(run_dir / "samples" / "step_000004_pluck.wav")
    assert rate == 16000 and len(audio) == 320 and np.abs(audio).max() <= 1.0
    assert str(run_dir / "samples" / "step_000004_pluck.wav") in out  # the final clips are listed

    ckpt = checkpoint.load(run_dir / "checkpoint.npz")
    assert ckpt.tag_vocab == ["bell", "organ", "pluck"] and ckpt.config.n_tags == 3
    assert ckpt.train_args["preset"] == DEFAULT_PRESET and ckpt.metrics["val_bits"] == rows[-1]["val_bits"]


def test_it_learns_below_the_unigram_baseline(tmp_path, capsys):
    """80 steps of a small model on the built-in music: clearly below the μ-law unigram baseline."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(
        json.dumps(
            {
                **TEST_CONFIG,
                "layers_per_stack": 4,
                "residual_channels": 8,
                "dilation_channels": 8,
                "skip_channels": 16,
                "segment": 128,
                "batch_size": 4,
                "lr": 0.01,
                "eval_every": 40,
                "log_every": 10,
                "checkpoint_every": 80,
            }
        )
    )
    code, out, err = run(capsys, "--config", cfg, "--steps", 80, "--out", tmp_path / "run", *PLAIN)
    assert code == 0, err
    last = metrics(tmp_path / "run")[-1]
    assert last["val_bits"] < last["unigram_bits"] - 0.5, last
    assert "below the unigram baseline" in out


def test_untagged_data_and_other_sample_rate(tmp_path, cfg, capsys):
    data = tmp_path / "audio"
    data.mkdir()
    t = np.arange(4000) / 8000
    for i, f in enumerate([220.0, 330.0, 440.0]):
        sf.write(data / f"tone{i}.wav", 0.5 * np.sin(2 * np.pi * f * t), 8000)
    run_dir = tmp_path / "run"
    code, out, err = run(
        capsys,
        "--config",
        cfg,
        "--data",
        data,
        "--sample-rate",
        8000,
        "--steps",
        2,
        "--out",
        run_dir,
        "--sample-seconds",
        0.01,
    )
    assert code == 0, err
    ckpt = checkpoint.load(run_dir)
    assert ckpt.tag_vocab == [] and ckpt.sample_rate == 8000
    audio, rate = sf.read(run_dir / "samples" / "step_000002.wav")
    assert rate == 8000 and len(audio) == 80


# ------------------------------------------------------------------------------------ stopping
@pytest.mark.parametrize("where", ["loss", "grad_norm"])
def test_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path, cfg, capsys, monkeypatch, where):
    run_dir = tmp_path / "run"
    calls = {"n": 0}
    if where == "loss":
        original = WaveNet.loss_and_grads

        def poisoned(self, x, tags=None, **kwargs):
            calls["n"] += 1
            loss, grads = original(self, x, tags, **kwargs)
            return (float("nan") if calls["n"] == 5 else loss), grads

        monkeypatch.setattr(WaveNet, "loss_and_grads", poisoned)
    else:
        original = Adam.step

        def poisoned(self, params, grads):
            calls["n"] += 1
            norm = original(self, params, grads)
            return float("inf") if calls["n"] == 5 else norm

        monkeypatch.setattr(Adam, "step", poisoned)
    code, _, err = run(capsys, "--config", cfg, "--steps", 8, "--out", run_dir)
    line = error_line(err)
    assert code == 1 and "at step 5" in line and "--lr" in line and "still holds step 4" in line
    assert ("nan" if where == "loss" else "inf") in line
    ckpt = checkpoint.load(run_dir)  # the last good one
    assert ckpt.step == 4 and all(np.isfinite(p).all() for p in ckpt.model.params.values())
    monkeypatch.undo()
    assert run(capsys, "--resume", "--out", run_dir, "--steps", 6, "--lr", "0.001")[0] == 0  # as suggested


def test_nan_before_any_checkpoint(tmp_path, cfg, capsys, monkeypatch):
    monkeypatch.setattr(WaveNet, "loss_and_grads", lambda self, x, tags=None, **kw: (float("nan"), {}))
    code, _, err = run(capsys, "--config", cfg, "--steps", 8, "--out", tmp_path / "run")
    line = error_line(err)
    assert code == 1 and "at step 1" in line and "no checkpoint" in line and "--lr" in line
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_out_of_memory_is_one_line(tmp_path, cfg, capsys, monkeypatch):
    def no_memory(self, x, tags=None, **kwargs):
        raise MemoryError("Unable to allocate 12.3 GiB")

    monkeypatch.setattr(WaveNet, "loss_and_grads", no_memory)
    code, _, err = run(capsys, "--config", cfg, "--steps", 8, "--out", tmp_path / "run")
    line = error_line(err)
    assert code == 1 and "out of memory" in line and "--batch-size" in line and "--segment" in line


def test_ctrl_c_keeps_the_checkpoint_and_says_how_to_resume(tmp_path, cfg, capsys, monkeypatch):
    original, calls = WaveNet.loss_and_grads, {"n": 0}

    def interrupted(self, x, tags=None, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, x, tags, **kwargs)

    monkeypatch.setattr(WaveNet, "loss_and_grads", interrupted)
    run_dir = tmp_path / "run"
    code, _, err = run(capsys, "--config", cfg, "--steps", 8, "--out", run_dir)
    assert code == 130 and "Traceback" not in err
    assert "interrupted at step 3" in err and "--resume" in err and "holds step 2" in err
    assert checkpoint.load(run_dir).step == 2


# ------------------------------------------------------------------------------------ settings
def test_presets():
    assert DEFAULT_PRESET == "tiny" and set(PRESETS) == {"tiny", "small", "paper"}
    for preset in PRESETS.values():
        config = preset.config(n_tags=3)
        assert config.n_tags == 3 and config.sample_rate == 16000
        assert preset.steps >= preset.checkpoint_every >= 1 and preset.lr > 0
    paper = get_preset("paper").config()
    assert paper.stacks == 3 and paper.dilations[:10] == [2**i for i in range(10)]
    assert get_preset("tiny").config().receptive_field < get_preset("small").config().receptive_field
    with pytest.raises(ValueError, match="tiny, small, paper"):
        get_preset("huge")


def settings_for(*argv):
    return resolve_settings(train_cli.build_parser().parse_args([str(a) for a in argv]))


def test_settings_layering_preset_then_config_then_command_line(tmp_path):
    settings, given = settings_for("--preset", "small")
    assert settings["model"] == PRESETS["small"].model and settings["steps"] == PRESETS["small"].steps
    assert settings["seed"] == 0 and settings["sample_rate"] == 16000 and settings["data"] is None
    assert given == {"preset": "small"}

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"residual_channels": 24, "steps": 77, "lr": 0.5, "sample_rate": 22050}))
    settings, given = settings_for("--config", cfg, "--lr", "0.25")
    assert settings["model"]["residual_channels"] == 24
    assert settings["model"]["stacks"] == PRESETS["tiny"].model["stacks"]
    assert settings["steps"] == 77 and settings["lr"] == 0.25 and settings["sample_rate"] == 22050
    assert given["model"] == {"residual_channels": 24, "sample_rate": 22050} and given["lr"] == 0.25


def test_every_training_setting_has_one_rule():
    """The command line's option types and the config-file and checkpoint checks are the same rules."""
    assert set(TRAIN_KEYS) <= set(RULES)
    assert positive_int("3") == 3 and positive_int.accepts(3)
    assert not positive_int.accepts(2.0) and not positive_int.accepts(True)
    assert positive_float.accepts(2) and not positive_float.accepts(float("inf"))
    with pytest.raises(ValueError):
        decay("1")


def test_activation_estimate():
    config = get_preset("tiny").config(n_tags=3)
    one = train.activation_bytes(config, batch_size=1, segment=1000)
    assert train.activation_bytes(config, batch_size=8, segment=1000) == 8 * one
    assert 1e6 < one < 1e8
    assert memory.format_bytes(47_200_000) == "47.2 MB" and memory.format_bytes(512) == "512 B"


def test_plot_losses(tmp_path):
    rows = [
        {"step": 1, "train_bits": 8.0, "val_bits": None},
        {"step": 2, "train_bits": 7.0, "val_bits": 7.5},
        {"step": 3, "train_bits": None, "val_bits": 6.0},
    ]
    path = plot_losses(rows, tmp_path / "sub" / "loss.png", unigram_bits=7.2)
    assert path.read_bytes()[:4] == b"\x89PNG" and [p.name for p in path.parent.iterdir()] == ["loss.png"]


def test_model_config_of_a_run(tmp_path, cfg, capsys):
    run_dir = tmp_path / "run"
    assert run(capsys, "--config", cfg, "--steps", 1, "--out", run_dir)[0] == 0
    config = checkpoint.load(run_dir).config
    expected = {k: v for k, v in TEST_CONFIG.items() if k in WaveNetConfig.__dataclass_fields__}
    assert {k: getattr(config, k) for k in expected} == expected


def test_input_noise_of_the_ranks_adds_up_to_one_process():
    """--input-noise with N ranks moves every code exactly as one process does (rows of one drawn batch)."""
    x = np.random.default_rng(1).integers(0, 256, (4, 50))
    whole = train.noisy_codes(x, 3, 256, np.random.default_rng(7))
    halves = [
        train.noisy_codes(x[rows], 3, 256, np.random.default_rng(7), rows, 4) for rows in (slice(0, 2), slice(2, 4))
    ]
    np.testing.assert_array_equal(np.concatenate(halves), whole)
    assert 0 < np.abs(whole - x).max() <= 3 and whole.min() >= 0 and whole.max() <= 255


def test_input_noise_mix_draws_a_level_per_row():
    """--input-noise-mix 1: each row's codes move by up to its own ±m, m from 0 … n, rows of the ranks
    adding up to one process; mix 0 draws exactly what the plain --input-noise always drew."""
    x = np.full((400, 300), 128)
    moved = np.abs(train.noisy_codes(x, 6, 256, np.random.default_rng(3), mix=1.0) - x).max(axis=1)  # (B,) per row
    assert set(moved.tolist()) == set(range(7))  # clean rows, rows at ±6 and every level between
    half = np.abs(train.noisy_codes(x, 6, 256, np.random.default_rng(3), mix=0.5) - x).max(axis=1)
    assert set(half.tolist()) == {3, 4, 5, 6}  # levels 6 - round(0.5 · 6) … 6
    whole = train.noisy_codes(x[:4], 6, 256, np.random.default_rng(7), mix=1.0)
    halves = [train.noisy_codes(x[r], 6, 256, np.random.default_rng(7), r, 4, 1.0) for r in (slice(0, 2), slice(2, 4))]
    np.testing.assert_array_equal(np.concatenate(halves), whole)
    plain = train.noisy_codes(x, 6, 256, np.random.default_rng(3))
    np.testing.assert_array_equal(train.noisy_codes(x, 6, 256, np.random.default_rng(3), mix=0.0), plain)
    np.testing.assert_array_equal(plain - x, np.random.default_rng(3).integers(-6, 7, x.shape))
