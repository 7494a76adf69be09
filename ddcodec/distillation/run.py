"""Running a distillation: the method the config names, from a Dataset to a DistilledSet."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ddcodec import __version__
from ddcodec.data import Dataset
from ddcodec.distillation.config import DistillConfig, resolve
from ddcodec.payload import LatentPayload
from ddcodec.setfile import DistilledSet

ProgressHook = Callable[[int, float], None]  # (iteration, loss)
FileSizer = Callable[[DistilledSet], int]  # a set -> bits of its encoded file


def distill(dataset: Dataset, config: DistillConfig, device: torch.device,
            on_iteration: ProgressHook | None = None, *, checkpoint: Path | None = None,
            checkpoint_every: int = 0, resume: bool = False,
            on_progress: Callable | None = None,
            file_sizer: FileSizer | None = None) -> DistilledSet:
    """Run the configured method. Rate control (`target_bpc`) measures real files through
    `file_sizer`, which the API layer provides (it knows the bitstream; distillation does not)."""
    from ddcodec.distillation.pixels import distill_pixels
    from ddcodec.distillation.random_subset import random_real_subset

    config = resolve(config, dataset)
    if config.is_latent:
        from ddcodec.distillation.latent import LatentTrainer

        if config.latent.target_bpc is not None and file_sizer is None:
            raise ValueError("--target-bpc needs a file sizer (ddcodec.api.distill gives one)")

        def file_bits(uint8_images: torch.Tensor, payload: LatentPayload) -> int:
            return file_sizer(latent_set(dataset, config, uint8_images, payload, {}))

        trainer = LatentTrainer(dataset, config, device, checkpoint, checkpoint_every, on_progress,
                                file_bits=file_bits if file_sizer is not None else None)
        return latent_set(dataset, config, *trainer.run(resume=resume))
    if config.loss == "none":
        images, labels = random_real_subset(dataset, config.pixels.ipc, config.seed)
        details = {"method": "random-real", "iterations": 0}
    else:
        images, labels, learnt = distill_pixels(dataset, config, device, on_iteration)
        details = {"method": config.loss, **learnt}
    return DistilledSet(images.cpu(), labels.cpu(), list(dataset.class_names),
                        dataset.normalization, _provenance(dataset, config, details))


def latent_set(dataset: Dataset, config: DistillConfig, uint8_images: torch.Tensor,
               payload: LatentPayload, learnt: dict) -> DistilledSet:
    """The set a latent run yields; rate control encodes exactly this to measure its size."""
    details = {"method": f"latent-{config.loss}",
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
