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

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddcodec.errors import DDCodecError, ImageReadError

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "bundled"
from ddcodec.names import BUNDLED_DATA as BUNDLED_NAME  # noqa: E402
from ddcodec.data.folder_cache import cache_key, decode_all, read_cached, write_cached
DEFAULT_SPEC = BUNDLED_NAME
DATA_ROOT_ENV = "DDCODEC_DATA_ROOT"
HOLDOUT_FRACTION = 0.1  # test share of an ImageFolder that has no separate test split

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


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


# ---------------------------------------------------------------------------------------------
# Entry point


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
    if kind == "imagefolder":
        if not arg:
            raise DDCodecError("imagefolder spec needs a folder: --data imagefolder:DIR")
        dataset = _load_imagefolder(Path(arg), resize)
    elif kind == "npz":
        if not arg:
            raise DDCodecError("npz spec needs a file: --data npz:FILE")
        dataset = _load_npz(Path(arg), spec)
    elif arg:
        raise DDCodecError(f"unknown data spec {spec!r}; {_spec_help()}")
    else:
        name = _canonical_name(kind)
        if name == BUNDLED_NAME:
            dataset = _load_npz(BUNDLED_DIR / f"{BUNDLED_NAME}.npz", BUNDLED_NAME,
                                class_names=list(CIFAR10_CLASSES),
                                normalization=STANDARD_NORMALIZATION["cifar10"])
        else:
            dataset = _load_torchvision(name, _data_root(data_root), download)
    if resize is not None and kind != "imagefolder":
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


# ---------------------------------------------------------------------------------------------
# torchvision datasets


def _load_torchvision(name: str, root: Path, download: bool) -> Dataset:
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
    return _checked(Dataset(
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


# ---------------------------------------------------------------------------------------------
# npz files


def _load_npz(path: Path, spec: str, class_names: list[str] | None = None,
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
    return _checked(Dataset(
        spec=spec, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        class_names=list(class_names),
        normalization=normalization or _fitted_normalization(x_train),
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


# ---------------------------------------------------------------------------------------------
# ImageFolder trees


def _load_imagefolder(root: Path, resize: tuple[int, int] | None) -> Dataset:
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
    return _checked(Dataset(
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
    norm = _fitted_normalization(x_train)
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


# ---------------------------------------------------------------------------------------------
# Shared checks and transforms


def _fitted_normalization(x_train: torch.Tensor, chunk: int = 4096) -> Normalization:
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


def _checked(dataset: Dataset) -> Dataset:
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
