"""Every random stream of ddcodec, named by its purpose, in one place.

Each purpose derives its generator's seed from the run's seed (and an index: an iteration, a
round, an expert) exactly as the code before this module did, so results reproduce bit for bit.
Draws that belong to one class still come from streams shared by all classes in the order a
process meets them; keying them by (seed, purpose, class) instead is the next step (it changes
every published figure, so it lands with a re-measured report).
"""

from __future__ import annotations

from typing import Callable

import torch

NETWORK_STRIDE = 1_000_003  # a prime: per-iteration network seeds of different runs never meet

DERIVATIONS: dict[str, Callable[[int, int], int]] = {
    # which real images: random subsets, the images latent phase 1 fits, packed baselines
    "real_subset": lambda seed, i: seed,
    "fit_targets": lambda seed, i: seed,
    "packed_order": lambda seed, i: seed,
    "pixel_init_noise": lambda seed, i: seed,
    # the latent model: initial latents and decoders, the quantisation proxy's noise
    "latent_init": lambda seed, i: seed + 17,
    "quantisation_noise": lambda seed, i: seed + 31,
    # matching objectives: real batches and DSA draws; the network of iteration/round i
    "matching_draws": lambda seed, i: seed + 7919,
    "matching_network": lambda seed, i: seed * NETWORK_STRIDE + i,
    # experts: expert i's network, and its batches and augmentation
    "expert_network": lambda seed, i: seed * NETWORK_STRIDE + i,
    "expert_draws": lambda seed, i: seed * NETWORK_STRIDE + i + 104_729,
    # evaluation: a network's batches and augmentation (its weights: seeded_network(seed))
    "eval_draws": lambda seed, i: seed + NETWORK_STRIDE,
}


def derive(purpose: str, seed: int, index: int = 0) -> int:
    """The seed of one stream."""
    try:
        return DERIVATIONS[purpose](seed, index)
    except KeyError:
        raise ValueError(f"no random stream named {purpose!r}") from None


def generator(purpose: str, seed: int, index: int = 0) -> torch.Generator:
    """A CPU generator for one stream (CPU so draws are the same on every device)."""
    return torch.Generator().manual_seed(derive(purpose, seed, index))
