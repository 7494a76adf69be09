"""Hostile inputs to `encode`, for robustness checks (tests/bitstream/test_hostile_inputs.py and
benchmarks/fuzz.py): set files and folders that are valid as far as loading goes but hold
values no .ddz may carry (coder parameters out of range, integers beyond the coder's range,
bool tensors, NaN normalisation), tensors expanded with stride 0 to huge sizes, and image
folders with a decompression bomb, a truncated or an empty PNG.

`encode` must refuse each with one line (a DDCodecError) or write a file its own decoder reads;
anything else (an internal error, a file decode refuses) is a defect. Deterministic for a given
random.Random.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import torch
from ddcodec import api
from ddcodec.data.datasets import Normalization
from ddcodec.errors import DDCodecError
from ddcodec.labels.rungs.topk import as_topk
from ddcodec.labels.rungs.vq import VQLabels
from ddcodec.labels.soft import SoftLabels
from ddcodec.labels.vqae import VQAELabels
from ddcodec.sets.setfile import DistilledSet, load_set, set_bytes

OUTCOMES = ("refused", "encoded", "encoded_unreadable", "crash")


# ------------------------------------------------------------------------------- set files

def _tiny_set(classes: int = 10, per_class: int = 2, side: int = 2):
    """A pixel set of random 8-bit images (class-ordered): the base of the label crafts."""
    generator = torch.Generator().manual_seed(classes)
    norm = Normalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    pixels = torch.randint(0, 256, (classes * per_class, 3, side, side), generator=generator,
                           dtype=torch.uint8)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return DistilledSet(norm.normalize(pixels), labels, [f"c{i}" for i in range(classes)], norm,
                        {"method": "crafted"})


def _probabilities(rows: int, classes: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(rows + classes)
    return torch.softmax(torch.randn(rows, classes, generator=generator), dim=1)


def _vq(step: int, entries: int, classes: int = 10):
    """Soft labels of a VQ rung with this step and codebook size, consistent with themselves
    (so loading accepts them and only the coder's limits can refuse them)."""
    base = _tiny_set(classes)
    generator = torch.Generator().manual_seed(entries)
    codebook = -torch.randint(0, 64, (entries, classes), generator=generator, dtype=torch.int32)
    indices = torch.arange(base.num_images) % entries
    vq = VQLabels(step, codebook, indices)
    return replace(base, soft_labels=SoftLabels(vq.probabilities(), 1.0, codec="vq", payload=vq))


def _vqae(k: int | None = None, step: int = -4, hidden: int = 8, rows_short: bool = False):
    base = _tiny_set()
    classes, rows = base.num_classes, base.num_images
    k = k if k is not None else (rows + 3 if rows_short else 4)
    generator = torch.Generator().manual_seed(k + hidden)

    def ints(*shape):
        return torch.randint(-8, 8, shape, generator=generator, dtype=torch.int32)

    vqae = VQAELabels(step, step, ints(k, 4), (ints(hidden, 4), ints(hidden),
                                               ints(classes, hidden), ints(classes)),
                      torch.arange(rows) % k)
    return replace(base, soft_labels=SoftLabels(vqae.probabilities(), 1.0, codec="vqae",
                                                payload=vqae))


def _topk(keep: int = 256, classes: int = 300):
    base = _tiny_set(classes, per_class=1, side=1)
    return replace(base, soft_labels=as_topk(_probabilities(base.num_images, classes), keep,
                                             temperature=1.0))


def _golden():
    return load_set(Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "golden_set.pt")


def _weights(value) -> dict:
    """The golden latent set's file with one weight group's integers replaced."""
    raw = torch.load(io.BytesIO(set_bytes(_golden())), weights_only=True)
    group = raw["codec"]["groups"][0]["synthesis"]["weight"]
    group["q"] = value(group["q"])
    return raw


def _set_raw(distilled, **changes) -> dict:
    raw = torch.load(io.BytesIO(set_bytes(distilled)), weights_only=True)
    for key, value in changes.items():
        raw[key] = value
    return raw


def _expanded(images: int) -> dict:
    """A set file whose images are one image expanded with stride 0 to `images`."""
    raw = _set_raw(_tiny_set(2, 1))
    one = raw["images"][:1]
    raw["images"] = one.expand(images, *one.shape[1:])
    raw["labels"] = torch.zeros(1, dtype=torch.int64).expand(images)
    return raw


SET_CRAFTS = {
    "vq-step-17": lambda rng: _set_raw(_vq(17, 4)),
    "vq-step-min-int32": lambda rng: _set_raw(_vq(-(1 << 31), 4)),
    "vq-step-random": lambda rng: _set_raw(_vq(rng.choice((17, 40, -17, -300)), 4)),
    "vq-codebook-70000": lambda rng: _set_raw(_vq(-4, 70_000)),
    "vqae-k-over-rows": lambda rng: _set_raw(_vqae(rows_short=True)),
    "vqae-step-40": lambda rng: _set_raw(_vqae(step=40)),
    "vqae-hidden-5000": lambda rng: _set_raw(_vqae(hidden=5000)),
    "topk-256-of-300": lambda rng: _set_raw(_topk(256)),
    "topk-random": lambda rng: _set_raw(_topk(rng.choice((255, 256, 299)))),
    "weights-bool": lambda rng: _weights(lambda q: q != 0),
    "weights-int64-min": lambda rng: _weights(
        lambda q: torch.cat([torch.tensor([-(1 << 63)]), q[1:].to(torch.int64)])),
    "weights-beyond-int32": lambda rng: _weights(
        lambda q: torch.cat([torch.tensor([(1 << 32) + 1]), q[1:].to(torch.int64)])),
    "images-stride0": lambda rng: _expanded(rng.choice((200_000, 300_000))),
    "std-zero": lambda rng: _set_raw(_tiny_set(), normalization={
        "space": "normalized", "mean": [0.5] * 3, "std": [0.0, 0.25, 0.25]}),
    "mean-nan": lambda rng: _set_raw(_tiny_set(), normalization={
        "space": "normalized", "mean": [float("nan")] * 3, "std": [0.25] * 3}),
    "syn-lr-text": lambda rng: _set_raw(_tiny_set(), provenance={"syn_lr": "1x"}),
    "class-name-5000": lambda rng: _set_raw(_tiny_set(), class_names=[
        "x" * 5000] + [f"c{i}" for i in range(1, 10)]),
}


# ----------------------------------------------------------------------------- folders

def _png(width: int, height: int, pixel_data: bool = True) -> bytes:
    """A PNG whose header declares width x height (its data covers a few rows at most)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data)))

    rows = b"".join(b"\x00" + bytes(3 * width) for _ in range(min(height, 4)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                               0, 0, 0))
            + (chunk(b"IDAT", zlib.compress(rows)) if pixel_data else b"")
            + chunk(b"IEND", b""))


def _good_png(seed: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (8, 8, 3), generator=generator, dtype=torch.uint8)
    Image.fromarray(pixels.numpy()).save(buffer, "PNG")
    return buffer.getvalue()


FOLDER_CRAFTS = {
    "png-bomb-20000": lambda rng: _png(20_000, 20_000),
    "png-over-8192": lambda rng: _png(9_000, 8),
    "png-truncated": lambda rng: _good_png(rng.randrange(1 << 16))[:rng.randrange(20, 80)],
    "png-no-pixel-data": lambda rng: _png(8, 8, pixel_data=False),
    "not-an-image": lambda rng: b"hello",
}


def _folder(root: Path, bad: bytes) -> Path:
    for c in ("a", "b"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            (root / c / f"{i}.png").write_bytes(_good_png(i))
    (root / "a" / "bad.png").write_bytes(bad)
    return root


def _mtt(root: Path, images: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    one = torch.zeros(1, 3, 4, 4)
    torch.save(one.expand(images, 3, 4, 4), root / "images_best.pt")
    torch.save(torch.zeros(images, dtype=torch.int64), root / "labels_best.pt")
    return root


CRAFTS = (*(f"set:{n}" for n in SET_CRAFTS), *(f"folder:{n}" for n in FOLDER_CRAFTS),
          "mtt:stride0")


def make(kind: str, root: Path, rng: random.Random) -> tuple[Path, str, dict]:
    """Write the hostile input `kind` under `root`: (its path, encode's --from, import
    options)."""
    family, _, name = kind.partition(":")
    if family == "set":
        path = root / "set.pt"
        torch.save(SET_CRAFTS[name](rng), path)
        return path, "set", {}
    if family == "folder":
        return _folder(root / "folder", FOLDER_CRAFTS[name](rng)), "imagefolder", {
            "normalization": "cifar10"}
    return _mtt(root / "mtt", rng.choice((200_000, 300_000))), "mtt", {
        "normalization": "cifar10"}


def try_encode(path: Path, source: str, options: dict) -> tuple[str, str]:
    """(outcome, detail): what `encode` made of the input, as the command runs it."""
    try:
        data, _ = api.encode(path, source_format=source, **options)
    except DDCodecError as exc:
        return "refused", str(exc)[:120]
    except Exception as exc:  # noqa: BLE001 - the CLI's "internal error": a defect
        return "crash", f"{type(exc).__name__}: {str(exc)[:160]}"
    try:
        api.test(data)
    except DDCodecError as exc:
        return "encoded_unreadable", str(exc)[:120]
    return "encoded", ""
