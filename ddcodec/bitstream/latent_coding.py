"""Latent grids in and out of the range coder, through one code path for both directions.

Grids are coded level by level in wavefront order: position (y, x) belongs to step x + S*y, with
S chosen so that every causal neighbour the ARM reads belongs to an earlier step. All images of
all decoders of a step go through the integer ARM and the coder in one vectorised call. The
encoder runs exactly the decoder's loop, writing the true symbols where the decoder writes the
decoded ones, so the two see identical contexts.
"""

from __future__ import annotations

import numpy as np

from ddcodec.coding import entropy
from ddcodec.bitstream.armint import IntegerARM
from ddcodec.bitstream.tables import ONE, scales
from ddcodec.codec.arm import HALF


def wavefront_stride(offsets: list[tuple[int, int]]) -> int:
    """Smallest S with dx + S*dy < 0 for every context offset (dy, dx)."""
    upper = [dx / -dy for dy, dx in offsets if dy < 0]
    return int(np.floor(max(upper, default=0))) + 1


def code_latents(mode: str, arm: IntegerARM, offsets: list[tuple[int, int]],
                 shapes: list[tuple[int, int]], groups: int, planes: int, coder,
                 latents: list[np.ndarray] | None = None,
                 want_bits: bool = True) -> tuple[list[np.ndarray], float]:
    """Encode (`latents` given, `coder` an entropy.Encoder) or decode (an entropy.Decoder).

    Returns the grids (each G x planes x h x w, int64) and their ideal bits under the coder's
    parameters (0.0 when not `want_bits`: only reports need them, and they cost a tenth of a
    decode). `planes` is images x channels per level."""
    if mode == "encode":
        return _encode(arm, offsets, shapes, groups, planes, coder, latents, want_bits)
    k, family, stride, dys, dxs = _coding_constants(arm, offsets)
    grids, total_bits = [], 0.0
    for h, w in shapes:
        buf = np.zeros((groups, planes, h + HALF, w + 2 * HALF), dtype=np.int64)
        flat = buf.reshape(groups, planes, -1)  # a view: writes land in buf
        for context_at, at in zip(*_wavefront_steps(h, w, stride, dys, dxs)):
            contexts = np.take(flat, context_at, axis=2).reshape(groups, -1, len(offsets))
            mu_q, log_scale_q = arm(contexts)
            mu = (mu_q.astype(np.float64) / ONE).ravel()
            b = scales(log_scale_q).ravel()
            symbols = coder.decode(family, mu, b)
            flat[:, :, at] = symbols.reshape(groups, planes, len(at))
            if want_bits:
                total_bits += entropy.ideal_bits(symbols, mu, b, -k, k - 1)
        grids.append(buf[:, :, HALF:, HALF:HALF + w].copy())
    return grids, total_bits


def _wavefront_steps(h: int, w: int, stride: int, dys: np.ndarray,
                     dxs: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per wavefront step, in the decoder's order: the flat indices of each position's context
    (n x offsets) and of the position itself, in the padded h + HALF by w + 2 HALF grid, worked
    out once per level instead of once per step."""
    width = w + 2 * HALF
    ys, xs, steps = wavefront_order(h, w, stride)
    at = (ys + HALF) * width + xs + HALF
    context_at = at[:, None] + (dys * width + dxs)[None, :]
    starts = np.flatnonzero(np.diff(steps)) + 1
    return np.split(context_at, starts), np.split(at, starts)


ENCODE_CHUNK = 1 << 20  # symbols per ARM and coder call when encoding (bounds memory)


def wavefront_order(h: int, w: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every position (y, x) of an h x w grid in the decoder's order: by step x + stride * y,
    then by row; with each position's step."""
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ys, xs = ys.ravel(), xs.ravel()
    steps = xs + stride * ys
    order = np.lexsort((ys, steps))
    return ys[order], xs[order], steps[order]


def _coding_constants(arm: IntegerARM, offsets: list[tuple[int, int]]):
    """(k, the Laplace family, the wavefront stride, context row and column offsets)."""
    return (arm.k, entropy.laplace_family(arm.k), wavefront_stride(offsets),
            np.array([dy for dy, _ in offsets]), np.array([dx for _, dx in offsets]))


def _encode(arm: IntegerARM, offsets: list[tuple[int, int]], shapes: list[tuple[int, int]],
            groups: int, planes: int, coder, latents: list[np.ndarray],
            want_bits: bool) -> tuple[list[np.ndarray], float]:
    k, family, stride, dys, dxs = _coding_constants(arm, offsets)
    grids, total_bits = [], 0.0
    for level, (h, w) in enumerate(shapes):
        grid = np.asarray(latents[level], dtype=np.int64)
        buf = np.zeros((groups, planes, h + HALF, w + 2 * HALF), dtype=np.int64)
        buf[:, :, HALF:, HALF:HALF + w] = grid
        ys, xs, steps = wavefront_order(h, w, stride)
        per_chunk = max(1, ENCODE_CHUNK // max(1, groups * planes))
        start = 0
        while start < len(ys):
            stop = min(len(ys), start + per_chunk)
            while stop < len(ys) and steps[stop] == steps[stop - 1]:  # whole steps only
                stop += 1
            cy, cx, cs = ys[start:stop], xs[start:stop], steps[start:stop]
            rows = cy[:, None] + HALF + dys[None, :]
            cols = cx[:, None] + HALF + dxs[None, :]
            count = len(cy)
            contexts = buf[:, :, rows, cols].reshape(groups, planes * count, len(offsets))
            mu_q, log_scale_q = arm(contexts)
            # the decoder's order: step, then decoder, plane, row within the step
            edges = [0, *(np.flatnonzero(np.diff(cs)) + 1), count]

            def decoder_order(values: np.ndarray) -> np.ndarray:
                values = values.reshape(groups, planes, count)
                return np.concatenate([values[:, :, a:b].ravel()
                                       for a, b in zip(edges[:-1], edges[1:])])

            symbols = decoder_order(grid[:, :, cy, cx])
            mu = decoder_order(mu_q).astype(np.float64) / ONE
            b = scales(decoder_order(log_scale_q))
            coder.encode(symbols.astype(np.int32), family, mu, b)
            if want_bits:
                total_bits += entropy.ideal_bits(symbols, mu, b, -k, k - 1)
            start = stop
        grids.append(grid.copy())
    return grids, total_bits

