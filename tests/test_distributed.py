"""Data-parallel training (minwave/distributed.py): real `mpiexec -n 2` runs of the training CLI.

The MPI tests start mpiexec from the environment's bin folder (the `[mpi]` extra installs mpi4py and
MPICH from PyPI); they are skipped, saying why, only where mpi4py is not installed. The rest needs no MPI.
"""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_CONFIG

from minwave import distributed
from minwave.checkpoint import load
from minwave.data import BatchSampler, Clip


def _mpiexec() -> str | None:
    here = Path(sys.executable).parent / "mpiexec"  # the venv's own launcher first (the mpich wheel)
    return str(here) if here.exists() else shutil.which("mpiexec")


HAS_MPI4PY = importlib.util.find_spec("mpi4py") is not None
MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(
    not (HAS_MPI4PY and MPIEXEC),
    reason='mpi4py or mpiexec is not installed here (pip install -e ".[dev,mpi]" installs both from PyPI)',
)
LAUNCH_TIMEOUT = 120  # s: a hung job fails the test instead of hanging CI


def launcher_flags() -> list[str]:
    """Open MPI refuses more ranks than cores, and root, unless told; MPICH needs nothing."""
    text = subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True).stdout
    return ["--oversubscribe", "--allow-run-as-root"] if "Open MPI" in text or "OpenRTE" in text else []


def train_env(tmp_path, **extra) -> dict:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    env.setdefault("MINWAVE_CACHE", str(tmp_path.parent / "minwave-cache"))
    env.update(extra)
    return env


def train_cmd(n: int | None, *args) -> list[str]:
    cmd = [sys.executable, "-m", "minwave.train", *map(str, args)]
    return cmd if n is None else [MPIEXEC, *launcher_flags(), "-n", str(n), *cmd]


def run_train(n, tmp_path, *args, **env):
    """`mpiexec -n n python -m minwave.train args` (n None: plain python) -> CompletedProcess."""
    return subprocess.run(
        train_cmd(n, *args), env=train_env(tmp_path, **env), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT
    )


@pytest.fixture
def cfg4(tmp_path, builtin_cache):
    """TEST_CONFIG with a global batch of 4: 2 rows per rank on 2 ranks."""
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({**TEST_CONFIG, "batch_size": 4, "checkpoint_every": 5, "eval_every": 5}))
    return path


def state(run_dir):
    """(parameters, Adam state, sampler state, step) of a run's checkpoint."""
    ckpt = load(run_dir)
    return ckpt.model.host_params(), ckpt.optimizer_state, ckpt.sampler_state, ckpt.step


def assert_close(a: dict, b: dict, exact: bool):
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-6, err_msg=k)


# ----------------------------------------------------------------------------------------- with MPI
@needs_mpi
def test_two_ranks_train_the_model_one_process_trains_with_the_same_global_batch(tmp_path, cfg4):
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = run_train(None, tmp_path, "--config", cfg4, "--steps", 10, "--out", one)
    r2 = run_train(2, tmp_path, "--config", cfg4, "--steps", 10, "--out", two)
    assert r1.returncode == 0, r1.stderr[-2000:]
    assert r2.returncode == 0, r2.stderr[-2000:]
    (p1, adam1, sampler1, step1), (p2, adam2, sampler2, step2) = state(one), state(two)
    assert step1 == step2 == 10
    assert sampler1 == sampler2  # the same batches were drawn, split over the ranks
    assert_close(p1, p2, exact=False)  # only the float32 order of the gradient average differs
    assert_close(adam1, adam2, exact=False)
    moved = max(float(np.abs(p2[k] - load(one).model.host_params()[k]).max()) for k in p2)
    assert moved < 1e-4
    # rank 0 alone reports and writes: one summary, one metrics row per step, nothing else in the folder
    assert r2.stdout.count("new run in") == 1 and r2.stdout.count("done ") == 1
    rows = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 11))
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


