"""The WaveNet: a causal input layer, a stack of gated dilated layers with residual and skip paths,
and a ReLU/1×1 output head giving a softmax over Q μ-law classes (van den Oord et al. 2016, Fig. 4).

Legend: B batch, T time, Q classes, R residual channels, D dilation channels, S skip channels,
L layers (stacks × layers_per_stack), G tags, k kernel size; local conditioning: F frames of C channels,
h samples per frame (hop).

    codes (B, T) ──causal k-tap input layer──> x_0 (B, T, R)     (config.input: "level" or "embedding")
    for each layer l (dilation d_l):
        z_l = tanh(W_f∗x_l + V_f·tags) ⊙ σ(W_g∗x_l + V_g·tags)  (B, T, D)
        x_{l+1} = x_l + z_l @ W_res,l + b_res,l                 (B, T, R)   (not for the last layer)
    skip = [z_1 | … | z_L] @ W_skip + b_skip                    (B, T, S)
    logits = relu(relu(skip) @ W_1 + b_1) @ W_2 + b_2           (B, T, Q)

logits[:, t] is the distribution of x[:, t+1] given x[:, :t+1].

Local conditioning (config.condition "notes" or "mel", docs/conditioning.md): frames c (B, F, C) are
upsampled (ops/upsample.py: a learned 3-tap convolution over frames, then each frame held for h
samples) and every layer adds its own projection U_l · c_t to the gate's pre-activations, beside V_l · tags.
Because holding a frame commutes with U, the projection of all layers is one product at frame rate,
(B, F, C) @ (C, L·2D), indexed at sample rate. A notes model's input layer also gets the level one pitch
period before the sample it predicts, for the notes that sound (ops/period.py: the period tap).

The input layer (docs/free_running.md says why the default is "level"):
    "level"      the companded level y_t = (2·x_t + 1)/Q - 1 ∈ [-1, 1] of each code, one real channel,
                 through a causal k-tap convolution: x_0 = b + Σ_j y_{t-(k-1-j)} · W[j]     W (k, 1, R)
                 Neighbouring codes get neighbouring inputs, so a wrong-but-close sampled code is a
                 small nudge, not a jump to an input the network never saw: free-running output holds a tone.
    "embedding"  a free (Q, R) table per tap, x_0 = b + Σ_j W[j][x_{t-(k-1-j)}]                W (k, Q, R)
                 (a one-hot convolution). Every code has its own unrelated vector: it fits the data
                 better (fewer bits) but a single unusual sampled code derails free-running generation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from . import ops
from .backend import Backend, get_backend, to_host
from .checks import check_codes, check_cond, check_tags
from .conditioning import CONDITION_TYPES, NOTE_CHANNELS
from .mulaw import mulaw_level

INPUTS = ("level", "embedding")  # the input layer's representations (WaveNetConfig.input)


UPSAMPLE_TAPS = 3  # the upsampler's convolution over frames: one frame back, one ahead (ops/upsample.py)


@dataclass(frozen=True)
class WaveNetConfig:
    """The shape of a WaveNet. Defaults: the 2 × (1 … 512) network of the benchmarks."""

    stacks: int = 2
    layers_per_stack: int = 10
    kernel_size: int = 2
    residual_channels: int = 32
    dilation_channels: int = 32
    skip_channels: int = 256
    quantization_channels: int = 256
    n_tags: int = 0
    sample_rate: int = 16000
    condition: str = ""  # local conditioning: "" (none), "notes" (piano roll) or "mel" (log-mel spectrogram)
    cond_channels: int = 0  # C, the features per frame: 176 for notes, n_mels for mel; 0 without
    cond_hop: int = 256  # h, samples per conditioning frame
    input: str = "level"  # "level" (μ-law level, one channel) or "embedding" (a free table per code)
    lpc_order: int = 0  # the linear-prediction input's order (ops/lpc.py); 0: no such input
    lpc_window: int = 512  # the samples its coefficients are fitted on, up to the present one
    period_taps: int = 1  # a notes model's period tap reads 1, 2, … this many pitch periods back (ops/period.py)

    def __post_init__(self):
        minimum = {
            "stacks": 1,
            "layers_per_stack": 1,
            "kernel_size": 2,
            "residual_channels": 1,
            "dilation_channels": 1,
            "skip_channels": 1,
            "quantization_channels": 2,
            "n_tags": 0,
            "sample_rate": 1,
            "cond_channels": 0,
            "cond_hop": 1,
            "lpc_order": 0,
            "lpc_window": 1,
            "period_taps": 1,
        }
        if self.condition not in ("",) + CONDITION_TYPES:
            raise ValueError(f"WaveNetConfig.condition must be '', 'notes' or 'mel', got {self.condition!r}")
        if (self.condition == "") != (self.cond_channels == 0):
            raise ValueError("WaveNetConfig.cond_channels must be > 0 exactly when condition is set")
        if self.condition == "notes" and self.cond_channels != NOTE_CHANNELS:
            raise ValueError(f"WaveNetConfig.cond_channels must be {NOTE_CHANNELS} for notes, got {self.cond_channels}")
        if self.input not in INPUTS:
            raise ValueError(f"WaveNetConfig.input must be one of {', '.join(INPUTS)}, got {self.input!r}")
        for f in fields(self):
            if f.name == "input":
                continue
            if f.name == "condition":
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"WaveNetConfig.{f.name} must be an integer, got {value!r}")
            if value < minimum[f.name]:
                raise ValueError(f"WaveNetConfig.{f.name} must be >= {minimum[f.name]}, got {value}")
        if self.period_taps > 1 and self.condition != "notes":
            raise ValueError(f"WaveNetConfig.period_taps > 1 needs condition 'notes', got {self.condition!r}")
        if self.lpc_order and self.lpc_window <= self.lpc_order:
            raise ValueError(
                f"WaveNetConfig.lpc_window must exceed lpc_order ({self.lpc_order}), got {self.lpc_window}"
            )

    @property
    def cond_context(self) -> int:
        """Frames the upsampler reads either side of a frame (its look-ahead): (UPSAMPLE_TAPS - 1) / 2."""
        return (UPSAMPLE_TAPS - 1) // 2 if self.condition else 0

    @property
    def period_tap(self) -> bool:
        """Whether the input layer adds the level one pitch period back (ops/period.py): notes models."""
        return self.condition == "notes"

    @property
    def n_layers(self) -> int:
        return self.stacks * self.layers_per_stack

    @property
    def dilations(self) -> list[int]:
        """1, 2, 4, …, 2^(layers_per_stack-1), repeated for each stack."""
        return [2**i for i in range(self.layers_per_stack)] * self.stacks

    @property
    def _span(self) -> int:
        """(k-1)·(1 + Σd): how far back the input layer and the dilated layers together read."""
        return (self.kernel_size - 1) * (1 + sum(self.dilations))

    @property
    def tap_reach(self) -> int:
        """How far back the period tap reads (ops/period.py): the span of the input layer and the dilated
        layers, (k-1)·(1 + Σd) samples — so it reaches C2 (65 Hz) in the `tiny` preset; 0 without a tap."""
        return self._span if self.period_tap else 0

    @property
    def lpc_reach(self) -> int:
        """How far back the linear-prediction input reads (ops/lpc.py): lpc_window - 1; 0 without it."""
        return self.lpc_window - 1 if self.lpc_order else 0

    @property
    def receptive_field(self) -> int:
        """Samples that logits[:, t] can see: x[:, t - RF + 1 … t].

        The input layer spans k samples and each dilated layer adds (k-1)·d more; a notes model's period
        tap reads up to tap_reach further back from every input position, the linear-prediction input
        up to lpc_reach: the farther of the two counts.
        """
        return self._span + 1 + max(self.tap_reach, self.lpc_reach)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> WaveNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown WaveNetConfig fields: {sorted(unknown)}")
        # checkpoints written before the input layer was a choice all used the free embedding
        return cls(**{"input": "embedding", **d})


def init_params(config: WaveNetConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Fresh float64 host parameters (the caller casts and moves them).

    Initialisation, chosen so that a 30+ layer stack trains stably from step one:
    - input embedding W (k, Q, R): N(0, 1/k), so x_0 = Σ of k rows has unit variance; the level input
      W (k, 1, R): N(0, 3/k), the same for levels spread evenly over [-1, 1] (variance 1/3);
    - dilated conv W (k, R, 2D) and conditioning V (G, 2D): N(0, 1/fan_in) (LeCun normal, right for
      tanh/σ: pre-activations of unit variance, neither saturated nor linear), fan_in = k·R (+ G);
    - residual W (D, R): N(0, 1/D) scaled by 1/√L so that the residual stream x_L, a sum of L layer
      contributions, keeps variance O(1) however deep the stack (as in GPT-2's scaled init);
    - skip W (L·D, S): N(0, 1/(L·D)), the sum of L layers' projections has unit variance;
    - head W1 (S, S): N(0, 2/S) (He normal, after a ReLU); W2 (S, Q): N(0, 1/S) · ½ for mildly
      confident initial predictions close to uniform;
    - all biases 0;
    - local conditioning: the upsampler's frame convolution (3, C, C) starts as an exact repeat (centre
      tap I, the others 0); each layer's U (C, 2D): N(0, 1/C); a notes model's period tap W (period_taps, R):
      N(0, 3/k), as one more tap of the level input, and so the linear-prediction input's W (1, R).
    """
    rng = np.random.default_rng(seed)
    k, Q, R = config.kernel_size, config.quantization_channels, config.residual_channels
    D, S, G, L = config.dilation_channels, config.skip_channels, config.n_tags, config.n_layers

    def normal(shape, var):
        return rng.standard_normal(shape) * math.sqrt(var)

    p: dict[str, np.ndarray] = {
        "input.W": normal((k, Q, R), 1.0 / k) if config.input == "embedding" else normal((k, 1, R), 3.0 / k),
        "input.b": np.zeros(R),
    }
    if config.period_tap:
        p["input.tap.W"] = normal((config.period_taps, R), 3.0 / k)
    if config.lpc_order:
        p["input.lpc.W"] = normal((1, R), 3.0 / k)
    for i in range(L):
        p[f"layers.{i}.dilated.W"] = normal((k, R, 2 * D), 1.0 / (k * R + G))
        p[f"layers.{i}.dilated.b"] = np.zeros(2 * D)
        if G:
            p[f"layers.{i}.cond.V"] = normal((G, 2 * D), 1.0 / (k * R + G))
        if config.cond_channels:
            p[f"layers.{i}.cond.U"] = normal((config.cond_channels, 2 * D), 1.0 / config.cond_channels)
        if i < L - 1:  # the last layer's residual output would feed nothing
            p[f"layers.{i}.residual.W"] = normal((D, R), 1.0 / (D * L))
            p[f"layers.{i}.residual.b"] = np.zeros(R)
    if config.cond_channels:
        up = np.zeros((UPSAMPLE_TAPS, config.cond_channels, config.cond_channels))
        up[UPSAMPLE_TAPS // 2] = np.eye(config.cond_channels)
        p["cond.up.W"] = up
    p["skip.W"] = normal((L * D, S), 1.0 / (L * D))
    p["skip.b"] = np.zeros(S)
    p["head.W1"] = normal((S, S), 2.0 / S)
    p["head.b1"] = np.zeros(S)
    p["head.W2"] = normal((S, Q), 0.25 / S)
    p["head.b2"] = np.zeros(Q)
    return p


class WaveNet:
    """A WaveNet whose parameters live on one backend (NumPy or CuPy) in one dtype.

    model = WaveNet(WaveNetConfig(), seed=0, dtype="float32", backend="numpy")
    logits = model.forward(codes, tags)               # (B, T, Q)
    loss, grads = model.loss_and_grads(codes, tags)   # nats, dict like model.params
    """

    def __init__(self, config: WaveNetConfig | None = None, seed: int = 0, dtype="float32", backend="numpy"):
        self.config = config if config is not None else WaveNetConfig()
        if not isinstance(self.config, WaveNetConfig):
            raise TypeError(f"config must be a WaveNetConfig, got {type(self.config).__name__}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self.backend: Backend = get_backend(backend)
        self.xp = self.backend.xp
        host = init_params(self.config, seed)
        self.params = {name: self.backend.asarray(a, dtype=self.dtype) for name, a in host.items()}

    # ------------------------------------------------------------------ shapes and sizes
    @property
    def receptive_field(self) -> int:
        return self.config.receptive_field

    @property
    def dilations(self) -> list[int]:
        return self.config.dilations

    def num_params(self) -> int:
        return int(sum(int(np.prod(p.shape)) for p in self.params.values()))

    def layer_macs(self, i: int) -> int:
        """Multiply-adds of layer i at one position: its dilated convolution, and its residual 1×1
        (the last layer has none)."""
        c = self.config
        dilated = c.kernel_size * c.residual_channels * 2 * c.dilation_channels
        residual = c.dilation_channels * c.residual_channels if i < c.n_layers - 1 else 0
        return dilated + residual

    def output_macs(self) -> int:
        """Multiply-adds at one output position after the layers: the skip sum and the head."""
        c = self.config
        S = c.skip_channels
        return c.n_layers * c.dilation_channels * S + S * S + S * c.quantization_channels

    def macs_per_sample(self) -> int:
        """Multiply-adds to produce one output distribution (the embedding is a lookup: free)."""
        return sum(self.layer_macs(i) for i in range(self.config.n_layers)) + self.output_macs()

    def summary(self) -> str:
        """One screen: the layers, their dilations, receptive field, parameters and cost per sample."""
        c = self.config
        rf = self.receptive_field
        lines = [
            f"WaveNet  {c.stacks} stack{'s' * (c.stacks != 1)} × {c.layers_per_stack} layers, kernel {c.kernel_size}, "
            f"{self.backend.name}/{self.dtype.name}",
            f"  input   causal {c.kernel_size}-tap "
            + (
                f"embedding  {c.quantization_channels} codes -> {c.residual_channels}"
                if c.input == "embedding"
                else f"convolution of the μ-law level  1 -> {c.residual_channels}"
            ),
        ]
        for s in range(c.stacks):
            ds = c.dilations[s * c.layers_per_stack : (s + 1) * c.layers_per_stack]
            lines.append(
                f"  stack {s}  dilations {', '.join(map(str, ds))}   "
                f"(residual {c.residual_channels}, gate {c.dilation_channels}, "
                f"skip {c.skip_channels})"
            )
        if c.n_tags:
            lines.append(f"  global conditioning on {c.n_tags} tags (a per-layer bias on the gate)")
        if c.condition:
            lines.append(
                f"  local conditioning on {c.condition}: {c.cond_channels} channels per {c.cond_hop} samples, "
                f"upsampled (3-tap frame conv, looks {c.cond_context} frame ahead), projected per layer"
            )
        if c.period_tap:
            lines.append(
                f"  period tap: the input {'one' if c.period_taps == 1 else f'1 … {c.period_taps}'} pitch "
                f"period{'s' * (c.period_taps > 1)} back, for lags up to {c.tap_reach} samples "
                f"({c.sample_rate / c.tap_reach:.0f} Hz and up)"
            )
        if c.lpc_order:
            lines.append(
                f"  linear prediction: the next sample predicted from the last {c.lpc_window} "
                f"(order {c.lpc_order}), as one more input"
            )
        lines += [
            f"  skip    [z_1 … z_{c.n_layers}] ({c.n_layers * c.dilation_channels}) -> {c.skip_channels}",
            f"  head    ReLU -> 1×1 {c.skip_channels} -> ReLU -> 1×1 {c.quantization_channels} -> softmax",
            f"receptive field  {rf} samples = {1000.0 * rf / c.sample_rate:.1f} ms at {c.sample_rate} Hz",
            f"parameters       {self.num_params():,} ({self.num_params() * self.dtype.itemsize / 1e6:.2f} MB)",
            f"multiply-adds    {self.macs_per_sample():,} per sample",
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"WaveNet({self.config}, dtype={self.dtype.name}, backend={self.backend.name!r})"

    def host_params(self) -> dict[str, np.ndarray]:
        """The parameters as NumPy arrays (copies from the GPU, views on the CPU)."""
        return {name: to_host(p) for name, p in self.params.items()}

    def load_params(self, params: dict) -> None:
        """Replace the parameters (from any backend) after checking names and shapes."""
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of name -> array, got {type(params).__name__}")
        params = {name: v if hasattr(v, "shape") else np.asarray(v) for name, v in params.items()}  # lists too
        if set(params) != set(self.params):
            missing, extra = set(self.params) - set(params), set(params) - set(self.params)
            raise ValueError(f"parameter names differ: missing {sorted(missing)}, unexpected {sorted(extra)}")
        for name, value in params.items():
            if tuple(value.shape) != tuple(self.params[name].shape):
                raise ValueError(f"parameter {name}: shape {tuple(value.shape)} != {tuple(self.params[name].shape)}")
        # xp.array copies: the model must never share memory with the caller's arrays
        self.params = {name: self.xp.array(to_host(v), dtype=self.dtype) for name, v in params.items()}

    # ------------------------------------------------------------------ input checks
    def _check_inputs(self, x, tags, min_length: int = 1):
        """x (B, T) codes and tags (B, G) on this model's array module, checked (checks.py)."""
        c = self.config
        x = check_codes(self.xp.asarray(x), c.quantization_channels, "x", min_length)
        return x, check_tags(tags, c.n_tags, x.shape[0], xp=self.xp, dtype=self.dtype)

    # ------------------------------------------------------------------ forward / backward
    def _input_starts(self, out_start: int) -> list[int]:
        """first[l]: the earliest position of the residual stream x_l (layer l's input) that the outputs
        at out_start … T-1 depend on; first[L] = out_start.

        Working down from the top: the skip sum reads every z_l at out_start … T-1, and layer l's dilated
        convolution reads x_l back to (k-1)·d_l before its first output. So layer l needs z_l only from
        first[l+1] on (that covers out_start, and x_{l+1} = x_l + z_l @ W_res there), and its input
        from first[l] = first[l+1] - (k-1)·d_l, never before 0. For the training loss (out_start =
        RF-1) this skips the early positions nothing reads: the top layer computes T - RF + 1 positions
        instead of T (7 % less work in the layers of the default network, docs/benchmarks.md), and no
        layer sees the zero history.
        """
        k = self.config.kernel_size
        first = [out_start]
        for dilation in reversed(self.config.dilations):
            first.insert(0, max(0, first[0] - (k - 1) * dilation))
        return first

    def _forward(self, x, tags, out_start: int, cond=None, cond_offset: int = 0):
        """The network on codes x (B, T); the skip sum and head only at positions out_start … T-1.

        Returns (logits (B, T - out_start, Q), caches for backward). Layer l runs on positions
        first[l+1] … T-1 only (see _input_starts); with out_start = 0 that is every position.
        cond (B, F, C), cond_offset: local conditioning, as checked by _check_cond.
        """
        p, c, xp = self.params, self.config, self.xp
        L, D = c.n_layers, c.dilation_channels
        B, T = x.shape
        first = self._input_starts(out_start)  # x_l covers positions first[l] … T-1
        stream, input_cache = self._input_forward(x, T - first[0], cond, cond_offset)  # x_0 (B, T - first[0], R)
        zs = xp.empty((B, T - out_start, L * D), dtype=self.dtype)  # (B, T', L·D) every z_l, side by side
        layer_caches = []
        local_cache = proj = None
        if cond is not None:  # every layer's U·c at frame rate: one product (docs/conditioning.md)
            up, up_cache = ops.frame_conv_forward(cond, p["cond.up.W"])  # (B, F, C)
            U = xp.concatenate([p[f"layers.{i}.cond.U"] for i in range(L)], axis=1)  # (C, L·2D)
            proj = up @ U  # (B, F, L·2D)
            local_cache = (up, up_cache, U, proj.shape, [])
        for i, dilation in enumerate(c.dilations):
            V = p.get(f"layers.{i}.cond.V")
            z, unit_cache = ops.gated_unit_forward(
                stream,
                p[f"layers.{i}.dilated.W"],
                p[f"layers.{i}.dilated.b"],
                dilation,
                tags if V is not None else None,
                V,
                t_out=T - first[i + 1],
                local=self._local_term(proj, i, cond_offset + first[i + 1] + 1, T - first[i + 1], local_cache),
            )  # (B, T - first[i+1], D)
            zs[:, :, i * D : (i + 1) * D] = z[:, out_start - first[i + 1] :]
            residual_cache = None
            if i < L - 1:
                stream_kept = stream[:, first[i + 1] - first[i] :]  # x_i at the positions z_i has
                stream, residual_cache = ops.residual_forward(
                    stream_kept, z, p[f"layers.{i}.residual.W"], p[f"layers.{i}.residual.b"]
                )  # x_{i+1} (B, T - first[i+1], R)
            layer_caches.append((unit_cache, residual_cache))
        skip, skip_cache = ops.skip_forward(zs, p["skip.W"], p["skip.b"])  # (B, T', S)
        logits, head_cache = ops.head_forward(skip, p["head.W1"], p["head.b1"], p["head.W2"], p["head.b2"])
        return logits, (input_cache, layer_caches, skip_cache, head_cache, first, T, local_cache)

    def _local_term(self, proj, i: int, start: int, length: int, local_cache):
        """Layer i's U_i · c_t at `length` positions from sample `start` of the frames (B, length, 2D)."""
        if proj is None:
            return None
        D2 = 2 * self.config.dilation_channels
        # the position predicting sample s is conditioned on frame s // h (ops.repeat_forward)
        local, repeat_cache = ops.repeat_forward(proj[:, :, i * D2 : (i + 1) * D2], self.config.cond_hop, start, length)
        local_cache[4].append(repeat_cache)
        return local

    def _backward(self, dlogits, caches) -> dict:
        c, xp = self.config, self.xp
        L, D = c.n_layers, c.dilation_channels
        input_cache, layer_caches, skip_cache, head_cache, first, T, local_cache = caches
        out_start = first[L]
        grads = {}
        dskip, grads["head.W1"], grads["head.b1"], grads["head.W2"], grads["head.b2"] = ops.head_backward(
            dlogits, head_cache
        )
        dzs, grads["skip.W"], grads["skip.b"] = ops.skip_backward(dskip, skip_cache)  # (B, T', L·D)
        dstream = None  # gradient w.r.t. x_{i+1}, the residual stream above layer i (positions first[i+1] …)
        dproj = None if local_cache is None else xp.zeros(local_cache[3], dtype=self.dtype)  # (B, F, L·2D)
        for i in reversed(range(L)):
            unit_cache, residual_cache = layer_caches[i]
            B = dzs.shape[0]
            # fan-out means sum: z_l feeds the skip sum (only at out_start…) and the residual stream
            if residual_cache is not None:
                _, dz, grads[f"layers.{i}.residual.W"], grads[f"layers.{i}.residual.b"] = ops.residual_backward(
                    dstream, residual_cache
                )  # the identity part of dx_i is dstream itself: added below
            else:
                dz = xp.zeros((B, T - first[i + 1], D), dtype=self.dtype)
            dz[:, out_start - first[i + 1] :] += dzs[:, :, i * D : (i + 1) * D]
            dstream_unit, grads[f"layers.{i}.dilated.W"], grads[f"layers.{i}.dilated.b"], dV, *dlocal = (
                ops.gated_unit_backward(dz, unit_cache)
            )  # (B, T - first[i], R); dlocal: [dpre] with local conditioning, else []
            if dlocal:  # the frames that were held for these positions collect their gradient
                D2 = 2 * D
                dproj[:, :, i * D2 : (i + 1) * D2] = ops.repeat_backward(dlocal[0], local_cache[4][i])
            if dV is not None:
                grads[f"layers.{i}.cond.V"] = dV
            if dstream is not None:
                dstream_unit[:, first[i + 1] - first[i] :] += dstream  # identity path + through the unit
            dstream = dstream_unit
        if local_cache is not None:  # proj = up @ U, up = frame_conv(cond): back through both
            up, up_cache, U, _, _ = local_cache
            dU = ops.conv.sum_outer(up, dproj)  # (C, L·2D)
            for i in range(L):
                grads[f"layers.{i}.cond.U"] = dU[:, i * 2 * D : (i + 1) * 2 * D]
            _, grads["cond.up.W"] = ops.frame_conv_backward(dproj @ U.T, up_cache)  # dcond: data, dropped
        grads.update(self._input_backward(dstream, input_cache))
        return grads

    def _input_forward(self, x, t_out: int, cond=None, cond_offset: int = 0):
        """The input layer on codes x (B, T): x_0 at the last t_out positions (B, t_out, R); a notes
        model adds its period tap (cond (B, F, C) and cond_offset as in _forward), a model with lpc_order
        its linear prediction."""
        p, c = self.params, self.config
        levels = None  # (B, T) the μ-law levels: the level input's, the period tap's and the prediction's
        if c.input == "level" or c.period_tap or c.lpc_order:
            levels = mulaw_level(x, c.quantization_channels).astype(self.dtype)
        if c.input == "embedding":
            x0, cache = ops.causal_embedding_forward(x, p["input.W"], p["input.b"], t_out)
        else:
            x0, cache = ops.causal_conv_forward(levels[..., None], p["input.W"], p["input.b"], 1, t_out)
        tap_cache = None
        if c.period_tap:
            tap, tap_cache = ops.period_tap_forward(
                levels, cond, p["input.tap.W"], c.cond_hop, c.sample_rate, cond_offset, c.tap_reach, t_out
            )
            x0 += tap
        lpc_cache = None
        if c.lpc_order:
            guess, lpc_cache = ops.lpc_forward(
                levels, p["input.lpc.W"], c.lpc_order, c.lpc_window, c.quantization_channels, t_out
            )
            x0 += guess
        return x0, (cache, tap_cache, lpc_cache)

    def _input_backward(self, dstream, cache) -> dict:
        """The input layer's gradients {input.W, input.b (, input.tap.W, input.lpc.W)}; the codes get none."""
        cache, tap_cache, lpc_cache = cache
        if self.config.input == "embedding":
            dW, db = ops.causal_embedding_backward(dstream, cache)
        else:
            _, dW, db = ops.causal_conv_backward(dstream, cache)  # dlevels: the data, not a parameter
        grads = {"input.W": dW, "input.b": db}
        if tap_cache is not None:
            grads["input.tap.W"] = ops.period_tap_backward(dstream, tap_cache)
        if lpc_cache is not None:
            grads["input.lpc.W"] = ops.lpc_backward(dstream, lpc_cache)
        return grads

    def _check_cond(self, x, cond, cond_offset, n_in: int):
        """cond (B, F, C) frames for a locally conditioned model (None otherwise), covering samples
        cond_offset … cond_offset + n_in - 1 (what x's n_in positions predict, one sample ahead of x)."""
        c = self.config
        cond = check_cond(cond, c.condition, c.cond_channels, x.shape[0], xp=self.xp, dtype=self.dtype)
        if cond is None:
            return None
        if isinstance(cond_offset, bool) or int(cond_offset) != cond_offset or cond_offset < 0:
            raise ValueError(f"cond_offset must be an integer >= 0, got {cond_offset!r}")
        if cond_offset + n_in + 1 > cond.shape[1] * c.cond_hop:
            raise ValueError(
                f"cond has {cond.shape[1]} frames of {c.cond_hop} samples, too few for samples up to "
                f"{cond_offset + n_in} (cond_offset {cond_offset} + {n_in} positions + 1)"
            )
        return cond

    def forward(self, x, tags=None, cond=None, cond_offset: int = 0):
        """x (B, T) int codes -> logits (B, T, Q); logits[:, t] predicts x[:, t+1] from x[:, :t+1].

        tags: (B, n_tags) multi-hot floats for a tag-conditioned model, else None. Positions
        t < receptive_field - 1 see the zero history before the start of x.
        cond: (B, F, C) frames for a locally conditioned model, else None. x[:, 0] is sample cond_offset
        of the frames' grid (frame f holds samples f·h … f·h + h - 1), and logits[:, t], which predicts
        sample cond_offset + t + 1, is conditioned on that sample's frame: cond must cover samples up to
        cond_offset + T. data.frame_window cuts such a window (with the upsampler's context) from a clip.
        """
        x, tags = self._check_inputs(x, tags)
        cond = self._check_cond(x, cond, cond_offset, x.shape[1])
        logits, _ = self._forward(x, tags, 0, cond, int(cond_offset))
        return logits

    def _loss_inputs(self, x, tags, cond=None, cond_offset: int = 0):
        x, tags = self._check_inputs(x, tags, min_length=self.receptive_field + 1)
        cond = self._check_cond(x, cond, cond_offset, x.shape[1] - 1)
        out_start = self.receptive_field - 1  # first position whose receptive field lies inside x
        return x, tags, out_start, cond

    def loss(self, x, tags=None, cond=None, cond_offset: int = 0) -> float:
        """Mean cross-entropy (nats) over positions whose whole receptive field lies inside x.

        Those are t = RF-1 … T-2 (T - RF predictions); x needs at least RF + 1 samples.
        cond, cond_offset: as for forward() (x[:, 0] is sample cond_offset; cond covers up to x's last).
        """
        x, tags, out_start, cond = self._loss_inputs(x, tags, cond, cond_offset)
        logits, _ = self._forward(x[:, :-1], tags, out_start, cond, int(cond_offset))
        loss, _ = ops.softmax_cross_entropy_forward(logits, x[:, out_start + 1 :])
        return float(loss)

    def loss_and_grads(self, x, tags=None, cond=None, cond_offset: int = 0, inputs=None):
        """(loss in nats as for loss(), dict of gradients with the keys and shapes of params).

        inputs: codes of x's shape that the network reads in place of x, while the targets stay x (e.g.
        x with noise added, so that it learns to recover from its own sampling errors); default x.
        """
        x, tags, out_start, cond = self._loss_inputs(x, tags, cond, cond_offset)
        if inputs is not None:
            inputs, _ = self._check_inputs(inputs, tags, min_length=x.shape[1])
            if inputs.shape != x.shape:
                raise ValueError(f"inputs must have the shape of x {tuple(x.shape)}, got {tuple(inputs.shape)}")
        source = x if inputs is None else inputs
        logits, caches = self._forward(source[:, :-1], tags, out_start, cond, int(cond_offset))  # (B, T-RF, Q)
        loss, loss_cache = ops.softmax_cross_entropy_forward(logits, x[:, out_start + 1 :])
        dlogits = ops.softmax_cross_entropy_backward(1.0, loss_cache)
        return float(loss), self._backward(dlogits, caches)
