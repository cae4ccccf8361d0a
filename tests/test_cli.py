"""The command lines end to end: python -m minwave.train / minwave.generate, and every kind of bad input
giving one clear line on stderr, a non-zero exit status and no traceback.

In process the programs are called through their main(argv) (minwave/cli/); as a person runs them, as
`python -m` subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import TEST_CONFIG

from minwave import checkpoint
from minwave.backend import cupy_available
from minwave.cli import generate, train

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("builtin_cache")  # the built-in data goes to a temporary folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run folder with a tagged 4-step checkpoint (shared by the generation tests; read only)."""
    base = tmp_path_factory.getbasetemp()
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    cfg = run_dir.parent / "cfg.json"
    cfg.write_text(json.dumps(TEST_CONFIG))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINWAVE_CACHE", str(base / "minwave-cache"))
        assert train.main(["--config", str(cfg), "--steps", "4", "--out", str(run_dir)]) == 0
    return run_dir


def run_train(capsys, *argv):
    code = train.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_generate(capsys, *argv):
    """python -m minwave.generate ARGV, in process -> (exit status, stdout, stderr)."""
    code = generate.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def the_error(err: str, prog: str = "minwave.train") -> str:
    """Exactly one error line on stderr, and no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"{prog}: error:")]
    assert len(lines) == 1, err
    return lines[0]


def tone(seconds=0.4, freq=330.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def good_folder(root: Path) -> Path:
    """Three tagged sub-folders of short tones."""
    for tag, freq in [("low", 110.0), ("mid", 220.0), ("high", 440.0)]:
        (root / tag).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            sf.write(root / tag / f"{i}.wav", tone(freq=freq * (1 + i / 8)), 16000)
    return root


# ------------------------------------------------------------------------------------ end to end
def test_train_resume_generate_as_programs(tmp_path):
    """The real entry points, as a person runs them: train, resume, generate, read the WAV back."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(TEST_CONFIG))
    run_dir = tmp_path / "run"

    def program(*argv):
        result = subprocess.run(
            [sys.executable, "-m", *map(str, argv)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    result = program("minwave.train", "--config", cfg, "--steps", 2, "--out", run_dir)
    assert result.returncode == 0, result.stderr
    assert "baseline" in result.stdout and (run_dir / "checkpoint.npz").is_file()
    assert "step" in result.stderr  # the progress bar
    result = program("minwave.train", "--resume", "--out", run_dir, "--steps", 3)
    assert result.returncode == 0, result.stderr
    assert checkpoint.load(run_dir).step == 3

    out = tmp_path / "out.wav"
    result = program(
        "minwave.generate",
        "--checkpoint",
        run_dir / "checkpoint.npz",
        "--seconds",
        0.05,
        "--tags",
        "pluck",
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    audio, rate = sf.read(out)
    assert rate == 16000 and audio.shape == (800,) and sf.info(out).subtype == "PCM_16"
    assert np.abs(audio).max() <= 1.0

    result = program("minwave.generate", "--checkpoint", run_dir, "--tags", "piano", "--out", out)
    assert result.returncode == 2 and "known tags are bell, organ, pluck" in the_error(
        result.stderr, "minwave.generate"
    )


def test_help(capsys):
    code, out, _ = run_train(capsys, "--help")
    assert code == 0
    for option in [
        "--data",
        "--preset",
        "--config",
        "--steps",
        "--batch-size",
        "--segment",
        "--lr",
        "--gpu",
        "--out",
        "--resume",
        "--seed",
        "--sample-rate",
        "--checkpoint-every",
        "--sample-seconds",
    ]:
        assert option in out
    code, out, _ = run_generate(capsys, "--help")
    assert code == 0
    for option in ["--checkpoint", "--seconds", "--tags", "--temperature", "--seed", "--batch", "--out"]:
        assert option in out


def test_generate_batch_seed_and_tags(tmp_path, trained, capsys):
    out = tmp_path / "take.wav"
    args = ("--checkpoint", trained, "--seconds", 0.02, "--batch", 2, "--tags", "organ,bell")
    args += ("--temperature", 0.9, "--seed", 3, "--out", out)
    code, stdout, err = run_generate(capsys, *args)
    assert code == 0, err
    paths = [tmp_path / "take_1.wav", tmp_path / "take_2.wav"]
    assert stdout.split() == [str(p) for p in paths] and not out.exists()
    first = sf.read(paths[0])[0]
    assert first.shape == (320,)

    code, _, _ = run_generate(capsys, *args)  # the same command again
    assert code == 0
    np.testing.assert_array_equal(sf.read(paths[0])[0], first)  # same seed, same audio

    code, _, err = run_generate(capsys, "--checkpoint", trained, "--seconds", 0.02, "--out", out)
    assert code == 0 and "no --tags given, using 'bell'" in err and out.is_file()


# ------------------------------------------------------------------------------------ generate: bad input
def test_generate_unknown_tag_lists_the_known_ones(tmp_path, trained, capsys):
    code, _, err = run_generate(capsys, "--checkpoint", trained, "--tags", "piano", "--out", tmp_path / "x.wav")
    line = the_error(err, "minwave.generate")
    assert code == 2 and "'piano'" in line and "bell, organ, pluck" in line
    assert not (tmp_path / "x.wav").exists()
    code, _, err = run_generate(capsys, "--checkpoint", trained, "--tags", " , ", "--out", tmp_path / "x.wav")
    assert code == 2 and "at least one tag" in the_error(err, "minwave.generate")


def test_generate_tags_for_an_untagged_model(tmp_path, cfg, capsys):
    data = tmp_path / "flat"
    data.mkdir()
    for i in range(2):
        sf.write(data / f"{i}.wav", tone(freq=200.0 + 50 * i), 16000)
    assert run_train(capsys, "--config", cfg, "--data", data, "--steps", 1, "--out", tmp_path / "run")[0] == 0
    code, _, err = run_generate(
        capsys, "--checkpoint", tmp_path / "run", "--tags", "pluck", "--out", tmp_path / "x.wav"
    )
    assert code == 2 and "without tags" in the_error(err, "minwave.generate")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--out", "x.mp3"], "must end in"),
        (["--out", "x.wav", "--seconds", "0"], "invalid positive number"),
        (["--out", "x.wav", "--seed", "-1"], "invalid non-negative integer"),
        (["--out", "x.wav", "--batch", "0"], "invalid positive integer"),
    ],
)
def test_generate_bad_options(tmp_path, trained, capsys, monkeypatch, argv, expected):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_generate(capsys, "--checkpoint", trained, *argv)
    assert code == 2 and expected in the_error(err, "minwave.generate")


def test_generate_needs_checkpoint_and_out(capsys):
    code, _, err = run_generate(capsys, "--out", "x.wav")
    assert code == 2 and "--checkpoint" in the_error(err, "minwave.generate")


def pickled_checkpoint(trained: Path, folder: Path) -> Path:
    with np.load(trained / "checkpoint.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["param/payload"] = np.array([print], dtype=object)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "checkpoint.npz", **arrays)
    return folder / "checkpoint.npz"


def future_checkpoint(trained: Path, folder: Path) -> Path:
    with np.load(trained / "checkpoint.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta["format_version"] = checkpoint.FORMAT_VERSION + 1
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "checkpoint.npz", **arrays)
    return folder / "checkpoint.npz"


@pytest.mark.parametrize(
    "kind, expected",
    [("missing", "no checkpoint"), ("pickled", "pickled"), ("future", "format version"), ("truncated", "truncated")],
)
def test_bad_checkpoints(tmp_path, trained, capsys, kind, expected):
    folder = tmp_path / "run"
    if kind == "pickled":
        pickled_checkpoint(trained, folder)
    elif kind == "future":
        future_checkpoint(trained, folder)
    elif kind == "truncated":
        folder.mkdir()
        data = (trained / "checkpoint.npz").read_bytes()
        (folder / "checkpoint.npz").write_bytes(data[: len(data) // 2])
    code, _, err = run_generate(capsys, "--checkpoint", folder / "checkpoint.npz", "--out", tmp_path / "x.wav")
    assert code == 1 and expected in the_error(err, "minwave.generate")
    if kind != "missing":  # and training refuses to resume from it, touching nothing
        before = (folder / "checkpoint.npz").read_bytes()
        code, _, err = run_train(capsys, "--resume", "--out", folder, "--steps", 10)
        assert code == 1 and expected in the_error(err)
        assert (folder / "checkpoint.npz").read_bytes() == before


# ------------------------------------------------------------------------------------ train: bad data
def test_missing_data_folder(tmp_path, cfg, capsys):
    code, _, err = run_train(capsys, "--config", cfg, "--data", tmp_path / "nope", "--out", tmp_path / "run")
    assert code == 1 and "does not exist" in the_error(err)


def test_empty_data_folder(tmp_path, cfg, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_train(capsys, "--config", cfg, "--data", tmp_path / "empty", "--out", tmp_path / "run")
    assert code == 1 and "no audio files" in the_error(err)
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_folder_without_readable_audio(tmp_path, cfg, capsys):
    data = tmp_path / "bad"
    data.mkdir()
    (data / "a.wav").write_bytes(b"this is not audio" * 10)
    (data / "b.flac").write_bytes(os.urandom(300))
    code, _, err = run_train(capsys, "--config", cfg, "--data", data, "--out", tmp_path / "run")
    assert code == 1 and "no readable audio" in the_error(err)
    assert "warning: skipping 'a.wav'" in err and "Traceback" not in err


def test_corrupt_and_truncated_files_among_good_ones_are_skipped_with_a_warning(tmp_path, cfg, capsys):
    data = good_folder(tmp_path / "data")
    (data / "mid" / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    sf.write(data / "low" / "cut.wav", tone(), 16000)
    whole = (data / "low" / "cut.wav").read_bytes()
    (data / "low" / "cut.wav").write_bytes(whole[: len(whole) // 2])
    code, out, err = run_train(capsys, "--config", cfg, "--data", data, "--steps", 2, "--out", tmp_path / "run")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("minwave.train: warning:")]
    assert any("mid/broken.wav" in w and "skipping" in w for w in warnings), err
    assert any("low/cut.wav" in w and "truncated" in w for w in warnings), err
    assert "7 clips" in out and "tags: high, low, mid" in out
    assert checkpoint.load(tmp_path / "run").tag_vocab == ["high", "low", "mid"]


def test_audio_shorter_than_the_receptive_field(tmp_path, capsys):
    data = tmp_path / "short"
    data.mkdir()
    for i in range(3):
        sf.write(data / f"{i}.wav", tone(seconds=0.005), 16000)  # 80 samples; the tiny preset's RF is 257
    code, _, err = run_train(capsys, "--data", data, "--out", tmp_path / "run")
    assert code == 1 and "receptive field" in the_error(err)


def test_resume_with_different_tags_in_the_data(tmp_path, cfg, capsys):
    data = good_folder(tmp_path / "data")
    run_dir = tmp_path / "run"
    assert run_train(capsys, "--config", cfg, "--data", data, "--steps", 2, "--out", run_dir)[0] == 0
    (data / "high").rename(data / "treble")
    code, _, err = run_train(capsys, "--resume", "--out", run_dir, "--steps", 4)
    line = the_error(err)  # the data fingerprint catches it, and says which files
    assert code == 1 and "changed since this run started" in line and "2 added ('treble/0.wav'" in line


# ------------------------------------------------------------------------------------ train: bad options
def test_resume_without_a_checkpoint(tmp_path, capsys):
    code, _, err = run_train(capsys, "--resume", "--out", tmp_path / "run")
    assert code == 1 and "no checkpoint" in the_error(err)
    code, _, err = run_train(capsys, "--resume")
    assert code == 2 and "--resume needs --out" in the_error(err)


def test_existing_checkpoint_without_resume(tmp_path, cfg, capsys):
    run_dir = tmp_path / "run"
    assert run_train(capsys, "--config", cfg, "--steps", 1, "--out", run_dir)[0] == 0
    code, _, err = run_train(capsys, "--config", cfg, "--steps", 1, "--out", run_dir)
    assert code == 2 and "--resume" in the_error(err)
    assert checkpoint.load(run_dir).step == 1


@pytest.mark.parametrize(
    "argv, config, expected",
    [
        (["--sample-rate", "8000"], {"sample_rate": 22050}, "conflicting sample rates"),
        ([], {"n_tags": 3}, "n_tags"),
        ([], {"dilations": [1, 2]}, "unknown setting 'dilations'"),
        ([], {"stacks": 0}, "stacks must be >= 1"),
        ([], {"residual_channels": 8.5}, "must be an integer"),
        ([], {"steps": -1}, "steps must be an integer >= 1"),
        ([], {"lr": "fast"}, "lr must be a number"),
        ([], "[1, 2]", "JSON object"),
        ([], "{oops", "not valid JSON"),
        (["--steps", "0"], {}, "invalid positive integer value: '0'"),
        (["--lr", "nan"], {}, "invalid positive number"),
        (["--preset", "huge"], {}, "invalid choice"),
        (["--valid-fraction", "1.5"], {}, "fraction between 0 and 1"),
        (["--input-noise-mix", "1.5"], {}, "invalid number in [0, 1] value: '1.5'"),
        ([], {"input_noise_mix": -0.5}, "input_noise_mix must be a number in [0, 1]"),
        (["--input-noise-mix", "1", "--input-noise", "0"], {}, "give --input-noise N too"),
        (["--onset-rows", "-0.1"], {}, "invalid number in [0, 1] value: '-0.1'"),
        ([], {"onset_rows": 2}, "onset_rows must be a number in [0, 1]"),
        (["--onset-rows", "0.5"], {}, "only a run with --condition notes has"),
    ],
)
def test_bad_options_are_one_line(tmp_path, capsys, argv, config, expected):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(config if isinstance(config, str) else json.dumps(config))
    code, _, err = run_train(capsys, "--config", cfg, *argv, "--out", tmp_path / "run")
    assert code == 2 and expected in the_error(err)
    assert not (tmp_path / "run").exists()  # nothing was created


def test_missing_config_file(tmp_path, capsys):
    code, _, err = run_train(capsys, "--config", tmp_path / "nope.json", "--out", tmp_path / "run")
    assert code == 2 and "--config: cannot read" in the_error(err)


@pytest.mark.skipif(cupy_available(), reason="CuPy and a GPU are present here")
def test_gpu_without_cupy_says_what_to_install(tmp_path, cfg, capsys):
    code, _, err = run_train(capsys, "--config", cfg, "--gpu", "--out", tmp_path / "run")
    line = the_error(err)
    assert code == 1 and "--gpu" in line and "pip install" in line
    assert not (tmp_path / "run").exists()  # no silent fallback to the CPU


@pytest.mark.gpu
def test_gpu_training_matches_the_cpu(tmp_path, cfg, capsys):
    assert run_train(capsys, "--config", cfg, "--steps", 3, "--out", tmp_path / "cpu")[0] == 0
    assert run_train(capsys, "--config", cfg, "--steps", 3, "--out", tmp_path / "gpu", "--gpu")[0] == 0
    cpu, gpu = checkpoint.load(tmp_path / "cpu"), checkpoint.load(tmp_path / "gpu")
    for name in cpu.model.params:
        np.testing.assert_allclose(gpu.model.params[name], cpu.model.params[name], rtol=1e-3, atol=1e-5)


def test_resume_from_a_checkpoint_without_optimizer_state(tmp_path, trained, capsys):
    ckpt = checkpoint.load(trained)
    run_dir = tmp_path / "run"
    checkpoint.save(
        run_dir / "checkpoint.npz",
        ckpt.model,
        step=ckpt.step,
        tag_vocab=ckpt.tag_vocab,
        sampler_state=ckpt.sampler_state,
        train_args=ckpt.train_args,
    )  # no optimizer
    code, _, err = run_train(capsys, "--resume", "--out", run_dir, "--steps", 6)
    assert code == 1 and "cannot resume" in the_error(err)
    code, _, err = run_train(capsys, "--resume", "--out", run_dir.parent / "elsewhere", "--steps", 6)
    assert code == 1 and "no checkpoint" in the_error(err)


def test_sample_rate_too_low_for_the_builtin_music(tmp_path, cfg, capsys):
    code, _, err = run_train(capsys, "--config", cfg, "--sample-rate", 4000, "--out", tmp_path / "run")
    assert code == 2 and "--sample-rate 4000" in the_error(err)


def test_a_single_file_is_split_in_time(tmp_path, cfg, capsys):
    data = tmp_path / "one"
    data.mkdir()
    sf.write(data / "only.wav", tone(seconds=1.0), 16000)
    code, out, err = run_train(capsys, "--config", cfg, "--data", data, "--steps", 1, "--out", tmp_path / "run")
    assert code == 0, err  # one file: its last 10 % is the validation audio
    assert "1 clips for training, 1 held out" in out
