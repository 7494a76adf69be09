"""The top-k rung, the label-pruning papers': per sample, the k most probable classes and their
probabilities as `bits`-bit integers m (p = m / (2^bits - 1)); the mass left is spread evenly
over the other classes (if the kept integers exceed the scale, they are renormalised and the
others get 0). Integers exact, the division float64 then float32.

Section part: k (u8) and bits (u8); the K class counts (varints) and the distinct values with
their counts (varint n, then value and count varints); then one range-coded stream (varint byte
length, words) of the N x k kept classes, row by row, under the categorical of the class counts,
followed by their N x k values under the categorical of the value counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from ddcodec.coding import entropy
from ddcodec.coding.bytesio import FormatError, Reader, Writer
from ddcodec.errors import DDCodecError
from ddcodec.labels.rungs.base import LabelRung, check_memory, index_model
from ddcodec.labels.soft import SoftLabels
from ddcodec.limits import LABELS, within

TOPK_VALUE_BITS = 8  # top-k keeps 8-bit probabilities


@dataclass(frozen=True)
class TopKLabels:
    bits: int
    classes: torch.Tensor  # int64 N x k: the kept classes, most probable first
    values: torch.Tensor  # int32 N x k: their probabilities x (2^bits - 1), rounded

    def probabilities(self, num_classes: int) -> torch.Tensor:
        return decode_topk(self.classes, self.values, self.bits, num_classes)

    def to_dict(self) -> dict:
        return {"bits": self.bits, "classes": self.classes.contiguous(),
                "values": self.values.contiguous()}


def decode_topk(classes: torch.Tensor, values: torch.Tensor, bits: int,
                num_classes: int) -> torch.Tensor:
    """Distributions from the top-k integers: kept p = m / (2^bits - 1), the rest spread evenly
    (renormalised when the kept integers exceed the scale), float64 -> float32."""
    scale = float((1 << bits) - 1)
    n, k = classes.shape
    kept = values.to(torch.float64)
    total = kept.sum(1, keepdim=True)
    over = total > scale
    kept = torch.where(over, kept / total.clamp_min(1), kept / scale)
    rest = num_classes - k
    left = (1 - kept.sum(1, keepdim=True)).clamp_min(0)
    fill = left / rest if rest else torch.zeros_like(left)
    out = fill.expand(n, num_classes).clone()
    out.scatter_(1, classes, kept)
    if not rest:  # nothing to spread the rest over: renormalise what is kept
        out = out / out.sum(1, keepdim=True).clamp_min(1e-300)
    return out.float()


def as_topk(probabilities: torch.Tensor, k: int, bits: int = 8, **meta) -> SoftLabels:
    """The top-k rung: the k most probable classes per sample at `bits` bits each."""
    num_classes = probabilities.shape[1]
    if not 1 <= k <= num_classes:
        raise DDCodecError(f"--k must be between 1 and the {num_classes} classes for top-k")
    if not 1 <= bits <= 16:
        raise DDCodecError("top-k probabilities take 1 to 16 bits")
    top = probabilities.double().topk(k, dim=1)
    values = torch.round(top.values * ((1 << bits) - 1)).to(torch.int32)
    topk = TopKLabels(bits, top.indices.to(torch.int64), values)
    return SoftLabels(topk.probabilities(num_classes), codec="topk", payload=topk, **meta)


class TopK(LabelRung):
    name = "topk"
    payload_type = TopKLabels

    def quantise(self, probabilities, k, *, step_log2=-4, seed=0, **meta):
        return as_topk(probabilities, k or self.default_k, **meta)

    def estimate(self, k, num_classes, rows_per_image):
        k = k or self.default_k
        return 0.0, rows_per_image * k * (TOPK_VALUE_BITS + math.log2(max(2, num_classes)))

    def size(self, labels):
        return int(labels.payload.classes.shape[1])

    def describe(self, labels):
        return f"top-{labels.payload.classes.shape[1]}"

    def payload_from_dict(self, raw):
        return TopKLabels(int(raw["bits"]), raw["classes"], raw["values"])

    def take(self, payload, rows):
        return replace(payload, classes=payload.classes[rows], values=payload.values[rows])

    def check(self, labels, rows, num_classes):
        num_images = rows
        t = labels.payload
        if (not isinstance(t, TopKLabels) or t.classes.ndim != 2
                or t.classes.shape[0] != num_images
                or t.values.shape != t.classes.shape or t.classes.is_floating_point()
                or t.values.is_floating_point() or not 1 <= t.bits <= 16
                or not 1 <= t.classes.shape[1] <= num_classes):
            raise DDCodecError("top-k soft labels need N x k integer classes and values, "
                               "1 <= k <= classes, 1 to 16 bits")
        if len(t.classes) and (int(t.classes.min()) < 0 or int(t.classes.max()) >= num_classes
                               or int(t.values.min()) < 0
                               or int(t.values.max()) > (1 << t.bits) - 1):
            raise DDCodecError("top-k soft labels hold a class or a value out of range")
        if not torch.allclose(t.probabilities(num_classes), labels.probabilities, rtol=0,
                              atol=1e-6):
            raise DDCodecError("top-k soft labels disagree with their classes and values")

    def params(self, labels):
        return {"k": int(labels.payload.classes.shape[1]), "bits": labels.payload.bits}

    def check_params(self, rows, classes, *, k=None, bits=None, **_):
        within("top-k kept classes", k, 1, min(LABELS.topk, classes))
        within("top-k value bits", bits, *LABELS.bits)

    def digest_parts(self, labels, version):
        t = labels.payload
        return [t.classes.numpy().astype("<i8").tobytes(),
                t.values.numpy().astype("<i4").tobytes()]

    def info(self, labels):
        return {"top_k": int(labels.payload.classes.shape[1]), "value_bits": labels.payload.bits}

    def encode(self, labels: SoftLabels, out: Writer) -> None:
        t = labels.payload
        classes, values = t.classes.numpy().ravel(), t.values.numpy().ravel()
        num_classes = labels.probabilities.shape[1]
        out.u8(t.classes.shape[1])
        out.u8(t.bits)
        class_counts = np.bincount(classes, minlength=num_classes)
        for count in class_counts:
            out.varint(int(count))
        distinct, value_counts = np.unique(values, return_counts=True)
        out.varint(len(distinct))
        for value, count in zip(distinct, value_counts):
            out.varint(int(value))
            out.varint(int(count))
        coder = entropy.Encoder("top-k labels")
        used = False
        for symbols, counts in ((classes, class_counts),
                                (np.searchsorted(distinct, values), value_counts)):
            model = index_model(counts)
            if model is not None:
                coder.encode(symbols.astype(np.int32), model)
                used = True
        stream = coder.to_bytes() if used else b""
        out.varint(len(stream))
        out.raw(stream)

    def decode(self, reader: Reader, size: int, num_images: int, num_classes: int,
               meta: dict, memory_left: int | None) -> SoftLabels:
        k, bits = reader.u8(), reader.u8()
        self.check_limits(num_images, num_classes, k=k, bits=bits)
        check_memory(memory_left, num_images, num_classes, num_images * k)
        n = num_images * k
        class_counts = np.array([reader.varint(n) for _ in range(num_classes)], dtype=np.int64)
        distinct = []
        value_counts = []
        for _ in range(reader.varint(min(n, 1 << bits))):
            distinct.append(reader.varint((1 << bits) - 1))
            value_counts.append(reader.varint(n))
        distinct_arr, value_counts_arr = np.array(distinct, dtype=np.int64), np.array(
            value_counts, dtype=np.int64)
        if (int(class_counts.sum()) != n or int(value_counts_arr.sum()) != n
                or np.any(np.diff(distinct_arr) <= 0)):
            raise FormatError("corrupt label section: top-k counts do not add up")
        stream = reader.take(reader.varint(size))
        if reader.remaining:
            raise FormatError("corrupt label section: unexpected bytes at its end")
        coder = entropy.Decoder(stream, "label section") if stream else None
        decoded = []
        for counts in (class_counts, value_counts_arr):
            model = index_model(counts)
            if model is None:
                decoded.append(np.full(n, int(np.argmax(counts)), dtype=np.int64))
            elif coder is None:
                raise FormatError("corrupt label section: the top-k stream is missing")
            else:
                decoded.append(coder.decode(model, n).astype(np.int64))
        if coder is not None:
            coder.finish()
        classes, value_index = decoded
        if not (np.array_equal(np.bincount(classes, minlength=num_classes), class_counts)
                and np.array_equal(np.bincount(value_index, minlength=len(distinct_arr)),
                                   value_counts_arr)):
            raise FormatError("corrupt label section: top-k symbols disagree with their counts")
        rows = classes.reshape(num_images, k)
        if k > 1 and (np.diff(np.sort(rows, axis=1), axis=1) == 0).any():
            raise FormatError("corrupt label section: a class kept twice in one row")
        topk = TopKLabels(bits, torch.from_numpy(rows.copy()),
                          torch.from_numpy(distinct_arr[value_index].astype(np.int32).reshape(
                              num_images, k)))
        return SoftLabels(topk.probabilities(num_classes), codec="topk", payload=topk, **meta)


RUNG = TopK()
