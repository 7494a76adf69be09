"""Exact coding of float pixel sets (float16 or float32 values, bit for bit).

Sets from other methods (MTT, DATM, DD-Ranking tensors) hold free float values, normalised, off
the 8-bit grid; rounding them to 8 bits would change them. Here each value's bit pattern is
mapped to an unsigned integer that is monotonic in the value (sign-magnitude to offset binary:
neighbouring values get neighbouring integers, across zero too). Each integer is predicted from
its left, upper and upper-left neighbours with the median edge detector (the 8-bit pixel coder's
predictor, in this integer domain), and the zigzagged residual is split Elias-gamma style:

- its magnitude class k = bit length (0 for an exact prediction) is range-coded under a
  categorical model chosen by the local activity's bit length (a context), whose counts the
  section stores; the model is the exact empirical distribution, so classes cost their entropy;
- its k - 1 bits below the leading one are stored raw, bit-packed: the low mantissa bits of
  learnt images are noise, and no model would code them in fewer bits.

Images and channels are coded in lockstep along anti-diagonals (the decoder's order), and within
a diagonal by context, so one fixed categorical model serves each call. Section layout: the
value width (u8: 16 or 32), the used contexts' counts (varints), the range-coded classes (varint
length + words), then the raw bits (to the section's end, zero-padded to a byte).
"""

from __future__ import annotations

import numpy as np

from ddcodec.coding import entropy
from ddcodec.coding.bytesio import FormatError, Reader, Writer
from ddcodec.bitstream.pixel_coding import diagonals, med_predict

WIDTHS = {16: (np.float16, np.uint16), 32: (np.float32, np.uint32)}
MAX_COUNT = 1 << 40  # a class count (the section would be terabytes before this)


def narrowest_width(values: np.ndarray) -> int:
    """16 when every value survives float16 exactly, else 32."""
    values = np.asarray(values, dtype=np.float32)
    with np.errstate(over="ignore"):
        half = values.astype(np.float16)
    same = np.array_equal(half.astype(np.float32).view(np.uint32), values.view(np.uint32))
    return 16 if same else 32


def _to_ordered(values: np.ndarray, width: int) -> np.ndarray:
    float_type, uint_type = WIDTHS[width]
    bits = np.ascontiguousarray(values, dtype=float_type).view(uint_type).astype(np.int64)
    sign = np.int64(1) << (width - 1)
    full = (np.int64(1) << width) - 1
    return np.where(bits & sign, full - bits, bits | sign)


def _from_ordered(ordered: np.ndarray, width: int) -> np.ndarray:
    float_type, uint_type = WIDTHS[width]
    sign = np.int64(1) << (width - 1)
    full = (np.int64(1) << width) - 1
    bits = np.where(ordered & sign, ordered & (sign - 1), full - ordered)
    return bits.astype(uint_type).view(float_type)


