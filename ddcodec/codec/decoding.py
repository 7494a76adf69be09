"""Images from latents: the float decoder on the CPU (dequantised weights q x 2^step, the
upsampler, the synthesis), run over the images in chunks so memory stays bounded, and what it
costs in memory (the decoder's bound counts it). Shared by the decoder and by a distributional
set's sampler, so samples and means go through one path."""

from __future__ import annotations

import numpy as np
import torch

from ddcodec.codec.geometry import LatentGeometry
from ddcodec.codec import synthesis, upsampling

SYNTHESIS_CHUNK_BYTES = 64 << 20  # float synthesis runs over images in chunks of about this


def synthesis_bytes(geometry: LatentGeometry) -> int:
    """Float32 working memory of synthesising one image (upsampled stack, widest layer): what
    sizes the chunks (the chunking decides the images tensor's layout, which `measure` follows
    to the last digit, so this formula is part of what a file decodes to)."""
    widest = max(synthesis.preset_widths(geometry.config.decoder))
    layout = geometry.layout
    return 4 * layout.height * layout.width * (2 * layout.total_channels + 3 * widest
                                               + 2 * geometry.channels)


def synthesis_peak(geometry: LatentGeometry) -> int:
    """Float32 bytes synthesising one image may hold at its peak, for the memory bound: the
    upsampler's transposed convolution makes each latent plane (2h + 14) x (2w + 14) before it
    crops to 2h x 2w, its padded input (h + 4) x (w + 4) and an 8 x 8 kernel copy, which on
    small images (1 x 1: 256 values for 4 kept) is far more than the image itself."""
    layout = geometry.layout
    h, w = layout.height, layout.width
    per_plane = (2 * h + 14) * (2 * w + 14) + (h + 4) * (w + 4) + 64
    return synthesis_bytes(geometry) + 4 * layout.total_channels * per_plane


def synthesis_chunk(geometry: LatentGeometry) -> int:
    """Images per decoder synthesised at once: about SYNTHESIS_CHUNK_BYTES for all decoders."""
    per_image = geometry.groups * synthesis_bytes(geometry)
    return min(geometry.per_group, max(1, SYNTHESIS_CHUNK_BYTES // per_image))


def _float_params(decoders, module: str) -> dict[str, torch.Tensor]:
    """Dequantised parameters of one module, stacked over decoders: value = q * 2^step."""
    params: dict[str, list[torch.Tensor]] = {}
    for entry in decoders:
        for q, step, names in entry[module].values():
            values = torch.from_numpy(q.astype(np.float64) * 2.0 ** step)
            offset = 0
            for name, shape in names:
                n = int(np.prod(shape))
                params.setdefault(name, []).append(values[offset:offset + n].view(shape).float())
                offset += n
    return {k: torch.stack(v) for k, v in params.items()}


@torch.no_grad()
def synthesize(geometry: LatentGeometry, steps: list[list[int]], ints: list[np.ndarray],
               latents: list[np.ndarray], device: str | torch.device = "cpu") -> torch.Tensor:
    """Float decoder: latents and dequantised weights -> uint8 images (on the CPU), class-ordered.
    Runs over the images of every decoder in chunks, so memory stays bounded on large sets.
    `device`: where the float work runs; the CPU is the reference a file decodes to, another
    device may land a few subpixels one 8-bit level away (benchmarks/gpu_check.py counts them)."""
    decoders = geometry.split_weights(ints, steps)
    groups, per_group, cpl = geometry.groups, geometry.per_group, geometry.layout.channels_per_level
    grids = [torch.from_numpy(x.astype(np.float32)).view(groups, per_group, cpl, *x.shape[-2:])
             .to(device) for x in latents]
    kernels = _float_params(decoders, "upsampler")["kernel_weight"].to(device)
    weights = {k: v.to(device) for k, v in _float_params(decoders, "synthesis").items()}
    n_pointwise = len(synthesis.preset_widths(geometry.config.decoder)) + 1
    chunk = synthesis_chunk(geometry)
    out = []
    for start in range(0, per_group, chunk):
        part = [g[:, start:start + chunk] for g in grids]
        stack = upsampling.upsample_stack(part, kernels)
        images = synthesis.synthesize(stack, weights, n_pointwise)
        out.append(images.clamp(0, 1).mul(255).round().to(torch.uint8).cpu())
    # one chunk: the tensor as synthesised, strides included (measure's convolutions follow the
    # memory layout, so a copy would move accuracies in the last digits)
    return (out[0] if len(out) == 1 else torch.cat(out, dim=1)).flatten(0, 1)
