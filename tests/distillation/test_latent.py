"""Latent distillation end to end on tiny data: phases, payload, checkpoints and resume."""

import json

import pytest
import torch

from conftest import write_npz
from ddcodec import api
from ddcodec.data.datasets import load_dataset
from ddcodec.distillation import DistillConfig, distill
from ddcodec.errors import DDCodecError, Interrupted

CPU = torch.device("cpu")
TINY = dict(param="latent", spc=3, fit_iterations=24, fit_candidates=3, iterations=6,
            batch_real=8)


class Killed(Exception):
    pass


def kill_at(phase, step):
    def hook(event):
        if event.kind == "step" and (event.phase, event.done) == (phase, step):
            raise Killed
    return hook


def assert_same_sets(a, b):
    assert torch.equal(a.images, b.images)
    assert a.provenance["estimated_bits"] == b.provenance["estimated_bits"]
    for ga, gb in zip(a.codec.groups, b.codec.groups):
        assert all(torch.equal(x, y) for x, y in zip(ga.latents, gb.latents))
        for (_, _, qa), (_, _, qb) in zip(ga.weights.in_order(), gb.weights.in_order()):
            assert torch.equal(qa.q, qb.q) and qa.step_log2 == qb.step_log2


@pytest.fixture
def tiny(tiny_npz):
    return load_dataset(f"npz:{tiny_npz}")


def test_latent_set_payload(tiny):
    s = distill(tiny, DistillConfig.of(**TINY), CPU)
    assert s.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    bits = s.provenance["estimated_bits"]
    assert set(bits) == {"latents", "arm", "synthesis", "upsampler", "labels", "total"}
    assert bits["total"] == pytest.approx(sum(v for k, v in bits.items() if k != "total"))
    assert all(v > 0 for v in bits.values())
    groups = s.codec.groups
    assert len(groups) == 3 and [g.classes for g in groups] == [(0,), (1,), (2,)]
    assert s.codec.estimated_bits.to_dict() == bits
    for g in groups:
        assert [tuple(x.shape) for x in g.latents] == [(3, 1, 8, 8), (3, 1, 4, 4),
                                                       (3, 1, 2, 2), (3, 1, 1, 1)]
        assert all(x.dtype == torch.int16 and x.min() >= -64 and x.max() <= 63
                   for x in g.latents)
        arm = g.weights.modules["arm"]
        assert -8 <= arm["weight"].step_log2 <= 0  # fits the fixed-point ARM
        assert -16 <= arm["bias"].step_log2 <= 0
    # the images are what the decoder gives, in 8-bit steps, normalised
    pixels = s.normalization.denormalize(s.images) * 255
    assert torch.allclose(pixels, pixels.round(), atol=1e-3)
    assert s.provenance["fit_psnr"] > 10


def test_shared_decoder_and_grey_28x28(tmp_path):
    path = write_npz(tmp_path / "grey.npz", size=28, channels=1)
    s = api.distill(f"npz:{path}", **{**TINY, "spc": 2, "shared_decoder": True})
    assert s.images.shape == (6, 1, 28, 28)
    (group,) = s.codec.groups
    assert group.classes == (0, 1, 2) and group.latents[0].shape == (6, 1, 28, 28)


def test_resume_after_a_kill_equals_an_uninterrupted_run(tiny, tmp_path):
    reference = distill(tiny, DistillConfig.of(**TINY), CPU)
    checkpoint = tmp_path / "run.ckpt"
    for phase, step in ((1, 7), (2, 4)):  # killed after a warm-up stage and in phase 2
        checkpoint.unlink(missing_ok=True)
        with pytest.raises(Killed):
            distill(tiny, DistillConfig.of(**TINY), CPU, checkpoint=checkpoint,
                    checkpoint_every=4, on_progress=kill_at(phase, step))
        assert checkpoint.exists()
        resumed = distill(tiny, DistillConfig.of(**TINY), CPU, checkpoint=checkpoint,
                          checkpoint_every=4, resume=True)
        assert_same_sets(reference, resumed)


def test_ctrl_c_finishes_the_step_saves_and_resumes(tiny, tmp_path):
    from ddcodec.distillation.latent import LatentTrainer

    reference = distill(tiny, DistillConfig.of(**TINY), CPU)
    checkpoint = tmp_path / "run.ckpt"
    trainer = LatentTrainer(tiny, DistillConfig.of(**TINY), CPU, checkpoint)

    def press_ctrl_c(event):
        if event.kind == "step" and (event.phase, event.done) == (2, 2):
            trainer._stop_requested = True  # what the SIGINT handler does

    trainer.on_progress = press_ctrl_c
    with pytest.raises(Interrupted, match="--resume"):
        trainer.run()
    resumed = distill(tiny, DistillConfig.of(**TINY), CPU, checkpoint=checkpoint, resume=True)
    assert_same_sets(reference, resumed)


def test_resume_refuses_other_settings_or_no_checkpoint(tiny, tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    with pytest.raises(DDCodecError, match="no checkpoint"):
        distill(tiny, DistillConfig.of(**TINY), CPU, checkpoint=checkpoint, resume=True)
    with pytest.raises(Killed):
        distill(tiny, DistillConfig.of(**TINY), CPU, checkpoint=checkpoint, checkpoint_every=1,
                on_progress=kill_at(1, 3))
    with pytest.raises(DDCodecError, match="other settings.*lmbda"):
        distill(tiny, DistillConfig.of(**{**TINY, "lmbda": 5.0}), CPU, checkpoint=checkpoint,
                resume=True)


def test_cli_latent_run_json_and_checkpoint_cleanup(run_cli, tmp_path, tiny_npz):
    out = tmp_path / "lat.pt"
    code, stdout, _ = run_cli("distill", "--data", f"npz:{tiny_npz}", "--param", "latent",
                              "--spc", "2", "--fit-iterations", "16", "--iterations", "2",
                              "--batch-real", "4", "--checkpoint-every", "5", "-o", str(out),
                              "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["method"] == "latent-dm" and summary["num_images"] == 6
    assert summary["estimated_bpc"] == pytest.approx(
        summary["provenance"]["estimated_bits"]["total"] / 3)
    assert not (tmp_path / "lat.pt.ckpt").exists()  # removed once the set is written
    code, stdout, _ = run_cli("measure", str(out), "--epochs", "2", "--runs", "1", "--json")
    report = json.loads(stdout)
    assert code == 0 and report["estimated_bpc"] == pytest.approx(summary["estimated_bpc"])


def test_bad_latent_options(run_cli, tmp_path, tiny_npz):
    base = ("distill", "--data", f"npz:{tiny_npz}", "--param", "latent", "-o",
            str(tmp_path / "x.pt"))
    code, _, err = run_cli(*base, "--decoder", "v99")
    assert code == 1 and "unknown decoder preset" in err
    code, _, err = run_cli(*base, "--loss", "none")
    assert code == 1 and "needs a utility loss" in err
    code, _, err = run_cli(*base, "--resume")
    assert code == 1 and "no checkpoint" in err
    assert run_cli(*base, "--arm-context", "12")[0] == 2
