"""Distributional sets (D3 inside the rate-utility codec): every stored latent grid is the mean
mu of a prior, and a spread sigma per (prior, level) makes it a diagonal Gaussian. A sample is
z = round(mu + sigma * eps), clamped to the latent range [-k, k-1], decoded by the prior's own
decoder; `measure` draws fresh samples every epoch.

Why samples are exact integers on every machine: eps is Irwin-Hall (the sum of 12 uniforms of 16
bits, minus 6: mean 0, variance 1, tails cut at +-6), an exact dyadic number computed from
counter-based integers keyed by (seed, epoch, prior, sample); sigma comes from a fixed table of
float64 constants (`SIGMA_FRACTIONS`, 1/16 octave) scaled by powers of two; the product, the sum
and the rounding are single IEEE operations. So the sample latents are bit-identical across
machines, thread counts and devices, and only the float synthesis (as for the means) may move a
pixel by one 8-bit level.

Spread codes: one integer u in [0, 255] per (prior, level); u = 0 means sigma = 0 (the prior is
a point: its samples are its mean), otherwise sigma = 2^((u - 128) / 16) latent steps. The
`scales` section codes them (ddcodec.bitstream.sections).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from ddcodec import seeds
from ddcodec.codec.decoding import synthesize
from ddcodec.codec.geometry import LatentGeometry, build_geometry
from ddcodec.errors import DDCodecError
from ddcodec.limits import CODE_MAX, CODE_UNIT, CODES_PER_OCTAVE, MAX_SAMPLES, SIGMA_MAX  # noqa: F401
IRWIN_HALL_TERMS = 12  # uniforms summed per normal draw: variance 12 x 1/12 = 1
UNIFORM_BITS = 16
WORDS_PER_DRAW = IRWIN_HALL_TERMS * UNIFORM_BITS // 64  # 64-bit counter words per draw
PRIOR_CHUNK = 256  # priors whose draws are made at once (bounds memory on large sets)
# 2^(j/16), j = 0..15, as exact float64 constants: part of the format, not computed at run time
SIGMA_FRACTIONS = tuple(float.fromhex(h) for h in (
    "0x1.0000000000000p+0", "0x1.0b5586cf9890fp+0", "0x1.172b83c7d517bp+0",
    "0x1.2387a6e756238p+0", "0x1.306fe0a31b715p+0", "0x1.3dea64c123422p+0",
    "0x1.4bfdad5362a27p+0", "0x1.5ab07dd485429p+0", "0x1.6a09e667f3bcdp+0",
    "0x1.7a11473eb0187p+0", "0x1.8ace5422aa0dbp+0", "0x1.9c49182a3f090p+0",
    "0x1.ae89f995ad3adp+0", "0x1.c199bdd85529cp+0", "0x1.d5818dcfba487p+0",
    "0x1.ea4afa2a490dap+0"))
SIGMA_TABLE = np.array([0.0] + [math.ldexp(SIGMA_FRACTIONS[(u - CODE_UNIT) % CODES_PER_OCTAVE],
                                           (u - CODE_UNIT) // CODES_PER_OCTAVE)
                                for u in range(1, CODE_MAX + 1)], dtype=np.float64)


def sigma_of(codes: torch.Tensor) -> torch.Tensor:
    """Spread codes -> sigma in latent steps (float64, exact table values)."""
    return torch.from_numpy(SIGMA_TABLE[np.asarray(codes, dtype=np.int64)])


def codes_of(sigma: torch.Tensor) -> torch.Tensor:
    """sigma (latent steps) -> the nearest code in log scale (int16); sigma below half a code
    step of the smallest becomes 0 (a point prior). Refuses what the coder cannot hold."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    if not torch.isfinite(sigma).all():
        raise DDCodecError("a prior's sigma is NaN or infinite")
    if (sigma < 0).any():
        raise DDCodecError(f"a prior's sigma is negative ({float(sigma.min()):.3g}); spreads "
                           "must be >= 0")
    top = SIGMA_MAX * 2.0 ** (0.5 / CODES_PER_OCTAVE)
    if (sigma > top).any():
        raise DDCodecError(f"a prior's sigma is {float(sigma.max()):.4g} latent steps, beyond "
                           f"the coder's range (at most {SIGMA_MAX:.4g})")
    positive = sigma.clamp_min(1e-300)
    u = torch.round(torch.log2(positive) * CODES_PER_OCTAVE) + CODE_UNIT
    u = torch.where(u < 1, torch.zeros_like(u), u).clamp(0, CODE_MAX)
    return u.to(torch.int16)


