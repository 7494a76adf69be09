"""Soft labels from a teacher: coded exactly (float16 and VQ), counted in bpc and info,
exported, trained on by measure, and refused when bad."""

import json
from dataclasses import replace

import pytest
import torch

import ddcodec
from ddcodec.bitstream.codec import decode_bytes, encode_set
from ddcodec.errors import DDCodecError
from ddcodec.labels.rungs.float16 import as_float16
from ddcodec.labels.rungs.vq import as_vq
from ddcodec.sets.setfile import load_set, save_set


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    """A teacher trained on a tiny real-looking set, and a random-real set it labels."""
    from conftest import write_npz

    root = tmp_path_factory.mktemp("soft")
    npz = write_npz(root / "tiny.npz", per_class=20)
    teacher = root / "teacher.pt"
    made = ddcodec.train_teacher(f"npz:{npz}", teacher, device="cpu", epochs=3, holdout=0.2)
    distilled = ddcodec.distill(f"npz:{npz}", root / "r.pt", loss="none", ipc=4)
    return npz, teacher, made, distilled, root


def test_the_teacher_picks_its_checkpoint_on_held_out_training_images(taught):
    _, teacher, made, _, _ = taught
    info = made.info
    assert len(info["holdout_accuracy"]) == 3 and info["held_out_images"] == 12
    assert info["chosen_holdout_accuracy"] == max(info["holdout_accuracy"])
    raw = torch.load(teacher, weights_only=True)  # plain tensors and numbers
    assert raw["format"] == "ddcodec-teacher" and raw["info"]["epoch"] == info["epoch"]


@pytest.mark.parametrize("codec", ["float16", "vq", "topk"])
def test_soft_labels_round_trip_exactly_and_are_counted(taught, codec):
    _, teacher, _, distilled, root = taught
    labelled = ddcodec.label(distilled, teacher, codec=codec, k=4 if codec == "vq" else 2,
                             temperature=2.0, loss="kl", device="cpu")
    soft = labelled.soft_labels
    assert soft.probabilities.shape == (12, 3)
    assert torch.allclose(soft.probabilities.sum(1), torch.ones(12), atol=1e-3)
    hard_bytes, _ = encode_set(distilled)
    data, bits = encode_set(labelled)
    decoded = decode_bytes(data)
    back = decoded.soft_labels
    assert back.codec == codec and back.loss == "kl" and back.temperature == 2.0
    assert torch.equal(back.probabilities, soft.probabilities)  # bit-exact here
    if codec == "vq":
        assert torch.equal(back.payload.codebook, soft.payload.codebook)
        assert torch.equal(back.payload.indices, soft.payload.indices)
    if codec == "topk":  # the two most probable classes kept, the third gets what is left
        assert torch.equal(back.payload.classes, soft.payload.classes)
        assert torch.equal(back.payload.values, soft.payload.values)
        assert torch.equal(soft.payload.classes[:, 0], soft.probabilities.argmax(1))
    # counted: the file grows by the section, which bits and info show
    section = decoded.section_bytes["labels"]
    assert len(data) == len(hard_bytes) + section + 5 and bits["labels"] == 8 * section
    report = ddcodec.info(data)
    assert report["labels"]["bits"] == 8 * section
    assert report["labels"]["float16_bits"] == 16 * 12 * 3
    if codec == "float16":
        assert section == 6 + 2 * 12 * 3
    # the set file keeps them, and so do the exports
    path = root / f"s_{codec}.pt"
    save_set(labelled, path, force=True)
    assert torch.equal(load_set(path).soft_labels.probabilities, soft.probabilities)
    out = decoded.to_set()
    assert torch.equal(out.soft_labels.probabilities, soft.probabilities)


def test_exports_carry_soft_labels(taught, run_cli):
    _, teacher, _, distilled, root = taught
    labelled = ddcodec.label(distilled, teacher, device="cpu")
    data, _ = ddcodec.encode(labelled)
    ddz = root / "lab.ddz"
    ddz.write_bytes(data)
    assert run_cli("decode", str(ddz), "--format", "mtt", "-o", str(root / "m"), "-f",
                   "-q")[0] == 0
    soft = torch.load(root / "m" / "soft_labels_best.pt", weights_only=True)
    assert torch.equal(soft, labelled.soft_labels.probabilities)
    assert run_cli("decode", str(ddz), "--format", "imagefolder", "-o", str(root / "f"), "-f",
                   "-q")[0] == 0
    sidecar = json.loads((root / "f" / "soft_labels.json").read_text())
    assert len(sidecar["labels"]) == 12 and sidecar["temperature"] == 1.0


def test_measure_trains_on_soft_labels_and_says_so(taught):
    _, teacher, _, distilled, _ = taught
    labelled = ddcodec.label(distilled, teacher, device="cpu", loss="kl", temperature=4.0)
    report = ddcodec.measure(labelled, epochs=2, runs=1, device="cpu")
    assert report["labels"]["kind"].startswith("soft") and report["labels"]["loss"] == "kl"
    assert report["labels"]["temperature"] == 4.0
    hard = ddcodec.measure(labelled, epochs=2, runs=1, device="cpu", hard_labels=True)
    assert hard["labels"]["kind"] == "hard" and hard["labels"]["soft_labels_ignored"]


