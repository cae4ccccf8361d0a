import numpy as np
import pytest

from minwave import mulaw_decode, mulaw_encode
from minwave.backend import to_host
from minwave.mulaw import mulaw_compress, mulaw_expand


def test_known_values():
    codes = mulaw_encode(np.array([-1.0, 0.0, 1.0]))
    assert codes.tolist() == [0, 128, 255]
    assert codes.dtype.kind == "i"
    assert mulaw_encode(np.array([0.0]), 16).tolist() == [8]


def test_out_of_range_is_clipped():
    assert mulaw_encode(np.array([-7.0, 1.3])).tolist() == [0, 255]


def test_monotonic():
    x = np.linspace(-1, 1, 20001)
    codes = mulaw_encode(x)
    assert np.all(np.diff(codes) >= 0)
    assert codes.min() == 0 and codes.max() == 255
    assert np.all(np.diff(mulaw_decode(np.arange(256))) > 0)


@pytest.mark.parametrize("q", [256, 64, 2**16])
def test_round_trip_within_one_step(q):
    x = np.random.default_rng(0).uniform(-1, 1, 10000)
    codes = mulaw_encode(x, q)
    decoded = mulaw_decode(codes, q)
    # one quantization step = the width of the bin the sample fell in, measured on the amplitude axis
    bin_lo = mulaw_expand(codes / q * 2.0 - 1.0, q)
    bin_hi = mulaw_expand((codes + 1) / q * 2.0 - 1.0, q)
    assert np.all(np.abs(decoded - x) <= (bin_hi - bin_lo) + 1e-12)
    # and in the companded domain, half a bin
    assert np.max(np.abs(mulaw_compress(decoded, q) - mulaw_compress(x, q))) <= 1.0 / q + 1e-12


def test_mulaw_is_better_than_linear_for_quiet_audio():
    x = 0.01 * np.sin(np.linspace(0, 100, 5000))
    mu_err = np.abs(mulaw_decode(mulaw_encode(x)) - x).mean()
    linear = (np.floor((x + 1) / 2 * 256) + 0.5) / 256 * 2 - 1
    assert mu_err < 0.2 * np.abs(linear - x).mean()


def test_bad_arguments():
    with pytest.raises(ValueError):
        mulaw_encode(np.zeros(3), quantization_channels=1)
    with pytest.raises(ValueError):
        mulaw_decode(np.zeros(3))  # float "codes"


def test_backends_agree(backend):
    x = np.random.default_rng(1).uniform(-1, 1, 1000)
    codes = mulaw_encode(backend.asarray(x))
    np.testing.assert_array_equal(to_host(codes), mulaw_encode(x))
    np.testing.assert_allclose(to_host(mulaw_decode(codes)), mulaw_decode(mulaw_encode(x)))
