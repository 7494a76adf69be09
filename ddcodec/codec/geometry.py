"""A latent set's geometry: the architecture, the latent layout, how many decoders and images
each, and the canonical order and sizes of every decoder's tensor groups. The file's header
determines it (ddcodec.bitstream.geometry reads it from there); a distributional set's sampler
builds the same one from its payload, so both decode through one path."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ddcodec.codec.latents import LatentLayout
from ddcodec.codec.model import KINDS, MODULES, CodecConfig, module_shapes

TensorGroup = tuple[str, str, list[tuple[str, tuple[int, ...]]]]  # module, kind, (name, shape)


def tensor_groups(config: CodecConfig, layout: LatentLayout,
                  channels: int) -> tuple[TensorGroup, ...]:
    """One decoder's tensor groups in canonical order: (module, kind, [(name, shape)])."""
    shapes = module_shapes(config, layout, channels)
    order = []
    for module in MODULES:
        for kind in KINDS:
            names = [(n, s) for n, s in shapes[module].items()
                     if n.endswith("bias") == (kind == "bias")]
            if names:
                order.append((module, kind, names))
    return tuple(order)


@dataclass(frozen=True)
class LatentGeometry:
    config: CodecConfig
    layout: LatentLayout
    channels: int  # image channels
    groups: int  # decoders
    per_group: int  # images per decoder
    order: tuple[TensorGroup, ...]  # one decoder's tensor groups, canonical order

    @property
    def planes(self) -> int:
        """Grids per decoder and level: images x channels per level."""
        return self.per_group * self.layout.channels_per_level

    @property
    def latent_values(self) -> int:
        return self.layout.values_per_image * self.groups * self.per_group

    @property
    def weight_counts(self) -> list[int]:
        """Integers per tensor group, decoder by decoder."""
        per_decoder = [sum(math.prod(s) for _, s in names) for _, _, names in self.order]
        return per_decoder * self.groups

    def split_weights(self, ints: list[np.ndarray], steps: list[list[int]]) -> list[dict]:
        """Flat integer groups -> per decoder {module: {kind: (q, step, [(name, shape)])}}."""
        decoders, it = [], iter(ints)
        for g in range(self.groups):
            entry: dict = {m: {} for m in MODULES}
            for (module, kind, names), step in zip(self.order, steps[g]):
                entry[module][kind] = (next(it), step, names)
            decoders.append(entry)
        return decoders


def build_geometry(config: CodecConfig, layout: LatentLayout, channels: int, groups: int,
             per_group: int) -> LatentGeometry:
    return LatentGeometry(config, layout, channels, groups, per_group,
                          tensor_groups(config, layout, channels))
