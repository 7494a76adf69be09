"""Utility objectives: how well a synthetic set stands in for the real data.

An objective is called with the synthetic images (normalised, class-ordered, `counts[c]` images
of class c) and the iteration number, and returns a differentiable scalar. Its randomness comes
from its own generator, whose state `state()`/`load_state()` save and restore so that resumed
runs repeat an uninterrupted one exactly. Gradient and trajectory matching plug in here.
"""

from __future__ import annotations

from typing import Protocol

import torch

from ddcodec.augment import DSA, DSAParams
from ddcodec.data import Dataset
from ddcodec.distillation.random_subset import sample_class_indices
from ddcodec.networks import seeded_network


class Objective(Protocol):
    def __call__(self, synthetic: torch.Tensor, counts: list[int], iteration: int) -> torch.Tensor: ...

    def state(self) -> dict: ...

    def load_state(self, state: dict) -> None: ...


class DistributionMatching:
    """DM (Zhao & Bilen): match per-class mean embeddings of a fresh random frozen network.

    Iteration i uses the network seeded by (seed, i); every class draws `batch_real` real images
    and one siamese DSA draw for its real and synthetic images. All classes share one forward
    pass (the norm layers are per-sample, so this equals per-class passes).
    """

    def __init__(self, dataset: Dataset, arch: str, batch_real: int, dsa_strategy: str,
                 seed: int, device: torch.device):
        self.dataset, self.arch, self.seed, self.device = dataset, arch, seed, device
        self.augment = DSA(DSAParams(strategy=dsa_strategy))
        self.generator = torch.Generator().manual_seed(seed + 7919)
        self.real_per_class = [min(batch_real, len(dataset.indices_of_class(c)))
                               for c in range(dataset.num_classes)]

    def __call__(self, synthetic: torch.Tensor, counts: list[int], iteration: int) -> torch.Tensor:
        ds = self.dataset
        c, h, w = ds.image_shape
        net = seeded_network(self.arch, c, ds.num_classes, (h, w),
                             self.seed * 1_000_003 + iteration, self.device)
        for p in net.parameters():
            p.requires_grad_(False)
        real_batches, syn_batches = [], []
        for cls, syn in enumerate(synthetic.split(counts)):
            index = sample_class_indices(ds, cls, self.real_per_class[cls], self.generator)
            real = ds.normalization.normalize(ds.x_train[index]).to(self.device)
            plan = self.augment.draw(real.shape, self.generator, shared=True)
            real_batches.append(self.augment.apply(real, plan))
            syn_batches.append(self.augment.apply(syn, plan))
        with torch.no_grad():
            real_embed = net.embed(torch.cat(real_batches))
        syn_embed = net.embed(torch.cat(syn_batches))
        loss = synthetic.new_zeros(())
        for r, s in zip(real_embed.split(self.real_per_class), syn_embed.split(counts)):
            if len(s):
                loss = loss + ((r.mean(0) - s.mean(0)) ** 2).sum()
        return loss

    def state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
