"""Other methods' sets priced in honest bits: MTT/DATM outputs, DD-Ranking tensors and
ImageFolders are read, coded exactly, and decode to the very tensors they were."""

import json

import pytest
import torch

import ddcodec
from ddcodec.data.datasets import STANDARD_NORMALIZATION, load_dataset
from ddcodec.errors import DDCodecError
from ddcodec.sets.importers import ImportOptions, import_set, parse_normalization

CIFAR = STANDARD_NORMALIZATION["cifar10"]


@pytest.fixture(scope="module")
def learnt():
    """An MTT-style learnt set: real images plus noise, normalised, off the 8-bit grid, in
    shuffled class order (as a tool may save them)."""
    ds = load_dataset("cifar10-subset")
    index = torch.cat([ds.indices_of_class(c)[:3] for c in range(10)])
    g = torch.Generator().manual_seed(0)
    images = CIFAR.normalize(ds.x_train[index]) + 0.2 * torch.randn(30, 3, 32, 32, generator=g)
    order = torch.randperm(30, generator=g)
    return images[order].contiguous(), ds.y_train[index][order].contiguous()


def write_mtt(folder, images, labels, lr=None):
    folder.mkdir()
    torch.save(images, folder / "images_best.pt")
    torch.save(labels, folder / "labels_best.pt")
    if lr is not None:
        torch.save(torch.tensor(lr), folder / "lr_best.pt")
    return folder


def class_sorted(images, labels):
    order = torch.argsort(labels, stable=True)
    return images[order], labels[order]


def test_an_mtt_float_set_round_trips_losslessly(tmp_path, run_cli, learnt):
    images, labels = learnt
    folder = write_mtt(tmp_path / "run", images, labels, lr=0.0123)
    code, out, err = run_cli("encode", str(folder), "--from", "mtt", "--normalization",
                             "cifar10", "--data", "cifar10-subset", "-o",
                             str(tmp_path / "run.ddz"))
    assert code == 0, err
    assert "float, exact" in err
    code, _, err = run_cli("decode", str(tmp_path / "run.ddz"), "--format", "mtt", "-o",
                           str(tmp_path / "back"))
    assert code == 0, err
    back = torch.load(tmp_path / "back" / "images_best.pt", weights_only=True)
    want_images, want_labels = class_sorted(images, labels)
    assert float((back - want_images).abs().max()) == 0.0
    assert torch.equal(back.view(torch.int32), want_images.view(torch.int32))
    assert torch.equal(torch.load(tmp_path / "back" / "labels_best.pt"), want_labels)
    assert float(torch.load(tmp_path / "back" / "lr_best.pt")) == pytest.approx(0.0123)
    info = ddcodec.info(tmp_path / "run.ddz")
    assert info["pixels"] == {"coding": "float, exact", "lossless": True}
    assert info["class_names"][0] == "airplane"  # from --data


def test_the_images_file_alone_finds_its_labels(tmp_path, learnt):
    folder = write_mtt(tmp_path / "run", *learnt)
    distilled = import_set(folder / "images_best.pt", options=ImportOptions("cifar10"))
    assert distilled.provenance["method"] == "imported-mtt"
    assert distilled.provenance["normalization_source"] == "cifar10"
    assert any("reordered by class" in note for note in distilled.notes)
    assert distilled.class_names == [f"class_{i}" for i in range(10)]


def test_dd_ranking_tensors_and_class_major_labels(tmp_path, learnt):
    images, labels = class_sorted(*learnt)
    torch.save({"image_tensor": images, "hard_labels": labels}, tmp_path / "ddr.pt")
    data, report = ddcodec.encode(tmp_path / "ddr.pt", normalization="cifar10")
    decoded = ddcodec.decode(data).to_set()
    assert torch.equal(decoded.images, images) and torch.equal(decoded.labels, labels)
    torch.save(images, tmp_path / "bare.pt")  # no labels: DD-Ranking's class-major rule
    bare = import_set(tmp_path / "bare.pt", options=ImportOptions("cifar10",
                                                                  data="cifar10-subset"))
    assert bare.labels.tolist() == torch.arange(10).repeat_interleave(3).tolist()
    with pytest.raises(DDCodecError, match="has no labels"):
        import_set(tmp_path / "bare.pt", options=ImportOptions("cifar10"))


