"""Data-parallel training: N processes, one model, gradients averaged with one MPI Allreduce per step.

    mpiexec -n 2 python -m minwave.train [the usual options]     # 2 ranks, --batch-size is the global batch

Every rank holds the whole model and draws its own B/N rows of the global batch of B (data.BatchSampler's
`shard`); after backward, the gradients of all ranks are averaged, so every rank applies the same Adam
update to the same parameters and they stay identical without ever being sent again:

    g = (1/N) Σ_r g_r       g_r: the mean gradient over rank r's B/N rows  ->  the mean over all B rows

The average is one `Allreduce(MPI.IN_PLACE, buffer, op=SUM)` over a single flat float32 buffer that
holds every gradient end to end plus the loss (one message, no pickling; docs/distributed.md explains how
MPI does it with a ring, and what it costs).

    comm = connect()                          # MPI when launched by mpiexec, else SingleProcess
    comm.broadcast_params(model.params)       # rank 0's initial parameters on every rank
    loss, grads = comm.allreduce_mean(loss, grads)

Launching is detected from the environment: an MPI launcher (mpiexec / mpirun / srun) sets one of
LAUNCHER_VARIABLES in every process it starts. Without them nothing changes and mpi4py is never
imported, so it is an optional extra (`pip install "minwave[mpi]"`).

A rank that dies: MPICH's and Open MPI's launchers see it and stop every other rank at once (with their
own report). A rank that stops answering without dying (a frozen process, a lost machine) would make
the others wait forever in a blocking Allreduce, so the Allreduce here is the non-blocking one, polled
against a deadline: after MINWAVE_RANK_TIMEOUT seconds (default 300: covers rank 0 writing a checkpoint
and its audio while the others wait) a rank stops with one line and MPI_Abort, which ends the job.
Checkpoints are written atomically by rank 0 alone, so a stop at any moment never leaves a broken one.
"""

from __future__ import annotations

import atexit
import os
import sys
import time

import numpy as np

from .backend import BackendError, backend_of

# Set by the launchers in every process they start: MPICH/Intel MPI (Hydra), Open MPI, PMIx (Slurm,
# Open MPI 5), MVAPICH. The first one found also gives the rank count, checked against MPI's.
LAUNCHER_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")
TIMEOUT_VARIABLE = "MINWAVE_RANK_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0
MPI_INSTALL_HINT = 'pip install "minwave[mpi]" (mpi4py and an MPI runtime from PyPI), or mpi4py built for your MPI'


class DistributedError(BackendError):
    """The ranks cannot work together (MPI missing, a rank lost); the message is one line.

    A BackendError, because MPI is part of where the step runs: the CLIs print it as one line and exit 1."""


def launched_by_mpi(environ=os.environ) -> bool:
    """True when an MPI launcher started this process (one of LAUNCHER_VARIABLES is set)."""
    return any(name in environ for name in LAUNCHER_VARIABLES)


def rank_timeout(environ=os.environ) -> float:
    """Seconds a rank waits for the others at one step before it gives up (MINWAVE_RANK_TIMEOUT)."""
    text = environ.get(TIMEOUT_VARIABLE)
    if text is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0 < value < float("inf")):
        raise DistributedError(f"{TIMEOUT_VARIABLE}={text!r}: must be a number of seconds > 0")
    return value


class SingleProcess:
    """One process, no MPI: every collective is the identity. What `python -m minwave.train` uses."""

    rank, size, local_rank, local_size = 0, 1, 0, 1

    def allreduce_mean(self, loss: float, grads: dict) -> tuple[float, dict]:
        return loss, grads

    def broadcast_params(self, params: dict) -> None:
        pass

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return "SingleProcess()"


