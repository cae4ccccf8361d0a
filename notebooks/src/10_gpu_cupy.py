# %% [markdown]
# # 10 · On the GPU with CuPy
#
# Everything so far ran on NumPy. CuPy is a NumPy work-alike whose arrays live on an NVIDIA GPU: the same
# `xp.tanh`, `@`, `x[:, s:]`, `.sum(axis=...)`, executed by CUDA kernels. Because every op in minwave
# asks its *input array* for the array module instead of importing NumPy, the whole model — forward,
# hand-written backward, Adam — runs on the GPU by changing one argument: `backend="cupy"`.
#
# This notebook runs fully when CuPy and a CUDA device are present. Without them (a laptop, or the CI
# machine) it explains what would happen and skips the GPU cells without failing. To install CuPy:
# `pip install -e ".[gpu]"` (CuPy for CUDA 12, `cupy-cuda12x`).

# %%
import inspect
import os
import re
import time
from pathlib import Path

QUICK = os.environ.get("MINWAVE_QUICK") == "1"  # set by the test suite: smaller runs, same code

import numpy as np

import minwave
import minwave.backend
from minwave import ops
from minwave.backend import cupy_available
from minwave.presets import get_preset

GPU = cupy_available()  # CuPy imports and sees a CUDA device
print("GPU available:", GPU)
if not GPU:
    print(
        "No CuPy/CUDA device here: the GPU cells below print a note and skip.\n"
        'On a machine with an NVIDIA GPU: pip install -e ".[gpu]"  and run this notebook again.'
    )

# %% [markdown]
# ## What changes, and what does not
#
# The one place that knows about CuPy is `minwave/backend.py`. It hands out a `Backend`: the array module
# `xp` plus the few operations whose spelling differs (copying to the host, a scatter-add that
# accumulates repeated indices, synchronising before a timer, optional fused kernels):

# %%
print(minwave.backend.__doc__)

# %% [markdown]
# A live check of that claim: search the package's source for code that imports or calls CuPy
# (`import cupy`, `cupy.something(...)`), as opposed to comments that mention it.

# %%
package = Path(minwave.__file__).parent
uses_cupy = re.compile(r"^\s*(import|from)\s+cupy|\bcupyx?\.[A-Za-z_]+\(")
for path in sorted(package.rglob("*.py")):
    lines = [n for n, line in enumerate(path.read_text().splitlines(), 1) if uses_cupy.search(line)]
    print(f"{str(path.relative_to(package.parent)):32s} {len(lines):3d} lines calling CuPy")

# %% [markdown]
# The ops never import NumPy for their math. They call `array_module(x)` — NumPy for a NumPy array, CuPy
# for a CuPy array — as the backward of the optional one-hot input layer (`input="embedding"`) does here,
# including the one operation that must be
# spelled differently on each (`scatter_add`: NumPy's `np.add.at`, CuPy's `cupyx.scatter_add`):

# %%
print(inspect.getsource(ops.causal_embedding_backward))

# %% [markdown]
# What does **not** change: the model code, the gradients, the optimiser, the checkpoint format (arrays
# are copied to the host with `to_host` when saved), the training script (`python -m minwave.train --gpu`).
#
# What does: where the arrays live, and so the rules at the boundary — CuPy does not
# mix host and device arrays implicitly, a reduction returns a 0-d device array (so `float(...)` copies
# it back), and kernels run asynchronously, so a timer must call `backend.synchronize()` first.
# The fast sampler is Numba code for the CPU; given a GPU model it copies the weights to the host once
# per `generate` call (chapter 08) and runs there.
#
# ## The same model on both
#
# Same configuration, same seed: the parameters are created on the host in float64 and then moved, so the
# two models start identical. Their losses and gradients agree to float32 rounding (the GPU sums in a
# different order).

# %%
config = minwave.WaveNetConfig(
    stacks=1, layers_per_stack=8, residual_channels=16, dilation_channels=16, skip_channels=64
)
cpu = minwave.WaveNet(config, seed=0, backend="numpy")
x = np.random.default_rng(0).integers(0, 256, (2, config.receptive_field + 500))
cpu_loss, cpu_grads = cpu.loss_and_grads(x)
print(f"NumPy loss {cpu_loss:.6f}")