def _bit_length(values: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values below 2^52 (exact through float64's exponent)."""
    _, exponent = np.frexp(values.astype(np.float64))
    return np.where(values > 0, exponent, 0).astype(np.int64)


def _zigzag(r: np.ndarray) -> np.ndarray:
    return np.where(r >= 0, 2 * r, -2 * r - 1)


def _unzigzag(z: np.ndarray) -> np.ndarray:
    return np.where(z & 1, -((z + 1) >> 1), z >> 1)


class _RawBits:
    """Variable-length raw fields, most significant bit first, packed into bytes."""

    def __init__(self, data: bytes = b""):
        self.chunks: list[np.ndarray] = []
        self.bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
        self.cursor = 0

    def write(self, values: np.ndarray, lengths: np.ndarray) -> None:
        width = int(lengths.max(initial=0))
        if width == 0:
            return
        shifts = np.arange(width - 1, -1, -1)
        table = (values[:, None] >> shifts[None, :]) & 1
        keep = shifts[None, :] < lengths[:, None]
        self.chunks.append(table[keep].astype(np.uint8))

    def read(self, lengths: np.ndarray) -> np.ndarray:
        total = int(lengths.sum())
        if self.cursor + total > len(self.bits):
            raise FormatError("corrupt float pixel section: raw bits end early")
        width = int(lengths.max(initial=0))
        out = np.zeros(len(lengths), dtype=np.int64)
        if width == 0:
            return out
        taken = self.bits[self.cursor:self.cursor + total].astype(np.int64)
        self.cursor += total
        shifts = np.arange(width - 1, -1, -1)
        keep = shifts[None, :] < lengths[:, None]
        table = np.zeros((len(lengths), width), dtype=np.int64)
        table[keep] = taken
        return (table << shifts[None, :]).sum(1)

    def to_bytes(self) -> bytes:
        bits = np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.uint8)
        return np.packbits(bits).tobytes()

    def finish(self) -> None:
        whole = (self.cursor + 7) // 8 * 8
        if whole != len(self.bits) or self.bits[self.cursor:].any():
            raise FormatError("corrupt float pixel section: raw bits do not end where its "
                              "data ends")


def _contexts(a, b, c, width: int) -> np.ndarray:
    activity = np.abs(a - c) + np.abs(b - c) + np.abs(a - b)
    return np.minimum(_bit_length(activity), width + 2)


def _walk(planes_shape, width: int, step) -> np.ndarray:
    """Visit every anti-diagonal of every plane in decoding order; `step(ys, xs, pred, ctx)`
    returns the diagonal's ordered integers. Returns all of them (planes x H x W)."""
    n, h, w = planes_shape
    start = np.int64(1) << (width - 1)  # +0.0: the first value's prediction
    buf = np.zeros((n, h + 1, w + 1), dtype=np.int64)
    for ys, xs in diagonals(h, w):
        a = buf[:, ys + 1, xs]
        b = buf[:, ys, xs + 1]
        c = buf[:, ys, xs]
        pred = med_predict(a, b, c, ys, xs, start)
        buf[:, ys + 1, xs + 1] = step(ys, xs, pred, _contexts(a, b, c, width))
    return buf[:, 1:, 1:]


def _classes_and_raw(residual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = _zigzag(residual)
    k = _bit_length(z)
    return k, z - np.where(k > 0, np.int64(1) << np.maximum(k - 1, 0), 0)


def _models(table: dict[int, np.ndarray]) -> dict:
    """Context -> (first class, categorical model over its classes; None when it has one
    class, which then costs nothing)."""
    out = {}
    for ctx, (first, counts) in table.items():
        probabilities = counts.astype(np.float64) / counts.sum()
        out[ctx] = (first, entropy.categorical(probabilities) if len(counts) > 1 else None)
    return out


def encode_float_pixels(images: np.ndarray, width: int) -> bytes:
    """float N x C x H x W (values exact in `width` bits) -> section bytes."""
    n, c, h, w = images.shape
    planes = _to_ordered(images.reshape(n * c, h, w), width)
    counts = np.zeros((width + 3, width + 2), dtype=np.int64)

    def fit(ys, xs, pred, ctx):
        truth = planes[:, ys, xs]
        k, _ = _classes_and_raw(truth - pred)
        np.add.at(counts, (ctx.ravel(), k.ravel()), 1)
        return truth

    _walk(planes.shape, width, fit)
    table = {}
    for ctx in np.flatnonzero(counts.sum(1)):
        used = np.flatnonzero(counts[ctx])
        table[int(ctx)] = (int(used[0]), counts[ctx, used[0]:used[-1] + 1])
    models = _models(table)
    coder, raw = entropy.Encoder("float pixels"), _RawBits()

    def encode(ys, xs, pred, ctx):
        truth = planes[:, ys, xs]
        k, low = _classes_and_raw(truth - pred)
        k, low, ctx_flat = k.ravel(), low.ravel(), ctx.ravel()
        for context in np.unique(ctx_flat):
            mine = ctx_flat == context
            first, model = models[int(context)]
            if model is not None:
                coder.encode((k[mine] - first).astype(np.int32), model)
        raw.write(low, np.maximum(k - 1, 0))
        return truth

    _walk(planes.shape, width, encode)
    out = Writer()
    out.u8(width)
    out.varint(len(table))
    for ctx, (first, row) in table.items():
        out.varint(ctx)
        out.varint(first)
        out.varint(len(row))
        for count in row:
            out.varint(int(count))
    words = coder.to_bytes()
    out.varint(len(words))
    out.raw(words)
    out.raw(raw.to_bytes())
    return out.getvalue()


def decode_float_pixels(data: bytes, shape: tuple[int, int, int, int]) -> tuple[np.ndarray, int]:
    """Section bytes -> (float images as stored, their width in bits)."""
    n, c, h, w = shape
    reader = Reader(data, "float pixel section")
    width = reader.u8()
    if width not in WIDTHS:
        raise FormatError(f"corrupt float pixel section: value width {width}")
    table = {}
    for _ in range(reader.varint(width + 3)):
        ctx = reader.varint(width + 2)
        first = reader.varint(width + 1)
        size = reader.varint(width + 2 - first)
        row = np.array([reader.varint(MAX_COUNT) for _ in range(size)], dtype=np.int64)
        if ctx in table or size == 0 or row[0] == 0 or row[-1] == 0:
            raise FormatError("corrupt float pixel section: bad context table")
        table[ctx] = (first, row)
    models = _models(table)
    coder = entropy.Decoder(reader.take(reader.varint(len(data))), "float pixel section")
    raw = _RawBits(reader.take(reader.remaining))
    top = (np.int64(1) << width) - 1

    def decode(ys, xs, pred, ctx):
        ctx_flat = ctx.ravel()
        k = np.zeros(ctx_flat.shape, dtype=np.int64)
        for context in np.unique(ctx_flat):
            if int(context) not in models:
                raise FormatError("corrupt float pixel section: a context without a model")
            mine = ctx_flat == context
            first, model = models[int(context)]
            k[mine] = first if model is None else (
                coder.decode(model, int(mine.sum())).astype(np.int64) + first)
        low = raw.read(np.maximum(k - 1, 0))
        z = np.where(k > 0, (np.int64(1) << np.maximum(k - 1, 0)) + low, 0)
        values = pred + _unzigzag(z).reshape(pred.shape)
        if values.min() < 0 or values.max() > top:
            raise FormatError("corrupt float pixel section: a value left its range")
        return values

    ordered = _walk((n * c, h, w), width, decode)
    coder.finish()
    raw.finish()
    images = _from_ordered(ordered, width).reshape(n, c, h, w)
    if not np.isfinite(images).all():
        raise FormatError("corrupt float pixel section: a value is not finite")
    return images, width