@dataclass(frozen=True)
class Scales:
    """The spreads of a distributional set: codes G x N x L (decoder group, prior, level),
    the samples each prior adds per epoch, and the seed their noise is keyed by."""

    codes: torch.Tensor  # int16 G x N x L
    samples: int = 1
    seed: int = 0

    def __post_init__(self):
        codes = self.codes
        if not isinstance(codes, torch.Tensor) or codes.ndim != 3 or codes.is_floating_point():
            raise DDCodecError("bad scales: codes must be an integer tensor groups x priors x "
                               "levels")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) > CODE_MAX):
            raise DDCodecError(f"bad scales: codes must lie in [0, {CODE_MAX}]")
        if not (isinstance(self.samples, int) and 1 <= self.samples <= MAX_SAMPLES):
            raise DDCodecError(f"bad scales: samples per prior must be in [1, {MAX_SAMPLES}]")
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2 ** 63):
            raise DDCodecError("bad scales: the seed must be an integer in [0, 2^63)")
        object.__setattr__(self, "codes", codes.to(torch.int16))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.codes.shape)  # type: ignore[return-value]

    def sigma(self) -> torch.Tensor:
        return sigma_of(self.codes)

    def check_against(self, groups: int, per_group: int, levels: int) -> None:
        if self.shape != (groups, per_group, levels):
            raise DDCodecError(f"the scales ({'x'.join(map(str, self.shape))}) disagree with "
                               f"the latents ({groups} decoders x {per_group} priors x "
                               f"{levels} levels)")

    def to_dict(self) -> dict:
        return {"codes": self.codes.contiguous(), "samples": self.samples, "seed": self.seed}

    @classmethod
    def from_dict(cls, raw) -> "Scales":
        if not isinstance(raw, dict) or not {"codes", "samples", "seed"} <= set(raw):
            raise DDCodecError("bad scales: need codes, samples and seed")
        return cls(raw["codes"], raw["samples"], raw["seed"])


def normal_draws(purpose: str, seed: int, epoch: int, ids: np.ndarray, size: int
                 ) -> np.ndarray:
    """Irwin-Hall normals, float64 len(ids) x size: row i a function of (purpose, seed, epoch,
    ids[i]) alone, exact dyadic values (see the module's docstring)."""
    words = seeds.counter_bits(purpose, seed, epoch, ids, size * WORDS_PER_DRAW)
    words = words.reshape(len(ids), size, WORDS_PER_DRAW)
    total = np.zeros((len(ids), size), dtype=np.int64)
    mask = np.uint64((1 << UNIFORM_BITS) - 1)
    for shift in range(0, 64, UNIFORM_BITS):
        total += ((words >> np.uint64(shift)) & mask).astype(np.int64).sum(axis=2)
    return total.astype(np.float64) * 2.0 ** -UNIFORM_BITS - IRWIN_HALL_TERMS / 2


def prior_noise(purpose: str, seed: int, epoch: int, priors: np.ndarray, samples: int,
                sizes: list[int]) -> list[np.ndarray]:
    """eps of `samples` draws of each prior: per level, samples x len(priors) x size (a prior's
    values at that level), keyed by (purpose, seed, epoch, prior x MAX_SAMPLES + sample): a
    draw does not depend on how many others are made."""
    priors = np.asarray(priors, dtype=np.uint64)
    ids = (priors[:, None] * np.uint64(MAX_SAMPLES)
           + np.arange(samples, dtype=np.uint64)[None, :]).T.ravel()  # sample-major
    eps = normal_draws(purpose, seed, epoch, ids, sum(sizes)).reshape(samples, len(priors), -1)
    return np.split(eps, np.cumsum(sizes)[:-1], axis=2)


