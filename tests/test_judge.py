"""The judge (minwave/judge.py) tells the real instruments apart and noise from them, whatever the
loudness; its benchmark (python -m minwave.bench judge) runs end to end on a tiny checkpoint."""

import json

import numpy as np
import pytest
import soundfile as sf

from minwave import WaveNet, WaveNetConfig, checkpoint, mulaw_decode, mulaw_encode
from minwave import judge as judge_module
from minwave.bench import judge as bench
from minwave.conditioning import NOTE_CHANNELS, Note
from minwave.data import load_dataset, split_by_file
from minwave.judge import NOISE, QUIET, VALID_FRACTION, Judge, build_judge, window_features, with_hiss
from minwave.synth import ensure_builtin_dataset, midi_to_hz, organ_note, pluck_note

RATE = 16000


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The built-in music, in the session's cache folder (the one conftest's builtin_cache points at)."""
    root = ensure_builtin_dataset(tmp_path_factory.getbasetemp() / "minwave-cache", RATE)
    return load_dataset(root, RATE, warn=lambda message: None)


@pytest.fixture(scope="module")
def fitted(dataset):
    """(judge, held_out report, held-out clips as float audio with their tags), fitted once per module."""
    judge, held_out = build_judge(dataset, RATE, seed=0)
    _, valid = split_by_file(dataset, VALID_FRACTION, 0)
    return judge, held_out, [(mulaw_decode(c.codes), c.tags[0]) for c in valid]


def test_the_judge_tells_held_out_real_clips_apart(fitted):
    judge, held_out, valid = fitted
    assert judge.classes == ["bell", "organ", "pluck", NOISE]
    assert set(held_out) == set(judge.classes) and len(valid) == sum(held_out[t]["clips"] for t in judge.classes[:-1])
    for label, row in held_out.items():
        assert row["clips"] >= 4, (label, row)  # 13 per class with 40 built-in files per instrument
        assert row["clip_accuracy"] >= 0.9, (label, row)  # measured: 1.0 for every class
        assert row["window_accuracy"] >= 0.8, (label, row)  # measured: 0.91 bell, 1.0 organ, 0.94 pluck, 1.0 noise


def noise(kind: str, level: float, seconds: float = 2.0, seed: int = 5) -> np.ndarray:
    """White or moving-average low-passed Gaussian noise at peak `level`, through μ-law (not the judge's
    own noise generator: a second recipe)."""
    x = np.random.default_rng(seed).standard_normal(int(seconds * RATE))
    if kind == "low":
        x = np.convolve(x, np.ones(12) / 12, mode="same")
    return mulaw_decode(mulaw_encode(level * x / np.abs(x).max()))


@pytest.mark.parametrize("kind", ["white", "low"])
@pytest.mark.parametrize("level", [0.02, 0.3, 1.0])
def test_noise_is_noise(fitted, kind, level):
    judge = fitted[0]
    assert judge.classify_clip(noise(kind, level)) == NOISE
    assert judge.windows(noise(kind, level)).count(NOISE) >= 7  # of 8 windows


def test_silence_is_noise_and_votes_nowhere(fitted):
    judge = fitted[0]
    assert judge.classify_clip(np.zeros(RATE)) == NOISE
    assert judge.windows(np.zeros(RATE)) == [QUIET] * 4


def test_loudness_does_not_matter(fitted):
    judge, _, valid = fitted
    for audio, tag in valid[::4]:  # one clip per instrument
        features, loud = window_features(audio, RATE)
        quiet_features, quiet_loud = window_features(0.1 * audio, RATE)
        np.testing.assert_allclose(quiet_features, features, atol=1e-6)
        assert (quiet_loud == loud).all()
        assert judge.classify_clip(0.1 * audio) == judge.classify_clip(audio) == tag
        assert judge.windows(0.1 * audio) == judge.windows(audio)


@pytest.mark.parametrize("colour", ["white", "low-passed"])
def test_an_instrument_with_hiss_is_still_that_instrument(fitted, colour):
    judge, _, valid = fitted
    rng = np.random.default_rng(3)
    said = [judge.classify_clip(with_hiss(audio, RATE, rng, colour, 20.0)) for audio, _ in valid[::2]]
    assert said == [tag for _, tag in valid[::2]]  # noise 20 dB below (measured: 97 % at 15 dB, 82-85 % at 10 dB)


def test_fit_rejects_what_it_cannot_use():
    clip = noise("white", 0.5, seconds=0.5)
    with pytest.raises(ValueError, match="judge's own class"):
        Judge.fit([clip], [NOISE], RATE)
    with pytest.raises(ValueError, match="odd"):
        Judge.fit([clip], ["hiss"], RATE, k=4)
    with pytest.raises(ValueError, match="one label per clip"):
        Judge.fit([clip, clip], ["hiss"], RATE)
    with pytest.raises(ValueError, match="mono clip"):
        window_features(np.zeros((2, 100)), RATE)


def test_build_judge_from_a_folder_of_your_own(tmp_path):
    """Tags from sub-folder names, the folder loaded at the given rate; several tags per clip refused."""
    for tag, voice in (("organ", organ_note), ("pluck", pluck_note)):
        (tmp_path / tag).mkdir()
        for i, pitch in enumerate((48, 52, 55)):
            audio = voice(midi_to_hz(pitch), 1.0, 8000, np.random.default_rng(i))
            sf.write(tmp_path / tag / f"{i}.wav", 0.5 * audio / np.abs(audio).max(), 8000)
    judge, held_out = build_judge(tmp_path, 8000, valid_fraction=0.34)
    assert judge.classes == ["organ", "pluck", NOISE] and judge.sample_rate == 8000
    assert {label: row["clips"] for label, row in held_out.items()} == {"organ": 1, "pluck": 1, NOISE: 1}
    with pytest.raises(ValueError, match="at 8000 Hz"):
        build_judge(load_dataset(tmp_path, 8000), 16000)
    (tmp_path / "tags.csv").write_text("file,tags\norgan/0.wav,organ;slow\n")
    with pytest.raises(ValueError, match="exactly one tag"):
        build_judge(tmp_path, 8000)


def tiny_checkpoint(path, n_tags=3, **local):
    config = WaveNetConfig(stacks=1, layers_per_stack=3, residual_channels=4, dilation_channels=4, skip_channels=8,
                           quantization_channels=32, n_tags=n_tags, **local)  # fmt: skip
    tags = ["bell", "organ", "pluck"][:n_tags]
    return checkpoint.save(path, WaveNet(config, seed=1), step=0, tag_vocab=tags)


@pytest.mark.slow
@pytest.mark.usefixtures("builtin_cache")
@pytest.mark.parametrize("local", [{}, {"condition": "notes", "cond_channels": NOTE_CHANNELS}], ids=["tags", "notes"])
def test_the_benchmark_runs_end_to_end(tmp_path, capsys, local):
    path = tiny_checkpoint(tmp_path / "tiny.npz", **local)  # a notes model plays synth.compose's melodies
    assert bench.main(["--checkpoint", str(path), "--clips", "1", "--seconds", "0.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["clips_per_tag"] == 1 and out["seconds"] == 0.5 and out["sample_rate"] == RATE
    assert set(out["judge_held_out"]) == {"bell", "organ", "pluck", NOISE}
    assert min(row["clip_accuracy"] for row in out["judge_held_out"].values()) >= 0.9
    for key in ("model_clips", "untrained_baseline"):
        assert set(out[key]) == {"bell", "organ", "pluck", "all"}
        for tag in ("bell", "organ", "pluck"):
            row = out[key][tag]
            assert sum(row["said"].values()) == 1 and 0 <= row["as_tag"] <= 1 and 0 <= row["median_periodicity"] <= 1
    assert out["untrained_baseline"]["all"]["noise"] == 1.0  # an untrained model makes noise
    if local:  # a notes model's ceiling: the synthesiser playing the same scores, judged as their tags
        assert out["rendered_scores"]["all"]["as_tag"] == 1.0
        gap = out["rendered_scores"]["bell"]["model_minus_rendered_db"]
        assert list(gap) == ["0-250 Hz", "250-500 Hz", "500-1000 Hz", "1000-2000 Hz", "2000-4000 Hz", "4000-8000 Hz"]
        assert max(map(abs, gap.values())) > 3  # an untrained model's hiss is not a bell's spectrum
        assert out["rendered_scores"]["bell"]["as_tag_windows"]["between"] == 1.0  # the synthesiser rings as a bell
        assert set(out["model_clips"]["bell"]["as_tag_windows"]) == {"onset", "between"}
        assert 4.5 < out["model_clips"]["bell"]["bits_since_onset"]["0-5 ms"] < 5.5  # untrained: about log2(Q = 32)
    else:
        assert "rendered_scores" not in out


def test_onset_shares_split_the_windows_at_the_notes_onsets(monkeypatch):
    """Windows of 0.25 s; notes start at 0.1 s and 0.6 s, so windows 0 and 2 hold an onset. The stub
    judge hears bell in both, and in 3 of the other 5 loud windows (a quiet one does not vote)."""

    class Stub:
        def windows(self, audio):
            return ["bell", "pluck", "bell", "pluck", QUIET, "bell", "bell", "bell"]

    notes = [Note(0.1, 0.3, 72), Note(0.6, 0.5, 74)]
    monkeypatch.setattr(bench, "compose", lambda tag, seconds, seed: notes)
    audio = np.zeros((2, 2 * RATE))  # two clips of 8 windows each
    assert bench.onset_shares(Stub(), "bell", audio, RATE, seed=0) == {"onset": 1.0, "between": 0.6}
    assert bench.onset_shares(Stub(), "organ", audio, RATE, seed=0) == {"onset": 0.0, "between": 0.0}
    monkeypatch.setattr(bench, "compose", lambda tag, seconds, seed: [])  # no onsets: no onset windows
    assert bench.onset_shares(Stub(), "bell", audio, RATE, seed=0) == {"onset": None, "between": 0.714}  # 5 of 7


def test_onset_bits_bins_the_loss_by_time_since_the_latest_onset(monkeypatch):
    """A stub model sure of every target in the first 5 ms after an onset (0 bits) and uniform over the
    256 codes elsewhere (8 bits): onset_bits puts exactly that in its bins, the targets before the first
    onset in none."""
    notes = [Note(0.1, 0.3, 72), Note(0.6, 0.5, 74)]
    monkeypatch.setattr(bench, "compose", lambda tag, seconds, seed: notes)

    def stub_logits(model, codes, tags, frames):
        n = codes.shape[1]
        logits = np.zeros((1, n, 256), dtype=np.float32)
        target_time = np.arange(1, n) / RATE  # logits[:, t] predicts codes[:, t+1]
        sure = np.zeros(n - 1, dtype=bool)
        for note in notes:
            sure |= (target_time >= note.onset_s) & (target_time < note.onset_s + 0.005)
        logits[0, np.flatnonzero(sure), codes[0, 1:][sure]] = 60.0
        return logits

    monkeypatch.setattr(bench, "teacher_forced_logits", stub_logits)
    model = WaveNet(WaveNetConfig(n_tags=3, condition="notes", cond_channels=NOTE_CHANNELS, sample_rate=RATE))
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (2, RATE))  # two clips of 1 s
    bits = bench.onset_bits(model, "bell", ["bell", "organ", "pluck"], audio, seed=0)
    assert list(bits) == ["0-5 ms", "5-20 ms", "20-100 ms", "100-250 ms", "250+ ms"]
    assert bits["0-5 ms"] == 0.0 and all(bits[k] == 8.0 for k in list(bits)[1:])


def test_the_benchmark_refuses_an_untagged_model(tmp_path, capsys):
    path = tiny_checkpoint(tmp_path / "plain.npz", n_tags=0)
    with pytest.raises(SystemExit, match="has no tags"):
        bench.main(["--checkpoint", str(path), "--clips", "1", "--seconds", "0.5"])
    path = tiny_checkpoint(tmp_path / "mel.npz", condition="mel", cond_channels=80)
    with pytest.raises(SystemExit, match="is conditioned on mel; give a tag-only or notes model"):
        bench.main(["--checkpoint", str(path), "--clips", "1", "--seconds", "0.5"])
    assert bench.main(["--checkpoint", str(tmp_path / "missing.npz")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_the_spectrum_gap_finds_the_band_a_clip_lacks():
    """The gap is the judge's envelope, model minus rendered, per octave band: a clip whose 3 kHz
    partial is 20 dB down is lowest in the 2-4 kHz band, where the partial's mel bands are."""
    rate, n = 16000, 8000
    t = np.arange(n) / rate
    rng = np.random.default_rng(0)
    full = np.stack([np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 3000 * t) + 0.01 * rng.standard_normal(n)] * 2)
    dull = np.stack(
        [np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t) + 0.01 * rng.standard_normal(n)] * 2
    )
    gap = bench.spectrum_gap(dull, full, rate)
    assert list(gap) == ["0-250 Hz", "250-500 Hz", "500-1000 Hz", "1000-2000 Hz", "2000-4000 Hz", "4000-8000 Hz"]
    assert min(gap, key=gap.get) == "2000-4000 Hz" and gap["2000-4000 Hz"] < -3  # 20 dB in 2 of its 8 mel bands
    assert all(0 <= gap[b] < 2 for b in gap if b != "2000-4000 Hz")  # the rest: the mean taken out, a little up
    assert all(v == 0 for v in bench.spectrum_gap(3 * full, full, rate).values())  # loudness-free


def test_window_envelopes_are_what_the_cepstra_are_made_of():
    """window_envelopes gives each window's envelope e_m: its DCT is window_features' c_1 … c_J, its mean
    is 0 (loudness-free), and its peak sits in the mel band centred on a tone's frequency."""
    rate = 16000
    t = np.arange(rate) / rate
    audio = np.sin(2 * np.pi * 1000 * t) * np.exp(-t)
    envelopes, loud = judge_module.window_envelopes(audio, rate)
    features, loud_too = judge_module.window_features(audio, rate)
    np.testing.assert_array_equal(loud, loud_too)
    M, J = judge_module.N_BANDS, judge_module.N_CEPSTRA
    dct = np.sqrt(2 / M) * np.cos(np.pi / M * np.outer(np.arange(1, J + 1), np.arange(M) + 0.5))
    np.testing.assert_allclose(envelopes @ dct.T, features[:, :J], atol=1e-9)
    np.testing.assert_allclose(envelopes.mean(axis=1), 0, atol=1e-9)
    centres = judge_module.band_centres(rate)
    assert len(centres) == M and np.all(np.diff(centres) > 0)
    assert np.abs(centres[envelopes.argmax(axis=1)] - 1000).max() < 100
