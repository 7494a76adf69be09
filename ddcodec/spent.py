"""Seconds a resumable job has spent over every process that worked on it.

A run that outlasts a session goes on from its checkpoint in a new process, whose own clock
knows nothing of the earlier ones. The seconds of the saved work are kept in a small file
beside the checkpoint, rewritten each time the checkpoint is, so a report can give the CPU
time a result really took (or say that part of it was not recorded)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ddcodec.fileio import atomic_path


@dataclass
class SpentClock:
    """`path`: the seconds file. `before`: the seconds of earlier processes; `complete` is
    False when a checkpoint was resumed without its seconds file (a run started before the
    file was kept), so `total()` is then a lower bound."""

    path: Path
    before: float = 0.0
    complete: bool = True
    started: float = field(default_factory=time.perf_counter)
    saved: float = field(default_factory=time.perf_counter)

    @classmethod
    def start(cls, path: Path, resuming: bool) -> SpentClock:
        """A clock for a run that starts afresh, or goes on from its checkpoint."""
        if not resuming:
            return cls(path)
        before = saved_seconds(path)
        if before is None:  # none kept yet, or unreadable: what this process spends
            return cls(path, complete=False)
        return cls(path, before=before)

    def total(self) -> float:
        """The seconds of every process so far, this one included."""
        return self.before + time.perf_counter() - self.started

    def save(self) -> None:
        """Called as the checkpoint is saved: the seconds that its work took."""
        with atomic_path(self.path) as tmp:  # a process killed mid-write leaves the old file
            tmp.write_text(f"{self.total():.1f}\n")
        self.saved = time.perf_counter()

    def saver(self, every: int) -> Callable[[int, float], None]:
        """An `on_iteration` hook for a run that checkpoints every `every` iterations: the
        seconds are saved at the same iterations (the hook runs just before the checkpoint)."""
        def save_with_checkpoint(iteration: int, loss: float) -> None:
            if (iteration + 1) % every == 0:
                self.save()
        return save_with_checkpoint

    def tick(self, every_s: float = 60.0) -> None:
        """Called each step of a run whose checkpoints come from elsewhere: saves once
        `every_s` seconds have passed since the last save, so a stop loses at most that much
        of the account (work redone after a stop counts: it was spent)."""
        if time.perf_counter() - self.saved >= every_s:
            self.save()

    def clear(self) -> None:
        """The run is done and its checkpoint gone: the seconds file goes with it."""
        self.path.unlink(missing_ok=True)


def saved_seconds(path: Path) -> float | None:
    """The seconds a run's file holds; None when there is none or it cannot be read (a
    process killed before the file was kept)."""
    try:
        return float(path.read_text())
    except (OSError, ValueError):
        return None
