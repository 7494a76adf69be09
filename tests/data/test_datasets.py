import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_arrays, write_npz
from ddcodec.data.datasets import load_dataset, parse_size
from ddcodec.errors import DDCodecError


def test_bundled_cifar10_subset_is_the_default():
    ds = load_dataset()
    assert ds.spec == "cifar10-subset"
    assert tuple(ds.x_train.shape) == (5170, 3, 32, 32) and ds.x_train.dtype == torch.uint8
    assert tuple(ds.x_test.shape) == (1017, 3, 32, 32)
    assert ds.class_names[0] == "airplane" and ds.class_names[-1] == "truck"
    assert [int((ds.y_train == c).sum()) for c in range(10)][:3] == [521, 534, 497]
    assert ds.normalization.mean == (0.4914, 0.4822, 0.4465)
    x = ds.test_images()
    assert abs(float(x.mean())) < 0.3  # roughly centred by the standard normalisation


@pytest.mark.parametrize("layout", ["hwc", "chw"])
def test_npz_in_either_layout_loads_the_same(tmp_path, layout):
    ds = load_dataset(f"npz:{write_npz(tmp_path / 'a.npz', layout=layout)}")
    x, _ = make_arrays()
    assert ds.image_shape == (3, 8, 8) and ds.num_classes == 3
    assert torch.equal(ds.x_train, torch.from_numpy(x.transpose(0, 3, 1, 2)))
    # fitted normalisation maps the training set to zero mean, unit std per channel
    z = ds.train_images()
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-3)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)


def test_npz_grey_images_without_channel_axis(tmp_path):
    x, y = make_arrays(channels=1)
    np.savez(tmp_path / "g.npz", x_train=x[..., 0], y_train=y, x_test=x[..., 0], y_test=y)
    ds = load_dataset(f"npz:{tmp_path / 'g.npz'}")
    assert ds.channels == 1 and ds.image_shape == (1, 8, 8)


@pytest.mark.parametrize("change,message", [
    (lambda d: d.pop("y_test"), "lacks the arrays y_test"),
    (lambda d: d.update(x_train=d["x_train"].astype(np.float32)), "must be uint8"),
    (lambda d: d.update(y_train=d["y_train"][:-1]), "labels for"),
    (lambda d: d.update(x_test=d["x_test"][:, :4]), "x_test images are"),
    (lambda d: d.update(y_train=d["y_train"].astype(np.float32)), "must be integers"),
])
def test_malformed_npz_gets_a_clear_error(tmp_path, change, message):
    x, y = make_arrays()
    arrays = {"x_train": x, "y_train": y, "x_test": x, "y_test": y}
    change(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DDCodecError, match=message):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}")


def test_not_an_npz_and_missing_file(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(DDCodecError, match="not a readable npz"):
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")
    with pytest.raises(DDCodecError, match="not found"):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}")


@pytest.mark.parametrize("spec,message", [
    ("imagenet", "unknown data spec"), ("npz:", "needs a file"), ("imagefolder:", "needs a folder"),
    ("cifar10:extra", "unknown data spec"),
])
def test_bad_specs(spec, message):
    with pytest.raises(DDCodecError, match=message):
        load_dataset(spec)


