"""Issue 15: every failure ends in one line, nothing is ever lost, and any audio a user has is read.

Each test here is one promise of docs/reliability.md. Write failures are real where that is cheap (a
file-size limit, RLIMIT_FSIZE, makes the kernel fail the write call with EFBIG) and otherwise injected
at the write call itself as OSError(ENOSPC); memory limits are real (RLIMIT_AS in a subprocess).
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import TEST_CONFIG
from test_cli import good_folder, run_generate, run_train, the_error, tone

from minwave import checkpoint, data, files, memory
from minwave.checkpoint import CHECKPOINT_NAME, CheckpointError
from minwave.cli import errors
from minwave.cli.errors import MAX_MESSAGE, error_line
from minwave.data import DataError, DataWarning, fingerprint_changes, load_dataset
from minwave.files import atomic_write, clean_stale_temporaries, stale_temporaries
from minwave.model import WaveNet, WaveNetConfig
from minwave.mulaw import mulaw_decode
from minwave.optim import Adam

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("builtin_cache")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 4-step run on a small tagged folder: (data folder, run folder). Tests copy it."""
    base = tmp_path_factory.mktemp("reliability")
    data_dir = good_folder(base / "data")
    cfg = base / "cfg.json"
    cfg.write_text(json.dumps(TEST_CONFIG))
    run_dir = base / "run"
    from minwave.cli import train

    assert train.main(["--config", str(cfg), "--data", str(data_dir), "--steps", "4", "--out", str(run_dir)]) == 0
    return data_dir, run_dir


def copy_run(run, tmp_path) -> tuple[Path, Path]:
    """A private copy of the module's data and run folders (resume tests change them)."""
    import shutil

    data_dir, run_dir = run
    shutil.copytree(data_dir, tmp_path / "data")
    shutil.copytree(run_dir, tmp_path / "run")
    ckpt = checkpoint.load(tmp_path / "run")
    ckpt.train_args["data"] = str(tmp_path / "data")
    checkpoint.save(
        tmp_path / "run" / CHECKPOINT_NAME,
        ckpt.model,
        step=ckpt.step,
        tag_vocab=ckpt.tag_vocab,
        sampler_state=ckpt.sampler_state,
        train_args=ckpt.train_args,
        metrics=ckpt.metrics,
    )
    _put_optimizer_back(tmp_path / "run" / CHECKPOINT_NAME, run_dir / CHECKPOINT_NAME)
    return tmp_path / "data", tmp_path / "run"


