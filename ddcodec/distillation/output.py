"""The set a run yields: its images, labels and payload, with the provenance that says how it
was made (the resolved config, what the run learnt, the data, the version). Rate control and the
blocks encode exactly this to measure a file."""

from __future__ import annotations

import torch

from ddcodec.version import __version__
from ddcodec.data.datasets import Dataset
from ddcodec.distillation.config import DistillConfig
from ddcodec.sets.payload import LatentPayload
from ddcodec.sets.setfile import DistilledSet


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