def _write_images(folder, arrays, mode="RGB", size=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(arrays):
        im = Image.fromarray(a[..., 0] if mode == "L" else a, mode)
        if size:
            im = im.resize(size)
        im.save(folder / f"{i:03d}.png")


def test_imagefolder_with_holdout_split_keeps_pixels(tmp_path):
    x, y = make_arrays(per_class=10, classes=2, size=8)
    for c, name in enumerate(["cats", "dogs"]):
        _write_images(tmp_path / name, x[y == c])
    ds = load_dataset(f"imagefolder:{tmp_path}")
    assert ds.class_names == ["cats", "dogs"] and ds.image_shape == (3, 8, 8)
    assert len(ds.x_train) == 18 and len(ds.x_test) == 2  # every 10th image per class is held out
    assert torch.equal(ds.x_train[0], torch.from_numpy(x[0].transpose(2, 0, 1)))


def test_imagefolder_train_test_grey_and_resize(tmp_path):
    x, y = make_arrays(per_class=4, classes=2, size=8, channels=1)
    for split in ("train", "test"):
        for c in range(2):
            _write_images(tmp_path / split / f"c{c}", x[y == c], mode="L")
    ds = load_dataset(f"imagefolder:{tmp_path}")
    assert ds.channels == 1 and len(ds.x_train) == 8 and len(ds.x_test) == 8
    ds = load_dataset(f"imagefolder:{tmp_path}", resize=(12, 16))
    assert ds.image_shape == (1, 12, 16)


def test_imagefolder_problems(tmp_path):
    with pytest.raises(DDCodecError, match="not a directory"):
        load_dataset(f"imagefolder:{tmp_path / 'missing'}")
    x, y = make_arrays(per_class=10, classes=2, size=8)
    _write_images(tmp_path / "a", x[y == 0])
    with pytest.raises(DDCodecError, match="need at least 2"):
        load_dataset(f"imagefolder:{tmp_path}")
    (tmp_path / "b").mkdir()
    with pytest.raises(DDCodecError, match="holds no images"):
        load_dataset(f"imagefolder:{tmp_path}")
    _write_images(tmp_path / "b", x[y == 1], size=(10, 10))
    with pytest.raises(DDCodecError, match="different sizes; pass --resize"):
        load_dataset(f"imagefolder:{tmp_path}")
    assert load_dataset(f"imagefolder:{tmp_path}", resize=(8, 8)).image_shape == (3, 8, 8)
    (tmp_path / "b" / "broken.png").write_bytes(b"garbage")
    with pytest.raises(DDCodecError, match="cannot read image"):
        load_dataset(f"imagefolder:{tmp_path}", resize=(8, 8))


# --- torchvision datasets, from files written in torchvision's own on-disk formats -------------

def _idx(path, array):
    magic = {3: 0x0803, 1: 0x0801}[array.ndim]
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("spec,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_mnist_family_from_local_files(tmp_path, spec, folder):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    x, y = make_arrays(per_class=4, classes=10, size=28, channels=1)
    for prefix in ("train", "t10k"):
        _idx(raw / f"{prefix}-images-idx3-ubyte", x[..., 0])
        _idx(raw / f"{prefix}-labels-idx1-ubyte", y)
    ds = load_dataset(spec, data_root=tmp_path)
    assert ds.image_shape == (1, 28, 28) and ds.num_classes == 10 and len(ds.x_train) == 40
    assert torch.equal(ds.x_train[:, 0], torch.from_numpy(x[..., 0]))


def _cifar_files(root, name, label_key, classes, meta_name, meta_key, train_files, test_file):
    folder = root / name
    folder.mkdir(parents=True)
    x, y = make_arrays(per_class=3, classes=classes, size=32)
    flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
    for f in train_files + [test_file]:
        with open(folder / f, "wb") as handle:
            pickle.dump({"data": flat, label_key: y.tolist()}, handle)
    with open(folder / meta_name, "wb") as handle:
        pickle.dump({meta_key: [f"class{i}" for i in range(classes)]}, handle)
    return x


@pytest.mark.parametrize("spec", ["cifar10", "cifar100"])
def test_torchvision_cifar_from_local_files(tmp_path, monkeypatch, spec):
    import torchvision.datasets as tvd

    cls = tvd.CIFAR10 if spec == "cifar10" else tvd.CIFAR100
    # our files are not the real ones, so their md5 sums cannot match torchvision's list
    monkeypatch.setattr(cls, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tvd.cifar, "check_integrity", lambda *args, **kwargs: True)
    if spec == "cifar10":
        x = _cifar_files(tmp_path, "cifar-10-batches-py", "labels", 10, "batches.meta",
                         "label_names", [f"data_batch_{i}" for i in range(1, 6)], "test_batch")
    else:
        x = _cifar_files(tmp_path, "cifar-100-python", "fine_labels", 100, "meta",
                         "fine_label_names", ["train"], "test")
    ds = load_dataset(spec, data_root=tmp_path)
    assert ds.image_shape == (3, 32, 32) and ds.class_names[1] == "class1"
    assert torch.equal(ds.x_test, torch.from_numpy(x.transpose(0, 3, 1, 2)))
    assert ds.normalization.mean[0] == (0.4914 if spec == "cifar10" else 0.5071)


def test_torchvision_svhn_from_local_files(tmp_path, monkeypatch):
    import scipy.io
    import torchvision.datasets as tvd

    monkeypatch.setattr(tvd.SVHN, "_check_integrity", lambda self: True)
    x, y = make_arrays(per_class=2, classes=10, size=32)
    labels = np.where(y == 0, 10, y)  # SVHN stores digit 0 as label 10
    for split in ("train", "test"):
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat",
                         {"X": x.transpose(1, 2, 3, 0), "y": labels[:, None]})
    ds = load_dataset("svhn", data_root=tmp_path)
    assert ds.image_shape == (3, 32, 32) and torch.equal(ds.y_train, torch.from_numpy(y).long())


@pytest.mark.parametrize("spec", ["cifar10", "cifar100", "mnist", "fashion-mnist", "svhn"])
def test_missing_torchvision_data_says_where_and_how(tmp_path, spec):
    with pytest.raises(DDCodecError, match=r"not found .* under .*--download"):
        load_dataset(spec, data_root=tmp_path / "empty")


def test_data_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DDCODEC_DATA_ROOT", str(tmp_path / "envroot"))
    with pytest.raises(DDCodecError, match="envroot"):
        load_dataset("mnist")


def test_parse_size():
    assert parse_size("32") == (32, 32) and parse_size("24x40") == (24, 40)
    assert parse_size(None) is None
    for bad in ("x", "0", "3x4x5", "-2"):
        with pytest.raises(DDCodecError):
            parse_size(bad)


def test_image_folders_are_cached_and_a_changed_file_is_seen(tmp_path, monkeypatch):
    """The second load comes from the cache (keyed by names, sizes and dates), a touched file
    is read afresh, and loading reports progress."""
    from PIL import Image

    from ddcodec import events
    from ddcodec.data import folder_cache

    root = tmp_path / "tree"
    for split, n in (("train", 4), ("val", 2)):
        for c, colour in enumerate(((200, 0, 0), (0, 200, 0))):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                mode = "L" if i == 0 else "RGB"  # greyscale JPEGs are converted, as torchvision
                Image.new(mode, (8, 8), colour[c] if mode == "L" else colour).save(
                    folder / f"{i}.JPEG")
    seen = []
    with events.loading_progress(lambda done, total: seen.append((done, total))):
        first = load_dataset(f"imagefolder:{root}")
    assert seen[-1] == (12, 12) and first.x_train.shape == (8, 3, 8, 8)
    assert len(list(folder_cache.cache_dir().glob("imagefolder-*.pt"))) == 1
    # the second load reads the cache, not the images: overwrite one with bytes that decode to
    # nothing, keeping its size and time (the cache's key), and the load still succeeds
    image = root / "train" / "class0" / "1.JPEG"
    stat = image.stat()
    image.write_bytes(bytes(stat.st_size))
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = load_dataset(f"imagefolder:{root}")
    assert torch.equal(again.x_train, first.x_train)
    assert again.normalization == first.normalization
    Image.new("RGB", (8, 8), (9, 9, 9)).save(image)  # a real change is decoded again
    changed = load_dataset(f"imagefolder:{root}")
    assert not torch.equal(changed.x_train, first.x_train)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads Linux's VmRSS")
def test_a_cached_tree_is_mapped_so_a_process_holds_only_the_classes_it_reads(tmp_path):
    """A block's process must not hold the whole training split: after loading a cached tree
    and gathering one class's images, its resident memory has grown by far less than the
    split (108 MB here), and the mapped images equal the decoded ones."""
    import os
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    root = tmp_path / "tree"
    for split, n in (("train", 4), ("val", 1)):
        for c in range(16):
            folder = root / split / f"class{c:02d}"
            folder.mkdir(parents=True)
            for i in range(n):  # noise: PNG cannot shrink it, decoding is what costs
                Image.fromarray(rng.integers(0, 256, (768, 768, 3), dtype=np.uint8)).save(
                    folder / f"{i}.png", compress_level=0)
    decoded = load_dataset(f"imagefolder:{root}")  # decodes and writes the cache
    split_mb = decoded.x_train.numel() / 2 ** 20
    assert split_mb > 100
    script = (
        "import re, sys, torch, torchvision.datasets.folder, PIL.Image\n"
        "from ddcodec.data import folder_cache\n"
        "from ddcodec.data.datasets import load_dataset\n"
        "def rss():\n"
        "    return int(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())[1])\n"
        "before = rss()\n"
        f"ds = load_dataset('imagefolder:{root}')\n"
        "one = ds.x_train[ds.indices_of_class(3)].clone()\n"
        "print((rss() - before) / 1024, int(one.sum()))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ}, check=True)
    grown_mb, checksum = done.stdout.split()
    assert float(grown_mb) < 0.3 * split_mb, (grown_mb, split_mb)
    assert int(checksum) == int(decoded.x_train[decoded.indices_of_class(3)].sum())
