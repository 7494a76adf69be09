"""A latent file's geometry, worked out once from its header: the architecture, the latent
layout, how many decoders and images each, and the canonical order and sizes of every decoder's
tensor groups. Everything that reads a latent section takes it from here."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ddcodec.bitstream.bytesio import FormatError
from ddcodec.bitstream.format import Header, LatentHeader
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

    @classmethod
    def from_header(cls, h: Header) -> "LatentGeometry":
        lat = h.latent
        try:
            config = CodecConfig(decoder=lat.decoder, arm_context=lat.arm_context,
                                 arm_hidden=lat.arm_hidden, levels=lat.levels,
                                 channels_per_level=lat.channels_per_level, gain=lat.gain,
                                 k=lat.k, shared_decoder=h.shared_decoder)
        except ValueError as exc:
            raise FormatError(f"corrupt or unsupported header: {exc}") from exc
        layout = LatentLayout(h.height, h.width, lat.levels, lat.channels_per_level)
        if any(side < 1 for size in layout.grid_sizes() for side in size):
            raise FormatError("corrupt header: bad latent layout")
        groups = 1 if h.shared_decoder else h.num_classes
        if not h.shared_decoder and len(set(h.samples_per_class)) != 1:
            raise FormatError("corrupt header: per-class decoders need equal samples per class")
        if len(lat.steps) != groups:
            raise FormatError("corrupt header: wrong number of decoders")
        order = tensor_groups(config, layout, h.channels)
        if any(len(row) != len(order) for row in lat.steps):
            raise FormatError("corrupt header: wrong number of quantisation steps")
        per_group = h.num_images // groups
        return cls(config, layout, h.channels, groups, per_group, order)

    def split_weights(self, ints: list[np.ndarray], steps: list[list[int]]) -> list[dict]:
        """Flat integer groups -> per decoder {module: {kind: (q, step, [(name, shape)])}}."""
        decoders, it = [], iter(ints)
        for g in range(self.groups):
            entry: dict = {m: {} for m in MODULES}
            for (module, kind, names), step in zip(self.order, steps[g]):
                entry[module][kind] = (next(it), step, names)
            decoders.append(entry)
        return decoders


def latent_header(payload) -> LatentHeader:
    """The latent part of a header for a LatentPayload (the file it encodes to)."""
    cfg, lay = payload.config, payload.layout
    return LatentHeader(cfg.decoder, cfg.arm_context, cfg.arm_hidden, lay.levels,
                            lay.channels_per_level, float(np.float32(cfg.gain)), cfg.k,
                            payload.step_exponents())
