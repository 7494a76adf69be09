"""Running a distillation: the method the config names, from a Dataset to a DistilledSet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ddcodec.data.datasets import Dataset
from ddcodec.distillation.config import DistillConfig, resolve
from ddcodec.distillation.output import _provenance, latent_set
from ddcodec.sets.payload import LatentPayload
from ddcodec.registry import registrar
from ddcodec.sets.setfile import DistilledSet
from ddcodec.distillation.blocks import run_blocks, world
from ddcodec.distillation.latent import LatentTrainer
from ddcodec.distillation.pixels import PixelCheckpoints, distill_pixels
from ddcodec.distillation.priors import DistributionTrainer
from ddcodec.distillation.random_subset import random_real_subset

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
    parts: Path | None = None  # --blocks: the folder of the block part files
    only_block: int | None = None  # --block: distil this block's part and stop (job arrays)
    on_message: Callable[[str], None] | None = None  # what the run is doing, in words

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
            labeller: Labeller | None = None, parts: Path | None = None,
            on_message: Callable[[str], None] | None = None,
            only_block: int | None = None) -> DistilledSet | None:
    """Run the configured method. Rate control (`target_bpc`) measures real files through
    `file_sizer`, which the API layer provides (it knows the bitstream; distillation does not);
    `labeller` gives soft labels to the final set and to every set rate control measures, so
    that their bits come out of the same budget."""
    config = resolve(config, dataset)
    hooks = RunHooks(on_iteration, on_progress, checkpoint, checkpoint_every, resume, file_sizer,
                     labeller, parts, only_block, on_message)
    return REPRESENTATIONS[config.param](dataset, config, device, hooks)


@register_representation("pixels")
def _pixel_set(dataset: Dataset, config: DistillConfig, device: torch.device,
               hooks: RunHooks) -> DistilledSet:
    """Free pixels under an objective, or (`--loss none`) a random real subset."""
    if config.loss == "none":
        images, labels = random_real_subset(dataset, config.pixels.ipc, config.seed)
        details = {"method": "random-real", "iterations": 0}
    else:
        kept = PixelCheckpoints(hooks.checkpoint, hooks.checkpoint_every, hooks.resume)
        images, labels, learnt = distill_pixels(dataset, config, device, hooks.on_iteration,
                                                kept)
        details = {"method": config.loss, **learnt}
    return hooks.labelled(DistilledSet(images.cpu(), labels.cpu(), list(dataset.class_names),
                                       dataset.normalization,
                                       _provenance(dataset, config, details)))


@register_representation("latent")
def _latent_set(dataset: Dataset, config: DistillConfig, device: torch.device,
                hooks: RunHooks) -> DistilledSet:
    """The rate-utility model (ddcodec.distillation.latent)."""
    return _trained_set(LatentTrainer, dataset, config, device, hooks)


@register_representation("distribution")
def _distribution_set(dataset: Dataset, config: DistillConfig, device: torch.device,
                      hooks: RunHooks) -> DistilledSet:
    """D3's priors in the rate-utility model (ddcodec.distillation.priors)."""
    return _trained_set(DistributionTrainer, dataset, config, device, hooks)


def _trained_set(trainer_class, dataset: Dataset, config: DistillConfig, device: torch.device,
                 hooks: RunHooks) -> DistilledSet | None:
    if config.blocks > 1 or hooks.parts is not None and _distributed():
        return _blocked_set(trainer_class, dataset, config, device, hooks)
    sizer = hooks.file_sizer
    if config.latent.target_bpc is not None and sizer is None:
        raise ValueError("--target-bpc needs a file sizer (ddcodec.api.distill gives one)")

    def file_bits(uint8_images: torch.Tensor, payload: LatentPayload) -> int:
        return sizer(hooks.labelled(latent_set(dataset, config, uint8_images, payload, {})))

    trainer = trainer_class(dataset, config, device, hooks.checkpoint, hooks.checkpoint_every,
                            hooks.on_progress, file_bits=file_bits if sizer is not None else None)
    return hooks.labelled(latent_set(dataset, config, *trainer.run(resume=hooks.resume)))


def _distributed() -> bool:
    return world()[1] > 1


def _blocked_set(trainer_class, dataset: Dataset, config: DistillConfig,
                 device: torch.device, hooks: RunHooks) -> DistilledSet | None:
    """Class blocks, on this process or shared among torchrun's (ddcodec.distillation.blocks);
    the merged set on rank 0, None on the others."""
    if hooks.parts is None:
        raise ValueError("--blocks needs a folder for the part files (ddcodec.api.distill "
                         "gives OUTPUT.parts)")
    merged = run_blocks(dataset, config, device, hooks.parts, hooks.file_sizer,
                        hooks.on_progress, hooks.on_message or (lambda m: None),
                        only=hooks.only_block, trainer_class=trainer_class,
                        checkpoint_every=hooks.checkpoint_every)
    if merged is None:
        return None
    return merged_set(dataset, config, merged, hooks)


def merged_set(dataset: Dataset, config: DistillConfig, merged: tuple, hooks: RunHooks
               ) -> DistilledSet:
    """The set of merged blocks, with soft labels (the global teacher's: D3's glue) and the
    whole file's rate record."""
    distilled = hooks.labelled(latent_set(dataset, config, *merged))
    target = config.latent.target_bpc
    if target is not None and hooks.file_sizer is not None:
        achieved = hooks.file_sizer(distilled) / dataset.num_classes
        error = achieved / target - 1
        tolerance = config.latent.rate_tolerance
        distilled.provenance["rate_control"] = {
            "target_bpc": target, "achieved_bpc": achieved, "error": error,
            "tolerance": tolerance, "within_tolerance": abs(error) <= tolerance,
            "why": f"each of the {config.blocks} blocks steered to the budget on its own file; "
                   "the merged file has one header for all"}
    return distilled
