"""Pixel-space distillation: the synthetic images are free pixels, learnt under one objective.

Only the pixels learn (SGD with momentum 0.5, the learning rate per loss as the references: DM 1,
DC/DSA 0.1, MTT 100), starting from random real images of each class (or noise). Objectives with
learnable state of their own (MTT's student learning rate) step it after every update.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ddcodec import seeds
from ddcodec.data.datasets import Dataset
from ddcodec.distillation.objectives import make_objective
from ddcodec.distillation.random_subset import random_real_subset

if TYPE_CHECKING:
    from ddcodec.distillation import DistillConfig, ProgressHook


def distill_pixels(dataset: Dataset, config: "DistillConfig", device: torch.device,
                   on_iteration: "ProgressHook | None" = None):
    """Return (images, labels, summary of the objective's learnt state)."""
    images, labels = random_real_subset(dataset, config.pixels.ipc, config.seed)
    if config.pixels.init == "noise":
        per_class = images.shape[0] // dataset.num_classes
        images = torch.cat([torch.randn(per_class, *images.shape[1:],
                                        generator=seeds.keyed("pixel_init_noise", config.seed, c))
                            for c in range(dataset.num_classes)])
    synthetic = images.to(device).requires_grad_(True)
    optimizer = torch.optim.SGD([synthetic], lr=config.pixels.lr_img,
                                momentum=config.pixels.momentum)
    objective = make_objective(dataset, config, device, config.pixels.ipc)
    counts = [config.pixels.ipc] * dataset.num_classes
    for iteration in range(config.matching.iterations):
        loss = objective(synthetic, counts, iteration)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        objective.update()
        if on_iteration is not None:
            on_iteration(iteration, float(loss.detach()) / dataset.num_classes)
    return synthetic.detach(), labels, objective.summary()
