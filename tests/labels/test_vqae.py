"""The VQ-autoencoder rung: exact integers in the file, decoded distributions identical on
this machine, every bit counted, bad payloads refused, and a codebook that stays small when the
classes are many."""

from dataclasses import replace

import pytest
import torch

from ddcodec.bitstream.codec import decode_bytes, encode_set
from ddcodec.bitstream.label_coding import decode_labels, encode_labels
from ddcodec.errors import DDCodecError
from ddcodec.distillation.labelling import label_bits
from ddcodec.labels.rungs.vq import as_vq
from ddcodec.labels.soft import check_soft_labels
from ddcodec.sets.setfile import DistilledSet, load_set, save_set
from ddcodec.data.datasets import Normalization
from ddcodec.labels.vqae import as_vqae


def structured(rows: int, classes: int, prototypes: int, seed: int = 0) -> torch.Tensor:
    """Teacher-like distributions: a few modes with noise."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(prototypes, classes, generator=g) * 3
    pick = torch.randint(prototypes, (rows,), generator=g)
    return torch.softmax(centres[pick] + torch.randn(rows, classes, generator=g), 1)


def kl(p: torch.Tensor, q: torch.Tensor) -> float:
    return float((p * (p.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum(1).mean())


@pytest.fixture(scope="module")
def many():
    p = structured(600, 100, 30)
    return p, as_vqae(p, 64, temperature=1.0)


def test_vqae_round_trips_exactly_and_is_counted(many):
    p, soft = many
    data, _ = encode_labels(soft)
    back = decode_labels(data, 600, 100)
    assert back.codec == "vqae"
    assert torch.equal(back.payload.codebook, soft.payload.codebook)
    assert all(torch.equal(a, b) for a, b in zip(back.payload.weights, soft.payload.weights))
    assert torch.equal(back.payload.indices, soft.payload.indices)
    assert torch.equal(back.probabilities, soft.probabilities)  # same machine: bit-exact
    assert label_bits(soft) == 8 * len(data)
    k, code, hidden = soft.payload.shapes
    assert k <= 64 and code == 16 and hidden == 64
    # the labels are close to the teacher's (far closer than one distribution for all)
    assert kl(p, soft.probabilities) < 0.5 * kl(p, p.mean(0, keepdim=True).expand_as(p))
    assert as_vqae(p, 64, temperature=1.0).payload.indices.equal(soft.payload.indices)  # seeded


def test_a_set_carries_vqae_labels_through_file_and_ddz(many, tmp_path):
    p, soft = many
    images = torch.zeros(600, 3, 4, 4)
    labels = torch.arange(100).repeat_interleave(6)
    distilled = DistilledSet(images, labels, [str(c) for c in range(100)],
                             Normalization((0.5,) * 3, (0.5,) * 3), soft_labels=soft)
    save_set(distilled, tmp_path / "s.pt")
    assert torch.equal(load_set(tmp_path / "s.pt").soft_labels.payload.codebook,
                       soft.payload.codebook)
    data, bits = encode_set(distilled)
    assert bits["labels"] == label_bits(soft)
    assert torch.equal(decode_bytes(data).soft_labels.probabilities, soft.probabilities)


def test_the_autoencoders_codebook_stays_small_with_many_classes(many):
    p, soft = many
    plain = as_vq(p, 64, temperature=1.0)
    # plain VQ pays k x classes integers; the autoencoder k x 16 and one decoder
    assert plain.payload.codebook.numel() > 4 * soft.payload.codebook.numel()
    assert kl(p, soft.probabilities) < 2 * kl(p, plain.probabilities) + 0.05


@pytest.mark.parametrize("damage, message", [
    (lambda a: replace(a, indices=a.indices + 1000), "outside the codebook"),
    (lambda a: replace(a, weights=a.weights[:3]), "decoder"),
    (lambda a: replace(a, codebook=a.codebook.float()), "integer"),
    (lambda a: replace(a, weights=(a.weights[0] + 3, *a.weights[1:])), "disagree"),
])
def test_bad_vqae_labels_are_refused(many, damage, message):
    _, soft = many
    with pytest.raises(DDCodecError, match=message):
        check_soft_labels(replace(soft, payload=damage(soft.payload)), 600, 100)
