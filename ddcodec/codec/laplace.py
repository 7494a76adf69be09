"""Laplace bin probabilities and bits, the rate that training minimises.

The ARM's second output o gives log b = clamp(o - LOG_SCALE_SHIFT, LOG_SCALE_MIN, LOG_SCALE_MAX);
both bounds lie on the 2^-8 grid that the integer entropy coder will index. The probability of
an integer x is CDF(x + 1/2) - CDF(x - 1/2), floored at 2^-24 as the range coder floors it (so
training and phase 3 price improbable latents as the file will), computed on the side of the mean
where it does not cancel.
"""

from __future__ import annotations

import torch

from ddcodec.fixedpoint import LOG_SCALE_MAX, LOG_SCALE_MIN, LOG_SCALE_SHIFT  # noqa: F401
from ddcodec.fixedpoint import WEIGHT_MIN_SCALE

SCALE_BITS = 32  # each weight group's Laplace scale travels as a float32

PROB_FLOOR = 2.0 ** -24  # the range coder gives every symbol at least 2^-24


def log_scale_from_output(raw: torch.Tensor) -> torch.Tensor:
    return (raw - LOG_SCALE_SHIFT).clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)


def bin_probability(x: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    inv_b = torch.exp(-log_scale)
    lo = (x - 0.5 - mu) * inv_b
    hi = (x + 0.5 - mu) * inv_b
    below = 0.5 * (torch.exp(hi.clamp(max=0)) - torch.exp(lo.clamp(max=0)))  # bin left of mu
    above = 0.5 * (torch.exp(-lo.clamp(min=0)) - torch.exp(-hi.clamp(min=0)))  # right of mu
    across = 1 - 0.5 * torch.exp(lo.clamp(max=0)) - 0.5 * torch.exp(-hi.clamp(min=0))
    p = torch.where(hi <= 0, below, torch.where(lo >= 0, above, across))
    return p.clamp_min(PROB_FLOOR)


def bits(x: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """-log2 P(x) per symbol."""
    return -torch.log2(bin_probability(x, mu, log_scale))


def zero_mean_laplace_bits(q: torch.Tensor) -> torch.Tensor:
    """Ideal bits of each row of integers under a zero-mean Laplace with b = mean|q| (at least
    0.05), plus the bits of b itself: G x n -> G."""
    q = q.double()
    if q.shape[1] == 0:
        return torch.zeros(q.shape[0], dtype=torch.float64)
    b = q.abs().mean(1, keepdim=True).clamp_min(WEIGHT_MIN_SCALE)
    per_symbol = bits(q, torch.zeros_like(q), torch.log(b).expand_as(q))
    return per_symbol.sum(1) + SCALE_BITS
