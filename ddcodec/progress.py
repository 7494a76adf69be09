"""Progress on stderr that never goes silent: one display per run, with the run's overall ETA.

A run reports `Event`s: the plan of its stages (steps per stage), then each step of the current
stage with a line of numbers. On a terminal a rich display shows the stage, its bar, those
numbers, the time elapsed and the overall ETA (which rich redraws several times a second, so
even a long step shows time moving). Without a terminal (nohup, SLURM, a pipe) a plain line with
the same numbers goes out when a stage begins, for every `note`, and every `log_every` seconds
from a ticker thread, so a log never goes quiet for longer than that. `-q`/`--json`: nothing.

The overall ETA sums, over the stages left, steps times seconds per step: measured for stages
seen, else the last measured rate scaled by the stage's `cost` (the caller's guess of a step's
price relative to the first stage's).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from rich.console import Console

from ddcodec.events import loading_progress

stderr_console = Console(stderr=True)
DEFAULT_LOG_EVERY = 30.0  # seconds between plain lines when stderr is not a terminal
STAGE_LABELS = {"fit": "phase 1/3 fit", "joint": "phase 2/3 joint",
                "quantise": "phase 3/3 weight quantisation"}


@dataclass
class Stage:
    name: str
    total: int
    cost: float = 1.0  # a step's price relative to the first stage's, until measured
    done: int = 0
    last: float | None = None  # when the stage last reported
    spent: float = 0.0  # seconds between reports that advanced it
    counted: int = 0  # steps those reports advanced

    @property
    def seconds_per_step(self) -> float | None:
        return self.spent / self.counted if self.counted else None


@dataclass
class EtaModel:
    """The run's stages and how fast each went; the overall time left."""

    stages: list[Stage] = field(default_factory=list)

    def plan(self, stages: list[tuple[str, int, float]]) -> None:
        known = {s.name: s for s in self.stages}
        self.stages = [known.get(name) or Stage(name, total, cost)
                       for name, total, cost in stages]
        for stage, (_, total, cost) in zip(self.stages, stages):
            stage.total = total
            if not stage.counted:  # a guess stands until the stage's own pace is measured
                stage.cost = cost

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        self.stages.append(Stage(name, 0))
        return self.stages[-1]

    def step(self, name: str, done: int, total: int, now: float) -> None:
        """A report from a stage; only time between two reports that advanced it counts (a
        stage entered again, as rate control re-enters the joint phase, starts counting anew)."""
        stage = self.stage(name)
        if stage.last is not None and done > stage.done:
            stage.spent += now - stage.last
            stage.counted += done - stage.done
        stage.last, stage.done, stage.total = now, done, max(total, done)

    def remaining(self) -> float | None:
        measured = [(s.seconds_per_step / s.cost) for s in self.stages
                    if s.seconds_per_step is not None and s.cost > 0]
        if not measured:
            return None
        unit = measured[-1]
        left = 0.0
        for s in self.stages:
            rate = s.seconds_per_step if s.seconds_per_step is not None else unit * s.cost
            left += max(0, s.total - s.done) * rate
        return left


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Display:
    """What a run reports to. This base shows nothing (quiet runs, --json)."""

    def __init__(self) -> None:
        self.eta = EtaModel()
        self.started = time.monotonic()
        self.current: tuple[str, int, int, str] = ("", 0, 0, "")

    def plan(self, stages: list[tuple[str, int, float]]) -> None:
        """The stages to come: (name, steps, cost relative to the first stage's step)."""
        self.eta.plan(stages)

    def update(self, stage: str, done: int, total: int, text: str = "") -> None:
        changed = stage != self.current[0]
        self.eta.step(stage, done, total, time.monotonic())
        self.current = (stage, done, total, text)
        self._show(changed)

    def note(self, text: str) -> None:
        """A line worth keeping (a rate-control probe's result)."""

    def say(self, stage: str, text: str) -> None:
        """A step of a run made of long parts (a curve point, a demo stage): kept as a line,
        and repeated by the ticker while the part runs."""
        self.note(text)
        self.eta.step(stage, 0, 0, time.monotonic())
        self.current = (stage, 0, 0, text)
        self._show(False)

    def measuring(self, stage: str, runs: int, epochs: int):
        """An `on_epoch(run, epoch)` callback for `api.measure` that shows its networks' epochs
        as steps of `stage`, so the stage has a count and an ETA after its first epochs (runs
        beyond `runs`, a measurement's baselines, continue the count)."""
        def on_epoch(run: int, epoch: int) -> None:
            part, run = divmod(run, runs)
            done = min(run * epochs + epoch + 1, runs * epochs)
            self.update(stage, done, runs * epochs,
                        f"network {run + 1}/{runs}" + (f" of baseline {part}" if part else ""))

        return on_epoch

    def handle(self, event) -> None:
        """Show a run's `ddcodec.events.Event`."""
        if event.kind == "plan":
            self.plan([(STAGE_LABELS.get(name, name), steps, cost)
                       for name, steps, cost in event.plan])
        elif event.kind == "step":
            self.update(STAGE_LABELS.get(event.stage, event.stage), event.done, event.total,
                        event.text)
        else:
            self.note(event.text)

    def line(self) -> str:
        stage, done, total, text = self.current
        elapsed = time.monotonic() - self.started
        count = f" {done:,}/{total:,}" if total else ""
        eta = self.eta.remaining() if total else None  # a part without steps: unknown
        return (f"{stage}{count}{': ' + text if text else ''}; elapsed {clock(elapsed)}, "
                f"ETA {clock(eta)}")

    def _show(self, stage_changed: bool) -> None:
        pass

    def close(self) -> None:
        pass


