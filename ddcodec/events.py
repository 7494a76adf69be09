"""What a long run tells whoever watches it: its plan, each step, and notes worth keeping.

Plain data with no display code, so the trainer can report without knowing how it is shown
(`ddcodec.progress` shows it on a terminal or as log lines; tests and benchmarks read it).
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field
from typing import Callable, Iterator

PHASES = {"fit": 1, "joint": 2, "quantise": 3}  # the latent trainer's stages, by phase


@dataclass(frozen=True)
class Event:
    kind: str  # "plan": the stages to come; "step": progress in a stage; "note": a result
    stage: str = ""
    done: int = 0
    total: int = 0
    text: str = ""
    info: dict = field(default_factory=dict)  # the step's numbers (loss, bits, seconds, ...)
    plan: tuple[tuple[str, int, float], ...] = ()  # (stage, steps, cost relative to the first)

    @property
    def phase(self) -> int:
        return PHASES.get(self.stage, 0)


EventHook = Callable[[Event], None]


LoadingCallback = Callable[[int, int], None]  # (images done, images in all)
_loading: contextvars.ContextVar[LoadingCallback | None] = contextvars.ContextVar(
    "ddcodec_loading_progress", default=None)


@contextlib.contextmanager
def loading_progress(callback: LoadingCallback) -> Iterator[None]:
    """Within this block, image folders being decoded report to `callback`."""
    token = _loading.set(callback)
    try:
        yield
    finally:
        _loading.reset(token)


def loading_callback() -> LoadingCallback | None:
    return _loading.get()
