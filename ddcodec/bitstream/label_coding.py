"""Soft labels in and out of a `.ddz` (the `labels` section, tag 7).

Layout: codec (u8: the rung's wire id, ddcodec.labels.rungs; bit 0x80: per epoch, bit 0x40: a
hard weight, see FORMAT.md), loss (u8: 0 ce, 1 kl), temperature (f32), with a hard weight the
weight (f32, in (0, 1]), with per-epoch labels the epochs, the views' seed and their strategy,
then the rung's own part (each rung's module describes it:
float16, vq, topk, vqae). Every number is exact; only turning integers into probabilities
(softmax, the VQ autoencoder's decoder) is float arithmetic.
"""

from __future__ import annotations

import math

from ddcodec import limits
from ddcodec.coding.bytesio import FormatError, Reader, Writer
from ddcodec.errors import LimitError
from ddcodec.labels.rungs import by_wire_id, rung, spec_of
from ddcodec.labels.soft import SoftLabels
from ddcodec.limits import LABELS
from ddcodec.names import FKD_VIEW_STRATEGY, LABEL_LOSSES as LOSSES
from ddcodec.data.augment import DSAParams

PER_EPOCH = 0x80  # flag on the codec byte: the epochs, view seed and strategy follow
HARD_WEIGHT = 0x40  # flag on the codec byte: the hard weight follows the temperature


def check_encodable(labels: SoftLabels) -> None:
    """Refuse (LimitError) labels the labels section cannot hold, before anything is written:
    the decoder checks the very same limits (ddcodec.limits and the rung's)."""
    rows, classes = labels.probabilities.shape
    limits.finite_f32("soft-label temperature", labels.temperature, positive=True)
    if labels.hard_weight:
        limits.finite_f32("soft-label hard weight", labels.hard_weight, high=1.0, positive=True)
    if labels.per_epoch:
        limits.label_views(labels.epochs, labels.view_seed, labels.view_strategy.encode("ascii"))
    coder = rung(labels.codec)
    coder.check_limits(rows, classes, **coder.params(labels))
    for name, ints in coder.integers(labels):
        limits.integer_range(name, ints.numpy(), LABELS.integer)


def _common(labels: SoftLabels, out: Writer) -> None:
    out.u8(spec_of(labels.codec).wire_id | (PER_EPOCH if labels.per_epoch else 0)
           | (HARD_WEIGHT if labels.hard_weight else 0))
    out.u8(LOSSES.index(labels.loss))
    out.f32(labels.temperature)
    if labels.hard_weight:
        out.f32(labels.hard_weight)


def params_bytes(labels: SoftLabels) -> bytes:
    """Every parameter of the labels that changes what training sees, canonically: the values
    checksum of format version 3 covers them (the decoded values alone would miss, say, the
    loss or the views' seed)."""
    out = Writer()
    _common(labels, out)
    if labels.per_epoch:
        out.varint(labels.epochs)
        out.varint(labels.view_seed)
        out.text(labels.view_strategy)
    for key, value in sorted(rung(labels.codec).params(labels).items()):
        out.text(key)
        out.svarint(int(value))
    return out.getvalue()


def encode_labels(labels: SoftLabels) -> tuple[bytes, float]:
    check_encodable(labels)
    out = Writer()
    _common(labels, out)
    if labels.per_epoch:
        strategy = labels.view_strategy.encode("ascii")
        out.varint(labels.epochs)
        out.varint(labels.view_seed)
        out.varint(len(strategy))
        out.raw(strategy)
    rung(labels.codec).encode(labels, out)
    data = out.getvalue()
    return data, 8.0 * len(data)


def decode_labels(data: bytes, num_images: int, num_classes: int,
                  memory_left: int | None = None) -> SoftLabels:
    """The section's labels; `memory_left`: bytes they may take (None: no bound)."""
    try:
        return _decode_labels(data, num_images, num_classes, memory_left)
    except LimitError as exc:
        raise FormatError(f"corrupt label section: {exc}") from None


def _decode_labels(data: bytes, num_images: int, num_classes: int,
                   memory_left: int | None) -> SoftLabels:
    reader = Reader(data, "label section")
    flags, loss = reader.u8(), reader.u8()
    spec = by_wire_id(flags & ~(PER_EPOCH | HARD_WEIGHT))
    if spec is None or loss >= len(LOSSES):
        raise FormatError("corrupt label section: unknown codec or loss")
    temperature = reader.f32()
    if not (math.isfinite(temperature) and temperature > 0):
        raise FormatError("corrupt label section: bad temperature")
    meta = {"temperature": float(temperature), "loss": LOSSES[loss]}
    if flags & HARD_WEIGHT:
        weight = reader.f32()
        if not (math.isfinite(weight) and 0 < weight <= 1):
            raise FormatError("corrupt label section: a hard weight outside (0, 1]")
        meta["hard_weight"] = float(weight)
    rows = num_images
    if flags & PER_EPOCH:
        meta.update(_decode_views(reader))
        rows *= meta["epochs"]  # from here on: the rows
    return rung(spec.name).decode(reader, len(data), rows, num_classes, meta, memory_left)


def _decode_views(reader: Reader) -> dict:
    """The per-epoch fields: epochs, the views' seed and their DSA strategy."""
    epochs = reader.varint(1 << 32)
    seed = reader.varint(1 << 64)
    strategy = reader.take(reader.varint(1 << 32))
    limits.label_views(epochs, seed, strategy)
    try:
        text = strategy.decode("ascii")
        if text != FKD_VIEW_STRATEGY:  # FKD views travel in their own section
            DSAParams(strategy=text).groups()
    except (UnicodeDecodeError, ValueError):
        raise FormatError("corrupt label section: an unknown view strategy") from None
    return {"epochs": epochs, "view_seed": seed, "view_strategy": text}
