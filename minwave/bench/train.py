"""Training-step benchmark: `python -m minwave.bench train`, optionally against PyTorch on the same machine.

    python -m minwave.bench train                          # the default case, all cores
    python -m minwave.bench train --threads 1 --compare-torch
    python -m minwave.bench train --backend cupy --batch-size 16 --compare-torch    # on a GPU
    python -m minwave.bench train --ranks 1,2              # data-parallel: 1 and 2 MPI ranks, 1 thread each

--ranks N1,N2,…: the same global batch trained by N MPI ranks (`mpiexec -n N`, each rank B/N rows, one
thread unless --threads says otherwise), with the gradient average (distributed.allreduce_mean) in the
step. Reported: samples/s for each N, the speed-up over the first N and the efficiency against perfect
scaling of the first N's rate measured in the same run, and the time the Allreduce itself takes.

One step is what training does: loss_and_grads (forward and backward) and an Adam update. The step is
timed after warm-up and the median reported, with samples per second (predicted samples: batch ×
segment), GFLOP/s, the GEMM floor and the peak memory.

How it measures, and why:
- Threads are fixed before NumPy, OpenBLAS, Numba or PyTorch start their thread pools: every
  measurement runs in a fresh worker process (`python -m minwave.bench.train --worker …`) whose
  environment sets OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS; PyTorch also gets torch.set_num_threads.
- --compare-torch builds the same network in PyTorch (torch_wavenet below: the same weights, the same
  positions, the same loss, Adam with the same settings), first checks that both compute the same loss
  and gradients from the same weights (so equal work is compared), then times the two alternately in
  one process: a disturbance on the machine hits both.
- Peak memory is the peak resident set size (ru_maxrss) of a worker that trains one framework alone,
  so neither pays for the other's libraries or arrays; on a GPU, the bytes held by the memory pool
  (CuPy) or the peak allocated (PyTorch).
- The GEMM floor: a step costs about 3× the forward pass's multiply-adds (forward, and in backward one
  product for the input gradient and one for the weight gradient), and no step can beat that many
  FLOPs at this machine's sgemm rate, measured on a large square product with the same threads.
- Other processes: on Linux the CPU time the rest of the machine used during the timed steps is
  reported; a busy machine makes every number slower.

Legend: B batch rows, T segment (predicted samples per row), RF receptive field.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..cli.errors import ArgumentParser, CLIError, UsageError, run_cli
from . import THREAD_VARIABLES, cpu_name, machine_cpu_seconds

PROG = "minwave.bench train"
LR = 1e-3  # Adam's settings, the same on both sides: lr, betas (0.9, 0.999), eps 1e-8, no clipping


# ====================================================================================== the case
def parse_args(argv):
    p = ArgumentParser(prog="python -m minwave.bench train", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--config",
        default=None,
        help="a preset (tiny, small, paper) or a train --config JSON file: its model, batch size and segment; "
        "default: WaveNetConfig() (2 × 10 layers, channels 32/32/256, Q 256), batch 4, segment 8000",
    )
    p.add_argument("--batch-size", type=int, default=None, help="rows per step (default 4, or the --config's)")
    p.add_argument("--segment", type=int, default=None, help="predicted samples per row (default 8000, or --config's)")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for every library (default: all cores)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per framework (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--compare-torch", action="store_true", help="time the same network in PyTorch too")
    p.add_argument(
        "--ranks",
        default=None,
        metavar="N1,N2",
        help="data-parallel: time the step with each number of MPI ranks (mpiexec -n N; needs the [mpi] extra); "
        "--batch-size stays the global batch, threads per rank default to 1",
    )
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: see spawn()
    p.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("batch_size", "segment", "steps", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.warmup < 0:
        raise UsageError(f"--warmup must be >= 0, got {args.warmup}")
    if args.ranks is not None:
        try:
            args.ranks = [int(n) for n in args.ranks.split(",")]
        except ValueError:
            args.ranks = []
        if not args.ranks or min(args.ranks) < 1:
            raise UsageError(f"--ranks must be positive integers separated by commas, e.g. 1,2; got {args.ranks!r}")
        if args.compare_torch:
            raise UsageError("--ranks and --compare-torch time different things; give one of them")
    return args


def load_case(args) -> tuple:
    """--config, --batch-size, --segment -> (WaveNetConfig, batch size, segment).

    A preset or config file gives the network and its batch size and segment; the command line
    overrides those two. Its other training settings (steps, lr, …) do not change what one step costs.
    """
    from ..model import WaveNetConfig
    from ..presets import PRESETS

    model, train = {}, {"batch_size": 4, "segment": 8000}
    if args.config in PRESETS:
        preset = PRESETS[args.config]
        model, train = dict(preset.model), preset.train_defaults()
    elif args.config is not None:
        from ..settings import read_config_file

        if not Path(args.config).is_file():
            raise UsageError(f"--config: {args.config!r} is neither a preset ({', '.join(PRESETS)}) nor a file")
        model, given = read_config_file(args.config)
        train.update(given)
    try:
        config = WaveNetConfig(**model)
    except ValueError as exc:
        raise UsageError(f"--config: {exc}") from None
    batch = args.batch_size if args.batch_size is not None else train["batch_size"]
    segment = args.segment if args.segment is not None else train["segment"]
    return config, batch, segment


def forward_macs(model, batch: int, segment: int) -> int:
    """Multiply-adds of one forward pass of the training loss on (batch, segment + RF) codes.

    Layer l runs on the positions its outputs are needed at (model._input_starts): fewer than the full
    row for all but the lowest layers. The skip sum and head run on the batch × segment loss positions.
    """
    L = model.config.n_layers
    T = segment + model.receptive_field - 1  # the network's input length: the last code is only a target
    first = model._input_starts(model.receptive_field - 1)
    macs = sum(batch * (T - first[i + 1]) * model.layer_macs(i) for i in range(L))
    return macs + batch * segment * model.output_macs()  # skip sum and head at the loss positions


# ====================================================================================== PyTorch mirror
def torch_wavenet(params: dict, config, device: str, dtype: str = "float32"):
    """The same network in idiomatic PyTorch: channels-first Conv1d, valid (unpadded) convolutions.

    params: minwave's host parameters, copied in as `dtype`. Returns (loss_fn(codes, segment) -> loss
    tensor, the torch parameters by name, to_minwave(grads) giving gradients minwave's names and shapes).

    Each dilated layer shortens the sequence by (k-1)·d, so layer l produces exactly the positions
    minwave's layer l computes in training (model._input_starts); each layer's skip projection reads
    its last `segment` positions, and the per-layer skip projections are summed, as usual in PyTorch
    WaveNets. The loss is F.cross_entropy over the same B × segment positions.
    """
    import torch
    import torch.nn.functional as F

    c = config
    L, D, k = c.n_layers, c.dilation_channels, c.kernel_size

    def param(a):
        return torch.nn.Parameter(torch.tensor(np.ascontiguousarray(a), dtype=getattr(torch, dtype), device=device))

    # torch's conv1d weight is (C_out, C_in, k) and its tap j reads input t + j·d of output t: minwave's
    # tap j (delay (k-1-j)·d) is the same tap, so the weight is W.transpose(2, 1, 0).
    tp = {"input.W": param(params["input.W"]), "input.b": param(params["input.b"])}
    for i in range(L):
        tp[f"layers.{i}.dilated.W"] = param(params[f"layers.{i}.dilated.W"].transpose(2, 1, 0))
        tp[f"layers.{i}.dilated.b"] = param(params[f"layers.{i}.dilated.b"])
        if i < L - 1:
            tp[f"layers.{i}.residual.W"] = param(params[f"layers.{i}.residual.W"].T[:, :, None])
            tp[f"layers.{i}.residual.b"] = param(params[f"layers.{i}.residual.b"])
        tp[f"skip.W.{i}"] = param(params["skip.W"][i * D : (i + 1) * D].T[:, :, None])  # (S, D, 1)
    tp["skip.b"] = param(params["skip.b"])
    tp["head.W1"], tp["head.b1"] = param(params["head.W1"].T[:, :, None]), param(params["head.b1"])
    tp["head.W2"], tp["head.b2"] = param(params["head.W2"].T[:, :, None]), param(params["head.b2"])

    def loss_fn(codes, segment: int):
        inp = codes[:, :-1]  # (B, T) the network's input; codes[:, RF:] are the targets
        T = inp.shape[1]
        h = sum(F.embedding(inp[:, j : T - (k - 1) + j], tp["input.W"][j]) for j in range(k))
        h = (h + tp["input.b"]).transpose(1, 2)  # (B, R, T - k + 1)
        skip = 0
        for i, dilation in enumerate(c.dilations):
            pre = F.conv1d(h, tp[f"layers.{i}.dilated.W"], tp[f"layers.{i}.dilated.b"], dilation=dilation)
            f, g = pre.chunk(2, dim=1)
            z = torch.tanh(f) * torch.sigmoid(g)  # (B, D, T_l)
            skip = skip + F.conv1d(z[:, :, -segment:], tp[f"skip.W.{i}"])
            if i < L - 1:
                res = F.conv1d(z, tp[f"layers.{i}.residual.W"], tp[f"layers.{i}.residual.b"])
                h = h[:, :, (k - 1) * dilation :] + res
        skip = skip + tp["skip.b"][:, None]
        hidden = F.relu(F.conv1d(F.relu(skip), tp["head.W1"], tp["head.b1"]))
        logits = F.conv1d(hidden, tp["head.W2"], tp["head.b2"])  # (B, Q, segment)
        return F.cross_entropy(logits, codes[:, -segment:])

    def to_minwave(grads: dict) -> dict:
        """torch gradients (by torch parameter name) -> minwave names and shapes, on the host."""
        g = {name: value.detach().cpu().numpy() for name, value in grads.items()}
        out = {"input.W": g["input.W"], "input.b": g["input.b"]}
        for i in range(L):
            out[f"layers.{i}.dilated.W"] = g[f"layers.{i}.dilated.W"].transpose(2, 1, 0)
            out[f"layers.{i}.dilated.b"] = g[f"layers.{i}.dilated.b"]
            if i < L - 1:
                out[f"layers.{i}.residual.W"] = g[f"layers.{i}.residual.W"][:, :, 0].T
                out[f"layers.{i}.residual.b"] = g[f"layers.{i}.residual.b"]
        out["skip.W"] = np.concatenate([g[f"skip.W.{i}"][:, :, 0].T for i in range(L)])
        out["skip.b"] = g["skip.b"]
        out["head.W1"], out["head.b1"] = g["head.W1"][:, :, 0].T, g["head.b1"]
        out["head.W2"], out["head.b2"] = g["head.W2"][:, :, 0].T, g["head.b2"]
        return out

    return loss_fn, tp, to_minwave


# ====================================================================================== the workers
class MinwaveRunner:
    """One minwave training step on a fixed batch: loss_and_grads + Adam."""

    def __init__(self, case: dict, seed: int = 1):
        from ..backend import get_backend, keep_freed_host_memory
        from ..model import WaveNet, WaveNetConfig
        from ..optim import Adam

        keep_freed_host_memory()  # as python -m minwave.train does (process-wide: PyTorch's steps get it too)
        self.backend = get_backend(case["backend"])
        self.model = WaveNet(WaveNetConfig.from_dict(case["config"]), seed=0, backend=self.backend)
        rng = np.random.default_rng(seed)
        rows = case["segment"] + self.model.receptive_field  # RF - 1 codes of context + segment + 1 target
        self.host_codes = rng.integers(0, self.model.config.quantization_channels, (case["batch_size"], rows))
        self.codes = self.backend.asarray(self.host_codes)
        self.opt = Adam(self.model.params, lr=LR)

    def step(self) -> float:
        loss, grads = self.model.loss_and_grads(self.codes)
        self.opt.step(self.model.params, grads)
        self.backend.synchronize()
        return loss


class TorchRunner:
    """The same step in PyTorch: forward, backward, torch.optim.Adam."""

    def __init__(self, case: dict, host_params: dict, host_codes: np.ndarray, dtype: str = "float32"):
        import torch

        from ..model import WaveNetConfig

        self.torch = torch
        self.device = "cuda" if case["backend"] == "cupy" else "cpu"
        if self.device == "cuda":
            torch.backends.cudnn.benchmark = True  # let cuDNN pick its fastest convolution algorithms
        config = WaveNetConfig.from_dict(case["config"])
        self.loss_fn, self.params, self.to_minwave = torch_wavenet(host_params, config, self.device, dtype)
        self.codes = torch.tensor(host_codes, device=self.device)
        self.segment = case["segment"]
        self.opt = torch.optim.Adam(self.params.values(), lr=LR)

    def loss_and_grads(self):
        for p in self.params.values():
            p.grad = None
        loss = self.loss_fn(self.codes, self.segment)
        loss.backward()
        return loss.item(), self.to_minwave({name: p.grad for name, p in self.params.items()})

    def step(self) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.codes, self.segment)
        loss.backward()
        self.opt.step()
        if self.device == "cuda":
            self.torch.cuda.synchronize()
        return loss.item()


def verify_same_work(mw: MinwaveRunner, case: dict) -> dict:
    """Do both networks compute the same loss and gradients from the same weights and codes?

    Checked in float64, where two correct implementations agree to ~1e-12: in float32 a ReLU input
    within rounding of 0 can land on either side of the kink in the two frameworks (seen in the default
    case: one of 8 M hidden units), which moves a few gradient entries by percents and proves nothing.
    The float32 losses of the timed networks are compared too.
    """
    from ..backend import to_host
    from ..model import WaveNet, WaveNetConfig

    config = WaveNetConfig.from_dict(case["config"])
    host_params = mw.model.host_params()
    mw64 = WaveNet(config, dtype="float64", backend=mw.backend)
    mw64.load_params(host_params)
    loss, grads = mw64.loss_and_grads(mw.codes)
    tr64 = TorchRunner(case, host_params, mw.host_codes, dtype="float64")
    torch_loss, torch_grads = tr64.loss_and_grads()
    worst_name, worst = "", 0.0
    for name, g in grads.items():
        a, b = to_host(g), torch_grads[name]
        if a.shape != b.shape:
            raise CLIError(f"gradient {name}: shape {a.shape} in minwave, {b.shape} in PyTorch")
        err = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))
        if err > worst:
            worst_name, worst = name, err
    loss_err = abs(loss - torch_loss) / abs(torch_loss)
    del mw64, tr64, grads, torch_grads
    loss32 = mw.model.loss(mw.codes)
    torch_loss32 = float(TorchRunner(case, host_params, mw.host_codes).loss_and_grads()[0])
    loss32_err = abs(loss32 - torch_loss32) / abs(torch_loss32)
    if loss_err > 1e-10 or worst > 1e-8 or loss32_err > 1e-5:
        raise CLIError(
            f"minwave and PyTorch disagree (float64 loss {loss:.12f} vs {torch_loss:.12f}, gradient "
            f"{worst_name} relative difference {worst:.1e}; float32 losses {loss32:.6f} vs {torch_loss32:.6f}): "
            "the comparison would not be of equal work"
        )
    return {"loss": loss32, "torch_loss": torch_loss32, "loss_rel_err": loss_err, "grad_rel_err": worst}


def sgemm_rate(backend) -> float:
    """GFLOP/s of a large float32 matrix product on this backend with the current threads."""
    xp = backend.xp
    n = 2048 if backend.name == "numpy" else 8192
    a = backend.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype=np.float32)
    times = []
    for _ in range(6):
        backend.synchronize()
        t0 = time.perf_counter()
        xp.matmul(a, a)
        backend.synchronize()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / float(np.median(times[1:])) / 1e9


def worker_time(case: dict) -> dict:
    """Verify (with PyTorch), then time warm-up + steps of each framework, alternating."""
    threads = case["threads"]
    mw = MinwaveRunner(case)
    result = {"sgemm_gflops": sgemm_rate(mw.backend)}
    runners = {"minwave": mw}
    if case["compare_torch"]:
        import torch

        torch.set_num_threads(threads)
        result["verify"] = verify_same_work(mw, case)
        tr = TorchRunner(case, mw.model.host_params(), mw.host_codes)
        result["torch_version"] = torch.__version__
        runners["torch"] = tr
    for _ in range(case["warmup"]):
        for runner in runners.values():
            runner.step()
    times = {name: [] for name in runners}
    cpu_times = {name: [] for name in runners}  # CPU seconds of the whole process (all its threads)
    before = machine_cpu_seconds()
    wall0 = time.perf_counter()
    for _ in range(case["steps"]):
        for name, runner in runners.items():
            t0, c0 = time.perf_counter(), time.process_time()
            runner.step()
            times[name].append(time.perf_counter() - t0)
            cpu_times[name].append(time.process_time() - c0)
    wall = time.perf_counter() - wall0
    after = machine_cpu_seconds()
    if before is not None and after is not None:
        others = (after[0] - before[0]) - (after[1] - before[1])
        result["others_busy"] = max(0.0, others / (wall * (os.cpu_count() or 1)))
    result["times"], result["cpu_times"] = times, cpu_times
    return result


def worker_memory(case: dict, framework: str) -> dict:
    """Train one framework alone for warm-up + 3 steps and report its peak memory."""
    mw = MinwaveRunner(case)
    if framework == "torch":
        import torch

        torch.set_num_threads(case["threads"])
        runner = TorchRunner(case, mw.model.host_params(), mw.host_codes)
        del mw  # only the PyTorch network stays
    else:
        runner = mw
    for _ in range(case["warmup"] + 3):
        runner.step()
    result = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}  # Linux: KiB
    if case["backend"] == "cupy":
        if framework == "torch":
            result["peak_device_bytes"] = runner.torch.cuda.max_memory_allocated()
        else:
            result["peak_device_bytes"] = runner.backend.device_memory_held()
    return result


def worker_ranks(case: dict) -> dict | None:
    """One rank of `mpiexec -n N`: warm-up + timed steps of loss_and_grads, allreduce_mean and Adam on
    this rank's B/N rows. Rank 0 returns the step times and the Allreduce times; the others None."""
    from .. import distributed

    comm = distributed.connect(gpu=case["backend"] == "cupy")
    if case["batch_size"] % comm.size:
        raise UsageError(f"--batch-size {case['batch_size']} does not divide among {comm.size} ranks")
    mw = MinwaveRunner({**case, "batch_size": case["batch_size"] // comm.size}, seed=1 + comm.rank)
    comm.broadcast_params(mw.model.params)
    step_times, reduce_times, cpu_times = [], [], []
    for i in range(case["warmup"] + case["steps"]):
        if i == case["warmup"]:
            before, cpu0, wall0 = machine_cpu_seconds(), time.process_time(), time.perf_counter()
        t0, c0 = time.perf_counter(), time.process_time()
        loss, grads = mw.model.loss_and_grads(mw.codes)
        t1 = time.perf_counter()
        loss, grads = comm.allreduce_mean(loss, grads)
        t2 = time.perf_counter()
        mw.opt.step(mw.model.params, grads)
        mw.backend.synchronize()
        if i >= case["warmup"]:
            step_times.append(time.perf_counter() - t0)
            reduce_times.append(t2 - t1)
            cpu_times.append(time.process_time() - c0)
    wall, after = time.perf_counter() - wall0, machine_cpu_seconds()
    grads, alone = {name: g.copy() for name, g in grads.items()}, []
    for _ in range(10):  # the Allreduce by itself: every rank enters it at the same moment
        comm.comm.Barrier()
        t0 = time.perf_counter()
        comm.allreduce_mean(loss, grads)
        alone.append(time.perf_counter() - t0)
    ranks_cpu = comm.comm.allreduce(time.process_time() - cpu0)  # CPU seconds of all ranks (a benchmark-only sum)
    result = {"ranks": comm.size, "times": step_times, "allreduce_times": reduce_times, "cpu_times": cpu_times}
    result["allreduce_alone"] = alone
    if before is not None and after is not None:  # on one machine: what the rest of it used meanwhile
        result["others_busy"] = max(0.0, ((after[0] - before[0]) - ranks_cpu) / (wall * (os.cpu_count() or 1)))
    result["param_bytes"] = sum(int(p.nbytes) for p in mw.model.params.values())
    comm.close()
    return result if comm.rank == 0 else None


def run_worker(args) -> int:
    case = json.loads(args.case)
    if args.worker == "ranks":
        result = worker_ranks(case)
        if result is None:
            return 0  # rank 0 reports
    elif args.worker == "time":
        result = worker_time(case)
    elif args.worker in ("memory-minwave", "memory-torch"):
        result = worker_memory(case, args.worker.split("-")[1])
    else:
        raise UsageError(f"unknown worker {args.worker!r}")
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def spawn(worker: str, case: dict, ranks: int | None = None) -> dict:
    """Run a worker in a fresh process with the thread count in its environment; return its result.
    ranks: start it as `mpiexec -n ranks` instead."""
    env = dict(os.environ)
    env.update({name: str(case["threads"]) for name in THREAD_VARIABLES})
    cmd = [sys.executable, "-m", "minwave.bench.train", "--worker", worker, "--case", json.dumps(case)]
    if ranks is not None:
        cmd = [mpiexec(), "-n", str(ranks), *cmd]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CLIError(f"the {worker} worker failed: {tail[0]}")
    return json.loads(lines[-1][len("RESULT ") :])


def mpiexec() -> str:
    """The MPI launcher beside this Python (the [mpi] extra's), else the one on PATH."""
    import shutil

    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if found is None or importlib.util.find_spec("mpi4py") is None:
        raise UsageError('--ranks needs mpi4py and mpiexec: pip install "minwave[mpi]"')
    return found


# ====================================================================================== the report
def report_ranks(case: dict, model, results: dict[int, dict]) -> str:
    """Samples/s per rank count; speed-up and efficiency against the first count's rate × N / N0."""
    c = model.config
    B, T = case["batch_size"], case["segment"]
    threads = f"{case['threads']} thread{'s' if case['threads'] > 1 else ''} per rank"
    device = f"{threads}, {cpu_name()}, {os.cpu_count()} CPUs" if case["backend"] == "numpy" else "one GPU per rank"
    first = min(results)
    base = B * T / float(np.median(results[first]["times"]))  # samples/s with the first rank count
    param_bytes = results[first]["param_bytes"]
    lines = [
        f"network   {c.stacks} stacks × {c.layers_per_stack} layers, residual {c.residual_channels}, dilation "
        f"{c.dilation_channels}, skip {c.skip_channels}, Q {c.quantization_channels}: {param_bytes / 1e6:.2f} MB "
        "of float32 gradients per Allreduce",
        f"case      global batch {B} × {T} predicted samples, float32, {case['backend']}, {device}",
        "",
        f"{'ranks':>5}{'rows/rank':>11}{'step (median)':>15}{'samples/s':>11}{'speed-up':>10}{'efficiency':>12}"
        f"{'allreduce':>12}{'alone':>10}{'CPU s/step':>12}",
    ]
    for n in sorted(results):
        r = results[n]
        step = float(np.median(r["times"]))
        rate = B * T / step
        speedup = rate / base
        lines.append(
            f"{n:>5}{B // n:>11}{step:>13.3f} s{rate:>11,.0f}{speedup:>9.2f}×{speedup * first / n:>11.0%}"
            f"{1e3 * float(np.median(r['allreduce_times'])):>9.2f} ms"
            f"{1e3 * float(np.median(r['allreduce_alone'])):>7.2f} ms{float(np.median(r['cpu_times'])):>12.3f}"
        )
    busy = {n: r["others_busy"] for n, r in results.items() if r.get("others_busy", 0.0) > 0.05}
    if busy:
        lines.append(
            "warning   other processes kept the CPUs busy while timing ("
            + ", ".join(f"{100 * b:.0f}% with {n} rank{'s' if n > 1 else ''}" for n, b in sorted(busy.items()))
            + "): those rates are lower than on a quiet machine"
        )
    lines += [
        "",
        f"efficiency: samples/s ÷ (N / {first} × the {first}-rank samples/s of this run). The allreduce column is the "
        "median time in allreduce_mean on rank 0 during the steps, which includes waiting for the slowest rank; alone: "
        "the same call when all ranks enter it together (packing, the Allreduce, unpacking); CPU s/step is "
        "rank 0's CPU time per step (its step time on a core of its own).",
    ]
    return "\n".join(lines)


def report(case: dict, model, timing: dict, memory: dict) -> str:
    c = model.config
    B, T = case["batch_size"], case["segment"]
    macs = forward_macs(model, B, T)
    step_flops = 3 * 2 * macs
    floor = step_flops / (timing["sgemm_gflops"] * 1e9)
    threads = f"{case['threads']} thread{'s' if case['threads'] > 1 else ''}"
    device = f"{threads}, {cpu_name()}" if case["backend"] == "numpy" else "GPU"
    lines = [
        f"network   {c.stacks} stacks × {c.layers_per_stack} layers, kernel {c.kernel_size}, residual "
        f"{c.residual_channels}, dilation {c.dilation_channels}, skip {c.skip_channels}, Q "
        f"{c.quantization_channels} (receptive field {model.receptive_field})",
        f"case      batch {B} × {T} predicted samples (rows of {T + model.receptive_field} codes), float32, "
        f"{case['backend']}, {device}",
        f"work      forward {macs / 1e9:.2f} G multiply-adds; step ≈ 3 × forward = {step_flops / 1e9:.1f} GFLOP",
        f"floor     sgemm {timing['sgemm_gflops']:.1f} GFLOP/s here -> GEMM floor {floor:.3f} s per step",
    ]
    if "verify" in timing:
        v = timing["verify"]
        lines.append(
            f"verified  same weights and codes -> same loss and gradients: in float64, loss rel. diff "
            f"{v['loss_rel_err']:.0e}, worst gradient {v['grad_rel_err']:.0e}; float32 loss {v['loss']:.6f} "
            f"(PyTorch {v['torch_loss']:.6f})"
        )
    header = f"{'':10}{'step (median)':>14}{'samples/s':>11}{'GFLOP/s':>9}{'× floor':>9}{'CPU s/step':>12}"
    lines += ["", header + f"{'peak memory':>14}"]
    medians = {}
    for name, times in timing["times"].items():
        median = float(np.median(times))
        medians[name] = median
        mem = memory.get(name, {})
        mem_text = f"{mem['peak_rss_bytes'] / 1e9:.2f} GB RSS" if "peak_rss_bytes" in mem else "-"
        if "peak_device_bytes" in mem:
            mem_text = f"{mem['peak_device_bytes'] / 1e9:.2f} GB GPU"
        label = "minwave" if name == "minwave" else "PyTorch"
        cpu = float(np.median(timing["cpu_times"][name]))
        lines.append(
            f"{label:<10}{median:>12.3f} s{B * T / median:>11,.0f}{step_flops / median / 1e9:>9.1f}"
            f"{median / floor:>9.2f}{cpu:>12.3f}{mem_text:>14}"
        )
    if "torch" in medians:
        ratio = medians["minwave"] / medians["torch"]
        lines += [
            "",
            f"ratio     minwave / PyTorch {timing['torch_version']} step time = {ratio:.2f} "
            "(same process, alternating runs)",
        ]
    if timing.get("others_busy", 0.0) > 0.05:
        lines.append(
            f"warning   other processes kept {100 * timing['others_busy']:.0f}% of the CPUs busy while timing: "
            "the step times above are slower than on a quiet machine"
            + (" (with 1 thread, CPU s/step is the step time on an idle core)" if case["threads"] == 1 else "")
        )
    return "\n".join(lines)


def _main(argv) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        return run_worker(args)
    if args.compare_torch:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            raise UsageError("--compare-torch needs PyTorch (pip install torch); minwave itself does not")
    from ..backend import get_backend
    from ..model import WaveNet

    config, batch, segment = load_case(args)
    get_backend(args.backend)  # fails here, with the fix, when CuPy or a GPU is missing
    if args.ranks is not None:
        launcher = mpiexec()  # fails here, with the fix, when MPI is missing
        bad = [n for n in args.ranks if batch % n]
        if bad:
            raise UsageError(f"--batch-size {batch} does not divide among {bad[0]} ranks; use a multiple of each N")
        case = {
            "config": config.to_dict(),
            "batch_size": batch,
            "segment": segment,
            "backend": args.backend,
            "threads": args.threads or 1,
            "steps": args.steps,
            "warmup": args.warmup,
        }
        print(
            f"{PROG}: timing {args.warmup} + {args.steps} steps with {launcher} -n N ...", file=sys.stderr, flush=True
        )
        results = {n: spawn("ranks", case, ranks=n) for n in args.ranks}
        print(report_ranks(case, WaveNet(config, backend="numpy"), results))
        return 0
    case = {
        "config": config.to_dict(),
        "batch_size": batch,
        "segment": segment,
        "backend": args.backend,
        "threads": args.threads or os.cpu_count() or 1,
        "steps": args.steps,
        "warmup": args.warmup,
        "compare_torch": args.compare_torch,
    }
    print(f"{PROG}: timing {args.warmup} + {args.steps} steps per framework ...", file=sys.stderr, flush=True)
    timing = spawn("time", case)
    memory = {"minwave": spawn("memory-minwave", case)}
    if args.compare_torch:
        memory["torch"] = spawn("memory-torch", case)
    print(report(case, WaveNet(config, backend="numpy"), timing, memory))
    return 0


def main(argv=None) -> int:
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