@pytest.mark.parametrize("damage, message", [
    (lambda p: -p, "negative"),
    (lambda p: p * 2, "sums to"),
    (lambda p: p.masked_fill(torch.zeros_like(p, dtype=torch.bool).index_fill(0, torch.tensor(
        [0]), True), float("nan")), "NaN"),
    (lambda p: p[:, :2], "one column per class"),
])
def test_bad_soft_labels_are_refused(taught, tmp_path, damage, message):
    _, _, _, distilled, _ = taught
    good = as_float16(torch.full((12, 3), 1 / 3), temperature=1.0)
    raw = replace(distilled, soft_labels=good).to_dict()
    raw["soft_labels"]["probabilities"] = damage(raw["soft_labels"]["probabilities"])
    path = tmp_path / "bad.pt"
    torch.save(raw, path)
    with pytest.raises(DDCodecError, match=message):
        load_set(path)


def test_a_teacher_for_other_data_is_refused(taught, tmp_path):
    _, teacher, _, _, _ = taught
    cifar = ddcodec.distill("cifar10-subset", None, loss="none", ipc=1)
    with pytest.raises(DDCodecError, match="the teacher was made for 3 classes"):
        ddcodec.label(cifar, teacher, device="cpu")
    assert not list(tmp_path.iterdir())


def test_vq_is_deterministic_and_never_worse_with_more_entries():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(60, 10, generator=g) * 2, 1)
    a, b = as_vq(p, 8, temperature=1.0), as_vq(p, 8, temperature=1.0)
    assert torch.equal(a.payload.codebook, b.payload.codebook) and torch.equal(a.payload.indices, b.payload.indices)

    def kl(q):
        return float((p * (p.log() - q.clamp_min(1e-12).log())).sum(1).mean())

    assert kl(as_vq(p, 32, temperature=1.0).probabilities) < kl(a.probabilities)


def test_version_1_cannot_hold_soft_labels(taught):
    _, _, _, distilled, _ = taught
    labelled = replace(distilled, soft_labels=as_float16(torch.full((12, 3), 1 / 3),
                                                         temperature=1.0))
    with pytest.raises(ValueError, match="version 1 cannot hold soft labels"):
        encode_set(labelled, version=1)


@pytest.mark.slow
def test_soft_labels_beat_hard_labels_on_real_cifar(tmp_path):
    """Two real CIFAR-10 images per class: a short-trained teacher's soft labels (about 40 %
    accurate itself) lift the same images well above their hard labels (measured: +8 points
    at 3 epochs of teacher; 30 epochs x 2 networks here)."""
    teacher = tmp_path / "t.pt"
    made = ddcodec.train_teacher("cifar10-subset", teacher, device="cpu", epochs=2)
    assert made.info["test_accuracy"] > 0.25  # it learnt something, chance is 0.10
    images = ddcodec.distill("cifar10-subset", None, loss="none", ipc=2)
    soft = ddcodec.label(images, teacher, device="cpu")
    hard_acc = ddcodec.measure(images, epochs=30, runs=2, device="cpu")["accuracy_mean"]
    soft_acc = ddcodec.measure(soft, epochs=30, runs=2, device="cpu")["accuracy_mean"]
    assert soft_acc > hard_acc + 0.04, (hard_acc, soft_acc)


def test_measure_controls_credit_the_teacher_fairly(taught):
    _, teacher, _, distilled, _ = taught
    labelled = ddcodec.label(distilled, teacher, device="cpu")
    report = ddcodec.measure(labelled, epochs=2, runs=1, device="cpu", teacher=str(teacher))
    controls = report["label_controls"]
    assert set(controls["same_images_hard_labels"]) >= {"accuracy_mean", "accuracies"}
    rnd = controls["random_real_same_teacher"]
    # as many labelled random real images per class as fit in the set's own bits
    assert rnd["images_per_class"] >= 1 and rnd["bpc"] <= report["bpc"]
    with pytest.raises(DDCodecError, match="no soft labels"):
        ddcodec.measure(distilled, epochs=1, runs=1, device="cpu", teacher=str(teacher))


def test_top_k_keeps_the_most_probable_classes_and_spreads_the_rest():
    from ddcodec.labels.rungs.topk import as_topk, decode_topk

    p = torch.tensor([[0.7, 0.2, 0.06, 0.04], [0.25, 0.25, 0.25, 0.25]])
    t = as_topk(p, 2, bits=8, temperature=1.0)
    assert t.payload.classes[0].tolist() == [0, 1]
    # 0.7 x 255 = 178.5 rounds half to even: 178
    assert t.probabilities[0, :2].tolist() == pytest.approx([178 / 255, 51 / 255], abs=1e-6)
    assert t.probabilities[0, 2] == t.probabilities[0, 3]  # the rest, evenly
    assert torch.allclose(t.probabilities.sum(1), torch.ones(2), atol=1e-6)
    # kept integers above the scale are renormalised, the others get nothing
    over = decode_topk(torch.tensor([[0, 1]]), torch.tensor([[200, 100]]), 8, 4)
    assert over[0].tolist() == pytest.approx([2 / 3, 1 / 3, 0, 0], abs=1e-6)
    with pytest.raises(DDCodecError, match="between 1 and the 4 classes"):
        as_topk(p, 5, temperature=1.0)
