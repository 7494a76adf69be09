"""What every rung of the soft-label ladder implements, and what the built-in rungs share: the
index stream of the codebook rungs and the labels section's memory check.

A rung's part of the labels section follows the section's common fields (codec byte, loss,
temperature, the per-epoch views; ddcodec.bitstream.label_coding). `params` and `integers` are
what the format's limits and its values checksum cover; the decoder checks the same limits
before it allocates anything.
"""

from __future__ import annotations

import numpy as np
import torch

from ddcodec import limits
from ddcodec.coding import entropy
from ddcodec.coding.bytesio import FormatError, Reader, Writer
from ddcodec.errors import LimitError
from ddcodec.labels.rungs import spec_of
from ddcodec.labels.soft import SoftLabels

# Decoding holds at most this many bytes per decoded value (rows x classes, and the codebooks'
# and decoders' integers): float32 probabilities, their float64 work copies, indices.
LABEL_BYTES_PER_VALUE = 32


class LabelRung:
    """One codec of soft labels. Subclasses set `name` and implement the methods."""

    name: str
    sized_by_budget = False  # without --k under a budget: the largest k whose labels fit it
    payload_type: type | None = None  # the rung's integers, as SoftLabels.payload holds them

    @property
    def default_k(self) -> int | None:
        return spec_of(self.name).default_k

    def quantise(self, probabilities: torch.Tensor, k: int | None, *, step_log2: int = -4,
                 seed: int = 0, **meta) -> SoftLabels:
        """The teacher's rows in this rung (k: its size, None for its default)."""
        raise NotImplementedError

    def estimate(self, k: int | None, num_classes: int, rows_per_image: int) -> tuple[float,
                                                                                      float]:
        """Bits before any image exists: (fixed per class beyond the section's framing,
        per image)."""
        raise NotImplementedError

    def size(self, labels: SoftLabels) -> int | None:
        """Its k (codebook entries or kept classes; None: it has none)."""
        return None

    def describe(self, labels: SoftLabels) -> str:
        return self.name

    def payload_from_dict(self, raw: dict):
        """The rung's integers from a set file (None for a rung that stores the rows)."""
        return None

    def take(self, payload, rows: torch.Tensor):
        """The payload of the images `rows` (indices or rows taken, tables kept)."""
        return payload

    def check(self, labels: SoftLabels, rows: int, num_classes: int) -> None:
        """Refuse (DDCodecError) a payload that does not give exactly the labels' rows."""

    def params(self, labels: SoftLabels) -> dict[str, int]:
        """The rung's parameters: what its limits bound and the values checksum covers."""
        return {}

    def check_params(self, rows: int, classes: int, **params: int) -> None:
        """The format's limits on the parameters (LimitError), the same on write and read."""

    def check_limits(self, rows: int, classes: int, **params: int) -> None:
        limits.label_values(rows, classes)
        self.check_params(rows, classes, **params)

    def integers(self, labels: SoftLabels) -> list[tuple[str, torch.Tensor]]:
        """Stored integers the weights coder's range bounds."""
        return []

    def digest_parts(self, labels: SoftLabels, version: int) -> list[bytes] | None:
        """What the values checksum covers of the labels in a file of `version`: the rung's
        integers, canonically; None: the rows as float16."""
        return None

    def info(self, labels: SoftLabels) -> dict:
        """The rung's sizes, for `ddcodec info`."""
        return {}

    def encode(self, labels: SoftLabels, out: Writer) -> None:
        raise NotImplementedError

    def decode(self, reader: Reader, size: int, rows: int, num_classes: int, meta: dict,
               memory_left: int | None) -> SoftLabels:
        raise NotImplementedError


def label_memory(rows: int, classes: int, table_values: int = 0) -> int:
    """Bytes decoding labels holds: every decoded value and every stored table integer."""
    return LABEL_BYTES_PER_VALUE * (rows * classes + table_values)


def check_memory(memory_left: int | None, rows: int, classes: int, table: int = 0) -> None:
    """Refuse labels that would take more memory than the file's size allows (the bound of
    docs/FORMAT.md), before anything is allocated."""
    if memory_left is not None and label_memory(rows, classes, table) > memory_left:
        raise LimitError(f"{rows:,} rows x {classes:,} classes (and {table:,} stored integers) "
                         "are implausible for this file's size")


def index_model(counts: np.ndarray):
    """The categorical model of the index counts; None when one index takes every image."""
    if int((counts > 0).sum()) <= 1:
        return None
    return entropy.categorical(counts.astype(np.float64) / counts.sum())


def encode_indices(out: Writer, indices: torch.Tensor, k: int) -> None:
    """k index counts (varints), then the indices range-coded under their categorical (nothing
    when one index takes every row)."""
    counts = np.bincount(indices.numpy(), minlength=k)
    for count in counts:
        out.varint(int(count))
    coder = entropy.Encoder("label indices")
    model = index_model(counts)
    if model is not None:
        coder.encode(indices.numpy().astype(np.int32), model)
    stream = coder.to_bytes() if model is not None else b""
    out.varint(len(stream))
    out.raw(stream)


def decode_indices(reader: Reader, size: int, rows: int, k: int) -> torch.Tensor:
    counts = np.array([reader.varint(rows) for _ in range(k)], dtype=np.int64)
    if int(counts.sum()) != rows:
        raise FormatError("corrupt label section: index counts do not add up to the images")
    stream = reader.take(reader.varint(size))
    if reader.remaining:
        raise FormatError("corrupt label section: unexpected bytes at its end")
    model = index_model(counts)
    if model is None:
        if stream:
            raise FormatError("corrupt label section: an index stream where none is needed")
        return torch.from_numpy(np.full(rows, int(np.argmax(counts)), dtype=np.int64))
    coder = entropy.Decoder(stream, "label section")
    indices = coder.decode(model, rows).astype(np.int64)
    coder.finish()
    if not np.array_equal(np.bincount(indices, minlength=k), counts):
        raise FormatError("corrupt label section: the indices disagree with their counts")
    return torch.from_numpy(indices)
