"""Local conditioning features (conditioning.py): the piano roll, the melody syntax, notes.csv and MIDI,
and the log-mel spectrogram against librosa (a dev dependency; those tests skip without it)."""

import math

import numpy as np
import pytest

from minwave import conditioning as cond
from minwave.conditioning import ConditioningError, Note
from minwave.data import frame_window

SR, HOP = 16000, 256


# ------------------------------------------------------------------------------------------ piano roll
def test_piano_roll_sounding_fractions_and_onsets():
    # C4 (60) from sample 128 (half-way into frame 0) to sample 640 (a quarter into frame 2)
    notes = [Note(128 / SR, 512 / SR, 60), Note(3 * HOP / SR, HOP / SR, 21)]
    roll = cond.piano_roll(notes, n_samples=5 * HOP - 10, hop=HOP, sample_rate=SR)
    assert roll.shape == (5, 176) and roll.dtype == np.float32
    p = 60 - cond.PITCH_LOW
    np.testing.assert_allclose(roll[:, p], [0.5, 1.0, 0.5, 0.0, 0.0])
    np.testing.assert_array_equal(roll[:, 88 + p], [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(roll[:, 0], [0, 0, 0, 1, 0])  # A0, the lowest key, for frame 3 exactly
    np.testing.assert_array_equal(roll[:, 88], [0, 0, 0, 1, 0])
    assert roll.sum() == pytest.approx(0.5 + 1 + 0.5 + 1 + 1 + 1)  # nothing else is set


def test_piano_roll_cuts_notes_at_the_end_and_caps_overlaps():
    notes = [Note(0.0, 10.0, 69), Note(0.0, 10.0, 69), Note(9.0, 1.0, 70)]
    roll = cond.piano_roll(notes, n_samples=2 * HOP, hop=HOP, sample_rate=SR)
    assert roll.shape == (2, 176)
    np.testing.assert_array_equal(roll[:, 69 - 21], [1, 1])  # two notes of one pitch: still 1
    assert roll[:, 70 - 21].sum() == 0 and roll[:, 88 + 70 - 21].sum() == 0  # after the end: ignored


@pytest.mark.parametrize("pitch", [20, 109, 60.5])
def test_piano_roll_rejects_pitches_outside_the_keyboard(pitch):
    with pytest.raises(ConditioningError, match="outside the piano roll's range 21 … 108"):
        cond.piano_roll([Note(0.0, 1.0, pitch)], SR, HOP, SR)


# ------------------------------------------------------------------------------------- melody syntax
@pytest.mark.parametrize(
    "name,number", [("C4", 60), ("A4", 69), ("F#3", 54), ("Bb2", 46), ("c-1", 0), ("B#3", 60), ("Cb4", 59)]
)
def test_note_names(name, number):
    assert cond.note_number(name) == number


def test_note_name_round_trip():
    assert [cond.note_name(p) for p in (21, 60, 61, 108)] == ["A0", "C4", "C#4", "C8"]
    for p in range(21, 109):
        assert cond.note_number(cond.note_name(p)) == p


def test_parse_melody_with_a_rest():
    notes = cond.parse_melody("C4:0.5 E4:0.5  R:0.25\tG4:1")
    assert notes == [Note(0.0, 0.5, 60), Note(0.5, 0.5, 64), Note(1.25, 1.0, 67)]
    assert cond.notes_duration_s(notes) == 2.25


@pytest.mark.parametrize(
    "text,match",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("C4", "'C4' has no duration"),
        ("C4:", "no duration"),
        ("C4:0", "no duration"),
        ("C4:-1", "no duration"),
        ("C4:nan", "no duration"),
        ("C4:inf", "no duration"),
        ("C4:abc", "no duration"),
        ("H4:1", "'H4:1' does not start with a note name"),
        ("C:1", "does not start with a note name"),
        ("C#b4:1", "does not start with a note name"),
        ("C4,E4:1", "does not start with a note name"),
        ("C9:1", "MIDI pitch 120 is outside"),
        ("R:1", "only rests"),
    ],
)
def test_parse_melody_errors_are_one_line(text, match):
    with pytest.raises(ConditioningError, match=match) as info:
        cond.parse_melody(text)
    assert "\n" not in str(info.value)


# -------------------------------------------------------------------------------------------- files
def test_notes_csv_round_trip(tmp_path):
    notes = [Note(0.0, 0.25, 60), Note(0.25, 1.5, 67)]
    path = tmp_path / "song.notes.csv"
    cond.write_notes_csv(path, notes)
    assert path.read_text().splitlines()[0] == "onset_s,duration_s,midi_pitch"
    assert cond.read_notes_csv(path) == notes
    assert cond.read_notes(path) == notes
    (tmp_path / "song.wav").write_bytes(b"")
    assert cond.notes_path_for(tmp_path / "song.wav") == path
    assert cond.notes_path_for(tmp_path / "other.wav") is None


@pytest.mark.parametrize(
    "text,match",
    [
        ("", "must start with the header"),
        ("onset,duration,pitch\n", "must start with the header"),
        ("onset_s,duration_s,midi_pitch\n", "holds no notes"),
        ("onset_s,duration_s,midi_pitch\n0,1\n", "line 2: expected"),
        ("onset_s,duration_s,midi_pitch\n\n0,x,60\n", "line 3: expected"),
        ("onset_s,duration_s,midi_pitch\n-1,1,60\n", "line 2: expected"),
        ("onset_s,duration_s,midi_pitch\n0,0,60\n", "line 2: expected"),
        ("onset_s,duration_s,midi_pitch\n0,1,130\n", "line 2: MIDI pitch 130"),
    ],
)
def test_notes_csv_errors(tmp_path, text, match):
    path = tmp_path / "bad.notes.csv"
    path.write_text(text)
    with pytest.raises(ConditioningError, match=match):
        cond.read_notes_csv(path)


def test_notes_csv_missing_file(tmp_path):
    with pytest.raises(ConditioningError, match="cannot read notes file"):
        cond.read_notes_csv(tmp_path / "nope.csv")


def test_midi_file_through_mido(tmp_path):
    mido = pytest.importorskip("mido")
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))  # 120 bpm: a beat is 0.5 s
    track.append(mido.Message("note_on", note=60, velocity=90, time=0))
    track.append(mido.Message("note_on", note=36, velocity=90, channel=9, time=0))  # a drum: ignored
    track.append(mido.Message("note_off", note=60, velocity=0, time=480))
    track.append(mido.Message("note_on", note=64, velocity=90, time=240))
    track.append(mido.Message("note_on", note=64, velocity=0, time=960))  # velocity 0 ends a note
    path = tmp_path / "song.mid"
    midi.save(path)
    notes = cond.read_notes(path)
    assert [n.pitch for n in notes] == [60, 64]
    np.testing.assert_allclose([(n.onset_s, n.duration_s) for n in notes], [(0.0, 0.5), (0.75, 1.0)], atol=1e-9)
    assert cond.notes_path_for(tmp_path / "song.wav") == path


