"""The layers of WaveNet, each a pair of plain functions: forward(...) -> (out, cache) and
backward(dout, cache) -> gradients in the order of forward's inputs. Derivations: docs/backprop.md.

The package's legend, one meaning per letter (docs/architecture.md has the same table):
    B  batch rows (streams)          k    kernel size           x_l   the residual stream, layer l's input
    T  time steps                    d    dilation              z_l   layer l's gate output
    Q  quantization classes          L    layers                tags  (B, G) multi-hot tag vectors
    R  residual channels             RF   receptive field       F, C  local conditioning frames, channels
    D  dilation (gate) channels      G    number of tags        h     the hop: samples per frame
    S  skip channels                 N    B·T positions, flattened (the Numba kernels)
The tag vector is `tags` (the paper's h); h is only the hop.
"""

from .activations import relu_backward, relu_forward
from .conv import causal_conv_backward, causal_conv_forward, conv1x1_backward, conv1x1_forward
from .embedding import causal_embedding_backward, causal_embedding_forward
from .gate import gate_backward, gate_forward, gated_unit_backward, gated_unit_forward
from .head import head_backward, head_forward
from .loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from .lpc import lpc_backward, lpc_forward
from .period import period_tap_backward, period_tap_forward
from .residual import residual_backward, residual_forward, skip_backward, skip_forward
from .upsample import (
    frame_conv_backward,
    frame_conv_forward,
    repeat_backward,
    repeat_forward,
    upsample_backward,
    upsample_forward,
)

__all__ = [
    "causal_conv_backward",
    "causal_conv_forward",
    "causal_embedding_backward",
    "causal_embedding_forward",
    "conv1x1_backward",
    "conv1x1_forward",
    "gate_backward",
    "gate_forward",
    "gated_unit_backward",
    "gated_unit_forward",
    "head_backward",
    "head_forward",
    "relu_backward",
    "relu_forward",
    "residual_backward",
    "residual_forward",
    "skip_backward",
    "skip_forward",
    "softmax_cross_entropy_backward",
    "softmax_cross_entropy_forward",
    "frame_conv_backward",
    "frame_conv_forward",
    "repeat_backward",
    "repeat_forward",
    "upsample_backward",
    "upsample_forward",
    "period_tap_backward",
    "period_tap_forward",
    "lpc_backward",
    "lpc_forward",
]
