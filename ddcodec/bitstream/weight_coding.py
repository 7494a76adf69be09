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

from ddcodec.bitstream import entropy
from ddcodec.bitstream.bytesio import FormatError, Reader, Writer

MAX_ABS = 65535
MIN_SCALE = 0.05


def encode_weights(groups: list[np.ndarray]) -> tuple[bytes, float]:
    """Integer arrays in canonical order -> (section bytes, ideal bits of the payload)."""
    preamble, coder, bits = Writer(), entropy.encoder(), 0.0
    for q in groups:
        q = np.asarray(q, dtype=np.int32).ravel()
        m = int(np.abs(q).max()) if q.size else 0
        if m > MAX_ABS:
            raise ValueError("weight integer out of range")
        preamble.varint(m)
        if m == 0:
            continue
        b = float(np.float32(max(float(np.abs(q).mean()), MIN_SCALE)))
        preamble.f32(b)
        model = entropy.constriction.stream.model.QuantizedLaplace(-m, m, 0.0, b)
        coder.encode(q, model)
        bits += entropy.ideal_bits(q, np.zeros(q.size), np.full(q.size, b), -m, m)
    head = preamble.getvalue()
    return head + entropy.words_to_bytes(coder), bits + 8 * len(head)


def decode_weights(data: bytes, counts: list[int], with_bits: bool = False):
    """Section bytes -> integer arrays (and, if asked, their ideal bits with the preamble)."""
    reader = Reader(data, "weight section")
    params = []
    for _ in counts:
        m = reader.varint(MAX_ABS)
        b = reader.f32() if m else 0.0
        if m and not (math.isfinite(b) and b > 0):
            raise FormatError("corrupt weight section: bad Laplace scale")
        params.append((m, b))
    bits = 8.0 * reader.pos
    coder = entropy.decoder(reader.take(reader.remaining), "weight section")
    out = []
    for count, (m, b) in zip(counts, params):
        if m == 0 or count == 0:
            out.append(np.zeros(count, dtype=np.int32))
            continue
        model = entropy.constriction.stream.model.QuantizedLaplace(-m, m, 0.0, b)
        q = np.asarray(entropy.guarded(lambda: coder.decode(model, count), "weight section"),
                       dtype=np.int32)
        bits += entropy.ideal_bits(q, np.zeros(count), np.full(count, b), -m, m)
        out.append(q)
    return (out, bits) if with_bits else out
