"""A class's result does not depend on which classes share its process (per-class random
streams, per-class loss terms): the property distillation in blocks rests on."""

import pytest
import torch

from ddcodec.data.datasets import load_dataset
from ddcodec.distillation import DistillConfig
from ddcodec.distillation.config import resolve
from ddcodec.distillation.latent import LatentTrainer
from ddcodec.distillation.pixels import distill_pixels
from ddcodec.distillation.random_subset import random_real_subset

CPU = torch.device("cpu")
# DM, per-class decoders, fixed lambda; short but through every phase (warm-up with candidate
# selection, the joint phase, weight quantisation)
SHORT = dict(param="latent", loss="dm", spc=2, fit_iterations=16, fit_candidates=2,
             iterations=4, batch_real=16, levels=3)


@pytest.fixture(scope="module")
def cifar():
    return load_dataset("cifar10-subset")


def payload_of(dataset, classes):
    trainer = LatentTrainer(dataset, DistillConfig.of(**SHORT), CPU, classes=classes)
    images, payload, _ = trainer.run()
    groups = {group.classes[0]: group for group in payload.groups}
    per_image = images.shape[0] // len(groups)
    return {c: (group, images[i * per_image:(i + 1) * per_image])
            for i, (c, group) in enumerate(sorted(groups.items()))}


def assert_same_group(a, b):
    (ga, ia), (gb, ib) = a, b
    assert ga.classes == gb.classes
    assert all(torch.equal(x, y) for x, y in zip(ga.latents, gb.latents))
    for (name, _, qa), (_, _, qb) in zip(ga.weights.in_order(), gb.weights.in_order()):
        assert torch.equal(qa.q, qb.q) and qa.step_log2 == qb.step_log2, name
    assert torch.equal(ia, ib)


def test_classes_alone_equal_the_same_classes_in_a_full_run(cifar):
    everything = payload_of(cifar, None)
    alone = payload_of(cifar, range(5))
    assert sorted(alone) == [0, 1, 2, 3, 4] and len(everything) == 10
    for c in range(5):
        assert_same_group(alone[c], everything[c])
    # and not in order of meeting: a block that starts elsewhere gives class 7 the same result
    assert_same_group(payload_of(cifar, [7, 9])[7], everything[7])


def test_real_subsets_and_pixel_starts_are_per_class(cifar):
    images, labels = random_real_subset(cifar, 3, seed=4)
    again, _ = random_real_subset(cifar, 3, seed=4)
    assert torch.equal(images, again)
    other, _ = random_real_subset(cifar, 3, seed=5)
    assert not torch.equal(images[:3], other[:3])
    config = resolve(DistillConfig.of(param="pixels", loss="dm", ipc=2, iterations=0,
                                      init="noise"), cifar)
    noise, _, _ = distill_pixels(cifar, config, CPU)
    assert noise.shape == (20, 3, 32, 32) and not torch.equal(noise[:2], noise[2:4])


def test_a_bad_class_subset_is_refused(cifar):
    with pytest.raises(ValueError, match="subset of 0..9"):
        LatentTrainer(cifar, DistillConfig.of(**SHORT), CPU, classes=[3, 10])
    with pytest.raises(ValueError, match="non-empty"):
        LatentTrainer(cifar, DistillConfig.of(**SHORT), CPU, classes=[])