def test_bad_midi_file_is_one_line(tmp_path):
    pytest.importorskip("mido")
    path = tmp_path / "bad.mid"
    path.write_bytes(b"not a midi file")
    with pytest.raises(ConditioningError, match="cannot read MIDI file"):
        cond.read_midi(path)


# ------------------------------------------------------------------------------------------ log-mel
def test_mel_scale_round_trip():
    f = np.array([0.0, 40.0, 999.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(cond.mel_to_hz(cond.hz_to_mel(f)), f, rtol=1e-12, atol=1e-9)
    assert cond.hz_to_mel(1000.0) == pytest.approx(15.0)  # 1 kHz is 15 mels on the Slaney scale


def test_mel_filterbank_against_librosa():
    librosa = pytest.importorskip("librosa")
    for sr, n_fft, n_mels, fmin in [(16000, 1024, 80, 40.0), (22050, 512, 40, 0.0)]:
        ours = cond.mel_filterbank(sr, n_fft, n_mels, fmin, sr / 2)
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=sr / 2, dtype=np.float64)
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)


def test_log_mel_against_librosa():
    """Our frames are centred on the middle of their hop: librosa with center=False on the same padding."""
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(0)
    t = np.arange(7000) / SR
    x = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))
    p = cond.mel_parameters(SR, HOP, 80)
    ours = cond.log_mel(x, **p)  # (F, 80)
    F = cond.n_frames(len(x), HOP)
    left = p["n_fft"] // 2 - HOP // 2
    padded = np.pad(x, (left, (F - 1) * HOP + p["n_fft"] - left - len(x)))
    mel = librosa.feature.melspectrogram(
        y=padded, sr=SR, n_fft=p["n_fft"], hop_length=HOP, center=False, window="hann", power=2.0,
        n_mels=80, fmin=p["fmin"], fmax=p["fmax"], htk=False, norm="slaney", dtype=np.float64,
    ).T  # fmt: skip
    assert ours.shape == mel.shape == (F, 80)
    np.testing.assert_allclose(ours, np.log(np.maximum(mel, p["floor"])), rtol=0, atol=1e-9)


