"""The random real subset: `ipc` genuine training images per class, the baseline every method
must beat at equal storage."""

from __future__ import annotations

import torch

from ddcodec import seeds
from ddcodec.data import Dataset
from ddcodec.errors import DDCodecError


def sample_class_indices(dataset: Dataset, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
    pool = dataset.indices_of_class(c)
    if len(pool) < n:
        raise DDCodecError(f"class {dataset.class_names[c]!r} has only {len(pool)} training "
                           f"images; cannot take {n}")
    return pool[torch.randperm(len(pool), generator=generator)[:n]]


def random_real_subset(dataset: Dataset, ipc: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-ordered images (normalised) and labels, the same for the same seed; each class's
    images depend only on (seed, class)."""
    chosen = torch.cat([sample_class_indices(dataset, c, ipc, seeds.keyed("real_subset", seed, c))
                        for c in range(dataset.num_classes)])
    images = dataset.normalization.normalize(dataset.x_train[chosen])
    return images, dataset.y_train[chosen].clone()
