"""A teacher run stopped between epochs goes on from its checkpoint to the very teacher an
unbroken run writes (hours on Tiny-ImageNet's CPU: a session's end must not lose them)."""

import pytest
import torch

import ddcodec
from conftest import write_npz
from ddcodec.errors import DDCodecError, Interrupted


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return write_npz(tmp_path_factory.mktemp("resume") / "tiny.npz", per_class=20)


def stop_after(epochs_done: int):
    """A stop (Ctrl-C) once `epochs_done` epochs have run and been saved."""
    def on_epoch(epoch: int) -> None:
        if epoch + 1 == epochs_done:
            raise KeyboardInterrupt
    return on_epoch


def test_a_stopped_teacher_resumes_to_the_same_teacher(npz, tmp_path):
    options = {"device": "cpu", "epochs": 4, "holdout": 0.2}
    whole = ddcodec.train_teacher(f"npz:{npz}", tmp_path / "whole.pt", **options)
    out = tmp_path / "t.pt"
    with pytest.raises(Interrupted, match="rerun with --resume"):  # Ctrl-C: what was saved
        ddcodec.train_teacher(f"npz:{npz}", out, checkpoint_every=1,
                              on_epoch=stop_after(2), **options)
    checkpoint = tmp_path / "t.pt.ckpt"
    assert not out.exists() and checkpoint.is_file()
    assert torch.load(checkpoint, weights_only=True)["trainer"]["epochs_done"] == 2
    seen = []
    resumed = ddcodec.train_teacher(f"npz:{npz}", out, checkpoint_every=1, resume=True,
                                    on_epoch=seen.append, **options)
    assert seen == [2, 3]  # only the epochs left ran
    assert resumed.info["holdout_accuracy"] == whole.info["holdout_accuracy"]
    assert resumed.info["epoch"] == whole.info["epoch"]
    assert resumed.info["test_accuracy"] == whole.info["test_accuracy"]
    assert all(torch.equal(resumed.state[k], whole.state[k]) for k in whole.state)
    assert not checkpoint.exists()  # removed once the teacher is written


def test_a_checkpoint_of_other_settings_or_none_is_refused(npz, tmp_path, run_cli):
    out = tmp_path / "t.pt"
    with pytest.raises(Interrupted):
        ddcodec.train_teacher(f"npz:{npz}", out, device="cpu", epochs=3, holdout=0.2,
                              checkpoint_every=1, on_epoch=stop_after(1))
    with pytest.raises(DDCodecError, match=r"other settings \(lr\)"):
        ddcodec.train_teacher(f"npz:{npz}", out, device="cpu", epochs=3, holdout=0.2,
                              lr=0.02, resume=True)
    code, _, err = run_cli("teacher", "--data", f"npz:{npz}", "-o", str(tmp_path / "u.pt"),
                           "--epochs", "3", "--resume", "--device", "cpu")
    assert code == 1 and "no teacher checkpoint to resume from" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "u.pt").exists()
    code, _, err = run_cli("teacher", "--data", f"npz:{npz}", "-o", str(tmp_path / "v.pt"),
                           "--checkpoint", str(tmp_path / "v.ckpt"), "--device", "cpu")
    assert code == 1 and "--checkpoint-every N" in err and not (tmp_path / "v.pt").exists()
    code, _, err = run_cli("teacher", "--data", f"npz:{npz}", "-o", str(out), "--epochs", "3",
                           "--holdout", "0.2", "--resume", "--device", "cpu", "-q")
    assert code == 0 and out.is_file() and not (tmp_path / "t.pt.ckpt").exists()
