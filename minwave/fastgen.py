"""Fast generation: the queue algorithm of fast-WaveNet (Paine et al. 2016, arXiv 1611.09482) in Numba.

Legend: B streams (batch), L layers, k kernel size, R residual channels, D dilation channels,
S skip channels, Q classes, G tags, d_l layer l's dilation, M_l = (k-1)·d_l its queue length;
local conditioning: F frames of C channels, h samples per frame.

Layer l's dilated convolution at time t reads its input h_l at t, t - d_l, …, t - (k-1)·d_l. The naive
sampler recomputes all of those from the codes for every sample: O(receptive field) work. Here each
layer keeps the last M_l inputs it has seen in a ring buffer, its queue, so a new sample is one pass
down the stack: O(L) work, the same for every sample (docs/generation.md has the picture).

    h_0 = embedding of the last k codes                       (B, R)
    for each layer l:  pre = b_l + [queue_l[t - (k-1)·d_l] | … | queue_l[t - d_l] | h_l] @ W_l   (B, 2D)
                       push h_l into queue_l;  z_l = tanh(pre_f) ⊙ σ(pre_g);  h_{l+1} = h_l + z_l @ W_res + b
    logits = relu(relu([z_1 | … | z_L] @ W_skip + b) @ W_1 + b_1) @ W_2 + b_2                (B, Q)

Public entry point: minwave.generate(..., method="fast") in sampling.py. This module holds the
compiled kernels, the weight packing they need, run() (what generate calls) and
teacher_forced_logits() (the per-step logits on given codes, for tests and debugging).

Where the time goes (docs/generation.md measures it): one sample reads every weight once, 1.6 MB for
the default network, more than the 512 KB L2 cache of a core, so batch 1 is bound by memory traffic.
Hence the layout: each matrix is read once per step, front to back, in the order it lies in memory;
the ReLU-zero rows of the head are skipped. With B streams every weight read serves B multiply-adds:
matrix–matrix products, bound by arithmetic instead.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from .backend import to_host
from .checks import check_codes, check_tags
from .mulaw import mulaw_expand, mulaw_level
from .ops import frame_conv_forward
from .ops.lpc import SILENCE as LPC_SILENCE
from .ops.lpc import WHITE_NOISE as LPC_WHITE_NOISE
from .ops.numba_kernels import JIT, tanh_pq  # one JIT setting and one tanh for every kernel of minwave
from .ops.period import pitch_periods

PRODUCT_MATH = {"contract", "reassoc"}  # fused multiply-add; reassociation turns a dot product's one
# running sum into SIMD lanes. The float64 CDF (sample_code) keeps strict IEEE order, as NumPy does.


class Packed(NamedTuple):
    """The weights as the kernel reads them: float32 host copies, C-contiguous."""

    emb: np.ndarray  # (k, Q, R)      input layer as one (Q, R) table per tap (either representation)
    emb_b: np.ndarray  # (R,)
    dil_W: np.ndarray  # (L, k·R, 2D)   dilated conv, taps stacked: rows j·R … j·R+R-1 multiply h(t-(k-1-j)·d);
    #                                   output channels [filter | gate], as in the model
    dil_b: np.ndarray  # (L, B, 2D)     dilated bias + tags @ V: global conditioning, one row per stream
    res_W: np.ndarray  # (L, D, R)      residual 1×1 (layer L-1 has none: zeros, never read)
    res_b: np.ndarray  # (L, R)
    skip_Wt: np.ndarray  # (S, L·D)     the L skip projections as ONE product, transposed: a row per output
    skip_b: np.ndarray  # (S,)
    W1: np.ndarray  # (S, S)
    b1: np.ndarray  # (S,)
    W2: np.ndarray  # (S, Q)
    b2: np.ndarray  # (Q,)
    cond: np.ndarray  # (B, F + 2a, L·2D) local conditioning: every layer's U·c at frame rate (F = 0: none)
    cond_at: np.ndarray  # (2,) int64: h, and s such that step t reads cond row (t + 1 + s) // h
    tap_W: np.ndarray  # (taps, R)     a notes model's period tap W, a row per lag (zeros: none)
    tap_level: np.ndarray  # (Q,)      the level y of each code, as the model computes it
    tap_a: np.ndarray  # (B, F, K)     per frame, the sounding fraction a_p of up to K (pitch, lag) pairs (0: unused)
    tap_n: np.ndarray  # (B, F, K) int64  their lags' whole samples n
    tap_c: np.ndarray  # (B, F, K, 2)  their interpolation weights (1 - δ, δ)
    tap_m: np.ndarray  # (B, F, K) int64  their lag: row m of tap_W, m + 1 periods back
    tap_at: int  # the frames' sample that seq[:, 0] is: step t's sample t + 1 + tap_at reads frame (…) // h
    lpc_W: np.ndarray  # (R,)          the linear-prediction input's W (zeros: none)
    lpc_x: np.ndarray  # (Q,) float64  the linear sample F⁻¹(y) of each code's level, as the model computes it
    lpc_window: int  # the samples its autocorrelation sums over (0: no such input)


def local_projection(params: dict, config, frames) -> np.ndarray:
    """Every layer's conditioning term U_l · upsample(c), at frame rate: (B, F + 2a, L·2D) float32.

    frames (B, F, C) host. Frames are padded with a = config.cond_context zeros either side, so the
    rows hold the upsampler's output for frames -a … F+a-1; beyond those it is exactly zero (no bias).
    Computed once per generate call in float64: L·2D numbers per frame instead of per sample.
    """
    c = config
    a = c.cond_context
    frames = np.asarray(frames, dtype=np.float64)
    padded = np.pad(frames, ((0, 0), (a, a), (0, 0)))  # (B, F + 2a, C)
    up, _ = frame_conv_forward(padded, to_host(params["cond.up.W"]).astype(np.float64))  # (B, F + 2a, C)
    U = np.concatenate([to_host(params[f"layers.{i}.cond.U"]).astype(np.float64) for i in range(c.n_layers)], axis=1)
    return np.ascontiguousarray(up @ U, dtype=np.float32)  # (B, F + 2a, L·2D)


def period_slots(config, batch: int, frames) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The period tap's lags per frame, as the step reads them: (a, n, c, m) of shapes (B, F, K),
    (B, F, K), (B, F, K, 2), (B, F, K), K = the most (pitch, lag) pairs any frame sounds (ops/period.py):
    for each lag m (0 … period_taps - 1, (m + 1) · τ_p = n + δ back) the sounding pitches in rising order,
    the order in which the model sums them. Empty (F = 0) without a period tap."""
    if frames is None or not config.period_tap:
        empty = (batch, 0, 1)
        return (
            np.zeros(empty, np.float32),
            np.zeros(empty, np.int64),
            np.zeros(empty + (2,), np.float32),
            np.zeros(empty, np.int64),
        )
    lags = [
        (m, p, n, d)
        for m in range(config.period_taps)
        for p, n, d in pitch_periods(config.sample_rate, config.tap_reach, m + 1)
    ]
    sounding = np.asarray(frames, dtype=np.float32)[:, :, [p for _, p, _, _ in lags]]  # (B, F, lags)
    K = max(1, int((sounding > 0).sum(axis=2).max()))
    B, F, _ = sounding.shape
    a, n, c = np.zeros((B, F, K), np.float32), np.zeros((B, F, K), np.int64), np.zeros((B, F, K, 2), np.float32)
    m = np.zeros((B, F, K), np.int64)
    for b, f in zip(*np.nonzero((sounding > 0).any(axis=2))):
        for slot, j in enumerate(np.nonzero(sounding[b, f] > 0)[0]):
            m_j, _, n_j, d_j = lags[j]
            a[b, f, slot], n[b, f, slot], c[b, f, slot], m[b, f, slot] = sounding[b, f, j], n_j, (1 - d_j, d_j), m_j
    return a, n, c, m


