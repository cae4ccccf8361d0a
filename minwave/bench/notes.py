"""Local-conditioning benchmark: `python -m minwave.bench notes`, docs/conditioning.md reports it.

    python -m minwave.bench notes speed                            # fast sampler, with and without frames
    python -m minwave.bench notes pitch --checkpoint RUN            # a notes model plays unseen melodies
    python -m minwave.bench notes vocode --checkpoint MEL_RUN [--baseline TAG_RUN]   # resynthesis

speed: the fast sampler on WaveNetConfig() (2 × 10 layers, R = D = 32, S = Q = 256), batch 1, one
thread, with no conditioning and with 80-band mel conditioning (hop 256), 16000 samples each; the best
of 3 CPU times of the calling thread (time.thread_time, steady on a shared machine). The conditioned
run includes projecting the frames once per call.

pitch: the checkpoint (trained with --condition notes) plays MELODIES, which are not in the built-in
music (its melodies are random walks on random scales; these are fixed arpeggios), once per tag with
the fast sampler. An independent tracker, librosa.yin (a dev dependency), estimates f0 every 256
samples; a frame is judged when it is voiced (RMS >= -40 dBFS and within 30 dB of the loudest frame)
and lies inside a requested note, at least ATTACK_S after its onset and RELEASE_S before its end. Pitch
accuracy is the fraction of judged frames within ±50 cents of the note. Periodicity is
minwave.quality's (median normalised-autocorrelation peak over voiced frames). A clip's median hides a
few noisy notes among long tonal ones, so tonal notes counts them one by one: each note's span (the
same ATTACK_S after its onset to RELEASE_S before its end) scored by minwave.quality on its own, tonal at a
periodicity of TONAL or more (a held note scores 0.9–1, noise 0.1–0.2). The same numbers for the
built-in training clips (their own notes) are the reference.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

MELODIES = {  # per tag: a tune in that instrument's register, absent from the training data
    "organ": "C4:0.4 E4:0.4 G4:0.4 C5:0.8 G4:0.4 E4:0.4 C4:0.8",
    "pluck": "G2:0.4 B2:0.4 D3:0.4 G3:0.8 D3:0.4 B2:0.4 G2:0.8",
    "bell": "C5:0.4 E5:0.4 G5:0.4 C6:0.8 G5:0.4 E5:0.4 C5:0.8",
}
ATTACK_S = 0.05
RELEASE_S = 0.02  # a note is judged up to this long before its end
TOLERANCE_CENTS = 50.0
TONAL = 0.8  # a note's own periodicity at or above this counts it as tonal


def judged_span(note) -> tuple[float, float]:
    """(start, end) in seconds of the part of a note that is judged: ATTACK_S after its onset to RELEASE_S
    before its end."""
    return note.onset_s + ATTACK_S, note.onset_s + note.duration_s - RELEASE_S


def pitch_accuracy(audio: np.ndarray, sample_rate: int, notes, hop: int = 256) -> tuple[float, int]:
    """(fraction of judged frames within ±50 cents of their note, judged frames); module docstring."""
    import librosa

    from ..synth import midi_to_hz

    audio = np.asarray(audio, dtype=np.float64)
    f0 = librosa.yin(audio, fmin=50, fmax=2000, sr=sample_rate, frame_length=2048, hop_length=hop)  # (F,)
    rms = librosa.feature.rms(y=audio, frame_length=2048, hop_length=hop)[0]  # (F,) same centred frames
    times = np.arange(len(f0)) * hop / sample_rate  # frame f is centred on sample f·hop
    voiced = (rms >= 10 ** (-40 / 20)) & (rms >= rms.max() * 10 ** (-30 / 20))
    expected = np.full(len(f0), np.nan)
    for n in notes:
        start_s, end_s = judged_span(n)
        inside = (times >= start_s) & (times <= end_s)
        expected[inside] = midi_to_hz(n.pitch)
    judged = voiced & np.isfinite(expected)
    if not judged.any():
        return 0.0, 0
    cents = 1200 * np.log2(f0[judged] / expected[judged])
    return float(np.mean(np.abs(cents) <= TOLERANCE_CENTS)), int(judged.sum())


def tonal_notes(audio: np.ndarray, sample_rate: int, notes) -> tuple[int, int]:
    """(notes whose own span has periodicity >= TONAL, notes judged); module docstring. A note whose
    span is shorter than one of minwave.quality's frames, or that lies past the audio's end, is not judged."""
    from ..quality import FRAME_S, quality

    tonal = judged = 0
    for n in notes:
        start_s, end_s = judged_span(n)
        start, stop = int(round(start_s * sample_rate)), min(int(round(end_s * sample_rate)), len(audio))
        if stop - start < FRAME_S * sample_rate:
            continue
        judged += 1
        tonal += int(quality(audio[start:stop], sample_rate).periodicity >= TONAL)
    return tonal, judged


def play_notes(model, notes, n: int, tag_vector, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
    """The model plays `notes` for n samples with a tag, as `generate --melody` does -> float32 audio (n,)."""
    from .. import conditioning
    from ..mulaw import mulaw_decode
    from ..sampling import generate

    c = model.config
    frames = conditioning.note_features(notes, n, c.cond_hop, c.sample_rate)  # (F, C)
    codes = generate(model, n, tags=tag_vector, cond=frames, seed=seed, temperature=temperature)
    return mulaw_decode(np.asarray(codes)[0], c.quantization_channels).astype(np.float32)


def pitch_report(
    checkpoint_path: str, seed: int = 0, reference: bool = True, temperature: float = 1.0, composed: int = 4
) -> dict:
    """Pitch accuracy and periodicity of the model's rendering of MELODIES, per tag (and of the data);
    and over `composed` melodies of 4 s per tag from the built-in composer (synth.compose(tag, 4, seed + k),
    new melodies that walk the instrument's whole register), the judged frames pooled."""
    import soundfile as sf

    from .. import checkpoint, conditioning
    from ..quality import quality
    from ..synth import INSTRUMENTS, compose, ensure_builtin_dataset

    ckpt = checkpoint.load(checkpoint_path)
    c = ckpt.config
    if c.condition != "notes":
        raise SystemExit(f"{checkpoint_path}: not a notes-conditioned checkpoint (condition {c.condition!r})")
    rate = c.sample_rate
    report = {
        "checkpoint": str(checkpoint_path),
        "step": ckpt.step,
        "metrics": ckpt.metrics,
        "temperature": temperature,
    }
    report["tags"] = {}
    model = ckpt.generation_model()  # the averaged weights, built once
    for tag, melody in MELODIES.items():
        if tag not in ckpt.tag_vocab:
            continue
        notes = conditioning.parse_melody(melody)
        audio = play_notes(
            model, notes, conditioning.notes_samples(notes, rate), ckpt.tag_vector([tag]), seed, temperature
        )
        accuracy, judged = pitch_accuracy(audio, rate, notes)
        q = quality(audio, rate)
        tonal, notes_judged = tonal_notes(audio, rate, notes)
        report["tags"][tag] = {
            "pitch_accuracy": accuracy,
            "judged_frames": judged,
            "periodicity": q.periodicity,
            "tonal_notes": f"{tonal}/{notes_judged}",
        }
    report["composed"] = {}
    for tag in (t for t in INSTRUMENTS if t in ckpt.tag_vocab and composed > 0):
        in_tune, judged_all, periodicity, tonal_all, notes_all = 0.0, 0, [], 0, 0
        for k in range(composed):
            notes = compose(tag, 4.0, seed + k)
            n = conditioning.notes_samples(notes, rate)
            audio = play_notes(model, notes, n, ckpt.tag_vector([tag]), seed + k, temperature)
            accuracy, judged = pitch_accuracy(audio, rate, notes)
            in_tune, judged_all = in_tune + accuracy * judged, judged_all + judged
            periodicity.append(quality(audio, rate).periodicity)
            tonal, notes_judged = tonal_notes(audio, rate, notes)
            tonal_all, notes_all = tonal_all + tonal, notes_all + notes_judged
        report["composed"][tag] = {
            "pitch_accuracy": in_tune / max(judged_all, 1),
            "judged_frames": judged_all,
            "periodicity": float(np.median(periodicity)),
            "tonal_notes": f"{tonal_all}/{notes_all}",
            "melodies": composed,
        }
    if reference:  # the training audio itself, through the same measures
        folder = ensure_builtin_dataset(sample_rate=rate)
        ref = {}
        for tag in MELODIES:
            acc, per, tonal_all, notes_all = [], [], 0, 0
            for wav in sorted(folder.glob(f"{tag}_*.wav")):
                audio, _ = sf.read(str(wav))
                notes = conditioning.read_notes(conditioning.notes_path_for(wav))
                acc.append(pitch_accuracy(audio, rate, notes)[0])
                per.append(quality(audio, rate).periodicity)
                tonal, notes_judged = tonal_notes(audio, rate, notes)
                tonal_all, notes_all = tonal_all + tonal, notes_all + notes_judged
            ref[tag] = {
                "pitch_accuracy": float(np.median(acc)),
                "periodicity": float(np.median(per)),
                "tonal_notes": f"{tonal_all}/{notes_all}",
            }
        report["training_audio_median"] = ref
    return report


def vocode_report(checkpoint_path: str, baseline_path: str | None = None, seconds: float = 3.0, seed: int = 0) -> dict:
    """A mel-conditioned checkpoint resynthesises held-out built-in clips (the run's own validation
    split) from their log-mel spectrograms: the mean |ln mel| difference to the original (natural-log
    units, all frames and bands) and the periodicity of original and resynthesis; with baseline_path,
    the periodicity of that (tag-only) checkpoint's free-running output for the same tags and length."""
    from .. import checkpoint, conditioning
    from ..data import load_audio, load_dataset, split_by_file
    from ..mulaw import mulaw_decode
    from ..quality import quality
    from ..sampling import generate
    from ..synth import ensure_builtin_dataset

    ckpt = checkpoint.load(checkpoint_path)
    c = ckpt.config
    if c.condition != "mel":
        raise SystemExit(f"{checkpoint_path}: not a mel-conditioned checkpoint (condition {c.condition!r})")
    rate = c.sample_rate
    root = ensure_builtin_dataset(sample_rate=rate)
    dataset = load_dataset(root, rate, c.quantization_channels, trim_db=None, warn=lambda m: None)
    _, valid = split_by_file(dataset, ckpt.train_args["valid_fraction"], ckpt.train_args["seed"])
    baseline = checkpoint.load(baseline_path) if baseline_path else None
    if baseline is not None and baseline.config.condition:
        raise SystemExit(f"--baseline {baseline_path}: not a tag-only checkpoint ({baseline.config.condition!r})")
    rows = []
    for clip in valid:
        original = load_audio(root / clip.path, rate)[: int(seconds * rate)]
        spectrogram = conditioning.mel_features(original, rate, c.cond_hop, c.cond_channels)  # (F, M)
        tags = ckpt.tag_vector(list(clip.tags))
        again = mulaw_decode(
            generate(ckpt.generation_model(), len(original), tags=tags, cond=spectrogram, seed=seed)[0]
        )
        distance = np.abs(conditioning.mel_features(again, rate, c.cond_hop, c.cond_channels) - spectrogram)
        row = {
            "clip": clip.path,
            "log_mel_distance": float(distance.mean() * conditioning.LOG_MEL_SCALE),
            "periodicity_original": quality(original, rate).periodicity,
            "periodicity_resynthesised": quality(again, rate).periodicity,
        }
        if baseline is not None:
            free = mulaw_decode(
                generate(
                    baseline.generation_model(), len(original), tags=baseline.tag_vector(list(clip.tags)), seed=seed
                )[0]
            )
            row["periodicity_tag_only_free_running"] = quality(free, rate).periodicity
            row["log_mel_distance_tag_only"] = float(
                np.abs(conditioning.mel_features(free, rate, c.cond_hop, c.cond_channels) - spectrogram).mean()
                * conditioning.LOG_MEL_SCALE
            )
        rows.append(row)
    medians = {k: float(np.median([r[k] for r in rows])) for k in rows[0] if k != "clip"}
    return {
        "checkpoint": str(checkpoint_path),
        "step": ckpt.step,
        "baseline": baseline_path,
        "median": medians,
        "clips": rows,
    }


def speed_report(seconds: float = 2.0, repeats: int = 7) -> dict:
    """CPU seconds of the fast sampler for `seconds` of audio, batch 1: without conditioning, with 80-band
    mel frames, and with notes (a melody of one key at a time: the piano roll and the period tap)."""
    from .. import WaveNet, WaveNetConfig, conditioning
    from ..sampling import generate

    n = int(seconds * 16000)
    plain = WaveNet(WaveNetConfig(), seed=0)
    mel = WaveNet(WaveNetConfig(condition="mel", cond_channels=80, cond_hop=256), seed=0)
    notes = WaveNet(WaveNetConfig(condition="notes", cond_channels=conditioning.NOTE_CHANNELS, cond_hop=256), seed=0)
    mel_frames = np.random.default_rng(0).standard_normal((-(-n // 256), 80)).astype(np.float32)
    melody = [conditioning.Note(0.25 * i, 0.25, 48 + (7 * i) % 24) for i in range(int(4 * seconds) + 1)]
    note_frames = conditioning.note_features(melody, n, 256, 16000)
    generate(plain, 64)  # compile (or load) the kernels first
    generate(mel, 64, cond=mel_frames[:1])
    generate(notes, 64, cond=note_frames[:1])
    models = (("plain", plain, {}), ("mel80", mel, {"cond": mel_frames}), ("notes", notes, {"cond": note_frames}))
    times = {name: [] for name, _, _ in models}
    for _ in range(repeats):  # interleaved, so that a slow spell of a shared machine hits every model alike
        for name, model, kw in models:
            t0 = time.thread_time()
            generate(model, n, **kw)
            times[name].append(time.thread_time() - t0)
    out = {
        name: {"cpu_s": min(t), "median_cpu_s": float(np.median(t)), "samples_per_s": n / min(t)}
        for name, t in times.items()
    }
    out["slowdown"] = {name: out[name]["cpu_s"] / out["plain"]["cpu_s"] - 1 for name in ("mel80", "notes")}
    out["slowdown_median"] = {
        name: out[name]["median_cpu_s"] / out["plain"]["median_cpu_s"] - 1 for name in ("mel80", "notes")
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minwave.bench notes", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["speed", "pitch", "vocode"])
    parser.add_argument("--checkpoint", help="pitch: a run trained with --condition notes; vocode: --condition mel")
    parser.add_argument("--baseline", help="vocode: a tag-only run whose free-running output is compared")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=1.0, help="pitch: sampling temperature (default 1)")
    parser.add_argument("--no-reference", action="store_true", help="pitch: skip the training audio's figures")
    parser.add_argument("--composed", type=int, default=4, help="pitch: composed 4 s melodies per tag (default 4)")
    args = parser.parse_args(argv)
    if args.what == "speed":
        print(json.dumps(speed_report(), indent=1))
        return 0
    if not args.checkpoint:
        parser.error(f"{args.what} needs --checkpoint RUN")
    if args.what == "vocode":
        print(json.dumps(vocode_report(args.checkpoint, args.baseline, seed=args.seed), indent=1))
        return 0
    report = pitch_report(args.checkpoint, args.seed, not args.no_reference, args.temperature, args.composed)
    print(json.dumps(report, indent=1))
    return 0
