"""`measure --checkpoint`: a measurement of hours (1000 epochs x 5 on CPU) stopped part-way goes
on from its file to the figures an unbroken one gives."""

import pytest

from ddcodec import api
from ddcodec.errors import DDCodecError, Interrupted
from ddcodec.training import checkpoint as checkpoints

EPOCHS, RUNS = 4, 2


@pytest.fixture(scope="module")
def random_set(tmp_path_factory):
    path = tmp_path_factory.mktemp("set") / "random.pt"
    api.distill("cifar10-subset", path, device="cpu", loss="none", ipc=2, seed=0)
    return path


def _stopped(random_set, kept, run: int, epoch: int) -> None:
    """A measurement with a checkpoint, stopped after network `run`'s epoch `epoch`."""
    def on_epoch(r: int, e: int) -> None:
        if (r, e) == (run, epoch):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="the same command goes on from it"):
        api.measure(random_set, epochs=EPOCHS, runs=RUNS, device="cpu", checkpoint=kept,
                    on_epoch=on_epoch)
    assert kept.is_file()


def test_a_stopped_measurement_goes_on_to_the_unbroken_figures(random_set, tmp_path,
                                                               monkeypatch):
    monkeypatch.setattr(checkpoints, "SAVE_EVERY_S", 0.0)  # save after every epoch
    unbroken = api.measure(random_set, epochs=EPOCHS, runs=RUNS, device="cpu")
    kept = tmp_path / "measure.ckpt"
    _stopped(random_set, kept, 1, 1)  # in the second network, its second epoch saved
    epochs_run = []
    resumed = api.measure(random_set, epochs=EPOCHS, runs=RUNS, device="cpu", checkpoint=kept,
                          on_epoch=lambda r, e: epochs_run.append((r, e)))
    assert epochs_run == [(1, 2), (1, 3)]  # neither the first network nor two epochs again
    assert resumed["accuracies"] == unbroken["accuracies"]  # bit for bit
    assert resumed["resumed_from_seconds"] > 0 and resumed["seconds"] > 0
    assert not kept.exists()  # done: nothing left to go on from


def test_a_checkpoint_serves_a_longer_count_of_runs(random_set, tmp_path, monkeypatch):
    """Network s is the same in a measurement of 1 run and of 2: the longer one keeps it."""
    monkeypatch.setattr(checkpoints, "SAVE_EVERY_S", 0.0)
    kept = tmp_path / "measure.ckpt"
    _stopped(random_set, kept, 1, 0)
    one = api.measure(random_set, epochs=EPOCHS, runs=1, device="cpu")
    epochs_run = []
    both = api.measure(random_set, epochs=EPOCHS, runs=RUNS, device="cpu", checkpoint=kept,
                       on_epoch=lambda r, e: epochs_run.append((r, e)))
    assert both["accuracies"][0] == one["accuracies"][0]
    assert [r for r, _ in epochs_run] == [1, 1, 1]


def test_a_checkpoint_of_another_protocol_is_refused(random_set, tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "SAVE_EVERY_S", 0.0)
    kept = tmp_path / "measure.ckpt"
    _stopped(random_set, kept, 0, 1)
    with pytest.raises(DDCodecError, match="another set, protocol or device"):
        api.measure(random_set, epochs=EPOCHS + 1, runs=RUNS, device="cpu", checkpoint=kept)
    kept.write_bytes(b"not a checkpoint")
    with pytest.raises(DDCodecError, match="not a readable measure checkpoint"):
        api.measure(random_set, epochs=EPOCHS, runs=RUNS, device="cpu", checkpoint=kept)


def test_the_cli_goes_on_from_a_checkpoint_or_refuses_it_in_one_line(run_cli, random_set,
                                                                     tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(checkpoints, "SAVE_EVERY_S", 0.0)
    kept = tmp_path / "measure.ckpt"
    _stopped(random_set, kept, 1, 1)
    args = ["measure", str(random_set), "--runs", str(RUNS), "--device", "cpu",
            "--checkpoint", str(kept), "--json"]
    code, out, err = run_cli(*args, "--epochs", str(EPOCHS + 1))
    assert code == 1 and kept.is_file()
    assert err.strip().splitlines() == [f"ddcodec: error: {kept} was saved while measuring "
                                        "another set, protocol or device: remove it, or "
                                        "measure what it was made for"]
    code, out, err = run_cli(*args, "--epochs", str(EPOCHS))
    assert code == 0, err
    assert json.loads(out)["resumed_from_seconds"] > 0 and not kept.exists()
