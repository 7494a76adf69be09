import pytest
import torch

from ddcodec import api
from ddcodec.data.datasets import load_dataset
from ddcodec.distillation import DistillConfig, distill
from ddcodec.errors import DDCodecError
from ddcodec.sets.setfile import load_set

CPU = torch.device("cpu")


def test_random_subset_is_real_class_ordered_and_seeded(tiny_npz):
    ds = load_dataset(f"npz:{tiny_npz}")
    a = distill(ds, DistillConfig.of(loss="none", ipc=4, seed=1), CPU)
    b = distill(ds, DistillConfig.of(loss="none", ipc=4, seed=1), CPU)
    c = distill(ds, DistillConfig.of(loss="none", ipc=4, seed=2), CPU)
    assert a.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    train = ds.train_images()
    for image, label in zip(a.images, a.labels):  # every image is a genuine training image
        match = (train - image).abs().flatten(1).max(1).values < 1e-6
        assert match.any() and int(ds.y_train[match.nonzero()[0]]) == int(label)
    assert a.provenance["method"] == "random-real" and a.provenance["iterations"] == 0


def _held_out_dm_objective(ds, images, ipc):
    """The DM objective on fixed networks DM never saw, against whole-class real means."""
    from ddcodec.training.networks import seeded_network

    total, train = 0.0, ds.train_images()
    for seed in range(5):
        net = seeded_network("convnet", ds.channels, ds.num_classes, ds.image_shape[1:],
                             10_000 + seed)
        with torch.no_grad():
            for c in range(ds.num_classes):
                real = net.embed(train[ds.y_train == c]).mean(0)
                syn = net.embed(images[c * ipc:(c + 1) * ipc]).mean(0)
                total += float(((real - syn) ** 2).sum())
    return total


def test_dm_lowers_the_matching_objective_and_moves_the_pixels(tiny_npz):
    ds = load_dataset(f"npz:{tiny_npz}")
    losses = []
    config = DistillConfig.of(loss="dm", ipc=2, iterations=40, batch_real=12, dsa_strategy="flip")
    out = distill(ds, config, CPU, on_iteration=lambda i, v: losses.append(v))
    start = distill(ds, DistillConfig.of(loss="none", ipc=2), CPU)
    assert len(losses) == 40 and all(v >= 0 for v in losses)
    before = _held_out_dm_objective(ds, start.images, 2)
    after = _held_out_dm_objective(ds, out.images, 2)
    assert after < 0.85 * before
    assert (out.images - start.images).abs().max() > 0.1
    assert out.labels.tolist() == start.labels.tolist()
    assert out.provenance["method"] == "dm"
    assert out.provenance["config"]["matching"]["iterations"] == 40


def test_dm_is_reproducible_under_a_seed(tiny_npz):
    ds = load_dataset(f"npz:{tiny_npz}")
    config = DistillConfig.of(loss="dm", ipc=1, iterations=3, batch_real=4, seed=3)
    assert torch.equal(distill(ds, config, CPU).images, distill(ds, config, CPU).images)


def test_bad_configs_are_refused():
    with pytest.raises(DDCodecError, match="--ipc"):
        DistillConfig.of(ipc=0)
    with pytest.raises(DDCodecError, match="--loss"):
        DistillConfig.of(loss="tm")
    with pytest.raises(DDCodecError, match="architecture"):
        DistillConfig.of(arch="lenet9")


def test_ipc_larger_than_a_class(tiny_npz):
    with pytest.raises(DDCodecError, match="has only 12 training images"):
        api.distill(f"npz:{tiny_npz}", loss="none", ipc=13)


def test_set_file_is_plain_tensors_and_metadata(tmp_path, tiny_npz):
    path = tmp_path / "set.pt"
    api.distill(f"npz:{tiny_npz}", path, loss="none", ipc=3, seed=4)
    raw = torch.load(path, weights_only=True)  # no pickled classes inside
    assert raw["images"].dtype == torch.float32 and tuple(raw["images"].shape) == (9, 3, 8, 8)
    assert raw["labels"].dtype == torch.int64 and raw["num_classes"] == 3
    assert raw["normalization"]["space"] == "normalized" and len(raw["normalization"]["std"]) == 3
    assert raw["provenance"]["config"]["seed"] == 4
    assert raw["provenance"]["data"] == f"npz:{tiny_npz}"
    loaded = load_set(path)
    assert loaded.class_names == ["0", "1", "2"] and loaded.num_images == 9


def test_load_set_rejects_damaged_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(DDCodecError, match="not a ddcodec set file"):
        load_set(bad)
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(DDCodecError, match="not a ddcodec set file"):
        load_set(bad)
    torch.save({"format": "ddcodec-set", "format_version": 99}, bad)
    with pytest.raises(DDCodecError, match="upgrade ddcodec"):
        load_set(bad)
    torch.save({"format": "ddcodec-set", "format_version": 1, "images": torch.zeros(2, 3)}, bad)
    with pytest.raises(DDCodecError, match="damaged"):
        load_set(bad)