def test_log_mel_frames_are_centred_on_their_samples():
    """A click at sample s shows up most in frame s // hop."""
    for s in (0, 300, 1000, 2047):
        x = np.zeros(2048)
        x[s] = 1.0
        lm = cond.log_mel(x, **cond.mel_parameters(SR, HOP, 40))
        assert lm.shape == (8, 40)
        assert int(np.argmax(lm.sum(axis=1))) == s // HOP


def test_mel_features_scale_and_floor():
    silence = cond.mel_features(np.zeros(1000), SR, HOP, 80)
    assert silence.shape == (4, 80) and silence.dtype == np.float32
    np.testing.assert_allclose(silence, (math.log(cond.LOG_MEL_FLOOR) - cond.LOG_MEL_SHIFT) / cond.LOG_MEL_SCALE)
    tone = cond.mel_features(0.8 * np.sin(np.arange(16000) * 2 * np.pi * 440 / SR), SR, HOP, 80)
    assert -0.1 < tone.min() and tone.max() < 0.3  # about -0.1 … 0.25, as documented


def test_mel_filterbank_rejects_bad_band():
    with pytest.raises(ConditioningError, match="fmin < fmax"):
        cond.mel_filterbank(16000, 1024, 80, 100.0, 9000.0)


# ------------------------------------------------------------------------------------- frame windows
@pytest.mark.parametrize("start,length", [(0, 10), (300, 600), (-5, 20), (1200, 300), (-600, 100)])
def test_frame_window_equals_the_clip_frames_with_zero_padding(start, length):
    frames = np.arange(1, 6 * 3 + 1, dtype=np.float32).reshape(6, 3)  # 6 frames, no zeros
    window, offset = frame_window(frames, start, length, hop=100, context=1)
    padded = np.concatenate([np.zeros((10, 3)), frames, np.zeros((10, 3))])  # frames -10 … 15
    for i in range(length):
        sample = start + i
        f_clip = sample // 100
        f_win = (offset + i) // 100
        np.testing.assert_array_equal(window[f_win], padded[f_clip + 10])
        for d in (-1, 1):  # the context frames either side are there too
            np.testing.assert_array_equal(window[f_win + d], padded[f_clip + 10 + d])


# ------------------------------------------------------------------------------- the built-in scores
def test_builtin_clips_come_with_their_notes(builtin_cache):
    """Every built-in clip has a notes.csv, and an organ note's spectrum peaks at the note's pitch."""
    import soundfile as sf

    from minwave.synth import CLIPS_PER_INSTRUMENT, INSTRUMENTS, ensure_builtin_dataset, midi_to_hz

    folder = ensure_builtin_dataset()
    wavs = sorted(folder.glob("*.wav"))
    assert len(wavs) == len(INSTRUMENTS) * CLIPS_PER_INSTRUMENT
    checked = 0
    for wav in wavs:
        notes = cond.read_notes(cond.notes_path_for(wav))
        x, sr = sf.read(str(wav))
        end = cond.notes_duration_s(notes)
        assert [n.onset_s for n in notes] == sorted(n.onset_s for n in notes)
        assert 0 < len(x) / sr - end < 0.6  # the clip is the notes plus a release (a bell rings 0.5 s)
        if not wav.name.startswith("organ"):
            continue
        for n in notes:
            if n.duration_s < 0.25:
                continue
            seg = x[int((n.onset_s + 0.08) * sr) : int((n.onset_s + n.duration_s - 0.02) * sr)]
            spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), 8 * len(seg)))
            peak_hz = np.argmax(spectrum) * sr / (8 * len(seg))
            assert abs(12 * np.log2(peak_hz / midi_to_hz(n.pitch))) < 0.3, (wav.name, n)
            checked += 1
    assert checked > 30


