"""The distilled-set file (`set.pt`): plain tensors and metadata, loadable with weights_only=True.

Keys: `format`, `format_version`, `images` (float32 N x C x H x W, in the normalised space that
`normalization` describes), `labels` (int64 N), `class_names`, `num_classes`, `image_shape`,
`normalization` ({space, mean, std}), `provenance` (how it was made: method, data, seed,
iterations, ...) and, for latent sets, `codec`: the `LatentPayload` as plain tensors (every
integer the bitstream needs: latents, quantised decoder and ARM weights with their steps, the
architecture, and the estimated bits per part). Nothing in it needs ddcodec's classes to load.

Schema versions: 1 (ddcodec 0.1; `codec` the same fields without `payload_version`) and 2. Both
load; everything is validated at load, and a bad field is named in one line.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ddcodec.data.datasets import Normalization
from ddcodec.errors import DDCodecError
from ddcodec.fileio import atomic_path, check_writable, refuse_expanded
from ddcodec.labels.rungs.float16 import as_float16
from ddcodec.labels.soft import SoftLabels
from ddcodec.sets.payload import LatentPayload
from ddcodec.labels.soft import check_soft_labels
from ddcodec.sets.distributional import prior_sampler
from ddcodec.sets.fkd import FkdViews

SET_FORMAT = "ddcodec-set"
SET_FORMAT_VERSION = 3  # written only by sets with soft labels; hard-label sets stay version 2


@dataclass
class DistilledSet:
    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    normalization: Normalization
    provenance: dict = field(default_factory=dict)
    codec: LatentPayload | None = None
    notes: list[str] = field(default_factory=list)  # what loading converted, for the user
    soft_labels: SoftLabels | None = None  # a teacher's distributions, one per image
    sampler: object = None  # distributional sets: a ddcodec.sets.distributional.PriorSampler
    fkd: FkdViews | None = None  # an FKD relabelling's views, which the soft labels label

    def prior_sampler(self):
        """A distributional set's sampler (its images are the priors' means), else None."""
        if self.sampler is None and self.codec is not None and self.codec.scales is not None:
            self.sampler = prior_sampler(self.codec, int(self.images.shape[1]))
        return self.sampler

    @property
    def zca_eps(self) -> float | None:
        """A ZCA-whitened set's eps (its images live in the whitened space), else None."""
        value = self.provenance.get("zca_eps")
        if value is None:
            return None
        try:
            eps = float(value)
        except (TypeError, ValueError):
            eps = float("nan")
        if not (math.isfinite(eps) and eps > 0):
            raise DDCodecError(f"provenance zca_eps {value!r} is not a positive number")
        return eps

    def input_space(self, dataset):
        """What makes network inputs from `dataset`'s 8-bit images in this set's space: its
        normalisation, then (a ZCA set) the whitening fitted on the data's training images."""
        eps = self.zca_eps
        if eps is None:
            return self.normalization
        from ddcodec.data.zca import WhitenedSpace, zca_for

        return WhitenedSpace(self.normalization, zca_for(dataset, self.normalization, eps))

    def unwhitened(self, dataset) -> "DistilledSet":
        """A ZCA set's images brought back to its normalised space (the inverse whitening
        fitted on `dataset`), as a plain set: what PNG exports and un-whitened training see."""
        if self.zca_eps is None:
            raise DDCodecError("this set is not ZCA-whitened: there is nothing to un-whiten")
        if self.prior_sampler() is not None:
            raise DDCodecError("a distributional set cannot be un-whitened")
        space = self.input_space(dataset)
        provenance = {k: v for k, v in self.provenance.items() if k != "zca_eps"}
        provenance["unwhitened"] = True
        return DistilledSet(space.zca.unwhiten(self.images), self.labels,
                            list(self.class_names), self.normalization, provenance,
                            notes=[*self.notes, "images un-whitened (inverse ZCA)"],
                            soft_labels=self.soft_labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    def training_labels(self) -> torch.Tensor:
        """What networks train on: the soft labels' distributions (E x N x K when per epoch),
        else the class indices."""
        return (self.soft_labels.training_rows(self.labels) if self.soft_labels is not None
                else self.labels)

    def to_dict(self) -> dict:
        soft = self.soft_labels
        return {
            "format": SET_FORMAT,
            "format_version": SET_FORMAT_VERSION if soft is not None else 2,
            "images": self.images.detach().cpu().to(torch.float32).contiguous(),
            "labels": self.labels.detach().cpu().to(torch.int64).contiguous(),
            **({"soft_labels": soft.to_dict()} if soft is not None else {}),
            "class_names": list(self.class_names),
            "num_classes": self.num_classes,
            "image_shape": list(self.image_shape),
            "normalization": self.normalization.to_dict(),
            "provenance": dict(self.provenance),
            **({"codec": self.codec.to_dict()} if self.codec is not None else {}),
            **({"fkd": self.fkd.to_dict()} if self.fkd is not None else {}),
        }

    def check_fkd(self) -> None:
        """FKD views and soft labels on them come together, over the same images and epochs."""
        soft, views = self.soft_labels, self.fkd
        on_fkd = soft is not None and soft.fkd
        if views is None and not on_fkd:
            return
        if views is None or not on_fkd:
            raise DDCodecError("FKD views and soft labels made on them come together: the set "
                               "has " + ("views without such labels" if views is not None
                                         else "such labels without their views"))
        views.check(self.num_images, tuple(self.image_shape[1:]))
        if soft.epochs != views.epochs:
            raise DDCodecError(f"the soft labels cover {soft.epochs} epochs, the FKD views "
                               f"{views.epochs}")


def save_set(distilled: DistilledSet, path: str | os.PathLike, force: bool = False) -> Path:
    path = check_writable(path, force)
    with atomic_path(path) as tmp:
        tmp.write_bytes(set_bytes(distilled))
    return path


def set_bytes(distilled: DistilledSet) -> bytes:
    """The file's bytes; saving through a buffer keeps them independent of the file's name."""
    buffer = io.BytesIO()
    torch.save(distilled.to_dict(), buffer)
    return buffer.getvalue()


def load_set(path: str | os.PathLike) -> DistilledSet:
    path = Path(path)
    if not path.is_file():
        raise DDCodecError(f"{path} not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a non-torch or corrupt file
        raise DDCodecError(f"{path} is not a ddcodec set file (not a readable torch file, or "
                           "damaged)") from exc
    if not isinstance(raw, dict) or raw.get("format") != SET_FORMAT:
        raise DDCodecError(f"{path} is not a ddcodec set file (no '{SET_FORMAT}' marker)")
    refuse_expanded(raw, str(path))
    try:
        return set_from_dict(raw)
    except DDCodecError as exc:
        raise DDCodecError(f"{path}: {exc}") from None


def set_from_dict(raw: dict) -> DistilledSet:
    """Validate a set file's contents; every problem is one line that names the field."""
    version = raw.get("format_version", 0)
    if not isinstance(version, int) or version > SET_FORMAT_VERSION:
        raise DDCodecError(f"set-file version {version}; this ddcodec reads up to "
                           f"{SET_FORMAT_VERSION}: upgrade ddcodec")
    for key in ("images", "labels", "class_names", "normalization"):
        if key not in raw:
            raise DDCodecError(f"damaged set file: '{key}' is missing")
    images, labels, notes = raw["images"], raw["labels"], []
    try:
        class_names = [str(c) for c in raw["class_names"]]
        normalization = Normalization.from_dict(raw["normalization"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DDCodecError(f"damaged set file: bad 'class_names' or 'normalization' "
                           f"({exc})") from None
    provenance = raw.get("provenance", {})
    if not isinstance(provenance, dict):
        raise DDCodecError("'provenance' must be a dict")
    if not (isinstance(images, torch.Tensor) and images.ndim == 4 and images.is_floating_point()):
        raise DDCodecError("'images' must be a float N x C x H x W tensor")
    if images.dtype != torch.float32:
        converted = images.to(torch.float32)
        lossy = not torch.equal(converted.to(images.dtype), images)
        notes.append(f"images converted from {str(images.dtype).replace('torch.', '')} to "
                     f"float32 ({'values rounded' if lossy else 'exactly'})")
        images = converted
    if not (isinstance(labels, torch.Tensor) and labels.shape[:1] == images.shape[:1]):
        raise DDCodecError("'labels' must hold one label per image")
    soft = None
    if labels.ndim == 2:  # schema 2: soft labels in place of the classes
        if not labels.is_floating_point() or labels.shape[1] != len(class_names) or not (
                torch.isfinite(labels).all() and (labels >= 0).all()):
            raise DDCodecError("soft 'labels' must be float N x classes, finite and >= 0")
        soft = as_float16(labels.to(torch.float32), temperature=1.0)
        notes.append("soft labels read from 'labels' (schema 2), rounded to float16; hard "
                     "labels are their argmax")
        labels = labels.argmax(1)
    elif labels.ndim != 1:
        raise DDCodecError("'labels' must be N class indices (or N x classes soft labels)")
    elif labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise DDCodecError(f"'labels' are {str(labels.dtype).replace('torch.', '')}: hard labels "
                           "must be integer class indices")
    elif len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise DDCodecError(f"labels fall outside the {len(class_names)} classes")
    else:
        labels = labels.to(torch.int64)
    if "soft_labels" in raw:
        if soft is not None:
            raise DDCodecError("soft labels given twice ('labels' and 'soft_labels')")
        if not isinstance(raw["soft_labels"], dict):
            raise DDCodecError("'soft_labels' must be a dict")
        soft = SoftLabels.from_dict(raw["soft_labels"], int(images.shape[0]), len(class_names))
    elif soft is not None:
        check_soft_labels(soft, int(images.shape[0]), len(class_names))
    if len(normalization.mean) != images.shape[1]:
        raise DDCodecError("normalisation does not match the image channels")
    if not torch.isfinite(images).all():
        raise DDCodecError("images contain NaN or infinite values")
    codec = raw.get("codec")
    payload = None
    if codec is not None:
        payload = LatentPayload.from_dict(codec, tuple(images.shape[1:]), len(class_names))
        if payload.num_images != images.shape[0]:
            raise DDCodecError(f"bad latent payload: codec holds {payload.num_images} images, "
                               f"the set {images.shape[0]}")
    fkd = FkdViews.from_dict(raw["fkd"]) if isinstance(raw.get("fkd"), dict) else None
    if "fkd" in raw and fkd is None:
        raise DDCodecError("'fkd' must be a dict")
    distilled = DistilledSet(images, labels, class_names, normalization,
                             dict(provenance), payload, notes, soft, fkd=fkd)
    distilled.check_fkd()
    return distilled