def pack(params: dict, config, tags, batch: int, frames=None, first_sample: int = 0) -> Packed:
    """Float32 host copies of a model's params (NumPy or CuPy arrays) in the kernel's layout.

    tags: (B, G) host array, or None for an unconditioned model. The tag term V·h of every layer is
    constant in time, so it is folded into that layer's bias here, once: dil_b[l, b] = b_l + tags[b] @ V_l.

    frames: (B, F, C) host frames for a locally conditioned model (None otherwise); first_sample: the
    sample of the frames' grid that seq[:, 0] is (negative for a history before frame 0). Step t, which
    predicts seq[:, t+1], adds row (t + 1 + first_sample) // h + a of local_projection to every layer.

    The input layer becomes a lookup table either way: the embedding is one already, and the level
    input's tap j gives code c the row y_c · W[j] (the same float32 product model.forward computes).
    """
    c = config
    L, D, R, k = c.n_layers, c.dilation_channels, c.residual_channels, c.kernel_size

    def host(name):
        return to_host(params[name]).astype(np.float64)

    def f32(a):
        return np.ascontiguousarray(a, dtype=np.float32)

    dil_W = np.empty((L, k * R, 2 * D), dtype=np.float32)
    dil_b = np.empty((L, batch, 2 * D), dtype=np.float32)
    res_W = np.zeros((L, D, R), dtype=np.float32)
    res_b = np.zeros((L, R), dtype=np.float32)
    for i in range(L):
        dil_W[i] = host(f"layers.{i}.dilated.W").reshape(k * R, 2 * D)  # (k, R, 2D) -> taps stacked
        bias = host(f"layers.{i}.dilated.b")[None, :]  # (1, 2D)
        if c.n_tags:
            bias = bias + np.asarray(tags, dtype=np.float64) @ host(f"layers.{i}.cond.V")  # (B, 2D)
        dil_b[i] = bias
        if i < L - 1:
            res_W[i] = host(f"layers.{i}.residual.W")
            res_b[i] = host(f"layers.{i}.residual.b")
    levels = mulaw_level(np.arange(c.quantization_channels), c.quantization_channels).astype(np.float32)  # (Q,)
    if c.input == "embedding":
        emb = f32(host("input.W"))  # (k, Q, R)
    else:
        emb = f32(levels[None, :, None] * f32(host("input.W")))  # (k, 1, R) -> (k, Q, R)
    tap_a, tap_n, tap_c, tap_m = period_slots(c, batch, frames)
    return Packed(
        emb=emb,
        emb_b=f32(host("input.b")),
        dil_W=dil_W,
        dil_b=dil_b,
        res_W=res_W,
        res_b=res_b,
        skip_Wt=f32(host("skip.W").T),
        skip_b=f32(host("skip.b")),
        W1=f32(host("head.W1")),
        b1=f32(host("head.b1")),
        W2=f32(host("head.W2")),
        b2=f32(host("head.b2")),
        cond=np.zeros((batch, 0, L * 2 * D), np.float32) if frames is None else local_projection(params, c, frames),
        cond_at=np.array([c.cond_hop, first_sample + c.cond_context * c.cond_hop], dtype=np.int64),
        tap_W=f32(host("input.tap.W")) if c.period_tap else np.zeros((1, R), np.float32),
        tap_level=levels,
        tap_a=tap_a,
        tap_n=tap_n,
        tap_c=tap_c,
        tap_m=tap_m,
        tap_at=int(first_sample),
        lpc_W=f32(host("input.lpc.W")[0]) if c.lpc_order else np.zeros(R, np.float32),
        lpc_x=mulaw_expand(levels, c.quantization_channels),
        lpc_window=int(c.lpc_window if c.lpc_order else 0),
    )


