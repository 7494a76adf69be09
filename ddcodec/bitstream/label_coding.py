"""Soft labels in and out of a `.ddz` (the `labels` section, tag 7).

Layout: codec (u8: 0 float16, 1 vq, 2 topk, 3 vqae; bit 0x80: per epoch, see FORMAT.md), loss
(u8: 0 ce, 1 kl), temperature (f32), then
- float16: the N x K probabilities as little-endian float16, row by row (the papers' count);
- vq: the step exponent (svarint), k (varint), the codebook's byte length (varint) and the
  codebook (k x K integers, one group of the weights coder: zero-mean Laplace, range-coded),
  then k index counts (varints) and the indices, range-coded under the categorical model of
  those counts (a one-entry model codes nothing);
- topk: k (u8) and bits (u8); the K class counts (varints) and the distinct values with their
  counts (varint n, then value and count varints); then one range-coded stream (varint byte
  length, words) of the N x k kept classes, row by row, under the categorical of the class
  counts, followed by their N x k values under the categorical of the value counts;
- vqae: the code and weight step exponents (svarints), k, d_c, d_h (varints), one weights block
  (byte length, then the codebook k x d_c and the decoder's four tensors as weight groups),
  then the indices as vq's.
Every number is exact; only turning VQ integers into probabilities (softmax) and running the
VQ autoencoder's decoder are float arithmetic (ddcodec.labels.soft).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ddcodec.bitstream import entropy
from ddcodec import limits
from ddcodec.bitstream.bytesio import FormatError, Reader, Writer
from ddcodec.limits import LABELS
from ddcodec.bitstream.weight_coding import decode_weights, encode_weights
from ddcodec.errors import LimitError
from ddcodec.labels.soft import LABEL_CODECS, SoftLabels, TopKLabels, VQAELabels, VQLabels
from ddcodec.names import LABEL_LOSSES as LOSSES

PER_EPOCH = 0x80  # flag on the codec byte: the epochs, view seed and strategy follow
# Decoding holds at most this many bytes per decoded value (rows x classes, and the codebooks'
# and decoders' integers): float32 probabilities, their float64 work copies, indices.
LABEL_BYTES_PER_VALUE = 32


def check_encodable(labels: SoftLabels) -> None:
    """Refuse (LimitError) labels the labels section cannot hold, before anything is written:
    the decoder checks the very same limits (ddcodec.limits)."""
    rows, classes = labels.probabilities.shape
    limits.finite_f32("soft-label temperature", labels.temperature, positive=True)
    if labels.per_epoch:
        limits.label_views(labels.epochs, labels.view_seed, labels.view_strategy.encode("ascii"))
    params = _params(labels)
    limits.label_params(labels.codec, rows, classes, **params)
    for name, ints in _integers(labels):
        limits.integer_range(name, ints.numpy(), LABELS.integer)


def _params(labels: SoftLabels) -> dict:
    """The rung's parameters, as `limits.label_params` takes them."""
    if labels.codec == "vq":
        return {"step": labels.vq.step_log2, "k": int(labels.vq.codebook.shape[0])}
    if labels.codec == "vqae":
        a = labels.vqae
        k, code, hidden = a.shapes
        return {"step": a.code_step_log2, "weight_step": a.weight_step_log2, "k": k,
                "code": code, "hidden": hidden}
    if labels.codec == "topk":
        return {"k": int(labels.topk.classes.shape[1]), "bits": labels.topk.bits}
    return {}


def _integers(labels: SoftLabels) -> list:
    if labels.codec == "vq":
        return [("VQ codebook integers", labels.vq.codebook)]
    if labels.codec == "vqae":
        return [("VQ-autoencoder integers", t) for t in (labels.vqae.codebook,
                                                         *labels.vqae.weights)]
    return []


def label_memory(rows: int, classes: int, table_values: int = 0) -> int:
    """Bytes decoding labels holds: every decoded value and every stored table integer."""
    return LABEL_BYTES_PER_VALUE * (rows * classes + table_values)


def params_bytes(labels: SoftLabels) -> bytes:
    """Every parameter of the labels that changes what training sees, canonically: the values
    checksum of format version 3 covers them (the decoded values alone would miss, say, the
    loss or the views' seed)."""
    out = Writer()
    out.u8(LABEL_CODECS.index(labels.codec) | (PER_EPOCH if labels.per_epoch else 0))
    out.u8(LOSSES.index(labels.loss))
    out.f32(labels.temperature)
    if labels.per_epoch:
        out.varint(labels.epochs)
        out.varint(labels.view_seed)
        out.text(labels.view_strategy)
    for key, value in sorted(_params(labels).items()):
        out.text(key)
        out.svarint(int(value))
    return out.getvalue()


