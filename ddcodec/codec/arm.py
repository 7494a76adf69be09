"""The autoregressive entropy model (ARM): Laplace parameters of each latent from its causal
neighbours in the same grid.

Contexts come from a 9x9 window: the 40 positions above or left of the centre, nearest first
(ties by row, then column); the ARM uses the first 8, 16, 24 or 32. The network is `hidden`
residual linear layers of width n_ctx (h <- ReLU(W h + b + h)) and a linear layer to (mu, raw log
scale). Only matmuls, adds and ReLU, so an exact integer version exists (the bitstream's).
Weights are batched over G decoders: hidden layers G x d x d, output G x 2 x d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ddcodec.codec.laplace import bits, log_scale_from_output

from ddcodec.codec.architecture import CONTEXT_SIZES, HALF, WINDOW, causal_offsets  # noqa: F401
from ddcodec.codec.architecture import arm_shapes as parameter_shapes  # noqa: F401


def gather_contexts(grid: torch.Tensor, offsets: list[tuple[int, int]]) -> torch.Tensor:
    """grid G x N x C x h x w -> G x (N*C*h*w) x n_ctx causal neighbours, zero outside."""
    g, n, c, h, w = grid.shape
    padded = F.pad(grid.reshape(g * n * c, h, w), (HALF, HALF, HALF, 0))
    return _ShiftedViews.apply(padded, tuple(offsets), h, w).reshape(g, n * c * h * w,
                                                                    len(offsets))


class _ShiftedViews(torch.autograd.Function):
    """The contexts as n_ctx shifted views of the padded grid, stacked (2-4x faster than
    unfolding all 45 window positions to keep n_ctx, forward and backward). The backward adds
    each offset's gradient in window order, the order im2col's col2im adds them in, so the
    gradients are bit for bit those of the unfold formulation (tested)."""

    @staticmethod
    def forward(ctx, padded, offsets, h, w):
        ctx.offsets, ctx.padded_shape, ctx.size = offsets, padded.shape, (h, w)
        return torch.stack([padded[:, HALF + dy:HALF + dy + h, HALF + dx:HALF + dx + w]
                            for dy, dx in offsets], dim=-1)

    @staticmethod
    def backward(ctx, grad):
        (h, w), out = ctx.size, grad.new_zeros(ctx.padded_shape)
        for i in sorted(range(len(ctx.offsets)), key=lambda j: ctx.offsets[j]):
            dy, dx = ctx.offsets[i]
            out[:, HALF + dy:HALF + dy + h, HALF + dx:HALF + dx + w] += grad[..., i]
        return out, None, None, None


def laplace_parameters(contexts: torch.Tensor, params: dict[str, torch.Tensor], hidden: int):
    """contexts G x M x d -> (mu, log scale), each G x M."""
    h = contexts
    for i in range(hidden):
        h = F.relu(torch.baddbmm(params[f"hidden{i}_bias"][:, None, :], h,
                                 params[f"hidden{i}_weight"].transpose(1, 2)) + h)
    raw = torch.baddbmm(params["out_bias"][:, None, :], h, params["out_weight"].transpose(1, 2))
    return raw[..., 0], log_scale_from_output(raw[..., 1])


def grid_bits(grid: torch.Tensor, params: dict[str, torch.Tensor], offsets, hidden: int,
              contexts: torch.Tensor | None = None):
    """Bits of each decoder's grid of (proxy) integers: G x N x C x h x w -> G. `contexts`:
    the grid's gathered contexts, when the caller keeps them (a fixed grid priced under many
    ARM weights, as in the weight-quantisation search)."""
    if contexts is None:
        contexts = gather_contexts(grid, offsets)
    mu, log_scale = laplace_parameters(contexts, params, hidden)
    return bits(grid.reshape(grid.shape[0], -1), mu, log_scale).sum(1)