class State(NamedTuple):
    """What persists from one time step to the next (the queues), and scratch for one step."""

    queue: np.ndarray  # (Σ M_l, B, R)  every layer's ring buffer; layer l owns rows q_start[l] … + M_l - 1
    q_start: np.ndarray  # (L,) int64
    q_len: np.ndarray  # (L,) int64    M_l = (k-1)·d_l
    h: np.ndarray  # (B, R)           the residual stream at time t, layer after layer
    window: np.ndarray  # (B, k·R)    one layer's conv input [h(t-(k-1)·d) | … | h(t-d) | h(t)]
    pre: np.ndarray  # (B, 2D)        [filter | gate] pre-activations of one layer
    z: np.ndarray  # (B, D)           its gate output
    zs: np.ndarray  # (B, L·D)        every layer's gate output side by side: the skip product's input
    skip: np.ndarray  # (B, S)
    a1: np.ndarray  # (B, S)
    logits: np.ndarray  # (B, Q)
    rows: np.ndarray  # (max(S, Q),) int64: the non-zero inputs of a ReLU product
    cdf: np.ndarray  # (Q,) float64
    lpc_c: np.ndarray  # (B, order+1) float64  the linear-prediction input's autocorrelation of its window
    lpc_a: np.ndarray  # (B, order) float64    its predictor
    lpc_tmp: np.ndarray  # (order,) float64    scratch for Levinson–Durbin's update


