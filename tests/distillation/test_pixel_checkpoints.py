"""A pixel run keeps its state and resumes exactly: interrupted or finished, a run resumed to
more iterations gives the very tensors of a run straight to them (the convergence study's
sets from one run), and a checkpoint of other settings is refused in one line."""

from __future__ import annotations

import pytest
import torch

from ddcodec import api
from ddcodec.errors import DDCodecError
from conftest import write_npz

SETTINGS = dict(param="pixels", loss="dm", ipc=2, batch_real=4, device="cpu")


@pytest.fixture
def npz(tmp_path):
    return f"npz:{write_npz(tmp_path / 'data.npz', per_class=6)}"


def test_a_run_resumed_to_more_iterations_equals_a_run_straight_to_them(npz, tmp_path):
    straight = api.distill(npz, tmp_path / "six.pt", iterations=6, **SETTINGS)
    ckpt = tmp_path / "run.ckpt"
    first = api.distill(npz, tmp_path / "three.pt", iterations=3, checkpoint=ckpt,
                        checkpoint_every=2, keep_checkpoint=True, **SETTINGS)
    assert ckpt.is_file()  # saved at 2 and after the last iteration
    assert not torch.equal(first.images, straight.images)
    more = api.distill(npz, tmp_path / "more.pt", iterations=6, checkpoint=ckpt,
                       resume=True, **SETTINGS)
    assert torch.equal(more.images, straight.images)
    assert not ckpt.exists()  # removed once the set is written


def test_an_interrupted_run_resumes_exactly(npz, tmp_path):
    straight = api.distill(npz, tmp_path / "five.pt", iterations=5, **SETTINGS)
    ckpt = tmp_path / "cut.ckpt"
    seen = []

    def stop_after_three(i, loss):
        seen.append(i)
        if i == 2:  # a job's time limit: iteration 3 is lost, the checkpoint holds 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.distill(npz, tmp_path / "cut.pt", iterations=5, checkpoint=ckpt,
                    checkpoint_every=1, on_iteration=stop_after_three, **SETTINGS)
    assert not (tmp_path / "cut.pt").exists()
    resumed = api.distill(npz, tmp_path / "cut.pt", iterations=5, checkpoint=ckpt,
                          resume=True, **SETTINGS)
    assert torch.equal(resumed.images, straight.images)


def test_a_checkpoint_of_other_settings_or_more_iterations_is_refused(npz, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    api.distill(npz, tmp_path / "four.pt", iterations=4, checkpoint=ckpt, checkpoint_every=4,
                keep_checkpoint=True, **SETTINGS)
    with pytest.raises(DDCodecError, match=r"other settings \(batch_real\)"):
        api.distill(npz, tmp_path / "x.pt", iterations=6, checkpoint=ckpt, resume=True,
                    **{**SETTINGS, "batch_real": 3})
    with pytest.raises(DDCodecError, match="holds 4 iterations, more than --iterations 2"):
        api.distill(npz, tmp_path / "y.pt", iterations=2, checkpoint=ckpt, resume=True,
                    **SETTINGS)
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(DDCodecError, match="not a readable pixel checkpoint"):
        api.distill(npz, tmp_path / "z.pt", iterations=6, checkpoint=ckpt, resume=True,
                    **SETTINGS)
