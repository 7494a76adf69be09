"""Distillation methods: each turns a Dataset into a DistilledSet under a DistillConfig."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch

from ddcodec import __version__
from ddcodec.augment import DEFAULT_STRATEGY
from ddcodec.data import Dataset
from ddcodec.errors import DDCodecError
from ddcodec.networks import canonical_arch
from ddcodec.setfile import DistilledSet

PARAMS = ("pixels",)
LOSSES = ("dm", "none")


@dataclass(frozen=True)
class DistillConfig:
    """How to distil. Defaults are the reference DM code's (main_DM.py)."""

    param: str = "pixels"
    loss: str = "dm"
    ipc: int = 10
    iterations: int = 20000
    lr_img: float = 1.0
    momentum: float = 0.5
    batch_real: int = 256
    arch: str = "convnet"
    init: str = "real"
    dsa_strategy: str = DEFAULT_STRATEGY
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "arch", canonical_arch(self.arch))
        if self.param not in PARAMS:
            raise DDCodecError(f"unknown --param {self.param!r}; choose {', '.join(PARAMS)}")
        if self.loss not in LOSSES:
            raise DDCodecError(f"unknown --loss {self.loss!r}; choose {', '.join(LOSSES)}")
        if self.ipc < 1:
            raise DDCodecError("--ipc must be at least 1")
        if self.iterations < 0 or self.batch_real < 1 or self.lr_img <= 0:
            raise DDCodecError("--iterations must be >= 0, --batch-real >= 1 and --lr-img > 0")
        if self.init not in ("real", "noise"):
            raise DDCodecError("--init must be real or noise")


ProgressHook = Callable[[int, float], None]  # (iteration, loss)


def distill(dataset: Dataset, config: DistillConfig, device: torch.device,
            on_iteration: ProgressHook | None = None) -> DistilledSet:
    from ddcodec.distillation.distribution_matching import distribution_matching
    from ddcodec.distillation.random_subset import random_real_subset

    if config.loss == "none":
        images, labels = random_real_subset(dataset, config.ipc, config.seed)
        details = {"method": "random-real", "iterations": 0}
    else:
        images, labels = distribution_matching(dataset, config, device, on_iteration)
        details = {"method": "dm"}
    provenance = {**asdict(config), **details, "data": dataset.spec,
                  "ddcodec_version": __version__}
    if config.loss == "none":
        for key in ("iterations", "lr_img", "momentum", "batch_real", "arch", "init",
                    "dsa_strategy"):
            provenance.pop(key, None)
        provenance["iterations"] = 0
    return DistilledSet(images.cpu(), labels.cpu(), list(dataset.class_names),
                        dataset.normalization, provenance)