def new_state(config, batch: int) -> State:
    """Zero queues — the zero history before t = 0, as in model.forward — and scratch for B streams."""
    c = config
    q_len = np.array([(c.kernel_size - 1) * d for d in c.dilations], dtype=np.int64)
    q_start = np.concatenate([[0], np.cumsum(q_len)[:-1]]).astype(np.int64)
    R, D, S, Q = c.residual_channels, c.dilation_channels, c.skip_channels, c.quantization_channels
    f32 = np.float32
    return State(
        queue=np.zeros((int(q_len.sum()), batch, R), f32),
        q_start=q_start,
        q_len=q_len,
        h=np.zeros((batch, R), f32),
        window=np.zeros((batch, c.kernel_size * R), f32),
        pre=np.zeros((batch, 2 * D), f32),
        z=np.zeros((batch, D), f32),
        zs=np.zeros((batch, c.n_layers * D), f32),
        skip=np.zeros((batch, S), f32),
        a1=np.zeros((batch, S), f32),
        logits=np.zeros((batch, Q), f32),
        rows=np.zeros(max(S, Q), np.int64),
        cdf=np.zeros(Q, np.float64),
        lpc_c=np.zeros((batch, c.lpc_order + 1), np.float64),
        lpc_a=np.zeros((batch, c.lpc_order), np.float64),
        lpc_tmp=np.zeros(c.lpc_order, np.float64),
    )


# ============================================================================================ kernels
@njit(fastmath={"contract"}, **JIT)
def gate(pre, z):
    """z (B, D) = tanh(f) ⊙ σ(g) for pre = [f | g] (B, 2D), with σ(g) = ½(1 + tanh(g/2)) as in ops.gate.

    tanh(f) = pf/qf and tanh(g/2) = pg/qg give z = ½ · pf · (qg + pg) / (qf · qg): one division.
    """
    B, D2 = pre.shape
    D = D2 // 2
    for b in range(B):
        for c in range(D):
            pf, qf = tanh_pq(pre[b, c])
            pg, qg = tanh_pq(np.float32(0.5) * pre[b, D + c])
            z[b, c] = np.float32(0.5) * pf * (qg + pg) / (qf * qg)


@njit(fastmath=PRODUCT_MATH, **JIT)
def matmul_acc(x, W, y):
    """y (B, N) += x (B, K) @ W (K, N), for the layers' small matrices.

    Eight rows of W at a time: they are read from memory once and reused from L1 for all B streams,
    and y is loaded and stored once per eight rows. The inner loop runs along a row of W and of y,
    both contiguous, so LLVM makes it SIMD multiply-adds, and no sum needs a horizontal reduction.
    """
    B, K = x.shape
    N = W.shape[1]
    K8 = K - K % 8
    for k in range(0, K8, 8):
        for b in range(B):
            x0, x1, x2, x3 = x[b, k], x[b, k + 1], x[b, k + 2], x[b, k + 3]
            x4, x5, x6, x7 = x[b, k + 4], x[b, k + 5], x[b, k + 6], x[b, k + 7]
            for n in range(N):
                y[b, n] += (x0 * W[k, n] + x1 * W[k + 1, n] + x2 * W[k + 2, n] + x3 * W[k + 3, n]) + (
                    x4 * W[k + 4, n] + x5 * W[k + 5, n] + x6 * W[k + 6, n] + x7 * W[k + 7, n]
                )
    for k in range(K8, K):
        for b in range(B):
            x0 = x[b, k]
            for n in range(N):
                y[b, n] += x0 * W[k, n]


