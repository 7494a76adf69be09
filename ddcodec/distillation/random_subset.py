"""The random real subset: `ipc` genuine training images per class, the baseline every method
must beat at equal storage."""

from __future__ import annotations

import torch

from ddcodec import seeds
from ddcodec.data.datasets import Dataset
from ddcodec.errors import DDCodecError


def sample_class_indices(dataset: Dataset, c: int, n: int,
                         generator: torch.Generator) -> torch.Tensor:
    pool = dataset.indices_of_class(c)
    if len(pool) < n:
        raise DDCodecError(f"class {dataset.class_names[c]!r} has only {len(pool)} training "
                           f"images; cannot take {n}")
    return pool[torch.randperm(len(pool), generator=generator)[:n]]


def random_real_subset(dataset: Dataset, ipc: int | list[int], seed: int,
                       normalization=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-ordered images (normalised, by `normalization` or the data's) and labels, `ipc`
    per class (or `ipc[c]` of class c), the same for the same seed; each class's images depend
    only on (seed, class)."""
    counts = [ipc] * dataset.num_classes if isinstance(ipc, int) else list(ipc)
    chosen = torch.cat([sample_class_indices(dataset, c, n, seeds.keyed("real_subset", seed, c))
                        for c, n in enumerate(counts) if n])
    images = (normalization or dataset.normalization).normalize(dataset.x_train[chosen])
    return images, dataset.y_train[chosen].clone()
