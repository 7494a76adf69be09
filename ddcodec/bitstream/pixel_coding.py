"""Lossless 8-bit pixels for vanilla (`--param pixels`) sets, so every baseline gets an honest size.

Each pixel is predicted from its left (a), upper (b) and upper-left (c) neighbours with the
median edge detector of LOCO-I/JPEG-LS; the residual is coded under a zero-mean quantised Laplace
whose scale depends on the local activity |a - c| + |b - c| + |a - b|, bucketed on a log scale.
The encoder fits one scale per bucket (stored as float32 in the section) and codes the residuals
of all images and channels in lockstep along anti-diagonals, the decoder's order.
"""

from __future__ import annotations

import math

import numpy as np

from ddcodec.coding import entropy
from ddcodec.coding.bytesio import FormatError, Reader, Writer

BUCKETS = 12
MIN_SCALE = 0.05


def _neighbours(buf: np.ndarray, ys: np.ndarray, xs: np.ndarray):
    """buf is padded by one on top and left (zeros); positions are unpadded coordinates."""
    a = buf[:, ys + 1, xs].astype(np.int64)  # left
    b = buf[:, ys, xs + 1].astype(np.int64)  # up
    c = buf[:, ys, xs].astype(np.int64)  # up-left
    return a, b, c


def med_predict(a, b, c, ys, xs, start: int = 128):
    """LOCO-I's median edge detector; the first row predicts from the left, the first column
    from above, and the first value is `start`."""
    med = np.where(c >= np.maximum(a, b), np.minimum(a, b),
                   np.where(c <= np.minimum(a, b), np.maximum(a, b), a + b - c))
    first_row, first_col = (ys == 0)[None, :], (xs == 0)[None, :]
    pred = np.where(first_row, a, np.where(first_col, b, med))
    return np.where(first_row & first_col, start, pred)


def _bucket(a, b, c) -> np.ndarray:
    activity = np.abs(a - c) + np.abs(b - c) + np.abs(a - b)
    return np.minimum(np.floor(np.log2(1 + activity)).astype(np.int64), BUCKETS - 1)


def diagonals(h: int, w: int):
    """Anti-diagonals (ys, xs) in order: every pixel after its left, upper, upper-left."""
    for t in range(h + w - 1):
        ys = np.arange(max(0, t - w + 1), min(h, t + 1))
        yield ys, t - ys


def _code(mode: str, planes: np.ndarray | None, shape, scales, coder):
    n, h, w = shape
    buf = np.zeros((n, h + 1, w + 1), dtype=np.int64)
    model = entropy.constriction.stream.model.QuantizedLaplace(-255, 255)
    residual_stats = np.zeros((BUCKETS, 2))
    for ys, xs in diagonals(h, w):
        a, b, c = _neighbours(buf, ys, xs)
        pred = med_predict(a, b, c, ys, xs)
        bucket = _bucket(a, b, c)
        if mode == "fit":
            residual = planes[:, ys, xs] - pred
            np.add.at(residual_stats, (bucket.ravel(), 0), np.abs(residual).ravel())
            np.add.at(residual_stats, (bucket.ravel(), 1), 1)
            values = planes[:, ys, xs]
        else:
            scale = scales[bucket].ravel()
            zeros = np.zeros(scale.size)
            if mode == "encode":
                residual = (planes[:, ys, xs] - pred).ravel().astype(np.int32)
                coder.encode(residual, model, zeros, scale)
            else:
                residual = coder.decode(model, zeros, scale).astype(np.int64)
            values = pred + residual.reshape(pred.shape)
            if mode == "decode" and (values.min() < 0 or values.max() > 255):
                raise FormatError("corrupt pixel section: a pixel left 0..255")
        buf[:, ys + 1, xs + 1] = values
    return buf[:, 1:, 1:], residual_stats


def encode_pixels(images: np.ndarray) -> tuple[bytes, float]:
    """uint8 N x C x H x W -> (section bytes, bits of the section). Bits are exact here."""
    n, c, h, w = images.shape
    planes = images.reshape(n * c, h, w).astype(np.int64)
    _, stats = _code("fit", planes, (n * c, h, w), None, None)
    scales = np.float32(np.maximum(stats[:, 0] / np.maximum(stats[:, 1], 1), MIN_SCALE))
    header = Writer()
    for s in scales:
        header.f32(float(s))
    coder = entropy.Encoder("pixels")
    _code("encode", planes, (n * c, h, w), scales.astype(np.float64), coder)
    data = header.getvalue() + coder.to_bytes()
    return data, 8.0 * len(data)


def decode_pixels(data: bytes, shape: tuple[int, int, int, int]) -> np.ndarray:
    n, c, h, w = shape
    reader = Reader(data, "pixel section")
    scales = np.array([reader.f32() for _ in range(BUCKETS)], dtype=np.float64)
    if not all(math.isfinite(s) and MIN_SCALE <= s <= 256 for s in scales):
        raise FormatError("corrupt pixel section: bad Laplace scale")
    coder = entropy.Decoder(reader.take(reader.remaining), "pixel section")
    planes, _ = _code("decode", None, (n * c, h, w), scales, coder)
    coder.finish()
    return planes.reshape(n, c, h, w).astype(np.uint8)
