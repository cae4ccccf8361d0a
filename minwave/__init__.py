"""minwave: WaveNet from scratch, every gradient by hand, on NumPy or CuPy."""

from .backend import BackendError, get_backend, to_host
from .model import WaveNet, WaveNetConfig
from .mulaw import mulaw_decode, mulaw_encode
from .optim import Adam

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "BackendError",
    "WaveNet",
    "WaveNetConfig",
    "get_backend",
    "mulaw_decode",
    "mulaw_encode",
    "to_host",
]
