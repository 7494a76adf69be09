"""The VQ rung: vector quantisation of the teacher's distributions.

They are clustered by k-means under the KL divergence (the loss they train with: a sample goes to
the centroid q of least cross-entropy -sum p log q, a centroid is the mean of its samples, which
minimises their summed KL); each centroid is stored as its log-probabilities, integers q with one
power-of-two step (log-probability = q x 2^step, floored at LOG_FLOOR), each sample as the index
of its centroid. The decoded distribution is softmax(q x 2^step): the integers are exact, the
softmax is float arithmetic (float64, then float32).

Section part: the step exponent (svarint), k (varint), the codebook's byte length (varint) and
the codebook (k x K integers, one group of the weights coder: zero-mean Laplace, range-coded),
then k index counts (varints) and the indices, range-coded under the categorical model of those
counts (a one-entry model codes nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from ddcodec.coding.bytesio import Reader, Writer
from ddcodec.coding.weight_coding import decode_weights, encode_weights
from ddcodec.errors import DDCodecError
from ddcodec.labels.rungs.base import (LabelRung, check_memory, decode_indices,
                                       encode_indices)
from ddcodec.labels.soft import LOG_FLOOR, SoftLabels
from ddcodec.limits import LABELS, within

KMEANS_ITERATIONS = 30
VQ_ENTRY_BITS = 6.0  # a codebook entry's quantised log-probability, range-coded (measured 4-7)


@dataclass(frozen=True)
class VQLabels:
    step_log2: int
    codebook: torch.Tensor  # int32 k x K: quantised log-probabilities
    indices: torch.Tensor  # int64 N

    def probabilities(self) -> torch.Tensor:
        return decode_vq(self.codebook, self.step_log2)[self.indices]

    def to_dict(self) -> dict:
        return {"step_log2": self.step_log2, "codebook": self.codebook.contiguous(),
                "indices": self.indices.contiguous()}


def decode_vq(codebook: torch.Tensor, step_log2: int) -> torch.Tensor:
    """Distributions of quantised log-probabilities: softmax(q x 2^step), float64 -> float32."""
    return torch.softmax(codebook.to(torch.float64) * 2.0 ** step_log2, dim=1).float()


def as_vq(probabilities: torch.Tensor, k: int, step_log2: int = -4, seed: int = 0,
          **meta) -> SoftLabels:
    """The VQ rung: KL k-means (k-means++ start from `seed`), the centroids' log-probabilities
    quantised to step 2^step_log2, each sample replaced by the decoded centroid nearest it."""
    if k < 1:
        raise DDCodecError("the VQ codebook needs at least one entry (--k >= 1)")
    p = probabilities.double()
    centroids = _kl_kmeans(p, min(k, len(p)), seed)
    step = 2.0 ** step_log2
    logq = centroids.clamp_min(math.exp(LOG_FLOOR)).log()
    codebook = torch.round(logq / step).clamp(LOG_FLOOR / step, 0).to(torch.int32)
    codebook = torch.unique(codebook, dim=0)  # equal rows after rounding: keep one
    indices = kl_nearest(p, torch.log_softmax(codebook.double() * step, dim=1))
    vq = VQLabels(step_log2, codebook, indices)
    return SoftLabels(vq.probabilities(), codec="vq", payload=vq, **meta)


def kl_nearest(p: torch.Tensor, log_centres: torch.Tensor) -> torch.Tensor:
    """Each row's centre of least cross-entropy -sum p log q (least KL(p || q))."""
    return (-(p @ log_centres.T)).argmin(1)


