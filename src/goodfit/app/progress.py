"""Progress for long work: a bar for the study (variant x fold) and one for the current run
(epochs) on a terminal; one plain line per finished run otherwise (logs, CI)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["Bars", "StudyProgress"]


class Bars:
    """An outer bar (``total`` items named ``label``) with room for an inner per-run bar
    (``inner``, handed to :func:`goodfit.fit` as its ``progress``), on a terminal; one plain
    line per finished item elsewhere. ``enabled``: ``None`` (the command line) chooses by the
    terminal; ``False`` is silent."""

    label = "work"

    def __init__(self, enabled: bool | None, total: int) -> None:
        self.enabled = True if enabled is None else enabled
        self.total, self.done = total, 0
        self.progress: Any = None
        self.inner: Any = False

    def __enter__(self) -> Bars:
        if self.enabled and sys.stderr.isatty():
            from goodfit.train.progress import progress_bar

            self.progress = progress_bar()
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=self.total, metrics="")
            self.inner = self.progress
        return self

    def line(self, text: str) -> None:
        """A plain line on stderr when no bar is shown (and not silenced)."""
        if self.progress is None and self.enabled is not False:
            print(text, file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()


class StudyProgress(Bars):
    """One bar for the study (variant x fold) and one for the current run (epochs)."""

    label = "study"

    def describe(self, text: str) -> None:
        """Name the run in progress on the study bar."""
        if self.progress is not None:
            self.progress.update(self.task, description=f"study: {text}")

    def advance(self, text: str) -> None:
        """One more finished run."""
        self.done += 1
        if self.progress is not None:
            self.progress.update(self.task, advance=1)
        self.line(f"[{self.done}/{self.total}] {text}")
