"""minwave: WaveNet from scratch, every gradient by hand, on NumPy or CuPy.

model = minwave.WaveNet(minwave.WaveNetConfig(), backend="numpy")   # or "cupy"
loss, grads = model.loss_and_grads(codes)
codes = minwave.generate(model, 16000)                              # Numba fast-WaveNet sampler
ckpt = minwave.load("runs/tiny-20261125-101500/checkpoint.npz")  # model + tag vocabulary
ckpt = minwave.load_pretrained("builtin-music")                   # a model shipped with the package
"""

from .backend import BackendError, get_backend, to_host
from .checkpoint import Checkpoint, CheckpointError, load
from .model import WaveNet, WaveNetConfig
from .mulaw import mulaw_decode, mulaw_encode
from .optim import Adam
from .pretrained import load_pretrained
from .sampling import generate

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "BackendError",
    "Checkpoint",
    "CheckpointError",
    "WaveNet",
    "WaveNetConfig",
    "generate",
    "get_backend",
    "load",
    "load_pretrained",
    "mulaw_decode",
    "mulaw_encode",
    "to_host",
]
