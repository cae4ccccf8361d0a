"""Sampling benchmark: `python -m minwave.bench generate`, on one CPU thread.

    python -m minwave.bench generate                      # the default network, everything
    python -m minwave.bench generate --out bench_out      # also writes the depth-sweep PNG and a JSON
    python -m minwave.bench generate --config small --no-sweep

What it reports, for WaveNetConfig() (2 × 10 layers, R = D = 32, S = Q = 256) unless --config says:
- fast, batch 1 and batch B (16): samples per second (all streams together), the real-time factor,
  GFLOP/s (2 × the model's multiply-adds per sample), and for batch 1 the bytes of weights read per
  second (matrix–vector is bound by memory traffic: every weight is read once per sample);
- the single-core float32 GEMM peak (NumPy's sgemm on a large product, same thread) and the fraction
  of it the batched sampler reaches (matrix–matrix is bound by arithmetic);
- naive (model.forward over the receptive field per sample): samples per second and fast's speed-up;
- a depth sweep (2 stacks × 4 … 12 layers): fast grows like the number of layers, naive like the
  receptive field (2^layers), as a table and, with --out, a PNG;
- Numba: the first call's compile time with an empty cache, and what a second process pays to load
  the compiled kernels from the cache (it compiles nothing: cache misses 0).

How it measures, and why:
- One thread everywhere. The measurements run in a worker process started with OMP, OPENBLAS, MKL
  and NUMBA_NUM_THREADS = 1: NumPy's BLAS reads them when it loads, which is before any option of
  ours could act. The fast sampler is serial code anyway; the naive one is NumPy, made serial too.
- A time is the best of several runs (a disturbance on the machine only ever slows a run down), each
  long enough to amortise the call. The fast sampler is timed twice: by the wall clock (what real time
  means) and by the CPU time of its thread (time.thread_time), which leaves out the time the OS gave to
  other processes and so stays steady on a shared machine; the naive sampler and the depth sweep use
  CPU time. The CPU time the rest of the machine used meanwhile is reported too: a busy machine also
  shares its caches and memory bandwidth, and makes every number slower.
- The compile times come from fresh processes with a fresh NUMBA_CACHE_DIR, so they neither use nor
  disturb the cache of the installed package.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..cli.errors import ArgumentParser, UsageError, run_cli
from . import THREAD_VARIABLES, cpu_name, machine_cpu_seconds

PROG = "minwave.bench generate"


def parse_args(argv):
    p = ArgumentParser(prog="python -m minwave.bench generate", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--config",
        default=None,
        help="a preset name (tiny, small, paper) or a JSON file of "
        "WaveNetConfig fields; default: WaveNetConfig() (2 × 10 layers, 32/32/256 channels, Q = 256)",
    )
    p.add_argument("--batch", type=int, default=16, help="streams of the batched measurement (default 16)")
    p.add_argument(
        "--seconds", type=float, default=1.0, help="time per fast measurement, split over 5 runs (default 1.0)"
    )
    p.add_argument(
        "--naive-seconds",
        type=float,
        default=3.0,
        help="time budget of each naive measurement (default 3.0; at least 2 samples)",
    )
    p.add_argument(
        "--depths", default="4-12", help="layers per stack of the depth sweep: FIRST-LAST, or one number (default 4-12)"
    )
    p.add_argument("--no-naive", action="store_true", help="skip the naive sampler (and its sweep column)")
    p.add_argument("--no-sweep", action="store_true", help="skip the depth sweep")
    p.add_argument("--no-compile", action="store_true", help="skip the two compile-time processes")
    p.add_argument(
        "--out", default=None, metavar="DIR", help="write generation_depth_sweep.png and generation_bench.json into DIR"
    )
    p.add_argument("--worker", action="store_true", help=_hidden())
    args = p.parse_args(argv)
    if args.batch < 1:
        raise UsageError(f"--batch must be >= 1, got {args.batch}")
    if not args.seconds > 0 or not args.naive_seconds > 0:
        raise UsageError("--seconds and --naive-seconds must be > 0")
    parts = args.depths.split("-")  # "4-12", or "8" for one depth
    try:
        if len(parts) > 2:
            raise ValueError
        first, last = int(parts[0]), int(parts[-1])
    except ValueError:
        raise UsageError(f"--depths: expected FIRST-LAST such as 4-12, got {args.depths!r}") from None
    if not 1 <= first <= last:
        raise UsageError(f"--depths: need 1 <= FIRST <= LAST, got {args.depths!r}")
    args.depth_range = list(range(first, last + 1))
    return args


def _hidden():
    import argparse

    return argparse.SUPPRESS


def load_config(spec: str | None):
    """--config: None (the default network), a preset name, or a JSON file -> WaveNetConfig (untagged)."""
    from ..model import WaveNetConfig

    if spec is None:
        return WaveNetConfig()
    try:
        from ..presets import PRESETS
    except ImportError:
        PRESETS = {}
    if spec in PRESETS:
        return PRESETS[spec].config()
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--config: {spec!r} is neither a preset ({', '.join(PRESETS) or 'none'}) nor a JSON file")
    try:
        fields = json.loads(path.read_text())
        config = WaveNetConfig.from_dict(fields.get("model", fields))
    except (ValueError, TypeError, AttributeError) as exc:
        raise UsageError(f"--config {spec}: {exc}") from exc
    return WaveNetConfig.from_dict({**config.to_dict(), "n_tags": 0})  # tags cost nothing per sample


# ====================================================================================== measurements
def best_time(fn, runs: int, cpu: bool = False) -> float:
    """The shortest of `runs` calls of fn(), in seconds of wall-clock time, or with cpu=True of this
    thread's CPU time (time.thread_time: without the time the OS gave other processes meanwhile)."""
    clock = time.thread_time if cpu else time.perf_counter
    times = []
    for _ in range(runs):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


