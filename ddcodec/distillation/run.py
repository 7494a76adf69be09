"""Running a distillation: the method the config names, from a Dataset to a DistilledSet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ddcodec import __version__
from ddcodec.data import Dataset
from ddcodec.distillation.config import DistillConfig, resolve
from ddcodec.payload import LatentPayload
from ddcodec.registry import registrar
from ddcodec.setfile import DistilledSet

ProgressHook = Callable[[int, float], None]  # (iteration, loss)
FileSizer = Callable[[DistilledSet], int]  # a set -> bits of its encoded file
Labeller = Callable[[DistilledSet], DistilledSet]  # a set -> the same set with soft labels


@dataclass(frozen=True)
class RunHooks:
    """How a run reports and keeps its state, and how it sizes files (from the API layer)."""

    on_iteration: ProgressHook | None = None
    on_progress: Callable | None = None
    checkpoint: Path | None = None
    checkpoint_every: int = 0
    resume: bool = False
    file_sizer: FileSizer | None = None
    labeller: Labeller | None = None  # soft labels on every set the run sizes or returns

    def labelled(self, distilled: DistilledSet) -> DistilledSet:
        return self.labeller(distilled) if self.labeller is not None else distilled


Representation = Callable[[Dataset, DistillConfig, torch.device, RunHooks], DistilledSet]
REPRESENTATIONS: dict[str, Representation] = {}
register_representation = registrar(REPRESENTATIONS)  # how `--param PARAM` sets are distilled


def distill(dataset: Dataset, config: DistillConfig, device: torch.device,
            on_iteration: ProgressHook | None = None, *, checkpoint: Path | None = None,
            checkpoint_every: int = 0, resume: bool = False,
            on_progress: Callable | None = None,
            file_sizer: FileSizer | None = None,
            labeller: Labeller | None = None) -> DistilledSet:
    """Run the configured method. Rate control (`target_bpc`) measures real files through
    `file_sizer`, which the API layer provides (it knows the bitstream; distillation does not);
    `labeller` gives soft labels to the final set and to every set rate control measures, so
    that their bits come out of the same budget."""
    config = resolve(config, dataset)
    hooks = RunHooks(on_iteration, on_progress, checkpoint, checkpoint_every, resume, file_sizer,
                     labeller)
    return REPRESENTATIONS[config.param](dataset, config, device, hooks)


@register_representation("pixels")
def _pixel_set(dataset: Dataset, config: DistillConfig, device: torch.device,
               hooks: RunHooks) -> DistilledSet:
    """Free pixels under an objective, or (`--loss none`) a random real subset."""
    from ddcodec.distillation.pixels import distill_pixels
    from ddcodec.distillation.random_subset import random_real_subset

    if config.loss == "none":
        images, labels = random_real_subset(dataset, config.pixels.ipc, config.seed)
        details = {"method": "random-real", "iterations": 0}
    else:
        images, labels, learnt = distill_pixels(dataset, config, device, hooks.on_iteration)
        details = {"method": config.loss, **learnt}
    return hooks.labelled(DistilledSet(images.cpu(), labels.cpu(), list(dataset.class_names),
                                       dataset.normalization,
                                       _provenance(dataset, config, details)))


@register_representation("latent")
def _latent_set(dataset: Dataset, config: DistillConfig, device: torch.device,
                hooks: RunHooks) -> DistilledSet:
    """The rate-utility model (ddcodec.distillation.latent)."""
    from ddcodec.distillation.latent import LatentTrainer

    return _trained_set(LatentTrainer, dataset, config, device, hooks)


@register_representation("distribution")
def _distribution_set(dataset: Dataset, config: DistillConfig, device: torch.device,
                      hooks: RunHooks) -> DistilledSet:
    """D3's priors in the rate-utility model (ddcodec.distillation.priors)."""
    from ddcodec.distillation.priors import DistributionTrainer

    return _trained_set(DistributionTrainer, dataset, config, device, hooks)


def _trained_set(trainer_class, dataset: Dataset, config: DistillConfig, device: torch.device,
                 hooks: RunHooks) -> DistilledSet:
    sizer = hooks.file_sizer
    if config.latent.target_bpc is not None and sizer is None:
        raise ValueError("--target-bpc needs a file sizer (ddcodec.api.distill gives one)")

    def file_bits(uint8_images: torch.Tensor, payload: LatentPayload) -> int:
        return sizer(hooks.labelled(latent_set(dataset, config, uint8_images, payload, {})))

    trainer = trainer_class(dataset, config, device, hooks.checkpoint, hooks.checkpoint_every,
                            hooks.on_progress, file_bits=file_bits if sizer is not None else None)
    return hooks.labelled(latent_set(dataset, config, *trainer.run(resume=hooks.resume)))


def latent_set(dataset: Dataset, config: DistillConfig, uint8_images: torch.Tensor,
               payload: LatentPayload, learnt: dict) -> DistilledSet:
    """The set a latent run yields; rate control encodes exactly this to measure its size."""
    details = {"method": f"{config.param}-{config.loss}",
               "estimated_bits": payload.estimated_bits.to_dict(),
               "fit_psnr": payload.fit_psnr, **learnt}
    labels = torch.arange(dataset.num_classes).repeat_interleave(config.latent.spc)
    return DistilledSet(dataset.normalization.normalize(uint8_images).cpu(), labels,
                        list(dataset.class_names), dataset.normalization,
                        _provenance(dataset, config, details), payload)


def _provenance(dataset: Dataset, config: DistillConfig, details: dict) -> dict:
    """The resolved config, what the run learnt and measured, the data and the version."""
    return {"config": config.provenance(), **details, "data": dataset.spec,
            "ddcodec_version": __version__}