class MPIComm:
    """N ranks on MPI.COMM_WORLD. Gradients travel as one flat buffer: every array of the dict end to
    end (in the dict's order, which is the model's and the same on every rank), then the loss."""

    def __init__(self, MPI, timeout_s: float):
        self.MPI, self.comm, self.timeout_s = MPI, MPI.COMM_WORLD, timeout_s
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks on this machine
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()  # on this machine
        node.Free()
        self.step = 0  # allreduce calls so far, for messages
        self._buffer = None  # (flat buffer, [(name, start, stop, shape)]), made on first use
        self.closed = False
        atexit.register(self._abort_unless_closed)

    # ---- the two collectives of training
    def allreduce_mean(self, loss: float, grads: dict) -> tuple[float, dict]:
        """(loss, grads) -> their means over all ranks: one in-place Allreduce of one flat buffer.

        The returned gradients are views into that buffer, valid until the next call. On the GPU the
        buffer is packed on the device and crosses to the host once each way (any MPI, CUDA-aware or not).
        """
        first = next(iter(grads.values()))
        backend = backend_of(first)
        if self._buffer is None:
            layout, n = [], 0
            for name, g in grads.items():
                layout.append((name, n, n + g.size, g.shape))
                n += g.size
            self._buffer = (backend.xp.empty(n + 1, dtype=first.dtype), layout)  # (P + 1,) P gradients, loss
        flat, layout = self._buffer
        for name, start, stop, _ in layout:
            flat[start:stop] = grads[name].ravel()
        flat[-1] = loss
        host = backend.to_host(flat)  # the buffer itself on the CPU; one copy from the GPU
        if host.dtype != np.float32:  # training is float32; other dtypes would need another MPI type
            raise DistributedError(f"gradients must be float32 to be averaged across ranks, not {host.dtype}")
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM), "the gradient average")
        host *= np.float32(1.0 / self.size)  # sum -> mean (exact for N a power of two)
        if host is not flat:
            flat[...] = backend.asarray(host)
        self.step += 1
        return float(host[-1]), {name: flat[start:stop].reshape(shape) for name, start, stop, shape in layout}

    def broadcast_params(self, params: dict) -> None:
        """Rank 0's parameters, in place, on every rank: all ranks start from the same weights."""
        first = next(iter(params.values()))
        backend = backend_of(first)
        host = np.concatenate([np.ravel(backend.to_host(p)) for p in params.values()])  # (P,)
        self._wait(self.comm.Ibcast(host, root=0), "the initial parameters")
        start = 0
        for p in params.values():
            p[...] = backend.asarray(host[start : start + p.size].reshape(p.shape))
            start += p.size

    def close(self) -> None:
        """The run ended on every rank: shut MPI down normally (MPI_Finalize)."""
        if not self.closed:
            self.closed = True
            self._wait(self.comm.Ibarrier(), "the end of the run")
            self.MPI.Finalize()

    # ---- never a hang
    def _wait(self, request, what: str) -> None:
        """Poll a non-blocking request until it completes or the deadline passes (then stop, one line)."""
        deadline = time.monotonic() + self.timeout_s
        pause = 0.0
        while not request.Test():
            if time.monotonic() > deadline:
                raise DistributedError(
                    f"rank {self.rank} of {self.size}: no answer from the other ranks for {self.timeout_s:g} s "
                    f"while waiting for {what} (allreduce {self.step + 1}); a rank died or hangs. Stopping the job; "
                    f"rank 0's last checkpoint is intact (set {TIMEOUT_VARIABLE} to wait longer)"
                )
            time.sleep(pause)  # 0 first: a step's Allreduce normally completes within microseconds
            pause = min(2 * pause + 1e-4, 2e-3)

    def _abort_unless_closed(self) -> None:
        """At exit without close() (an error on this rank, a lost rank): MPI_Abort ends every rank at once.
        MPI_Finalize would wait for ranks that may never arrive."""
        if not self.closed:
            sys.stdout.flush()
            sys.stderr.flush()
            time.sleep(1.0)  # let the launcher forward this rank's last line before the abort tears it down
            self.comm.Abort(1)

    def __repr__(self) -> str:
        return f"MPIComm(rank={self.rank}, size={self.size})"


def connect(gpu: bool = False, environ=os.environ) -> SingleProcess | MPIComm:
    """The communicator for this process: MPI if an MPI launcher started it, else SingleProcess.

    gpu: give each rank on a machine its own CUDA device (local rank -> device), before CuPy is used.
    """
    if not launched_by_mpi(environ):
        return SingleProcess()
    timeout_s = rank_timeout(environ)
    try:
        import mpi4py
    except ImportError:
        raise DistributedError(f"started by an MPI launcher, but mpi4py is not installed: {MPI_INSTALL_HINT}") from None
    mpi4py.rc.finalize = False  # close() finalizes after a good run; anything else aborts (see above)
    mpi4py.rc.threads = False  # one thread calls MPI
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as exc:
        raise DistributedError(f"mpi4py cannot start MPI ({exc}); {MPI_INSTALL_HINT}") from None
    comm = MPIComm(MPI, timeout_s)
    if gpu:
        select_device(comm.local_rank)
    return comm


def select_device(local_rank: int) -> None:
    """Rank `local_rank` on its machine -> CUDA device local_rank (mod the devices there)."""
    try:
        import cupy
    except ImportError:
        return  # get_backend('cupy') reports the missing CuPy with its fix
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 - no driver: get_backend('cupy') says so in one line
        return
    if n > 0:
        cupy.cuda.Device(local_rank % n).use()
