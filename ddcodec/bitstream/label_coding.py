"""Soft labels in and out of a `.ddz` (the `labels` section, tag 7).

Layout: codec (u8: 0 float16, 1 vq), loss (u8: 0 ce, 1 kl), temperature (f32), then
- float16: the N x K probabilities as little-endian float16, row by row (the papers' count);
- vq: the step exponent (svarint), k (varint), the codebook's byte length (varint) and the
  codebook (k x K integers, one group of the weights coder: zero-mean Laplace, range-coded),
  then k index counts (varints) and the indices, range-coded under the categorical model of
  those counts (a one-entry model codes nothing).
Every number is exact; only turning VQ integers into probabilities (softmax) is float
arithmetic (ddcodec.labels.decode_vq).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ddcodec.bitstream import entropy
from ddcodec.bitstream.bytesio import FormatError, Reader, Writer
from ddcodec.bitstream.weight_coding import decode_weights, encode_weights
from ddcodec.labels import LABEL_CODECS, SoftLabels, VQLabels

LOSSES = ("ce", "kl")
MAX_CODEBOOK = 1 << 16
MAX_STEP = 16


def encode_labels(labels: SoftLabels) -> tuple[bytes, float]:
    out = Writer()
    out.u8(LABEL_CODECS.index(labels.codec))
    out.u8(LOSSES.index(labels.loss))
    out.f32(labels.temperature)
    if labels.codec == "float16":
        out.raw(labels.probabilities.numpy().astype("<f2").tobytes())
        data = out.getvalue()
        return data, 8.0 * len(data)
    vq = labels.vq
    k, classes = vq.codebook.shape
    out.svarint(vq.step_log2)
    out.varint(k)
    book, _ = encode_weights([vq.codebook.numpy().ravel()])
    out.varint(len(book))
    out.raw(book)
    counts = np.bincount(vq.indices.numpy(), minlength=k)
    for count in counts:
        out.varint(int(count))
    coder = entropy.Encoder("label indices")
    model = _index_model(counts)
    if model is not None:
        coder.encode(vq.indices.numpy().astype(np.int32), model)
    stream = coder.to_bytes() if model is not None else b""
    out.varint(len(stream))
    out.raw(stream)
    data = out.getvalue()
    return data, 8.0 * len(data)


def decode_labels(data: bytes, num_images: int, num_classes: int) -> SoftLabels:
    reader = Reader(data, "label section")
    codec, loss = reader.u8(), reader.u8()
    if codec >= len(LABEL_CODECS) or loss >= len(LOSSES):
        raise FormatError("corrupt label section: unknown codec or loss")
    temperature = reader.f32()
    if not (math.isfinite(temperature) and temperature > 0):
        raise FormatError("corrupt label section: bad temperature")
    meta = {"temperature": float(temperature), "loss": LOSSES[loss]}
    if LABEL_CODECS[codec] == "float16":
        raw = reader.take(2 * num_images * num_classes)
        if reader.remaining:
            raise FormatError("corrupt label section: unexpected bytes at its end")
        values = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        probs = torch.from_numpy(values.reshape(num_images, num_classes).copy())
        if not torch.isfinite(probs).all() or (probs < 0).any():
            raise FormatError("corrupt label section: a probability is negative or not finite")
        return SoftLabels(probs, codec="float16", **meta)
    step = reader.svarint(MAX_STEP)
    k = reader.varint(MAX_CODEBOOK)
    if k < 1:
        raise FormatError("corrupt label section: an empty codebook")
    book, _ = decode_weights(reader.take(reader.varint(len(data))), [k * num_classes])
    codebook = torch.from_numpy(book[0].astype(np.int32).reshape(k, num_classes))
    counts = np.array([reader.varint(num_images) for _ in range(k)], dtype=np.int64)
    if int(counts.sum()) != num_images:
        raise FormatError("corrupt label section: index counts do not add up to the images")
    stream = reader.take(reader.varint(len(data)))
    if reader.remaining:
        raise FormatError("corrupt label section: unexpected bytes at its end")
    model = _index_model(counts)
    if model is None:
        if stream:
            raise FormatError("corrupt label section: an index stream where none is needed")
        indices = np.full(num_images, int(np.argmax(counts)), dtype=np.int64)
    else:
        coder = entropy.Decoder(stream, "label section")
        indices = coder.decode(model, num_images).astype(np.int64)
        coder.finish()
        if not np.array_equal(np.bincount(indices, minlength=k), counts):
            raise FormatError("corrupt label section: the indices disagree with their counts")
    vq = VQLabels(step, codebook, torch.from_numpy(indices))
    return SoftLabels(vq.probabilities(), codec="vq", vq=vq, **meta)


def _index_model(counts: np.ndarray):
    """The categorical model of the index counts; None when one index takes every image."""
    if int((counts > 0).sum()) <= 1:
        return None
    return entropy.categorical(counts.astype(np.float64) / counts.sum())
