"""Distribution matching (DM, Zhao & Bilen 2023) on pixels.

Only the synthetic pixels learn (SGD, lr 1, momentum 0.5 by default, as the reference), starting
from random real images of each class (or noise) under the DM objective.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ddcodec.data import Dataset
from ddcodec.distillation.objectives import DistributionMatching
from ddcodec.distillation.random_subset import random_real_subset

if TYPE_CHECKING:
    from ddcodec.distillation import DistillConfig, ProgressHook


def distribution_matching(dataset: Dataset, config: "DistillConfig", device: torch.device,
                          on_iteration: "ProgressHook | None" = None):
    images, labels = random_real_subset(dataset, config.ipc, config.seed)
    if config.init == "noise":
        images = torch.randn(images.shape, generator=torch.Generator().manual_seed(config.seed))
    synthetic = images.to(device).requires_grad_(True)
    optimizer = torch.optim.SGD([synthetic], lr=config.lr_img, momentum=config.momentum)
    objective = DistributionMatching(dataset, config.arch, config.batch_real,
                                     config.dsa_strategy, config.seed, device)
    counts = [config.ipc] * dataset.num_classes
    for iteration in range(config.iterations):
        loss = objective(synthetic, counts, iteration)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_iteration is not None:
            on_iteration(iteration, float(loss.detach()) / dataset.num_classes)
    return synthetic.detach(), labels
