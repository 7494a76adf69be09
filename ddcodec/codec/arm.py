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
    padded = F.pad(grid.reshape(g * n * c, 1, h, w), (HALF, HALF, HALF, 0))
    patches = F.unfold(padded, kernel_size=(HALF + 1, WINDOW))  # (G*N*C) x 45 x (h*w)
    index = torch.tensor([(dy + HALF) * WINDOW + (dx + HALF) for dy, dx in offsets],
                         device=grid.device)
    return patches.index_select(1, index).transpose(1, 2).reshape(g, n * c * h * w, len(offsets))


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
