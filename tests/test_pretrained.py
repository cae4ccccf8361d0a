"""Shipped models: export a run, load it by name, play it from the command line; the shipped one is
what its card's command trains."""

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import minwave
from minwave import conditioning, pretrained
from minwave import generate as generate_codes
from minwave.checkpoint import CheckpointError
from minwave.cli import train
from minwave.cli.generate import main as generate_main
from minwave.settings import RECIPE_BEFORE, resolve_settings

CARD = Path(__file__).resolve().parents[1] / "docs" / "pretrained.md"
pytestmark = pytest.mark.usefixtures("builtin_cache")


def test_export_then_load_by_name(tmp_path, cfg, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    argv = ["--config", cfg, "--steps", 4, "--out", run_dir, "--ema", 0.9]
    assert train.main([str(a) for a in argv]) == 0
    monkeypatch.setattr(pretrained, "FOLDER", tmp_path / "shipped")
    (tmp_path / "shipped").mkdir()
    path = pretrained.export(run_dir, "tiny-test", tmp_path / "shipped")
    assert path.stat().st_size < 200_000 and pretrained.available() == ["tiny-test"]

    ckpt = minwave.load_pretrained("tiny-test")
    run = minwave.load(run_dir)
    assert ckpt.optimizer_state == {} and ckpt.tag_vocab == run.tag_vocab and ckpt.config == run.config
    averaged = run.generation_model().params  # the run's moving average, not its last weights
    for name, value in ckpt.model.params.items():
        np.testing.assert_array_equal(value, averaged[name])
    assert ckpt.train_args["ema"] == 0.9 and ckpt.metrics["val_bits"] == run.metrics["val_bits"]

    out = tmp_path / "organ.wav"
    assert generate_main(["--pretrained", "tiny-test", "--tags", "organ", "--seconds", "0.05", "--out", str(out)]) == 0
    audio, rate = sf.read(out)
    assert rate == 16000 and len(audio) == 800
    assert "periodicity" in capsys.readouterr().err  # what it wrote, measured


@pytest.mark.parametrize("name", ["nope", "../run", "Builtin", ""])
def test_unknown_names_are_one_line(name, capsys):
    with pytest.raises(CheckpointError, match="no pretrained model"):
        minwave.load_pretrained(name)
    assert generate_main(["--pretrained", name, "--out", "x.wav"]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_checkpoint_or_pretrained_not_both(capsys, tmp_path):
    assert generate_main(["--pretrained", "a", "--checkpoint", str(tmp_path), "--out", "x.wav"]) == 2
    assert "either --checkpoint" in capsys.readouterr().err


def card_command(name: str) -> list[str]:
    """The training command docs/pretrained.md gives for NAME: the first `python -m minwave.train` line
    in its "## NAME" section."""
    text = CARD.read_text(encoding="utf-8")
    section = re.search(rf"^## {re.escape(name)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, f"docs/pretrained.md has no section for {name}"
    line = re.search(r"^python -m minwave\.train .*$", section.group(1), re.M).group(0)
    args = shlex.split(line)[3:]
    if "--config" in args:  # written relative to the repository's root, where the card's commands run
        at = args.index("--config") + 1
        args[at] = str(CARD.parents[1] / args[at])
    return args


@pytest.mark.parametrize("name", pretrained.available())
def test_the_shipped_model_is_what_its_card_says(name):
    ckpt = minwave.load_pretrained(name)
    args = train.build_parser().parse_args(card_command(name))
    settings, _ = resolve_settings(args)
    stored = {k: v for k, v in {**RECIPE_BEFORE, **ckpt.train_args}.items() if k in settings}  # as --resume reads it
    assert stored == settings  # the card's command, with its preset, gives exactly these settings
    assert ckpt.tag_vocab == ["bell", "organ", "pluck"] and ckpt.optimizer_state == {}
    assert pretrained.path_of(name).stat().st_size < 5_000_000  # a few MB at most
    cond = None
    if ckpt.config.condition == "notes":  # a melody's frames: the notes model plays what it is given
        notes = conditioning.parse_melody("C4:0.02 E4:0.01")
        cond = conditioning.note_features(notes, 480, ckpt.config.cond_hop, ckpt.config.sample_rate)
    codes = generate_codes(ckpt.model, 400, tags=ckpt.tag_vector("organ"), cond=cond)
    assert codes.shape == (1, 400)


def test_every_shipped_model_has_a_card():
    assert {"builtin-music", "builtin-music-notes"} <= set(pretrained.available())
    for name in pretrained.available():
        assert card_command(name)