def encode_labels(labels: SoftLabels) -> tuple[bytes, float]:
    check_encodable(labels)
    out = Writer()
    out.u8(LABEL_CODECS.index(labels.codec) | (PER_EPOCH if labels.per_epoch else 0))
    out.u8(LOSSES.index(labels.loss))
    out.f32(labels.temperature)
    if labels.per_epoch:
        strategy = labels.view_strategy.encode("ascii")
        out.varint(labels.epochs)
        out.varint(labels.view_seed)
        out.varint(len(strategy))
        out.raw(strategy)
    if labels.codec == "float16":
        out.raw(labels.probabilities.numpy().astype("<f2").tobytes())
        data = out.getvalue()
        return data, 8.0 * len(data)
    if labels.codec == "topk":
        return _encode_topk(labels, out)
    if labels.codec == "vqae":
        return _encode_vqae(labels, out)
    vq = labels.vq
    k, classes = vq.codebook.shape
    out.svarint(vq.step_log2)
    out.varint(k)
    book, _ = encode_weights([vq.codebook.numpy().ravel()])
    out.varint(len(book))
    out.raw(book)
    _encode_indices(out, vq.indices, k)
    data = out.getvalue()
    return data, 8.0 * len(data)


def _encode_indices(out: Writer, indices: torch.Tensor, k: int) -> None:
    """k index counts (varints), then the indices range-coded under their categorical (nothing
    when one index takes every row)."""
    counts = np.bincount(indices.numpy(), minlength=k)
    for count in counts:
        out.varint(int(count))
    coder = entropy.Encoder("label indices")
    model = _index_model(counts)
    if model is not None:
        coder.encode(indices.numpy().astype(np.int32), model)
    stream = coder.to_bytes() if model is not None else b""
    out.varint(len(stream))
    out.raw(stream)


def _decode_indices(reader: Reader, size: int, rows: int, k: int) -> torch.Tensor:
    counts = np.array([reader.varint(rows) for _ in range(k)], dtype=np.int64)
    if int(counts.sum()) != rows:
        raise FormatError("corrupt label section: index counts do not add up to the images")
    stream = reader.take(reader.varint(size))
    if reader.remaining:
        raise FormatError("corrupt label section: unexpected bytes at its end")
    model = _index_model(counts)
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


def _encode_vqae(labels: SoftLabels, out: Writer) -> tuple[bytes, float]:
    """code and weight steps (svarints), k, d_c, d_h (varints), the codebook and the decoder's
    four tensors as one weights block (byte length, then the weights coder's groups), then the
    indices as VQ's."""
    a = labels.vqae
    k, code, hidden = a.shapes
    out.svarint(a.code_step_log2)
    out.svarint(a.weight_step_log2)
    for value in (k, code, hidden):
        out.varint(value)
    block, _ = encode_weights([t.numpy().ravel() for t in (a.codebook, *a.weights)])
    out.varint(len(block))
    out.raw(block)
    _encode_indices(out, a.indices, k)
    data = out.getvalue()
    return data, 8.0 * len(data)


def _decode_vqae(reader: Reader, size: int, rows: int, num_classes: int,
                 meta: dict, memory_left: int | None) -> SoftLabels:
    code_step, weight_step = reader.svarint(1 << 31), reader.svarint(1 << 31)
    k, code, hidden = reader.varint(1 << 32), reader.varint(1 << 32), reader.varint(1 << 32)
    limits.label_params("vqae", rows, num_classes, step=code_step, weight_step=weight_step,
                        k=k, code=code, hidden=hidden)
    shapes = [(k, code), (hidden, code), (hidden,), (num_classes, hidden), (num_classes,)]
    _check_memory(memory_left, rows, num_classes, sum(math.prod(s) for s in shapes))
    block, _ = decode_weights(reader.take(reader.varint(size)),
                              [math.prod(s) for s in shapes])
    book, *weights = (torch.from_numpy(q.astype(np.int32).reshape(s))
                      for q, s in zip(block, shapes))
    vqae = VQAELabels(code_step, weight_step, book, tuple(weights),
                      _decode_indices(reader, size, rows, k))
    return SoftLabels(vqae.probabilities(), codec="vqae", vqae=vqae, **meta)


