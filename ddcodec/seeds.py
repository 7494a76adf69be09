"""Every random stream of ddcodec, named by its purpose, in one place.

Two kinds of stream:

- **Run streams** (`generator`, `derive`): draws that belong to the whole run (the network of a
  matching iteration, an expert, an evaluation run). Their seeds derive from the run's seed and an
  index (`derive`), so experts and evaluations reproduce from the seed alone.
- **Class streams** (`keyed`): every draw that belongs to one class (its real images, its
  decoder's initial weights and latents, its quantisation noise, its real batches and DSA draws)
  comes from a generator keyed by (purpose, seed, class, counters...), hashed, never from a stream
  shared with other classes. A class's result therefore does not depend on which other classes
  share its process, or in which order the process meets them: the property that lets classes be
  distilled in blocks on several processes and merged. Counters (candidate, step, iteration) make
  the streams counter-based, so a resumed run needs no generator state.
"""

from __future__ import annotations

import hashlib
from typing import Callable

import torch

NETWORK_STRIDE = 1_000_003  # a prime: per-iteration network seeds of different runs never meet

DERIVATIONS: dict[str, Callable[[int, int], int]] = {
    # matching objectives: block-level draws (GM's inner loop, TM's experts, starts and batches);
    # the network of iteration/round i
    "matching_draws": lambda seed, i: seed + 7919,
    "matching_network": lambda seed, i: seed * NETWORK_STRIDE + i,
    # experts: expert i's network, and its batches and augmentation
    "expert_network": lambda seed, i: seed * NETWORK_STRIDE + i,
    "expert_draws": lambda seed, i: seed * NETWORK_STRIDE + i + 104_729,
    # evaluation: a network's batches and augmentation (its weights: seeded_network(seed))
    "eval_draws": lambda seed, i: seed + NETWORK_STRIDE,
}

CLASS_STREAMS: dict[str, str] = {
    "real_subset": "which real images a random subset or a pixel set's start takes (class)",
    "fit_targets": "which real images latent phase 1 fits (class)",
    "packed_order": "the order in which a packed baseline adds a class's images (class)",
    "pixel_init_noise": "a pixel set's noise start (class)",
    "latent_init": "a decoder group's initial latents and weights (first class, candidate)",
    "quantisation_noise": "the training proxy's noise (first class, candidate, step)",
    "class_matching_draws": "a class's real batch and DSA draw (class, iteration)",
    "teacher_holdout": "which training images a teacher holds out to pick its checkpoint (class)",
}


# Sample streams: counter-based uniforms, one row per (epoch, sample), with no generator at all
# (`counter_uniforms`), so a sample's draw is a function of its key on any machine.
SAMPLE_STREAMS: dict[str, str] = {
    "label_views": "the augmented view a per-epoch soft label was made on, and measure replays "
                   "(epoch, sample)",
    "prior_samples": "a distributional set's samples, which measure regenerates (epoch, "
                     "prior x samples + sample)",
    "prior_training_noise": "the samples a distributional set trains on (step, prior x samples "
                            "+ sample)",
}
MASK64 = (1 << 64) - 1


def derive(purpose: str, seed: int, index: int = 0) -> int:
    """The seed of one run stream."""
    try:
        return DERIVATIONS[purpose](seed, index)
    except KeyError:
        raise ValueError(f"no random stream named {purpose!r}") from None


def generator(purpose: str, seed: int, index: int = 0) -> torch.Generator:
    """A CPU generator for one run stream (CPU so draws are the same on every device)."""
    return torch.Generator().manual_seed(derive(purpose, seed, index))


def keyed_seed(purpose: str, seed: int, *keys: int) -> int:
    """A 63-bit seed hashed from (purpose, seed, keys): distinct keys give unrelated streams."""
    if purpose not in CLASS_STREAMS and purpose not in SAMPLE_STREAMS:
        raise ValueError(f"no class stream named {purpose!r}")
    text = ":".join([purpose, str(int(seed)), *(str(int(k)) for k in keys)])
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def keyed(purpose: str, seed: int, *keys: int) -> torch.Generator:
    """A CPU generator for one class stream, keyed by (purpose, seed, class, counters...)."""
    return torch.Generator().manual_seed(keyed_seed(purpose, seed, *keys))


def _splitmix64(x):
    """SplitMix64's finaliser on uint64 arrays (wrapping arithmetic, exact everywhere)."""
    import numpy as np

    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def counter_bits(purpose: str, seed: int, epoch: int, samples, slots: int):
    """Random uint64 words, one row of `slots` per sample: row i is a function of (purpose,
    seed, epoch, samples[i]) alone (a hashed key, then SplitMix64 of a counter), so it does not
    depend on the batch, the order, the thread count or the machine."""
    import numpy as np

    if purpose not in SAMPLE_STREAMS:
        raise ValueError(f"no sample stream named {purpose!r}")
    key = np.uint64(keyed_seed(purpose, seed, epoch))
    ids = np.asarray(samples, dtype=np.uint64)[:, None] * np.uint64(slots) + np.arange(
        slots, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        return _splitmix64(key + (ids + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15))


def counter_uniforms(purpose: str, seed: int, epoch: int, samples, slots: int) -> torch.Tensor:
    """Uniforms in [0, 1), float64, from `counter_bits` (53 bits each)."""
    import numpy as np

    bits = counter_bits(purpose, seed, epoch, samples, slots)
    return torch.from_numpy((bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53)
