"""checkpoint.py: round trip, atomic writes (a crash mid-save keeps the old checkpoint), refusal of
pickled, truncated, foreign and other-version files — each with a one-line CheckpointError."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from minwave import checkpoint
from minwave.checkpoint import CHECKPOINT_NAME, FORMAT_VERSION, CheckpointError, load, save
from minwave.model import WaveNet, WaveNetConfig
from minwave.optim import Adam

CONFIG = WaveNetConfig(
    stacks=1,
    layers_per_stack=3,
    residual_channels=4,
    dilation_channels=4,
    skip_channels=8,
    quantization_channels=16,
    n_tags=2,
    sample_rate=8000,
)
VOCAB = ["bell", "pluck"]


def trained_model(steps=2, seed=0):
    """A tiny tagged model and its Adam after a few steps (so m, v and t are not trivial)."""
    model = WaveNet(CONFIG, seed=seed)
    opt = Adam(model.params, lr=1e-2, clip_norm=1.0)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = rng.integers(0, CONFIG.quantization_channels, (2, CONFIG.receptive_field + 20))
        tags = np.eye(2, dtype=np.float32)[[0, 1]]
        _, grads = model.loss_and_grads(x, tags)
        opt.step(model.params, grads)
    return model, opt


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and message
    return message


def test_round_trip_keeps_everything(tmp_path):
    model, opt = trained_model()
    sampler_state = {"bit_generator": "PCG64", "state": {"state": 12345678901234567890, "inc": 7}}
    path = save(
        tmp_path / CHECKPOINT_NAME,
        model,
        opt,
        step=2,
        tag_vocab=VOCAB,
        sampler_state=sampler_state,
        train_args={"lr": 0.01, "model": {"stacks": 1}},
        metrics={"val_bits": 3.5},
    )
    ckpt = load(path)
    assert ckpt.step == 2 and ckpt.tag_vocab == VOCAB and ckpt.path == path
    assert ckpt.config == CONFIG and ckpt.sample_rate == 8000 and ckpt.receptive_field == CONFIG.receptive_field
    assert ckpt.model.dtype == np.float32
    for name, value in model.params.items():
        assert ckpt.model.params[name].dtype == value.dtype
        np.testing.assert_array_equal(ckpt.model.params[name], value)  # bit for bit
    state = opt.state_dict()
    assert set(ckpt.optimizer_state) == set(state)
    for key, value in state.items():
        np.testing.assert_array_equal(ckpt.optimizer_state[key], value)
    restored = Adam(ckpt.model.params, lr=1e-2)
    restored.load_state_dict(ckpt.optimizer_state)  # the stored state fits an optimizer as it is
    assert restored.t == 2
    assert ckpt.sampler_state == sampler_state  # big ints survive JSON
    assert ckpt.train_args == {"lr": 0.01, "model": {"stacks": 1}} and ckpt.metrics == {"val_bits": 3.5}


def test_load_accepts_the_run_folder_and_works_without_optimizer(tmp_path):
    model, _ = trained_model(steps=0)
    save(tmp_path / CHECKPOINT_NAME, model, step=0, tag_vocab=VOCAB)
    ckpt = checkpoint.load(tmp_path)
    assert ckpt.optimizer_state == {} and ckpt.sampler_state is None and ckpt.train_args == {}
    x = np.zeros((1, 30), dtype=np.int64)
    tags = ckpt.tag_vector(["pluck"])[None]
    np.testing.assert_array_equal(ckpt.model.forward(x, tags), model.forward(x, tags))


def test_saved_file_holds_only_plain_arrays(tmp_path):
    model, opt = trained_model(steps=1)
    path = save(tmp_path / "c.npz", model, opt, step=1, tag_vocab=VOCAB)
    with np.load(path, allow_pickle=False) as npz:
        files = set(npz.files)
        assert all(npz[k].dtype != object for k in files)
        meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
    assert "meta" in files and "adam/t" in files and "param/input.W" in files and "adam/m/input.W" in files
    assert meta["format_version"] == FORMAT_VERSION and meta["config"]["n_tags"] == 2


def test_tag_vector():
    model, _ = trained_model(steps=0)
    ckpt = checkpoint.Checkpoint(model=model, tag_vocab=VOCAB, step=0, path=None)
    np.testing.assert_array_equal(ckpt.tag_vector(["pluck"]), [0.0, 1.0])
    np.testing.assert_array_equal(ckpt.tag_vector(["pluck", "bell"]), [1.0, 1.0])
    with pytest.raises(ValueError, match="known tags are bell, pluck"):
        ckpt.tag_vector(["organ"])
    untagged = checkpoint.Checkpoint(
        model=WaveNet(WaveNetConfig(stacks=1, layers_per_stack=1)), tag_vocab=[], step=0, path=None
    )
    assert untagged.tag_vector([]) is None
    with pytest.raises(ValueError, match="without tags"):
        untagged.tag_vector(["pluck"])


def test_save_rejects_a_vocabulary_of_the_wrong_size(tmp_path):
    model, _ = trained_model(steps=0)
    with pytest.raises(ValueError, match="tag_vocab"):
        save(tmp_path / "c.npz", model, step=0, tag_vocab=["only-one"])


# ------------------------------------------------------------------------------- atomic writes
def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT_NAME
    old_model, old_opt = trained_model(steps=1)
    save(path, old_model, old_opt, step=1, tag_vocab=VOCAB)
    new_model, new_opt = trained_model(steps=3, seed=1)

    def crash_halfway(f, arrays):
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # half the new file is on disk …
        raise OSError("simulated crash: disk full")  # … when the writer dies

    monkeypatch.setattr(checkpoint, "_write_npz", crash_halfway)
    with pytest.raises(OSError, match="simulated crash"):
        save(path, new_model, new_opt, step=3, tag_vocab=VOCAB)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]  # no temporary file left
    ckpt = load(path)
    assert ckpt.step == 1
    np.testing.assert_array_equal(ckpt.model.params["skip.W"], old_model.params["skip.W"])

    monkeypatch.undo()  # and the next save works and replaces it
    save(path, new_model, new_opt, step=3, tag_vocab=VOCAB)
    assert load(path).step == 3


def test_process_killed_while_saving_keeps_the_previous_checkpoint(tmp_path):
    """A real kill (os._exit: no cleanup, no exception handlers) in the middle of writing the file."""
    path = tmp_path / CHECKPOINT_NAME
    model, opt = trained_model(steps=1)
    save(path, model, opt, step=1, tag_vocab=VOCAB)
    script = f"""
