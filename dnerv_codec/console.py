"""The two rich consoles: `results` on stdout (tables and summaries, so `dnerv info a.dnv > a.txt`
keeps them) and `console` on stderr (progress, warnings, errors); and a Reporter that draws rich
progress bars."""

from __future__ import annotations

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


class _RichTask(Task):
    def __init__(self, progress: Progress, task_id) -> None:
        self.progress, self.task_id = progress, task_id

    def _fields(self, fields: dict[str, Any]) -> str:
        parts = []
        for key, value in fields.items():
            parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
        return "  ".join(parts)

    def advance(self, n: float = 1, **fields: Any) -> None:
        self.progress.update(self.task_id, advance=n, info=self._fields(fields))

    def update(self, completed: float, **fields: Any) -> None:
        self.progress.update(self.task_id, completed=completed, info=self._fields(fields))


class RichReporter(Reporter):
    """quiet: no progress bars or info lines; warnings=False: no warnings either (-q);
    verbose: detail lines too (-v)."""

    def __init__(self, quiet: bool = False, warnings: bool = True, verbose: bool = False) -> None:
        self.quiet, self.warnings, self.verbose = quiet, warnings, verbose

    def info(self, message: str) -> None:
        if not self.quiet:
            console.print(escape(message), soft_wrap=True)

    def detail(self, message: str) -> None:
        if self.verbose:
            console.print(escape(message), soft_wrap=True)

    def warn(self, message: str) -> None:
        if self.warnings:
            console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)

    @contextmanager
    def task(
        self, description: str, total: float | None = None, unit: str = "", estimates: bool = True
    ) -> Iterator[Task]:
        if self.quiet:
            yield Task()
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
        with Progress(*columns, console=console, transient=False) as progress:
            yield _RichTask(progress, progress.add_task(description, total=total, info=""))
