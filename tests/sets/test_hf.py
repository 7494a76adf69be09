"""Hugging Face datasets: `decode --format hf` writes what `datasets.load_from_disk` reads, with
its provenance in the info, and `encode --from hf` reads it (or a Parquet set) back to the same
file, bit for bit."""

import builtins
import json

import numpy as np
import pytest
import torch

import ddcodec
from ddcodec.bitstream import ddz
from ddcodec.data.datasets import STANDARD_NORMALIZATION, load_dataset
from ddcodec.data.grid import to_pil
from ddcodec.errors import DDCodecError
from ddcodec.sets.hf import METADATA_PREFIX, hf_datasets
from ddcodec.sets.setfile import DistilledSet

datasets = pytest.importorskip("datasets")
CIFAR = STANDARD_NORMALIZATION["cifar10"]


@pytest.fixture(scope="module")
def real():
    ds = load_dataset("cifar10-subset")
    index = torch.cat([ds.indices_of_class(c)[:2] for c in range(10)])
    return ds, index


def test_an_8bit_file_round_trips_through_a_saved_dataset(tmp_path, run_cli, real):
    ds, index = real
    distilled = DistilledSet(CIFAR.normalize(ds.x_train[index]), ds.y_train[index].clone(),
                             list(ds.class_names), CIFAR,
                             {"method": "random-real", "data": "cifar10-subset"})
    (tmp_path / "a.ddz").write_bytes(ddz.encode(distilled)[0])
    code, _, err = run_cli("decode", str(tmp_path / "a.ddz"), "--format", "hf", "-o",
                           str(tmp_path / "hf"))
    assert code == 0, err
    table = datasets.load_from_disk(str(tmp_path / "hf"))
    assert table.column_names == ["image", "label"] and table.num_rows == 20
    assert table.features["label"].names == list(ds.class_names)
    assert torch.equal(torch.as_tensor(list(table["label"])), ds.y_train[index])
    first = torch.from_numpy(np.array(table[0]["image"])).permute(2, 0, 1)
    assert torch.equal(first, ds.x_train[index[0]])
    meta = json.loads(table.info.description.split(METADATA_PREFIX)[1])
    assert meta["provenance"] == {"data": "cifar10-subset", "method": "random-real"}
    code, _, err = run_cli("encode", str(tmp_path / "hf"), "-o", str(tmp_path / "b.ddz"))
    assert code == 0, err
    assert (tmp_path / "b.ddz").read_bytes() == (tmp_path / "a.ddz").read_bytes()


def test_float_images_and_soft_labels_keep_their_values(tmp_path, run_cli, real):
    ds, index = real
    g = torch.Generator().manual_seed(0)
    images = CIFAR.normalize(ds.x_train[index]) + 0.1 * torch.randn(20, 3, 32, 32, generator=g)
    rows = torch.softmax(torch.randn(20, 10, generator=g), 1)
    from ddcodec.labels.rungs.float16 import as_float16

    distilled = DistilledSet(images, ds.y_train[index].clone(), list(ds.class_names), CIFAR,
                             {"method": "learnt", "data": "cifar10-subset", "syn_lr": 0.01},
                             soft_labels=as_float16(rows, temperature=4.0, loss="kl"))
    (tmp_path / "a.ddz").write_bytes(ddz.encode(distilled)[0])
    code, _, err = run_cli("decode", str(tmp_path / "a.ddz"), "--format", "hf", "-o",
                           str(tmp_path / "hf"))
    assert code == 0, err
    table = datasets.load_from_disk(str(tmp_path / "hf")).with_format("torch")
    assert table.column_names == ["image", "label", "soft_label"]
    decoded = ddcodec.decode(tmp_path / "a.ddz").to_set()
    assert torch.equal(table[:]["image"], decoded.images)  # exact floats, not PNG
    assert torch.equal(table[:]["soft_label"], decoded.soft_labels.probabilities)
    code, _, err = run_cli("encode", str(tmp_path / "hf"), "-o", str(tmp_path / "b.ddz"))
    assert code == 0, err
    assert (tmp_path / "b.ddz").read_bytes() == (tmp_path / "a.ddz").read_bytes()
    back = ddcodec.decode(tmp_path / "b.ddz").to_set()
    assert back.soft_labels.temperature == 4.0 and back.soft_labels.loss == "kl"
    assert back.provenance["syn_lr"] == 0.01


