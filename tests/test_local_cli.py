"""The command lines with local conditioning: train --condition notes|mel, generate --notes / --melody /
--vocode, the checkpoint that carries the conditioning, and every option that does not fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import TEST_CONFIG, two_step_runs
from test_cli import run_generate, run_train, the_error, tone

from minwave import checkpoint, conditioning
from minwave.cli.generate import DEFAULT_SECONDS

pytestmark = pytest.mark.usefixtures("builtin_cache")

CFG = {**TEST_CONFIG, "sample_seconds": 0.05}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A notes-conditioned and a mel-conditioned 2-step run on the built-in music (read only)."""
    variants = {source: ["--condition", source] for source in ("notes", "mel")}
    return two_step_runs(tmp_path_factory, "local", CFG, variants)


def test_checkpoints_carry_the_conditioning(runs):
    notes = checkpoint.load(runs["notes"])
    assert (notes.config.condition, notes.config.cond_channels, notes.config.cond_hop) == ("notes", 176, 256)
    assert "layers.0.cond.U" in notes.model.params and "cond.up.W" in notes.model.params
    assert "input.tap.W" in notes.model.params  # the period tap: notes models only
    mel = checkpoint.load(runs["mel"])
    assert (mel.config.condition, mel.config.cond_channels) == ("mel", 80)
    # the checkpoint samples follow a held-out clip's frames: as long as asked, and no longer than the clip
    for run in runs.values():
        audio, rate = sf.read(run / "samples" / "step_000002_organ.wav")
        assert len(audio) == round(0.05 * rate)


def test_generate_plays_a_melody_as_long_as_its_notes(runs, capsys, tmp_path):
    out = tmp_path / "tune.wav"
    melody = ["--melody", "C4:0.5 R:0.25 G4:1"]
    code, _, err = run_generate(capsys, "--checkpoint", runs["notes"], "--tags", "organ", *melody, "--out", out)
    assert code == 0, err
    audio, rate = sf.read(out)
    assert len(audio) == round((1.75 + 0.25) * rate)  # the notes, then the release tail
    notes = tmp_path / "tune.notes.csv"
    conditioning.write_notes_csv(notes, conditioning.parse_melody("C4:0.5 R:0.25 G4:1"))
    again = tmp_path / "again.wav"
    code, _, err = run_generate(
        capsys, "--checkpoint", runs["notes"], "--tags", "organ", "--notes", notes, "--out", again
    )
    assert code == 0, err
    np.testing.assert_array_equal(sf.read(again)[0], audio)  # the same notes, the same seed: the same audio


def test_melody_random_plays_the_composers_melodies_for_seconds(runs, capsys, tmp_path):
    takes = []
    for seed in ("0", "0", "1"):
        out = tmp_path / f"take{len(takes)}.wav"
        args = ["--tags", "pluck", "--melody", "random", "--seconds", "0.3", "--seed", seed, "--out", out]
        code, _, err = run_generate(capsys, "--checkpoint", runs["notes"], *args)
        assert code == 0, err
        audio, rate = sf.read(out)
        assert len(audio) == round(0.3 * rate)  # exactly --seconds: the composer's last note is cut there
        takes.append(audio)
    np.testing.assert_array_equal(takes[0], takes[1])  # the same seed: the same melody and audio
    assert not np.array_equal(takes[0], takes[2])
    out = tmp_path / "huge.wav"  # checked before the composer writes a single note
    args = ["--tags", "pluck", "--melody", "random", "--seconds", "1e300", "--out", out]
    code, _, err = run_generate(capsys, "--checkpoint", runs["notes"], *args)
    assert code == 1 and "--seconds 1e+300" in the_error(err, "minwave.generate") and not out.exists()
    out = tmp_path / "default.wav"  # no --seconds: generate's default length
    args = ["--tags", "bell", "--melody", "random", "--out", out]
    code, _, err = run_generate(capsys, "--checkpoint", runs["notes"], *args)
    assert code == 0, err
    assert len(sf.read(out)[0]) == round(DEFAULT_SECONDS * 16000)


def test_vocode_resynthesises_a_recording_of_its_length(runs, capsys, tmp_path):
    wav = tmp_path / "in.wav"
    sf.write(wav, tone(0.3, 440.0, 8000), 8000)  # another sample rate: resampled to the model's
    out = tmp_path / "out.wav"
    code, _, err = run_generate(capsys, "--checkpoint", runs["mel"], "--vocode", wav, "--out", out)
    assert code == 0, err
    audio, rate = sf.read(out)
    assert rate == 16000 and len(audio) == round(0.3 * 16000)