def _put_optimizer_back(path: Path, source: Path) -> None:
    with np.load(path) as npz, np.load(source) as src:
        arrays = {k: npz[k] for k in npz.files} | {k: src[k] for k in src.files if k.startswith("adam/")}
    meta = json.loads(arrays["meta"].tobytes())
    meta["has_optimizer"] = True
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def edit_meta(path: Path, change) -> None:
    """Hand-edit a checkpoint's metadata, as a user with a JSON editor would."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    change(meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def program(*argv, env=None, limits=None, timeout=240) -> subprocess.CompletedProcess:
    """python -m ARGV in a fresh process, optionally under resource limits {RLIMIT_X: bytes}."""

    def set_limits():
        import resource

        for which, value in (limits or {}).items():
            resource.setrlimit(which, (value, value))

    return subprocess.run(
        [sys.executable, "-m", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        preexec_fn=set_limits if limits else None,
    )


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ------------------------------------------------------------------------ any audio a user has is read
FORMATS = {  # name: (soundfile format, subtype, rate) — the list and a few more libsndfile reads
    "song.mp3": ("MP3", "MPEG_LAYER_III", 16000),
    "voice.opus": ("OGG", "OPUS", 48000),
    "bell.oga": ("OGG", "VORBIS", 16000),
    "take.aiff": ("AIFF", "PCM_16", 22050),
    "loop.caf": ("CAF", "PCM_16", 16000),
    "long.w64": ("W64", "PCM_16", 16000),
    "old.au": ("AU", "PCM_16", 16000),
    "plain.wav": ("WAV", "PCM_16", 16000),
}


def test_every_format_libsndfile_decodes_is_read_and_counted(tmp_path):
    for name, (fmt, subtype, rate) in FORMATS.items():
        sf.write(tmp_path / name, tone(seconds=0.5, rate=rate), rate, format=fmt, subtype=subtype)
    (tmp_path / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))
    (tmp_path / "README").write_text("my recordings")
    with pytest.warns(DataWarning, match=r"ignored 2 files that are not audio .*: 1 \(no extension\), 1 \.jpg"):
        dataset = load_dataset(tmp_path, quantization_channels=64)
    assert sorted(c.path for c in dataset.clips) == sorted(FORMATS)
    assert dataset.format_counts() == {"OGG": 2, "MP3": 1, "AIFF": 1, "CAF": 1, "W64": 1, "AU": 1, "WAV": 1}
    for clip in dataset.clips:  # every one decoded to about half a second at 16 kHz
        assert abs(len(clip) - 8000) < 1200, clip.path


def test_a_file_without_an_audio_extension_is_tried(tmp_path):
    sf.write(tmp_path / "take_01.rec", tone(), 16000, format="WAV")  # a recorder's own extension
    dataset = load_dataset(tmp_path)
    assert [c.path for c in dataset.clips] == ["take_01.rec"] and dataset.clips[0].format == "WAV"


def test_the_training_summary_counts_files_per_format(tmp_path, cfg, capsys):
    good_folder(tmp_path / "data")
    sf.write(tmp_path / "data" / "low" / "extra.mp3", tone(freq=100), 16000, format="MP3")
    code, out, err = run_train(
        capsys, "--config", cfg, "--data", tmp_path / "data", "--steps", 1, "--out", tmp_path / "r"
    )
    assert code == 0, err
    assert "7 clips (6 WAV, 1 MP3)" in out


def test_symlinked_subfolders_are_followed_once(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "strings"
    elsewhere.mkdir(parents=True)
    sf.write(elsewhere / "a.wav", tone(), 16000)
    root = tmp_path / "data"
    root.mkdir()
    sf.write(root / "b.wav", tone(freq=200), 16000)
    (root / "strings").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(root, target_is_directory=True)  # a cycle: must end
    dataset = load_dataset(root)
    assert sorted(c.path for c in dataset.clips) == ["b.wav", "strings/a.wav"]


def test_unreadable_subfolder_and_file_are_reported_with_the_reason(tmp_path, monkeypatch):
    sf.write(tmp_path / "ok.wav", tone(), 16000)
    (tmp_path / "private").mkdir()
    sf.write(tmp_path / "private" / "x.wav", tone(), 16000)
    sf.write(tmp_path / "locked.wav", tone(), 16000)
    if IS_ROOT:  # root reads everything: make the OS calls fail as they would for a user
        real_scandir, real_open = os.scandir, open

        def scandir(path="."):
            if Path(path).name == "private":
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_scandir(path)

        def guarded_open(path, *args, **kwargs):
            if Path(path).name == "locked.wav":
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "scandir", scandir)
        monkeypatch.setattr(data, "open", guarded_open, raising=False)
    else:  # pragma: no cover - depends on the user running the tests
        (tmp_path / "private").chmod(0)
        (tmp_path / "locked.wav").chmod(0)
    messages = []
    try:
        dataset = load_dataset(tmp_path, warn=messages.append)
    finally:
        (tmp_path / "private").chmod(0o755)
        (tmp_path / "locked.wav").chmod(0o644)
    assert [c.path for c in dataset.clips] == ["ok.wav"]
    assert any("cannot read the folder" in m and "private" in m and "Permission denied" in m for m in messages)
    assert any("'locked.wav'" in m and "Permission denied" in m for m in messages), messages


def test_unreadable_data_folder_is_not_called_empty(tmp_path, monkeypatch):
    sf.write(tmp_path / "a.wav", tone(), 16000)
    real_listdir = os.listdir

    def listdir(path="."):
        if Path(path) == tmp_path:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    with pytest.raises(DataError, match="cannot read folder .*Permission denied"):
        load_dataset(tmp_path)


def test_nan_inf_and_over_full_scale_samples_are_reported(tmp_path):
    x = tone()
    x[100:110] = np.nan
    x[200] = np.inf
    x[300:305] = 1.7
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    sf.write(tmp_path / "nan.wav", np.full(8000, np.nan, np.float32), 16000, subtype="FLOAT")
    messages = []
    dataset = load_dataset(tmp_path, warn=messages.append)
    assert [c.path for c in dataset.clips] == ["a.wav"]
    assert any("'a.wav': 11 samples are NaN or infinite; they are set to silence" in m for m in messages)
    assert any("'a.wav': 5 samples are beyond full scale (peak 1.7)" in m for m in messages)
    assert any("'nan.wav': every sample is NaN or infinite" in m for m in messages)
    assert not any("silent" in m for m in messages)
    codes = dataset.clips[0].codes
    assert codes.min() >= 0 and codes.max() <= 255


def test_tags_csv_with_an_unclosed_quote_is_refused(tmp_path):
    sf.write(tmp_path / "a.wav", tone(), 16000)
    sf.write(tmp_path / "b.wav", tone(), 16000)
    (tmp_path / "tags.csv").write_text('file,tags\na.wav,"piano\nb.wav,organ\n')
    with pytest.raises(DataError, match=r"tags.csv line 3: unexpected end of data; check the quotes"):
        load_dataset(tmp_path)


def test_a_very_low_sample_rate_is_not_called_silence(tmp_path, cfg, capsys):
    good_folder(tmp_path / "data")
    code, _, err = run_train(
        capsys, "--config", cfg, "--data", tmp_path / "data", "--sample-rate", 1, "--out", tmp_path / "r"
    )
    line = the_error(err)
    assert code == 1 and "shorter than the receptive field" in line and "at 1 Hz" in line and "silent" not in line


# ------------------------------------------------------------------------ memory is checked before it is spent
def test_check_fits_names_the_limit_and_the_fix(monkeypatch):
    monkeypatch.setattr(memory, "_mem_available", lambda: 2_000_000_000)
    monkeypatch.setattr(memory, "_cgroup_room", lambda: 1_000_000_000)
    monkeypatch.setattr(memory, "_address_space_room", lambda: None)
    assert memory.available_memory() == (1_000_000_000, "the cgroup memory limit")
    memory.check_fits(999_000_000, "x", "y")
    with pytest.raises(memory.NotEnoughMemory) as exc:
        memory.check_fits(5e11, "a training step with --batch-size 9", "try a smaller --batch-size")
    assert str(exc.value) == (
        "a training step with --batch-size 9 needs about 500.0 GB, but only 1.0 GB is available "
        "(the cgroup memory limit); try a smaller --batch-size"
    )


LIMIT = 3 * 2**30  # RLIMIT_AS of the subprocesses below: `ulimit -v 3145728`


def test_training_too_big_for_a_real_memory_limit_is_refused_before_loading(tmp_path):
    """The issue's case: --batch-size 100000 under 3 GB was killed silently after printing ≈ 590 GB."""
    data_dir = good_folder(tmp_path / "data")
    result = program(
        "minwave.train", "--data", data_dir, "--batch-size", 100000, "--out", tmp_path / "run",
        limits={__import__("resource").RLIMIT_AS: LIMIT},
    )  # fmt: skip
    line = the_error(result.stderr)
    assert result.returncode == 1, result.stderr
    assert (
        "--batch-size 100000" in line and "address-space limit (ulimit -v)" in line and "smaller --batch-size" in line
    )
    assert not (tmp_path / "run").exists()  # refused before the run folder or the data were touched


