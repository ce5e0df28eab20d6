"""Progress for long work: a bar for the study (variant x fold) and one for the current run
(epochs) on a terminal; one plain line per finished run otherwise (logs, CI)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["StudyProgress"]


class StudyProgress:
    """One bar for the study (variant x fold) and one for the current run (epochs)."""

    def __init__(self, enabled: bool | None, total: int) -> None:
        """``enabled``: ``None`` (the command line) shows a bar on a terminal and a line per
        finished run elsewhere; ``False`` is silent."""
        self.enabled = True if enabled is None else enabled
        self.total, self.done = total, 0
        self.progress: Any = None
        self.inner: Any = False

    def __enter__(self) -> StudyProgress:
        if self.enabled and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[metrics]}"),
            )
            self.progress.start()
            self.task = self.progress.add_task("study", total=self.total, metrics="")
            self.inner = self.progress
        return self

    def describe(self, text: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"study: {text}")

    def advance(self, text: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress.update(self.task, advance=1)
        elif self.enabled is not False:
            print(f"[{self.done}/{self.total}] {text}", file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
