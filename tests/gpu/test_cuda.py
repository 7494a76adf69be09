"""On a CUDA card only (benchmarks/gpu_check.sh runs them; CI has none): the float synthesis,
distillation and measurement on the GPU, held to the CPU's results."""

from __future__ import annotations

import pytest
import torch

import ddcodec
from ddcodec.bitstream.ddz import decode
from conftest import FIXTURES, ROOT

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CURVE_POINT = ROOT / "benchmarks" / "cache" / "curve" / "points" / "latent-dm+vq-83e7026bdf1c.ddz"


@pytest.mark.parametrize("path", [FIXTURES / "golden_v3.ddz", CURVE_POINT])
def test_synthesis_on_the_gpu_lands_within_one_level_of_the_cpu(path):
    data = path.read_bytes()
    cpu, gpu = decode(data, bits=False), decode(data, bits=False, device="cuda")
    assert torch.equal(cpu.labels, gpu.labels)
    assert all((a == b).all() for a, b in zip(cpu.latents, gpu.latents))  # integers: exact
    gap = (cpu.images.int() - gpu.images.int()).abs()
    assert gap.max() <= 1 and (gap > 0).float().mean() < 0.01


def test_a_set_distilled_on_the_gpu_encodes_to_its_estimate_and_decodes_to_its_images(tmp_path):
    made = ddcodec.distill("cifar10-subset", device="cuda", param="latent", loss="dm", spc=2,
                           fit_iterations=20, fit_candidates=1, iterations=5, batch_real=32)
    ddcodec.encode(made, tmp_path / "a.ddz")
    estimate = made.provenance["estimated_bits"]["total"]
    assert abs(8 * (tmp_path / "a.ddz").stat().st_size - estimate) < 0.05 * estimate
    back = ddcodec.decode(tmp_path / "a.ddz")  # on the CPU: the reference
    assert torch.equal(back.labels, made.labels)
    # the set holds normalised floats of its uint8 images: back to 8-bit levels
    levels = made.normalization.denormalize(made.images.cpu()).mul(255).round().int()
    assert (back.images.int() - levels).abs().max() <= 1


def test_a_measure_on_the_gpu_learns_the_set():
    report = ddcodec.measure(CURVE_POINT, epochs=50, runs=1, seed=0, device="cuda")
    assert report["accuracy_mean_percent"] > 25  # chance is 10 %; 43 % at 300 x 2 on the CPU