def test_one_file_too_big_once_decoded_is_named_and_skipped(tmp_path):
    """A 200 KB WAV whose header says 1 Hz: 100 000 frames become 1.6 G samples at 16 kHz."""
    data_dir = good_folder(tmp_path / "data")
    sf.write(data_dir / "low" / "one_hertz.wav", (tone(seconds=6.25) * 30000).astype(np.int16), 1)
    script = (
        "import sys\nfrom minwave.data import load_dataset\n"
        f"d = load_dataset({str(data_dir)!r}, warn=lambda m: print(m, file=sys.stderr))\n"
        "print(len(d.clips))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: __import__("resource").setrlimit(__import__("resource").RLIMIT_AS, (LIMIT, LIMIT)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["6"]
    assert "skipping 'low/one_hertz.wav' (100000 frames at 1 Hz, resampled to 16000 Hz) needs about" in result.stderr
    assert "Traceback" not in result.stderr


def test_sample_seconds_too_long_is_blamed_on_sample_seconds(tmp_path, cfg, capsys):
    data_dir = good_folder(tmp_path / "data")
    argv = ["--config", cfg, "--data", data_dir, "--sample-seconds", 1e8, "--out", tmp_path / "r"]
    code, _, err = run_train(capsys, *argv)
    line = the_error(err)
    assert code == 1 and "--sample-seconds 1e+08 for 3 tag(s)" in line and "lower --sample-seconds" in line


def test_generate_seconds_too_long_is_one_line(tmp_path, run, capsys):
    _, run_dir = run
    code, _, err = run_generate(capsys, "--checkpoint", run_dir, "--seconds", 1e300, "--out", tmp_path / "x.wav")
    line = the_error(err, "minwave.generate")
    assert code == 1 and "--seconds 1e+300" in line and "fewer --seconds" in line


# ------------------------------------------------------------------------ write errors and full disks
def test_out_inside_data_is_refused(tmp_path, cfg, capsys):
    data_dir = good_folder(tmp_path / "data")
    before = sorted(p.relative_to(data_dir) for p in data_dir.rglob("*"))
    for out in (data_dir, data_dir / "runs" / "mine"):
        code, _, err = run_train(capsys, "--config", cfg, "--data", data_dir, "--out", out)
        assert code == 2 and "is inside --data" in the_error(err)
    assert sorted(p.relative_to(data_dir) for p in data_dir.rglob("*")) == before  # nothing written there


def test_out_under_a_file_is_one_line_before_loading_data(tmp_path, cfg, capsys, monkeypatch):
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setattr("minwave.train.load_dataset", lambda *a, **k: pytest.fail("data loaded first"))
    code, _, err = run_train(capsys, "--config", cfg, "--out", tmp_path / "a_file" / "run")
    assert code == 2 and "--out: cannot write in" in the_error(err) and "Not a directory" in the_error(err)


def test_out_on_a_filesystem_that_refuses_the_write_is_one_line(tmp_path, cfg):
    """A real write failure: RLIMIT_FSIZE of 16 bytes makes the kernel fail the write call (EFBIG)."""
    import resource

    result = program("minwave.train", "--config", cfg, "--out", tmp_path / "run", limits={resource.RLIMIT_FSIZE: 16})
    line = the_error(result.stderr)
    assert result.returncode == 2 and "--out: cannot write in" in line and "File too large" in line


def test_full_disk_while_saving_keeps_the_last_checkpoint(tmp_path, cfg, capsys, monkeypatch):
    data_dir = good_folder(tmp_path / "data")
    run_dir = tmp_path / "run"
    saves = []

    def disk_fills_on_the_second_save(f, arrays):
        saves.append(1)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        if len(saves) == 2:
            f.write(buffer.getvalue()[:1000])
            raise OSError(errno.ENOSPC, "No space left on device", f.name)
        f.write(buffer.getvalue())

    monkeypatch.setattr(checkpoint, "_write_npz", disk_fills_on_the_second_save)
    code, _, err = run_train(capsys, "--config", cfg, "--data", data_dir, "--steps", 6, "--out", run_dir)
    line = the_error(err)
    assert code == 1 and "No space left on device" in line and "free some disk space" in line
    assert "holds step 2; continue with: python -m minwave.train --resume --out" in line
    assert checkpoint.load(run_dir).step == 2  # the old checkpoint, intact
    assert not stale_temporaries(run_dir) and not list(run_dir.glob("*.tmp-*"))  # no debris either
    monkeypatch.undo()
    code, _, err = run_train(capsys, "--resume", "--out", run_dir, "--steps", 6)
    assert code == 0, err


def test_full_disk_while_writing_samples_is_one_line(tmp_path, cfg, capsys, monkeypatch):
    """libsndfile turns a failed write into LibsndfileError('System error.'), not an OSError."""
    data_dir = good_folder(tmp_path / "data")

    def disk_full(*args, **kwargs):
        raise sf.LibsndfileError(2)  # SF_ERR_SYSTEM, what a full disk gives

    monkeypatch.setattr(sf, "write", disk_full)
    argv = ["--config", cfg, "--data", data_dir, "--steps", 2, "--sample-seconds", 0.01, "--out", tmp_path / "run"]
    code, _, err = run_train(capsys, *argv)
    line = the_error(err)
    assert code == 1 and "cannot write the audio samples" in line and "holds step 2" in line
    assert checkpoint.load(tmp_path / "run").step == 2


def test_gpu_memory_is_checked_on_the_device():
    class FakeGPU:  # the one thing check_fits asks of a CuPy Backend
        name = "cupy"
        device_memory_free = staticmethod(lambda: 2_000_000_000)

    memory.check_fits(1e9, "x", "y", FakeGPU())
    with pytest.raises(memory.NotEnoughMemory, match=r"only 2.0 GB is available \(free on the GPU \(cupy\)\)"):
        memory.check_fits(3e9, "a training step", "try a smaller --batch-size", FakeGPU())


def test_generate_on_a_full_disk_keeps_the_existing_file(tmp_path, run, capsys, monkeypatch):
    _, run_dir = run
    out = tmp_path / "take.wav"
    out.write_bytes(b"the user's earlier take")

    class FillsTheDisk(io.FileIO):
        def write(self, b):
            super().write(bytes(b)[:500])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "open", lambda path, mode: FillsTheDisk(path, "w"), raising=False)
    code, _, err = run_generate(capsys, "--checkpoint", run_dir, "--seconds", 0.05, "--out", out)
    assert code == 1 and "No space left on device" in the_error(err, "minwave.generate")
    assert out.read_bytes() == b"the user's earlier take"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.wav"]


