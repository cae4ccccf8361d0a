"""The training benchmark (python -m minwave.bench train): its work count, its PyTorch mirror, its CLI."""

import importlib.util
import json

import numpy as np
import pytest

from minwave import WaveNet, WaveNetConfig
from minwave.bench import train as bench

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed (only the comparison needs it)")


def small_config(**overrides):
    base = dict(stacks=2, layers_per_stack=3, kernel_size=2, residual_channels=4, dilation_channels=3,
                skip_channels=5, quantization_channels=8)  # fmt: skip
    base.update(overrides)
    return WaveNetConfig(**base)


@pytest.mark.parametrize("k", [2, 3])
def test_forward_macs_counts_each_layer_at_the_positions_it_computes(k):
    model = WaveNet(small_config(kernel_size=k))
    c, B, T = model.config, 3, 50
    expected = 0
    for i in range(c.n_layers):
        above = sum(model.dilations[i + 1 :])  # layer i runs on the loss positions + what the layers above read
        positions = B * (T + (k - 1) * above)
        expected += positions * (k * c.residual_channels * 2 * c.dilation_channels)
        expected += positions * c.dilation_channels * c.residual_channels if i < c.n_layers - 1 else 0
    expected += B * T * (c.n_layers * c.dilation_channels * c.skip_channels + c.skip_channels**2)
    expected += B * T * c.skip_channels * c.quantization_channels
    assert bench.forward_macs(model, B, T) == expected


@needs_torch
@pytest.mark.parametrize("k", [2, 3])
def test_torch_mirror_computes_the_same_loss_and_gradients(k):
    config = small_config(kernel_size=k)
    case = {"config": config.to_dict(), "batch_size": 2, "segment": 7, "backend": "numpy", "threads": 1}
    mw = bench.MinwaveRunner(case)
    verdict = bench.verify_same_work(mw, case)
    assert verdict["loss_rel_err"] < 1e-12 and verdict["grad_rel_err"] < 1e-10


@needs_torch
def test_verification_catches_different_networks(monkeypatch):
    config = small_config()
    case = {"config": config.to_dict(), "batch_size": 2, "segment": 7, "backend": "numpy", "threads": 1}
    mw = bench.MinwaveRunner(case)
    real = bench.torch_wavenet

    def wrong(params, *args, **kwargs):  # PyTorch gets a different skip bias: not the same network
        return real({**params, "skip.b": params["skip.b"] + 0.1}, *args, **kwargs)

    monkeypatch.setattr(bench, "torch_wavenet", wrong)
    with pytest.raises(bench.CLIError, match="disagree"):
        bench.verify_same_work(mw, case)


def test_bad_options_are_rejected(capsys, tmp_path):
    assert bench.main(["--batch-size", "0"]) == 2
    assert "--batch-size must be >= 1" in capsys.readouterr().err
    assert bench.main(["--config", "huge"]) == 2
    assert "neither a preset" in capsys.readouterr().err
    bad = tmp_path / "cfg.json"
    bad.write_text(json.dumps({"n_tags": 2}))
    assert bench.main(["--config", str(bad)]) == 2
    assert "n_tags" in capsys.readouterr().err


def test_config_file_and_preset_give_the_case(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"stacks": 1, "layers_per_stack": 3, "segment": 123}))
    config, batch, segment = bench.load_case(bench.parse_args(["--config", str(cfg), "--batch-size", "2"]))
    assert (config.stacks, config.layers_per_stack, batch, segment) == (1, 3, 2, 123)
    config, batch, segment = bench.load_case(bench.parse_args([]))
    assert (config, batch, segment) == (WaveNetConfig(), 4, 8000)  # the default benchmark case
    config, _, _ = bench.load_case(bench.parse_args(["--config", "tiny"]))
    assert config.layers_per_stack == 8


@pytest.mark.slow
def test_benchmark_runs_end_to_end(capsys, tmp_path):
    cfg = tmp_path / "cfg.json"
    model_fields = {k: v for k, v in small_config(stacks=1).to_dict().items() if k not in ("n_tags", "sample_rate")}
    cfg.write_text(json.dumps(model_fields))
    argv = ["--config", str(cfg), "--batch-size", "2", "--segment", "20", "--steps", "2", "--warmup", "1"]
    argv += ["--threads", "1"] + (["--compare-torch"] if HAS_TORCH else [])
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "GEMM floor" in out and "minwave" in out and "RSS" in out
    if HAS_TORCH:
        assert "verified" in out and "ratio     minwave / PyTorch" in out
    rows = [line for line in out.splitlines() if line.startswith(("minwave ", "PyTorch "))]
    assert len(rows) == (2 if HAS_TORCH else 1)
    assert all(np.isfinite(float(row.split()[1])) for row in rows)