if GPU:
    gpu = minwave.WaveNet(config, seed=0, backend="cupy")
    gpu_loss, gpu_grads = gpu.loss_and_grads(gpu.backend.asarray(x))
    worst = max(
        float(np.abs(cpu_grads[k] - minwave.to_host(gpu_grads[k])).max() / np.abs(cpu_grads[k]).max())
        for k in cpu_grads
    )
    print(f"CuPy  loss {gpu_loss:.6f}; largest relative gradient difference {worst:.1e}")
    same = np.array_equal(minwave.generate(cpu, 2000, seed=0), minwave.generate(gpu, 2000, seed=0))
    print(f"fast sampler from the CPU model and from the GPU model: identical codes: {same}")
else:
    print("(skipped: no GPU) — on a GPU this cell compares the CuPy loss and every gradient with NumPy's")

# %% [markdown]
# ## Timings
#
# One training step (`loss_and_grads`, forward and backward) for the presets, on this machine's CPU and,
# when present, its GPU. Each is timed after a warm-up call (CuPy compiles its kernels on first use), and
# the GPU timer waits for the device (`synchronize`). The numbers are this machine's: rerun on yours.


# %%
def step_seconds(model, batch, segment, repeats):
    rng = np.random.default_rng(0)
    x = model.backend.asarray(rng.integers(0, 256, (batch, model.receptive_field + segment)))
    model.loss_and_grads(x)  # warm-up
    model.backend.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        model.loss_and_grads(x)
    model.backend.synchronize()  # GPU work is asynchronous: wait for it before reading the clock
    return (time.perf_counter() - start) / repeats


presets = ["tiny"] if QUICK else ["tiny", "small", "paper"]
batch, segment, repeats = (2, 300, 2) if QUICK else (8, 2000, 3)
print(f"one training step, batch {batch} × {segment} predicted samples (+ receptive field of context)")
for name in presets:
    config = get_preset(name).config()
    line = f"{name:6s} ({config.n_layers:2d} layers, {config.residual_channels} ch)  "
    t_cpu = step_seconds(minwave.WaveNet(config, seed=0, backend="numpy"), batch, segment, repeats)
    line += f"NumPy {1e3 * t_cpu:8.1f} ms"
    if GPU:
        t_gpu = step_seconds(minwave.WaveNet(config, seed=0, backend="cupy"), batch, segment, repeats)
        line += f"   CuPy {1e3 * t_gpu:7.1f} ms   ({t_cpu / t_gpu:.0f}× faster)"
    print(line)
if not GPU:
    print("(GPU column skipped: no GPU here)")

# %% [markdown]
# On a GPU the small presets gain little: their matrices are too small to fill the device, and every
# op pays a kernel launch. The gain grows with the channel count, the batch and the segment length —
# the `paper` preset is the one meant for a GPU.
#
# ## How the CuPy path is tested without a GPU
#
# Most machines that run the test suite have no GPU, yet the CuPy code path must not rot. Two guards:
#
# * **A strict stand-in backend** (`tests/strict_xp.py`): arrays that hold NumPy data but refuse, with
#   a `TypeError`, what a `cupy.ndarray` refuses or what minwave must not rely on — implicit conversion to
#   a host array (`np.asarray(a)`), host arrays mixed into arithmetic or indexing, NumPy *functions*
#   applied to device arrays, `a[idx] += v` with repeated indices — and that reproduce two traps of
#   device memory (`xp.empty` returns garbage; reductions return 0-d arrays). It is registered like a
#   real backend, and the model, its gradients, Adam, checkpoints and both samplers are run on it
#   (`tests/test_strict_backend.py`), so a stray `np.` call fails on a laptop instead of on the first GPU.
# * **Tests marked `gpu`** (`pytest -m gpu`) run the real thing — every backend-parametrised test, on
#   CuPy — and are skipped cleanly when CuPy or a device is missing.

# %% [markdown]
# ## Exercises
#
# 1. On a GPU, find the batch size at which one training step of the `tiny` preset costs the same on
#    NumPy and on CuPy. What does that say about when to use `--gpu`?
# 2. Train `python -m minwave.train --preset small --gpu` and resume it with `--resume` *without*
#    `--gpu`. Why does that work? (Look at what `checkpoint.save` stores.)
# 3. `minwave.backend.to_host` is called at every I/O boundary. Find all of them in `minwave/train.py`
#    and explain why each one is needed.