@pytest.mark.parametrize(
    "source,args,match",
    [
        ("notes", [], "conditioned on notes: pass --notes FILE or --melody"),
        ("notes", ["--vocode", "x.wav"], "conditioned on notes: pass --notes FILE or --melody"),
        ("mel", ["--melody", "C4:1"], r"conditioned on mel: pass --vocode IN.wav"),
        ("notes", ["--melody", "C4"], "--melody: 'C4' has no duration"),
        ("notes", ["--melody", "C4:1", "--seconds", "2"], "--seconds: the length follows the conditioning"),
        ("notes", ["--notes", "missing.csv"], "--notes: cannot read notes file missing.csv"),
        ("mel", ["--vocode", "missing.wav"], "--vocode: "),
        ("plain", ["--melody", "C4:1"], "--melody: this checkpoint has no local conditioning"),
        ("notes", ["--melody", "random", "--tags", "organ,bell"], "--melody random: the composer writes for one"),
        ("mel", ["--melody", "random"], r"conditioned on mel: pass --vocode IN.wav"),
    ],
)
def test_generate_rejects_what_does_not_fit(runs, capsys, monkeypatch, tmp_path, source, args, match):
    if source == "plain":
        run = tmp_path / "plain"
        cfg = tmp_path / "cfg.json"
        cfg.write_text(json.dumps(CFG))
        assert run_train(capsys, "--config", cfg, "--steps", "1", "--out", run)[0] == 0
    else:
        run = runs[source]
    monkeypatch.chdir(tmp_path)
    code, _, err = run_generate(capsys, "--checkpoint", run, "--out", tmp_path / "o.wav", *args)
    assert code == 2 and match in the_error(err, "minwave.generate")


def test_train_needs_notes_beside_every_file(capsys, tmp_path, cfg):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        sf.write(data / f"{i}.wav", tone(0.4, 220.0 * (1 + i)), 16000)
    conditioning.write_notes_csv(data / "0.notes.csv", [conditioning.Note(0.0, 0.4, 57)])
    code, _, err = run_train(
        capsys, "--config", cfg, "--steps", "1", "--data", data, "--condition", "notes", "--out", tmp_path / "r"
    )
    assert code == 1 and "have no notes beside them, e.g. '1.wav'" in the_error(err)  # fmt: skip


def test_resume_keeps_the_conditioning_and_refuses_another(runs, capsys, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs["mel"], run)
    code, out, err = run_train(capsys, "--out", run, "--resume", "--steps", "3")
    assert code == 0, err
    assert "local conditioning on mel" in out
    code, _, err = run_train(capsys, "--out", run, "--resume", "--steps", "4", "--condition", "notes")
    assert code == 2 and "--condition notes but the run" in the_error(err)


def test_bench_notes_pitch_runs_end_to_end(runs, capsys):
    """bench notes pitch: the arpeggios and the composed melodies per tag, as JSON; a mel run is refused."""
    from minwave.bench import notes as bench_notes

    assert bench_notes.main(["pitch", "--checkpoint", str(runs["notes"]), "--no-reference", "--composed", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    for part in ("tags", "composed"):
        assert set(report[part]) == {"bell", "organ", "pluck"}
        for row in report[part].values():
            assert 0 <= row["pitch_accuracy"] <= 1 and row["judged_frames"] > 0 and 0 <= row["periodicity"] <= 1
            tonal, judged = map(int, row["tonal_notes"].split("/"))
            assert 0 <= tonal <= judged and judged > 0
    assert all(row["tonal_notes"].endswith("/7") for row in report["tags"].values())  # each arpeggio's 7 notes
    assert report["composed"]["organ"]["melodies"] == 1
    with pytest.raises(SystemExit, match="not a notes-conditioned checkpoint"):
        bench_notes.main(["pitch", "--checkpoint", str(runs["mel"]), "--no-reference"])


def test_bench_notes_speed_reports_each_model():
    """bench notes speed: the fast sampler's CPU time without conditioning, with mel and with notes."""
    from minwave.bench.notes import speed_report

    report = speed_report(seconds=0.02, repeats=2)
    for name in ("plain", "mel80", "notes"):
        assert 0 < report[name]["cpu_s"] <= report[name]["median_cpu_s"] and report[name]["samples_per_s"] > 0
    assert set(report["slowdown"]) == set(report["slowdown_median"]) == {"mel80", "notes"}


def test_onset_rows_train_a_notes_run_and_a_short_segment_is_one_line(capsys, tmp_path):
    """--onset-rows: stored with the run and kept on --resume; a segment too short to predict a whole
    onset frame after the context is refused in one line, before any step."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(CFG))
    run = tmp_path / "run"
    common = ["--config", cfg, "--condition", "notes", "--onset-rows", "0.5", "--out", run]
    code, _, err = run_train(capsys, *common, "--steps", "1")
    assert code == 2 and "--onset-rows: a row of 81 samples" in the_error(err) and "at least 495 samples" in err
    assert not (run / "checkpoint.npz").exists()
    code, _, err = run_train(capsys, *common, "--steps", "2", "--segment", "600")
    assert code == 0, err
    assert checkpoint.load(run).train_args["onset_rows"] == 0.5
    assert run_train(capsys, "--out", run, "--resume", "--steps", "3")[0] == 0
    code, _, err = run_train(capsys, "--out", run, "--resume", "--steps", "4", "--onset-rows", "0.25")
    assert code == 2 and "--onset-rows 0.25 conflicts" in the_error(err)
