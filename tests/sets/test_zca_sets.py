"""ZCA-whitened sets (MTT, DATM, DD-Ranking --zca): the file records the whitening, `measure`
whitens the test images as the source method did, and `decode --unwhiten` exports plain images.
Without the whitening at test time, such a set scores near chance (mtt-distillation #11)."""

import json

import pytest
import torch

import ddcodec
from ddcodec.bitstream import ddz
from ddcodec.data.datasets import Normalization, load_dataset
from ddcodec.data.zca import zca_for
from ddcodec.distillation.random_subset import random_real_subset
from ddcodec.sets.setfile import DistilledSet
from ddcodec.training.protocol import MeasureConfig
from ddcodec.training.trainer import evaluate_set

SIDE = (16, 16)  # a 768 x 768 whitening: fitted in a second
UNIT = Normalization((0.0,) * 3, (1.0,) * 3)  # MTT and DD-Ranking whiten [0, 1] pixels
EPOCHS = 40
IPC = 30  # at 16 x 16, 40 epochs: 35 % whitened alike, 23 % tested unwhitened


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("zca-cache")


@pytest.fixture
def whitened(cache, monkeypatch):
    """Random real images, IPC per class, in the whitened space, as a ZCA set names them."""
    monkeypatch.setenv("DDCODEC_CACHE", str(cache))
    ds = load_dataset("cifar10-subset", resize=SIDE)
    zca = zca_for(ds, UNIT, 0.1)
    images, labels = random_real_subset(ds, IPC, 0, UNIT)
    provenance = {"method": "zca-test", "data": "cifar10-subset", "resize": list(SIDE)}
    white = DistilledSet(zca.whiten(images), labels, list(ds.class_names), UNIT,
                         {**provenance, "zca_eps": 0.1})
    return ds, zca, images, white


def test_measure_whitens_the_test_images_as_the_source_method(tmp_path, whitened):
    ds, zca, images, white = whitened
    path = tmp_path / "zca.ddz"
    path.write_bytes(ddz.encode(white)[0])
    assert ddcodec.info(path)["meta"]["zca_eps"] == "0.1"
    measured = ddcodec.measure(path, epochs=EPOCHS, runs=1, seed=0, device="cpu")
    # the same tensors trained directly, the test images whitened by hand (MTT's evaluation)
    config = MeasureConfig(epochs=EPOCHS, runs=1).eval_config(None, None)
    direct = evaluate_set(white.images, white.labels, zca.whiten(UNIT.normalize(ds.x_test)),
                          ds.y_test, 10, config, 1, 0, torch.device("cpu"))
    assert measured["accuracy_mean"] == pytest.approx(direct.mean, abs=0.02)
    # the trap the record removes: the same tensors tested on unwhitened images
    plain = DistilledSet(white.images, white.labels, white.class_names, UNIT,
                         {k: v for k, v in white.provenance.items() if k != "zca_eps"})
    unwhitened_test = ddcodec.measure(plain, epochs=EPOCHS, runs=1, seed=0, device="cpu")
    assert measured["accuracy_mean"] > unwhitened_test["accuracy_mean"] + 0.06, (
        measured["accuracy_mean"], unwhitened_test["accuracy_mean"])


def test_decode_unwhiten_gives_back_the_plain_images(tmp_path, run_cli, whitened):
    _, _, images, white = whitened
    path = tmp_path / "zca.ddz"
    path.write_bytes(ddz.encode(white)[0])
    code, _, err = run_cli("decode", str(path), "--unwhiten", "-o", str(tmp_path / "plain.pt"))
    assert code == 0, err
    plain = ddcodec.load_set(tmp_path / "plain.pt")
    assert plain.zca_eps is None and plain.provenance["unwhitened"] is True
    assert float((plain.images - images).abs().max()) < 1e-3
    code, _, err = run_cli("decode", str(path), "--unwhiten", "--format", "imagefolder",
                           "-o", str(tmp_path / "folder"))
    assert code == 1 and "--format pt or mtt" in err and not (tmp_path / "folder").exists()


def test_an_mtt_zca_set_records_its_whitening_and_keeps_it(tmp_path, run_cli):
    ds = load_dataset("cifar10-subset")
    index = torch.cat([ds.indices_of_class(c)[:2] for c in range(10)])
    images = torch.randn(20, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    folder = tmp_path / "run"
    folder.mkdir()
    torch.save(images, folder / "images_best.pt")
    torch.save(ds.y_train[index].clone(), folder / "labels_best.pt")
    code, _, err = run_cli("encode", str(folder), "--zca", "-o", str(tmp_path / "a.ddz"))
    assert code == 1 and "--zca needs --data" in err and not (tmp_path / "a.ddz").exists()
    code, _, err = run_cli("encode", str(folder), "--zca", "--data", "cifar10-subset", "-o",
                           str(tmp_path / "a.ddz"))
    assert code == 0, err
    info = ddcodec.info(tmp_path / "a.ddz")
    assert info["meta"]["zca_eps"] == "0.1" and info["normalization"]["std"] == [1.0] * 3
    assert info["pixels"]["lossless"] is True
    code, _, err = run_cli("decode", str(tmp_path / "a.ddz"), "--format", "mtt", "-o",
                           str(tmp_path / "back"))
    assert code == 0, err
    record = json.loads((tmp_path / "back" / "normalization.json").read_text())
    assert record["zca"]["eps"] == 0.1 and record["zca"]["data"] == "cifar10-subset"
    # the export reads back as the same whitened set, with no option repeated
    code, _, err = run_cli("encode", str(tmp_path / "back"), "-o", str(tmp_path / "b.ddz"))
    assert code == 0, err
    assert (tmp_path / "b.ddz").read_bytes() == (tmp_path / "a.ddz").read_bytes()


@pytest.mark.parametrize("args, message", [
    (("--zca", "--zca-eps", "-1"), "not a positive number"),
    (("--zca-eps", "nan"), "not a positive number"),
])
def test_a_bad_eps_is_one_line(tmp_path, run_cli, args, message):
    folder = tmp_path / "run"
    folder.mkdir()
    torch.save(torch.randn(10, 3, 32, 32), folder / "images_best.pt")
    torch.save(torch.arange(10), folder / "labels_best.pt")
    code, _, err = run_cli("encode", str(folder), *args, "--data", "cifar10-subset", "-o",
                           str(tmp_path / "a.ddz"))
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


def test_zca_is_refused_where_it_cannot_hold(tmp_path, run_cli):
    ds = load_dataset("cifar10-subset")
    folder = tmp_path / "pngs" / "airplane"
    folder.mkdir(parents=True)
    from ddcodec.data.grid import to_pil

    to_pil(ds.x_train[0]).save(folder / "0.png")
    code, _, err = run_cli("encode", str(tmp_path / "pngs"), "--zca", "--data",
                           "cifar10-subset", "-o", str(tmp_path / "a.ddz"))
    assert code == 1 and "--zca is for whitened tensors" in err
    plain = DistilledSet(UNIT.normalize(ds.x_train[:10]), torch.arange(10),
                         list(ds.class_names), UNIT, {"data": "cifar10-subset"})
    (tmp_path / "plain.ddz").write_bytes(ddz.encode(plain)[0])
    code, _, err = run_cli("decode", str(tmp_path / "plain.ddz"), "--unwhiten", "-o",
                           str(tmp_path / "x.pt"))
    assert code == 1 and "not ZCA-whitened" in err
