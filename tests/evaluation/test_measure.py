import pytest
import torch

from ddcodec import api
from ddcodec.data.datasets import load_dataset
from ddcodec.errors import DDCodecError
from ddcodec.training.trainer import EvalConfig, evaluate_set


def test_measure_on_a_tiny_set_beats_chance(tmp_path, tiny_npz):
    path = tmp_path / "set.pt"
    api.distill(f"npz:{tiny_npz}", path, loss="none", ipc=5)
    report = api.measure(path, epochs=30, runs=2, device="cpu")
    assert report["runs"] == 2 and len(report["accuracies"]) == 2
    assert report["accuracy_mean"] > 0.6  # three classes: chance is 1/3
    assert report["file_bytes"] == path.stat().st_size
    assert report["bpc"] == pytest.approx(8 * report["file_bytes"] / 3)
    assert report["num_images"] == 15 and report["num_classes"] == 3
    assert report["protocol"]["lr"] == 0.01 and report["protocol"]["dsa"] is True


def test_real_cifar_subset_trains_above_chance(tmp_path):
    path = tmp_path / "random10.pt"
    api.distill("cifar10-subset", path, loss="none", ipc=10)
    report = api.measure(path, epochs=25, runs=1, device="cpu")
    assert report["accuracy_mean"] > 0.15  # chance is 0.10 on 1,017 real test images


def test_runs_are_reproducible_and_seeded(tiny_npz):
    ds = load_dataset(f"npz:{tiny_npz}")
    x, y = ds.train_images()[::4], ds.y_train[::4]
    config = EvalConfig(epochs=3)
    args = (x, y, ds.test_images(), ds.y_test, 3, config)
    a = evaluate_set(*args, runs=2, seed=0, device=torch.device("cpu"))
    b = evaluate_set(*args, runs=2, seed=0, device=torch.device("cpu"))
    assert a.accuracies == b.accuracies and a.seeds == [0, 1]


def test_lr_is_decayed_at_half_time():
    from ddcodec.training.trainer import learning_rate

    schedule = [learning_rate(EvalConfig(epochs=4), e) for e in range(4)]
    assert schedule == [0.01, 0.01, pytest.approx(0.001), pytest.approx(0.001)]
    assert learning_rate(EvalConfig(epochs=1), 0) == 0.01  # one epoch: no decay
    odd = [learning_rate(EvalConfig(epochs=5, lr=0.1), e) for e in range(5)]
    assert odd[:2] == [0.1, 0.1] and odd[2:] == [pytest.approx(0.01)] * 3


def test_measure_refuses_mismatched_test_data(tmp_path, tiny_npz):
    path = tmp_path / "set.pt"
    api.distill(f"npz:{tiny_npz}", path, loss="none", ipc=2)
    with pytest.raises(DDCodecError, match="holds 3 classes"):
        api.measure(path, epochs=1, runs=1, data="cifar10-subset")


def test_measure_options_reach_the_protocol(run_cli, tmp_path, tiny_npz):
    import json

    path = tmp_path / "set.pt"
    api.distill(f"npz:{tiny_npz}", path, loss="none", ipc=2)
    code, out, _ = run_cli("measure", str(path), "--epochs", "2", "--runs", "1", "--no-dsa",
                           "--lr", "0.05", "--batch-size", "4", "--json")
    protocol = json.loads(out)["protocol"]
    assert code == 0 and protocol["dsa"] is False and protocol["lr"] == 0.05
    assert protocol["batch_size"] == 4 and protocol["lr_schedule"] == "x0.1 at epoch 1"
    report = api.measure(path, epochs=2, runs=1, dsa=True)  # keyword overrides in the API
    assert report["protocol"]["dsa"] is True and report["protocol"]["lr"] == 0.01
    with pytest.raises(DDCodecError, match="measure: "):
        api.measure(path, epoch=2)