def test_generate_under_a_real_file_size_limit_keeps_the_existing_file(tmp_path, run):
    import resource

    _, run_dir = run
    out = tmp_path / "take.wav"
    out.write_bytes(b"the user's earlier take")
    result = program(
        "minwave.generate", "--checkpoint", run_dir, "--seconds", 1, "--out", out,
        limits={resource.RLIMIT_FSIZE: 4096},
    )  # fmt: skip
    line = the_error(result.stderr, "minwave.generate")
    assert result.returncode == 1 and "File too large" in line
    assert out.read_bytes() == b"the user's earlier take"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.wav"]


def test_generate_onto_a_path_under_a_file_is_one_line(tmp_path, run, capsys):
    _, run_dir = run
    (tmp_path / "a_file").write_text("x")
    code, _, err = run_generate(capsys, "--checkpoint", run_dir, "--out", tmp_path / "a_file" / "x.wav")
    assert code == 2 and "is a file, not a folder" in the_error(err, "minwave.generate")


def test_atomic_write_leaves_old_file_on_any_exception(tmp_path):
    path = tmp_path / "f"
    path.write_text("old")
    for exc in (OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()):

        def write(f, exc=exc):
            f.write(b"new, half")
            raise exc

        with pytest.raises(type(exc)):
            atomic_write(path, write)
        assert path.read_text() == "old" and os.listdir(tmp_path) == ["f"]


