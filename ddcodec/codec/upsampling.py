"""The upsampler: one learnable 8x8 transposed-convolution kernel per decoder, initialised to
bicubic, that brings every latent grid to full resolution (shared by all levels and channels, as
in Cool-chic/C3). Kernels are batched: `kernels` is G x 8 x 8 for G decoders."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ddcodec.codec.architecture import UPSAMPLER_TAPS as TAPS

PAD = 2  # replicate padding on each side: the kernel reaches two input pixels away
CROP = 7  # = 2 * PAD + (TAPS // 2 - 1): aligns output pixel o with input position o/2 - 1/4


def _cubic(d: float, a: float = -0.5) -> float:  # Keys' kernel; a = -0.5 is exact on quadratics
    d = abs(d)
    if d <= 1:
        return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
    if d < 2:
        return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a
    return 0.0


def bicubic_kernel() -> torch.Tensor:
    """8 taps at distances -1.75 ... 1.75 (input pixels) for x2 upsampling; each phase sums to 1."""
    taps = torch.tensor([_cubic(k / 2 - 1.75) for k in range(TAPS)], dtype=torch.float64)
    taps[0::2] /= taps[0::2].sum()
    taps[1::2] /= taps[1::2].sum()
    return torch.outer(taps, taps).to(torch.float32)


def upsample2x(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """x: G x N x C x h x w, kernels: G x 8 x 8 -> G x N x C x 2h x 2w."""
    g, n, c, h, w = x.shape
    planes = F.pad(x.reshape(1, g * n * c, h, w), (PAD, PAD, PAD, PAD), mode="replicate")
    weight = kernels.repeat_interleave(n * c, dim=0).unsqueeze(1)  # (G*N*C) x 1 x 8 x 8
    y = F.conv_transpose2d(planes, weight, stride=2, groups=g * n * c)
    return y[:, :, CROP:CROP + 2 * h, CROP:CROP + 2 * w].reshape(g, n, c, 2 * h, 2 * w)


def upsample_stack(grids: list[torch.Tensor], kernels: torch.Tensor) -> torch.Tensor:
    """grids[i]: G x N x c x h_i x w_i, finest first -> G x N x (sum c) x H x W."""
    stack = grids[-1]
    for grid in reversed(grids[:-1]):
        up = upsample2x(stack, kernels)[..., :grid.shape[-2], :grid.shape[-1]]
        stack = torch.cat([grid, up], dim=2)
    return stack
