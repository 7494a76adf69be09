"""The classic-codec baseline: random real images per class, packed into one JPEG or WebP mosaic
per class so that per-file headers do not dominate, as many as fit in a bit budget.

Bits counted: every class file plus a 32-bit length field for each (what a container needs to
split them); labels are implied by the class order, as in our own files.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image

from ddcodec import seeds
from ddcodec.data.datasets import Dataset
from ddcodec.errors import DDCodecError

CODECS = {"jpeg": "JPEG", "webp": "WEBP"}
LENGTH_FIELD_BITS = 32
FILL = 128  # unused mosaic tiles: flat grey, nearly free


def mosaic_shape(n: int) -> tuple[int, int]:
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _options(codec: str, quality: int) -> dict:
    if codec == "webp":
        return {"quality": quality, "method": 6}
    return {"quality": quality, "optimize": True}


def pack(images: torch.Tensor, codec: str, quality: int) -> bytes:
    """uint8 N x C x H x W (C 1 or 3) -> one compressed mosaic."""
    if codec not in CODECS:
        raise DDCodecError(f"unknown codec {codec!r}; choose {', '.join(CODECS)}")
    n, c, h, w = images.shape
    if c not in (1, 3):
        raise DDCodecError(f"{codec} packs 1- or 3-channel images, not {c}")
    rows, cols = mosaic_shape(n)
    canvas = np.full((rows * h, cols * w, c), FILL, dtype=np.uint8)
    for i, image in enumerate(images.permute(0, 2, 3, 1).numpy()):
        r, k = divmod(i, cols)
        canvas[r * h:(r + 1) * h, k * w:(k + 1) * w] = image
    picture = Image.fromarray(canvas[..., 0] if c == 1 else canvas, "L" if c == 1 else "RGB")
    buffer = io.BytesIO()
    picture.save(buffer, CODECS[codec], **_options(codec, quality))
    return buffer.getvalue()


def unpack(data: bytes, n: int, shape: tuple[int, int, int]) -> torch.Tensor:
    c, h, w = shape
    with Image.open(io.BytesIO(data)) as picture:
        canvas = np.asarray(picture.convert("L" if c == 1 else "RGB"))
    canvas = canvas.reshape(canvas.shape[0], canvas.shape[1], c)
    _, cols = mosaic_shape(n)
    tiles = [canvas[(i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w]
             for i in range(n)]
    return torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).contiguous()


def class_orders(dataset: Dataset, seed: int) -> list[torch.Tensor]:
    """One fixed random order of each class's images, so larger subsets contain smaller ones."""
    orders = []
    for c in range(dataset.num_classes):
        pool = dataset.indices_of_class(c)
        generator = seeds.keyed("packed_order", seed, c)
        orders.append(pool[torch.randperm(len(pool), generator=generator)])
    return orders


def packed_files(dataset: Dataset, codec: str, quality: int, per_class: int,
                 orders: list[torch.Tensor]) -> list[bytes]:
    """One compressed mosaic per class of its first `per_class` images."""
    return [pack(dataset.x_train[order[:per_class]], codec, quality) for order in orders]


def files_bits(files: list[bytes]) -> int:
    return sum(8 * len(data) + LENGTH_FIELD_BITS for data in files)


def largest_within(dataset: Dataset, codec: str, quality: int, budget_bpc: float,
                   seed: int = 0, extra_bits=None):
    """The most images per class whose packed files (plus `extra_bits(images, labels)` of the
    decoded images, e.g. their soft labels) fit in budget_bpc x classes bits, or None when not
    even one per class fits. Returns (per_class, images, labels, bits)."""
    orders = class_orders(dataset, seed)
    budget = budget_bpc * dataset.num_classes
    low, high = 0, min(len(o) for o in orders)
    best = None
    while low < high:  # bits grow with the count: binary search the largest that fits
        mid = (low + high + 1) // 2
        files = packed_files(dataset, codec, quality, mid, orders)
        bits = files_bits(files)
        if extra_bits is not None and bits <= budget:
            bits += extra_bits(*_decoded(files, mid, dataset))
        if bits <= budget:
            low, best = mid, (files, bits)
        else:
            high = mid - 1
    if best is None:
        return None
    images, labels = _decoded(best[0], low, dataset)
    return low, images, labels, best[1]


def _decoded(files: list[bytes], per_class: int, dataset: Dataset):
    images = torch.cat([unpack(data, per_class, dataset.image_shape) for data in files])
    return images, torch.arange(len(files)).repeat_interleave(per_class)
