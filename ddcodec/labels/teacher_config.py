"""The teacher's settings (torch-free, so the command line takes its options from here)."""

from __future__ import annotations

from dataclasses import dataclass

from ddcodec.errors import DDCodecError
from ddcodec.names import ARCHITECTURES, canonical_arch
from ddcodec.options import option

PICKS = ("best", "early", "last")


@dataclass(frozen=True)
class TeacherConfig:
    arch: str = option("convnet", "Teacher network.", choices=ARCHITECTURES,
                       alias=canonical_arch)
    epochs: int = option(30, "Training epochs (lr x0.1 at half).", min=1)
    lr: float = option(0.01, "SGD learning rate.")
    batch_size: int = option(256, "Images per SGD step.", min=1)
    holdout: float = option(0.1, "Share of each class's training images held out to choose "
                                 "the checkpoint (never the test split).")
    pick: str = option("best", "Checkpoint: best (held-out accuracy), early (the first within "
                               "--early-margin of the best), last.", choices=PICKS)
    early_margin: float = option(0.05, "For --pick early: accuracy below the best allowed.")
    seed: int = option(0, cli=False)

    def __post_init__(self):
        object.__setattr__(self, "arch", canonical_arch(self.arch))
        if not 0 < self.holdout < 1:
            raise DDCodecError("--holdout must be between 0 and 1")
        if self.pick not in PICKS:
            raise DDCodecError(f"--pick must be one of {', '.join(PICKS)}")
        if not 0 <= self.early_margin < 1:
            raise DDCodecError("--early-margin must be within [0, 1)")
