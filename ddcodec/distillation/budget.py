"""How a bits-per-class budget is split before any training: what the decoders and the soft
labels will cost, and so how many samples per class the latents can afford. `resolve` sizes
`--spc` from it, the trainer and the blocks price the side information with it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ddcodec.codec.latents import LatentLayout
from ddcodec.codec.model import CodecConfig, module_shapes
from ddcodec.data.datasets import Dataset
from ddcodec.distillation.rate_control import estimate_side_bits
from ddcodec.distillation.labelling import LabelCost, estimated_cost, plan_for

if TYPE_CHECKING:
    from ddcodec.distillation import DistillConfig

BITS_PER_PIXEL = 0.75  # latent bits per pixel aimed at when --spc is left to the budget
MAX_AUTO_SPC = 1000


def codec_config(config: "DistillConfig") -> CodecConfig:
    return CodecConfig(decoder=config.latent.decoder, arm_context=config.latent.arm_context,
                       arm_hidden=config.latent.arm_hidden, levels=config.latent.levels,
                       shared_decoder=config.latent.shared_decoder)


def decoder_parameters(dataset: Dataset, config: "DistillConfig") -> int:
    """Parameters of all decoders (ARM, synthesis, upsampler) the set will store."""
    codec = codec_config(config)
    c, h, w = dataset.image_shape
    layout = LatentLayout.for_image(h, w, codec.levels, codec.channels_per_level)
    per_decoder = sum(math.prod(shape) for shapes in module_shapes(codec, layout, c).values()
                      for shape in shapes.values())
    return per_decoder * (1 if codec.shared_decoder else dataset.num_classes)


def samples_for_budget(dataset: Dataset, config: "DistillConfig") -> int:
    """Samples per class for a bits-per-class budget: what the latents may spend after the
    decoders, at about BITS_PER_PIXEL each (where phase 1 fits CIFAR at ~27-30 dB). Rate coding
    favours many cheap samples over few good ones (the paper's TM settings decode 64-718 per
    class)."""
    c, h, w = dataset.image_shape
    side = estimate_side_bits(dataset.num_classes, decoder_parameters(dataset, config))
    labels = label_cost(dataset, config)
    latent_bits = config.latent.target_bpc - side / dataset.num_classes - labels.fixed
    per_image = BITS_PER_PIXEL * h * w * c / 3 + labels.per_image
    return int(max(1, min(MAX_AUTO_SPC, latent_bits // per_image)))


def label_cost(dataset: Dataset, config: "DistillConfig") -> LabelCost:
    """What the run's soft labels should cost per class (nothing for hard labels)."""
    return estimated_cost(plan_for(config, dataset.num_classes), dataset.num_classes)
