"""Datasets behind one `--data` spec, loaded without any network access.

A spec is one of:
  * `cifar10-subset`: the real CIFAR-10 subset bundled with ddcodec (the default);
  * `cifar10`, `cifar100`, `mnist`, `fashion-mnist`, `svhn`: torchvision's files under a root
    folder (`--data-root`, else `$DDCODEC_DATA_ROOT`, else `./data`), never downloaded unless asked;
  * `imagefolder:DIR`: one sub-folder of images per class (or `DIR/train` and `DIR/test` such
    trees);
  * `npz:FILE`: arrays `x_train`, `y_train`, `x_test`, `y_test`, uint8, HWC or CHW.

Images are kept as uint8 N x C x H x W; `Normalization` maps them to the float space networks see,
and every output of ddcodec records it so that a set can be used outside ddcodec.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from ddcodec.data.base import STANDARD_NORMALIZATION, Dataset, Normalization
from ddcodec.data.image_folders import load_imagefolder
from ddcodec.data.npz_files import load_npz
from ddcodec.data.torchvision_sets import DATA_ROOT_ENV, load_torchvision
from ddcodec.errors import DDCodecError
from ddcodec.names import BUNDLED_DATA as BUNDLED_NAME

# the types every caller names come from here too, with the loader
__all__ = ["BUNDLED_DIR", "DEFAULT_SPEC", "STANDARD_NORMALIZATION", "Dataset", "Normalization",
           "load_dataset", "parse_size"]

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "bundled"
DEFAULT_SPEC = BUNDLED_NAME

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

# `kind:ARG` specs: the loader of (ARG, the whole spec, --resize), what ARG names, and whether
# the loader resizes as it decodes (the others are resized once loaded)
Loader = Callable[[str, str, "tuple[int, int] | None"], Dataset]
PATH_SOURCES: dict[str, tuple[Loader, str, bool]] = {
    "imagefolder": (lambda arg, spec, resize: load_imagefolder(Path(arg), resize),
                    "a folder: --data imagefolder:DIR", True),
    "npz": (lambda arg, spec, resize: load_npz(Path(arg), spec), "a file: --data npz:FILE",
            False),
}


def load_dataset(
    spec: str = DEFAULT_SPEC,
    data_root: str | os.PathLike | None = None,
    download: bool = False,
    resize: tuple[int, int] | None = None,
) -> Dataset:
    """Load the dataset named by `spec`; raise DDCodecError with a fix when it cannot."""
    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    kind = kind.lower()
    resizes_itself = False
    if kind in PATH_SOURCES:
        load, needs, resizes_itself = PATH_SOURCES[kind]
        if not arg:
            raise DDCodecError(f"{kind} spec needs {needs}")
        dataset = load(arg, spec, resize)
    elif arg:
        raise DDCodecError(f"unknown data spec {spec!r}; {_spec_help()}")
    else:
        name = _canonical_name(kind)
        if name == BUNDLED_NAME:
            dataset = load_npz(BUNDLED_DIR / f"{BUNDLED_NAME}.npz", BUNDLED_NAME,
                               class_names=list(CIFAR10_CLASSES),
                               normalization=STANDARD_NORMALIZATION["cifar10"])
        else:
            dataset = load_torchvision(name, _data_root(data_root), download)
    if resize is not None and not resizes_itself:
        dataset = _resized(dataset, resize)
    return dataset


def _spec_help() -> str:
    return ("use cifar10-subset, cifar10, cifar100, mnist, fashion-mnist, svhn, "
            "imagefolder:DIR or npz:FILE")


def _canonical_name(kind: str) -> str:
    aliases = {
        "cifar10-subset": BUNDLED_NAME, "cifar-10-subset": BUNDLED_NAME, "default": BUNDLED_NAME,
        "cifar10": "cifar10", "cifar-10": "cifar10",
        "cifar100": "cifar100", "cifar-100": "cifar100",
        "mnist": "mnist",
        "fashion-mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
        "fmnist": "fashion-mnist",
        "svhn": "svhn",
    }
    if kind not in aliases:
        raise DDCodecError(f"unknown data spec {kind!r}; {_spec_help()}")
    return aliases[kind]


def _data_root(data_root: str | os.PathLike | None) -> Path:
    if data_root is not None:
        return Path(data_root)
    return Path(os.environ.get(DATA_ROOT_ENV, "data"))


def _resized(dataset: Dataset, size: tuple[int, int]) -> Dataset:
    import torch.nn.functional as F

    def resize(x: torch.Tensor) -> torch.Tensor:
        y = F.interpolate(x.float(), size=size, mode="bicubic", align_corners=False)
        return y.round().clamp(0, 255).to(torch.uint8)

    dataset.x_train, dataset.x_test = resize(dataset.x_train), resize(dataset.x_test)
    return dataset


def parse_size(text: str | None) -> tuple[int, int] | None:
    """`32` or `32x48` (H x W) -> (H, W)."""
    if text is None:
        return None
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise DDCodecError(f"bad size {text!r}; use N or HxW, e.g. 32 or 32x48") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise DDCodecError(f"bad size {text!r}; use N or HxW with positive integers")
    return values[0], values[1]