import os, numpy as np
from minwave import checkpoint
from minwave.model import WaveNet, WaveNetConfig
def die_halfway(f, arrays):
    f.write(b"PK\\x03\\x04" + b"\\0" * 1000)
    f.flush()
    os._exit(9)
checkpoint._write_npz = die_halfway
config = WaveNetConfig(**{json.dumps(CONFIG.to_dict())})
checkpoint.save({str(path)!r}, WaveNet(config, seed=5), step=99, tag_vocab={VOCAB!r})
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 9, result.stderr
    assert load(path).step == 1  # the old checkpoint, intact
    assert any(p.name.startswith(CHECKPOINT_NAME + ".tmp-") for p in tmp_path.iterdir())  # the debris


# ------------------------------------------------------------------------------- refused files
def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError) as exc:
        load(tmp_path / "nope.npz")
    assert "no checkpoint" in one_line(exc)
    with pytest.raises(CheckpointError):
        load(tmp_path)  # a folder without checkpoint.npz


def test_pickled_content_is_refused(tmp_path):
    model, _ = trained_model(steps=0)
    path = save(tmp_path / "c.npz", model, step=0, tag_vocab=VOCAB)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["param/evil"] = np.array([{"__reduce__": "os.system"}], dtype=object)  # a pickled object
    np.savez(tmp_path / "evil.npz", **arrays)
    with pytest.raises(CheckpointError) as exc:
        load(tmp_path / "evil.npz")
    assert "pickled" in one_line(exc)


def test_other_format_version_is_refused(tmp_path, monkeypatch):
    model, _ = trained_model(steps=0)
    monkeypatch.setattr(checkpoint, "FORMAT_VERSION", FORMAT_VERSION + 1)
    path = save(tmp_path / "future.npz", model, step=0, tag_vocab=VOCAB)
    monkeypatch.undo()
    with pytest.raises(CheckpointError) as exc:
        load(path)
    assert f"format version {FORMAT_VERSION + 1}" in one_line(exc) and f"version {FORMAT_VERSION}" in str(exc.value)


@pytest.mark.parametrize("keep", [0.3, 0.9, 0.999])
def test_truncated_file_is_refused(tmp_path, keep):
    model, opt = trained_model(steps=1)
    path = save(tmp_path / "c.npz", model, opt, step=1, tag_vocab=VOCAB)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError) as exc:
        load(path)
    assert "truncated" in one_line(exc) or "not a minwave" in str(exc.value)


def test_corrupted_bytes_are_refused(tmp_path):
    model, opt = trained_model(steps=1)
    path = save(tmp_path / "c.npz", model, opt, step=1, tag_vocab=VOCAB)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("param/skip.W.npy")
    middle = info.header_offset + 30 + len(info.filename) + 200  # inside that array's data
    data[middle : middle + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as exc:
        load(path)
    one_line(exc)


@pytest.mark.parametrize("kind", ["text", "npy", "foreign_npz", "bad_meta"])
def test_foreign_files_are_refused(tmp_path, kind):
    path = tmp_path / "x.npz"
    if kind == "text":
        path.write_text("hello, I am not a checkpoint\n")
    elif kind == "npy":
        with open(path, "wb") as f:
            np.save(f, np.arange(3))
    elif kind == "foreign_npz":
        np.savez(path, weights=np.ones(3))
    else:
        np.savez(path, meta=np.frombuffer(b"{not json", dtype=np.uint8))
    with pytest.raises(CheckpointError) as exc:
        load(path)
    one_line(exc)


def test_inconsistent_parameters_are_refused(tmp_path):
    model, _ = trained_model(steps=0)
    path = save(tmp_path / "c.npz", model, step=0, tag_vocab=VOCAB)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["param/skip.W"] = np.zeros((3, 3), dtype=np.float32)  # wrong shape
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(CheckpointError, match="inconsistent") as exc:
        load(tmp_path / "bad.npz")
    one_line(exc)


def test_no_stray_temporary_files_after_saves(tmp_path):
    model, opt = trained_model(steps=1)
    for step in range(3):
        save(tmp_path / CHECKPOINT_NAME, model, opt, step=step, tag_vocab=VOCAB)
    assert os.listdir(tmp_path) == [CHECKPOINT_NAME]