# ------------------------------------------------------------------------ kills, SIGTERM and their debris
def test_stale_temporaries_of_dead_processes_are_removed_and_reported(tmp_path):
    mine = tmp_path / f"checkpoint.npz.tmp-{os.getpid()}"  # a live writer's: never touched
    dead = tmp_path / f"checkpoint.npz.tmp-{dead_pid()}"
    other = tmp_path / "notes.tmp-old"  # not a pid: not ours
    for p in (mine, dead, other):
        p.write_bytes(b"x" * 100)
    messages = []
    assert clean_stale_temporaries(tmp_path, messages.append) == [dead]
    assert not dead.exists() and mine.exists() and other.exists()
    assert len(messages) == 1 and "removed 1 temporary files left by killed runs" in messages[0]


def test_training_start_removes_what_a_kill_9_left(tmp_path, run, capsys):
    _, run_dir = copy_run(run, tmp_path)
    debris = run_dir / f"checkpoint.npz.tmp-{dead_pid()}"
    debris.write_bytes((run_dir / CHECKPOINT_NAME).read_bytes()[:5000])  # half a checkpoint
    code, _, err = run_train(capsys, "--resume", "--out", run_dir, "--steps", 6)
    assert code == 0, err
    assert "minwave.train: warning: removed 1 temporary files left by killed runs" in err
    assert not debris.exists()


