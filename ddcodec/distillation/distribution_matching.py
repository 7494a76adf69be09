"""Distribution matching (DM, Zhao & Bilen 2023) on pixels.

Each iteration draws a fresh randomly initialised, frozen network; for every class it embeds a
real batch and the class's synthetic images under the same (siamese) DSA draw and penalises the
squared distance between the two mean embeddings. Only the synthetic pixels learn (SGD, lr 1,
momentum 0.5 by default). All classes go through the network in one batch, which gives the same
loss as per-class passes (the norm layers are per-sample) at a better speed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ddcodec.augment import DSA, DSAParams
from ddcodec.data import Dataset
from ddcodec.distillation.random_subset import random_real_subset, sample_class_indices
from ddcodec.networks import seeded_network

if TYPE_CHECKING:
    from ddcodec.distillation import DistillConfig, ProgressHook


def distribution_matching(dataset: Dataset, config: "DistillConfig", device: torch.device,
                          on_iteration: "ProgressHook | None" = None):
    images, labels = random_real_subset(dataset, config.ipc, config.seed)
    if config.init == "noise":
        images = torch.randn(images.shape, generator=torch.Generator().manual_seed(config.seed))
    synthetic = images.to(device).requires_grad_(True)
    optimizer = torch.optim.SGD([synthetic], lr=config.lr_img, momentum=config.momentum)
    augment = DSA(DSAParams(strategy=config.dsa_strategy))
    generator = torch.Generator().manual_seed(config.seed + 7919)
    k, ipc = dataset.num_classes, config.ipc
    c, h, w = dataset.image_shape
    real_per_class = [min(config.batch_real, len(dataset.indices_of_class(j))) for j in range(k)]
    for iteration in range(config.iterations):
        net = seeded_network(config.arch, c, k, (h, w), config.seed * 1_000_003 + iteration, device)
        for p in net.parameters():
            p.requires_grad_(False)
        real_batches, syn_batches = [], []
        for j in range(k):
            index = sample_class_indices(dataset, j, real_per_class[j], generator)
            real = dataset.normalization.normalize(dataset.x_train[index]).to(device)
            plan = augment.draw(real.shape, generator, shared=True)
            real_batches.append(augment.apply(real, plan))
            syn_batches.append(augment.apply(synthetic[j * ipc:(j + 1) * ipc], plan))
        with torch.no_grad():
            real_embed = net.embed(torch.cat(real_batches))
        syn_embed = net.embed(torch.cat(syn_batches))
        loss = synthetic.new_zeros(())
        for r, s in zip(real_embed.split(real_per_class), syn_embed.split(ipc)):
            loss = loss + ((r.mean(0) - s.mean(0)) ** 2).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_iteration is not None:
            on_iteration(iteration, float(loss.detach()) / k)
    return synthetic.detach(), labels