def sample_grids(means: list[np.ndarray], scales: Scales, k: int, epoch: int,
                 first_prior: list[int], samples: int | None = None,
                 spread_scale: float = 1.0) -> list[np.ndarray]:
    """The samples of every prior at one epoch: per level G x (S x N x C) x h x w int64, sample
    s of all N priors of a group before sample s + 1 (the means' layout, repeated).

    `means`: per level G x (N x C) x h x w integers, the bitstream's layout; prior n of group g
    is keyed as prior `first_prior[g] + n` (its index in the class-ordered set). `samples`:
    how many per prior (default: the file's). `spread_scale`: every sigma times this (the same
    draws eps, so a sample moves along its own direction as the scale changes)."""
    groups, n, _ = scales.shape
    s_count = samples or scales.samples
    sigma = scales.sigma().numpy() * spread_scale  # G x N x L
    sizes = [int(m.shape[1] // n * m.shape[2] * m.shape[3]) for m in means]  # per prior
    out = [np.empty((groups, s_count * m.shape[1], *m.shape[2:]), dtype=np.int64)
           for m in means]
    for g in range(groups):
        for start in range(0, n, PRIOR_CHUNK):
            stop = min(n, start + PRIOR_CHUNK)
            priors = np.arange(first_prior[g] + start, first_prior[g] + stop)
            eps = prior_noise("prior_samples", scales.seed, epoch, priors, s_count, sizes)
            for level, (mu, size) in enumerate(zip(means, sizes)):
                mu_g = mu[g].reshape(n, size)[start:stop].astype(np.float64)
                spread = sigma[g, start:stop, level][None, :, None]
                z = np.clip(np.rint(mu_g[None] + spread * eps[level]), -k, k - 1)
                out[level][g].reshape(s_count, n, size)[:, start:stop] = z.astype(np.int64)
    return out


@dataclass(frozen=True)
class PriorSampler:
    """Makes a distributional set's samples of any epoch with the file's own decoder code
    (ddcodec.codec.decoding.synthesize): the same path decodes the means."""

    geometry: LatentGeometry  # of the means
    steps: list
    weight_ints: list
    means: list  # per level G x (N x C) x h x w int64
    scales: Scales
    spread_scale: float = 1.0  # measure --spread-scale: sample with every sigma times this

    @property
    def samples_per_prior(self) -> int:
        return self.scales.samples

    @property
    def num_priors(self) -> int:
        return self.geometry.groups * self.geometry.per_group

    def prior_of_sample(self, samples: int | None = None) -> torch.Tensor:
        """For each image `images(epoch)` returns: the index of its prior (= its mean's index in
        the class-ordered set)."""
        groups, n = self.geometry.groups, self.geometry.per_group
        s = samples or self.scales.samples
        within = torch.arange(n).repeat(s)
        return (torch.arange(groups)[:, None] * n + within[None, :]).flatten()

    def latents(self, epoch: int, samples: int | None = None) -> list[np.ndarray]:
        n = self.geometry.per_group
        first = [g * n for g in range(self.geometry.groups)]
        return sample_grids(self.means, self.scales, self.geometry.config.k, epoch, first,
                            samples, self.spread_scale)

    def images(self, epoch: int, samples: int | None = None) -> torch.Tensor:
        """uint8 (G x S x N) x C x H x W: every prior's S samples at `epoch` (S: the file's,
        or `samples`; sample s is the same whatever S)."""
        s = samples or self.scales.samples
        if not 1 <= s <= MAX_SAMPLES:
            raise DDCodecError(f"samples per prior must be in [1, {MAX_SAMPLES}]")
        sampled = replace(self.geometry, per_group=self.geometry.per_group * s)
        return synthesize(sampled, self.steps, self.weight_ints, self.latents(epoch, s))


class Resampled:
    """What a distributional set trains on at epoch t (D3's evaluation): the means and S
    fresh samples of every prior, each sample with its prior's label (a class, or a soft
    row). `frozen`: the samples of epoch 0 at every epoch (the control that isolates the value
    of regeneration). `samples`: per prior and epoch, instead of the file's S; 0 trains on the
    means alone (the control that isolates what the samples add)."""

    def __init__(self, means: torch.Tensor, targets: torch.Tensor, sampler: PriorSampler,
                 normalization, frozen: bool = False, samples: int | None = None):
        if targets.shape[0] != means.shape[0] or means.shape[0] != sampler.num_priors:
            raise DDCodecError("a distributional set needs one mean image and one label per "
                               "prior")
        self.samples = sampler.samples_per_prior if samples is None else samples
        if not 0 <= self.samples <= MAX_SAMPLES:
            raise DDCodecError(f"--samples must be in [0, {MAX_SAMPLES}]")
        self.means, self.targets, self.sampler = means, targets, sampler
        self.normalization, self.frozen = normalization, frozen
        self._prior = sampler.prior_of_sample(self.samples) if self.samples else None
        self._frozen: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def images_per_epoch(self) -> int:
        return self.means.shape[0] * (1 + self.samples)

    def __call__(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.samples == 0:
            return self.means, self.targets
        if self.frozen and self._frozen is not None:
            return self._frozen
        samples = self.normalization.normalize(
            self.sampler.images(0 if self.frozen else epoch, self.samples))
        out = (torch.cat([self.means, samples]),
               torch.cat([self.targets, self.targets[self._prior]]))
        if self.frozen:
            self._frozen = out
        return out


def prior_sampler(payload, channels: int) -> "PriorSampler | None":
    """The sampler of a distributional payload in memory (None without scales): the geometry
    and integers its .ddz would decode to (the file stores the gain as float32), so samples
    match the file's exactly."""
    if payload.scales is None:
        return None
    cfg, layout = payload.config, payload.layout
    config = replace(cfg, levels=layout.levels, channels_per_level=layout.channels_per_level,
                     gain=float(np.float32(cfg.gain)))
    groups = 1 if cfg.shared_decoder else len(payload.groups)
    shape = build_geometry(config, layout, channels, groups, payload.num_images // groups)
    ints = [q.q.numpy() for q in payload.weight_groups()]
    return PriorSampler(shape, payload.step_exponents(), ints, payload.latent_grids(),
                        payload.scales)