def test_an_exported_imagefolder_comes_back_as_the_same_pixels(tmp_path, run_cli):
    code, _, err = run_cli("distill", "--loss", "none", "--ipc", "2", "-o",
                           str(tmp_path / "r.pt"), "-q")
    assert code == 0, err
    run_cli("encode", str(tmp_path / "r.pt"), "-q")
    code, _, err = run_cli("decode", str(tmp_path / "r.ddz"), "--format", "imagefolder", "-o",
                           str(tmp_path / "folder"))
    assert code == 0, err
    code, _, err = run_cli("encode", str(tmp_path / "folder"), "--data", "cifar10-subset",
                           "-o", str(tmp_path / "again.ddz"))
    assert code == 0, err
    assert "8-bit grid, exact" in err
    first = ddcodec.decode(tmp_path / "r.ddz")
    again = ddcodec.decode(tmp_path / "again.ddz")
    assert torch.equal(first.images, again.images)
    assert again.header.class_names == first.header.class_names  # classes.json of the export
    # the pixels section is the same bytes; only the header's provenance differs
    assert again.section_bytes["pixels"] == first.section_bytes["pixels"]


def test_in_memory_sets_encode_and_measure(learnt):
    images, labels = class_sorted(*learnt)
    distilled = ddcodec.DistilledSet(images, labels, [str(i) for i in range(10)], CIFAR,
                                     {"data": "cifar10-subset"})
    data, report = ddcodec.encode(distilled)
    assert report["pixels"]["coding"] == "float, exact"
    result = ddcodec.measure(distilled, epochs=2, runs=1, device="cpu")
    assert result["file_bytes"] == len(data) and result["num_images"] == 30
    x, y = ddcodec.test_split("cifar10-subset", normalization=CIFAR)
    assert x.dtype == torch.float32 and len(x) == len(y) == result["num_test"]


@pytest.mark.parametrize("spec, message", [
    ("0.5,0.5", None), ("0.1,0.2,0.3,0.4,0.5,0.6", None), ("imagenet", None),
    ("0.5", "give 2 or 6 numbers"), ("0.5,0", "std must be finite and > 0"),
    ("cifar11", "use a dataset name"), ("mnist", "has 1 channels; the images have 3"),
])
def test_normalisation_specs(spec, message):
    if message is None:
        assert len(parse_normalization(spec, 3).mean) == 3
    else:
        with pytest.raises(DDCodecError, match=message):
            parse_normalization(spec, 3)


def test_a_normalisation_file(tmp_path):
    path = tmp_path / "n.json"
    path.write_text(json.dumps({"mean": [0.1, 0.2, 0.3], "std": [0.5, 0.5, 0.5]}))
    assert parse_normalization(str(path), 3).std == (0.5, 0.5, 0.5)
    path.write_text("{}")
    with pytest.raises(DDCodecError, match="not a JSON file with 'mean' and 'std'"):
        parse_normalization(str(path), 3)


def test_bad_imports_get_one_clear_line(tmp_path, run_cli, learnt):
    images, labels = learnt
    folder = write_mtt(tmp_path / "run", images, labels)
    code, _, err = run_cli("encode", str(folder))
    assert code != 0 and "normalised: say how with --normalization" in err
    (tmp_path / "run" / "labels_best.pt").unlink()
    code, _, err = run_cli("encode", str(folder), "--normalization", "cifar10")
    assert code != 0 and "labels_best.pt not found" in err
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    code, _, err = run_cli("encode", str(tmp_path / "junk.pt"))
    assert code != 0 and "not a readable torch file" in err
    torch.save({"image_tensor": images[:4], "hard_labels": labels[:3]}, tmp_path / "bad.pt")
    code, _, err = run_cli("encode", str(tmp_path / "bad.pt"), "--normalization", "cifar10")
    assert code != 0 and "one label per image" in err
    for text in (err,):
        assert "Traceback" not in text and len(text.strip().splitlines()) == 1
