"""FKD-style relabelling folders (SRe2L's layout): read beside their images into a .ddz with every
view's metadata kept exactly, written back in the same layout, put through the label ladder,
and replayed batch by batch by `measure`."""

import math

import numpy as np
import pytest
import torch

import ddcodec
from ddcodec.data.datasets import load_dataset
from ddcodec.data.grid import to_pil
from ddcodec.sets.fkd import FkdReplay, read_relabel

EPOCHS, BATCH, PER_CLASS, SEED = 3, 16, 4, 42


def relabel_like_sre2l(images: torch.Tensor, folder, mix: str = "cutmix", seed: int = SEED,
                       epochs: int = EPOCHS, batch: int = BATCH, classes: int = 10):
    """A relabelling folder written as SRe2L's relabel step writes one: one RandomSampler seeded
    once, per batch [coords, flips, mix_index, lam, bbox, logits] with numpy's lam and box."""
    n, _, h, w = images.shape
    generator = torch.Generator().manual_seed(seed)
    sampler = torch.utils.data.RandomSampler(range(n), generator=generator)
    rng = np.random.default_rng(0)
    teacher = torch.nn.Linear(3 * h * w, classes)
    for epoch in range(epochs):
        order = list(sampler)
        (folder / f"epoch_{epoch}").mkdir(parents=True)
        for b in range(math.ceil(n / batch)):
            index = order[b * batch:(b + 1) * batch]
            size = len(index)
            coords, crops = [], []
            for i in index:
                top, left = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
                height, width = int(rng.integers(h // 2, h - top + 1)), int(
                    rng.integers(w // 2, w - left + 1))
                coords.append((top / h, left / w, height / h, width / w))
                crops.append(images[i, :, top:top + height, left:left + width])
            flips = torch.from_numpy(rng.random(size) < 0.5)
            mix_index = lam = box = None
            if mix != "none":
                mix_index = torch.randperm(size)
                lam = np.random.default_rng(epoch * 100 + b).beta(1.0, 1.0)
            if mix == "cutmix":
                cut = np.sqrt(1.0 - lam)
                cx, cy = rng.integers(h), rng.integers(w)
                box = [np.clip(cx - int(h * cut) // 2, 0, h), np.clip(cy - int(w * cut) // 2, 0, w),
                       np.clip(cx + int(h * cut) // 2, 0, h), np.clip(cy + int(w * cut) // 2, 0, w)]
            with torch.no_grad():
                logits = teacher(images[index].float().flatten(1) / 255).half()
            torch.save([torch.FloatTensor(coords), flips, mix_index, lam, box, logits],
                       folder / f"epoch_{epoch}" / f"batch_{b}.tar")


@pytest.fixture(scope="module")
def relabelled(tmp_path_factory):
    """40 real CIFAR images as an ImageFolder, and a 3-epoch CutMix relabelling of them."""
    root = tmp_path_factory.mktemp("fkd")
    ds = load_dataset("cifar10-subset")
    index = torch.cat([ds.indices_of_class(c)[:PER_CLASS] for c in range(10)])
    for k, i in enumerate(index.tolist()):
        folder = root / "images" / ds.class_names[int(ds.y_train[i])]
        folder.mkdir(parents=True, exist_ok=True)
        to_pil(ds.x_train[i]).save(folder / f"{k:03d}.png")
    relabel_like_sre2l(ds.x_train[index], root / "relabel")
    return root, ds.x_train[index]


def encode(run_cli, relabel, out, *extra):
    code, _, err = run_cli("encode", str(relabel), "--from", "fkd", "--data", "cifar10-subset",
                           *extra, "-o", str(out))
    assert code == 0, err
    return out


def test_a_relabelling_round_trips_through_a_ddz(tmp_path, run_cli, relabelled):
    root, _ = relabelled
    first = encode(run_cli, root / "relabel", tmp_path / "a.ddz", "--images",
                   str(root / "images"))
    info = ddcodec.info(first)
    assert "FKD relabelling, 3 epochs of 3 batches of 16, cutmix" in info["labels"]["kind"]
    assert info["labels"]["views_bits"] > 0 and info["labels"]["codec"] == "float16"
    code, _, err = run_cli("decode", str(first), "--format", "fkd", "-o", str(tmp_path / "out"))
    assert code == 0, err
    for epoch in range(EPOCHS):
        for b in range(3):
            name = f"epoch_{epoch}/batch_{b}.tar"
            old = torch.load(root / "relabel" / name, weights_only=False)
            new = torch.load(tmp_path / "out" / "fkd" / name, weights_only=False)
            for k in range(3):  # coords, flips, mix index: exactly
                assert torch.equal(old[k], new[k]), (name, k)
            assert old[3] == new[3] and [int(v) for v in old[4]] == new[4]
            assert new[5].dtype == torch.float32  # exact rows back; scripts cast anyway
            want, got = (torch.softmax(t.float() / 3.0, 1) for t in (old[5], new[5]))
            assert torch.allclose(want, got, atol=2e-3)  # softmax(logits / T), float16 rows
    code, _, err = run_cli("decode", str(first), "-o", str(tmp_path / "set.pt"))
    assert code == 0, err
    kept = ddcodec.load_set(tmp_path / "set.pt")  # a set file keeps the views too
    assert torch.equal(kept.fkd.coords, ddcodec.decode(first).fkd.coords)
    # the written folder reads back, with no option repeated, to the same file
    again = encode(run_cli, tmp_path / "out", tmp_path / "b.ddz")
    assert again.read_bytes() == first.read_bytes()


def test_the_views_follow_the_sampler(relabelled):
    root, images = relabelled
    views, rows = read_relabel(root / "relabel", 40, 10, (32, 32))
    order = views.orders()
    assert sorted(order[1].tolist()) == list(range(40)) and not torch.equal(order[0], order[1])
    raw = torch.load(root / "relabel" / "epoch_1" / "batch_0.tar", weights_only=False)
    first = int(order[1, 0])  # the image at epoch 1, position 0 carries that batch's row 0
    assert torch.allclose(rows.view(3, 40, 10)[1, first],
                          torch.softmax(raw[5][0].float() / 3.0, 0), atol=1e-6)
    other, _ = read_relabel(root / "relabel", 40, 10, (32, 32), seed=7)
    assert not torch.equal(other.orders(), order)


def test_the_replay_rebuilds_crops_flips_and_cutmix(relabelled):
    root, images = relabelled
    views, rows = read_relabel(root / "relabel", 40, 10, (32, 32))
    unit = images.float() / 255
    replay = FkdReplay(unit, views, rows)
    batches = list(replay(4))  # epoch 4 replays label epoch 1
    assert [len(x) for x, _ in batches] == [16, 16, 8]
    x, y = batches[0]
    order = views.orders()[1]
    assert torch.equal(y, rows.view(3, 40, 10)[1][order[:16]])
    x1, y1, x2, y2 = views.mix_box[1, 0].tolist()
    assert x2 > x1 and y2 > y1
    partner = views.mix_index[1, :16]
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[x1:x2, y1:y2] = False
    plain = list(FkdReplay(unit, _without_mixing(views), rows)(1))[0][0]
    assert torch.equal(x[:, :, x1:x2, y1:y2], plain[partner][:, :, x1:x2, y1:y2])
    assert torch.equal(x[:, :, outside], plain[:, :, outside])
    # a full-image crop without a flip is the image itself
    top, left, height, width = views.coords[1, 0].tolist()
    if (top, left, height, width) == (0.0, 0.0, 1.0, 1.0) and not views.flips[1, 0]:
        assert torch.allclose(plain[0], unit[order[0]])


def _without_mixing(views):
    from dataclasses import replace

    e = views.epochs
    return replace(views, mix="none", mix_index=torch.zeros(e, 0, dtype=torch.int64),
                   mix_lam=torch.zeros(e, 0, dtype=torch.float64),
                   mix_box=torch.zeros(e, 0, 4, dtype=torch.int64))


def test_the_ladder_and_measure(tmp_path, run_cli, relabelled):
    root, _ = relabelled
    float16 = encode(run_cli, root / "relabel", tmp_path / "f16.ddz", "--images",
                     str(root / "images"))
    vq = encode(run_cli, root / "relabel", tmp_path / "vq.ddz", "--images",
                str(root / "images"), "--label-codec", "vq", "--label-k", "16")
    a, b = ddcodec.info(float16)["labels"], ddcodec.info(vq)["labels"]
    assert b["codec"] == "vq" and b["bits"] < a["bits"] / 4
    assert b["views_bits"] == a["views_bits"]
    report = ddcodec.measure(vq, epochs=2, runs=1, device="cpu")
    assert "FKD relabelling" in report["labels"]["kind"]
    assert report["protocol"]["steps_per_epoch"] == 3
    assert 0 <= report["accuracy_mean"] <= 1


def test_bad_relabellings_get_one_line(tmp_path, run_cli, relabelled):
    root, images = relabelled
    broken = tmp_path / "gap"
    relabel_like_sre2l(images, broken, epochs=2)
    (broken / "epoch_1" / "batch_1.tar").unlink()
    code, _, err = run_cli("encode", str(broken), "--from", "fkd", "--images",
                           str(root / "images"), "--data", "cifar10-subset", "-o",
                           str(tmp_path / "x.ddz"))
    assert code == 1 and "not numbered" in err and not (tmp_path / "x.ddz").exists()
    code, _, err = run_cli("encode", str(root / "relabel"), "--from", "fkd", "--data",
                           "cifar10-subset", "-o", str(tmp_path / "x.ddz"))
    assert code == 1 and "needs the relabelled images" in err
    hostile = tmp_path / "hostile"
    relabel_like_sre2l(images, hostile, epochs=1)
    torch.save({"payload": open}, hostile / "epoch_0" / "batch_0.tar")  # code, not data
    code, _, err = run_cli("encode", str(hostile), "--from", "fkd", "--images",
                           str(root / "images"), "--data", "cifar10-subset", "-o",
                           str(tmp_path / "x.ddz"))
    assert code == 1 and "not a readable relabelling batch" in err
    few = tmp_path / "few"
    relabel_like_sre2l(images[:20], few, epochs=1)
    code, _, err = run_cli("encode", str(few), "--from", "fkd", "--images",
                           str(root / "images"), "--data", "cifar10-subset", "-o",
                           str(tmp_path / "x.ddz"))
    assert code == 1 and "do not cover 40 images" in err


@pytest.mark.slow
def test_a_teacher_relabels_an_fkd_set_without_its_views(tmp_path, run_cli, relabelled):
    root, _ = relabelled
    first = encode(run_cli, root / "relabel", tmp_path / "a.ddz", "--images",
                   str(root / "images"))
    ddcodec.train_teacher("cifar10-subset", tmp_path / "t.pt", device="cpu", epochs=1)
    labelled = ddcodec.label(ddcodec.decode(first).to_set(), tmp_path / "t.pt", codec="vq",
                             k=4, device="cpu")
    assert labelled.fkd is None and not labelled.soft_labels.per_epoch
    assert any("FKD relabelling's views" in note for note in labelled.notes)
    ddcodec.encode(labelled, tmp_path / "b.ddz")  # a valid file: labels and views agree
    assert ddcodec.info(tmp_path / "b.ddz")["labels"]["codec"] == "vq"
