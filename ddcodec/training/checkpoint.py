"""Where a long measurement keeps its progress: 1000 epochs x 5 networks of a set of a thousand
images is about 14 hours of one CPU thread, longer than a job's time limit or a sitting.

The file holds the finished networks' accuracies and the running network's whole state (its
weights, optimiser and draws), saved every `every_s` seconds of training and after each network.
Measuring the same set under the same protocol again goes on from it, to the very figures an
unbroken measurement gives; a file made for another set, protocol or device is refused.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

from ddcodec.errors import DDCodecError
from ddcodec.fileio import atomic_path, load_tagged

CHECKPOINT_FORMAT = "ddcodec-measure-checkpoint"
SAVE_EVERY_S = 120.0  # seconds of training between saves: little lost, little time saving


def fingerprint(*parts) -> str:
    """What a checkpoint belongs to (the set's digest, the protocol, the seed, the device
    kind...), as one digest: a checkpoint of anything else is refused."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class EvalCheckpoint:
    def __init__(self, path: str | Path, fingerprint: str, every_s: float | None = None):
        self.path, self.fingerprint = Path(path), fingerprint
        self.every_s = SAVE_EVERY_S if every_s is None else every_s
        self.before = 0.0  # seconds of the saved work of earlier processes
        self._started = time.perf_counter()
        self._saved = self._started

    def load(self) -> tuple[list[tuple[int, float]], dict | None]:
        """(seed, accuracy) of each finished network, and the running one's state (None: none
        running) from an earlier process; nothing when there is no file."""
        if not self.path.is_file():
            return [], None
        state = load_tagged(self.path, CHECKPOINT_FORMAT, "measure checkpoint")
        if state.get("fingerprint") != self.fingerprint:
            raise DDCodecError(f"{self.path} was saved while measuring another set, protocol "
                               "or device: remove it, or measure what it was made for")
        self.before = float(state["seconds"])
        done = [(int(seed), float(acc)) for seed, acc in state["done"]]
        return done, state["current"]

    def seconds(self) -> float:
        """The measurement's seconds so far, earlier processes' saved work included."""
        return self.before + time.perf_counter() - self._started

    def keeper(self, seed: int, done: list[tuple[int, float]]) -> Callable[[dict], None]:
        """train_network's `keep`: the running network's state, saved when `every_s` seconds
        have passed since the last save."""
        def keep(trainer: dict) -> None:
            if time.perf_counter() - self._saved >= self.every_s:
                self._save(done, {"seed": seed, "trainer": trainer})
        return keep

    def finished(self, done: list[tuple[int, float]]) -> None:
        self._save(done, None)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def _save(self, done: list[tuple[int, float]], current: dict | None) -> None:
        import torch

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            torch.save({"format": CHECKPOINT_FORMAT, "fingerprint": self.fingerprint,
                        "seconds": self.seconds(), "done": [list(d) for d in done],
                        "current": current}, tmp)
        self._saved = time.perf_counter()
