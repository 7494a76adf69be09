"""Distributional sets (D3): exact, reproducible samples; the scales section; training, measure
and export with fresh samples; bad input refused."""

import dataclasses
import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import write_npz
from ddcodec import api
from ddcodec.bitstream.codec import decode_bytes, encode_set
from ddcodec.distillation.objectives import mean_embedding_loss, mixture_rbf_mmd_loss
from ddcodec.sets.distributional import (CODE_UNIT, SIGMA_MAX, Resampled, Scales, codes_of,
                                  normal_draws, prior_sampler, sigma_of)
from ddcodec.distillation import DistillConfig
from ddcodec.errors import DDCodecError
from ddcodec.sets.setfile import load_set, save_set

from conftest import FIXTURES as DATA, ROOT


def spread_set(sigma: float = 0.9, samples: int = 2, seed: int = 7):
    """The golden latent set with a spread on every prior (varied per prior and level)."""
    distilled = load_set(DATA / "golden_set.pt")
    p = distilled.codec
    shape = (len(p.groups), p.groups[0].n_images, p.layout.levels)
    vary = torch.linspace(0.5, 1.5, int(np.prod(shape)), dtype=torch.float64).view(shape)
    distilled.codec = dataclasses.replace(p, scales=Scales(codes_of(sigma * vary), samples, seed))
    return distilled


@pytest.fixture(scope="module")
def tiny_distribution(tmp_path_factory):
    root = tmp_path_factory.mktemp("d3")
    npz = write_npz(root / "four.npz", classes=4, per_class=8, test_per_class=4, size=16)
    path = root / "set.pt"
    api.distill(f"npz:{npz}", path, param="distribution", priors=2, fit_iterations=16,
                fit_candidates=2, iterations=4, batch_real=4, arm_context=8, prior_samples=2)
    return npz, path


def test_sigma_codes_are_an_exact_log_table():
    codes = torch.arange(0, 256)
    sigma = sigma_of(codes)
    assert sigma[0] == 0 and sigma[CODE_UNIT] == 1.0 and sigma[CODE_UNIT + 16] == 2.0
    ratios = sigma[2:] / sigma[1:-1]
    assert torch.allclose(ratios, torch.full_like(ratios, 2 ** (1 / 16)), rtol=1e-15)
    assert torch.equal(codes_of(sigma), codes.to(torch.int16))  # the table round-trips
    assert int(codes_of(torch.tensor([0.0]))) == 0


@pytest.mark.parametrize("sigma, message", [
    (-0.5, "negative"), (float("nan"), "NaN"), (float("inf"), "NaN or infinite"),
    (SIGMA_MAX * 1.1, "beyond the coder's range")])
def test_bad_sigma_is_refused(sigma, message):
    with pytest.raises(DDCodecError, match=message):
        codes_of(torch.tensor([[[0.5, sigma]]]))


def test_irwin_hall_draws_are_standard_normal_and_keyed():
    eps = normal_draws("prior_samples", 3, 0, np.arange(400), 500)
    assert abs(eps.mean()) < 0.01 and abs(eps.var() - 1) < 0.01 and np.abs(eps).max() <= 6
    again = normal_draws("prior_samples", 3, 0, np.arange(399, -1, -1), 500)[::-1]
    assert np.array_equal(eps, again)  # a row depends on its key, not its batch or order
    assert not np.array_equal(eps, normal_draws("prior_samples", 3, 1, np.arange(400), 500))


