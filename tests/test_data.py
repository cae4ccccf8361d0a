"""data.py: loading audio folders, tags, error messages, splits and batch sampling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from minwave.data import (
    AudioDataset,
    BatchSampler,
    Clip,
    DataError,
    DataWarning,
    find_audio_files,
    load_audio,
    load_dataset,
    multi_hot,
    split_by_file,
    trim_silence,
    unigram_bits,
    validation_batches,
)
from minwave.mulaw import mulaw_encode

SR = 16000


def sine(freq=440.0, seconds=0.5, rate=SR, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path, audio, rate=SR, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, **kwargs)
    return path


def peak_hz(x, rate):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)]


def one_line(exc_info):
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def make_clip(n, path="a.wav", value=None, tags=(), tag_vector=None):
    codes = np.arange(n, dtype=np.int64) % 256 if value is None else np.full(n, value, dtype=np.int64)
    vector = np.zeros(0, np.float32) if tag_vector is None else np.asarray(tag_vector, np.float32)
    return Clip(path, codes, tuple(tags), vector)


# ---------------------------------------------------------------------------------------------------
# Reading files


def test_find_audio_files_recursive_case_insensitive_sorted(tmp_path):
    for name in ["b.WAV", "a.flac", "sub/c.Ogg", "sub/deeper/d.wav", ".hidden/e.wav", "._f.wav"]:
        write(
            tmp_path / name,
            sine(),
            format={"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}[name.rsplit(".", 1)[1].lower()],
        )
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "song.mp3").write_bytes(b"ID3")
    found = [p.relative_to(tmp_path).as_posix() for p in find_audio_files(tmp_path)]
    assert found == ["a.flac", "b.WAV", "sub/c.Ogg", "sub/deeper/d.wav"]


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = sine(440, amplitude=0.6), sine(440, amplitude=0.2)
    path = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    x = load_audio(path, SR)
    assert x.dtype == np.float32 and x.ndim == 1
    np.testing.assert_allclose(x, (left + right) / 2, atol=1e-6)


def test_resample_44100_keeps_length_and_pitch(tmp_path):
    path = write(tmp_path / "cd.wav", sine(440, seconds=1.0, rate=44100), rate=44100)
    x = load_audio(path, SR)
    assert len(x) == SR  # 44100 samples * 160 / 441
    assert abs(peak_hz(x, SR) - 440.0) < 2.0
    assert abs(np.sqrt(np.mean(x[1000:-1000] ** 2)) - 0.5 / np.sqrt(2)) < 0.01  # amplitude kept


def test_resample_removes_content_above_new_nyquist(tmp_path):
    # 12 kHz would alias to 4 kHz at 16 kHz without an anti-aliasing filter.
    path = write(tmp_path / "hi.wav", sine(12000, seconds=0.5, rate=44100), rate=44100, subtype="FLOAT")
    x = load_audio(path, SR)
    assert np.max(np.abs(x[500:-500])) < 0.01


def test_flac_24bit(tmp_path):
    audio = sine(330, seconds=0.5, amplitude=0.3)
    path = write(tmp_path / "hi_res.flac", audio, subtype="PCM_24")
    assert sf.info(str(path)).subtype == "PCM_24"
    np.testing.assert_allclose(load_audio(path, SR), audio, atol=1e-5)


def test_ogg_vorbis(tmp_path):
    try:
        path = write(tmp_path / "v.ogg", sine(440, seconds=0.5), format="OGG", subtype="VORBIS")
    except (RuntimeError, ValueError, TypeError) as exc:  # pragma: no cover - depends on libsndfile
        pytest.skip(f"libsndfile here cannot write Vorbis: {exc}")
    x = load_audio(path, SR)
    assert abs(len(x) - SR // 2) < 200
    assert abs(peak_hz(x, SR) - 440.0) < 2.0


def test_load_clips_out_of_range_float_audio(tmp_path):
    path = write(tmp_path / "loud.wav", sine(amplitude=1.5), subtype="FLOAT")
    with pytest.warns(DataWarning, match=r"beyond full scale \(peak 1.5\); they are clipped"):
        x = load_audio(path, SR)
    assert x.max() == 1.0 and x.min() == -1.0


def test_load_audio_unreadable_raises_data_error(tmp_path):
    path = tmp_path / "junk.wav"
    path.write_bytes(b"not audio at all" * 10)
    with pytest.raises(DataError, match="junk.wav"):
        load_audio(path, SR)


# ---------------------------------------------------------------------------------------------------
# Silence trimming


def test_trim_silence_threshold_and_margin():
    x = np.zeros(1000, np.float32)
    x[300] = 0.02  # above -40 dBFS (0.01)
    x[600] = -0.5
    x[100] = 0.009  # below: trimmed away
    x[800] = 0.005
    np.testing.assert_array_equal(trim_silence(x), x[300:601])
    np.testing.assert_array_equal(trim_silence(x, margin=10), x[290:611])
    np.testing.assert_array_equal(trim_silence(x, threshold_db=-50.0), x[100:801])  # 0.00316
    np.testing.assert_array_equal(trim_silence(x, margin=5000), x)


def test_trim_silence_all_silent_is_empty():
    assert len(trim_silence(np.full(500, 1e-4, np.float32))) == 0
    assert len(trim_silence(np.zeros(0, np.float32))) == 0


def test_load_dataset_trims_silence(tmp_path):
    tone = sine(seconds=0.25)
    padded = np.concatenate([np.zeros(SR), tone, np.zeros(SR)]).astype(np.float32)
    write(tmp_path / "padded.wav", padded, subtype="FLOAT")
    clip = load_dataset(tmp_path).clips[0]
    assert len(tone) <= len(clip) <= len(tone) + 2 * SR // 100  # 10 ms margin each side
    untrimmed = load_dataset(tmp_path, trim_db=None).clips[0]
    assert len(untrimmed) == len(padded)


# ---------------------------------------------------------------------------------------------------
# load_dataset: formats, broken files, errors


def test_mixed_folder_loads_every_format(tmp_path):
    write(tmp_path / "a.wav", np.stack([sine(), sine()], axis=1))
    write(tmp_path / "b.flac", sine(seconds=0.3, rate=44100), rate=44100, subtype="PCM_24")
    write(tmp_path / "c.wav", sine(seconds=0.2, rate=22050), rate=22050)
    (tmp_path / "readme.txt").write_text("not audio")
    with pytest.warns(DataWarning, match="ignored 1 files that are not audio libsndfile can decode: 1 .txt"):
        dataset = load_dataset(tmp_path, quantization_channels=64)
    assert [c.path for c in dataset.clips] == ["a.wav", "b.flac", "c.wav"]
    assert dataset.quantization_channels == 64 and dataset.sample_rate == SR
    for clip in dataset.clips:
        assert clip.codes.dtype == np.int64 and 0 <= clip.codes.min() and clip.codes.max() < 64
    assert abs(len(dataset.clips[1]) - int(0.3 * SR)) < 2 * SR // 100 + 2
    assert dataset.n_tags == 0 and dataset.tag_vocab == []


def test_codes_are_mulaw_of_the_audio(tmp_path):
    audio = sine(seconds=0.2, amplitude=0.7)
    write(tmp_path / "a.wav", audio, subtype="FLOAT")
    clip = load_dataset(tmp_path, trim_db=None).clips[0]
    np.testing.assert_array_equal(clip.codes, mulaw_encode(audio, 256))


def test_corrupt_file_is_skipped_with_a_warning_naming_it(tmp_path):
    write(tmp_path / "good1.wav", sine())
    write(tmp_path / "good2.flac", sine(), subtype="PCM_16")
    (tmp_path / "corrupt.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.warns(DataWarning, match="corrupt.wav"):
        dataset = load_dataset(tmp_path)
    assert [c.path for c in dataset.clips] == ["good1.wav", "good2.flac"]


def test_warn_callback_receives_messages(tmp_path):
    write(tmp_path / "good.wav", sine())
    (tmp_path / "bad.ogg").write_bytes(b"OggS" + bytes(100))
    messages = []
    dataset = load_dataset(tmp_path, warn=messages.append)
    assert len(dataset.clips) == 1
    assert len(messages) == 1 and "bad.ogg" in messages[0] and "\n" not in messages[0]


def test_truncated_wav_is_used_as_far_as_it_goes_with_a_warning(tmp_path):
    path = write(tmp_path / "cut.wav", sine(seconds=1.0), subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # libsndfile reads the half that is there
    with pytest.warns(DataWarning, match=r"cut\.wav.*truncated"):
        dataset = load_dataset(tmp_path)
    assert abs(len(dataset.clips[0]) - SR // 2) < 100


def test_truncated_flac_is_skipped_with_a_warning(tmp_path):
    write(tmp_path / "good.wav", sine())
    path = write(tmp_path / "cut.flac", sine(seconds=1.0), subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(DataWarning, match=r"cut\.flac"):
        dataset = load_dataset(tmp_path)
    # libsndfile may decode the first half or give up; either way good.wav loads and nothing crashes
    assert "good.wav" in [c.path for c in dataset.clips]


def test_complete_wav_is_not_reported_truncated(tmp_path, recwarn):
    write(tmp_path / "ok.wav", sine(), subtype="PCM_24")
    load_dataset(tmp_path)
    assert not [w for w in recwarn if issubclass(w.category, DataWarning)]


def test_missing_folder(tmp_path):
    with pytest.raises(DataError) as exc:
        load_dataset(tmp_path / "nope")
    assert "does not exist" in one_line(exc) and "nope" in str(exc.value)


def test_path_is_a_file(tmp_path):
    path = write(tmp_path / "a.wav", sine())
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    assert "not a folder" in one_line(exc)


def test_empty_folder(tmp_path):
    with pytest.raises(DataError) as exc:
        load_dataset(tmp_path)
    assert "no audio files found" in one_line(exc) and "MP3" in str(exc.value)


def test_folder_with_only_other_files_names_their_types(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "cover.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DataError) as exc, pytest.warns(DataWarning, match=r"2 files .*1 \.png, 1 \.txt"):
        load_dataset(tmp_path)
    message = one_line(exc)
    assert "no audio files" in message and ".png, .txt" in message


def test_a_broken_file_with_an_audio_extension_is_named(tmp_path):
    (tmp_path / "song.mp3").write_bytes(b"ID3")
    with pytest.raises(DataError) as exc, pytest.warns(DataWarning, match=r"skipping 'song.mp3': cannot decode"):
        load_dataset(tmp_path)
    assert "no readable audio" in one_line(exc)


def test_all_corrupt_folder(tmp_path):
    for i in range(3):
        (tmp_path / f"x{i}.wav").write_bytes(b"garbage" * (i + 1))
    with pytest.raises(DataError) as exc, pytest.warns(DataWarning):
        load_dataset(tmp_path)
    assert "no readable audio" in one_line(exc) and "3 files failed" in str(exc.value)


def test_all_silent_folder(tmp_path):
    write(tmp_path / "quiet.wav", np.zeros(SR, np.float32))
    with pytest.raises(DataError) as exc, pytest.warns(DataWarning, match="quiet.wav"):
        load_dataset(tmp_path)
    assert "silent" in one_line(exc)


def test_empty_wav_is_skipped_without_trimming(tmp_path):
    write(tmp_path / "good.wav", sine())
    write(tmp_path / "empty.wav", np.zeros(0, np.float32))
    with pytest.warns(DataWarning, match=r"empty\.wav.*empty"):
        dataset = load_dataset(tmp_path, trim_db=None)
    assert [c.path for c in dataset.clips] == ["good.wav"]


def test_short_clips_skipped_then_error_when_all_short(tmp_path):
    write(tmp_path / "long.wav", sine(seconds=0.5))
    write(tmp_path / "short.wav", sine(seconds=0.05))
    with pytest.warns(DataWarning, match="short.wav"):
        dataset = load_dataset(tmp_path, min_samples=2048)
    assert [c.path for c in dataset.clips] == ["long.wav"]
    with pytest.raises(DataError) as exc, pytest.warns(DataWarning):
        load_dataset(tmp_path, min_samples=SR)
    assert "shorter than the receptive field (16000 samples)" in one_line(exc)


def test_default_min_samples_keeps_tiny_clips(tmp_path):
    write(tmp_path / "tiny.wav", sine(seconds=0.002))
    assert len(load_dataset(tmp_path).clips) == 1


# ---------------------------------------------------------------------------------------------------
# Tags


def test_tags_from_csv(tmp_path):
    write(tmp_path / "a.wav", sine())
    write(tmp_path / "sub/b.wav", sine())
    write(tmp_path / "c.wav", sine())
    (tmp_path / "tags.csv").write_text("file,tags\na.wav, piano ; slow\nsub/b.wav,drums\nc.wav,\n")
    dataset = load_dataset(tmp_path)
    assert dataset.tag_vocab == ["drums", "piano", "slow"]
    by_path = {c.path: c for c in dataset.clips}
    assert by_path["a.wav"].tags == ("piano", "slow")
    np.testing.assert_array_equal(by_path["a.wav"].tag_vector, [0, 1, 1])
    np.testing.assert_array_equal(by_path["sub/b.wav"].tag_vector, [1, 0, 0])
    assert by_path["c.wav"].tags == () and by_path["c.wav"].tag_vector.dtype == np.float32
    np.testing.assert_array_equal(dataset.tag_vector(["slow", "drums"]), [1, 0, 1])
    with pytest.raises(ValueError, match="known tags are drums, piano, slow"):
        dataset.tag_vector(["violin"])


def test_tags_csv_overrides_folder_names(tmp_path):
    write(tmp_path / "piano/a.wav", sine())
    (tmp_path / "tags.csv").write_text("file,tags\npiano/a.wav,soft\n")
    assert load_dataset(tmp_path).tag_vocab == ["soft"]


def test_tags_csv_missing_file_and_unlisted_file_warn(tmp_path):
    write(tmp_path / "a.wav", sine())
    write(tmp_path / "b.wav", sine())
    (tmp_path / "tags.csv").write_text("file,tags\na.wav,x\nghost.wav,y\n")
    messages = []
    dataset = load_dataset(tmp_path, warn=messages.append)
    assert dataset.tag_vocab == ["x"]
    assert any("ghost.wav" in m for m in messages)
    assert any("b.wav" in m and "not in tags.csv" in m for m in messages)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("name,labels\na.wav,x\n", "header line 'file,tags'"),
        ("", "header line 'file,tags'"),
        ("file,tags\na.wav,x,extra\n", "line 2 has 3 fields"),
        ("file,tags\na.wav,x\na.wav,y\n", "twice"),
    ],
)
def test_malformed_tags_csv(tmp_path, text, fragment):
    write(tmp_path / "a.wav", sine())
    (tmp_path / "tags.csv").write_text(text)
    with pytest.raises(DataError) as exc:
        load_dataset(tmp_path)
    assert fragment in one_line(exc)


def test_tags_csv_with_byte_order_mark(tmp_path):
    write(tmp_path / "a.wav", sine())
    (tmp_path / "tags.csv").write_bytes("file,tags\r\na.wav,x\r\n".encode("utf-8-sig"))
    assert load_dataset(tmp_path).clips[0].tags == ("x",)


def test_tags_from_subfolders(tmp_path):
    write(tmp_path / "piano/a.wav", sine())
    write(tmp_path / "piano/deep/b.wav", sine())
    write(tmp_path / "drums/c.flac", sine())
    write(tmp_path / "loose.wav", sine())
    dataset = load_dataset(tmp_path)
    assert dataset.tag_vocab == ["drums", "piano"]
    assert {c.path: c.tags for c in dataset.clips} == {
        "drums/c.flac": ("drums",),
        "loose.wav": (),
        "piano/a.wav": ("piano",),
        "piano/deep/b.wav": ("piano",),
    }


def test_no_tags(tmp_path):
    write(tmp_path / "a.wav", sine())
    write(tmp_path / "b.wav", sine())
    dataset = load_dataset(tmp_path)
    assert dataset.n_tags == 0
    assert all(c.tag_vector.shape == (0,) for c in dataset.clips)
    x, tags = BatchSampler(dataset.clips, dataset.n_tags, 100, 50, 4, seed=0).sample()
    assert tags is None and x.shape == (4, 150)


def test_multi_hot_without_vocab():
    assert multi_hot([], []).shape == (0,)
    with pytest.raises(ValueError, match="no tags"):
        multi_hot(["x"], [])


# ---------------------------------------------------------------------------------------------------
# Splits


def clips_dataset(n):
    return AudioDataset([make_clip(1000 + i, path=f"f{i}.wav") for i in range(n)], [], SR, 256)


def test_split_by_file_is_reproducible_and_disjoint():
    dataset = clips_dataset(20)
    train, valid = split_by_file(dataset, valid_fraction=0.2, seed=3)
    train2, valid2 = split_by_file(dataset, valid_fraction=0.2, seed=3)
    assert [c.path for c in valid] == [c.path for c in valid2] and [c.path for c in train] == [c.path for c in train2]
    assert len(valid) == 4 and len(train) == 16
    assert not {c.path for c in train} & {c.path for c in valid}
    assert {c.path for c in train} | {c.path for c in valid} == {c.path for c in dataset.clips}
    other = split_by_file(dataset, valid_fraction=0.2, seed=4)[1]
    assert [c.path for c in other] != [c.path for c in valid]


@pytest.mark.parametrize("n, fraction, n_valid", [(2, 0.1, 1), (3, 0.01, 1), (3, 0.99, 2), (10, 0.1, 1)])
def test_split_by_file_keeps_one_on_each_side(n, fraction, n_valid):
    train, valid = split_by_file(clips_dataset(n).clips, valid_fraction=fraction)
    assert len(valid) == n_valid and len(train) == n - n_valid


def test_split_by_file_validates_every_tag():
    clips = [make_clip(100, f"{tag}{i}.wav", tags=(tag,)) for tag in "abc" for i in range(12)]
    clips.append(make_clip(100, "lonely.wav", tags=("d",)))  # a single file: stays in training
    train, valid = split_by_file(clips, valid_fraction=0.1, seed=0)
    assert sorted(c.tags[0] for c in valid) == ["a", "b", "c"]
    assert "lonely.wav" in [c.path for c in train]
    for seed in range(5):  # every seed validates every tag with >= 2 files, on different files
        assert {c.tags for c in split_by_file(clips, 0.1, seed)[1]} == {("a",), ("b",), ("c",)}


def test_split_by_file_all_singleton_tags_falls_back_to_plain_draw():
    clips = [make_clip(100, f"{i}.wav", tags=(str(i),)) for i in range(10)]
    train, valid = split_by_file(clips, valid_fraction=0.2, seed=1)
    assert len(valid) == 2 and len(train) == 8


def test_split_single_clip_holds_out_its_tail():
    clip = make_clip(1000, tags=("x",), tag_vector=[1.0])
    train, valid = split_by_file([clip], valid_fraction=0.1)
    assert len(train[0]) == 900 and len(valid[0]) == 100
    np.testing.assert_array_equal(np.concatenate([train[0].codes, valid[0].codes]), clip.codes)
    assert train[0].tags == valid[0].tags == ("x",)


def test_split_rejects_bad_fraction():
    for fraction in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="valid_fraction"):
            split_by_file(clips_dataset(3), valid_fraction=fraction)


# ---------------------------------------------------------------------------------------------------
# Batches


def test_sampler_shapes_and_windows_come_from_clips():
    clips = [
        make_clip(5000, "a.wav", tags=("a",), tag_vector=[1, 0]),
        make_clip(3000, "b.wav", tag_vector=[0, 1]),
    ]
    sampler = BatchSampler(clips, n_tags=2, segment_length=200, receptive_field=56, batch_size=16, seed=1)
    x, tags = sampler.sample()
    assert x.shape == (16, 256) and x.dtype == np.int64
    assert tags.shape == (16, 2) and tags.dtype == np.float32
    for row, t in zip(x, tags):
        codes = clips[0].codes if t[0] == 1 else clips[1].codes
        start = (row[0] - codes[0]) % 256  # make_clip codes count up mod 256
        np.testing.assert_array_equal(row, (np.arange(256) + start) % 256)


def test_sampler_left_pads_short_clips_with_silence_code():
    clip = make_clip(30, value=7)
    for q in (256, 64):
        x, _ = BatchSampler([clip], 0, 40, 10, batch_size=3, seed=0, quantization_channels=q).sample()
        assert x.shape == (3, 50)
        assert (x[:, :20] == q // 2).all() and (x[:, 20:] == 7).all()
    assert mulaw_encode(np.zeros(1), 256)[0] == 128  # the silence code is μ-law of 0.0


def test_sampler_picks_clips_in_proportion_to_length():
    clips = [make_clip(9000, "long.wav", value=1), make_clip(1000, "short.wav", value=2)]
    x, _ = BatchSampler(clips, 0, 10, 10, batch_size=4000, seed=0).sample()
    share_long = np.mean(x[:, -1] == 1)
    assert abs(share_long - 0.9) < 0.03


def test_sampler_reproducible_and_state_round_trip():
    clips = [make_clip(4000), make_clip(2500, "b.wav")]
    a = BatchSampler(clips, 0, 100, 20, batch_size=4, seed=7)
    b = BatchSampler(clips, 0, 100, 20, batch_size=4, seed=7)
    np.testing.assert_array_equal(a.sample()[0], b.sample()[0])
    state = json.loads(json.dumps(a.get_state()))  # must survive a JSON checkpoint
    expected = [a.sample()[0] for _ in range(3)]
    c = BatchSampler(clips, 0, 100, 20, batch_size=4, seed=999)
    c.set_state(state)
    for batch in expected:
        np.testing.assert_array_equal(c.sample()[0], batch)
    assert not np.array_equal(BatchSampler(clips, 0, 100, 20, 4, seed=8).sample()[0], expected[0])


def test_sampler_rejects_bad_arguments():
    clip = make_clip(100)
    with pytest.raises(ValueError, match="n_tags=2"):
        BatchSampler([clip], 2, 10, 10, 2)
    with pytest.raises(ValueError, match="segment_length"):
        BatchSampler([clip], 0, 0, 10, 2)
    with pytest.raises(ValueError, match="outside 0..63"):
        BatchSampler([clip], 0, 10, 10, 2, quantization_channels=64)
    with pytest.raises(ValueError, match="no clips"):
        BatchSampler([], 0, 10, 10, 2)


def test_validation_batches_are_fixed_and_cover_each_clip():
    clips = [make_clip(5000, "a.wav", tag_vector=[1.0]), make_clip(60, "b.wav", value=3, tag_vector=[0.0])]
    batches = validation_batches(clips, 1, segment_length=1000, receptive_field=100, batch_size=2)
    again = validation_batches(clips, 1, segment_length=1000, receptive_field=100, batch_size=2)
    rows = np.concatenate([x for x, _ in batches])
    np.testing.assert_array_equal(rows, np.concatenate([x for x, _ in again]))
    assert rows.shape == (5, 1100)  # clip a: (5000 - 100) // 1000 = 4 rows; clip b: 1 padded row
    np.testing.assert_array_equal(rows[0], clips[0].codes[:1100])  # first row at the start ...
    np.testing.assert_array_equal(rows[3], clips[0].codes[-1100:])  # ... last row at the end
    assert (rows[4, :1040] == 128).all() and (rows[4, 1040:] == 3).all()
    assert [len(x) for x, _ in batches] == [2, 2, 1]
    tags = np.concatenate([t for _, t in batches])
    np.testing.assert_array_equal(tags[:, 0], [1, 1, 1, 1, 0])


def test_validation_batches_capped_but_every_clip_kept():
    clips = [make_clip(100_000, f"{i}.wav") for i in range(3)] + [make_clip(500, "tiny.wav")]
    batches = validation_batches(clips, 0, 100, 10, batch_size=8, max_rows=16)
    rows = sum(len(x) for x, _ in batches)
    assert 4 <= rows <= 16 + 4
    assert all(t is None for _, t in batches)


def test_unigram_bits():
    uniform = [Clip("u.wav", np.arange(256 * 4, dtype=np.int64) % 256)]
    assert unigram_bits(uniform) == pytest.approx(8.0)
    assert unigram_bits([make_clip(100, value=5)]) == pytest.approx(0.0)
    half = [make_clip(50, value=0), make_clip(50, "b.wav", value=1)]
    assert unigram_bits(half, quantization_channels=2) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        unigram_bits([])
