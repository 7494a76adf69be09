"""torchvision's dataset files (CIFAR-10/100, MNIST, Fashion-MNIST, SVHN) under a root folder,
read without any network access unless asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ddcodec.data.base import STANDARD_NORMALIZATION, Dataset, checked
from ddcodec.errors import DDCodecError

DATA_ROOT_ENV = "DDCODEC_DATA_ROOT"


def load_torchvision(name: str, root: Path, download: bool) -> Dataset:
    import torchvision.datasets as tvd

    expected = {
        "cifar10": "cifar-10-batches-py/", "cifar100": "cifar-100-python/",
        "mnist": "MNIST/raw/", "fashion-mnist": "FashionMNIST/raw/",
        "svhn": "train_32x32.mat and test_32x32.mat",
    }[name]
    if download:
        root.mkdir(parents=True, exist_ok=True)
    try:
        if name == "svhn":
            train = tvd.SVHN(str(root), split="train", download=download)
            test = tvd.SVHN(str(root), split="test", download=download)
            x_train, y_train = torch.from_numpy(np.ascontiguousarray(train.data)), train.labels
            x_test, y_test = torch.from_numpy(np.ascontiguousarray(test.data)), test.labels
            classes = [str(d) for d in range(10)]
        else:
            cls = {"cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100,
                   "mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST}[name]
            train = cls(str(root), train=True, download=download)
            test = cls(str(root), train=False, download=download)
            x_train, y_train = _as_nchw(train.data), train.targets
            x_test, y_test = _as_nchw(test.data), test.targets
            classes = list(train.classes)
    except ImportError as exc:
        raise DDCodecError(f"loading {name} needs a missing package: {exc}") from exc
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        how = "check the network connection" if download else (
            f"put the torchvision files there, point --data-root or ${DATA_ROOT_ENV} at them, "
            "or add --download")
        raise DDCodecError(
            f"{name} not found or unreadable under {root} (looked for {expected}): {how}"
        ) from exc
    return checked(Dataset(
        spec=name,
        x_train=x_train, y_train=torch.as_tensor(np.asarray(y_train), dtype=torch.int64),
        x_test=x_test, y_test=torch.as_tensor(np.asarray(y_test), dtype=torch.int64),
        class_names=[str(c) for c in classes],
        normalization=STANDARD_NORMALIZATION[name],
    ))


def _as_nchw(data) -> torch.Tensor:
    """torchvision keeps CIFAR as N,H,W,C numpy and MNIST as N,H,W tensors."""
    array = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if array.ndim == 3:
        array = array[:, None]
    else:
        array = array.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.uint8))