def test_sigterm_is_like_ctrl_c(tmp_path, cfg):
    data_dir = good_folder(tmp_path / "data")
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "minwave.train", "--config", str(cfg), "--data", str(data_dir),
         "--steps", "100000", "--out", str(run_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (run_dir / CHECKPOINT_NAME).exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # a few more steps and saves
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    line = the_error(err)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM) at step" in line and "continue with: python -m minwave.train --resume" in line
    step = checkpoint.load(run_dir).step  # the last good checkpoint loads …
    assert step >= 2 and f"holds step {step}" in line
    assert not list(run_dir.glob("*.tmp-*"))  # … nothing half-written is left …
    from minwave.cli import train

    assert train.main(["--resume", "--out", str(run_dir), "--steps", str(step + 2)]) == 0  # … and it resumes
    assert checkpoint.load(run_dir).step == step + 2


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed Terminated
def test_sigterm_swallowed_by_a_weakref_callback_is_raised_at_the_next_check(capsys):
    """A SIGTERM whose handler runs inside a weakref callback: Python prints its exception and goes on
    (test_sigterm_is_like_ctrl_c trained on after one, 1 in 9 tries); raise_pending raises it again."""
    reached = []

    class Box:
        pass

    def body(argv):
        box = Box()
        ref = weakref.ref(box, lambda r: errors._raise_terminated(signal.SIGTERM, None))  # noqa: F841
        del box  # the callback runs here, and its Terminated is swallowed
        reached.append("after the callback")
        errors.raise_pending()
        reached.append("after the check")
        return 0

    before = signal.getsignal(signal.SIGTERM)
    assert errors.run_cli("prog", body, []) == 143
    assert reached == ["after the callback"]
    err = capsys.readouterr().err
    assert err.strip().endswith("prog: terminated (SIGTERM)")
    assert signal.getsignal(signal.SIGTERM) == before  # the handler run_cli installed is gone
    assert errors.interruption(ValueError("a bug")) is None  # run_cli left no SIGTERM pending


def test_an_error_that_sigterm_caused_exits_like_sigterm_and_a_bug_keeps_its_traceback(capsys):
    """A SIGTERM whose handler runs in a class body's __set_name__ (as while matplotlib is first imported,
    1 try in 300 of test_sigterm_is_like_ctrl_c): Python raises RuntimeError instead."""

    class Hook:
        def __set_name__(self, owner, name):
            errors._raise_terminated(signal.SIGTERM, None)

    def body(argv):
        type("Late", (), {"hook": Hook()})  # RuntimeError: Error calling __set_name__ …

    assert errors.run_cli("prog", body, []) == 143
    assert capsys.readouterr().err.strip() == "prog: terminated (SIGTERM)"

    def bug(argv):
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):  # no SIGTERM: a bug in minwave, raised as it is
        errors.run_cli("prog", bug, [])


# ------------------------------------------------------------------------ resume notices changed data
def test_fingerprint_changes_says_what_changed():
    old = [["a.wav", 10, "aa", []], ["b.wav", 10, "bb", []], ["c.wav", 5, "cc", ["x"]]]
    assert fingerprint_changes(old, list(old)) is None
    new = [["a.wav", 10, "aa", []], ["c.wav", 5, "cc", ["y"]], ["d.wav", 3, "dd", []]]
    assert fingerprint_changes(old, new) == "1 added ('d.wav'); 1 removed ('b.wav'); 1 changed ('c.wav')"


def test_resume_refuses_added_or_edited_audio_but_not_a_touched_file(tmp_path, run, capsys):
    data_dir, run_dir = copy_run(run, tmp_path)
    os.utime(data_dir / "low" / "0.wav", (1e9, 1e9))  # touched (or copied without -p): same audio
    code, _, err = run_train(capsys, "--resume", "--out", run_dir, "--steps", 5)
    assert code == 0, err
    sf.write(data_dir / "mid" / "new.wav", tone(freq=250), 16000)
    code, _, err = run_train(capsys, "--resume", "--out", run_dir, "--steps", 6)
    line = the_error(err)
    assert code == 1 and "changed since this run started (1 added ('mid/new.wav'))" in line
    (data_dir / "mid" / "new.wav").unlink()
    sf.write(data_dir / "high" / "1.wav", tone(freq=300), 16000)  # same name, other audio
    code, _, err = run_train(capsys, "--resume", "--out", run_dir, "--steps", 6)
    assert code == 1 and "1 changed ('high/1.wav')" in the_error(err)


