"""Training straight from a .ddz: `ddcodec.open` decodes once and its Dataset yields exactly what
`decode` writes and what `measure` trains on, epoch by epoch."""

import pytest
import torch
from torch.utils.data import DataLoader

import ddcodec
from conftest import FIXTURES, data_and_teacher, write_npz
from ddcodec.bitstream import ddz
from ddcodec.data.datasets import load_dataset
from ddcodec.errors import DDCodecError
from ddcodec.sets.distributional import Resampled


def test_the_dataset_yields_what_decode_writes(tmp_path):
    opened = ddcodec.open(FIXTURES / "golden_v3.ddz")
    assert ddcodec.info(opened) == ddcodec.info(FIXTURES / "golden_v3.ddz") | {
        "file": str(FIXTURES / "golden_v3.ddz")}
    decoded = ddcodec.decode(FIXTURES / "golden_v3.ddz", tmp_path / "set.pt")
    written = ddcodec.load_set(tmp_path / "set.pt")
    data = opened.dataset()
    assert len(data) == decoded.header.num_images
    images, targets = next(iter(DataLoader(data, batch_size=len(data))))
    assert torch.equal(images, written.images) and torch.equal(targets, written.labels)
    assert opened.class_names == written.class_names


def test_it_decodes_once_lazily(monkeypatch):
    calls = []
    real = ddz.decode
    monkeypatch.setattr(ddz, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    opened = ddcodec.open(FIXTURES / "golden_v3.ddz")
    assert calls == []  # opening reads the bytes, decodes nothing
    opened.dataset()
    opened.info()
    opened.dataset(labels="hard")
    assert calls == [1]


@pytest.fixture(scope="module")
def per_epoch(tmp_path_factory):
    root = tmp_path_factory.mktemp("reader")
    npz, teacher = data_and_teacher(root, per_class=20)
    distilled = ddcodec.distill(f"npz:{npz}", None, loss="none", ipc=4)
    labelled = ddcodec.label(distilled, teacher, codec="vq", k=4, device="cpu", epochs=3,
                             view_seed=11)
    path = root / "labelled.ddz"
    ddcodec.encode(labelled, path)
    return path


def test_per_epoch_labels_replay_the_labelled_views(per_epoch):
    opened = ddcodec.open(per_epoch)
    distilled = opened.set
    soft = distilled.soft_labels
    data = opened.dataset()
    every = torch.arange(distilled.num_images)
    for epoch in (0, 1, 4):  # epoch 4 is label epoch 1 again, as measure cycles through them
        data.set_epoch(epoch)
        images, targets = next(iter(DataLoader(data, batch_size=len(data))))
        want = soft.views()(distilled.images, epoch % 3, every)
        assert torch.equal(images, want)
        assert torch.equal(targets, soft.training_rows()[epoch % 3])
    assert targets.shape == (distilled.num_images, distilled.num_classes)
    hard = opened.dataset(labels="hard")
    assert torch.equal(hard[0][0], distilled.images[0]) and hard[0][1] == distilled.labels[0]


def test_a_distributional_file_draws_each_epochs_samples(tmp_path):
    npz = write_npz(tmp_path / "four.npz", classes=4, per_class=8, test_per_class=4, size=16)
    path = tmp_path / "d3.ddz"
    ddcodec.distill(f"npz:{npz}", path, param="distribution", priors=2, fit_iterations=16,
                    fit_candidates=2, iterations=4, batch_real=4, arm_context=8,
                    prior_samples=2)
    opened = ddcodec.open(path)
    distilled = opened.set
    data = opened.dataset()
    want = Resampled(distilled.images, distilled.labels, distilled.prior_sampler(),
                     distilled.normalization)
    for epoch in (0, 3):
        data.set_epoch(epoch)
        images, labels = want(epoch)
        assert len(data) == 8 * 3
        assert torch.equal(torch.stack([data[i][0] for i in range(len(data))]), images)
        assert torch.equal(torch.stack([data[i][1] for i in range(len(data))]), labels)
    data.set_epoch(0)
    first = data[len(data) - 1][0]
    data.set_epoch(1)
    assert not torch.equal(data[len(data) - 1][0], first)  # fresh samples each epoch


def test_a_network_trains_from_the_file(tmp_path):
    ds = load_dataset("cifar10-subset")
    from ddcodec.distillation.random_subset import random_real_subset
    from ddcodec.sets.setfile import DistilledSet

    images, labels = random_real_subset(ds, 20, 0)
    real = DistilledSet(images, labels, list(ds.class_names), ds.normalization,
                        {"data": "cifar10-subset"})
    path = tmp_path / "real.ddz"
    ddcodec.encode(real, path)
    opened = ddcodec.open(path)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(512, 10))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    loader = DataLoader(opened.dataset(transform=lambda x: x.flip(-1) if torch.rand(()) < 0.5
                                       else x), batch_size=50, shuffle=True)
    for _ in range(15):
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = (net(opened.test_inputs(ds)).argmax(1) == ds.y_test).float().mean()
    assert accuracy > 0.2  # chance is 0.1


def test_bad_uses_get_one_line(tmp_path):
    with pytest.raises(DDCodecError, match="not found"):
        ddcodec.open(tmp_path / "missing.ddz")
    (tmp_path / "x.ddz").write_bytes(b"hello")
    with pytest.raises(DDCodecError):
        ddcodec.open(tmp_path / "x.ddz")
    opened = ddcodec.open(FIXTURES / "golden_v3.ddz")
    with pytest.raises(DDCodecError, match="hard labels only"):
        opened.dataset(labels="soft")
    with pytest.raises(DDCodecError, match="labels must be"):
        opened.dataset(labels="other")
    with pytest.raises(DDCodecError, match="count from 0"):
        opened.dataset().set_epoch(-1)
