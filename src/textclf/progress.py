"""What long work shows the person at the terminal: one progress-bar style and one log line.

A rich bar on stderr when it is a terminal (or when forced); a no-op elsewhere:

    >>> with ProgressBar(False, "epoch 1/3", total=100, fields={"loss": 0.0}) as update:
    ...     update(50, loss=0.3)
"""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["ProgressBar", "log_stderr"]


def log_stderr(message: str) -> None:
    """Print one progress or status line to stderr (stdout is left for results)."""
    print(message, file=sys.stderr, flush=True)


class ProgressBar:
    """``description [bar] done/total <extra columns> [rate] ETA``; entering it returns ``update(done, **fields)``.

    ``extra`` are rich ``TextColumn`` templates (e.g. ``"loss {task.fields[loss]:.4f}"``) over
    ``fields``; ``rate_unit`` adds a column such as ``1,234 records/s``; ``completed`` is where
    the bar starts (work done before this run), and the rate counts only what this run does.
    """

    def __init__(
        self,
        enabled: bool | None,
        description: str,
        total: int,
        *,
        extra: tuple[str, ...] = (),
        fields: dict | None = None,
        rate_unit: str | None = None,
        completed: int = 0,
    ):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.description, self.total, self.completed = description, total, completed
        self.extra, self.fields, self.rate_unit = extra, fields or {}, rate_unit

    def __enter__(self) -> Callable[..., None]:
        if not self.enabled:
            return lambda done, **fields: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *map(TextColumn, self.extra)]
        if self.rate_unit:
            columns.append(_RateColumn(self.rate_unit))
        from rich.console import Console

        self._bar = Progress(*columns, TimeRemainingColumn(), transient=True, console=Console(stderr=True))
        self._bar.__enter__()
        task = self._bar.add_task(self.description, total=self.total, completed=self.completed, **self.fields)
        return lambda done, **fields: self._bar.update(task, completed=done, **fields)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._bar.__exit__(*exc)


def _RateColumn(unit: str):
    """A rich column showing the task's speed as ``N unit`` (blank until known)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text("" if task.speed is None else f"{task.speed:,.0f} {unit}")

    return RateColumn()
