"""The label codecs are one registry: a rung is one module plus one registration. This module
adds a rung of its own (the argmax class, stored as one index per image) and a set encodes,
decodes and checks with it, with no other file touched."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from ddcodec import api
from ddcodec.bitstream.label_coding import decode_labels, encode_labels
from ddcodec.coding.bytesio import FormatError
from ddcodec.errors import DDCodecError
from ddcodec.labels import rungs
from ddcodec.labels.rungs import RUNGS, RungSpec, register_rung, rung, rung_names
from ddcodec.labels.rungs.base import LabelRung, check_memory
from ddcodec.labels.soft import SoftLabels
from ddcodec.sets.setfile import DistilledSet, load_set, save_set
from ddcodec.data.datasets import Normalization

WIRE_ID = 0x3E


def one_hot(indices: torch.Tensor, classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(indices, classes).float()


@dataclass(frozen=True)
class Top:
    classes: torch.Tensor  # int64 N

    def to_dict(self) -> dict:
        return {"classes": self.classes}


class Argmax(LabelRung):
    """Each image's most probable class as a one-hot row: one byte per image."""

    name = "argmax"
    payload_type = Top

    def quantise(self, probabilities, k, *, step_log2=-4, seed=0, **meta):
        top = probabilities.argmax(1)
        return SoftLabels(one_hot(top, probabilities.shape[1]), codec=self.name,
                          payload=Top(top), **meta)

    def estimate(self, k, num_classes, rows_per_image):
        return 0.0, 8.0 * rows_per_image

    def payload_from_dict(self, raw):
        return Top(raw["classes"])

    def take(self, payload, rows):
        return Top(payload.classes[rows])

    def check(self, labels, rows, num_classes):
        top = labels.payload.classes if isinstance(labels.payload, Top) else None
        if not isinstance(top, torch.Tensor) or top.shape != (rows,):
            raise DDCodecError("argmax labels need one class per image")
        if not torch.equal(one_hot(top, num_classes), labels.probabilities):
            raise DDCodecError("argmax labels disagree with their classes")

    def encode(self, labels, out):
        out.raw(labels.payload.classes.numpy().astype(np.uint8).tobytes())

    def decode(self, reader, size, rows, num_classes, meta, memory_left):
        self.check_limits(rows, num_classes)
        check_memory(memory_left, rows, num_classes)
        top = torch.from_numpy(np.frombuffer(reader.take(rows), np.uint8).astype(np.int64))
        if reader.remaining or int(top.max()) >= num_classes:
            raise FormatError("corrupt label section: bad argmax labels")
        return SoftLabels(one_hot(top, num_classes), codec=self.name, payload=Top(top), **meta)


RUNG = Argmax()


@pytest.fixture
def argmax_rung(monkeypatch):
    monkeypatch.setitem(RUNGS, "argmax", RungSpec("argmax", WIRE_ID, None, __name__,
                                                  "the argmax class, one byte per image"))
    yield RUNG


def _set(probabilities: torch.Tensor) -> DistilledSet:
    n, classes = probabilities.shape
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, 8, 8, generator=generator)
    labels = torch.arange(n) // (n // classes)  # class-ordered, as a file stores them
    return DistilledSet(images, labels, [str(c) for c in range(classes)],
                        Normalization((0.5,) * 3, (0.25,) * 3))


def test_a_rung_registered_by_one_module_encodes_and_decodes(argmax_rung, tmp_path):
    assert "argmax" in rung_names() and rung("argmax") is argmax_rung
    generator = torch.Generator().manual_seed(1)
    probabilities = torch.softmax(torch.randn(12, 4, generator=generator), 1)
    soft = rung("argmax").quantise(probabilities, None, temperature=2.0, loss="kl")
    data, bits = encode_labels(soft)
    assert data[0] == WIRE_ID and bits == 8 * len(data)
    back = decode_labels(data, 12, 4)
    assert back.codec == "argmax" and torch.equal(back.payload.classes, probabilities.argmax(1))
    assert torch.equal(back.probabilities, soft.probabilities) and back.loss == "kl"

    distilled = _set(probabilities)
    distilled.soft_labels = soft
    save_set(distilled, tmp_path / "set.pt")
    loaded = load_set(tmp_path / "set.pt")  # the set file keeps the payload, checked
    assert torch.equal(loaded.soft_labels.payload.classes, soft.payload.classes)
    raw, _ = api.encode(loaded)
    assert api.test(raw)
    decoded = api.decode(raw)
    assert torch.equal(decoded.soft_labels.payload.classes, soft.payload.classes)
    assert torch.equal(decoded.to_set().images, api.decode(api.encode(_set(probabilities))[0])
                       .to_set().images)


def test_registration_refuses_a_taken_name_or_wire_id():
    with pytest.raises(ValueError, match="registered twice"):
        register_rung(RungSpec("vq", 0x70, 1, __name__, ""))
    with pytest.raises(ValueError, match="wire id"):
        register_rung(RungSpec("another", rungs.spec_of("vq").wire_id, 1, __name__, ""))
    with pytest.raises(ValueError, match="wire id"):
        register_rung(RungSpec("another", 0x40, 1, __name__, ""))  # the hard-weight flag


def test_the_built_in_rungs_keep_their_wire_ids():
    """The codec byte is written into every labelled file: it never changes."""
    assert {name: rungs.spec_of(name).wire_id for name in rung_names()} == {
        "float16": 0, "vq": 1, "topk": 2, "vqae": 3}


def test_the_command_line_lists_the_registry():
    from ddcodec.cli.commands import cli
    from ddcodec.distillation.config import LABEL_KINDS

    codec = next(p for p in cli.commands["label"].params if p.name == "codec")
    assert tuple(codec.type.choices) == rung_names()
    assert LABEL_KINDS == ("hard", *rung_names())


@pytest.mark.parametrize("name", ["vq", "topk", "vqae"])
def test_the_values_checksum_covers_each_rungs_integers(name):
    """Format version 3's values checksum covers a rung's stored integers: change one and the
    digest changes (float16 is covered through its rows)."""
    from dataclasses import replace

    generator = torch.Generator().manual_seed(2)
    probabilities = torch.softmax(2 * torch.randn(24, 6, generator=generator), 1)
    labels = rung(name).quantise(probabilities, 4, temperature=1.0)
    parts = rung(name).digest_parts(labels, 3)
    assert parts
    payload = labels.payload
    field = {"vq": "codebook", "topk": "values", "vqae": "codebook"}[name]
    changed = getattr(payload, field).clone()
    changed.view(-1)[0] += 1
    other = replace(labels, payload=replace(payload, **{field: changed}))
    assert rung(name).digest_parts(other, 3) != parts
    assert rung(name).info(labels)  # `info` reports the rung's sizes
