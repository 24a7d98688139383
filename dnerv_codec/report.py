"""How the library tells the caller what it is doing, without printing: a Reporter.

The CLI passes one that draws rich progress bars; the default one stays silent."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Task:
    """A running step of known or unknown length."""

    def advance(self, n: float = 1, **fields: Any) -> None:
        """Move forward by n units; fields (loss, psnr, ...) are shown beside the bar."""

    def update(self, completed: float, **fields: Any) -> None:
        """Set the completed amount."""


class Reporter:
    """Receives messages and progress from the library. Subclass and override what you show."""

    def info(self, message: str) -> None:
        """A line worth telling the user."""

    def warn(self, message: str) -> None:
        """Something the user should know (a skipped file, dropped audio)."""

    def detail(self, message: str) -> None:
        """A line for those who asked for detail (`-v`), e.g. each of many skipped files."""

    @contextmanager
    def task(
        self, description: str, total: float | None = None, unit: str = "", estimates: bool = True
    ) -> Iterator[Task]:
        """A progress bar for the duration of the with-block; estimates=False: the task reports its
        own time left among its fields (the bar's extrapolation would mislead)."""
        yield Task()