@njit(fastmath=PRODUCT_MATH, **JIT)
def matvec_acc(x, Wt, y):
    """y (B, N) += x (B, K) @ Wtᵀ with Wt (N, K), for the long skip product (K = L·D = 640).

    Each output is a dot product along a contiguous row of Wt. Four outputs at a time, so that every
    x[b, i] loaded serves four rows, and two streams at a time, so that every weight loaded serves
    two streams: eight independent sums, each split into SIMD lanes by reassociation. With rows this
    long the dot products stream the weights faster than matmul_acc, and their final horizontal sums
    are few (docs/generation.md §4).
    """
    B, K = x.shape
    N = Wt.shape[0]
    N4 = N - N % 4
    B2 = B - B % 2
    for n in range(0, N4, 4):
        for b in range(0, B2, 2):
            s0 = s1 = s2 = s3 = r0 = r1 = r2 = r3 = np.float32(0.0)
            for i in range(K):
                w0, w1, w2, w3 = Wt[n, i], Wt[n + 1, i], Wt[n + 2, i], Wt[n + 3, i]
                xs, xr = x[b, i], x[b + 1, i]
                s0 += xs * w0
                s1 += xs * w1
                s2 += xs * w2
                s3 += xs * w3
                r0 += xr * w0
                r1 += xr * w1
                r2 += xr * w2
                r3 += xr * w3
            y[b, n] += s0
            y[b, n + 1] += s1
            y[b, n + 2] += s2
            y[b, n + 3] += s3
            y[b + 1, n] += r0
            y[b + 1, n + 1] += r1
            y[b + 1, n + 2] += r2
            y[b + 1, n + 3] += r3
        for b in range(B2, B):  # an odd stream out (batch 1: every stream)
            s0 = s1 = s2 = s3 = np.float32(0.0)
            for i in range(K):
                s0 += x[b, i] * Wt[n, i]
                s1 += x[b, i] * Wt[n + 1, i]
                s2 += x[b, i] * Wt[n + 2, i]
                s3 += x[b, i] * Wt[n + 3, i]
            y[b, n] += s0
            y[b, n + 1] += s1
            y[b, n + 2] += s2
            y[b, n + 3] += s3
    for n in range(N4, N):
        for b in range(B):
            s0 = np.float32(0.0)
            for i in range(K):
                s0 += x[b, i] * Wt[n, i]
            y[b, n] += s0


@njit(fastmath=PRODUCT_MATH, **JIT)
def relu_rows_acc(x, W, y, rows):
    """y (B, N) += relu(x) (B, K) @ W (K, N), reading only the rows of W that meet a positive input.

    Typically half of a ReLU's outputs are zero, and 0 · W[k] adds nothing: skipping those rows gives
    the same sum from half the bytes. rows (>= K,) is scratch for one stream's non-zero indices.
    """
    B, K = x.shape
    N = W.shape[1]
    for b in range(B):
        m = 0
        for i in range(K):
            if x[b, i] > 0:
                rows[m] = i
                m += 1
        m8 = m - m % 8
        for j in range(0, m8, 8):
            i0, i1, i2, i3 = rows[j], rows[j + 1], rows[j + 2], rows[j + 3]
            i4, i5, i6, i7 = rows[j + 4], rows[j + 5], rows[j + 6], rows[j + 7]
            x0, x1, x2, x3 = x[b, i0], x[b, i1], x[b, i2], x[b, i3]
            x4, x5, x6, x7 = x[b, i4], x[b, i5], x[b, i6], x[b, i7]
            for n in range(N):
                y[b, n] += (x0 * W[i0, n] + x1 * W[i1, n] + x2 * W[i2, n] + x3 * W[i3, n]) + (
                    x4 * W[i4, n] + x5 * W[i5, n] + x6 * W[i6, n] + x7 * W[i7, n]
                )
        for j in range(m8, m):
            i0 = rows[j]
            x0 = x[b, i0]
            for n in range(N):
                y[b, n] += x0 * W[i0, n]


