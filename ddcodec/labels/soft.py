"""Soft labels: one distribution per synthetic sample, from a teacher, stored in a rung of the
compression ladder and counted in every bit.

The rungs (`codec`) are the registered label codecs (ddcodec.labels.rungs): float16 (the papers'
convention, and `info`'s "float equivalent" cost), vq, topk and vqae, each in its own module.
`payload` holds the rung's integers (None for a rung that stores the rows themselves);
`probabilities` are the decoded rows, what training sees.

`temperature` is the T the teacher's softmax used, and `loss` what `measure` trains with: "ce"
(soft cross-entropy) or "kl" (KL against softmax(student / T)). `hard_weight` w mixes each image's
own class into what training sees, w one-hot + (1 - w) row: under ce, Hinton's distillation loss
w CE(class) + (1 - w) CE(row). The class is in the file anyway, so the mix costs no bits; it keeps
a teacher weaker than the synthetic images' classes from training a network on its mistakes.

Per-epoch labels (FKD/SRe2L style, `epochs` E > 0) hold E x N rows, row e x N + i the teacher's
distribution on view e of image i. The view is regenerated from (view seed, e, i) by
`ddcodec.data.augment.LabelViews`, so it costs no bits and `measure` replays exactly the views that
were labelled. Every rung codes the rows as it codes N static ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ddcodec.errors import DDCodecError
from ddcodec.labels.rungs import RUNGS, rung
from ddcodec.limits import LABELS
from ddcodec.names import FKD_VIEW_STRATEGY, LABEL_LOSSES
from ddcodec.data.augment import DSAParams, LabelViews

LOG_FLOOR = -16.0  # log-probabilities below this (e^-16 ~ 1e-7) are stored as this
ROW_SUM_TOLERANCE = 1e-3  # float16 rows sum to 1 within this
MAX_LABEL_EPOCHS = LABELS.epochs
MAX_LABEL_VALUES = LABELS.values  # rows x classes a file may decode to (256 MB of float32)


@dataclass(frozen=True)
class SoftLabels:
    probabilities: torch.Tensor  # float32 N x K, what training sees (decoded)
    temperature: float
    loss: str = "ce"
    codec: str = "float16"
    payload: object = None  # the rung's integers (its module's type), None: the rows themselves
    teacher: dict = field(default_factory=dict)
    epochs: int = 0  # 0: static, one row per image; E: one per image and epoch
    view_seed: int = 0  # per-epoch: the key of the labelled views
    view_strategy: str = ""  # per-epoch: the DSA groups the views draw from
    hard_weight: float = 0.0  # w in w one-hot(class) + (1 - w) row, what training sees

    def __post_init__(self):
        # as the file stores it (float32), so a set in memory trains as its decoded file does
        if isinstance(self.hard_weight, (int, float)) and math.isfinite(self.hard_weight):
            object.__setattr__(self, "hard_weight", float(np.float32(self.hard_weight)))

    @property
    def per_epoch(self) -> bool:
        return self.epochs > 0

    @property
    def fkd(self) -> bool:
        """Per-epoch labels on an FKD relabelling's views (the set's `fkd` views)."""
        return self.per_epoch and self.view_strategy == FKD_VIEW_STRATEGY

    def views(self):
        """The keyed views per-epoch labels were made on (None for static labels and for FKD
        views, which the set carries and replays batch by batch)."""
        return LabelViews(self.view_seed, self.view_strategy) if self.per_epoch \
            and not self.fkd else None

    def training_rows(self, classes: torch.Tensor | None = None) -> torch.Tensor:
        """N x K (static) or E x N x K (per epoch): what a network trains on, the rows mixed
        with the images' `classes` (N class indices, needed with a hard weight) by it."""
        p = self.probabilities
        rows = p.view(self.epochs, -1, p.shape[1]) if self.per_epoch else p
        if not self.hard_weight:
            return rows
        if classes is None:
            raise DDCodecError("labels with a hard weight train on their images' classes too: "
                               "pass them to training_rows")
        one_hot = torch.nn.functional.one_hot(classes.to(torch.int64), p.shape[1]).to(p.dtype)
        return self.hard_weight * one_hot + (1 - self.hard_weight) * rows

    def take(self, rows: torch.Tensor) -> "SoftLabels":
        """The labels of images `rows` (static labels), in the same rung: its indices or rows
        are taken, its codebook and tables kept, so the values are exactly the same."""
        if self.per_epoch:
            raise DDCodecError("per-epoch soft labels belong to their images' views and cannot "
                               "be given to other images (a distributional set takes one "
                               "label per prior)")
        rows = torch.as_tensor(rows, dtype=torch.int64)
        payload = None if self.payload is None else rung(self.codec).take(self.payload, rows)
        return replace(self, probabilities=self.probabilities[rows], payload=payload)

    @property
    def float16_bits(self) -> int:
        """The papers' count: 16 bits per probability."""
        return 16 * self.probabilities.numel()

    def to_dict(self) -> dict:
        views = ({"epochs": self.epochs, "view_seed": self.view_seed,
                  "view_strategy": self.view_strategy} if self.per_epoch else {})
        mix = {"hard_weight": self.hard_weight} if self.hard_weight else {}
        return {"probabilities": self.probabilities.contiguous(), "temperature": self.temperature,
                "loss": self.loss, "codec": self.codec, "teacher": dict(self.teacher), **views,
                **mix,
                **({self.codec: self.payload.to_dict()} if self.payload is not None else {})}

    @classmethod
    def from_dict(cls, raw: dict, num_images: int, num_classes: int) -> "SoftLabels":
        """Validate a set file's soft labels; one line names what is wrong."""
        try:
            probs = raw["probabilities"]
            temperature, loss, codec = float(raw["temperature"]), raw["loss"], raw["codec"]
            views = {"epochs": int(raw.get("epochs", 0)),
                     "view_seed": int(raw.get("view_seed", 0)),
                     "view_strategy": str(raw.get("view_strategy", "")),
                     "hard_weight": float(raw.get("hard_weight", 0.0))}
        except (KeyError, TypeError, ValueError) as exc:
            raise DDCodecError(f"damaged soft labels ({exc})") from None
        payload = None
        if isinstance(codec, str) and codec in RUNGS and rung(codec).payload_type is not None:
            try:  # the rung's integers: what the file stores
                payload = rung(codec).payload_from_dict(raw[codec])
            except (KeyError, TypeError, ValueError) as exc:
                raise DDCodecError(f"damaged {codec} soft labels ({exc})") from None
        labels = cls(probs, temperature, loss, codec, payload,
                     teacher=dict(raw.get("teacher", {})), **views)
        check_soft_labels(labels, num_images, num_classes)
        return labels


