"""The synthesis network: 1x1 convolutions (ReLU between) to the image channels, then two 3x3
residual convolutions with replicate padding, zero-initialised (ReLU after the first).

Presets follow the paper's code (hidden widths of the 1x1 layers); parameter counts for 6 latent
channels and 3 image channels are v0 571, v3-2 1,771, v4 7,851, v5 11,611, v6 15,371. Weights are
batched over G decoders: a 1x1 layer is G x out x in, a 3x3 layer G x C x C x 3 x 3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PRESETS: dict[str, tuple[int, ...]] = {
    "v0-0": (24,), "v0": (40,), "v2": (20, 20, 20), "v1": (40, 20), "v3-2": (160,),
    "v3-4": (240,), "v5-1": (240,), "v3-3": (80, 40), "v5-3": (480,), "v3": (128, 40),
    "v4": (160, 40), "v5": (240, 40), "v6": (320, 40), "v7": (480, 40),
}
RESIDUAL_LAYERS = 2


def preset_widths(name: str) -> tuple[int, ...]:
    if name not in PRESETS:
        raise ValueError(f"unknown decoder preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def parameter_shapes(in_channels: int, out_channels: int, widths: tuple[int, ...]):
    """Name -> per-decoder shape, in layer order."""
    shapes: dict[str, tuple[int, ...]] = {}
    sizes = (in_channels, *widths, out_channels)
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f"pointwise{i}_weight"] = (b, a)
        shapes[f"pointwise{i}_bias"] = (b,)
    for j in range(RESIDUAL_LAYERS):
        shapes[f"residual{j}_weight"] = (out_channels, out_channels, 3, 3)
        shapes[f"residual{j}_bias"] = (out_channels,)
    return shapes


def synthesize(x: torch.Tensor, params: dict[str, torch.Tensor], n_pointwise: int) -> torch.Tensor:
    """x: G x N x L x H x W -> G x N x C x H x W."""
    for i in range(n_pointwise):
        x = torch.einsum("gnchw,goc->gnohw", x, params[f"pointwise{i}_weight"]) \
            + params[f"pointwise{i}_bias"][:, None, :, None, None]
        if i < n_pointwise - 1:
            x = F.relu(x)
    g, n, c, h, w = x.shape
    for j in range(RESIDUAL_LAYERS):
        planes = x.transpose(0, 1).reshape(n, g * c, h, w)
        conv = F.conv2d(F.pad(planes, (1, 1, 1, 1), mode="replicate"),
                        params[f"residual{j}_weight"].reshape(g * c, c, 3, 3),
                        params[f"residual{j}_bias"].reshape(g * c), groups=g)
        x = x + conv.reshape(n, g, c, h, w).transpose(0, 1)
        if j < RESIDUAL_LAYERS - 1:
            x = F.relu(x)
    return x
