"""A latent file's geometry, worked out once from its header (everything that reads a latent
section takes it from here), and the latent part of the header a payload encodes to."""

from __future__ import annotations

import numpy as np

from ddcodec.coding.bytesio import FormatError
from ddcodec.bitstream.format import Header, LatentHeader
from ddcodec.codec.architecture import CodecConfig
from ddcodec.codec.geometry import LatentGeometry, build_geometry
from ddcodec.codec.latents import LatentLayout


def geometry_from_header(h: Header) -> LatentGeometry:
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
    found = build_geometry(config, layout, h.channels, groups, h.num_images // groups)
    if any(len(row) != len(found.order) for row in lat.steps):
        raise FormatError("corrupt header: wrong number of quantisation steps")
    return found


def latent_header(payload) -> LatentHeader:
    """The latent part of a header for a LatentPayload (the file it encodes to)."""
    cfg, lay = payload.config, payload.layout
    return LatentHeader(cfg.decoder, cfg.arm_context, cfg.arm_hidden, lay.levels,
                            lay.channels_per_level, float(np.float32(cfg.gain)), cfg.k,
                            payload.step_exponents())
