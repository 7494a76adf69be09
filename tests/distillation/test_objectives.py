"""Gradient and trajectory matching next to distribution matching: each objective improves on a
tiny problem and sends gradients into the latents; experts save and load; MTT's learnt student
learning rate is stored and used by measure."""

import json

import pytest
import torch

from conftest import write_npz
from ddcodec import api
from ddcodec.codec.latents import LatentLayout
from ddcodec.codec.model import LatentBank, Proxy
from ddcodec.data.datasets import load_dataset
from ddcodec.distillation import DistillConfig, distill, resolve
from ddcodec.distillation.experts import ExpertBuffer, ExpertConfig, train_experts
from ddcodec.distillation.latent import codec_config
from ddcodec.distillation.objectives import (gradient_distance, gradient_matching_loops,
                                             make_objective)
from ddcodec.distillation.random_subset import random_real_subset
from ddcodec.errors import DDCodecError
from ddcodec.training.networks import seeded_network

CPU = torch.device("cpu")
TM = dict(syn_steps=4, expert_epochs=2, max_start_epoch=2)


# 16x16 images: on 8x8 ConvNet's last instance norm sees 2x2 pixels, and gradient and
# trajectory matching (which differentiate the network's training) degenerate.
@pytest.fixture
def tiny_npz(tmp_path):
    return write_npz(tmp_path / "tiny16.npz", size=16)


@pytest.fixture
def tiny(tiny_npz):
    return load_dataset(f"npz:{tiny_npz}")


@pytest.fixture
def experts(tiny, tmp_path):
    root = tmp_path / "experts"
    train_experts(tiny, root, ExpertConfig(num_experts=2, epochs=4, batch_size=12), CPU)
    return root


def config_for(loss, experts_dir=None, **kw):
    extra = dict(TM, experts=str(experts_dir)) if loss == "tm" else {}
    return DistillConfig.of(loss=loss, batch_real=8, dsa_strategy="flip", **extra, **kw)


# GM is judged with one network throughout (with a fresh one per update, 25 updates are noise).
DECREASE = {"dm": {}, "tm": {}, "gm": dict(outer_loop=25, inner_loop=0, lr_img=0.01)}


@pytest.mark.parametrize("loss", ["dm", "gm", "tm"])
def test_each_loss_decreases_under_its_own_optimisation(tiny, experts, loss):
    config = config_for(loss, experts, ipc=2, iterations=25, **DECREASE[loss])
    start, _ = random_real_subset(tiny, 2, config.seed)
    learnt = distill(tiny, config, CPU)

    def judged(images):  # fresh objectives: the same networks, real batches, segments, draws
        objective = make_objective(tiny, config, CPU, 2)
        return sum(float(objective(images, [2, 2, 2], i).detach()) for i in range(8))

    assert learnt.provenance["method"] == loss
    assert judged(learnt.images) < 0.9 * judged(start)


def test_gradient_matching_trains_its_network_between_updates(tiny):
    config = config_for("gm", ipc=2, outer_loop=3, inner_loop=2)
    objective = make_objective(tiny, config, CPU, 2)
    images = random_real_subset(tiny, 2, 0)[0]
    objective(images, [2, 2, 2], 0)
    before = [p.detach().clone() for p in objective.net.parameters()]
    objective(images, [2, 2, 2], 1)  # same network, trained on the images first
    assert objective.net_round == 0
    assert any(not torch.equal(a, b) for a, b in zip(before, objective.net.parameters()))
    objective(images, [2, 2, 2], 3)  # a fresh network for the next outer round
    assert objective.net_round == 1


@pytest.mark.parametrize("loss", ["dm", "gm", "tm"])
def test_gradients_reach_the_latents(tiny, experts, loss):
    config = config_for(loss, experts, param="latent", spc=2)
    codec = codec_config(config)
    layout = LatentLayout.for_image(16, 16, codec.levels, codec.channels_per_level)
    bank = LatentBank(3, 2, 3, layout, codec, [torch.Generator().manual_seed(g) for g in range(3)])
    proxy = Proxy("proxy", 0.3, 1.0, [torch.Generator().manual_seed(g) for g in (4, 5, 6)])
    images = bank(proxy)[0].flatten(0, 1).clamp(0, 1)
    utility = make_objective(tiny, config, CPU, 2)(tiny.normalization.from_unit(images),
                                                   [2, 2, 2], 0)
    utility.backward()
    for grid in bank.latents:
        assert grid.grad is not None and torch.isfinite(grid.grad).all()
    assert any(float(grid.grad.abs().sum()) > 0 for grid in bank.latents)


@pytest.mark.parametrize("loss", ["gm", "tm"])
def test_latent_distillation_with_each_loss(tiny, experts, loss):
    s = distill(tiny, config_for(loss, experts, param="latent", spc=2, fit_iterations=16,
                                 fit_candidates=2, iterations=4), CPU)
    assert s.provenance["method"] == f"latent-{loss}"
    assert s.images.shape == (6, 3, 16, 16) and s.provenance["estimated_bits"]["total"] > 0
    assert ("syn_lr" in s.provenance) == (loss == "tm")


def test_gradient_distance_ignores_biases_and_is_zero_for_equal_directions():
    g = [torch.randn(4, 3, 3, 3), torch.randn(4)]
    assert float(gradient_distance(g, [2 * g[0], torch.randn(4)])) == pytest.approx(0, abs=1e-5)
    assert float(gradient_distance(g, [-g[0], g[1]])) == pytest.approx(8, abs=1e-4)


