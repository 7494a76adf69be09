"""Distillation methods: each turns a Dataset into a DistilledSet under a DistillConfig."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from ddcodec import __version__
from ddcodec.augment import DEFAULT_STRATEGY
from ddcodec.data import Dataset
from ddcodec.errors import DDCodecError
from ddcodec.networks import canonical_arch
from ddcodec.setfile import DistilledSet

PARAMS = ("pixels", "latent")
LOSSES = ("dm", "none")
PIXEL_FIELDS = ("ipc", "lr_img", "momentum", "init")
LATENT_FIELDS = ("spc", "decoder", "arm_context", "arm_hidden", "levels", "shared_decoder",
                 "fit_iterations", "fit_candidates", "fit_lr", "fit_rate_weight", "lmbda",
                 "lmbda_stage2", "stage2_at", "lr", "grad_clip", "temperature", "noise",
                 "quant_mse")
DM_FIELDS = ("iterations", "batch_real", "arch", "dsa_strategy")


@dataclass(frozen=True)
class DistillConfig:
    """How to distil. Pixel-DM defaults are the reference code's (main_DM.py); latent defaults
    follow the rate-utility paper's code (Adam 1e-2 for fitting, 1e-3 joint, clip 0.1)."""

    param: str = "pixels"
    loss: str = "dm"
    # pixels
    ipc: int = 10
    lr_img: float = 1.0
    momentum: float = 0.5
    init: str = "real"
    # distribution matching (both parameterisations)
    iterations: int = 20000
    batch_real: int = 256
    arch: str = "convnet"
    dsa_strategy: str = DEFAULT_STRATEGY
    # latent: the model
    spc: int = 10
    decoder: str = "v0"
    arm_context: int = 16
    arm_hidden: int = 2
    levels: int | None = None
    shared_decoder: bool = False
    # latent: phase 1 (fit to real images)
    fit_iterations: int = 1000
    fit_candidates: int = 5
    fit_lr: float = 1e-2
    fit_rate_weight: float = 1e-3
    # latent: phase 2 (rate + lambda * utility)
    lmbda: float = 0.1
    lmbda_stage2: float | None = None
    stage2_at: float = 0.5
    lr: float = 1e-3
    grad_clip: float = 0.1
    temperature: float = 0.3
    noise: float = 1.0
    # latent: phase 3 (weight post-quantisation)
    quant_mse: float = 5e-6
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "arch", canonical_arch(self.arch))
        if self.param not in PARAMS:
            raise DDCodecError(f"unknown --param {self.param!r}; choose {', '.join(PARAMS)}")
        if self.loss not in LOSSES:
            raise DDCodecError(f"unknown --loss {self.loss!r}; choose {', '.join(LOSSES)}")
        if self.ipc < 1 or self.spc < 1:
            raise DDCodecError("--ipc and --spc must be at least 1")
        if self.iterations < 0 or self.batch_real < 1 or self.lr_img <= 0:
            raise DDCodecError("--iterations must be >= 0, --batch-real >= 1 and --lr-img > 0")
        if self.init not in ("real", "noise"):
            raise DDCodecError("--init must be real or noise")
        if self.param == "latent":
            from ddcodec.codec.model import CodecConfig

            if self.loss != "dm":
                raise DDCodecError("--param latent needs a utility loss: --loss dm")
            try:
                CodecConfig(decoder=self.decoder, arm_context=self.arm_context,
                            arm_hidden=self.arm_hidden, levels=self.levels)
            except ValueError as exc:
                raise DDCodecError(str(exc)) from exc
            if self.fit_iterations < 0 or self.fit_candidates < 1 or self.lmbda < 0:
                raise DDCodecError("--fit-iterations >= 0, --fit-candidates >= 1, --lmbda >= 0")
            if self.quant_mse <= 0 or not 0 <= self.stage2_at <= 1:
                raise DDCodecError("--quant-mse must be > 0 and --stage2-at in [0, 1]")

    def provenance(self) -> dict:
        drop = set(LATENT_FIELDS) if self.param == "pixels" else set(PIXEL_FIELDS)
        if self.loss == "none":
            drop |= set(DM_FIELDS) | set(PIXEL_FIELDS[1:])
        return {k: v for k, v in asdict(self).items() if k not in drop}


ProgressHook = Callable[[int, float], None]  # (iteration, loss)


def distill(dataset: Dataset, config: DistillConfig, device: torch.device,
            on_iteration: ProgressHook | None = None, *, checkpoint: Path | None = None,
            checkpoint_every: int = 0, resume: bool = False,
            on_progress: Callable | None = None) -> DistilledSet:
    from ddcodec.distillation.distribution_matching import distribution_matching
    from ddcodec.distillation.random_subset import random_real_subset

    codec = None
    if config.param == "latent":
        from ddcodec.distillation.latent import LatentTrainer

        trainer = LatentTrainer(dataset, config, device, checkpoint, checkpoint_every, on_progress)
        uint8_images, codec = trainer.run(resume=resume)
        images = dataset.normalization.normalize(uint8_images)
        labels = torch.arange(dataset.num_classes).repeat_interleave(config.spc)
        details = {"method": "latent-dm", "estimated_bits": codec["estimated_bits"],
                   "fit_psnr": codec["fit_psnr"]}
    elif config.loss == "none":
        images, labels = random_real_subset(dataset, config.ipc, config.seed)
        details = {"method": "random-real", "iterations": 0}
    else:
        images, labels = distribution_matching(dataset, config, device, on_iteration)
        details = {"method": "dm"}
    provenance = {**config.provenance(), **details, "data": dataset.spec,
                  "ddcodec_version": __version__}
    return DistilledSet(images.cpu(), labels.cpu(), list(dataset.class_names),
                        dataset.normalization, provenance, codec)
