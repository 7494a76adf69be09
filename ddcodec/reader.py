"""Train straight from a .ddz: `ddcodec.open(path)` and a torch `Dataset`, no files in between.

    import ddcodec, torch
    ddz = ddcodec.open("set.ddz")
    print(ddz.info()["bpc"])
    data = ddz.dataset()                       # decodes once, on first use
    loader = torch.utils.data.DataLoader(data, batch_size=256, shuffle=True)
    for epoch in range(300):
        data.set_epoch(epoch)                  # per-epoch labels / distributional sets
        for images, targets in loader: ...

Images come in the set's network input space (normalised; a ZCA set's whitened, as its source
method trained), exactly as `measure` trains on them. Targets are class indices, or a soft
label's row (float, K) when the file has soft labels (`labels="hard"` gives the indices).
`set_epoch(t)` replays what `measure` replays at epoch t: per-epoch soft labels show view
t mod E of every image with its row; a distributional set draws epoch t's fresh samples.
`test_inputs(dataset)` makes a test split's images into the same space.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import Dataset as TorchDataset

from ddcodec.bitstream import ddz as ddz_file
from ddcodec.bitstream.codec import Decoded
from ddcodec.errors import DDCodecError
from ddcodec.sets.distributional import Resampled
from ddcodec.sets.setfile import DistilledSet

LABEL_KINDS = ("auto", "hard", "soft")


class DDZ:
    """An opened .ddz: its bytes read and checked for the magic now, decoded (every checksum
    verified) once, on first use."""

    def __init__(self, path: str | os.PathLike | bytes):
        if isinstance(path, (bytes, bytearray)):
            self.name, self.data = "<bytes>", bytes(path)
        else:
            self.name, self.data = str(path), ddz_file.read_input(path)
        ddz_file.check_is_ddz(self.data, self.name)  # says what a set or torch file is
        if not ddz_file.is_ddz_bytes(self.data):
            raise DDCodecError(f"{self.name} is not a .ddz file")

    @cached_property
    def decoded(self) -> Decoded:
        return ddz_file.decode(self.data, bits=True)

    @cached_property
    def set(self) -> DistilledSet:
        return self.decoded.to_set()

    def info(self) -> dict:
        """`ddcodec info`'s report of this file."""
        return ddz_file.describe(self.decoded, self.name)

    @property
    def num_classes(self) -> int:
        return self.decoded.header.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.decoded.header.class_names)

    def dataset(self, labels: str = "auto",
                transform: Callable[[torch.Tensor], torch.Tensor] | None = None
                ) -> "DDZDataset":
        """A torch Dataset of (image, target); `labels`: auto (soft rows when the file has
        them), hard (class indices) or soft (refused without soft labels)."""
        return DDZDataset(self.set, labels, transform)

    def replay(self, epoch: int):
        """An FKD relabelling's batches of `epoch` ((images, soft rows) each), as `measure`
        trains on them (ddcodec.sets.fkd.FkdReplay)."""
        from ddcodec.sets.fkd import FkdReplay

        if self.set.fkd is None:
            raise DDCodecError("this file holds no FKD relabelling")
        if not hasattr(self, "_replay"):
            self._replay = FkdReplay(self.set.images, self.set.fkd,
                                     self.set.soft_labels.probabilities)
        return self._replay(epoch)

    def test_inputs(self, dataset) -> torch.Tensor:
        """A `ddcodec.data.datasets.Dataset`'s test images in this set's input space."""
        return self.set.input_space(dataset).normalize(dataset.x_test)

    def __repr__(self) -> str:
        return f"DDZ({self.name!r}, {len(self.data):,} bytes)"


class DDZDataset(TorchDataset):
    """The images and targets a network trains on at the current epoch (see the module)."""

    def __init__(self, distilled: DistilledSet, labels: str = "auto",
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
        if labels not in LABEL_KINDS:
            raise DDCodecError(f"labels must be one of {', '.join(LABEL_KINDS)}, not {labels!r}")
        soft = distilled.soft_labels
        if labels == "soft" and soft is None:
            raise DDCodecError("this file has hard labels only")
        if labels != "hard" and soft is not None and soft.fkd:
            raise DDCodecError("an FKD relabelling trains batch by batch (its mixing pairs "
                               "images within a batch): iterate DDZ.replay(epoch)")
        self.soft = soft if labels != "hard" else None
        self.distilled, self.transform = distilled, transform
        targets = (self.soft.training_rows(distilled.labels) if self.soft is not None
                   else distilled.labels)
        sampler = distilled.prior_sampler()
        self._resample = (Resampled(distilled.images, targets, sampler,
                                    distilled.normalization) if sampler is not None else None)
        self._targets = targets
        self.epoch = -1
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """What epoch `epoch` trains on (a no-op for fixed images with static labels)."""
        if epoch < 0:
            raise DDCodecError("epochs count from 0")
        if epoch == self.epoch:
            return
        self.epoch = epoch
        images, targets = self.distilled.images, self._targets
        if self._resample is not None:
            images, targets = self._resample(epoch)
        elif self.soft is not None and self.soft.per_epoch:
            label_epoch = epoch % self.soft.epochs
            every = torch.arange(images.shape[0])
            images = self.soft.views()(images, label_epoch, every)
            targets = targets[label_epoch]
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int):
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]


def open_ddz(path: str | os.PathLike | bytes) -> DDZ:
    """Open a .ddz for training or inspection (`ddcodec.open`)."""
    if not isinstance(path, (bytes, bytearray)) and str(path) != "-" \
            and not Path(path).is_file():
        raise DDCodecError(f"{path} not found")
    return DDZ(path)
