"""`imagefolder:DIR`: one sub-folder of images per class (or train/ and test/ such trees), found
and ordered as torchvision's ImageFolder finds them, decoded once into a cache
(ddcodec.data.folder_cache) and memory-mapped from it afterwards."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from ddcodec.data.base import Dataset, Normalization, checked, fitted_normalization
from ddcodec.data.folder_cache import cache_key, decode_all, read_cached, write_cached
from ddcodec.errors import DDCodecError, ImageReadError

HOLDOUT_FRACTION = 0.1  # test share of an ImageFolder that has no separate test split


def load_imagefolder(root: Path, resize: tuple[int, int] | None) -> Dataset:
    if not root.is_dir():
        raise DDCodecError(f"imagefolder {root} is not a directory (expected one sub-folder of "
                           "images per class)")
    train_dir, test_dir = root / "train", next(
        (root / n for n in ("test", "val") if (root / n).is_dir()), None)
    if train_dir.is_dir() and test_dir is not None:
        class_names = class_folders(train_dir)
        train_files = image_files(train_dir, class_names)
        test_files = image_files(test_dir, class_names, must_cover=False)
    else:
        class_names = class_folders(root)
        train_files, test_files = _holdout_split(image_files(root, class_names))
    x_train, y_train, x_test, y_test, normalization = _decoded_tree(root, train_files,
                                                                    test_files, resize)
    return checked(Dataset(
        spec=f"imagefolder:{root}", x_train=x_train, y_train=y_train, x_test=x_test,
        y_test=y_test, class_names=class_names, normalization=normalization,
    ))


def _decoded_tree(root: Path, train_files, test_files, resize):
    """Both splits' images and labels and the training images' normalisation, from the cache
    when no file changed, memory-mapped (ddcodec.data.folder_cache)."""
    key = cache_key(root, train_files, f"train|{resize}") + cache_key(root, test_files, "test")
    key = cache_key(root, [], key)  # one short key for both
    cached = read_cached(key)
    names = ("x_train", "y_train", "x_test", "y_test")
    if cached is not None and all(isinstance(cached.get(n), torch.Tensor) for n in names):
        try:
            norm = Normalization.from_dict(cached["normalization"])
            return (*(cached[n] for n in names), norm)
        except (KeyError, TypeError, ValueError):
            pass  # read afresh
    x_train, y_train, x_test, y_test = read_common_images(train_files, root, resize,
                                                          also=test_files)
    norm = fitted_normalization(x_train)
    arrays = dict(zip(names, (x_train, y_train, x_test, y_test)))
    if write_cached(key, {**arrays, "normalization": norm.to_dict()}):
        mapped = read_cached(key)  # from now on this process holds only the pages it reads
        if mapped is not None and all(isinstance(mapped.get(n), torch.Tensor) for n in names):
            arrays = {n: mapped[n] for n in names}
    return (*(arrays[n] for n in names), norm)


def class_folders(root: Path) -> list[str]:
    """The class folders torchvision's ImageFolder finds (its own discovery, so ddcodec and the
    user's ImageFolder code see the same classes in the same order)."""
    from torchvision.datasets.folder import find_classes

    try:
        names = find_classes(root)[0]
    except (FileNotFoundError, OSError):
        names = []
    if len(names) < 2:
        raise DDCodecError(f"imagefolder {root} has {len(names)} class folder(s); need at least "
                           "2 sub-folders, one per class, holding images")
    return names


def image_files(root: Path, class_names: list[str], must_cover: bool = True
                ) -> list[tuple[Path, int]]:
    """(path, label) of every image torchvision's ImageFolder would load, in its order (its
    extensions, sub-folders walked)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    index = {name: label for label, name in enumerate(class_names)}
    try:
        files = make_dataset(str(root), index, extensions=IMG_EXTENSIONS,
                             allow_empty=not must_cover)
    except FileNotFoundError as exc:
        raise DDCodecError(f"imagefolder {root}: a class folder holds no images "
                           f"({', '.join(IMG_EXTENSIONS)}): {exc}".splitlines()[0]) from None
    return [(Path(path), label) for path, label in files]


def read_common_images(files: list[tuple[Path, int]], root: Path,
                       resize: tuple[int, int] | None = None, also=None):
    """uint8 N x C x H x W images and int64 labels, all in one mode and size; with `also`,
    those files' images and labels too, in the same mode and size (a test split)."""
    mode, size = _common_mode_and_size(files + (also or []), resize, root)
    x, y = _read_images(files + (also or []), mode, size)  # one pass: one progress count
    n = len(files)
    return (x, y) if also is None else (x[:n].clone(), y[:n].clone(), x[n:].clone(),
                                        y[n:].clone())


def _holdout_split(files):
    """Every 1/HOLDOUT_FRACTION-th image of each class (in name order) goes to the test split."""
    step = round(1 / HOLDOUT_FRACTION)
    train, test, seen = [], [], {}
    for path, label in files:
        i = seen.get(label, 0)
        seen[label] = i + 1
        (test if i % step == step - 1 else train).append((path, label))
    if not test:
        raise DDCodecError("imagefolder has too few images to hold out a test split; give "
                           "train/ and test/ sub-folders")
    return train, test


MAX_IMAGE_SIDE = 8192  # what a .ddz header holds; larger files are refused before decoding


@contextlib.contextmanager
def _image_errors(path: Path):
    """Every way Pillow fails on a file (not an image, truncated, without pixel data, a
    decompression bomb) as one ImageReadError naming the file."""
    from PIL import Image

    try:
        yield
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from None


def _open_image(path: Path):
    """Pillow's lazy image, refused when it declares sides beyond MAX_IMAGE_SIDE."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im = Image.open(path)
    if max(im.size) > MAX_IMAGE_SIDE:
        im.close()
        raise ImageReadError(f"cannot read image {path}: it declares {im.size[0]}x{im.size[1]} "
                             f"pixels, more than {MAX_IMAGE_SIDE} a side")
    return im


def _common_mode_and_size(files, resize, root: Path):
    def header(path: Path):
        with _image_errors(path), _open_image(path) as im:
            return _target_mode(im.mode), im.size


    headers = decode_all(files, header) if len(files) > 1000 else [header(p) for p, _ in files]
    modes, sizes = {m for m, _ in headers}, {s for _, s in headers}
    mode = "RGBA" if "RGBA" in modes else "RGB" if "RGB" in modes else "L"
    if resize is not None:
        return mode, (resize[1], resize[0])  # PIL sizes are (W, H)
    if len(sizes) > 1:
        raise DDCodecError(f"images under {root} have {len(sizes)} different sizes; pass "
                           "--resize HxW to bring them to one")
    return mode, sizes.pop()


def _target_mode(mode: str) -> str:
    if mode in ("L", "1", "I", "I;16", "F", "LA"):
        return "L"
    return "RGBA" if mode in ("RGBA", "PA") else "RGB"


def _read_images(files, mode: str, size: tuple[int, int]):
    from PIL import Image


    def read(path: Path) -> np.ndarray:
        with _image_errors(path), _open_image(path) as im:
            im = im.convert(mode)
            if im.size != size:
                im = im.resize(size, Image.BICUBIC)
            arr = np.asarray(im, dtype=np.uint8)
        return arr[:, :, None] if arr.ndim == 2 else arr

    arrays = decode_all(files, read)
    labels = [label for _, label in files]
    x = np.stack(arrays).transpose(0, 3, 1, 2) if arrays else np.zeros((0, 1, size[1], size[0]))
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)), torch.tensor(
        labels, dtype=torch.int64)
