"""Are the tags obeyed? `python -m minwave.bench judge`: a tag-conditioned model's clips, judged.

    python -m minwave.bench judge --pretrained builtin-music              # the shipped model
    python -m minwave.bench judge --pretrained builtin-music-notes        # the notes model, new melodies
    python -m minwave.bench judge --checkpoint RUN --clips 8 --seconds 4 --temperature 1 --seed 0

The judge (minwave.judge: nearest neighbours on loudness-free spectral features, with a noise class)
is fitted on the built-in music at the model's sample rate, its files split by data.split_by_file
(a third held out, judge seed 0), with the output of an untrained WaveNet of the model's config
(seed UNTRAINED_SEED, one `--seconds` stream per tag) added to its noise class; its own held-out score
per class is printed first, since a judge that cannot tell the real clips apart proves nothing.

Then, per tag, `--clips` clips of `--seconds` each from the model (the fast sampler, batch = --clips,
--temperature, --seed; a notes model plays clip k from synth.compose(tag, --seconds, seed + k), new
melodies as `generate --melody random` plays them): the fraction the judge assigns to that tag
(as_tag), the fraction it calls noise, how many clips it gave each verdict, and their median
periodicity (minwave.quality). The same for an untrained WaveNet of the same config (seed BASELINE_SEED,
another than the judge saw): the baseline a model must beat; and, for a notes model, for the synthesiser
itself playing the same scores (rendered_scores, through μ-law): the ceiling, which shows the melodies
can be told apart at all; with, per tag, where the model's spectrum parts from the synthesiser's on
those scores (model_minus_rendered_db: per octave band, the judge's loudness-free log envelope, model
minus synthesiser, in dB), and for both, the share of the judge's windows heard as the tag among those
that hold a note's onset and among the rest (as_tag_windows: is it the strike or the ring that fails?);
and the model's teacher-forced bits per sample on those renderings by the time since the latest onset
(bits_since_onset: has it learned the strike at all?).
Printed as one JSON object; docs/conditioning.md describes it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter

import numpy as np

from .. import checkpoint, pretrained
from ..conditioning import note_features
from ..data import load_dataset, multi_hot
from ..fastgen import teacher_forced_logits
from ..judge import NOISE, QUIET, WINDOW_S, band_centres, build_judge, window_envelopes, window_starts
from ..model import WaveNet
from ..mulaw import mulaw_decode, mulaw_encode
from ..ops.loss import softmax_cross_entropy_forward
from ..quality import quality
from ..sampling import generate
from ..synth import PEAK, compose, ensure_builtin_dataset, render_notes
from ..threads import set_blas_threads
from .notes import play_notes

UNTRAINED_SEED = 100  # the untrained WaveNet whose output the judge learns as noise
BASELINE_SEED = 7  # the untrained WaveNet judged as the baseline (not the one above)
ONSET_BINS_S = (0.0, 0.005, 0.02, 0.1, 0.25)  # onset_bits' bins of time since the latest onset; the last open
GAP_BANDS_HZ = (0, 250, 500, 1000, 2000, 4000)  # spectrum_gap's octave bands: their lower edges, the last up to sr/2


def play(model, tag: str, tag_vocab: list[str], clips: int, n: int, temperature: float, seed: int) -> np.ndarray:
    """`clips` clips of n samples with `tag` -> audio (clips, n): one batch for a tag-only model; for a
    notes model clip k plays synth.compose(tag, n / rate, seed + k), one clip at a time."""
    config = model.config
    tags = multi_hot([tag], tag_vocab)
    if config.condition == "notes":
        rate = config.sample_rate
        return np.stack([play_notes(model, compose(tag, n / rate, seed + k), n, tags, seed + k, temperature)
                         for k in range(clips)])  # fmt: skip
    codes = generate(model, n, batch=clips, tags=tags, temperature=temperature, seed=seed)  # (clips, n)
    return mulaw_decode(np.asarray(codes), config.quantization_channels)


def judge_model(model, tag_vocab: list[str], judge, clips: int, seconds: float, temperature: float, seed: int) -> dict:
    """Per tag: {'as_tag', 'noise', 'said' (clips per verdict), 'median_periodicity'} for `clips` clips
    of `seconds` generated with that tag, plus 'all': as_tag and noise over every clip."""
    n = max(1, int(round(seconds * model.config.sample_rate)))
    return judge_clips(judge, play_tags(model, tag_vocab, clips, n, temperature, seed), model.config.sample_rate)


def play_tags(model, tag_vocab: list[str], clips: int, n: int, temperature: float, seed: int) -> dict:
    """{tag: audio (clips, n)}: `play` for every tag of the vocabulary."""
    return {tag: play(model, tag, tag_vocab, clips, n, temperature, seed) for tag in tag_vocab}


def render_scores(tag: str, clips: int, n: int, sample_rate: int, quantization_channels: int, seed: int) -> np.ndarray:
    """The synthesiser playing the scores a notes model is judged on (clip k: synth.compose(tag, n / rate,
    seed + k), as `play` gives them), peak-normalised to synth.PEAK and through μ-law: (clips, n)."""
    out = np.zeros((clips, n))
    for k in range(clips):
        audio = render_notes(
            tag, compose(tag, n / sample_rate, seed + k), n, sample_rate, np.random.default_rng([seed, k])
        )
        audio *= PEAK / max(np.abs(audio).max(), 1e-12)
        out[k] = mulaw_decode(mulaw_encode(audio, quantization_channels), quantization_channels)
    return out


def spectrum_gap(model_audio: np.ndarray, rendered_audio: np.ndarray, sample_rate: int) -> dict:
    """{'LO-HI Hz': dB} per octave band of GAP_BANDS_HZ: the judge's loudness-free log mel envelope
    (judge.window_envelopes, averaged over the loud windows of every clip (clips, n)), model minus
    rendered scores, averaged over the mel bands centred in the band, in dB: where the model's
    envelope sits above (+) or below (-) the synthesiser's, as the judge's features see it."""

    def mean_envelope(audio):
        envelopes = [e[loud] for e, loud in (window_envelopes(a, sample_rate) for a in audio)]
        return np.concatenate(envelopes).mean(axis=0) * (10 / math.log(10))  # (M,) in dB

    gap = mean_envelope(model_audio) - mean_envelope(rendered_audio)  # (M,)
    centres = band_centres(sample_rate)
    edges = list(GAP_BANDS_HZ) + [sample_rate // 2]
    bands = {f"{lo}-{hi} Hz": (centres >= lo) & (centres < hi) for lo, hi in zip(edges[:-1], edges[1:])}
    return {name: round(float(gap[inside].mean()), 1) for name, inside in bands.items() if inside.any()}


def onset_shares(judge, tag: str, audio: np.ndarray, sample_rate: int, seed: int) -> dict:
    """Where a notes model's clips of `tag` (audio (clips, n); clip k plays synth.compose(tag, n / rate,
    seed + k), as `play` does) are heard as `tag`: {'onset': the share of the judge's loud windows that
    hold a note's onset labelled `tag`, 'between': the same for the other loud windows} (None if none)."""
    hits, totals = {"onset": 0, "between": 0}, {"onset": 0, "between": 0}
    for k, clip in enumerate(audio):
        onsets = np.array([note.onset_s for note in compose(tag, len(clip) / sample_rate, seed + k)])
        for start, label in zip(window_starts(len(clip), sample_rate) / sample_rate, judge.windows(clip)):
            if label == QUIET:
                continue
            kind = "onset" if ((onsets >= start) & (onsets < start + WINDOW_S)).any() else "between"
            hits[kind] += label == tag
            totals[kind] += 1
    return {kind: round(hits[kind] / totals[kind], 3) if totals[kind] else None for kind in hits}


def onset_bits(model, tag: str, tag_vocab: list[str], audio: np.ndarray, seed: int) -> dict:
    """A notes model's teacher-forced bits per sample on the synthesiser's renderings (render_scores:
    audio (clips, n), clip k playing synth.compose(tag, n / rate, seed + k)), by the time since the latest
    note onset: {'0-5 ms': bits, …, '250+ ms': bits} (ONSET_BINS_S; None for an empty bin). The true past
    is given, so a bin far above the others is a part of the note the model has not learned, not one its
    own errors lose."""
    c = model.config
    rate, Q = c.sample_rate, c.quantization_channels
    nats, counts = np.zeros(len(ONSET_BINS_S)), np.zeros(len(ONSET_BINS_S))
    for k, clip in enumerate(audio):
        notes = compose(tag, len(clip) / rate, seed + k)
        codes = mulaw_encode(clip, Q)  # (n,) the rendering's own codes: it went through μ-law already
        frames = note_features(notes, len(codes) + 1, c.cond_hop, rate)  # (F, C), up to the last target
        tags = multi_hot([tag], tag_vocab)[None]  # (1, G)
        logits = teacher_forced_logits(model, codes[None], tags, frames[None])[0, :-1].astype(np.float64)  # (n-1, Q)
        t = np.arange(1, len(codes)) / rate  # (n-1,) the time of each target: logits[t] predicts codes[t+1]
        onsets = np.sort([note.onset_s for note in notes])
        latest = np.searchsorted(onsets, t, side="right") - 1  # (n-1,) the latest onset at or before t; -1: none
        since = np.where(latest >= 0, t - onsets[np.maximum(latest, 0)], -1.0)  # (n-1,) -1: before any onset
        bins = np.searchsorted(ONSET_BINS_S, since, side="right") - 1  # (n-1,) -1: before any onset
        for b in range(len(ONSET_BINS_S)):
            inside = bins == b
            if inside.any():  # the training loss itself, in nats, on this bin's targets
                nats[b] += float(softmax_cross_entropy_forward(logits[inside], codes[1:][inside])[0]) * inside.sum()
                counts[b] += inside.sum()
    names = [f"{lo * 1000:g}-{hi * 1000:g} ms" for lo, hi in zip(ONSET_BINS_S, ONSET_BINS_S[1:])]
    names.append(f"{ONSET_BINS_S[-1] * 1000:g}+ ms")
    return {name: round(float(s / n / math.log(2)), 2) if n else None for name, s, n in zip(names, nats, counts)}


def judge_clips(judge, played: dict, sample_rate: int) -> dict:
    """{tag: audio (clips, n)} -> the report of judge_model: each tag's verdicts, and 'all'."""
    report, verdicts_all = {}, []
    for tag, audio in played.items():
        said = [judge.classify_clip(a) for a in audio]
        verdicts_all += [(tag, s) for s in said]
        report[tag] = {
            "as_tag": round(said.count(tag) / len(said), 3),
            "noise": round(said.count(NOISE) / len(said), 3),
            "said": dict(Counter(said).most_common()),
            "median_periodicity": round(float(np.median([quality(a, sample_rate).periodicity for a in audio])), 3),
        }
    report["all"] = {
        "as_tag": round(float(np.mean([t == s for t, s in verdicts_all])), 3),
        "noise": round(float(np.mean([s == NOISE for _, s in verdicts_all])), 3),
    }
    return report


def report(ckpt, name: str, clips: int = 8, seconds: float = 4.0, temperature: float = 1.0, seed: int = 0) -> dict:
    """The whole benchmark for one loaded checkpoint (module docstring)."""
    config = ckpt.config
    if not ckpt.tag_vocab:
        raise SystemExit(f"minwave.bench judge: {name} has no tags; the judge checks a tag-conditioned model")
    if config.condition not in ("", "notes"):
        raise SystemExit(
            f"minwave.bench judge: {name} is conditioned on {config.condition}; give a tag-only or notes model"
        )
    rate = config.sample_rate
    t0 = time.perf_counter()
    dataset = load_dataset(ensure_builtin_dataset(sample_rate=rate), rate, warn=lambda message: None)
    unknown = [t for t in ckpt.tag_vocab if t not in dataset.tag_vocab]
    if unknown:
        raise SystemExit(
            f"minwave.bench judge: the judge knows the built-in tags {', '.join(dataset.tag_vocab)}; "
            f"{name} has {', '.join(unknown)}"
        )
    n = max(1, int(round(seconds * rate)))
    untrained = WaveNet(config, seed=UNTRAINED_SEED)
    untrained_audio = [play(untrained, tag, ckpt.tag_vocab, 1, n, 1.0, UNTRAINED_SEED)[0] for tag in ckpt.tag_vocab]
    judge, held_out = build_judge(dataset, rate, seed=0, noise=untrained_audio)
    fitted_s = time.perf_counter() - t0
    model = ckpt.generation_model()
    played = play_tags(model, ckpt.tag_vocab, clips, n, temperature, seed)
    model_report = judge_clips(judge, played, rate)
    baseline = WaveNet(config, seed=BASELINE_SEED)
    baseline_report = judge_model(baseline, ckpt.tag_vocab, judge, clips, seconds, temperature, seed)
    scores = {}  # a notes model's ceiling: the synthesiser itself playing the same scores
    if config.condition == "notes":
        Q = config.quantization_channels
        rendered = {tag: render_scores(tag, clips, n, rate, Q, seed) for tag in ckpt.tag_vocab}
        scores = {"rendered_scores": judge_clips(judge, rendered, rate)}
        for tag in ckpt.tag_vocab:  # where the model's spectrum parts from the synthesiser's, and when
            scores["rendered_scores"][tag]["model_minus_rendered_db"] = spectrum_gap(played[tag], rendered[tag], rate)
            scores["rendered_scores"][tag]["as_tag_windows"] = onset_shares(judge, tag, rendered[tag], rate, seed)
            model_report[tag]["as_tag_windows"] = onset_shares(judge, tag, played[tag], rate, seed)
            model_report[tag]["bits_since_onset"] = onset_bits(model, tag, ckpt.tag_vocab, rendered[tag], seed)
    return {
        "model": name,
        "step": ckpt.step,
        "sample_rate": rate,
        "clips_per_tag": clips,
        "seconds": seconds,
        "temperature": temperature,
        "seed": seed,
        "judge_held_out": {  # clips per class, and the fraction of clips and of windows judged right
            label: {k: round(v, 3) for k, v in row.items() if k != "said"} for label, row in held_out.items()
        },
        "judge_training_windows": int(len(judge.train_y)),
        "model_clips": model_report,
        "untrained_baseline": baseline_report,
        **scores,
        "judge_fit_s": round(fitted_s, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minwave.bench judge", description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--checkpoint", help="a tag-conditioned run, tags only or with notes (its folder or checkpoint.npz)"
    )
    which.add_argument("--pretrained", help="a shipped model: " + (", ".join(pretrained.available()) or "none"))
    parser.add_argument("--clips", type=int, default=8, help="clips per tag (the batch of generate; default 8)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per clip (default 4)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the sampling (default 0)")
    args = parser.parse_args(argv)
    temperature_ok = math.isfinite(args.temperature) and args.temperature >= 0
    if args.clips < 1 or not 0.05 <= args.seconds <= 600 or not temperature_ok or args.seed < 0:
        parser.error("--clips >= 1, --seconds within 0.05-600, --temperature >= 0, --seed >= 0")
    try:
        if args.pretrained is not None:
            ckpt, name = pretrained.load_pretrained(args.pretrained), f"pretrained {args.pretrained}"
        else:
            ckpt, name = checkpoint.load(args.checkpoint), str(args.checkpoint)
    except checkpoint.CheckpointError as exc:
        print(f"minwave.bench judge: {exc}", file=sys.stderr)
        return 1
    restore = set_blas_threads(1)
    try:
        print(json.dumps(report(ckpt, name, args.clips, args.seconds, args.temperature, args.seed), indent=1))
    finally:
        restore()
    return 0
