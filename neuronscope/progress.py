"""Progress that a terminal and a log file both show: a live bar with an ETA, or periodic plain lines.

On a terminal, `LoggedProgress` is rich's live bar (with the time remaining). Written to a file or a CI log, rich
draws nothing, so a run of several minutes looked dead; there `LoggedProgress` prints one plain line at most every
`NEURONSCOPE_PROGRESS_SECONDS` (default 30) seconds, on stderr so that `--json` output stays parseable:

    [2m05s] unlearning ga: 40/500 steps (8%), ETA 23m50s (at most) | loss 1.234

It is a drop-in `rich.progress.Progress` (the same add_task / update / advance / reset), so the grid and every
command share it. The ETA is the average rate so far applied to what is left; a total that is only a bound (early
stopping) says "at most".
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from neuronscope.errors import NeuronscopeError

DEFAULT_SECONDS = 30.0


def line_interval() -> float:
    """Seconds between plain progress lines: NEURONSCOPE_PROGRESS_SECONDS, else 30."""
    text = os.environ.get("NEURONSCOPE_PROGRESS_SECONDS", "")
    if not text:
        return DEFAULT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:
        raise NeuronscopeError(f"NEURONSCOPE_PROGRESS_SECONDS must be a number of seconds >= 0, got {text!r}")
    return value


def duration(seconds: float) -> str:
    """3725 -> '1h02m', 125 -> '2m05s', 7.3 -> '7s'."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def eta_seconds(completed: float, total: float | None, elapsed: float) -> float | None:
    """Time left at the average rate so far; None while nothing is done or without a total."""
    if total is None or completed <= 0 or elapsed <= 0:
        return None
    return max(total - completed, 0.0) * elapsed / completed


def describe(task: Task) -> str:
    """One task as plain text: description, done/total, percent, ETA, info."""
    unit = task.fields.get("unit", "")
    text = task.description.strip() or "working"
    if task.total is not None:
        text += f": {int(task.completed)}/{int(task.total)}{f' {unit}' if unit else ''}"
        text += f" ({100 * task.completed / task.total:.0f}%)" if task.total else ""
        left = eta_seconds(task.completed, task.total, task.elapsed or 0.0) if task.fields.get("eta", True) else None
        if left is not None:
            text += f", ETA {duration(left)}{' (at most)' if task.fields.get('bound') else ''}"
    elif task.completed:
        text += f": {int(task.completed)}{f' {unit}' if unit else ''}"
    info = str(task.fields.get("info", "")).strip()
    return f"{text} | {info}" if info else text


class EtaColumn(TimeRemainingColumn):
    """rich's time remaining, left blank for a task added with `eta=False` (units of very unequal length, such as
    the grid's stages: a base model takes minutes, an attack seconds, so a rate over stages misleads)."""

    def render(self, task: Task) -> Any:
        if not task.fields.get("eta", True):
            return TextColumn("").render(task)
        return super().render(task)


def columns(info: bool = True) -> list[ProgressColumn]:
    """The live bar: what, bar, done/total, elapsed, time remaining, and the task's info field."""
    cols: list[ProgressColumn] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), EtaColumn()]
    return cols + [TextColumn("{task.fields[info]}")] if info else cols


class LoggedProgress(Progress):
    """rich's Progress, plus a plain line every `interval` seconds when its console is not a terminal."""

    def __init__(self, *cols: ProgressColumn | str, console: Console | None = None, interval: float | None = None,
                 lines: Console | None = None, clock: Callable[[], float] = time.monotonic, **kwargs: Any):
        kwargs.setdefault("get_time", clock)  # the tasks' elapsed times (and so the ETA) read the same clock
        super().__init__(*(cols or columns()), console=console, transient=kwargs.pop("transient", True), **kwargs)
        self.interval = line_interval() if interval is None else interval
        self.lines = lines if lines is not None else Console(stderr=True, highlight=False, soft_wrap=True)
        self.plain = not self.console.is_terminal
        self._clock = clock
        self._start = clock()
        self._last = self._start
        self._line_lock = threading.Lock()
        self._ticker: threading.Thread | None = None

    def start(self) -> None:
        super().start()
        if self.plain and self.interval > 0 and self._clock is time.monotonic:
            # a line also when nothing updates for a while (a final evaluation, a long batch): the log stays alive
            self._stop_ticker = threading.Event()
            self._ticker = threading.Thread(target=self._tick, name="neuronscope-progress", daemon=True)
            self._ticker.start()

    def stop(self) -> None:
        if getattr(self, "_ticker", None) is not None:
            self._stop_ticker.set()
            self._ticker.join()
            self._ticker = None
        super().stop()

    def _tick(self) -> None:
        while not self._stop_ticker.wait(min(self.interval, 1.0)):
            self._maybe_line()

    def add_task(self, description: str, start: bool = True, total: float | None = 100.0, completed: int = 0,
                 visible: bool = True, **fields: Any) -> TaskID:
        fields.setdefault("info", "")
        return super().add_task(description, start, total, completed, visible, **fields)

    def update(self, task_id: TaskID, **kwargs: Any) -> None:  # type: ignore[override]
        super().update(task_id, **kwargs)
        self._maybe_line()

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_line()

    def _maybe_line(self) -> None:
        if not self.plain:
            return
        with self._line_lock:  # the ticker thread and the updating thread
            now = self._clock()
            if now - self._last < self.interval:
                return
            self._last = now
        shown = [describe(t) for t in self.tasks if t.visible and not t.finished]
        if shown:
            self.lines.print(f"[{duration(now - self._start)}] " + " ; ".join(shown), markup=False)


StepCallback = Callable[..., None]
"""The one progress protocol of training loops: `progress(step, info)`, where `info` is the step's loss (a float,
as base training and attacks report it) or its row of loss terms (a mapping with "loss", as unlearning reports it).
"""


def step_loss(info: Any) -> float:
    """The loss a step reported: the float itself, or the row's "loss" (NaN when there is none)."""
    loss = info.get("loss", float("nan")) if isinstance(info, Mapping) else info
    return float(loss) if isinstance(loss, int | float) else float("nan")


def step_callback(progress: Progress, task: TaskID) -> StepCallback:
    """A `StepCallback` that moves `task` to the step and shows its loss."""

    def update(step: int, info: Any = None, *_: Any) -> None:
        shown = next((t for t in progress.tasks if t.id == task), None)
        if shown is not None and step < shown.completed:  # a new run on the same bar (the next rate of a search):
            progress.reset(task, completed=0)  # unfinished again, so it is shown again
        progress.update(task, completed=int(step), info=f"loss {step_loss(info):.3f}")

    return update


def step_total(n_items: int, batch_size: int, epochs: int) -> int:
    """Optimiser steps of `epochs` passes over `n_items` in batches (the last batch of a pass may be short)."""
    return epochs * -(-n_items // max(batch_size, 1))