class PlainDisplay(Display):
    """Timestamped lines: at each new stage, each note, and every `log_every` seconds."""

    def __init__(self, log_every: float, stream=None) -> None:
        super().__init__()
        self.log_every, self.stream = log_every, stream or sys.stderr
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def _print(self, text: str) -> None:
        with self._lock:
            # one write per line: processes sharing a pipe (torchrun's ranks) never splice
            self.stream.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(self.log_every):
            if self.current[0]:
                self._print(self.line())

    def _show(self, stage_changed: bool) -> None:
        if stage_changed:
            self._print(self.line())

    def note(self, text: str) -> None:
        self._print(text)

    def close(self) -> None:
        self._stop.set()
        self._ticker.join(timeout=1)


class TerminalDisplay(Display):
    """One rich line: stage, bar, steps, numbers, elapsed, overall ETA."""

    def __init__(self) -> None:
        super().__init__()
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                            TextColumn("{task.fields[clock]}"),
                            console=stderr_console, transient=True, refresh_per_second=4)
        self.bar.start()
        self.task = self.bar.add_task("", total=None, info="", clock="")
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def _clock_text(self) -> str:
        eta = self.eta.remaining() if self.current[2] else None
        return f"{clock(time.monotonic() - self.started)} elapsed, ETA {clock(eta)}"

    def _tick(self) -> None:  # the clocks move even while a long step runs
        while not self._stop.wait(1.0):
            self.bar.update(self.task, clock=self._clock_text())

    def _show(self, stage_changed: bool) -> None:
        stage, done, total, text = self.current
        self.bar.update(self.task, description=stage, completed=done, total=total or None,
                        info=text, clock=self._clock_text())

    def note(self, text: str) -> None:
        self.bar.console.print(text, highlight=False)

    def close(self) -> None:
        self._stop.set()
        self._ticker.join(timeout=2)
        self.bar.stop()


@contextlib.contextmanager
def display(quiet: bool = False, log_every: float = DEFAULT_LOG_EVERY) -> Iterator[Display]:
    """The display for this run: none when quiet, rich on a terminal, plain lines otherwise.
    Image folders decoded during the run show as a 'loading images' stage."""
    if quiet:
        shown = Display()
    elif sys.stderr.isatty():
        shown = TerminalDisplay()
    else:
        shown = PlainDisplay(log_every)
    try:
        with loading_progress(lambda done, total: shown.update("loading images", done, total)):
            yield shown
    finally:
        shown.close()
