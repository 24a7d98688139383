"""The two rich consoles: `results` on stdout (tables and summaries, so `dnerv info a.dnv > a.txt`
keeps them) and `console` on stderr (progress, warnings, errors); and a Reporter that draws rich
progress bars."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .report import Reporter, Task

console = Console(stderr=True, highlight=False)
results = Console(highlight=False)


LOG_EVERY_S = 10.0  # without a terminal (nohup, CI), a plain progress line this often


def _fields(fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)


class _RichTask(Task):
    def __init__(self, progress: Progress, task_id) -> None:
        self.progress, self.task_id = progress, task_id

    def advance(self, n: float = 1, **fields: Any) -> None:
        self.progress.update(self.task_id, advance=n, info=_fields(fields))

    def update(self, completed: float, **fields: Any) -> None:
        self.progress.update(self.task_id, completed=completed, info=_fields(fields))


class _LogTask(Task):
    """Progress as plain lines, at most one every LOG_EVERY_S seconds, and one at the end: for a
    log file, where a redrawn bar would be thousands of lines of control codes."""

    def __init__(self, out: Console, description: str, total: float | None, clock) -> None:
        self.out, self.description, self.total, self.clock = out, description, total, clock
        self.completed, self.info, self.last = 0.0, "", clock()

    def advance(self, n: float = 1, **fields: Any) -> None:
        self.update(self.completed + n, **fields)

    def update(self, completed: float, **fields: Any) -> None:
        self.completed, self.info = completed, _fields(fields)
        if self.clock() - self.last >= LOG_EVERY_S:
            self.line()

    def line(self) -> None:
        self.last = self.clock()
        done = f" {self.completed / self.total:.0%}" if self.total else ""
        self.out.print(escape(f"{self.description}{done}  {self.info}".rstrip()), soft_wrap=True)


class RichReporter(Reporter):
    """quiet: no progress bars or info lines; warnings=False: no warnings either (-q);
    verbose: detail lines too (-v). Bars on a terminal, plain lines every LOG_EVERY_S otherwise
    (`out` and `clock`: the console and the seconds it is drawn with; tests give their own)."""

    def __init__(
        self, quiet: bool = False, warnings: bool = True, verbose: bool = False, out: Console | None = None,
        clock=time.monotonic,
    ) -> None:  # fmt: skip
        self.quiet, self.warnings, self.verbose = quiet, warnings, verbose
        self.out, self.clock = out or console, clock

    def info(self, message: str) -> None:
        if not self.quiet:
            self.out.print(escape(message), soft_wrap=True)

    def detail(self, message: str) -> None:
        if self.verbose:
            self.out.print(escape(message), soft_wrap=True)

    def warn(self, message: str) -> None:
        if self.warnings:
            self.out.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)

    @contextmanager
    def task(
        self, description: str, total: float | None = None, unit: str = "", estimates: bool = True
    ) -> Iterator[Task]:
        if self.quiet:
            yield Task()
            return
        if not self.out.is_terminal:
            task = _LogTask(self.out, description, total, self.clock)
            yield task
            task.line()
            return
        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            *([TextColumn("eta"), TimeRemainingColumn()] if estimates else []),
            TextColumn("{task.fields[info]}"),
        ]
        if unit and total and total > 1:
            columns.insert(2, MofNCompleteColumn())
        with Progress(*columns, console=self.out, transient=False) as progress:
            yield _RichTask(progress, progress.add_task(description, total=total, info=""))
