"""Distributional distillation (`--param distribution`, D3 inside the rate-utility model).

The latent trainer's three phases, with one change: each latent sample is the mean mu of a prior
that also learns a spread sigma per level (log sigma, a parameter of the bank like the latents).
Phase 1 fits the means to real images as the latent trainer fits latents. In phase 2 the utility sees, every step, the
decoded means and `prior_samples` fresh samples per prior, z = round(mu + sigma * eps) with a
straight-through rounding, so the matching loss trains mu, sigma and the decoder through the
samples (reparameterisation); the rate term prices the means, which are all the ARM codes.
Phase 3 quantises the decoders as the latent trainer does, and the spreads to codes
(ddcodec.sets.distributional), which the file's `scales` section stores.

Why a spread per (prior, level), not per latent value: it costs about L small integers per
prior (tens of bits per class) instead of as many values as the latents, and a level is the
natural unit of variation (coarse levels move colour and layout, fine ones texture). Why only
the coarsest levels by default (`spread_levels`, 3): given a spread everywhere, training pushed
the finest to 1.6 latent steps and the samples became their means under pixel noise, which
trained no better than the means alone; with spreads on 4x4 to 1x1 only, the samples vary in
colour and layout and resampling them was worth 2.3 to 4.3 points over frozen samples on the
CIFAR-10 subset at 6,000 bits per class (docs/distribution.md).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from ddcodec.codec.model import LatentBank
from ddcodec.codec.weights import zero_mean_laplace_bits
from ddcodec.distillation.latent import LatentTrainer
from ddcodec.limits import SIGMA_MAX, SIGMA_MIN
from ddcodec.sets.distributional import Scales, codes_of, prior_noise
from ddcodec.sets.payload import LatentPayload


class PriorBank(LatentBank):
    """A latent bank whose every image is a prior's mean, with a log sigma per level."""

    def __init__(self, *args, sigma_init: float, spread_levels: int, **kwargs):
        super().__init__(*args, **kwargs)
        levels = self.layout.levels
        self.log_sigma = nn.Parameter(torch.full(
            (self.groups, self.images_per_group, levels), math.log(sigma_init)))
        # levels are finest first: the last `spread_levels` are the coarse ones that vary
        spread = min(spread_levels, levels)
        mask = torch.zeros(levels)
        mask[levels - spread:] = 1.0
        self.register_buffer("spread_mask", mask, persistent=False)

    def sigma(self) -> torch.Tensor:
        """G x N x L, within what the file can code; exactly 0 on levels without a spread."""
        bounded = self.log_sigma.clamp(math.log(SIGMA_MIN / 2), math.log(SIGMA_MAX)).exp()
        return bounded * self.spread_mask

    def sample(self, means: list[torch.Tensor], noise: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per level G x (S x N) x C x h x w: round(mu + sigma eps) with a straight-through
        rounding, clamped to the latent range. `noise`: per level G x S x N x C x h x w."""
        sigma = self.sigma()
        k = self.config.k
        out = []
        for level, (mu, eps) in enumerate(zip(means, noise)):
            spread = sigma[:, None, :, level, None, None, None]
            z = mu[:, None] + spread * eps
            z = z + (torch.round(z) - z).detach()
            out.append(z.clamp(-k, k - 1).flatten(1, 2))
        return out


class DistributionTrainer(LatentTrainer):
    """LatentTrainer over a PriorBank; see the module's docstring."""

    @property
    def _samples(self) -> int:
        return self.config.distribution.prior_samples

    def _new_bank(self, generators: list[torch.Generator]) -> PriorBank:
        return PriorBank(len(generators), self.targets.shape[1], self.dataset.channels,
                         self.layout, self.codec, generators,
                         sigma_init=self.config.distribution.sigma_init,
                         spread_levels=self.config.distribution.spread_levels).to(self.device)

    def _optimizer(self, lr: float) -> torch.optim.Optimizer:
        """Adam at `lr` for the latents and decoders, at --sigma-lr for the log spreads (phase
        1 leaves them alone: nothing it fits depends on them)."""
        spreads = self.bank.log_sigma
        rest = [p for p in self.bank.parameters() if p is not spreads]
        return torch.optim.Adam([{"params": rest, "lr": lr},
                                 {"params": [spreads],
                                  "lr": self.config.distribution.sigma_lr}])

    def _first_priors(self) -> list[int]:
        """Each group's first prior's index in the class-ordered set (what its noise is keyed
        by, in training as in measure)."""
        spc = self.config.latent.spc
        return [self.group_classes[g][0] * spc for g in self.owner]

    def _training_noise(self) -> list[torch.Tensor]:
        bank, s = self.bank, self._samples
        n, c = bank.images_per_group, self.layout.channels_per_level
        sizes = [c * h * w for h, w in self.layout.grid_sizes()]
        per_group = [prior_noise("prior_training_noise", self.config.seed, self.global_step,
                                 np.arange(first, first + n), s, sizes)
                     for first in self._first_priors()]
        return [torch.from_numpy(np.stack([group[level] for group in per_group]))
                .float().view(bank.groups, s, n, c, h, w).to(self.device)
                for level, (h, w) in enumerate(self.layout.grid_sizes())]

    def _phase2_batch(self) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Means and samples, class-ordered: a class's means, then its samples."""
        bank, s, spc = self.bank, self._samples, self.config.latent.spc
        means = bank.quantized_latents(self._proxy())
        bits = bank.latent_bits(means)
        samples = bank.sample(means, self._training_noise())
        images = bank.synthesize([torch.cat([m, z], dim=1) for m, z in zip(means, samples)])
        g, n = bank.groups, bank.images_per_group
        ordered = (images.view(g, 1 + s, n // spc, spc, *images.shape[2:])
                   .transpose(1, 2).flatten(0, 3))
        return ordered, bits, [count * (1 + s) for count in self.counts]

    def _complete(self, payload: LatentPayload) -> LatentPayload:
        """Attach the quantised spreads (the learnt ones times --spread-scale: what samples
        are drawn with), and their bits to the estimate."""
        from dataclasses import replace

        scale = self.config.distribution.spread_scale
        with torch.no_grad():
            codes = codes_of(self.bank.sigma().detach().cpu().double() * scale)
        scales = Scales(codes, self._samples, int(self.config.seed))
        return replace(payload, scales=scales,
                       estimated_bits=replace(payload.estimated_bits, scales=scales_bits(scales)))

    def _learnt(self) -> dict:
        sigma = self.bank.sigma().detach().cpu()
        per_level = [round(float(v), 4) for v in sigma.flatten(0, 1).median(0).values]
        return {**super()._learnt(), "sigma_median_per_level": per_level}


def scales_bits(scales: Scales) -> float:
    """The model's estimate of the scales section: each level's codes around their median
    under a zero-mean Laplace, plus a few bytes of counts and centres."""
    codes = scales.codes.to(torch.int32)
    residuals = [codes[:, :, level].flatten() - int(codes[:, :, level].flatten().median())
                 for level in range(codes.shape[2])]
    coded = sum(float(zero_mean_laplace_bits(r[None])[0]) for r in residuals)
    return coded + 8.0 * (2 + 10 + len(residuals))
