"""quality.py tells a held tone from noise; threads.py picks BLAS threads by problem size."""

import numpy as np
import pytest

from minwave.model import WaveNetConfig
from minwave.presets import get_preset
from minwave.quality import normalised_autocorrelation, quality
from minwave.threads import blas_threads_for, largest_product_macs, set_blas_threads
from minwave.train import sample_names

SR = 16000
T = np.arange(2 * SR) / SR


@pytest.mark.parametrize("f0", [55.0, 261.6, 440.0, 700.0])
def test_a_sine_is_periodic_flat_free_and_at_its_pitch(f0):
    q = quality(0.5 * np.sin(2 * np.pi * f0 * T), SR)
    assert q.periodicity > 0.99 and q.flatness < 0.01 and q.voiced == 1.0
    assert abs(1200 * np.log2(q.pitch_hz / f0)) < 50  # within 50 cents


def test_a_harmonic_tone_keeps_its_fundamental():
    """Harmonics make r(2τ) as high as r(τ): the pitch must still be the fundamental, not an octave below."""
    tone = sum(np.sin(2 * np.pi * 196.0 * h * T) / h for h in range(1, 8))
    q = quality(0.3 * tone / np.abs(tone).max(), SR)
    assert q.periodicity > 0.95 and abs(q.pitch_hz - 196.0) < 3


def test_noise_scores_low():
    rng = np.random.default_rng(0)
    white = quality(0.3 * rng.standard_normal(len(T)), SR)
    assert white.periodicity < 0.2 and white.flatness > 0.4
    brown = np.cumsum(rng.standard_normal(len(T)))
    brown = quality(0.5 * brown / np.abs(brown).max(), SR)  # strongly low-passed noise: still not a tone
    assert brown.periodicity < 0.9


def test_silence_and_quiet_frames_are_not_judged():
    assert quality(np.zeros(SR), SR).periodicity == 0.0 and quality(np.zeros(SR), SR).voiced == 0.0
    x = np.zeros(2 * SR)
    x[:SR] = 0.5 * np.sin(2 * np.pi * 300 * T[:SR])  # one second of tone, one of silence
    q = quality(x, SR)
    assert q.periodicity > 0.99 and 0.4 < q.voiced < 0.6


def test_normalised_autocorrelation_against_its_definition():
    rng = np.random.default_rng(1)
    fr = rng.standard_normal((2, 64))
    r = normalised_autocorrelation(fr, 20)
    x = fr - fr.mean(axis=1, keepdims=True)
    for f in range(2):
        for tau in (0, 1, 7, 20):
            a, b = x[f, : 64 - tau], x[f, tau:]
            assert abs(r[f, tau] - a @ b / np.sqrt((a @ a) * (b @ b))) < 1e-12


@pytest.mark.parametrize(
    "audio, rate",
    [(np.zeros((2, 100)), SR), (np.array([]), SR), (np.array([0.0, np.nan]), SR), (np.zeros(100), 1000)],
)
def test_bad_input_is_refused(audio, rate):
    with pytest.raises(ValueError):
        quality(audio, rate)


def test_sample_names_never_collide():
    names = sample_names(["a b", "a/b", "A-B", "organ"], 7)
    assert len(set(n.lower() for n in names)) == 4 and names[-1] == "step_000007_organ.wav"
    assert sample_names([], 3) == ["step_000003.wav"]


def test_blas_threads_follow_problem_size(monkeypatch):
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    tiny, paper = get_preset("tiny"), get_preset("paper")
    small_macs = largest_product_macs(tiny.config(), tiny.batch_size, tiny.segment)
    big_macs = largest_product_macs(paper.config(), paper.batch_size, paper.segment)
    assert blas_threads_for(small_macs, cores=2) == 1  # the default run never spins a second thread
    assert blas_threads_for(big_macs, cores=2) == 2 and blas_threads_for(big_macs, cores=1) == 1
    cfg = WaveNetConfig(stacks=1, layers_per_stack=2, residual_channels=4, dilation_channels=4, skip_channels=8)
    assert largest_product_macs(cfg, 2, 100) == 2 * 100 * 8 * 256  # the head's S × Q product is the largest

    from threadpoolctl import threadpool_info

    def blas_threads():
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    before = blas_threads()
    restore = set_blas_threads(1)
    assert blas_threads() == {1}
    restore()
    assert blas_threads() == before
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # the user's setting wins: nothing is changed
    set_blas_threads(2)()
    assert blas_threads() == before