# ------------------------------------------------------------------------------- conditioned batches
def _clips_and_frames(hop, lengths=(1000, 130, 2500)):
    from minwave.data import Clip

    rng = np.random.default_rng(0)
    clips = [Clip(f"c{i}.wav", rng.integers(0, 32, n)) for i, n in enumerate(lengths)]
    frames = [rng.standard_normal((-(-n // hop), 3)).astype(np.float32) for n in lengths]
    return clips, frames


def _check_rows(clips, frames, hop, context, x, cond, row_length):
    """Every row is a clip's codes at a frame-aligned start, and its frames are that start's window."""
    for row, window in zip(x, cond):
        hits = []
        for clip, f in zip(clips, frames):
            for s in range(-row_length // hop * hop, len(clip) - row_length + 1, hop):  # starts that fit
                expected = np.full(row_length, 16)
                expected[max(0, -s) :] = clip.codes[max(0, s) : s + row_length]
                if np.array_equal(row, expected):
                    w, offset = frame_window(f, s, row_length, hop, context)
                    hits.append(np.array_equal(window, w) and offset == context * hop)
        assert any(hits)


def test_local_batch_sampler_rows_are_aligned_with_their_frames():
    from minwave.data import LocalBatchSampler

    hop, context, rf, seg = 40, 1, 50, 150
    clips, frames = _clips_and_frames(hop)
    sampler = LocalBatchSampler(clips, frames, hop, context, 0, seg, rf, 8, seed=3, quantization_channels=32)
    assert sampler.cond_offset == 40
    x, tags, cond = sampler.sample()
    assert tags is None and x.shape == (8, 200) and cond.shape == (8, (200 - 1) // hop + 1 + 2, 3)
    _check_rows(clips, frames, hop, context, x, cond, 200)
    # a rank of a sharded sampler builds exactly its rows of the same batch
    half = LocalBatchSampler(clips, frames, hop, context, 0, seg, rf, 8, seed=3, quantization_channels=32, shard=(1, 2))
    again = LocalBatchSampler(clips, frames, hop, context, 0, seg, rf, 8, seed=3, quantization_channels=32)
    x2, _, cond2 = again.sample()
    xh, _, condh = half.sample()
    np.testing.assert_array_equal(xh, x2[4:])
    np.testing.assert_array_equal(condh, cond2[4:])


def test_local_validation_batches_cover_every_clip_and_are_fixed():
    from minwave.data import local_validation_batches

    hop, context = 40, 1
    clips, frames = _clips_and_frames(hop)
    batches = local_validation_batches(clips, frames, hop, context, 0, 150, 50, 4, 32)
    again = local_validation_batches(clips, frames, hop, context, 0, 150, 50, 4, 32)
    rows = np.concatenate([b[0] for b in batches])
    assert len(rows) >= len(clips)
    for (x, t, c), (x2, _, c2) in zip(batches, again):
        assert t is None
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(c, c2)
        _check_rows(clips, frames, hop, context, x, c, 200)


def test_local_batches_reject_frames_that_do_not_fit():
    from minwave.data import LocalBatchSampler

    clips, frames = _clips_and_frames(40)
    with pytest.raises(ValueError, match="do not cover 130 samples at hop 40"):
        LocalBatchSampler(clips, [frames[0]] * 3, 40, 1, 0, 150, 50, 8, quantization_channels=32)
    with pytest.raises(ValueError, match="2 frame arrays for 3 clips"):
        LocalBatchSampler(clips, frames[:2], 40, 1, 0, 150, 50, 8, quantization_channels=32)


def test_the_benchmarks_pitch_judge(builtin_cache):
    """bench.notes.pitch_accuracy (librosa.yin against the score) passes the real organ and pluck clips
    and fails them when the score is a semitone off."""
    pytest.importorskip("librosa")
    import soundfile as sf

    from minwave.bench.notes import pitch_accuracy
    from minwave.synth import ensure_builtin_dataset

    folder = ensure_builtin_dataset()
    for name in ("organ_00.wav", "pluck_01.wav"):
        audio, sr = sf.read(str(folder / name))
        notes = cond.read_notes(cond.notes_path_for(folder / name))
        right, judged = pitch_accuracy(audio, sr, notes)
        wrong, _ = pitch_accuracy(audio, sr, [n._replace(pitch=n.pitch + 1) for n in notes])
        assert judged > 100 and right > 0.9 and wrong < 0.1, (name, right, wrong)


def test_tonal_notes_counts_each_noisy_note(builtin_cache):
    """bench.notes.tonal_notes scores every note on its own: all of a real organ clip's notes are tonal,
    and a note whose span is replaced by noise of the same loudness is the one that stops counting."""
    import soundfile as sf

    from minwave.bench.notes import ATTACK_S, tonal_notes
    from minwave.synth import ensure_builtin_dataset

    folder = ensure_builtin_dataset()
    audio, sr = sf.read(str(folder / "organ_00.wav"))
    notes = cond.read_notes(cond.notes_path_for(folder / "organ_00.wav"))
    tonal, judged = tonal_notes(audio, sr, notes)
    assert judged >= 5 and tonal == judged, (tonal, judged)
    noisy = audio.copy()
    for n in notes[1:3]:  # two notes' spans become noise as loud as they were
        span = slice(int((n.onset_s + ATTACK_S) * sr), int((n.onset_s + n.duration_s) * sr))
        noisy[span] = np.random.default_rng(0).standard_normal(span.stop - span.start) * noisy[span].std()
    assert tonal_notes(noisy, sr, notes) == (judged - 2, judged)
    assert tonal_notes(audio[: int(notes[1].onset_s * sr)], sr, notes)[1] == 1  # notes past the end: not judged


def test_channels_per_conditioning_type():
    assert cond.channels("notes") == 176 and cond.channels("mel") == 80 and cond.channels("mel", 40) == 40
    with pytest.raises(ConditioningError, match="conditioning type must be one of"):
        cond.channels("midi")


def test_onset_rows_hold_a_whole_onset_frame_in_their_predicted_samples():
    """--onset-rows 0.5: rows 0 … 3 of 8 hold one of the notes' onset frames within the predicted samples
    (every onset is drawn, clips without one never are); the other rows of the first batch, and every
    batch of a sampler at 0, are the uniform rows; the ranks' shards add up to one process's batch."""
    from minwave.conditioning import onset_frames, piano_roll
    from minwave.data import Clip, LocalBatchSampler

    hop, context, rf, seg, Q = 40, 1, 50, 150, 32768
    lengths = (2000, 3000, 400)
    clips = [Clip(f"c{i}.wav", np.arange(n) + 10000 * i) for i, n in enumerate(lengths)]  # a code names its place
    notes = [[Note(0.6, 0.1, 60), Note(1.25, 0.2, 64)], [Note(0.2, 0.5, 67)], []]  # at 1000 Hz: frames 15, 31; 5
    frames = [piano_roll(n, m, hop, 1000) for n, m in zip(notes, lengths)]
    onsets = [onset_frames(f) for f in frames]
    assert [o.tolist() for o in onsets] == [[15, 31], [5], []]

    def sampler(share, shard=(0, 1)):
        return LocalBatchSampler(
            clips, frames, hop, context, 0, seg, rf, 8, seed=3, quantization_channels=Q, shard=shard,
            onsets=onsets, onset_rows=share,
        )  # fmt: skip

    def plain():  # the sampler without onset rows
        return LocalBatchSampler(clips, frames, hop, context, 0, seg, rf, 8, seed=3, quantization_channels=Q)

    drawn, at = set(), sampler(0.5)
    first = at.sample()[0]
    np.testing.assert_array_equal(first[4:], plain().sample()[0][4:])  # drawn before the onset rows' draws
    for x in [first] + [at.sample()[0] for _ in range(39)]:
        for row in x[:4]:
            clip, start = int(row[-1] // 10000), int(row[-1] % 10000 + 1 - len(row))  # the row's clip and start
            heard = [f for f in onsets[clip] if start + rf <= f * hop and (f + 1) * hop <= start + len(row)]
            assert heard, (clip, start)
            drawn.update((clip, f) for f in heard)
    assert drawn == {(0, 15), (0, 31), (1, 5)}
    uniform, zero = plain(), sampler(0)
    for _ in range(3):
        np.testing.assert_array_equal(uniform.sample()[0], zero.sample()[0])
    assert sampler(0.01).onset_rows == 1 and sampler(1).onset_rows == 8  # any share > 0 is at least one row
    whole, halves = sampler(0.5), [sampler(0.5, (r, 2)) for r in (0, 1)]
    np.testing.assert_array_equal(np.concatenate([h.sample()[0] for h in halves]), whole.sample()[0])

    with pytest.raises(ValueError, match="use a segment of at least 70 samples"):
        LocalBatchSampler(
            clips, frames, hop, context, 0, 10, rf, 8, quantization_channels=Q, onsets=onsets, onset_rows=1
        )
    with pytest.raises(ValueError, match="hold no note onsets"):
        LocalBatchSampler(
            clips, frames, hop, context, 0, seg, rf, 8, quantization_channels=Q, onsets=[[]] * 3, onset_rows=1
        )
