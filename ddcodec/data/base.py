"""What every source of images gives: a `Dataset` of uint8 images with its class names and
`Normalization`, and the checks and the fitted normalisation every source shares."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ddcodec.errors import DDCodecError


@dataclass(frozen=True)
class Normalization:
    """Per-channel affine map from [0, 1] pixels to the network's input space."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def normalize(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.from_unit(images_uint8.to(torch.float32) / 255.0)

    def from_unit(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels (differentiably) to the normalised space."""
        return (x - self._column(self.mean, x)) / self._column(self.std, x)

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] pixels (unclamped)."""
        return images * self._column(self.std, images) + self._column(self.mean, images)

    def to_dict(self) -> dict:
        return {"space": "normalized", "mean": list(self.mean), "std": list(self.std)}

    @staticmethod
    def from_dict(d: dict) -> "Normalization":
        """Raises ValueError for a std that is not finite and positive, or a mean not finite:
        either would turn every pixel into NaN or infinity."""
        norm = Normalization(tuple(float(v) for v in d["mean"]),
                             tuple(float(v) for v in d["std"]))
        if len(norm.mean) != len(norm.std) or not norm.mean:
            raise ValueError("normalisation needs one mean and one std per channel")
        if not all(math.isfinite(m) for m in norm.mean) or not all(
                math.isfinite(s) and s > 0 for s in norm.std):
            raise ValueError(f"normalisation std must be finite and > 0 and mean finite "
                             f"(mean {list(norm.mean)}, std {list(norm.std)})")
        return norm

    @staticmethod
    def _column(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)


# The field's published normalisations (DC/DSA/DM/MTT code); everything else is fitted on its data.
STANDARD_NORMALIZATION = {
    "cifar10": Normalization((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": Normalization((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": Normalization((0.1307,), (0.3081,)),
    "fashion-mnist": Normalization((0.2861,), (0.3530,)),
    "svhn": Normalization((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}


@dataclass
class Dataset:
    """A labelled train/test split of uint8 images with its class names and normalisation."""

    spec: str
    x_train: torch.Tensor  # uint8, N x C x H x W
    y_train: torch.Tensor  # int64, N
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    normalization: Normalization

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        return self.image_shape[0]

    def train_images(self) -> torch.Tensor:
        return self.normalization.normalize(self.x_train)

    def test_images(self) -> torch.Tensor:
        return self.normalization.normalize(self.x_test)

    def indices_of_class(self, c: int) -> torch.Tensor:
        return torch.nonzero(self.y_train == c, as_tuple=False).flatten()

    def of_classes(self, classes: range) -> "Dataset":
        """The contiguous classes `classes` alone, relabelled 0..k-1 (a block's data, on which
        its block experts train)."""
        first, last = classes[0], classes[-1]
        train = (self.y_train >= first) & (self.y_train <= last)
        test = (self.y_test >= first) & (self.y_test <= last)
        return Dataset(f"{self.spec}#classes={first}-{last}", self.x_train[train],
                       self.y_train[train] - first, self.x_test[test], self.y_test[test] - first,
                       self.class_names[first:last + 1], self.normalization)


def fitted_normalization(x_train: torch.Tensor, chunk: int = 4096) -> Normalization:
    """Per-channel mean and (unbiased) std of the pixels in [0, 1], summed in exact integers
    chunk by chunk (a float64 copy of 40,000 64x64 images would take 4.9 GB)."""
    channels = x_train.shape[1]
    s1 = torch.zeros(channels, dtype=torch.int64)
    s2 = torch.zeros(channels, dtype=torch.int64)
    for start in range(0, x_train.shape[0], chunk):
        part = x_train[start:start + chunk].to(torch.int64)
        s1 += part.sum(dim=(0, 2, 3))
        s2 += (part * part).sum(dim=(0, 2, 3))
    n = x_train.shape[0] * x_train.shape[2] * x_train.shape[3]
    mean = s1.double() / n
    var = (s2.double() - n * mean * mean) / max(n - 1, 1)
    std = (var.clamp_min(0).sqrt() / 255.0).clamp_min(1e-3)
    return Normalization(tuple(round(float(v), 6) for v in mean / 255.0),
                         tuple(round(float(v), 6) for v in std))


def checked(dataset: Dataset) -> Dataset:
    k = dataset.num_classes
    for split, y in (("train", dataset.y_train), ("test", dataset.y_test)):
        if len(y) and int(y.max()) >= k:
            raise DDCodecError(f"{dataset.spec}: {split} labels reach {int(y.max())} but there "
                               f"are only {k} classes")
    counts = torch.bincount(dataset.y_train, minlength=k) if len(dataset.y_train) else (
        torch.zeros(k, dtype=torch.int64))
    empty = [dataset.class_names[c] for c in torch.nonzero(counts == 0).flatten().tolist()]
    if empty:
        raise DDCodecError(f"{dataset.spec}: no training images for class(es) "
                           f"{', '.join(empty[:5])}")
    if dataset.x_test.shape[0] == 0:
        raise DDCodecError(f"{dataset.spec}: the test split is empty")
    if len(dataset.normalization.mean) != dataset.channels:
        raise DDCodecError(f"{dataset.spec}: normalisation has {len(dataset.normalization.mean)} "
                           f"channels for {dataset.channels}-channel images")
    return dataset
