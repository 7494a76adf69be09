"""The distilled-set file (`set.pt`): plain tensors and metadata, loadable with weights_only=True.

Keys: `format`, `format_version`, `images` (float32 N x C x H x W, in the normalised space that
`normalization` describes), `labels` (int64 N), `class_names`, `num_classes`, `image_shape`,
`normalization` ({space, mean, std}), `provenance` (how it was made: method, data, seed,
iterations, ...) and, for latent sets, `codec`: every integer the bitstream needs (latents,
quantised decoder and ARM weights with their steps, the architecture) and the estimated bits per
part. Nothing in it needs ddcodec's classes to load.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ddcodec.data import Normalization
from ddcodec.errors import DDCodecError
from ddcodec.fileio import atomic_path, check_writable

SET_FORMAT = "ddcodec-set"
SET_FORMAT_VERSION = 1


@dataclass
class DistilledSet:
    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    normalization: Normalization
    provenance: dict = field(default_factory=dict)
    codec: dict | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    def to_dict(self) -> dict:
        return {
            "format": SET_FORMAT,
            "format_version": SET_FORMAT_VERSION,
            "images": self.images.detach().cpu().to(torch.float32).contiguous(),
            "labels": self.labels.detach().cpu().to(torch.int64).contiguous(),
            "class_names": list(self.class_names),
            "num_classes": self.num_classes,
            "image_shape": list(self.image_shape),
            "normalization": self.normalization.to_dict(),
            "provenance": dict(self.provenance),
            **({"codec": self.codec} if self.codec is not None else {}),
        }


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
        raise DDCodecError(f"{path} is not a ddcodec set file ({type(exc).__name__})") from exc
    if not isinstance(raw, dict) or raw.get("format") != SET_FORMAT:
        raise DDCodecError(f"{path} is not a ddcodec set file (no '{SET_FORMAT}' marker)")
    if raw.get("format_version", 0) > SET_FORMAT_VERSION:
        raise DDCodecError(f"{path} has set-file version {raw['format_version']}; this ddcodec "
                           f"reads up to {SET_FORMAT_VERSION}: upgrade ddcodec")
    try:
        images, labels = raw["images"], raw["labels"]
        class_names = [str(c) for c in raw["class_names"]]
        normalization = Normalization.from_dict(raw["normalization"])
        provenance = dict(raw.get("provenance", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise DDCodecError(f"{path} is a damaged set file (missing or bad {exc})") from exc
    if not (isinstance(images, torch.Tensor) and images.ndim == 4 and images.is_floating_point()):
        raise DDCodecError(f"{path}: 'images' must be a float N x C x H x W tensor")
    if not (isinstance(labels, torch.Tensor) and labels.shape[:1] == images.shape[:1]):
        raise DDCodecError(f"{path}: 'labels' must hold one label per image")
    if labels.ndim == 1 and len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise DDCodecError(f"{path}: labels fall outside the {len(class_names)} classes")
    if len(normalization.mean) != images.shape[1]:
        raise DDCodecError(f"{path}: normalisation does not match the image channels")
    if not torch.isfinite(images).all():
        raise DDCodecError(f"{path}: images contain NaN or infinite values")
    codec = raw.get("codec")
    if codec is not None and not isinstance(codec, dict):
        raise DDCodecError(f"{path}: 'codec' must be a dict")
    return DistilledSet(images.to(torch.float32), labels, class_names, normalization, provenance,
                        codec)
