"""Latent grid layout and the quantisation proxies used while training.

Stored latents are integers in [-K, K-1]. Training keeps a float parameter y per value (in units
of 1/gain, as Cool-chic does, so Adam's step sizes suit it) and decodes gain*y through a
differentiable proxy of rounding: soft rounding with uniform noise between two soft roundings
(C3). Evaluation and the bitstream use hard rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ddcodec.codec.architecture import DEFAULT_GAIN, DEFAULT_K  # noqa: F401


@dataclass(frozen=True)
class LatentLayout:
    """How many grids of which sizes each image has."""

    height: int
    width: int
    levels: int
    channels_per_level: int = 1

    @staticmethod
    def default_levels(height: int, width: int) -> int:
        return int(math.log2(min(height, width))) + 1

    @classmethod
    def for_image(cls, height: int, width: int, levels: int | None = None,
                  channels_per_level: int = 1) -> "LatentLayout":
        levels = levels or cls.default_levels(height, width)
        if levels < 1:
            raise ValueError("a latent layout needs at least one level")
        return cls(height, width, levels, channels_per_level)

    def grid_sizes(self) -> list[tuple[int, int]]:
        return [(math.ceil(self.height / 2 ** i), math.ceil(self.width / 2 ** i))
                for i in range(self.levels)]

    @property
    def values_per_image(self) -> int:
        return self.channels_per_level * sum(h * w for h, w in self.grid_sizes())

    @property
    def total_channels(self) -> int:
        return self.levels * self.channels_per_level

    def to_dict(self) -> dict:
        return {"height": self.height, "width": self.width, "levels": self.levels,
                "channels_per_level": self.channels_per_level}


def softround(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """A differentiable rounding that tends to round() as temperature -> 0 (Agustsson & Theis)."""
    floor = torch.floor(x)
    delta = x - floor - 0.5
    t = torch.as_tensor(temperature, dtype=x.dtype, device=x.device)
    return floor + 0.5 * torch.tanh(delta / t) / torch.tanh(1 / (2 * t)) + 0.5


def quantize(values: torch.Tensor, k: int, mode: str, temperature: float = 0.3,
             noise: float = 1.0, generator: torch.Generator | None = None,
             uniform: torch.Tensor | None = None) -> torch.Tensor:
    """Map scaled latents to (proxies of) integers in [-K, K-1].

    mode "hard": round; "proxy": softround(softround(v) + u) with u ~ U(-noise/2, noise/2);
    "ste": hard round in the forward pass, identity gradient. The proxy's U(0, 1) draws are
    `uniform` when given (drawn by the caller, e.g. per group), else drawn from `generator`.
    """
    values = values.clamp(-k, k - 1)
    if mode == "hard":
        return torch.round(values)
    if mode == "ste":
        return values + (torch.round(values) - values).detach()
    if mode != "proxy":
        raise ValueError(f"unknown quantisation mode {mode!r}")
    if uniform is None:
        uniform = torch.rand(values.shape, generator=generator)
    u = uniform.to(values.device, values.dtype) - 0.5
    return softround(softround(values, temperature) + noise * u, temperature)