def recoded(labels: SoftLabels, codec: str, k: int | None = None) -> SoftLabels:
    """The same rows in another rung of the ladder (k: its size, None for its default): how
    soft labels that came without a teacher (an imported relabelling) are compressed."""
    if codec not in RUNGS:
        raise DDCodecError(f"unknown label codec {codec!r}; choose {', '.join(RUNGS)}")
    return rung(codec).quantise(labels.probabilities, k, temperature=labels.temperature,
                                loss=labels.loss, teacher=dict(labels.teacher),
                                epochs=labels.epochs, view_seed=labels.view_seed,
                                view_strategy=labels.view_strategy)


def check_soft_labels(labels: SoftLabels, num_images: int, num_classes: int) -> None:
    p = labels.probabilities
    if not isinstance(p, torch.Tensor) or not p.is_floating_point() or p.ndim != 2:
        raise DDCodecError("soft labels must be a float N x classes tensor")
    _check_views(labels)
    rows = num_images * max(1, labels.epochs)
    if p.shape != (rows, num_classes):
        per = f" x {labels.epochs} epochs" if labels.per_epoch else ""
        raise DDCodecError(f"soft labels are {tuple(p.shape)}; the set needs "
                           f"{(rows, num_classes)} (one row per image{per}, one column per "
                           "class)")
    if not torch.isfinite(p).all():
        raise DDCodecError("soft labels hold NaN or infinite values")
    if (p < 0).any():
        raise DDCodecError("soft labels hold negative probabilities")
    sums = p.double().sum(1)
    if len(sums) and float((sums - 1).abs().max()) > ROW_SUM_TOLERANCE:
        worst = int((sums - 1).abs().argmax())
        raise DDCodecError(f"soft-label row {worst} sums to {float(sums[worst]):.4f}, not 1 "
                           "(logits? turn them into probabilities with a softmax first)")
    if labels.loss not in LABEL_LOSSES:
        raise DDCodecError(f"soft-label loss {labels.loss!r}: use ce or kl")
    if not (math.isfinite(labels.temperature) and labels.temperature > 0):
        raise DDCodecError("the soft-label temperature must be > 0")
    check_hard_weight(labels.hard_weight)
    if labels.hard_weight and labels.fkd:
        raise DDCodecError("an FKD relabelling's views mix two images (CutMix), so they have no "
                           "one class to weigh in: its labels take no hard weight")
    if labels.codec not in RUNGS:
        raise DDCodecError(f"soft-label codec {labels.codec!r}: use {', '.join(RUNGS)}")
    rung(labels.codec).check(labels, rows, num_classes)  # every rung codes the rows


def check_hard_weight(weight: float) -> None:
    if not (isinstance(weight, (int, float)) and math.isfinite(weight) and 0 <= weight <= 1):
        raise DDCodecError(f"the soft labels' hard weight must be within [0, 1], not {weight!r}")


def _check_views(labels: SoftLabels) -> None:
    if not 0 <= labels.epochs <= MAX_LABEL_EPOCHS:
        raise DDCodecError(f"per-epoch soft labels take 1 to {MAX_LABEL_EPOCHS:,} epochs")
    if labels.per_epoch:
        if not 0 <= labels.view_seed < 1 << 63:
            raise DDCodecError("the views' seed must be in [0, 2^63)")
        if labels.view_strategy == FKD_VIEW_STRATEGY:
            return  # the views are the set's FKD views (ddcodec.sets.fkd), checked there
        try:
            DSAParams(strategy=labels.view_strategy).groups()
        except ValueError as exc:
            raise DDCodecError(f"per-epoch soft labels: {exc}") from None
