"""FKD-style relabelling folders, in and out (SRe2L's relabel step, and the methods that kept its
layout: CDA, LPLD, GIFT, RDED's relabel option).

A relabelling folder holds `epoch_{e}/batch_{b}.tar` for every epoch and batch of the teacher's
pass over the images. Each file is one `torch.save`d list:

    [coords (B x 4 float32: top, left, height, width of the RandomResizedCrop, as fractions of
     the image's height and width), flips (B bool), mix_index (B int64, the batch position whose
     pixels are mixed in; None without mixing), mix_lam (float; None), mix_bbox (4 ints, the
     CutMix box on dims 2 and 3; None), soft_label (B x K teacher logits, float16 or float32)]

The images of batch b of epoch e are positions b*B .. b*B+B-1 of that epoch's draw of
`torch.utils.data.RandomSampler` seeded once with the relabelling's seed (`--fkd-seed`, 42 by
default), over the images in torchvision ImageFolder order: the files do not name them.

In ddcodec the views' metadata is kept exactly (`FkdViews`, the file's `fkd views` section) and
the logits become per-epoch soft labels softmax(logits / T) at the training temperature T (the
relabel-training scripts train on exactly that), each row under its image: row e x N + i is the
label of image i's view at epoch e. They go through the label ladder like any per-epoch labels.
Writing the folder back gives T x log(p) as the logits, equal to the originals up to a constant
per row, which softmax(. / T) ignores.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddcodec.errors import DDCodecError
from ddcodec.limits import LABELS

MIX_KINDS = ("none", "mixup", "cutmix")
LOGIT_DTYPES = {"float16": torch.float16, "float32": torch.float32}

DEFAULT_SEED = 42  # SRe2L's --fkd-seed
DEFAULT_TEMPERATURE = 3.0  # SRe2L's train_FKD.py --temperature
_EPOCH = re.compile(r"epoch_(\d+)$")
_BATCH = re.compile(r"batch_(\d+)\.tar$")


@dataclass(frozen=True)
class FkdViews:
    """How the teacher saw each image at each epoch; arrays in the sampler's order (epoch e,
    position p of that epoch's draw). `mix_index`, `mix_lam`, `mix_box` are empty without
    mixing; `mix_box` is empty for mixup."""

    seed: int
    batch_size: int
    coords: torch.Tensor  # float32 E x N x 4
    flips: torch.Tensor  # bool E x N
    mix: str
    mix_index: torch.Tensor  # int64 E x N (partner's position within its batch), or E x 0
    mix_lam: torch.Tensor  # float64 E x batches, or E x 0
    mix_box: torch.Tensor  # int64 E x batches x 4, or E x 0 x 4
    logits_dtype: str = "float16"

    @property
    def epochs(self) -> int:
        return int(self.coords.shape[0])

    @property
    def num_images(self) -> int:
        return int(self.coords.shape[1])

    @property
    def batches(self) -> int:
        return math.ceil(self.num_images / self.batch_size)

    def orders(self) -> torch.Tensor:
        """E x N: each epoch's image order, the sampler's draws as the relabelling made them."""
        return sampler_orders(self.num_images, self.epochs, self.seed)

    def batch_slices(self):
        for b in range(self.batches):
            yield b, slice(b * self.batch_size, min((b + 1) * self.batch_size, self.num_images))

    def check(self, num_images: int, image_hw: tuple[int, int]) -> None:
        """Every value within what the format allows; one line names the first that is not."""
        e, n = self.epochs, self.num_images
        if not 1 <= e <= LABELS.epochs:
            raise DDCodecError(f"FKD views: {e} epochs; 1 to {LABELS.epochs:,} are allowed")
        if n != num_images:
            raise DDCodecError(f"FKD views cover {n} images; the set has {num_images}")
        if not 1 <= self.batch_size <= n:
            raise DDCodecError(f"FKD views: batch size {self.batch_size} for {n} images")
        if not 0 <= self.seed < 1 << 63:
            raise DDCodecError("FKD views: the sampler's seed must be in [0, 2^63)")
        if self.mix not in MIX_KINDS or self.logits_dtype not in LOGIT_DTYPES:
            raise DDCodecError(f"FKD views: mix {self.mix!r} / logits {self.logits_dtype!r}")
        shapes = {"coords": (self.coords, (e, n, 4), torch.float32),
                  "flips": (self.flips, (e, n), torch.bool)}
        mixing = self.mix != "none"
        shapes["mix_index"] = (self.mix_index, (e, n if mixing else 0), torch.int64)
        shapes["mix_lam"] = (self.mix_lam, (e, self.batches if mixing else 0), torch.float64)
        shapes["mix_box"] = (self.mix_box, (e, self.batches if self.mix == "cutmix" else 0, 4),
                             torch.int64)
        for name, (value, shape, dtype) in shapes.items():
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape \
                    or value.dtype != dtype:
                raise DDCodecError(f"FKD views: {name} must be {dtype} {shape}")
        if not torch.isfinite(self.coords).all() or (self.coords < 0).any() \
                or (self.coords > 1).any():
            raise DDCodecError("FKD views: crop coordinates must be fractions in [0, 1]")
        if mixing:
            for b, rows in self.batch_slices():
                size = rows.stop - rows.start
                index = self.mix_index[:, rows]
                if (index < 0).any() or (index >= size).any():
                    raise DDCodecError(f"FKD views: a mix index of batch {b} is outside it")
            if not torch.isfinite(self.mix_lam).all() or (self.mix_lam < 0).any() \
                    or (self.mix_lam > 1).any():
                raise DDCodecError("FKD views: mix coefficients must be in [0, 1]")
        if self.mix == "cutmix":
            h, w = image_hw
            box = self.mix_box
            if (box < 0).any() or (box[..., [0, 2]] > h).any() or (box[..., [1, 3]] > w).any() \
                    or (box[..., 0] > box[..., 2]).any() or (box[..., 1] > box[..., 3]).any():
                raise DDCodecError("FKD views: a CutMix box lies outside the images")

    def to_dict(self) -> dict:
        return {"seed": self.seed, "batch_size": self.batch_size, "coords": self.coords,
                "flips": self.flips, "mix": self.mix, "mix_index": self.mix_index,
                "mix_lam": self.mix_lam, "mix_box": self.mix_box,
                "logits_dtype": self.logits_dtype}

    @classmethod
    def from_dict(cls, raw: dict) -> "FkdViews":
        try:
            return cls(int(raw["seed"]), int(raw["batch_size"]), raw["coords"], raw["flips"],
                       str(raw["mix"]), raw["mix_index"], raw["mix_lam"], raw["mix_box"],
                       str(raw.get("logits_dtype", "float16")))
        except (KeyError, TypeError, ValueError) as exc:
            raise DDCodecError(f"damaged FKD views ({exc})") from None


def sampler_orders(n: int, epochs: int, seed: int) -> torch.Tensor:
    """The image order of every epoch: one RandomSampler, seeded once, drawn once per epoch."""
    generator = torch.Generator().manual_seed(seed)
    sampler = torch.utils.data.RandomSampler(range(n), generator=generator)
    orders = torch.empty(epochs, n, dtype=torch.int64)
    for epoch in range(epochs):  # the whole draw, as a DataLoader consumes it
        orders[epoch] = torch.tensor(list(sampler), dtype=torch.int64)
    return orders


# ------------------------------------------------------------------------------ reading

def _safe_globals() -> list:
    """What a relabelling file may hold besides tensors: numpy scalars (SRe2L's CutMix box and
    lam come from numpy); nothing that runs code."""
    core = getattr(np, "_core", None) or np.core
    return [core.multiarray.scalar, np.dtype, np.dtypes.Float64DType, np.dtypes.Int64DType,
            np.dtypes.Float32DType, np.dtypes.Int32DType]


def _load_batch(path: Path) -> list:
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a foreign or damaged file
        raise DDCodecError(f"{path}: not a readable relabelling batch "
                           f"({str(exc).splitlines()[0][:160]})") from None
    if not isinstance(raw, (list, tuple)) or len(raw) != 6:
        raise DDCodecError(f"{path}: expected [coords, flips, mix_index, mix_lam, mix_bbox, "
                           "soft_label]")
    return list(raw)


def relabel_files(folder: Path) -> list[list[Path]]:
    """epoch_0 .. epoch_{E-1}, each with batch_0 .. batch_{b-1}: numbered without gaps."""
    epochs = sorted(((int(m.group(1)), p) for p in folder.iterdir()
                     if p.is_dir() and (m := _EPOCH.match(p.name))), key=lambda t: t[0])
    if not epochs:
        raise DDCodecError(f"{folder} holds no epoch_N folders of a relabelling")
    if [e for e, _ in epochs] != list(range(len(epochs))):
        raise DDCodecError(f"{folder}: the epoch folders are not numbered 0..{len(epochs) - 1}")
    out = []
    for e, path in epochs:
        batches = sorted(((int(m.group(1)), p) for p in path.iterdir()
                          if (m := _BATCH.match(p.name))), key=lambda t: t[0])
        if [b for b, _ in batches] != list(range(len(batches))) or not batches:
            raise DDCodecError(f"{path}: the batch files are not numbered 0..N-1")
        out.append([p for _, p in batches])
    if len({len(b) for b in out}) != 1:
        raise DDCodecError(f"{folder}: the epochs hold different numbers of batches")
    return out


def read_relabel(folder: Path, num_images: int, num_classes: int, image_hw: tuple[int, int],
                 seed: int = DEFAULT_SEED, temperature: float = DEFAULT_TEMPERATURE,
                 log_probabilities: bool = False) -> tuple[FkdViews, torch.Tensor]:
    """The views and the soft labels (E*N x K probabilities, row e*N + i the label of image i's
    view at epoch e) of a relabelling folder over `num_images` images. `log_probabilities`:
    the logits are T log(p) (ddcodec's export), read back without renormalising."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise DDCodecError("--label-temperature must be > 0")
    files = relabel_files(folder)
    epochs, batches = len(files), len(files[0])
    if epochs > LABELS.epochs:
        raise DDCodecError(f"{folder}: {epochs} epochs; at most {LABELS.epochs:,}")
    if epochs * num_images * num_classes > LABELS.values:
        raise DDCodecError(f"{folder}: {epochs} epochs x {num_images} images x {num_classes} "
                           "classes of labels is beyond what a file may hold")
    first = _load_batch(files[0][0])
    batch_size = _rows(first[0], files[0][0])
    if math.ceil(num_images / batch_size) != batches:
        raise DDCodecError(f"{folder}: {batches} batches of {batch_size} do not cover "
                           f"{num_images} images (do the images match the relabelling?)")
    mix = _mix_kind(first, files[0][0])
    coords = torch.zeros(epochs, num_images, 4)
    flips = torch.zeros(epochs, num_images, dtype=torch.bool)
    mix_index = torch.zeros(epochs, num_images if mix != "none" else 0, dtype=torch.int64)
    mix_lam = torch.zeros(epochs, batches if mix != "none" else 0, dtype=torch.float64)
    mix_box = torch.zeros(epochs, batches if mix == "cutmix" else 0, 4, dtype=torch.int64)
    logits = torch.zeros(epochs, num_images, num_classes)
    dtypes = set()
    for e, epoch_files in enumerate(files):
        for b, path in enumerate(epoch_files):
            raw = first if (e, b) == (0, 0) else _load_batch(path)
            rows = slice(b * batch_size, min((b + 1) * batch_size, num_images))
            size = rows.stop - rows.start
            coords[e, rows] = _tensor(raw[0], (size, 4), path, "coords").to(torch.float32)
            flips[e, rows] = _tensor(raw[1], (size,), path, "flip status").to(torch.bool)
            if _mix_kind(raw, path) != mix:
                raise DDCodecError(f"{path}: its mixing differs from the first batch's")
            if mix != "none":
                mix_index[e, rows] = _tensor(raw[2], (size,), path, "mix index").to(torch.int64)
                mix_lam[e, b] = float(raw[3])
            if mix == "cutmix":
                mix_box[e, b] = torch.tensor([int(v) for v in raw[4]], dtype=torch.int64)
            soft = _tensor(raw[5], (size, num_classes), path, "soft label")
            dtypes.add(str(soft.dtype).removeprefix("torch."))
            logits[e, rows] = soft.to(torch.float32)
    if not torch.isfinite(logits).all():
        raise DDCodecError(f"{folder}: the soft labels hold NaN or infinite values")
    views = FkdViews(seed, batch_size, coords, flips, mix, mix_index, mix_lam, mix_box,
                     "float16" if dtypes == {"float16"} else "float32")
    views.check(num_images, image_hw)
    # from the sampler's order to the images': row (e, position p) labels image orders[e, p]
    orders = views.orders()
    by_image = torch.empty_like(logits)
    by_image.scatter_(1, orders[:, :, None].expand(-1, -1, num_classes), logits)
    # ddcodec's own export wrote T log(p): exp gives p back exactly (softmax would renormalise)
    probabilities = (torch.exp(by_image / temperature) if log_probabilities
                     else torch.softmax(by_image / temperature, dim=2))
    return views, probabilities.reshape(epochs * num_images, num_classes)


def _rows(value, path: Path) -> int:
    if not isinstance(value, torch.Tensor) or value.ndim != 2 or value.shape[1] != 4 \
            or value.shape[0] < 1:
        raise DDCodecError(f"{path}: coords must be a B x 4 tensor")
    return int(value.shape[0])


def _tensor(value, shape: tuple, path: Path, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise DDCodecError(f"{path}: {what} is {got}, expected a {shape} tensor")
    return value


def _mix_kind(raw: list, path: Path) -> str:
    index, lam, box = raw[2], raw[3], raw[4]
    if index is None and lam is None and box is None:
        return "none"
    if index is None or lam is None:
        raise DDCodecError(f"{path}: a mix index needs its coefficient")
    if box is None:
        return "mixup"
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise DDCodecError(f"{path}: the CutMix box must be 4 numbers")
    return "cutmix"


# ------------------------------------------------------------------------------ writing

def write_relabel(folder: Path, views: FkdViews, probabilities: torch.Tensor,
                  temperature: float) -> None:
    """The relabelling folder of `views` and their labels (E*N x K rows by image), in the
    layout the relabel-training scripts read: logits T x log(p) (float32), batch by batch."""
    e_count, n = views.epochs, views.num_images
    rows = probabilities.view(e_count, n, -1).clamp_min(torch.finfo(torch.float32).tiny)
    orders = views.orders()
    for e in range(e_count):
        epoch = folder / f"epoch_{e}"
        epoch.mkdir(parents=True, exist_ok=True)
        # float32 whatever the source held: exp(logits / T) gives back the stored rows exactly
        # (float16 logits would not); the training scripts cast them to float32 anyway
        logits = temperature * rows[e][orders[e]].log()
        for b, part in views.batch_slices():
            mixing = views.mix != "none"
            torch.save([views.coords[e, part].clone(), views.flips[e, part].clone(),
                        views.mix_index[e, part].clone() if mixing else None,
                        float(views.mix_lam[e, b]) if mixing else None,
                        [int(v) for v in views.mix_box[e, b]] if views.mix == "cutmix"
                        else None,
                        logits[part].clone()], epoch / f"batch_{b}.tar")


# ------------------------------------------------------------------------------ replay

class FkdReplay:
    """The batches of every epoch, as the relabel-training scripts rebuild them: the sampler's
    images, each cropped and resized back to the image size (bilinear, antialiased), flipped,
    then mixed within its batch; each with its soft label. Epoch t replays label epoch t mod E.
    `replay(t)` yields (images, rows) per batch; the orders are drawn once."""

    def __init__(self, images: torch.Tensor, views: FkdViews, probabilities: torch.Tensor):
        self.images, self.views = images, views
        self.rows = probabilities.view(views.epochs, views.num_images, -1)
        self.orders = views.orders()

    def __call__(self, epoch: int):
        from torchvision.transforms.v2 import functional as tvf

        views, e = self.views, epoch % self.views.epochs
        _, _, h, w = self.images.shape
        order = self.orders[e]
        rows = self.rows[e][order]
        for b, part in views.batch_slices():
            crops = []
            for k, i in enumerate(order[part].tolist()):
                top, left, height, width = views.coords[e, part.start + k].tolist()
                box = (round(top * h), round(left * w), max(1, round(height * h)),
                       max(1, round(width * w)))
                crop = tvf.resized_crop(self.images[i], *box, [h, w], antialias=True)
                crops.append(crop.flip(-1) if views.flips[e, part.start + k] else crop)
            x = torch.stack(crops)
            if views.mix != "none":
                partner = views.mix_index[e, part]
                lam = float(views.mix_lam[e, b])
                if views.mix == "mixup":
                    x = lam * x + (1 - lam) * x[partner]
                else:
                    x1, y1, x2, y2 = views.mix_box[e, b].tolist()
                    x[:, :, x1:x2, y1:y2] = x[partner][:, :, x1:x2, y1:y2]
            yield x, rows[part]
