"""`python -m minwave.bench card`: the figures of a model's card, from a tiny untrained tag-conditioned run
and a tiny notes-conditioned one; a real clip the model trained on is never shown; bad input is one line."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest
import soundfile as sf
from conftest import TEST_CONFIG, two_step_runs

from minwave.bench.__main__ import main as bench_main
from minwave.bench.card import unseen_clips
from minwave.bench.notes import MELODIES
from minwave.data import load_dataset, split_by_file
from minwave.synth import ensure_builtin_dataset

pytestmark = pytest.mark.usefixtures("builtin_cache")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tag-conditioned and a notes-conditioned 2-step run on the built-in music (read only)."""
    return two_step_runs(tmp_path_factory, "card", TEST_CONFIG, {"tags": [], "notes": ["--condition", "notes"]})


def card(capsys, *argv) -> dict:
    capsys.readouterr()  # drop what training printed
    assert bench_main(["card", *map(str, argv)]) == 0
    return json.loads(capsys.readouterr().out)


def test_tag_card_draws_real_and_generated_clips_per_tag(runs, capsys, tmp_path):
    report = card(capsys, "--checkpoint", runs["tags"], "--seconds", 0.2, "--out", tmp_path)
    tags = ["bell", "organ", "pluck"]
    assert report["model"] == "run-tags" and report["step"] == 2 and "val_bits" in report["metrics"]
    assert sorted(report["tags"]) == tags
    assert (tmp_path / "run-tags.png").read_bytes()[:4] == b"\x89PNG"
    for tag in tags:
        audio, rate = sf.read(tmp_path / f"run-tags_{tag}.wav")
        assert rate == 16000 and len(audio) == 3200
        row = report["tags"][tag]
        assert 0 <= row["periodicity"] <= 1 and row["real_clip"].startswith(tag)
    assert report["written"] == [str(tmp_path / "run-tags.png"), *(str(tmp_path / f"run-tags_{t}.wav") for t in tags)]


def test_notes_card_plays_each_tags_melody(runs, capsys, tmp_path):
    report = card(capsys, "--checkpoint", runs["notes"] / "checkpoint.npz", "--seconds", 0.2, "--out", tmp_path)
    assert report["model"] == "run-notes" and report["condition"] == "notes"
    assert sorted(report["tags"]) == sorted(MELODIES) and report["pitch_tracker"] == "librosa.yin"
    assert (tmp_path / "run-notes.png").stat().st_size > 0
    for tag, row in report["tags"].items():
        assert row["melody"] == MELODIES[tag] and row["seconds"] == 0.2
        assert len(sf.read(tmp_path / f"run-notes_{tag}.wav")[0]) == 3200
        assert 0 <= row["pitch_accuracy"] <= 1 and 0 <= row["periodicity"] <= 1
        assert row["tonal_notes"] in ("0/1", "1/1")  # 0.2 s: the first note's span only


def test_notes_card_without_librosa_says_so(runs, capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "librosa", None)  # `import librosa` raises ImportError
    report = card(capsys, "--checkpoint", runs["notes"], "--seconds", 0.1, "--out", tmp_path)
    assert report["pitch_tracker"] is None
    assert all(row["pitch_accuracy"] is None for row in report["tags"].values())


def test_a_clip_the_model_trained_on_is_never_shown():
    """The built-in music grew after some models were trained: today's held-out files include old training files."""
    dataset = load_dataset(ensure_builtin_dataset(sample_rate=16000), 16000, 32, warn=lambda m: None)
    old = [c for c in dataset.clips if int(c.path[-6:-4]) < 12]  # the first 12 files per instrument
    old_fingerprint = [row for row in dataset.fingerprint() if int(row[0][-6:-4]) < 12]
    ckpt = SimpleNamespace(train_args={"valid_fraction": 0.1, "seed": 0, "data_fingerprint": old_fingerprint})
    trained_then = {c.path for c in split_by_file(old)[0]}
    held_out_now = {c.path for c in split_by_file(dataset)[1]}
    assert trained_then & held_out_now  # the case that needs the check
    shown = {c.path for c in unseen_clips(dataset, ckpt)}
    assert shown == held_out_now - trained_then and {c.split("_")[0] for c in shown} == {"bell", "organ", "pluck"}
    same = SimpleNamespace(train_args={"valid_fraction": 0.1, "seed": 0, "data_fingerprint": dataset.fingerprint()})
    assert {c.path for c in unseen_clips(dataset, same)} == held_out_now


@pytest.mark.parametrize(
    "argv, match",
    [
        (["nope", "--out", "x"], "no pretrained model called 'nope'"),
        (["builtin-music"], "--out"),
        (["--out", "x"], "give either NAME"),
        (["builtin-music", "--checkpoint", "run", "--out", "x"], "give either NAME"),
        (["builtin-music", "--seconds", "0", "--out", "x"], "--seconds"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert bench_main(["card", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("minwave.bench card: error:") and match in err
    assert not (tmp_path / "x").exists()
