"""The `fkd views` section: an FKD relabelling's views (ddcodec.sets.fkd), kept exactly.

    varint epochs, varint batch size, varint sampler seed, byte mix kind, byte logits dtype,
    u32 CRC of the sampler's orders (a torch whose RandomSampler draws otherwise is refused),
    byte coords coding: 1 = every coordinate is k / side for an integer k (what SRe2L writes:
        top / H, left / W, height / H, width / W), then the k in fixed width; 0 = raw float32,
    flips: one bit per view,
    mixing: per view its partner's position in its batch (fixed width), per batch lam (float64)
        and, for CutMix, the box (4 fixed-width integers).
Fixed widths are ceil(log2(largest + 1)) bits; every bit is in the file's size.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch

from ddcodec.coding.bytesio import FormatError, Reader, Writer
from ddcodec.errors import DDCodecError
from ddcodec.limits import LABELS
from ddcodec.sets.fkd import LOGIT_DTYPES, MIX_KINDS, FkdViews, sampler_orders

DTYPES = tuple(LOGIT_DTYPES)


def _width(largest: int) -> int:
    return max(1, int(largest).bit_length())


def _pack(values: np.ndarray, width: int) -> bytes:
    bits = ((values.astype(np.uint64)[:, None] >> np.arange(width, dtype=np.uint64)) & 1)
    return np.packbits(bits.astype(np.uint8).ravel(), bitorder="little").tobytes()


def _unpack(reader: Reader, count: int, width: int) -> np.ndarray:
    raw = np.frombuffer(reader.take(math.ceil(count * width / 8)), dtype=np.uint8)
    bits = np.unpackbits(raw, bitorder="little")[:count * width].reshape(count, width)
    return (bits.astype(np.uint64) << np.arange(width, dtype=np.uint64)).sum(1).astype(np.int64)


def _sides(h: int, w: int) -> np.ndarray:
    return np.array([h, w, h, w], dtype=np.float64)


def _coords_as_ints(coords: torch.Tensor, h: int, w: int) -> np.ndarray | None:
    """The integers k with float32(k / side) == each coordinate, if every one has one."""
    c = coords.numpy().reshape(-1, 4)
    k = np.rint(c.astype(np.float64) * _sides(h, w))
    if (k < 0).any() or (k > _sides(h, w)).any():
        return None
    back = (k / _sides(h, w)).astype(np.float32)
    return k.astype(np.int64).ravel() if np.array_equal(back, c) else None


def orders_crc(views_or_n, epochs: int | None = None, seed: int | None = None) -> int:
    orders = (views_or_n.orders() if isinstance(views_or_n, FkdViews)
              else sampler_orders(views_or_n, epochs, seed))
    return zlib.crc32(orders.numpy().astype("<i8").tobytes())


def encode_fkd(views: FkdViews, h: int, w: int) -> bytes:
    out = Writer()
    out.varint(views.epochs)
    out.varint(views.batch_size)
    out.varint(views.seed)
    out.u8(MIX_KINDS.index(views.mix))
    out.u8(DTYPES.index(views.logits_dtype))
    out.u32(orders_crc(views))
    ints = _coords_as_ints(views.coords, h, w)
    out.u8(1 if ints is not None else 0)
    body = [_pack(ints, _width(max(h, w))) if ints is not None
            else views.coords.numpy().astype("<f4").tobytes(),
            np.packbits(views.flips.numpy().ravel(), bitorder="little").tobytes()]
    if views.mix != "none":
        body.append(_pack(views.mix_index.numpy().ravel(), _width(views.batch_size - 1)))
        body.append(views.mix_lam.numpy().astype("<f8").tobytes())
    if views.mix == "cutmix":
        body.append(_pack(views.mix_box.numpy().ravel(), _width(max(h, w))))
    return out.getvalue() + b"".join(body)


def decode_fkd(data: bytes, num_images: int, h: int, w: int,
               memory_left: int | None = None) -> FkdViews:
    reader = Reader(data, "fkd views section")
    epochs = reader.varint(LABELS.epochs)
    if epochs < 1:
        raise FormatError("corrupt fkd views section: no epochs")
    batch_size = reader.varint(num_images)
    seed = reader.varint((1 << 63) - 1)
    mix_id, dtype_id = reader.u8(), reader.u8()
    if batch_size < 1 or mix_id >= len(MIX_KINDS) or dtype_id >= len(DTYPES):
        raise FormatError("corrupt fkd views section: batch size, mixing or logits type")
    views_count = epochs * num_images
    if memory_left is not None and 64 * views_count > memory_left:
        raise FormatError("fkd views section: more views than the memory bound allows")
    crc = reader.u32()
    exact = reader.u8()
    if exact > 1:
        raise FormatError("corrupt fkd views section: coords coding")
    if exact:
        k = _unpack(reader, 4 * views_count, _width(max(h, w))).reshape(-1, 4)
        coords = torch.from_numpy((k / _sides(h, w)).astype(np.float32))
    else:
        coords = torch.from_numpy(np.frombuffer(reader.take(16 * views_count), dtype="<f4")
                                  .astype(np.float32))
    flips = np.unpackbits(np.frombuffer(reader.take(math.ceil(views_count / 8)), np.uint8),
                          bitorder="little")[:views_count]
    mix, batches = MIX_KINDS[mix_id], math.ceil(num_images / batch_size)
    mix_index = torch.zeros(epochs, 0, dtype=torch.int64)
    mix_lam = torch.zeros(epochs, 0, dtype=torch.float64)
    mix_box = torch.zeros(epochs, 0, 4, dtype=torch.int64)
    if mix != "none":
        mix_index = torch.from_numpy(_unpack(reader, views_count, _width(batch_size - 1))
                                     ).view(epochs, num_images)
        mix_lam = torch.from_numpy(np.frombuffer(reader.take(8 * epochs * batches), "<f8")
                                   .astype(np.float64)).view(epochs, batches)
    if mix == "cutmix":
        mix_box = torch.from_numpy(_unpack(reader, 4 * epochs * batches, _width(max(h, w)))
                                   ).view(epochs, batches, 4)
    if reader.remaining:
        raise FormatError("corrupt fkd views section: bytes after its end")
    views = FkdViews(seed, batch_size, coords.reshape(epochs, num_images, 4),
                     torch.from_numpy(flips.astype(bool)).view(epochs, num_images), mix,
                     mix_index, mix_lam, mix_box, DTYPES[dtype_id])
    try:
        views.check(num_images, (h, w))
    except DDCodecError as exc:
        raise FormatError(f"corrupt fkd views section: {exc}") from None
    if orders_crc(views) != crc:
        raise FormatError("fkd views section: this torch's RandomSampler draws another image "
                          "order than the relabelling's (its orders' checksum differs)")
    return views


def digest_fkd(views: FkdViews, crc: int) -> int:
    head = np.asarray([views.epochs, views.batch_size, views.seed,
                       MIX_KINDS.index(views.mix), DTYPES.index(views.logits_dtype)],
                      dtype="<u8")
    crc = zlib.crc32(head.tobytes(), crc)
    for part, dtype in ((views.coords, "<f4"), (views.flips, "u1"), (views.mix_index, "<i8"),
                        (views.mix_lam, "<f8"), (views.mix_box, "<i8")):
        crc = zlib.crc32(part.numpy().astype(dtype).tobytes(), crc)
    return crc