def _kl_kmeans(p: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """k-means under KL(p || q) on distributions (Bregman k-means: the centre of a cluster is
    its mean), k-means++ start, deterministic for a seed."""
    generator = torch.Generator().manual_seed(seed)
    floor = math.exp(LOG_FLOOR)
    entropy = (p * p.clamp_min(floor).log()).sum(1)

    def divergence(centres: torch.Tensor) -> torch.Tensor:  # rows x centres: KL(p || q)
        return entropy[:, None] - p @ centres.clamp_min(floor).log().T

    picks = [int(torch.randint(len(p), (1,), generator=generator))]
    nearest = divergence(p[picks]).min(1).values  # to the closest centre so far (exact: a min)
    while len(picks) < k:
        d = nearest.clamp_min(0)
        if float(d.sum()) <= 0:
            break
        picks.append(int(torch.multinomial(d / d.sum(), 1, generator=generator)))
        nearest = torch.minimum(nearest, divergence(p[picks[-1:]])[:, 0])
    centres = p[picks]
    for _ in range(KMEANS_ITERATIONS):
        assign = divergence(centres).argmin(1)
        moved = torch.stack([p[assign == j].mean(0) if (assign == j).any() else centres[j]
                             for j in range(len(centres))])
        if torch.equal(moved, centres):
            break
        centres = moved
    return centres


class VQ(LabelRung):
    name = "vq"
    sized_by_budget = True
    payload_type = VQLabels

    def quantise(self, probabilities, k, *, step_log2=-4, seed=0, **meta):
        return as_vq(probabilities, k or self.default_k, step_log2, **meta)

    def estimate(self, k, num_classes, rows_per_image):
        k = k or self.default_k
        return k * VQ_ENTRY_BITS, rows_per_image * math.log2(k) if k > 1 else 0.0

    def size(self, labels):
        return int(labels.payload.codebook.shape[0])

    def describe(self, labels):
        return f"vq k={labels.payload.codebook.shape[0]}"

    def payload_from_dict(self, raw):
        return VQLabels(int(raw["step_log2"]), raw["codebook"], raw["indices"])

    def take(self, payload, rows):
        return replace(payload, indices=payload.indices[rows])

    def check(self, labels, rows, num_classes):
        vq = labels.payload
        if (not isinstance(vq, VQLabels) or vq.codebook.ndim != 2
                or vq.codebook.shape[1] != num_classes or vq.indices.shape != (rows,)
                or vq.codebook.is_floating_point() or vq.indices.is_floating_point()):
            raise DDCodecError("VQ soft labels need an integer k x classes codebook and one "
                               "integer index per image")
        if len(vq.indices) and (int(vq.indices.min()) < 0
                                or int(vq.indices.max()) >= vq.codebook.shape[0]):
            raise DDCodecError("VQ soft-label indices fall outside the codebook")
        # the softmax is float arithmetic: equal on one machine, within rounding on another
        if not torch.allclose(vq.probabilities(), labels.probabilities, rtol=0, atol=1e-6):
            raise DDCodecError("VQ soft labels disagree with their codebook and indices")

    def params(self, labels):
        return {"step": labels.payload.step_log2, "k": int(labels.payload.codebook.shape[0])}

    def check_params(self, rows, classes, *, step=None, k=None, **_):
        within("vq step exponent", step, -LABELS.step, LABELS.step)
        within("vq codebook size", k, 1, LABELS.codebook)

    def integers(self, labels):
        return [("VQ codebook integers", labels.payload.codebook)]

    def digest_parts(self, labels, version):
        vq = labels.payload
        return [vq.codebook.numpy().astype("<i4").tobytes(),
                vq.indices.numpy().astype("<i8").tobytes()]

    def info(self, labels):
        return {"codebook": int(labels.payload.codebook.shape[0])}

    def encode(self, labels: SoftLabels, out: Writer) -> None:
        vq = labels.payload
        k, classes = vq.codebook.shape
        out.svarint(vq.step_log2)
        out.varint(k)
        book, _ = encode_weights([vq.codebook.numpy().ravel()])
        out.varint(len(book))
        out.raw(book)
        encode_indices(out, vq.indices, k)

    def decode(self, reader: Reader, size: int, rows: int, num_classes: int, meta: dict,
               memory_left: int | None) -> SoftLabels:
        step = reader.svarint(1 << 31)
        k = reader.varint(1 << 32)
        self.check_limits(rows, num_classes, step=step, k=k)
        check_memory(memory_left, rows, num_classes, k * num_classes)
        book, _ = decode_weights(reader.take(reader.varint(size)), [k * num_classes])
        codebook = torch.from_numpy(book[0].astype(np.int32).reshape(k, num_classes))
        vq = VQLabels(step, codebook, decode_indices(reader, size, rows, k))
        return SoftLabels(vq.probabilities(), codec="vq", payload=vq, **meta)


RUNG = VQ()