def test_per_epoch_labels_keep_their_views(tmp_path, run_cli, real):
    from ddcodec.labels.rungs.float16 import as_float16
    from ddcodec.names import DEFAULT_STRATEGY

    ds, index = real
    rows = torch.softmax(torch.randn(3 * 20, 10, generator=torch.Generator().manual_seed(2)), 1)
    soft = as_float16(rows, temperature=1.0, epochs=3, view_seed=5,
                      view_strategy=DEFAULT_STRATEGY)
    distilled = DistilledSet(CIFAR.normalize(ds.x_train[index]), ds.y_train[index].clone(),
                             list(ds.class_names), CIFAR, {"data": "cifar10-subset"},
                             soft_labels=soft)
    (tmp_path / "a.ddz").write_bytes(ddz.encode(distilled)[0])
    assert run_cli("decode", str(tmp_path / "a.ddz"), "--format", "hf", "-o",
                   str(tmp_path / "hf"))[0] == 0
    table = datasets.load_from_disk(str(tmp_path / "hf")).with_format("torch")
    assert table[:]["soft_label"].shape == (20, 3, 10)  # per image: its row at every epoch
    code, _, err = run_cli("encode", str(tmp_path / "hf"), "-o", str(tmp_path / "b.ddz"))
    assert code == 0, err
    assert (tmp_path / "b.ddz").read_bytes() == (tmp_path / "a.ddz").read_bytes()


def test_a_parquet_set_from_elsewhere_is_read(tmp_path, run_cli, real):
    ds, index = real
    order = torch.randperm(20, generator=torch.Generator().manual_seed(1))
    table = datasets.Dataset.from_dict(
        {"image": [to_pil(ds.x_train[i]) for i in index[order]],
         "label": ds.y_train[index][order].tolist()},
        features=datasets.Features({"image": datasets.Image(),
                                    "label": datasets.Value("int64")}))
    table.to_parquet(str(tmp_path / "train.parquet"))
    code, _, err = run_cli("encode", str(tmp_path / "train.parquet"), "-o",
                           str(tmp_path / "p.ddz"))
    assert code == 1 and "--normalization or --data" in err
    code, _, err = run_cli("encode", str(tmp_path / "train.parquet"), "--data",
                           "cifar10-subset", "-o", str(tmp_path / "p.ddz"))
    assert code == 0, err
    decoded = ddcodec.decode(tmp_path / "p.ddz")
    want = torch.argsort(ds.y_train[index][order], stable=True)
    assert torch.equal(decoded.images, ds.x_train[index[order]][want])
    assert decoded.header.class_names == list(ds.class_names)  # from --data
    assert "8-bit" in ddcodec.info(tmp_path / "p.ddz")["pixels"]["coding"]


def test_bad_datasets_get_one_line(tmp_path, run_cli, real):
    ds, index = real
    datasets.Dataset.from_dict({"image": [to_pil(ds.x_train[i]) for i in index[:4]]},
                               features=datasets.Features({"image": datasets.Image()})
                               ).to_parquet(str(tmp_path / "nolabel.parquet"))
    code, _, err = run_cli("encode", str(tmp_path / "nolabel.parquet"), "--data",
                           "cifar10-subset", "-o", str(tmp_path / "x.ddz"))
    assert code == 1 and "no label column" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    code, _, err = run_cli("encode", str(tmp_path / "broken.parquet"), "--data",
                           "cifar10-subset", "-o", str(tmp_path / "x.ddz"))
    assert code == 1 and "not a readable Hugging Face dataset" in err
    assert not (tmp_path / "x.ddz").exists()


def test_without_datasets_the_option_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("no datasets")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(DDCodecError, match=r"pip install 'ddcodec\[hf\]'"):
        hf_datasets()


def test_options_that_do_not_apply_are_refused(tmp_path, run_cli, real):
    ds, index = real
    table = datasets.Dataset.from_dict(
        {"image": [to_pil(ds.x_train[i]) for i in index], "label": ds.y_train[index].tolist()},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}))
    table.to_parquet(str(tmp_path / "t.parquet"))
    code, _, err = run_cli("encode", str(tmp_path / "t.parquet"), "--data", "cifar10-subset",
                           "--labels", str(tmp_path / "t.parquet"), "-o", str(tmp_path / "x.ddz"))
    assert code == 1 and "--labels is for tensor files" in err
    code, _, err = run_cli("encode", str(tmp_path / "t.parquet"), "--data", "cifar10-subset",
                           "--label-codec", "vq", "-o", str(tmp_path / "x.ddz"))
    assert code == 1 and "no soft labels to re-code" in err
    assert not (tmp_path / "x.ddz").exists()
