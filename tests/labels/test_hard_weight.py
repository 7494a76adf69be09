"""The hard weight: each image's class mixed into its soft label's training target, stored in the
labels section (a flag and a float32), honoured by every reader, overridable by measure, and
refused in one line when out of range."""

import json
from dataclasses import replace

import pytest
import torch

import ddcodec
from ddcodec.bitstream.codec import decode_bytes, encode_set
from ddcodec.bitstream.label_coding import HARD_WEIGHT
from ddcodec.errors import DDCodecError
from ddcodec.labels.rungs.float16 import as_float16
from ddcodec.labels.soft import SoftLabels
from ddcodec.reader import DDZ
from ddcodec.sets.setfile import load_set, save_set


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    """A teacher trained on a tiny real-looking set, and that set's random real images labelled
    by it in VQ with a hard weight of 0.3 (stored as float32)."""
    from conftest import write_npz

    root = tmp_path_factory.mktemp("hard-weight")
    npz = write_npz(root / "tiny.npz", per_class=20)
    teacher = root / "teacher.pt"
    ddcodec.train_teacher(f"npz:{npz}", teacher, device="cpu", epochs=2, holdout=0.2)
    plain = ddcodec.distill(f"npz:{npz}", root / "r.pt", loss="none", ipc=4)
    labelled = ddcodec.label(plain, teacher, codec="vq", k=4, hard_weight=0.3, device="cpu")
    return npz, teacher, plain, labelled, root


def test_training_rows_mix_each_image_s_class_in():
    rows = torch.tensor([[0.5, 0.25, 0.25], [0.0, 0.5, 0.5]])
    classes = torch.tensor([2, 0])
    soft = SoftLabels(rows, 1.0, hard_weight=0.5)
    assert torch.equal(soft.training_rows(classes),
                       torch.tensor([[0.25, 0.125, 0.625], [0.5, 0.25, 0.25]]))
    assert torch.equal(replace(soft, hard_weight=0.0).training_rows(), rows)  # as before
    per_epoch = SoftLabels(torch.cat([rows, rows.flip(1)]), 1.0, epochs=2, view_seed=1,
                           view_strategy="flip", hard_weight=1.0)
    mixed = per_epoch.training_rows(classes)  # every epoch's rows take the same classes
    assert mixed.shape == (2, 2, 3) and torch.equal(mixed[1], torch.eye(3)[[2, 0]])
    with pytest.raises(DDCodecError, match="pass them"):
        soft.training_rows()


def test_the_weight_is_the_float32_the_file_stores():
    soft = SoftLabels(torch.full((1, 2), 0.5), 1.0, hard_weight=0.3)
    assert soft.hard_weight == float(torch.tensor(0.3, dtype=torch.float32))


def test_a_hard_weight_round_trips_and_everything_trains_on_the_mix(taught, tmp_path):
    _, _, _, labelled, _ = taught
    soft = labelled.soft_labels
    assert soft.hard_weight == pytest.approx(0.3) and soft.codec == "vq"
    data, _ = encode_set(labelled)
    decoded = decode_bytes(data)
    assert decoded.soft_labels.hard_weight == soft.hard_weight
    expected = labelled.training_labels()
    assert torch.allclose(expected.sum(1), torch.ones(len(expected)), atol=1e-3)
    w = soft.hard_weight
    assert torch.equal(expected, w * torch.eye(3)[labelled.labels] + (1 - w) * soft.probabilities)
    assert torch.equal(decoded.to_set().training_labels(), expected)
    path = tmp_path / "set.pt"  # the set file keeps it too
    save_set(labelled, path)
    assert torch.equal(load_set(path).training_labels(), expected)
    ddz = tmp_path / "set.ddz"
    ddz.write_bytes(data)
    targets = torch.stack([target for _, target in DDZ(ddz).dataset()])  # training from it
    assert torch.equal(targets, expected)


def test_no_weight_writes_the_section_as_before(taught):
    _, _, _, labelled, _ = taught
    unweighted = replace(labelled, soft_labels=replace(labelled.soft_labels, hard_weight=0.0))
    weighted_bytes, _ = encode_set(labelled)
    plain_bytes, _ = encode_set(unweighted)
    # the weighted section is the plain one with the flag set and 4 bytes after the temperature
    assert len(weighted_bytes) == len(plain_bytes) + 4
    assert decode_bytes(plain_bytes).soft_labels.hard_weight == 0.0
    from ddcodec.audit.mutations import label_fields, parse

    for data, flagged in ((weighted_bytes, True), (plain_bytes, False)):
        _, _, sections, _ = parse(data)
        fields, _ = label_fields(sections[-1][1])
        assert bool(fields[0][2] & HARD_WEIGHT) == flagged
        assert ("hard_weight" in [f[0] for f in fields]) == flagged