@njit(**JIT)
def lpc_step(p, s, seq, t, h):
    """The linear-prediction input (ops/lpc.py), one step: h (B, R) += e(t) · W_lpc.

    The window's autocorrelation is carried from step to step: c_k(t) = c_k(t-1) + x_t x_{t-k} -
    x_{t-n+k} x_{t-n} for a window of n samples (the product entering the sum and the one leaving it),
    O(order) work where the model sums the window afresh; then Levinson–Durbin as in ops.lpc.levinson.
    Steps must come in order from t = 0, as they do.
    """
    B = seq.shape[0]
    order = s.lpc_a.shape[1]
    n = p.lpc_window
    mu = p.lpc_x.shape[0] - 1
    for b in range(B):
        x_t = p.lpc_x[seq[b, t]]
        for k in range(order + 1):
            if t - k >= 0:
                s.lpc_c[b, k] += x_t * p.lpc_x[seq[b, t - k]]
            if t - n >= 0:
                s.lpc_c[b, k] -= p.lpc_x[seq[b, t - n + k]] * p.lpc_x[seq[b, t - n]]
        a = s.lpc_a[b]
        power = s.lpc_c[b, 0] * (1.0 + LPC_WHITE_NOISE) + LPC_SILENCE
        for m in range(1, order + 1):
            acc = 0.0
            for j in range(m - 1):
                acc += a[j] * s.lpc_c[b, m - 1 - j]
            kappa = (s.lpc_c[b, m] - acc) / power
            for j in range(m - 1):  # a_j <- a_j - κ_m a_{m-j}
                s.lpc_tmp[j] = a[j] - kappa * a[m - 2 - j]
            for j in range(m - 1):
                a[j] = s.lpc_tmp[j]
            a[m - 1] = kappa
            power = power * (1.0 - kappa * kappa)
        guess = 0.0
        for j in range(1, order + 1):
            if t + 1 - j >= 0:
                guess += a[j - 1] * p.lpc_x[seq[b, t + 1 - j]]
        guess = min(1.0, max(-1.0, guess))
        e = np.float32(np.sign(guess) * np.log1p(mu * abs(guess)) / np.log1p(mu))
        for r in range(h.shape[1]):
            h[b, r] += e * p.lpc_W[r]