@needs_mpi
def test_resume_with_two_ranks_is_bit_exact_and_across_rank_counts_continues_the_same_batches(tmp_path, cfg4):
    whole, split, to_one, to_two = (tmp_path / n for n in ("whole", "split", "to_one", "to_two"))
    assert run_train(2, tmp_path, "--config", cfg4, "--steps", 10, "--out", whole).returncode == 0
    assert run_train(2, tmp_path, "--config", cfg4, "--steps", 5, "--out", split).returncode == 0
    r = run_train(2, tmp_path, "--config", cfg4, "--steps", 10, "--out", split, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    (pw, aw, sw, _), (ps, as_, ss, _) = state(whole), state(split)
    assert_close(pw, ps, exact=True)
    assert_close(aw, as_, exact=True)
    assert sw == ss
    # 2 ranks -> 1 process, and 1 process -> 2 ranks: the same batches, the same optimizer state
    assert run_train(2, tmp_path, "--config", cfg4, "--steps", 5, "--out", to_one).returncode == 0
    assert run_train(None, tmp_path, "--config", cfg4, "--steps", 10, "--out", to_one, "--resume").returncode == 0
    assert run_train(None, tmp_path, "--config", cfg4, "--steps", 5, "--out", to_two).returncode == 0
    r = run_train(2, tmp_path, "--config", cfg4, "--steps", 10, "--out", to_two, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    for run_dir in (to_one, to_two):
        p, a, s, step = state(run_dir)
        assert step == 10 and s == sw
        assert_close(pw, p, exact=False)
        assert_close(aw, a, exact=False)


@needs_mpi
def test_a_batch_that_does_not_divide_among_the_ranks_is_one_line(tmp_path, cfg4):
    r = run_train(2, tmp_path, "--config", cfg4, "--steps", 2, "--out", tmp_path / "run", "--batch-size", 3)
    assert r.returncode != 0
    ours = [line for line in r.stderr.splitlines() if line.startswith("minwave.train")]
    assert ours == ["minwave.train: error: --batch-size 3 does not divide among 2 ranks; use a multiple of 2 "
                    "(it is the batch of all ranks together)"]  # fmt: skip
    assert "Traceback" not in r.stderr


def _rank_pid(marker: str, rank: int, deadline: float) -> int:
    """The pid of the training process of `rank` in the job whose environment holds `marker`."""
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                env = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"MINWAVE_TEST_JOB={marker}".encode() in env and f"PMI_RANK={rank}".encode() in env:
                return int(proc.name)
        time.sleep(0.1)
    raise AssertionError(f"no process of rank {rank} found")


def _start_and_hit_rank_1(tmp_path, cfg4, sig, timeout_env: str):
    """Start a long 2-rank run, wait for its first checkpoint, send `sig` to rank 1; -> (exit status,
    stderr, seconds from the signal to the end of the job, run folder)."""
    if not Path("/proc/self/environ").exists():
        pytest.skip("finds rank 1 through /proc (Linux)")
    marker, run_dir = uuid.uuid4().hex, tmp_path / "run"
    env = train_env(tmp_path, MINWAVE_TEST_JOB=marker, MINWAVE_RANK_TIMEOUT=timeout_env)
    cmd = train_cmd(2, "--config", cfg4, "--steps", 100000, "--out", run_dir, "--checkpoint-every", 3)
    job = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        pid = _rank_pid(marker, 1, deadline)
        while not (run_dir / "checkpoint.npz").exists() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.poll() is None, job.stderr.read()[-2000:]
        os.kill(pid, sig)
        hit = time.monotonic()
        _, err = job.communicate(timeout=60)  # bounded: a hang fails here
        return job.returncode, err, time.monotonic() - hit, run_dir
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
        try:
            os.kill(pid, signal.SIGKILL)  # a stopped rank 1, should it have survived
        except (OSError, UnboundLocalError):
            pass


@needs_mpi
def test_a_rank_that_stops_answering_stops_the_job_with_one_line_and_an_intact_checkpoint(tmp_path, cfg4):
    code, err, seconds, run_dir = _start_and_hit_rank_1(tmp_path, cfg4, signal.SIGSTOP, timeout_env="3")
    assert code != 0
    ours = [line for line in err.splitlines() if line.startswith("minwave.train: error")]
    assert len(ours) == 1, err[-2000:]
    assert ours[0].startswith("minwave.train: error: rank 0 of 2: no answer from the other ranks for 3 s")
    assert "Traceback" not in err
    assert seconds < 30
    assert load(run_dir).step % 3 == 0  # the last checkpoint rank 0 wrote, whole


@needs_mpi
def test_a_killed_rank_ends_the_job_within_seconds_and_leaves_the_checkpoint_intact(tmp_path, cfg4):
    code, err, seconds, run_dir = _start_and_hit_rank_1(tmp_path, cfg4, signal.SIGKILL, timeout_env="3")
    assert code != 0
    assert seconds < 30
    assert "Traceback" not in err
    # the launcher stops rank 0 at once (it says so itself); if it did not, rank 0's deadline would, in one line
    assert len([line for line in err.splitlines() if line.startswith("minwave.train")]) <= 1
    assert load(run_dir).step % 3 == 0


@pytest.mark.gpu
@needs_mpi
def test_two_ranks_on_the_gpu_match_one_process(tmp_path, cfg4):
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = run_train(None, tmp_path, "--config", cfg4, "--steps", 10, "--out", one, "--gpu")
    r2 = run_train(2, tmp_path, "--config", cfg4, "--steps", 10, "--out", two, "--gpu")
    assert r1.returncode == 0, r1.stderr[-2000:]
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert_close(state(one)[0], state(two)[0], exact=False)


# ----------------------------------------------------------------------------------------- without MPI
def test_without_a_launcher_nothing_changes_and_mpi4py_is_not_imported():
    code = (
        "import sys, minwave.distributed as d; c = d.connect(environ={}); "
        "print(type(c).__name__, c.rank, c.size, 'mpi4py' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["SingleProcess", "0", "1", "False"]
    loss, grads = distributed.SingleProcess().allreduce_mean(1.5, {"w": np.ones(3, np.float32)})
    assert loss == 1.5 and grads["w"].tolist() == [1, 1, 1]


def test_launcher_detection_and_a_missing_mpi4py_is_one_line(monkeypatch):
    assert distributed.launched_by_mpi({"PMI_SIZE": "2"}) and distributed.launched_by_mpi({"OMPI_COMM_WORLD_SIZE": "2"})
    assert not distributed.launched_by_mpi({"SLURM_PROCID": "0"})  # srun without MPI is not a launch
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py -> ImportError
    with pytest.raises(distributed.DistributedError, match=r'mpi4py is not installed: pip install "minwave\[mpi\]"'):
        distributed.connect(environ={"PMI_SIZE": "2", "PMI_RANK": "0"})


@pytest.mark.parametrize("text", ["0", "-1", "soon", "inf"])
def test_a_bad_rank_timeout_is_rejected(text):
    with pytest.raises(distributed.DistributedError, match="MINWAVE_RANK_TIMEOUT"):
        distributed.rank_timeout({"MINWAVE_RANK_TIMEOUT": text})
    assert distributed.rank_timeout({"MINWAVE_RANK_TIMEOUT": "2.5"}) == 2.5
    assert distributed.rank_timeout({}) == distributed.DEFAULT_TIMEOUT_S


def test_the_ranks_shards_together_are_the_one_process_batch():
    rng = np.random.default_rng(0)
    tag_vectors = np.eye(2, dtype=np.float32)
    clips = [
        Clip(f"c{i}", rng.integers(0, 8, n), tag_vector=tag_vectors[i % 2]) for i, n in enumerate([300, 50, 1000, 700])
    ]
    whole = BatchSampler(clips, 2, 40, 10, 6, seed=3, quantization_channels=8)
    parts = [BatchSampler(clips, 2, 40, 10, 6, seed=3, quantization_channels=8, shard=(r, 3)) for r in range(3)]
    for _ in range(4):
        x, tags = whole.sample()
        xs, ts = zip(*(p.sample() for p in parts))
        np.testing.assert_array_equal(np.concatenate(xs), x)
        np.testing.assert_array_equal(np.concatenate(ts), tags)
    assert all(p.get_state() == whole.get_state() for p in parts)  # one state resumes any rank count
    with pytest.raises(ValueError, match="divisible"):
        BatchSampler(clips, 2, 40, 10, 6, quantization_channels=8, shard=(0, 4))
    with pytest.raises(ValueError, match="rank"):
        BatchSampler(clips, 2, 40, 10, 6, quantization_channels=8, shard=(3, 3))


class FakeMPI:
    """Just enough of mpi4py.MPI for MPIComm, acting as N ranks that all hold the same data."""

    IN_PLACE, SUM, COMM_TYPE_SHARED = object(), object(), object()

    class Request:
        def Test(self):
            return True

    def __init__(self, size):
        outer = self

        class Comm:
            def Get_rank(self):
                return 0

            def Get_size(self):
                return size

            def Split_type(self, kind):
                return self

            def Free(self):
                pass

            def Iallreduce(self, inplace, buf, op):
                assert inplace is outer.IN_PLACE and op is outer.SUM and isinstance(buf, np.ndarray)
                outer.messages.append(buf.size)
                buf *= size  # N ranks with the same contribution
                return outer.Request()

            def Abort(self, code):
                pass

        self.COMM_WORLD, self.messages = Comm(), []


def test_allreduce_mean_sends_one_flat_buffer_and_returns_means(monkeypatch, backend):
    monkeypatch.setattr(distributed.atexit, "register", lambda f: None)
    mpi = FakeMPI(size=4)
    comm = distributed.MPIComm(mpi, timeout_s=1.0)
    xp = backend.xp
    grads = {"a": xp.ones((2, 3), dtype=xp.float32), "b": xp.full((4,), 0.25, dtype=xp.float32)}
    loss, mean = comm.allreduce_mean(2.0, grads)
    assert mpi.messages == [6 + 4 + 1]  # one message: every gradient and the loss
    assert loss == 2.0 and mean.keys() == grads.keys()
    for k in grads:
        assert mean[k].shape == grads[k].shape and isinstance(mean[k], type(grads[k]))
        np.testing.assert_array_equal(backend.to_host(mean[k]), backend.to_host(grads[k]))


def test_allreduce_mean_on_the_strict_cupy_stand_in_crosses_to_the_host_only_for_mpi(monkeypatch):
    from strict_xp import StrictArray, strict_backend

    monkeypatch.setattr(distributed.atexit, "register", lambda f: None)
    mpi = FakeMPI(size=2)  # its Iallreduce asserts that MPI is handed a host array
    comm = distributed.MPIComm(mpi, timeout_s=1.0)
    with strict_backend() as backend:
        grads = {"a": backend.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))}
        loss, mean = comm.allreduce_mean(0.5, grads)
        assert isinstance(mean["a"], StrictArray) and loss == 0.5
        np.testing.assert_array_equal(backend.to_host(mean["a"]), np.arange(6).reshape(2, 3))


# ----------------------------------------------------------------------------------------- the benchmark
def test_bench_ranks_options_are_checked(capsys):
    from minwave.bench import train as bench

    for bad in ("0,2", "one", ""):
        assert bench.main(["--ranks", bad]) == 2
        assert "--ranks must be positive integers" in capsys.readouterr().err
    assert bench.main(["--ranks", "1,2", "--compare-torch"]) == 2
    assert "give one of them" in capsys.readouterr().err


@needs_mpi
def test_bench_ranks_times_one_and_two_ranks(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({k: TEST_CONFIG[k] for k in ("stacks", "layers_per_stack", "residual_channels")}))
    cmd = [sys.executable, "-m", "minwave.bench", "train", "--ranks", "1,2", "--config", str(cfg)]
    r = subprocess.run(
        [*cmd, "--batch-size", "2", "--segment", "64", "--steps", "2", "--warmup", "1"],
        capture_output=True, text=True, timeout=LAUNCH_TIMEOUT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [line.split() for line in r.stdout.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert [(row[0], row[1]) for row in rows] == [("1", "2"), ("2", "1")]  # ranks, rows per rank
    r = subprocess.run([*cmd, "--batch-size", "3"], capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    assert r.returncode == 2 and r.stderr.strip().endswith("does not divide among 2 ranks; use a multiple of each N")


def test_docs_show_the_current_allreduce_mean():
    import inspect
    import textwrap

    source = textwrap.dedent(inspect.getsource(distributed.MPIComm.allreduce_mean)).strip()
    assert source in (Path(__file__).parents[1] / "docs" / "distributed.md").read_text(encoding="utf-8")
