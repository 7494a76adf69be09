"""`npz:FILE`: arrays x_train, y_train, x_test, y_test (uint8 images, HWC or CHW; integer
labels), optionally class_names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ddcodec.data.base import Dataset, Normalization, checked, fitted_normalization
from ddcodec.errors import DDCodecError


def load_npz(path: Path, spec: str, class_names: list[str] | None = None,
              normalization: Normalization | None = None) -> Dataset:
    if not path.is_file():
        raise DDCodecError(f"npz file {path} not found (--data npz:FILE with keys "
                           "x_train, y_train, x_test, y_test)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in archive]
            if missing:
                raise DDCodecError(f"{path} lacks the arrays {', '.join(missing)} "
                                   "(need x_train, y_train, x_test, y_test)")
            arrays = {k: archive[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            if class_names is None and "class_names" in archive:
                class_names = [str(c) for c in archive["class_names"].tolist()]
    except DDCodecError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise DDCodecError(f"{path} is not a readable npz file: {exc}") from exc
    x_train = _images_to_nchw(arrays["x_train"], path, "x_train")
    x_test = _images_to_nchw(arrays["x_test"], path, "x_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DDCodecError(f"{path}: x_train images are {tuple(x_train.shape[1:])} but x_test "
                           f"images are {tuple(x_test.shape[1:])}")
    y_train = _labels(arrays["y_train"], len(x_train), path, "y_train")
    y_test = _labels(arrays["y_test"], len(x_test), path, "y_test")
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    if class_names is None:
        class_names = [str(c) for c in range(num_classes)]
    if len(class_names) < num_classes:
        raise DDCodecError(f"{path}: labels go up to {num_classes - 1} but only "
                           f"{len(class_names)} class names are given")
    return checked(Dataset(
        spec=spec, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        class_names=list(class_names),
        normalization=normalization or fitted_normalization(x_train),
    ))


def _images_to_nchw(array: np.ndarray, path: Path, key: str) -> torch.Tensor:
    if array.dtype != np.uint8:
        raise DDCodecError(f"{path}: {key} has dtype {array.dtype}; images must be uint8 0..255")
    if array.ndim == 3:  # N, H, W grey images
        array = array[:, None]
    elif array.ndim == 4:
        if array.shape[-1] in (1, 3, 4) and array.shape[1] not in (1, 3, 4):
            array = array.transpose(0, 3, 1, 2)  # HWC -> CHW
        elif array.shape[1] not in (1, 3, 4):
            raise DDCodecError(f"{path}: {key} has shape {array.shape}; expected N,H,W,C or "
                               "N,C,H,W with 1, 3 or 4 channels")
    else:
        raise DDCodecError(f"{path}: {key} has shape {array.shape}; expected N,H,W[,C] images")
    if array.shape[0] == 0:
        raise DDCodecError(f"{path}: {key} holds no images")
    return torch.from_numpy(np.ascontiguousarray(array))


def _labels(array: np.ndarray, n: int, path: Path, key: str) -> torch.Tensor:
    array = np.asarray(array).reshape(-1)
    if not np.issubdtype(array.dtype, np.integer):
        raise DDCodecError(f"{path}: {key} has dtype {array.dtype}; labels must be integers")
    if len(array) != n:
        raise DDCodecError(f"{path}: {key} has {len(array)} labels for {n} images")
    if array.min() < 0:
        raise DDCodecError(f"{path}: {key} has negative labels")
    return torch.from_numpy(array.astype(np.int64))
