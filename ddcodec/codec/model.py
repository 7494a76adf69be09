"""A bank of G decoder groups, computed in one batch.

A group is a set of synthetic images that share one decoder (upsampler, synthesis, ARM): a class
by default, or all images with a shared decoder; during the warm-up, each candidate is a group
too. Every parameter has a leading group axis, so the whole bank runs as grouped convolutions and
batched matmuls instead of a Python loop over small modules. Adam is elementwise, so training the
bank equals training each group on its own. Decoded images are in [0, 1] pixel space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn

from ddcodec.codec import arm, synthesis, upsampling
from ddcodec.codec.architecture import KINDS, MODULES, CodecConfig, module_shapes  # noqa: F401
from ddcodec.codec.latents import LatentLayout, quantize

LATENT_INIT = 0.05  # latents start uniform in [-0.05, 0.05] (in 1/gain units)


@dataclass
class Proxy:
    """How latents are quantised in a forward pass. The proxy's noise comes from one generator
    per group, so a group's draws never depend on the other groups of the bank."""

    mode: str = "hard"  # hard | proxy | ste
    temperature: float = 0.3
    noise: float = 1.0
    generators: Sequence[torch.Generator] | None = None


class LatentBank(nn.Module):
    def __init__(self, groups: int, images_per_group: int, image_channels: int,
                 layout: LatentLayout, config: CodecConfig,
                 generators: Sequence[torch.Generator]):
        """`generators`: one per group; a group's initial latents and weights come from its own
        generator alone (latents level by level, then the modules' tensors in order)."""
        super().__init__()
        if len(generators) != groups:
            raise ValueError(f"a bank of {groups} groups needs {groups} generators")
        self.layout, self.config, self.image_channels = layout, config, image_channels
        self.offsets = arm.causal_offsets(config.arm_context)
        self.n_pointwise = len(synthesis.preset_widths(config.decoder)) + 1
        n = images_per_group
        shapes = module_shapes(config, layout, image_channels)
        drawn = [_initial_group(n, layout, shapes, generator) for generator in generators]
        self.latents = nn.ParameterList(
            nn.Parameter(torch.stack([group[0][level] for group in drawn]))
            for level in range(layout.levels))
        self.modules_ = nn.ModuleDict({
            name: nn.ParameterDict({key: nn.Parameter(torch.stack([group[1][name][key]
                                                                   for group in drawn]))
                                    for key in shapes[name]})
            for name in MODULES})

    @property
    def groups(self) -> int:
        return self.latents[0].shape[0]

    @property
    def images_per_group(self) -> int:
        return self.latents[0].shape[1]

    def module(self, name: str) -> nn.ParameterDict:
        return self.modules_[name]

    def params(self, name: str) -> dict[str, torch.Tensor]:
        return dict(self.modules_[name].items())

    def quantized_latents(self, proxy: Proxy) -> list[torch.Tensor]:
        grids = []
        for y in self.latents:
            uniform = None
            if proxy.mode == "proxy":
                if proxy.generators is None or len(proxy.generators) != len(y):
                    raise ValueError("the noisy proxy needs one generator per group")
                uniform = torch.stack([torch.rand(y.shape[1:], generator=g)
                                       for g in proxy.generators])
            grids.append(quantize(self.config.gain * y, self.config.k, proxy.mode,
                                  proxy.temperature, proxy.noise, uniform=uniform))
        return grids

    def upsample(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """The upsampled stack of every level: what the synthesis reads."""
        return upsampling.upsample_stack(grids, self.modules_["upsampler"]["kernel_weight"])

    def synthesize(self, grids: list[torch.Tensor] | None = None,
                   stack: torch.Tensor | None = None) -> torch.Tensor:
        """G x N x C x H x W images from quantised grids (or their upsampled `stack`, kept by
        a caller that varies only the synthesis)."""
        if stack is None:
            stack = self.upsample(grids)
        return synthesis.synthesize(stack, self.params("synthesis"), self.n_pointwise)

    def contexts(self, grids: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every level's gathered ARM contexts (for pricing fixed grids many times)."""
        return [arm.gather_contexts(grid, self.offsets) for grid in grids]

    def latent_bits(self, grids: list[torch.Tensor],
                    contexts: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Bits of each group's latents under its ARM: G."""
        params = self.params("arm")
        contexts = contexts or [None] * len(grids)
        return sum(arm.grid_bits(grid, params, self.offsets, self.config.arm_hidden, ctx)
                   for grid, ctx in zip(grids, contexts))

    def forward(self, proxy: Proxy) -> tuple[torch.Tensor, torch.Tensor]:
        grids = self.quantized_latents(proxy)
        return self.synthesize(grids), self.latent_bits(grids)

    @torch.no_grad()
    def keep(self, indices: list[int]) -> None:
        """Keep only the given groups (candidate selection), in that order."""
        index = torch.tensor(indices, device=self.latents[0].device)
        for p in self.parameters():
            p.data = p.data.index_select(0, index)

    def clip_grad_norm_per_group(self, max_norm: float) -> None:
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads or max_norm <= 0:
            return
        norms = torch.stack([g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *([1] * (g.ndim - 1))))


def _initial_group(images: int, layout: LatentLayout,
                   shapes: dict[str, dict[str, tuple[int, ...]]], generator: torch.Generator
                   ) -> tuple[list[torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
    """One group's initial latents (uniform in +-LATENT_INIT) and decoder, from its generator."""
    latents = [(torch.rand(images, layout.channels_per_level, h, w, generator=generator) * 2 - 1)
               * LATENT_INIT for h, w in layout.grid_sizes()]
    return latents, {name: _initial_module(shapes[name], generator) for name in MODULES}


def _initial_module(shapes: dict[str, tuple[int, ...]],
                    generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Linear-layer default init (weights and biases uniform in +-1/sqrt(fan_in)); residual
    convs start at zero (the identity), the upsampler at bicubic."""
    values = {}
    for key, shape in shapes.items():
        if key == "kernel_weight":
            values[key] = upsampling.bicubic_kernel().expand(*shape).clone()
        elif key.startswith("residual"):
            values[key] = torch.zeros(*shape)
        else:
            weight_shape = shapes[key.replace("_bias", "_weight")]
            bound = 1 / math.sqrt(math.prod(weight_shape[1:]))
            values[key] = (torch.rand(*shape, generator=generator) * 2 - 1) * bound
    return values
