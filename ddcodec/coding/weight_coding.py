"""Decoder and ARM weights in and out of the range coder.

Each tensor group (one decoder's weights or biases of one module) is coded under a zero-mean
quantised Laplace on [-M, M], M = max |q|, with b = max(mean |q|, 0.05) as float32. The section
holds, per group in canonical order, M (varint) and b (float32, absent when M = 0: all zeros),
then one range-coded stream of every group's integers. The symbol counts follow from the
architecture in the header; the steps are in the header too.
"""

from __future__ import annotations

import math

import numpy as np

from ddcodec.coding import entropy
from ddcodec import limits
from ddcodec.coding.bytesio import FormatError, Reader, Writer
from ddcodec.fixedpoint import WEIGHT_MAX_ABS, WEIGHT_MIN_SCALE


def encode_weights(groups: list[np.ndarray]) -> tuple[bytes, float]:
    """Integer arrays in canonical order -> (section bytes, ideal bits of the payload)."""
    preamble, coder, coded = Writer(), entropy.Encoder("weights"), []
    for q in groups:
        limits.integer_range("weight integers", q, WEIGHT_MAX_ABS)  # before any cast wraps
        q = np.asarray(q).astype(np.int32).ravel()
        m = int(np.abs(q).max()) if q.size else 0
        preamble.varint(m)
        if m == 0:
            continue
        b = float(np.float32(max(float(np.abs(q).mean()), WEIGHT_MIN_SCALE)))
        preamble.f32(b)
        coder.encode(q, entropy.fixed_laplace(m, b))
        coded.append((q, m, b))
    head = preamble.getvalue()
    return head + coder.to_bytes(), _ideal_bits(coded) + 8 * len(head)


def decode_weights(data: bytes, counts: list[int],
                   want_bits: bool = True) -> tuple[list[np.ndarray], float]:
    """Section bytes -> integer arrays and their ideal bits with the preamble (the payload's
    only when `want_bits`: reports need them, decoding does not); the section must be consumed
    exactly."""
    reader = Reader(data, "weight section")
    params = []
    for count in counts:
        m = reader.varint(WEIGHT_MAX_ABS)
        if m and not count:
            raise FormatError("corrupt weight section: a range for an empty tensor group")
        b = reader.f32() if m else 0.0
        if m and not (math.isfinite(b) and WEIGHT_MIN_SCALE <= b <= WEIGHT_MAX_ABS):
            raise FormatError("corrupt weight section: bad Laplace scale")
        params.append((m, b))
    bits = 8.0 * reader.pos
    coder = entropy.Decoder(reader.take(reader.remaining), "weight section")
    out, coded = [], []
    for count, (m, b) in zip(counts, params):
        if m == 0 or count == 0:
            out.append(np.zeros(count, dtype=np.int32))
            continue
        q = coder.decode(entropy.fixed_laplace(m, b), count)
        coded.append((q, m, b))
        out.append(q)
    coder.finish()
    return out, bits + (_ideal_bits(coded) if want_bits else 0.0)


def _ideal_bits(coded: list[tuple[np.ndarray, int, float]]) -> float:
    """The ideal bits of every coded group under its own Laplace (q, M, b), in one vectorised
    call: a file has hundreds of small groups, and one call per group cost a tenth of an
    encode."""
    if not coded:
        return 0.0
    q = np.concatenate([c[0] for c in coded])
    m = np.concatenate([np.full(c[0].size, c[1], dtype=np.float64) for c in coded])
    b = np.concatenate([np.full(c[0].size, c[2]) for c in coded])
    return entropy.ideal_bits(q, np.zeros(q.size), b, -m, m)