# ------------------------------------------------------------------------ hand-edited and hostile checkpoints
@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda m: m["train_args"].update(data=123), "training setting data is 123"),
        (lambda m: m["train_args"].update(lr="fast"), "training setting lr is 'fast'"),
        (lambda m: m.update(metrics=[1, 2]), "metrics must be a JSON object"),
        (lambda m: m.update(step=-1), "step must be a whole number"),
        (lambda m: m.update(step=2.5), "step must be a whole number"),
        (lambda m: m.update(step=1e30), "step must be a whole number"),
        (lambda m: m["metrics"].update(wall_s="long"), "wall_s is 'long'"),
    ],
)
def test_hand_edited_checkpoints_are_one_line(tmp_path, run, capsys, edit, expected):
    _, run_dir = copy_run(run, tmp_path)
    edit_meta(run_dir / CHECKPOINT_NAME, edit)
    code, _, err = run_train(capsys, "--resume", "--out", run_dir, "--steps", 8)
    assert code == 1 and expected in the_error(err)


@pytest.mark.parametrize("kind", ["random", "pickle", "nan"])
def test_hostile_checkpoints_never_invite_unsafe_loading(tmp_path, run, capsys, kind):
    _, run_dir = run
    path = tmp_path / "c.npz"
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "pickle":
        import pickle

        path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    else:  # NaN weights would generate a DC-only file with exit 0
        ckpt = checkpoint.load(run_dir)
        ckpt.model.params["skip.W"][0, 0] = np.nan
        checkpoint.save(path, ckpt.model, step=ckpt.step, tag_vocab=ckpt.tag_vocab)
    code, _, err = run_generate(capsys, "--checkpoint", path, "--out", tmp_path / "x.wav")
    line = the_error(err, "minwave.generate")
    assert code == 1 and "allow_pickle" not in line and "unsafe" not in line
    assert ("NaN or infinite" in line) if kind == "nan" else ("not a minwave checkpoint" in line)
    assert not (tmp_path / "x.wav").exists()


# ------------------------------------------------------------------------ API edges
def test_api_edges_are_rejected_or_handled():
    ckpt = checkpoint.Checkpoint(WaveNet(WaveNetConfig(**_tiny(), n_tags=2)), ["bell", "organ"], 0, Path("x"))
    np.testing.assert_array_equal(ckpt.tag_vector("organ"), [0.0, 1.0])  # one name, not its letters
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        WaveNet(WaveNetConfig(**_tiny()), seed=-1)
    model = WaveNet(WaveNetConfig(**_tiny()))
    opt = Adam(model.params)
    grads = {k: np.zeros((1,) * v.ndim, v.dtype) for k, v in model.params.items()}  # broadcastable, wrong
    with pytest.raises(ValueError, match="gradient .*: shape"):
        opt.step(model.params, grads)
    with pytest.raises(TypeError, match="params must be a dict"):
        Adam(None)
    with pytest.raises(ValueError, match="optimizer state keys differ: .* and \\d+ more"):
        opt.load_state_dict({"t": np.array(0)})
    tagged = WaveNet(WaveNetConfig(**_tiny(), n_tags=2))
    with pytest.raises(ValueError, match="tags must be finite"):
        tagged.forward(np.zeros((1, 8), np.int64), np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="codes in 0..255"):
        mulaw_decode(np.array([300]))


def _tiny() -> dict:
    return {k: TEST_CONFIG[k] for k in ("stacks", "layers_per_stack", "residual_channels", "dilation_channels")}


def test_error_lines_stay_short():
    line = error_line("minwave.train", "x" * 5000 + " the fix")
    assert len(line) < MAX_MESSAGE + 40 and "\n" not in line and line.endswith("the fix")


def test_checkpoint_tag_vector_rejects_non_strings():
    ckpt = checkpoint.Checkpoint(WaveNet(WaveNetConfig(**_tiny(), n_tags=1)), ["bell"], 0, Path("x"))
    with pytest.raises(ValueError, match="tag names must be strings"):
        ckpt.tag_vector([1])
    with pytest.raises(CheckpointError):
        checkpoint.load(Path("/nonexistent/run"))