@njit(**JIT)
def network_step(p, s, seq, t, with_head):
    """Feed the codes seq[:, t] (B streams) through the network, pushing every layer's input into its queue.

    Afterwards s.logits (B, Q) is the distribution of seq[:, t+1] — unless with_head is False (warming
    the queues up on a prime), which stops after the last layer.
    """
    k, _, R = p.emb.shape
    L, B, D2 = p.dil_b.shape
    D = D2 // 2
    h = s.h
    # input layer: h_0 = b + Σ_j emb[j][x(t - (k-1-j))]; taps before t = 0 contribute nothing
    for b in range(B):
        for r in range(R):
            h[b, r] = p.emb_b[r]
        for j in range(k):
            if t - (k - 1 - j) >= 0:
                code = seq[b, t - (k - 1 - j)]
                for r in range(R):
                    h[b, r] += p.emb[j, code, r]
    # the period tap: x_0 += Σ_m r_m · W_tap[m], r_m = Σ_p a_p ((1 - δ) y(t + 1 - n) + δ y(t - n)), n + δ = (m + 1) τ_p
    sample = t + 1 + p.tap_at  # the sample seq[:, t+1] is, on the frames
    if 0 <= sample < p.tap_a.shape[1] * p.cond_at[0]:
        row = sample // p.cond_at[0]
        for b in range(B):
            for m in range(p.tap_W.shape[0]):
                r_t = np.float32(0.0)
                for slot in range(p.tap_a.shape[2]):
                    a = p.tap_a[b, row, slot]
                    if a == 0 or p.tap_m[b, row, slot] != m:
                        continue
                    n = p.tap_n[b, row, slot]
                    y1 = p.tap_level[seq[b, t + 1 - n]] if t + 1 - n >= 0 else np.float32(0.0)
                    y0 = p.tap_level[seq[b, t - n]] if t - n >= 0 else np.float32(0.0)
                    r_t += a * (p.tap_c[b, row, slot, 0] * y1 + p.tap_c[b, row, slot, 1] * y0)
                for r in range(R):
                    h[b, r] += r_t * p.tap_W[m, r]
    if p.lpc_window:
        lpc_step(p, s, seq, t, h)
    frame = (t + 1 + p.cond_at[1]) // p.cond_at[0]  # the row of p.cond for the sample seq[:, t+1]
    local = 0 <= frame < p.cond.shape[1]  # outside the padded frames the conditioning term is zero
    for i in range(L):
        M, start = s.q_len[i], s.q_start[i]
        d = M // (k - 1)
        now = t % M  # the queue row holding h_i(t - M), the oldest tap; h_i(t) replaces it below
        # dilated conv + conditioning: pre = b + [h_i(t - (k-1)·d) | … | h_i(t)] @ W, one product for all k taps
        for b in range(B):
            for j in range(k - 1):
                row = now - (k - 1 - j) * d  # h_i(t - (k-1-j)·d) lives in row (t - (k-1-j)·d) mod M
                row = start + (row + M if row < 0 else row)
                for r in range(R):
                    s.window[b, j * R + r] = s.queue[row, b, r]
            for r in range(R):
                s.window[b, (k - 1) * R + r] = h[b, r]
                s.queue[start + now, b, r] = h[b, r]  # after reading: for tap 0 it is the same row
            for c in range(D2):
                s.pre[b, c] = p.dil_b[i, b, c]
            if local:  # local conditioning: U_i · c_t, projected once per call, indexed here
                for c in range(D2):
                    s.pre[b, c] += p.cond[b, frame, i * D2 + c]
        matmul_acc(s.window, p.dil_W[i], s.pre)
        gate(s.pre, s.z)  # z_i = tanh(f) ⊙ σ(g)   (B, D)
        for b in range(B):
            for c in range(D):
                s.zs[b, i * D + c] = s.z[b, c]
        if i < L - 1:  # residual: h_{i+1} = h_i + z_i @ W_res + b_res, in place
            for b in range(B):
                for r in range(R):
                    h[b, r] += p.res_b[i, r]
            matmul_acc(s.z, p.res_W[i], h)
    if not with_head:
        return
    # skip = [z_1 | … | z_L] @ W_skip + b_skip;  logits = relu(relu(skip) @ W1 + b1) @ W2 + b2
    for b in range(B):
        for c in range(s.skip.shape[1]):
            s.skip[b, c] = p.skip_b[c]
            s.a1[b, c] = p.b1[c]
        for c in range(s.logits.shape[1]):
            s.logits[b, c] = p.b2[c]
    matvec_acc(s.zs, p.skip_Wt, s.skip)
    relu_rows_acc(s.skip, p.W1, s.a1, s.rows)
    relu_rows_acc(s.a1, p.W2, s.logits, s.rows)


@njit(**JIT)
def sample_code(logits, temperature, u, cdf):
    """The inverse-CDF rule of sampling.generate, in float64 (cdf (Q,) is scratch):

    a = logits / T,  cdf = running sum of exp(a - max a),  code = #{c : cdf_c <= u · cdf_{Q-1}},
    capped at Q - 1; temperature == 0 is the argmax (the first, on ties). The sums run in the same
    order as NumPy's cumsum, so the naive sampler's CDF is the same to the last bit, but for libm's exp
    against NumPy's (at most 1 ulp apart).
    """
    Q = logits.shape[0]
    if temperature == 0.0:
        best = 0
        for c in range(1, Q):
            if logits[c] > logits[best]:
                best = c
        return best
    m = -np.inf
    for c in range(Q):
        cdf[c] = np.float64(logits[c]) / temperature
        m = max(m, cdf[c])
    total = 0.0
    for c in range(Q):
        total += np.exp(cdf[c] - m)
        cdf[c] = total
    threshold = u * total
    code = 0
    for c in range(Q):
        if cdf[c] <= threshold:
            code += 1
    return min(code, Q - 1)