def _check_memory(memory_left: int | None, rows: int, classes: int, table: int = 0) -> None:
    """Refuse labels that would take more memory than the file's size allows (the bound of
    docs/FORMAT.md), before anything is allocated."""
    if memory_left is not None and label_memory(rows, classes, table) > memory_left:
        raise LimitError(f"{rows:,} rows x {classes:,} classes (and {table:,} stored integers) "
                         "are implausible for this file's size")


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
    codec = flags & ~PER_EPOCH
    if codec >= len(LABEL_CODECS) or loss >= len(LOSSES):
        raise FormatError("corrupt label section: unknown codec or loss")
    temperature = reader.f32()
    if not (math.isfinite(temperature) and temperature > 0):
        raise FormatError("corrupt label section: bad temperature")
    meta = {"temperature": float(temperature), "loss": LOSSES[loss]}
    rows = num_images
    if flags & PER_EPOCH:
        meta.update(_decode_views(reader))
        rows *= meta["epochs"]  # from here on: the rows
    name = LABEL_CODECS[codec]
    if name == "float16":
        limits.label_params(name, rows, num_classes)
        _check_memory(memory_left, rows, num_classes)
        raw = reader.take(2 * rows * num_classes)
        if reader.remaining:
            raise FormatError("corrupt label section: unexpected bytes at its end")
        values = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        probs = torch.from_numpy(values.reshape(rows, num_classes).copy())
        if not torch.isfinite(probs).all() or (probs < 0).any():
            raise FormatError("corrupt label section: a probability is negative or not finite")
        return SoftLabels(probs, codec="float16", **meta)
    if name == "topk":
        return _decode_topk(reader, len(data), rows, num_classes, meta, memory_left)
    if name == "vqae":
        return _decode_vqae(reader, len(data), rows, num_classes, meta, memory_left)
    step = reader.svarint(1 << 31)
    k = reader.varint(1 << 32)
    limits.label_params(name, rows, num_classes, step=step, k=k)
    _check_memory(memory_left, rows, num_classes, k * num_classes)
    book, _ = decode_weights(reader.take(reader.varint(len(data))), [k * num_classes])
    codebook = torch.from_numpy(book[0].astype(np.int32).reshape(k, num_classes))
    vq = VQLabels(step, codebook, _decode_indices(reader, len(data), rows, k))
    return SoftLabels(vq.probabilities(), codec="vq", vq=vq, **meta)


def _decode_views(reader: Reader) -> dict:
    """The per-epoch fields: epochs, the views' seed and their DSA strategy."""
    from ddcodec.data.augment import DSAParams

    epochs = reader.varint(1 << 32)
    seed = reader.varint(1 << 64)
    strategy = reader.take(reader.varint(1 << 32))
    limits.label_views(epochs, seed, strategy)
    try:
        text = strategy.decode("ascii")
        DSAParams(strategy=text).groups()
    except (UnicodeDecodeError, ValueError):
        raise FormatError("corrupt label section: an unknown view strategy") from None
    return {"epochs": epochs, "view_seed": seed, "view_strategy": text}


def _encode_topk(labels: SoftLabels, out: Writer) -> tuple[bytes, float]:
    t = labels.topk
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
        model = _index_model(counts)
        if model is not None:
            coder.encode(symbols.astype(np.int32), model)
            used = True
    stream = coder.to_bytes() if used else b""
    out.varint(len(stream))
    out.raw(stream)
    data = out.getvalue()
    return data, 8.0 * len(data)


def _decode_topk(reader: Reader, size: int, num_images: int, num_classes: int,
                 meta: dict, memory_left: int | None) -> SoftLabels:
    k, bits = reader.u8(), reader.u8()
    limits.label_params("topk", num_images, num_classes, k=k, bits=bits)
    _check_memory(memory_left, num_images, num_classes, num_images * k)
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
        model = _index_model(counts)
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
    return SoftLabels(topk.probabilities(num_classes), codec="topk", topk=topk, **meta)


def _index_model(counts: np.ndarray):
    """The categorical model of the index counts; None when one index takes every image."""
    if int((counts > 0).sum()) <= 1:
        return None
    return entropy.categorical(counts.astype(np.float64) / counts.sum())