def test_sampling_is_reproducible_across_processes_and_thread_counts(tmp_path):
    distilled = spread_set()
    data, _ = encode_set(distilled)
    (tmp_path / "d.ddz").write_bytes(data)
    sampler = decode_bytes(data).sampler
    images = sampler.images(5)
    torch.set_num_threads(1)
    try:
        assert torch.equal(images, sampler.images(5))
        assert not torch.equal(images, sampler.images(6))  # fresh every epoch
    finally:
        torch.set_num_threads(2)
    # the payload in memory and the decoded file give the same samples
    assert torch.equal(images, prior_sampler(distilled.codec, 3).images(5))
    code = ("import sys, torch, hashlib; torch.set_num_threads(int(sys.argv[2])); "
            "from ddcodec.bitstream.codec import decode_bytes; "
            "s = decode_bytes(open(sys.argv[1], 'rb').read()).sampler; "
            "z = s.latents(5); print(hashlib.sha256(b''.join(g.tobytes() for g in z) + "
            "s.images(5).numpy().tobytes()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code, str(tmp_path / "d.ddz"), str(t)],
                              capture_output=True, text=True, check=True, cwd=ROOT).stdout
               for t in (1, 2)}
    import hashlib
    mine = hashlib.sha256(b"".join(g.tobytes() for g in sampler.latents(5))
                          + images.numpy().tobytes()).hexdigest()
    assert digests == {mine + "\n"}


def test_sample_latents_spread_by_sigma_and_stay_in_range():
    distilled = spread_set(sigma=2.0, samples=8)
    sampler = prior_sampler(distilled.codec, 3)
    means = distilled.codec.latent_grids()
    k = distilled.codec.config.k
    for mu, z in zip(means, sampler.latents(0)):
        assert z.dtype == np.int64 and z.min() >= -k and z.max() <= k - 1
        diff = z.reshape(z.shape[0], 8, *mu.shape[1:]) - mu[:, None]
        assert 1.0 < diff.std() < 3.5  # about sigma (0.5 to 1.5 x 2) after rounding
    # sample s of a prior is the same whether 1 or 8 samples are drawn
    one = sampler.latents(0, samples=1)
    assert all(np.array_equal(a, b[:, :a.shape[1]]) for a, b in zip(one, sampler.latents(0)))


def test_sigma_zero_decodes_bit_for_bit_to_the_deterministic_set():
    distilled = spread_set()
    p = distilled.codec
    zero = Scales(torch.zeros(p.scales.shape, dtype=torch.int16), samples=3, seed=11)
    distilled.codec = dataclasses.replace(p, scales=zero)
    decoded = decode_bytes(encode_set(distilled)[0])
    plain = decode_bytes(encode_set(load_set(DATA / "golden_set.pt"))[0])
    assert torch.equal(decoded.images, plain.images)
    samples = decoded.sampler.images(4)
    assert torch.equal(samples, plain.images.view(3, 1, 2, *samples.shape[1:])
                       .expand(3, 3, 2, *samples.shape[1:]).flatten(0, 2))
    assert all(np.array_equal(z[:, :m.shape[1]], m) for z, m in
               zip(decoded.sampler.latents(4), plain.latents))


