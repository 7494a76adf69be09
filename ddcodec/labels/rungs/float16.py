"""The float16 rung: the probabilities as little-endian float16, row by row (the papers' count,
and `info`'s float-equivalent size)."""

from __future__ import annotations

import numpy as np
import torch

from ddcodec.coding.bytesio import FormatError, Reader, Writer
from ddcodec.labels.rungs.base import LabelRung, check_memory
from ddcodec.labels.soft import SoftLabels


def as_float16(probabilities: torch.Tensor, **meta) -> SoftLabels:
    """The float16 rung: probabilities rounded to float16 (what the file stores)."""
    return SoftLabels(probabilities.half().float(), codec="float16", **meta)


class Float16(LabelRung):
    name = "float16"

    def quantise(self, probabilities, k, *, step_log2=-4, seed=0, **meta):
        return as_float16(probabilities, **meta)

    def estimate(self, k, num_classes, rows_per_image):
        return 0.0, 16.0 * num_classes * rows_per_image

    def encode(self, labels: SoftLabels, out: Writer) -> None:
        out.raw(labels.probabilities.numpy().astype("<f2").tobytes())

    def decode(self, reader: Reader, size: int, rows: int, num_classes: int, meta: dict,
               memory_left: int | None) -> SoftLabels:
        self.check_limits(rows, num_classes)
        check_memory(memory_left, rows, num_classes)
        raw = reader.take(2 * rows * num_classes)
        if reader.remaining:
            raise FormatError("corrupt label section: unexpected bytes at its end")
        values = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        probs = torch.from_numpy(values.reshape(rows, num_classes).copy())
        if not torch.isfinite(probs).all() or (probs < 0).any():
            raise FormatError("corrupt label section: a probability is negative or not finite")
        return SoftLabels(probs, codec="float16", **meta)


RUNG = Float16()