@njit(**JIT)
def sample_steps(p, s, seq, u, temperature, n_history, t_begin, t_end):
    """Time steps t_begin … t_end-1 of generation: the whole loop in compiled code.

    seq (B, n_history + n) holds the history followed by the codes drawn so far. Step t feeds seq[:, t];
    from t = n_history - 1 on it draws seq[:, t+1] with the uniforms u[:, t - n_history + 1]. Earlier
    steps only warm the queues up on the history.
    """
    B = seq.shape[0]
    for t in range(t_begin, t_end):
        draw = t >= n_history - 1
        network_step(p, s, seq, t, draw)
        if draw:
            for b in range(B):
                seq[b, t + 1] = sample_code(s.logits[b], temperature, u[b, t - n_history + 1], s.cdf)


@njit(**JIT)
def teacher_forced_steps(p, s, seq, out):
    """out[:, t] = the logits after feeding seq[:, 0 … t], for every t: the queue algorithm on given codes."""
    for t in range(seq.shape[1]):
        network_step(p, s, seq, t, t >= 0)  # a computed bool: a literal True would compile a second copy
        for b in range(seq.shape[0]):
            for c in range(out.shape[2]):
                out[b, t, c] = s.logits[b, c]


# ============================================================================================ drivers
def run(
    model,
    history: np.ndarray,
    u: np.ndarray,
    temperature: float,
    tags=None,
    progress=None,
    chunk: int = 4096,
    frames=None,
) -> np.ndarray:
    """Sample u.shape[1] codes per stream after history (B, H) with the uniforms u (B, n): the fast path
    of sampling.generate, which checks the arguments. tags: (B, G) host array or None; frames: (B, F, C)
    host local conditioning or None, frame 0 starting at the first new sample.

    The compiled loop runs `chunk` time steps per call, and progress(n_done) (if given) is called
    between calls. The queues live in State and persist between calls, so the chunk size does not
    change the result. Returns (B, n) int64.
    """
    B, H = history.shape
    n = u.shape[1]
    p = pack(model.params, model.config, tags, B, frames, first_sample=-H)  # seq[:, H] is sample 0
    s = new_state(model.config, B)
    seq = np.empty((B, H + n), dtype=np.int64)  # (B, H + n) the history, then the new codes
    seq[:, :H] = history
    steps = H - 1 + n  # step t feeds seq[:, t], t = 0 … H + n - 2
    for t_begin in range(0, steps, chunk):
        t_end = min(t_begin + chunk, steps)
        sample_steps(p, s, seq, np.ascontiguousarray(u, dtype=np.float64), float(temperature), H, t_begin, t_end)
        if progress is not None:
            progress(max(0, t_end - (H - 1)))
    return seq[:, H:].copy()


def teacher_forced_logits(model, codes, tags=None, cond=None, cond_offset: int = 0) -> np.ndarray:
    """The fast path's logits (B, T, Q) for given codes (B, T): model.forward(codes, tags, cond,
    cond_offset) to float32 rounding, computed one step at a time with the queues. For tests and debugging."""
    c = model.config
    codes = check_codes(np.ascontiguousarray(to_host(codes)), c.quantization_channels, "codes")
    B, T = codes.shape
    if (cond is None) != (not c.condition):
        raise ValueError("pass cond exactly for a locally conditioned model")
    frames = None if cond is None else to_host(model._check_cond(codes, cond, cond_offset, T))
    host_tags = None if tags is None else to_host(tags)
    p = pack(
        model.params, c, check_tags(host_tags, c.n_tags, B, broadcast=True), B, frames, first_sample=int(cond_offset)
    )
    s = new_state(c, B)
    out = np.empty((B, T, c.quantization_channels), dtype=np.float32)
    teacher_forced_steps(p, s, codes.astype(np.int64), out)
    return out
