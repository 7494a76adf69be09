"""Labelling a set with a teacher: what `ddcodec label` does to a set file, and what
`distill --labels` does to every set its rate control measures, so that the file it sizes is the
file it writes.

The rung (ddcodec.labels.soft) is fixed by the plan, except a VQ codebook left without a size under
a budget: it gets the most entries (1, 2, 4, ... up to one per image) whose encoded labels fit
`share` of the whole file's bits, measured by encoding them. More entries never hurt accuracy in
the ladder (docs/BENCHMARKS.md, "Soft labels: the ladder"); the share caps what they take from
the images. The split between labels and the rest is reported, never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ddcodec.errors import DDCodecError
from ddcodec.bitstream.label_coding import encode_labels
from ddcodec.labels.rungs import RUNGS, rung
from ddcodec.labels.soft import MAX_LABEL_EPOCHS, SoftLabels, check_hard_weight
from ddcodec.names import DEFAULT_STRATEGY, LABEL_LOSSES
from ddcodec.sets.setfile import DistilledSet
from ddcodec.data.augment import LabelViews
from ddcodec.labels.teacher import check_teacher_fits, load_teacher

SECTION_BITS = 8 * 16  # codec, loss, temperature and the section's framing


@dataclass(frozen=True)
class LabelPlan:
    """How soft labels are made and stored: the rung, its size k (None: its default, or under
    `budget_bits` the VQ codebook that fits `share` of it), the temperature and the loss."""

    codec: str
    temperature: float = 1.0
    loss: str = "ce"
    k: int | None = None
    step_log2: int = -4
    budget_bits: float | None = None  # the whole file's, when it has one
    share: float = 0.1
    epochs: int = 0  # > 0: per-epoch labels on keyed views (ddcodec.data.augment.LabelViews)
    view_seed: int = 0
    view_strategy: str = DEFAULT_STRATEGY
    hard_weight: float = 0.0  # the class's share of every training target (SoftLabels)

    def __post_init__(self):
        if self.codec not in RUNGS:
            raise DDCodecError(f"unknown label codec {self.codec!r}; choose "
                               f"{', '.join(RUNGS)}")
        if self.loss not in LABEL_LOSSES or not self.temperature > 0:
            raise DDCodecError("the label loss must be ce or kl and the temperature > 0")
        if self.k is not None and self.k < 1:
            raise DDCodecError("--label-k must be at least 1")
        if not 0 <= self.epochs <= MAX_LABEL_EPOCHS:
            raise DDCodecError(f"label epochs must be 0 (static) to {MAX_LABEL_EPOCHS:,}")
        check_hard_weight(self.hard_weight)


@dataclass(frozen=True)
class LabelCost:
    """Estimated label bits per class before any image exists: a fixed part (a codebook) and a
    part per image. Rate control then measures the real ones."""

    fixed: float
    per_image: float

    def per_class(self, images_per_class: int) -> float:
        return self.fixed + self.per_image * images_per_class


def label_bits(labels: SoftLabels) -> int:
    """Bits of the labels section the file will carry."""
    return 8 * len(encode_labels(labels)[0])


def estimated_cost(plan: LabelPlan | None, num_classes: int) -> LabelCost:
    """What the plan's labels should cost (hard labels: nothing; the header holds their
    counts)."""
    if plan is None:
        return LabelCost(0.0, 0.0)
    fixed, rows = SECTION_BITS / num_classes, max(1, plan.epochs)  # rows per image
    coder = rung(plan.codec)
    if coder.sized_by_budget and plan.k is None and plan.budget_bits is not None:
        return LabelCost(plan.share * plan.budget_bits / num_classes, 0.0)
    extra, per_image = coder.estimate(plan.k, num_classes, rows)
    return LabelCost(fixed + extra, per_image)


class Labeller:
    """A teacher and a plan: sets in, the same sets with soft labels out."""

    def __init__(self, teacher, plan: LabelPlan, device: torch.device):
        self.teacher, self.plan, self.device = teacher, plan, device
        summary = {k: teacher.info.get(k) for k in ("data", "epoch", "chosen_holdout_accuracy",
                                                    "test_accuracy")}
        self.meta = {"temperature": float(plan.temperature), "loss": plan.loss,
                     "hard_weight": float(plan.hard_weight),
                     "teacher": {"arch": teacher.arch, **summary}}
        if plan.epochs:
            self.meta.update(epochs=plan.epochs, view_seed=plan.view_seed,
                             view_strategy=plan.view_strategy)

    def check_fits(self, distilled_or_dataset, what: str) -> None:
        if getattr(distilled_or_dataset, "zca_eps", None) is not None:
            raise DDCodecError(f"{what} is ZCA-whitened and a teacher sees plain images: "
                               "label its un-whitened export (decode --unwhiten)")
        check_teacher_fits(self.teacher, distilled_or_dataset.num_classes,
                           distilled_or_dataset.image_shape,
                           distilled_or_dataset.normalization, what)

    def __call__(self, distilled: DistilledSet) -> DistilledSet:
        probabilities = self.probabilities(distilled.images)
        soft = self.rung(probabilities)
        notes = list(distilled.notes)
        if distilled.fkd is not None:  # the new labels are not on the relabelling's views
            notes.append("the FKD relabelling's views and labels were replaced by the "
                         "teacher's labels")
        return replace(distilled, soft_labels=soft, fkd=None, notes=notes)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's rows: one per image, or per epoch and image on the keyed views."""
        plan = self.plan
        if not plan.epochs:
            return self.teacher.probabilities(images, plan.temperature, self.device)

        views, samples = LabelViews(plan.view_seed, plan.view_strategy), torch.arange(len(images))
        return torch.cat([self.teacher.probabilities(views(images, epoch, samples),
                                                     plan.temperature, self.device)
                          for epoch in range(plan.epochs)])

    def rung(self, probabilities: torch.Tensor) -> SoftLabels:
        plan, coder = self.plan, rung(self.plan.codec)
        if coder.sized_by_budget and plan.k is None and plan.budget_bits is not None:
            return self._within_share(probabilities, coder)
        return coder.quantise(probabilities, plan.k, step_log2=plan.step_log2,
                              seed=plan.view_seed, **self.meta)

    def _within_share(self, probabilities: torch.Tensor, coder) -> SoftLabels:
        """The most codebook entries (powers of two, up to one per image) whose labels fit the
        plan's share of the budget; one entry if none does (it costs a codebook row)."""
        cap, plan = self.plan.share * self.plan.budget_bits, self.plan

        def sized(k: int) -> SoftLabels:
            return coder.quantise(probabilities, k, step_log2=plan.step_log2,
                                  seed=plan.view_seed, **self.meta)

        chosen, k = sized(1), 2
        while k <= max(1, len(probabilities)):
            candidate = sized(k)
            if label_bits(candidate) > cap:
                break
            chosen, k = candidate, 2 * k
        return chosen