def test_gradient_matching_loops_follow_the_reference():
    assert gradient_matching_loops(1) == (1, 1)
    assert gradient_matching_loops(10) == (10, 50)
    assert gradient_matching_loops(50) == (50, 10)
    assert gradient_matching_loops(300) == (50, 10)
    assert resolve(DistillConfig.of(loss="gm", ipc=10)).matching.iterations == 10_000
    assert resolve(DistillConfig.of(loss="dm")).matching.iterations == 20_000
    assert resolve(DistillConfig.of(loss="gm")).pixels.lr_img == 0.1


def test_experts_save_load_and_reuse(tiny, experts):
    buffer = ExpertBuffer.open(experts, tiny, "convnet")
    assert buffer.count == 2 and buffer.epochs == 4
    trajectory = buffer.trajectory(1)
    assert trajectory.shape == (5, buffer.num_parameters) and trajectory.dtype == torch.float32
    initial = seeded_network("convnet", 3, 3, (16, 16), 1, CPU)  # seed 0 x 1_000_003 + index 1
    assert torch.equal(trajectory[0], torch.cat([p.detach().flatten()
                                                 for p in initial.parameters()]))
    assert not torch.equal(trajectory[0], trajectory[-1])  # it trained
    report = train_experts(tiny, experts, ExpertConfig(num_experts=3, epochs=4, batch_size=12),
                           CPU)
    assert (report["trained"], report["reused"]) == (1, 2)
    assert torch.equal(ExpertBuffer.open(experts, tiny, "convnet").trajectory(1), trajectory)


def test_experts_refuse_mismatches(tiny, experts, tmp_path):
    with pytest.raises(DDCodecError, match="trained otherwise"):
        train_experts(tiny, experts, ExpertConfig(num_experts=2, epochs=9), CPU)
    with pytest.raises(DDCodecError, match="--arch convnet"):
        ExpertBuffer.open(experts, tiny, "resnet18")
    other = load_dataset(f"npz:{write_npz(tmp_path / 'other.npz', size=8)}")
    with pytest.raises(DDCodecError, match="experts of"):
        ExpertBuffer.open(experts, other, "convnet")
    with pytest.raises(DDCodecError, match="holds no experts"):
        ExpertBuffer.open(tmp_path, tiny, "convnet")
    (experts / "expert_000.pt").write_bytes(b"not a tensor")
    with pytest.raises(DDCodecError, match="not a readable expert"):
        ExpertBuffer.open(experts, tiny, "convnet").trajectory(0)
    with pytest.raises(DDCodecError, match="needs --experts"):
        DistillConfig.of(loss="tm")


def test_student_learning_rate_is_learnt_stored_and_used(tiny_npz, experts, tmp_path):
    out = tmp_path / "tm.pt"
    s = api.distill(f"npz:{tiny_npz}", out, device="cpu", loss="tm", ipc=2, iterations=10,
                    experts=str(experts), dsa_strategy="flip", **TM)
    syn_lr = s.provenance["syn_lr"]
    assert syn_lr > 0 and syn_lr != pytest.approx(0.01, rel=1e-3)  # it moved from lr_teacher
    report = api.measure(out, epochs=2, runs=1, device="cpu")
    assert report["protocol"]["lr"] == syn_lr
    assert api.measure(out, epochs=2, runs=1, device="cpu", lr=0.05)["protocol"]["lr"] == 0.05
    ddz = tmp_path / "tm.ddz"
    api.encode(out, ddz)
    assert api.measure(ddz, epochs=2, runs=1, device="cpu")["protocol"]["lr"] == syn_lr
    exported = tmp_path / "mtt"
    api.decode(ddz, exported, format="mtt")
    assert float(torch.load(exported / "lr_best.pt")) == syn_lr


def test_experts_command(run_cli, tiny_npz, tmp_path):
    code, out, err = run_cli("experts", "--data", f"npz:{tiny_npz}", "-o", str(tmp_path / "e"),
                             "--num-experts", "1", "--epochs", "2", "--batch-size", "12",
                             "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["trained"] == 1 and (tmp_path / "e" / "expert_000.pt").is_file()
    code, _, err = run_cli("distill", "--data", f"npz:{tiny_npz}", "--loss", "tm", "--ipc", "1",
                           "-o", str(tmp_path / "s.pt"))
    assert code == 1 and "needs --experts" in err


def test_experts_refuse_a_file_as_folder_and_an_empty_folder(tiny, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DDCodecError, match="not a folder"):
        train_experts(tiny, tmp_path / "file", ExpertConfig(num_experts=1, epochs=1), CPU)
    root = tmp_path / "empty"
    train_experts(tiny, root, ExpertConfig(num_experts=1, epochs=1, batch_size=12), CPU)
    (root / "expert_000.pt").unlink()
    with pytest.raises(DDCodecError, match="no finished expert"):
        ExpertBuffer.open(root, tiny, "convnet")


def test_the_real_branch_embeds_in_chunks_that_change_nothing_but_memory(monkeypatch):
    """Many classes of large images would need one huge forward (23 GB for 100 classes at
    64 x 64): the real branch runs in chunks, with the same embeddings, and without a graph."""
    from ddcodec.distillation import objectives
    from ddcodec.training.networks import seeded_network

    net = seeded_network("ConvNet", 3, 10, (16, 16), 0, torch.device("cpu"))
    images = torch.randn(37, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    whole = objectives.embed_without_grad(net, images)
    monkeypatch.setattr(objectives, "REAL_CHUNK_PIXELS", 5 * 16 * 16)  # chunks of 5 images
    chunked = objectives.embed_without_grad(net, images)
    assert chunked.shape == whole.shape and not chunked.requires_grad
    assert torch.allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        reference = net.embed(images)
    assert torch.allclose(whole, reference, rtol=1e-4, atol=1e-5)
