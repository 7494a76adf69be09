"""The ARM in exact integer arithmetic (numpy int64, any summation order gives the same result).

Weights arrive as integers q with power-of-two steps 2^s (s >= -8 for weights, >= -16 for
biases), so fixed point is an exact shift: weights in Q.16, biases in Q.32, latents in Q.16.
Each hidden layer computes ReLU((W + I) h + b) (the residual folded into the matrix) and shifts
back to Q.16; the output layer gives mu and log b in Q.8, the log-scale offset folded into its
bias. Every accumulator is bounded before it is computed, identically at both ends, so an
overflow is reported rather than wrapped.

Speed without giving up exactness: a file's weights bound every accumulator over every possible
context (latents lie in [-k, k]), once per file. When that static bound stays below 2^52, every
product and partial sum is an integer float64 holds exactly, so the layers run as float64 BLAS
matmuls with no per-call checks and give the int64 results bit for bit. Otherwise each call is
bounded on its own batch (float64 when that batch allows it, int64 when not).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from ddcodec.coding.bytesio import FormatError
from ddcodec.fixedpoint import (ACCUMULATOR_LIMIT, FRACTION_BITS, LOG_SCALE_MAX_Q,
                                          LOG_SCALE_MIN_Q, LOG_SCALE_SHIFT_Q32, W_SHIFT)


@dataclass
class IntegerARM:
    hidden_w: list[np.ndarray]  # each G x d x d, Q.16, residual folded in
    hidden_b: list[np.ndarray]  # each G x d, Q.32
    out_w: np.ndarray  # G x 2 x d, Q.16
    out_b: np.ndarray  # G x 2, Q.32, log-scale offset folded in
    k: int

    @staticmethod
    def from_groups(per_decoder: list[dict], hidden: int, n_ctx: int, k: int) -> "IntegerARM":
        """per_decoder[g] = {"weight": (q, step), "bias": (q, step)} in the ARM's order:
        hidden0_weight, hidden1_weight, ..., out_weight (and the biases likewise)."""
        hw, hb, ow, ob = [], [], [], []
        for entry in per_decoder:
            wq, ws = entry["weight"]
            bq, bs = entry["bias"]
            w = _shifted(wq, ws + W_SHIFT)
            b = _shifted(bq, bs + 2 * W_SHIFT)
            d = n_ctx
            layers_w = [w[i * d * d:(i + 1) * d * d].reshape(d, d) + (np.eye(d, dtype=np.int64)
                        << W_SHIFT) for i in range(hidden)]
            layers_b = [b[i * d:(i + 1) * d] for i in range(hidden)]
            out_w = w[hidden * d * d:].reshape(2, d)
            out_b = b[hidden * d:].copy()
            out_b[1] -= LOG_SCALE_SHIFT_Q32
            hw.append(layers_w)
            hb.append(layers_b)
            ow.append(out_w)
            ob.append(out_b)
        return IntegerARM([np.stack([x[i] for x in hw]) for i in range(hidden)],
                          [np.stack([x[i] for x in hb]) for i in range(hidden)],
                          np.stack(ow), np.stack(ob), k)

    def subset(self, first: int, last: int) -> "IntegerARM":
        """The ARMs of decoders [first, last) (a latent substream's)."""
        return IntegerARM([w[first:last] for w in self.hidden_w],
                          [b[first:last] for b in self.hidden_b], self.out_w[first:last],
                          self.out_b[first:last], self.k)

    def __call__(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """contexts G x M x d (integer latents in [-k, k]) -> (mu, log b) in Q.8, each G x M,
        clamped."""
        if self.float_plan is not None and contexts.size:
            raw = self._float_layers(contexts)
        else:
            h = contexts.astype(np.int64) << W_SHIFT
            for w, b in zip(self.hidden_w, self.hidden_b):
                acc = _affine(h, w, b)
                h = np.maximum(acc, 0) >> W_SHIFT
            raw = _affine(h, self.out_w, self.out_b) >> (2 * W_SHIFT - FRACTION_BITS)
        # np.minimum/np.maximum, not np.clip: the same values without clip's per-call
        # overhead, which the decoder pays on every wavefront step
        bound = self.k << FRACTION_BITS
        mu = np.minimum(np.maximum(raw[..., 0], -bound), bound)
        log_scale = np.minimum(np.maximum(raw[..., 1], LOG_SCALE_MIN_Q), LOG_SCALE_MAX_Q)
        return mu, log_scale


    @cached_property
    def float_plan(self) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """Per layer (b, W^T) in float64 when the static bound over every context in [-k, k]
        keeps all accumulators below FLOAT_EXACT_BELOW; None when it does not."""
        layers = [*zip(self.hidden_w, self.hidden_b), (self.out_w, self.out_b)]
        h_max = np.full(self.out_w.shape[::2], float(self.k << W_SHIFT))  # G x d
        plan = []
        for w, b in layers:
            w64, b64 = w.astype(np.float64), b.astype(np.float64)
            bound = (np.abs(w64) * h_max[:, None, :]).sum(-1) + np.abs(b64)  # G x d_out
            if not bound.max(initial=0.0) < FLOAT_EXACT_BELOW:
                return None
            h_max = np.floor(bound / (1 << W_SHIFT))  # ReLU, then the shift back to Q.16
            plan.append((b64[:, None, :].copy(), np.swapaxes(w64, 1, 2).copy()))
        # the contexts' shift to Q.16 folded into the first layer (exact: the same integer
        # products, in the same bound): one operation less per wavefront step
        b_first, w_first = plan[0]
        plan[0] = (b_first, w_first * float(1 << W_SHIFT))
        return plan

    def _float_layers(self, contexts: np.ndarray) -> np.ndarray:
        """The layers as float64 batched matmuls, exact under the static bound, where
        floor(x / 2^s) of an exactly held integer is the arithmetic shift x >> s. Large batches
        go through torch: numpy's batched matmul of small matrices is up to 30x slower there,
        while torch's per-call overhead loses on the decoder's small wavefront steps."""
        *hidden, (b_out, w_out) = self.float_plan
        down, out_down = 1.0 / (1 << W_SHIFT), 1.0 / (1 << (2 * W_SHIFT - FRACTION_BITS))
        h = contexts.astype(np.float64)  # the Q.16 shift is in the first layer's weights
        groups, rows = contexts.shape[:2]
        if groups * rows >= TORCH_ROWS:
            layers = [(torch.from_numpy(b), torch.from_numpy(w)) for b, w in hidden]
            b_last, w_last = torch.from_numpy(b_out), torch.from_numpy(w_out)
            source, out = torch.from_numpy(h), torch.empty((groups, rows, 2), dtype=torch.float64)
            step = max(1, CHUNK_ROWS // groups)
            for start in range(0, rows, step):  # all layers on a cache-sized slice at a time
                t = source[:, start:start + step]
                for b, w in layers:
                    t = torch.baddbmm(b, t, w).clamp_min_(0.0).mul_(down).floor_()
                out[:, start:start + step] = torch.baddbmm(b_last, t, w_last).mul_(
                    out_down).floor_()
            return out.numpy().astype(np.int64)
        for b, w in hidden:
            h = np.matmul(h, w)
            h += b
            np.maximum(h, 0.0, out=h)
            h *= down
            np.floor(h, out=h)
        raw = np.matmul(h, w_out)
        raw += b_out
        raw *= out_down
        return np.floor(raw, out=raw).astype(np.int64)


TORCH_ROWS = 4096  # contexts per call from which the float path's matmuls go through torch
# contexts per slice that a large call's layers run on together: about 2 MB of activations,
# which stay in cache from layer to layer (2x faster than whole-batch layers on a 600k-context
# encode, measured interleaved on one thread; the same exact integers either way)
CHUNK_ROWS = 16384


def one_thread_worker() -> None:
    """Set up a forked decoding worker as torch's DataLoader sets up its own: one intra-op
    thread, so torch never enters the parent's thread pool after the fork."""
    torch.set_num_threads(1)


def _shifted(q: np.ndarray, shift: int) -> np.ndarray:
    if shift < 0:
        raise FormatError("ARM quantisation step too fine for the fixed-point ARM")
    return q.astype(np.int64) << shift


# Below this bound every product, partial sum and result of a layer is an integer that float64
# holds exactly, in any summation order (FMA included): the layer may run as a float64 matmul
# (BLAS) and give the int64 result bit for bit. 2^52, not 2^53: a margin for the bound's own
# float arithmetic.
FLOAT_EXACT_BELOW = 2.0 ** 52


def _affine(h: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """h G x M x d_in, w G x d_out x d_in, b G x d_out -> G x M x d_out, overflow-checked;
    exact, in float64 when this batch's bound allows it, else in int64."""
    if h.size:
        bound = float(((np.abs(h).max(axis=1)[:, None, :].astype(np.float64)
                        * np.abs(w).astype(np.float64)).sum(-1)
                       + np.abs(b).astype(np.float64)).max())
        if bound >= ACCUMULATOR_LIMIT:
            raise FormatError("ARM weights too large for exact 64-bit integer decoding")
        if bound < FLOAT_EXACT_BELOW:
            out = np.matmul(h.astype(np.float64), np.swapaxes(w, 1, 2).astype(np.float64))
            return (out + b[:, None, :].astype(np.float64)).astype(np.int64)
    return np.matmul(h, np.swapaxes(w, 1, 2)) + b[:, None, :]