def test_exports_carry_the_mixed_rows(taught, run_cli):
    _, _, _, labelled, root = taught
    ddz = root / "export.ddz"
    ddz.write_bytes(encode_set(labelled)[0])
    assert run_cli("decode", str(ddz), "--format", "mtt", "-o", str(root / "m"), "-f")[0] == 0
    assert torch.equal(torch.load(root / "m" / "soft_labels_best.pt"),
                       labelled.training_labels())
    assert run_cli("decode", str(ddz), "--format", "imagefolder", "-o", str(root / "f"),
                   "-f")[0] == 0
    record = json.loads((root / "f" / "soft_labels.json").read_text())
    assert record["hard_weight"] == labelled.soft_labels.hard_weight
    code, out, _ = run_cli("info", str(ddz))
    assert code == 0 and "hard weight 0.3" in out


def test_weight_one_trains_exactly_as_the_hard_label_control(taught):
    """w = 1 makes every target its one-hot class: the same network as --hard-labels."""
    _, _, _, labelled, _ = taught
    one = ddcodec.measure(labelled, epochs=3, runs=1, device="cpu", label_hard_weight=1.0)
    hard = ddcodec.measure(labelled, epochs=3, runs=1, device="cpu", hard_labels=True)
    own = ddcodec.measure(labelled, epochs=3, runs=1, device="cpu")
    assert one["labels"]["hard_weight"] == 1.0 and own["labels"]["hard_weight"] == pytest.approx(
        0.3)
    assert one["accuracies"] == hard["accuracies"]


@pytest.mark.parametrize("args, message", [
    (("--label-hard-weight", "1.5"), "hard weight must be within [0, 1]"),
    (("--label-hard-weight", "0.5", "--hard-labels"), "no labels to weigh"),
])
def test_measure_refuses_a_bad_weight_in_one_line(taught, run_cli, args, message):
    _, _, _, labelled, root = taught
    ddz = root / "bad-weight.ddz"
    ddz.write_bytes(encode_set(labelled)[0])
    code, _, err = run_cli("measure", str(ddz), "--epochs", "1", "--runs", "1", *args)
    assert code == 1 and len(err.strip().splitlines()) == 1 and message in err


def test_measure_refuses_a_weight_for_hard_labels(taught, run_cli):
    _, _, plain, _, root = taught
    ddz = root / "hard.ddz"
    ddz.write_bytes(encode_set(plain)[0])
    code, _, err = run_cli("measure", str(ddz), "--epochs", "1", "--label-hard-weight", "0.5")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "hard labels only" in err


def test_label_and_distill_refuse_what_has_no_meaning(taught, run_cli, tmp_path):
    npz, teacher, plain, _, root = taught
    code, _, err = run_cli("label", str(root / "r.pt"), "--teacher", str(teacher), "-o",
                           str(tmp_path / "x.pt"), "--hard-weight", "2")
    assert code == 1 and "[0, 1]" in err and not (tmp_path / "x.pt").exists()
    code, _, err = run_cli("distill", "--data", f"npz:{npz}", "--label-hard-weight", "0.5",
                           "-o", str(tmp_path / "y.pt"))
    assert code == 1 and len(err.strip().splitlines()) == 1 and "--labels vq" in err
    code, _, err = run_cli("distill", "--data", f"npz:{npz}", "--labels", "vq", "--teacher",
                           str(teacher), "--label-hard-weight", "1.5", "-o", str(tmp_path / "z.pt"))
    assert code == 1 and len(err.strip().splitlines()) == 1 and "within [0, 1]" in err
    assert not (tmp_path / "z.pt").exists()


def test_an_fkd_relabelling_takes_no_weight():
    from ddcodec.names import FKD_VIEW_STRATEGY
    from ddcodec.labels.soft import check_soft_labels

    rows = torch.softmax(torch.randn(4, 3), 1)
    soft = as_float16(rows, temperature=1.0, epochs=2, view_strategy=FKD_VIEW_STRATEGY)
    with pytest.raises(DDCodecError, match="CutMix"):
        check_soft_labels(replace(soft, hard_weight=0.5), 2, 3)


def test_distill_records_the_weight(taught, tmp_path):
    npz, teacher, _, _, _ = taught
    made = ddcodec.distill(f"npz:{npz}", tmp_path / "d.pt", loss="none", ipc=2, labels="vq",
                           teacher=str(teacher), label_hard_weight=0.5, device="cpu")
    assert made.soft_labels.hard_weight == 0.5
    assert load_set(tmp_path / "d.pt").soft_labels.hard_weight == 0.5


def test_a_measure_checkpoint_names_the_weight_only_when_it_is_given():
    """Checkpoints made before the option existed still resume; an override is a new one."""
    from ddcodec.evaluation.measure import _fingerprinted
    from ddcodec.training.protocol import MeasureConfig

    assert "label_hard_weight" not in _fingerprinted(MeasureConfig())
    assert _fingerprinted(MeasureConfig(label_hard_weight=0.5))["label_hard_weight"] == 0.5
    assert "runs" not in _fingerprinted(MeasureConfig(runs=3))