def fast_rate(model, batch: int, seconds: float, cpu: bool = False) -> float:
    """Samples per second (all streams) of fastgen.run, best of 5 runs of about seconds / 5 each
    (per CPU-second of this thread with cpu=True)."""
    from .. import fastgen

    history = np.full((batch, 1), model.config.quantization_channels // 2, dtype=np.int64)
    rng = np.random.default_rng(0)
    fastgen.run(model, history, rng.random((batch, 50)), 1.0)  # compile / load, and warm the caches

    def timed(n: int, runs: int) -> float:
        u = rng.random((batch, n))
        return best_time(lambda: fastgen.run(model, history, u, 1.0), runs, cpu)

    n = 200
    while (dt := timed(n, 1)) < seconds / 5 and n < 10**7:  # grow the run to about seconds / 5
        n = int(n * min(10.0, max(2.0, seconds / 5 / max(dt, 1e-6))))
    return batch * n / timed(n, 5)


def naive_rate(model, seconds: float) -> float:
    """Samples per CPU-second of the naive sampler, batch 1, with a receptive field of history (so every
    sample pays for a full window, as in a long generation)."""
    from ..sampling import naive_generate

    rf = model.receptive_field
    history = np.random.default_rng(0).integers(0, model.config.quantization_channels, (1, rf))
    dt1 = best_time(lambda: naive_generate(model, history, np.full((1, 1), 0.5), 1.0), 1, cpu=True)
    n = max(2, int(seconds / max(dt1, 1e-6)))
    u = np.random.default_rng(1).random((1, n))
    return n / best_time(lambda: naive_generate(model, history, u, 1.0), 1, cpu=True)


def sgemm_peak(n: int = 1024, cpu: bool = False) -> float:
    """GFLOP/s of an n × n × n float32 matrix product (NumPy's BLAS, the threads of this process): best of 10,
    by the wall clock or (cpu=True) per CPU-second of this thread."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    return 2 * n**3 / best_time(lambda: np.matmul(a, a, out=out), 10, cpu) / 1e9


def weight_traffic(model, n_steps: int = 400) -> dict:
    """Bytes of weights one sample reads, dense and with the ReLU-skipped rows of W1 and W2 left out.

    The skipped fraction depends on the weights; it is measured over n_steps of real generation.
    """
    from .. import fastgen

    c = model.config
    k, R, S, Q = c.kernel_size, c.residual_channels, c.skip_channels, c.quantization_channels
    # every weight is used once per sample (one multiply-add each), plus the k embedding rows looked up
    dense = 4 * (model.macs_per_sample() + k * R)
    history = np.full((1, 1), Q // 2, dtype=np.int64)
    codes = fastgen.run(model, history, np.random.default_rng(0).random((1, n_steps)), 1.0)
    seq = np.concatenate([history, codes], axis=1)
    p, s = fastgen.pack(model.params, c, None, 1), fastgen.new_state(c, 1)
    live1 = live2 = 0.0
    for t in range(n_steps):
        fastgen.network_step(p, s, seq, t, True)
        live1 += float(np.mean(s.skip > 0)) / n_steps  # rows of W1 read
        live2 += float(np.mean(s.a1 > 0)) / n_steps  # rows of W2 read
    read = dense - 4 * ((1 - live1) * S * S + (1 - live2) * S * Q)
    return {"dense_bytes": dense, "read_bytes": read, "w1_rows_read": live1, "w2_rows_read": live2}


def compile_times() -> dict:
    """Seconds to the first generated sample in a fresh process with an empty cache, then in a second
    process with that cache (and the second process's Numba cache hits and misses)."""
    script = (
        "import time; t0 = time.perf_counter()\n"
        "from minwave import WaveNet, WaveNetConfig, fastgen\n"
        "from minwave.sampling import generate\n"
        "model = WaveNet(WaveNetConfig(stacks=1, layers_per_stack=2, residual_channels=4, dilation_channels=4,"
        " skip_channels=4, quantization_channels=8))\n"
        "t1 = time.perf_counter(); generate(model, 10); t2 = time.perf_counter()\n"
        "st = fastgen.sample_steps.stats\n"
        "print(t1 - t0, t2 - t1, sum(st.cache_hits.values()), sum(st.cache_misses.values()))\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        runs = []
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
            imp, first, hits, misses = out.stdout.split()
            runs.append(
                {
                    "import_s": float(imp),
                    "first_call_s": float(first),
                    "cache_hits": int(hits),
                    "cache_misses": int(misses),
                }
            )
    return {"fresh": runs[0], "cached": runs[1]}


def sweep(config, depths, seconds: float, naive_seconds: float | None) -> list[dict]:
    from dataclasses import replace

    from ..model import WaveNet

    rows = []
    for layers in depths:
        model = WaveNet(replace(config, layers_per_stack=layers), seed=0)
        row = {
            "layers_per_stack": layers,
            "layers": model.config.n_layers,
            "receptive_field": model.receptive_field,
            "fast": fast_rate(model, 1, seconds, cpu=True),
        }
        if naive_seconds is not None:
            row["naive"] = naive_rate(model, naive_seconds)
        rows.append(row)
        print(
            f"{PROG}:   depth {layers}: fast {row['fast']:,.0f}/s"
            + (f", naive {row['naive']:,.1f}/s" if "naive" in row else ""),
            file=sys.stderr,
            flush=True,
        )
    return rows


def run_worker(args) -> dict:
    """Every in-process measurement; the parent has set the thread variables for this process."""
    from .. import fastgen  # noqa: F401  (loads Numba and the cached kernels before any timing)
    from ..model import WaveNet

    config = load_config(args.config)
    model = WaveNet(config, seed=0)
    res = {
        "config": config.to_dict(),
        "macs_per_sample": model.macs_per_sample(),
        "receptive_field": model.receptive_field,
    }
    before = machine_cpu_seconds()
    t0 = time.perf_counter()
    print(f"{PROG}: sgemm peak ...", file=sys.stderr, flush=True)
    res["sgemm_gflops"] = sgemm_peak(cpu=True)
    res["sgemm_gflops_wall"] = sgemm_peak()
    print(f"{PROG}: fast sampler, batch 1 and {args.batch} ...", file=sys.stderr, flush=True)
    res["fast_b1"] = fast_rate(model, 1, args.seconds)
    res["fast_bn"] = fast_rate(model, args.batch, args.seconds)
    res["fast_b1_cpu"] = fast_rate(model, 1, args.seconds, cpu=True)
    res["fast_bn_cpu"] = fast_rate(model, args.batch, args.seconds, cpu=True)
    res["batch"] = args.batch
    res["traffic"] = weight_traffic(model)
    if not args.no_naive:
        print(f"{PROG}: naive sampler ...", file=sys.stderr, flush=True)
        res["naive_b1"] = naive_rate(model, args.naive_seconds)
    if not args.no_sweep:
        print(f"{PROG}: depth sweep {args.depths} ...", file=sys.stderr, flush=True)
        res["sweep"] = sweep(
            config, args.depth_range, args.seconds / 2, None if args.no_naive else args.naive_seconds / 3
        )
    after = machine_cpu_seconds()
    if before and after:
        wall = time.perf_counter() - t0
        others = (after[0] - before[0]) - (after[1] - before[1])
        res["other_processes_cpus"] = max(0.0, others / wall)  # average busy CPUs besides this one
    return res


# ====================================================================================== the report
def args_depths(res: dict) -> str:
    per_stack = [row["layers_per_stack"] for row in res["sweep"]]
    return f"{per_stack[0]} … {per_stack[-1]}"


def report(res: dict) -> str:
    import numba

    from ..model import WaveNetConfig

    c = WaveNetConfig.from_dict(res["config"])
    macs, rate_hz = res["macs_per_sample"], c.sample_rate
    tr = res["traffic"]
    lines = [
        f"machine   {cpu_name()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, NumPy {np.__version__}, "
        f"Numba {numba.__version__}",
        "threads   1 (OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS=1 in the measuring process)"
        + (
            f"; other processes kept {res['other_processes_cpus']:.1f} CPUs busy meanwhile"
            if "other_processes_cpus" in res
            else ""
        ),
        f"model     {c.stacks} × {c.layers_per_stack} layers, k = {c.kernel_size}, R = {c.residual_channels}, "
        f"D = {c.dilation_channels}, S = {c.skip_channels}, Q = {c.quantization_channels}; receptive field "
        f"{res['receptive_field']}; {macs:,} multiply-adds and {tr['dense_bytes'] / 1e6:.2f} MB of float32 "
        "weights per sample",
        f"peak      NumPy sgemm 1024³, 1 thread: {res['sgemm_gflops']:.1f} GFLOP/s per CPU-second "
        f"({res['sgemm_gflops_wall']:.1f} by the wall clock)",
        "",
        "          wall clock                       per CPU-second of the sampling thread",
    ]
    B, peak = res["batch"], res["sgemm_gflops"]
    for name, wall, cpu in (
        ("batch 1  ", res["fast_b1"], res["fast_b1_cpu"]),
        (f"batch {B:<3d}", res["fast_bn"], res["fast_bn_cpu"]),
    ):
        lines.append(
            f"fast {name} {wall:8,.0f} samples/s = {wall / rate_hz:4.2f}× real time   {cpu:8,.0f} samples/s = "
            f"{2 * macs * cpu / 1e9:4.1f} GFLOP/s = {100 * 2 * macs * cpu / 1e9 / peak:.0f}% of the sgemm peak"
        )
    b1 = res["fast_b1_cpu"]
    lines.append(
        f"          batch 1 reads {tr['read_bytes'] / 1e6:.2f} MB of weights per sample ({tr['dense_bytes'] / 1e6:.2f} "
        f"dense; the ReLU-zero rows of W1, W2 are skipped: {100 * tr['w1_rows_read']:.0f}% / "
        f"{100 * tr['w2_rows_read']:.0f}% read): {tr['read_bytes'] * b1 / 1e9:.1f} GB/s per CPU-second"
    )
    if "naive_b1" in res:
        nv = res["naive_b1"]
        lines.append(
            f"naive batch 1   {nv:10,.1f} samples per CPU-second   fast is {b1 / nv:,.0f}× faster (per CPU-second both)"
        )
    if "compile" in res:
        fresh, cached = res["compile"]["fresh"], res["compile"]["cached"]
        lines.append(
            f"Numba     first call with an empty cache: {fresh['first_call_s']:.1f} s (compiling); a second "
            f"process: {cached['first_call_s']:.2f} s (cache hits {cached['cache_hits']}, misses "
            f"{cached['cache_misses']})"
        )
    if "sweep" in res:
        lines += [
            "",
            f"depth sweep ({c.stacks} stacks × {args_depths(res)} layers), batch 1, per CPU-second of the thread:",
            "  layers  receptive field    fast samples/s   µs/sample"
            + ("    naive samples/s   ms/sample" if "naive" in res["sweep"][0] else ""),
        ]
        for row in res["sweep"]:
            line = (
                f"  {row['layers']:6d}  {row['receptive_field']:15,d}  {row['fast']:16,.0f}  {1e6 / row['fast']:10.1f}"
            )
            if "naive" in row:
                line += f"  {row['naive']:17,.2f}  {1e3 / row['naive']:10.1f}"
            lines.append(line)
    return "\n".join(lines)


def plot_sweep(rows: list[dict], stacks: int, path: Path) -> None:
    """Left: both samplers on a log scale (naive doubles with every layer per stack). Right: fast alone,
    on a linear scale: a straight line in the number of layers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [r["layers"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.semilogy(layers, [1e6 / r["fast"] for r in rows], "o-", label="fast (queues): O(layers)")
    if "naive" in rows[0]:
        left.semilogy(
            layers,
            [1e6 / r["naive"] for r in rows],
            "s-",
            label=f"naive (forward over the receptive field): O(2^(layers/{stacks}))"
            if stacks > 1
            else "naive (forward over the receptive field): O(2^layers)",
        )
    right.plot(layers, [1e6 / r["fast"] for r in rows], "o-")
    right.set_ylim(bottom=0)
    left.set_title("both samplers (log scale)")
    right.set_title("fast sampler (linear scale)")
    for ax in (left, right):
        ax.set_xlabel(f"layers ({stacks} stacks)")
        ax.set_ylabel("µs per sample (batch 1, one thread)")
        ax.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    fig.suptitle("WaveNet sampling cost against depth")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _main(argv) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(run_worker(args)), flush=True)
        return 0
    load_config(args.config)  # a bad --config fails here, before any process starts
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a folder")
    env = {**os.environ, **{name: "1" for name in THREAD_VARIABLES}}
    worker = subprocess.run(
        [sys.executable, "-m", "minwave.bench", "generate", *argv, "--worker"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    if worker.returncode != 0:
        return worker.returncode
    res = json.loads(worker.stdout.strip().splitlines()[-1][len("RESULT ") :])
    if not args.no_compile:
        print(f"{PROG}: compile time (two fresh processes) ...", file=sys.stderr, flush=True)
        res["compile"] = compile_times()
    print(report(res))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "generation_bench.json").write_text(json.dumps(res, indent=2))
        if "sweep" in res:
            plot_sweep(res["sweep"], res["config"]["stacks"], out / "generation_depth_sweep.png")
        print(
            f"wrote {out / 'generation_bench.json'}"
            + (f" and {out / 'generation_depth_sweep.png'}" if "sweep" in res else "")
        )
    return 0


def main(argv=None) -> int:
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
