"""`python -m minwave.bench tone`: does a model that learned one note *play* it? Both input layers.

    python -m minwave.bench tone                          # a sine, 300 steps, level vs embedding
    python -m minwave.bench tone --note organ --steps 600 --seeds 3

For each input layer (model.py: "level" and "embedding"), the same small network (1 × 8 layers, 16
channels, as the tiny preset) is trained with Adam on random segments of one note, then generates
free-running with both samplers, from one silence code and primed with the note's first receptive
field. Reported per case: the training loss in bits per sample, teacher-forced argmax accuracy, the
periodicity and pitch (quality.py) of 2 s from the fast sampler after its first 0.25 s (the onset), and
for how many samples the naive sampler (the specification) generates the same codes.
docs/free_running.md quotes its output. BLAS runs on one thread (threads.py), so the training time is
one core's.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from ..model import INPUTS, WaveNet, WaveNetConfig
from ..mulaw import mulaw_decode, mulaw_encode
from ..optim import Adam
from ..quality import quality
from ..sampling import generate
from ..synth import organ_note
from ..threads import set_blas_threads
from ..train import noisy_codes

SR = 16000


def note_codes(note: str, f0: float) -> np.ndarray:
    """μ-law codes of 3 s of one note: a sine after 0.1 s of silence, or the built-in organ."""
    if note == "sine":
        t = np.arange(3 * SR) / SR
        audio = np.concatenate([np.zeros(SR // 10), 0.5 * np.sin(2 * np.pi * f0 * t)])
    else:
        audio = organ_note(f0, 3.0, SR, np.random.default_rng(0))
        audio = 0.8 * audio / np.abs(audio).max()
    return mulaw_encode(audio)


def run_case(
    input_layer: str, codes: np.ndarray, steps: int, seeds: int, naive_samples: int, input_noise: int = 0
) -> list[str]:
    config = WaveNetConfig(
        stacks=1, layers_per_stack=8, residual_channels=16, dilation_channels=16, skip_channels=64, input=input_layer
    )
    model = WaveNet(config, seed=0)
    optimizer = Adam(model.params, lr=1e-2, clip_norm=1.0)
    rng, rf, segment = np.random.default_rng(0), model.receptive_field, 1000
    t0 = time.perf_counter()
    for _ in range(steps):
        starts = rng.integers(0, len(codes) - segment - rf - 1, 8)
        x = np.stack([codes[s : s + segment + rf + 1] for s in starts])
        noisy = noisy_codes(x, input_noise, config.quantization_channels, rng) if input_noise else None
        loss, grads = model.loss_and_grads(x, inputs=noisy)
        optimizer.step(model.params, grads)
    seconds = time.perf_counter() - t0
    accuracy = float((model.forward(codes[None, :8000]).argmax(-1)[0, :-1] == codes[1:8000]).mean())
    noise = f", input noise ±{input_noise}" if input_noise else ""
    lines = [
        f"{input_layer:9s} {steps} steps{noise} in {seconds:.0f} s: {loss / math.log(2):.3f} bits per sample, "
        f"teacher-forced argmax accuracy {accuracy:.3f}"
    ]
    for start, prime in [("silence", None), ("primed", codes[:rf])]:
        scores = []
        for seed in range(seeds):
            out = generate(model, 2 * SR, seed=seed, prime=prime)[0]  # the fast sampler, 2 s
            q = quality(mulaw_decode(out[SR // 4 :]), SR)  # after the first 0.25 s: the onset
            pitch = f"{q.pitch_hz:.0f} Hz" if math.isfinite(q.pitch_hz) else "-"
            scores.append(f"{q.periodicity:.2f} ({pitch})")
        naive = generate(model, naive_samples, seed=0, prime=prime, method="naive")[0]
        fast = generate(model, naive_samples, seed=0, prime=prime)[0]
        same = int(np.argmin(naive == fast)) if not np.array_equal(naive, fast) else naive_samples
        lines.append(
            f"          from {start:7s}: periodicity {', '.join(scores)}; the naive sampler's first "
            f"{naive_samples} codes (seed 0) equal the fast one's for {same}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minwave.bench tone", description=__doc__.splitlines()[0])
    parser.add_argument("--note", choices=("sine", "organ"), default="sine", help="what to learn (default sine)")
    parser.add_argument("--pitch", type=float, default=261.6, help="its pitch in Hz (default 261.6, C4)")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps per model (default 300)")
    parser.add_argument("--seeds", type=int, default=3, help="fast-sampler clips per case (default 3)")
    parser.add_argument("--naive-samples", type=int, default=4000, help="codes compared with the naive sampler")
    parser.add_argument("--input", choices=INPUTS, action="append", help="only this input layer (repeatable)")
    parser.add_argument("--input-noise", type=int, default=0, help="train --input-noise N: inputs moved by ±N")
    args = parser.parse_args(argv)
    if (
        args.steps < 1
        or args.seeds < 1
        or args.naive_samples < 8
        or not 40 <= args.pitch <= 800
        or args.input_noise < 0
    ):
        parser.error("--steps, --seeds >= 1, --naive-samples >= 8, --pitch within 40-800 Hz, --input-noise >= 0")
    codes = note_codes(args.note, args.pitch)
    print(f"one {args.note} note at {args.pitch:g} Hz; training audio: {quality(mulaw_decode(codes), SR)}")
    restore = set_blas_threads(1)
    try:
        for input_layer in args.input or INPUTS:
            lines = run_case(input_layer, codes, args.steps, args.seeds, args.naive_samples, args.input_noise)
            print("\n".join(lines), flush=True)
    finally:
        restore()
    return 0
