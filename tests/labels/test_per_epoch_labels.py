"""Per-epoch soft labels (FKD style): one label per image and epoch, each on a view keyed by
(seed, epoch, image), coded in every rung, counted, exported, and replayed by measure."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

import ddcodec
from conftest import data_and_teacher
from ddcodec.data.augment import LabelViews
from ddcodec.bitstream.codec import decode_bytes, encode_set
from ddcodec.errors import DDCodecError
from ddcodec.training.trainer import EvalConfig, train_network
from ddcodec.labels.rungs.float16 import as_float16
from ddcodec.names import DEFAULT_STRATEGY
from ddcodec.sets.setfile import load_set, save_set
from ddcodec.labels.teacher import load_teacher

EPOCHS = 3


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    root = tmp_path_factory.mktemp("per-epoch")
    npz, teacher = data_and_teacher(root, per_class=20)
    distilled = ddcodec.distill(f"npz:{npz}", None, loss="none", ipc=4)
    return npz, teacher, distilled, root


VIEWS_SCRIPT = """
import sys, torch
from ddcodec.data.augment import LabelViews
torch.set_num_threads(int(sys.argv[1]))
images = torch.linspace(-2, 2, 12 * 3 * 16 * 16).reshape(12, 3, 16, 16)
views = LabelViews(7, "{strategy}")
out = torch.cat([views(images, e, torch.arange(12)) for e in range(4)])
sys.stdout.write(out.numpy().tobytes().hex())
"""


def test_views_are_a_function_of_their_key_alone():
    images = torch.linspace(-2, 2, 12 * 3 * 16 * 16).reshape(12, 3, 16, 16)
    views = LabelViews(7, DEFAULT_STRATEGY)
    all_of_them = views(images, 2, torch.arange(12))
    picked = torch.tensor([9, 3, 4])
    # any batch, in any order: the same view of each image
    assert torch.equal(views(images[picked], 2, picked), all_of_them[picked])
    assert not torch.equal(views(images, 3, torch.arange(12)), all_of_them)  # epochs differ
    assert not torch.equal(LabelViews(8, DEFAULT_STRATEGY)(images, 2, torch.arange(12)),
                           all_of_them)  # seeds differ
    assert not torch.equal(all_of_them, images)
    # across processes and thread counts, bit for bit
    script = VIEWS_SCRIPT.format(strategy=DEFAULT_STRATEGY)
    runs = [subprocess.run([sys.executable, "-c", script, str(t)], capture_output=True,
                           text=True, check=True).stdout for t in (1, 2)]
    assert runs[0] == runs[1] and len(runs[0]) == 2 * 4 * 4 * 12 * 3 * 16 * 16


@pytest.mark.parametrize("codec", ["float16", "vq", "topk"])
def test_per_epoch_labels_round_trip_exactly_and_are_counted(taught, codec):
    _, teacher, distilled, root = taught
    static = ddcodec.label(distilled, teacher, codec=codec, k=4 if codec == "vq" else 2,
                           device="cpu")
    labelled = ddcodec.label(distilled, teacher, codec=codec, k=4 if codec == "vq" else 2,
                             device="cpu", epochs=EPOCHS, view_seed=11)
    soft = labelled.soft_labels
    assert soft.per_epoch and soft.probabilities.shape == (EPOCHS * 12, 3)
    assert soft.training_rows().shape == (EPOCHS, 12, 3)
    # row e x N + i is the teacher on view e of image i
    made = load_teacher(teacher)
    view = LabelViews(11, DEFAULT_STRATEGY)(distilled.images, 1, torch.arange(12))
    if codec == "float16":
        expected = made.probabilities(view, 1.0, torch.device("cpu")).half().float()
        assert torch.equal(soft.training_rows()[1], expected)
    data, bits = encode_set(labelled)
    back = decode_bytes(data).soft_labels
    assert torch.equal(back.probabilities, soft.probabilities)
    assert (back.epochs, back.view_seed, back.view_strategy) == (EPOCHS, 11, DEFAULT_STRATEGY)
    assert bits["labels"] > encode_set(static)[1]["labels"]  # more rows, more bits
    if codec == "float16":
        assert bits["labels"] == 8 * (6 + 2 * EPOCHS * 12 * 3 + 1 + 1 + 1 + len(DEFAULT_STRATEGY))
    report = ddcodec.info(data)["labels"]
    assert report["epochs"] == EPOCHS and report["float16_bits"] == 16 * EPOCHS * 12 * 3
    path = root / f"pe_{codec}.pt"
    save_set(labelled, path, force=True)
    assert load_set(path).soft_labels.view_seed == 11


def test_measure_replays_the_labelled_views(taught):
    _, teacher, distilled, _ = taught
    labelled = ddcodec.label(distilled, teacher, codec="vq", k=4, device="cpu", epochs=EPOCHS,
                             view_seed=3)
    soft = labelled.soft_labels
    real, seen = soft.views(), []

    def spy(images, epoch, samples):
        out = real(images, epoch, samples)
        seen.append((epoch, samples.clone(), out))
        return out

    config = EvalConfig(epochs=5, batch_size=5)
    train_network(labelled.images, soft.training_rows(), 3, config, 0, torch.device("cpu"),
                  views=spy)
    # epoch t shows label epoch t mod 3, every image once per epoch, each as it was labelled
    per_epoch = 12 // 5 + 1
    assert [e for e, _, _ in seen] == [t % EPOCHS for t in range(5) for _ in range(per_epoch)]
    for e, samples, out in seen:
        assert torch.equal(out, real(labelled.images, e, torch.arange(12))[samples])
    report = ddcodec.measure(labelled, epochs=2, runs=1, device="cpu")
    assert "per epoch" in report["labels"]["kind"]
    with pytest.raises(ValueError, match="views"):
        train_network(labelled.images, soft.training_rows(), 3, config, 0,
                      torch.device("cpu"))


def test_exports_and_the_cli_carry_per_epoch_labels(taught, run_cli):
    _, teacher, distilled, root = taught
    source = root / "plain.pt"
    save_set(distilled, source, force=True)
    out = root / "pe.pt"
    code, stdout, err = run_cli("label", str(source), "--teacher", str(teacher), "-o", str(out),
                                "--codec", "vq", "--k", "4", "--epochs", "2", "--seed", "5",
                                "--json", "--device", "cpu")
    assert code == 0, err
    assert json.loads(stdout)["epochs"] == 2
    labelled = load_set(out)
    data, _ = ddcodec.encode(labelled)
    ddz = root / "pe.ddz"
    ddz.write_bytes(data)
    assert run_cli("decode", str(ddz), "--format", "mtt", "-o", str(root / "m"), "-f",
                   "-q")[0] == 0
    rows = torch.load(root / "m" / "soft_labels_best.pt", weights_only=True)
    assert torch.equal(rows, labelled.soft_labels.training_rows()) and rows.shape == (2, 12, 3)
    views = json.loads((root / "m" / "soft_label_views.json").read_text())
    assert views["view_seed"] == 5 and views["epochs"] == 2
    assert run_cli("decode", str(ddz), "--format", "imagefolder", "-o", str(root / "f"), "-f",
                   "-q")[0] == 0
    sidecar = json.loads((root / "f" / "soft_labels.json").read_text())
    first = sidecar["labels"]["0/00000.png"] if "0/00000.png" in sidecar["labels"] else next(
        iter(sidecar["labels"].values()))
    assert len(first) == 2 and sidecar["epochs"] == 2


@pytest.mark.parametrize("change, message", [
    (dict(epochs=2), "one row per image x 2 epochs"),
    (dict(epochs=-1), "1 to 10,000 epochs"),
    (dict(epochs=1, view_strategy="colour"), "unknown DSA strategy"),
])
def test_bad_per_epoch_labels_are_refused(taught, tmp_path, change, message):
    _, _, distilled, _ = taught
    good = as_float16(torch.full((12, 3), 1 / 3), temperature=1.0)
    raw = replace(distilled, soft_labels=good).to_dict()
    raw["soft_labels"].update({"view_seed": 0, "view_strategy": DEFAULT_STRATEGY, **change})
    path = tmp_path / "bad.pt"
    torch.save(raw, path)
    with pytest.raises(DDCodecError, match=message):
        load_set(path)


def test_distill_makes_per_epoch_labels(taught):
    npz, teacher, _, _ = taught
    made = ddcodec.distill(f"npz:{npz}", None, loss="none", ipc=2, labels="vq", label_k=2,
                           teacher=str(teacher), label_epochs=2, device="cpu")
    soft = made.soft_labels
    assert soft.epochs == 2 and soft.view_seed == 0 and soft.probabilities.shape == (12, 3)