def labeller(teacher_path, plan: LabelPlan, device: torch.device) -> Labeller:
    return Labeller(load_teacher(teacher_path), plan, device)


def plan_for(config, num_classes: int) -> LabelPlan | None:
    """The plan of a (resolved) DistillConfig's labels; None for hard labels."""
    wanted = config.labelling
    if not wanted.soft:
        return None
    target = config.latent.target_bpc if config.is_latent else None
    return LabelPlan(wanted.labels, wanted.label_temperature, wanted.label_loss, wanted.label_k,
                     budget_bits=None if target is None else target * num_classes,
                     share=wanted.label_share, epochs=wanted.label_epochs, view_seed=config.seed,
                     hard_weight=wanted.label_hard_weight)


def rung_name(labels: SoftLabels) -> str:
    return rung(labels.codec).describe(labels)


def label_split(distilled: DistilledSet, file_bits: int) -> dict:
    """How the bits of a set's .ddz divide between its soft labels and everything else."""
    bits, classes = label_bits(distilled.soft_labels), distilled.num_classes
    return {"rung": rung_name(distilled.soft_labels), "label_bits": bits,
            "label_bpc": bits / classes, "label_share": bits / file_bits,
            "file_bpc": file_bits / classes, "rest_bpc": (file_bits - bits) / classes,
            "float16_bpc": distilled.soft_labels.float16_bits / classes}