def test_scales_section_round_trips_exactly_and_is_checksummed():
    distilled = spread_set(samples=5, seed=2 ** 40 + 3)
    data, bits = encode_set(distilled)
    decoded = decode_bytes(data)
    got = decoded.sampler.scales
    assert torch.equal(got.codes, distilled.codec.scales.codes)
    assert (got.samples, got.seed) == (5, 2 ** 40 + 3)
    assert decoded.section_bytes["scales"] * 8 == pytest.approx(bits["scales"], abs=64)
    plain, _ = encode_set(load_set(DATA / "golden_set.pt"))
    assert len(data) - len(plain) == decoded.section_bytes["scales"] + 5  # its frame
    assert torch.equal(decoded.images, decode_bytes(plain).images)  # means unchanged
    # one flipped byte in the section: refused, never other samples
    size = decoded.section_bytes["scales"]
    start = data.index(bytes([8]) + struct.pack("<I", size)) + 5
    for offset in (0, 3, size // 2, size - 1):
        broken = bytearray(data)
        broken[start + offset] ^= 0x01
        with pytest.raises(DDCodecError):
            decode_bytes(bytes(broken))


def test_set_file_scales_that_disagree_with_the_latents_are_refused(tmp_path):
    distilled = spread_set()
    raw = distilled.to_dict()
    raw["codec"]["scales"]["codes"] = raw["codec"]["scales"]["codes"][:, :1]
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(DDCodecError, match="scales .* disagree with the latents"):
        load_set(tmp_path / "bad.pt")
    raw = distilled.to_dict()
    raw["codec"]["scales"]["codes"] = raw["codec"]["scales"]["codes"] * 0 + 300
    torch.save(raw, tmp_path / "bad2.pt")
    with pytest.raises(DDCodecError, match=r"codes must lie in \[0, 255\]"):
        load_set(tmp_path / "bad2.pt")


def test_mmd_rewards_spread_that_the_mean_embedding_does_not_see():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(256, 16, generator=g)
    spread = torch.randn(64, 16, generator=g)
    point = real.mean(0, keepdim=True).repeat(64, 1) + 1e-3 * torch.randn(64, 16, generator=g)
    assert mean_embedding_loss(real, point) < mean_embedding_loss(real, spread)
    assert mixture_rbf_mmd_loss(real, spread) < 0.1 * mixture_rbf_mmd_loss(real, point)
    spread.requires_grad_(True)
    mixture_rbf_mmd_loss(real, spread).backward()
    assert torch.isfinite(spread.grad).all() and spread.grad.abs().sum() > 0


def test_distill_encode_measure_and_export_a_distributional_set(tiny_distribution, tmp_path):
    npz, path = tiny_distribution
    distilled = load_set(path)
    scales = distilled.codec.scales
    assert scales.shape == (4, 2, distilled.codec.layout.levels) and scales.samples == 2
    assert distilled.provenance["method"] == "distribution-dm"
    # every prior has a spread on the 3 coarsest levels (the default), none on the finer ones
    assert (scales.codes[..., -3:] > 0).all() and (scales.codes[..., :-3] == 0).all()
    # .ddz: size matches the estimate, the scales included
    ddz = tmp_path / "set.ddz"
    api.encode(path, ddz)
    report = api.info(ddz)
    assert report["distribution"]["priors"] == 8 and report["distribution"]["images_per_epoch"] \
        == 24
    assert abs(report["file_bytes"] * 8 / distilled.codec.estimated_bits.total - 1) < 0.05
    # measure trains on means + 2 fresh samples per prior each epoch (Resampled, from the
    # file's sampler: its report gives the same counts); frozen: epoch 0's
    in_file = api.decode(ddz).to_set()

    def epochs_of(count: int, frozen: bool = False, samples: int | None = None,
                  spread_scale: float | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        sampler = in_file.prior_sampler()
        if spread_scale is not None:
            sampler = dataclasses.replace(sampler, spread_scale=spread_scale)
        resample = Resampled(in_file.images, in_file.training_labels(), sampler,
                             in_file.normalization, frozen=frozen, samples=samples)
        return [resample(epoch) for epoch in range(count)]

    result = api.measure(ddz, epochs=2, runs=1, data=f"npz:{npz}")
    assert result["protocol"]["images_per_epoch"] == 24
    assert result["protocol"]["steps_per_epoch"] == 1
    assert result["distribution"]["samples_per_prior"] == 2
    (a, la), (b, lb) = epochs_of(2)
    assert a.shape[0] == 24 and torch.equal(a[:8], b[:8]) and not torch.equal(a[8:], b[8:])
    assert torch.equal(la, lb) and torch.equal(la[8:], torch.arange(4).repeat_interleave(4))
    frozen = api.measure(ddz, epochs=2, runs=1, data=f"npz:{npz}", frozen_samples=True)
    assert "frozen" in frozen["distribution"]["resampled"]
    (f0, _), (f1, _) = epochs_of(2, frozen=True)
    assert torch.equal(f0, f1) and torch.equal(f0, a)
    # --samples: the means alone (0), or more fresh samples per prior than the file's 2; sample
    # s of a prior is the same whatever the count
    alone = api.measure(ddz, epochs=1, runs=1, data=f"npz:{npz}", samples=0)
    assert alone["protocol"]["images_per_epoch"] == 8
    assert alone["distribution"]["samples_per_prior"] == 0
    (means_only, their_labels), = epochs_of(1, samples=0)
    assert torch.equal(means_only, a[:8]) and torch.equal(their_labels, la[:8])
    more = api.measure(ddz, epochs=1, runs=1, data=f"npz:{npz}", samples=3)
    assert more["protocol"]["images_per_epoch"] == 32
    assert more["distribution"]["file_samples_per_prior"] == 2
    (images, labels), = epochs_of(1, samples=3)
    assert torch.equal(images[:8], a[:8])  # the means, then per class its priors' samples
    for c in range(4):  # samples 0 and 1 of each prior as with the file's count, then sample 2
        assert torch.equal(images[8 + 6 * c:8 + 6 * c + 4], a[8 + 4 * c:8 + 4 * c + 4])
    assert torch.equal(labels[8:], torch.arange(4).repeat_interleave(6))
    # --spread-scale: 0 makes every sample its mean, 2 moves samples twice as far (same draws)
    flat = api.measure(ddz, epochs=1, runs=1, data=f"npz:{npz}", spread_scale=0)
    assert flat["distribution"]["spread_scale"] == 0
    # per class: sample 0 of its 2 priors, then sample 1, here each its prior's mean
    (flat_images, _), = epochs_of(1, spread_scale=0)
    assert torch.equal(flat_images[8:], torch.cat([a[2 * c:2 * c + 2].repeat(2, 1, 1, 1)
                                                  for c in range(4)]))
    sampler = distilled.prior_sampler()
    means = sampler.means
    spreads = {t: dataclasses.replace(sampler, spread_scale=t).latents(0) for t in (1.0, 2.0)}
    moved = {t: sum(float(np.abs(z - np.tile(m, (1, 2, 1, 1))).sum())
                    for z, m in zip(grids, means)) for t, grids in spreads.items()}
    assert moved[2.0] > 1.5 * moved[1.0] > 0
    # export: means then samples per class, the samples those of epoch 0
    decoded = api.decode(ddz, tmp_path / "out.pt", samples=3)
    exported = load_set(tmp_path / "out.pt")
    assert exported.num_images == 8 * 4 and exported.labels.tolist() == \
        sorted(exported.labels.tolist())
    assert decoded.header.meta["samples"].startswith("means + 3")
    first = exported.images[exported.labels == 0]
    assert torch.equal(first[:2], distilled.images[:2])
    assert torch.equal(first[2:4], a[8:10])  # class 0's first samples at epoch 0


def test_distill_spread_scale_stores_the_learnt_spreads_times_t(tiny_distribution, tmp_path):
    """--spread-scale changes what is stored, not what is trained: the same latents, and each
    spread's code moved by 16 per halving (the table's exact log steps)."""
    npz, path = tiny_distribution
    plain = load_set(path)
    half = api.distill(f"npz:{npz}", tmp_path / "half.pt", param="distribution", priors=2,
                       fit_iterations=16, fit_candidates=2, iterations=4, batch_real=4,
                       arm_context=8, prior_samples=2, spread_scale=0.5)
    assert torch.equal(half.images, plain.images)
    before, after = plain.codec.scales.codes.long(), half.codec.scales.codes.long()
    spread = before > 0
    assert spread.any() and torch.equal(after[spread], before[spread] - 16)
    assert (after[~spread] == 0).all()


def test_soft_labels_follow_their_prior_into_samples_and_exports(tiny_distribution, tmp_path):
    from ddcodec.labels.rungs.vq import as_vq

    npz, path = tiny_distribution
    distilled = load_set(path)
    probs = torch.softmax(torch.randn(8, 4, generator=torch.Generator().manual_seed(1)), 1)
    distilled.soft_labels = as_vq(probs, k=4, temperature=1.0)
    data, _ = encode_set(distilled)
    (tmp_path / "soft.ddz").write_bytes(data)
    decoded = api.decode(tmp_path / "soft.ddz", tmp_path / "soft", format="mtt", samples=1)
    rows = torch.load(tmp_path / "soft" / "soft_labels_best.pt")
    prior = decoded.soft_labels.probabilities
    assert rows.shape == (16, 4) and torch.equal(rows, prior)
    stored = decode_bytes(data).soft_labels.probabilities
    for c in range(4):  # per class: its 2 means, then their samples, with the same rows
        assert torch.equal(rows[4 * c:4 * c + 4], stored[2 * c:2 * c + 2].repeat(2, 1))


def test_distribution_options_and_misuse_are_refused(tiny_distribution, run_cli, tmp_path):
    npz, path = tiny_distribution
    for args, message in [
            (["--priors", "0"], "--priors"),
            (["--prior-samples", "0"], "--prior-samples"),
            (["--sigma-init", "-1"], "--sigma-init"),
            (["--priors", "2", "--spc", "3"], "same count"),
            (["--spread-scale", "17"], "--spread-scale must be within"),
            (["--label-epochs", "2", "--labels", "soft", "--teacher", str(path)],
             "one soft label per prior")]:
        code, out, err = run_cli("distill", "--data", f"npz:{npz}", "--param", "distribution",
                                 "-o", str(tmp_path / "x.pt"), *args)
        assert code != 0 and message in err.strip().splitlines()[-1], err
        assert not (tmp_path / "x.pt").exists()
    plain = tmp_path / "plain.ddz"
    api.encode(DATA / "golden_set.pt", plain)
    code, _, err = run_cli("measure", str(DATA / "golden_set.pt"), "--frozen-samples",
                           "--epochs", "1", "--runs", "1", "--data", f"npz:{npz}")
    assert code != 0 and "--frozen-samples is for distributional sets" in err
    code, _, err = run_cli("measure", str(DATA / "golden_set.pt"), "--samples", "2",
                           "--epochs", "1", "--runs", "1", "--data", f"npz:{npz}")
    assert code != 0 and "--samples is for distributional sets" in err
    code, _, err = run_cli("measure", str(path), "--samples", "65", "--epochs", "1", "--runs",
                           "1", "--data", f"npz:{npz}")
    assert code != 0 and "--samples must be in [0, 64]" in err.strip().splitlines()[-1], err
    for value, message in [("2", "--spread-scale is for distributional sets"),
                           ("-1", "--spread-scale"), ("17", "--spread-scale must be within")]:
        target = DATA / "golden_set.pt" if value == "2" else path
        code, _, err = run_cli("measure", str(target), "--spread-scale", value, "--epochs", "1",
                               "--runs", "1", "--data", f"npz:{npz}")
        assert code != 0 and message in err.strip().splitlines()[-1], err
    code, _, err = run_cli("decode", str(plain), "-o", str(tmp_path / "y.pt"), "--samples", "1")
    assert code != 0 and "--samples is for distributional files" in err
    assert not (tmp_path / "y.pt").exists()


def test_a_saved_distributional_set_keeps_its_scales(tiny_distribution, tmp_path):
    _, path = tiny_distribution
    distilled = load_set(path)
    save_set(distilled, tmp_path / "again.pt")
    again = load_set(tmp_path / "again.pt")
    assert torch.equal(again.codec.scales.codes, distilled.codec.scales.codes)
    assert torch.equal(again.prior_sampler().images(1), distilled.prior_sampler().images(1))
    assert json.dumps(again.provenance["config"]["distribution"])


@pytest.mark.parametrize("loss", ["dm", "gm", "tm"])
def test_every_loss_trains_the_spreads_on_sampled_batches(loss, tmp_path):
    """DM (D3's MMD), GM and TM see the means and samples: the spreads get gradients and
    move."""
    from ddcodec.data.datasets import load_dataset
    from ddcodec.distillation import DistillConfig
    from ddcodec.distillation.config import ExpertConfig
    from ddcodec.distillation.experts import train_experts
    from ddcodec.distillation.priors import DistributionTrainer

    npz = write_npz(tmp_path / "four.npz", classes=3, per_class=8, test_per_class=2, size=8)
    data = load_dataset(f"npz:{npz}")
    extra = {}
    if loss == "tm":
        train_experts(data, tmp_path / "experts", ExpertConfig(num_experts=1, epochs=3,
                                                              batch_size=12), torch.device("cpu"))
        extra = {"experts": str(tmp_path / "experts"), "syn_steps": 2, "expert_epochs": 1,
                 "max_start_epoch": 1}
    config = DistillConfig.of(param="distribution", loss=loss, priors=2, fit_iterations=8,
                              fit_candidates=1, iterations=3, batch_real=4, arm_context=8,
                              sigma_lr=0.05, **extra)
    trainer = DistributionTrainer(data, config, torch.device("cpu"))
    _, payload, _ = trainer.run()
    sigma = trainer.bank.sigma().detach()[..., -3:]  # the levels that have a spread
    assert not torch.allclose(sigma, torch.full_like(sigma, 0.5))
    assert payload.scales is not None and payload.scales.shape == (3, 2, payload.layout.levels)


def test_per_epoch_labels_on_a_distributional_set_are_refused_by_measure(tiny_distribution):
    from ddcodec.labels.rungs.float16 import as_float16

    npz, path = tiny_distribution
    distilled = load_set(path)
    probs = torch.softmax(torch.randn(2 * 8, 4, generator=torch.Generator().manual_seed(2)), 1)
    distilled.soft_labels = as_float16(probs, temperature=1.0, epochs=2, view_seed=1,
                                       view_strategy="color_crop_cutout_flip_scale_rotate")
    with pytest.raises(DDCodecError, match="one label per prior"):
        api.measure(distilled, epochs=1, runs=1, data=f"npz:{npz}")


def test_spread_on_coarse_levels_only_keeps_fine_levels_at_the_mean(tmp_path):
    """--spread-levels N: only the N coarsest levels learn a spread; the finer ones store
    sigma 0, so every sample equals its mean there, in the file as in training."""
    npz = write_npz(tmp_path / "three.npz", classes=3, per_class=8, test_per_class=2, size=8)
    path = tmp_path / "spread.pt"
    api.distill(f"npz:{npz}", path, param="distribution", priors=2, fit_iterations=8,
                fit_candidates=1, iterations=3, batch_real=4, arm_context=8, sigma_lr=0.05,
                spread_levels=2)
    distilled = load_set(path)
    levels = distilled.codec.layout.levels
    codes = distilled.codec.scales.codes
    assert (codes[..., :levels - 2] == 0).all() and (codes[..., levels - 2:] > 0).all()
    assert distilled.provenance["sigma_median_per_level"][:levels - 2] == [0.0] * (levels - 2)
    sampler = distilled.prior_sampler()
    for level, (mean, sample) in enumerate(zip(sampler.means, sampler.latents(epoch=1))):
        same = np.array_equal(np.asarray(mean), np.asarray(sample))
        assert same == (level < levels - 2), level
    with pytest.raises(DDCodecError, match="--spread-levels"):
        DistillConfig.of(param="distribution", spread_levels=-1)
    assert DistillConfig.of(param="distribution").distribution.spread_levels == 3
    # a count at least the levels' spreads every level
    api.distill(f"npz:{npz}", path, force=True, param="distribution", priors=2,
                fit_iterations=8, fit_candidates=1, iterations=3, batch_real=4, arm_context=8,
                sigma_lr=0.05, spread_levels=99)
    assert (load_set(path).codec.scales.codes > 0).all()
