"""The VQAE rung: a VQ autoencoder (ddcodec.labels.vqae), for many classes: k codebook entries
in a small code space (integers, step 2^code_step) and one decoder MLP (code -> hidden -> K
logits, its weights integers with step 2^weight_step), each sample the index of an entry. The
decoded distributions are softmax(decoder(entry)), float arithmetic (float64, then float32) on
exact integers.

Section part: the code and weight step exponents (svarints), k, d_c, d_h (varints), one weights
block (byte length, then the codebook k x d_c and the decoder's four tensors as weight groups),
then the indices as vq's.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from ddcodec.coding.bytesio import Reader, Writer
from ddcodec.coding.weight_coding import decode_weights, encode_weights
from ddcodec.errors import DDCodecError
from ddcodec.labels.rungs.base import (LabelRung, check_memory, decode_indices,
                                       encode_indices)
from ddcodec.labels.rungs.vq import VQ_ENTRY_BITS
from ddcodec.labels.soft import SoftLabels
from ddcodec.labels.vqae import CODE_DIM, HIDDEN, VQAELabels, as_vqae
from ddcodec.limits import LABELS, within


class VQAE(LabelRung):
    name = "vqae"
    payload_type = VQAELabels

    def quantise(self, probabilities, k, *, step_log2=-4, seed=0, **meta):
        return as_vqae(probabilities, k or self.default_k, seed, **meta)

    def estimate(self, k, num_classes, rows_per_image):
        k = k or self.default_k
        weights = HIDDEN * (CODE_DIM + 1) + num_classes * (HIDDEN + 1) + k * CODE_DIM
        return (weights * VQ_ENTRY_BITS / num_classes,
                rows_per_image * math.log2(k) if k > 1 else 0.0)

    def size(self, labels):
        return labels.payload.shapes[0]

    def describe(self, labels):
        k, code, hidden = labels.payload.shapes
        return f"vqae k={k} d_c={code} d_h={hidden}"

    def payload_from_dict(self, raw):
        return VQAELabels(int(raw["code_step_log2"]), int(raw["weight_step_log2"]),
                          raw["codebook"], tuple(raw["weights"]), raw["indices"])

    def take(self, payload, rows):
        return replace(payload, indices=payload.indices[rows])

    def check(self, labels, rows, num_classes):
        num_images = rows
        a = labels.payload
        ok = isinstance(a, VQAELabels) and a.codebook.ndim == 2 and len(a.weights) == 4 and all(
            isinstance(t, torch.Tensor) and not t.is_floating_point()
            for t in (a.codebook, *a.weights, a.indices))
        if ok:
            k, code, hidden = a.shapes
            ok = (tuple(a.weights[0].shape) == (hidden, code) and tuple(a.weights[1].shape) == (
                hidden,) and tuple(a.weights[2].shape) == (num_classes, hidden)
                  and tuple(a.weights[3].shape) == (num_classes,)
                  and a.indices.shape == (num_images,))
        if not ok:
            raise DDCodecError("VQ-autoencoder soft labels need an integer k x d_c codebook, a d_c "
                               "-> d_h -> classes decoder and one integer index per image")
        if len(a.indices) and (int(a.indices.min()) < 0
                               or int(a.indices.max()) >= a.codebook.shape[0]):
            raise DDCodecError("VQ-autoencoder soft-label indices fall outside the codebook")
        if not torch.allclose(a.probabilities(), labels.probabilities, rtol=0, atol=1e-6):
            raise DDCodecError("VQ-autoencoder soft labels disagree with their codebook, decoder "
                               "and indices")

    def params(self, labels):
        a = labels.payload
        k, code, hidden = a.shapes
        return {"step": a.code_step_log2, "weight_step": a.weight_step_log2, "k": k,
                "code": code, "hidden": hidden}

    def check_params(self, rows, classes, *, step=None, weight_step=None, k=None, code=None,
                     hidden=None, **_):
        within("vqae step exponent", step, -LABELS.step, LABELS.step)
        within("vqae codebook size", k, 1, min(LABELS.codebook, max(rows, 1)))  # k <= N
        within("vqae weight step exponent", weight_step, -LABELS.step, LABELS.step)
        within("vqae code width", code, 1, LABELS.code_dim)
        within("vqae hidden width", hidden, 1, LABELS.hidden)
        within("vqae decoder size d_h x (d_c + classes)", hidden * (code + classes), 1,
               LABELS.decoder)

    def integers(self, labels):
        a = labels.payload
        return [("VQ-autoencoder integers", t) for t in (a.codebook, *a.weights)]

    def digest_parts(self, labels, version):
        if version < 3:  # version 2 covered the decoded rows
            return None
        a = labels.payload
        return [*(t.numpy().astype("<i4").tobytes() for t in (a.codebook, *a.weights)),
                a.indices.numpy().astype("<i8").tobytes()]

    def info(self, labels):
        return dict(zip(("codebook", "code_dim", "hidden"), labels.payload.shapes))

    def encode(self, labels: SoftLabels, out: Writer) -> None:
        """code and weight steps (svarints), k, d_c, d_h (varints), the codebook and the decoder's
        four tensors as one weights block (byte length, then the weights coder's groups), then the
        indices as VQ's."""
        a = labels.payload
        k, code, hidden = a.shapes
        out.svarint(a.code_step_log2)
        out.svarint(a.weight_step_log2)
        for value in (k, code, hidden):
            out.varint(value)
        block, _ = encode_weights([t.numpy().ravel() for t in (a.codebook, *a.weights)])
        out.varint(len(block))
        out.raw(block)
        encode_indices(out, a.indices, k)

    def decode(self, reader: Reader, size: int, rows: int, num_classes: int, meta: dict,
               memory_left: int | None) -> SoftLabels:
        code_step, weight_step = reader.svarint(1 << 31), reader.svarint(1 << 31)
        k, code, hidden = reader.varint(1 << 32), reader.varint(1 << 32), reader.varint(1 << 32)
        self.check_limits(rows, num_classes, step=code_step, weight_step=weight_step, k=k,
                          code=code, hidden=hidden)
        shapes = [(k, code), (hidden, code), (hidden,), (num_classes, hidden), (num_classes,)]
        check_memory(memory_left, rows, num_classes, sum(math.prod(s) for s in shapes))
        block, _ = decode_weights(reader.take(reader.varint(size)),
                                  [math.prod(s) for s in shapes])
        book, *weights = (torch.from_numpy(q.astype(np.int32).reshape(s))
                          for q, s in zip(block, shapes))
        vqae = VQAELabels(code_step, weight_step, book, tuple(weights),
                          decode_indices(reader, size, rows, k))
        return SoftLabels(vqae.probabilities(), codec="vqae", payload=vqae, **meta)


RUNG = VQAE()
