"""The one rich progress bar goodfit shows (a run's epochs, a study's runs, a search's trials)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["EpochReporter", "progress_bar"]


def progress_bar() -> Any:
    """A ``rich.progress.Progress`` with the description, the bar, done/total, the elapsed time
    and a ``metrics`` field (the latest scores); not started."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[metrics]}"),
        transient=False,
    )


class EpochReporter:
    """A rich progress bar on a terminal, plain log lines otherwise, nothing if disabled.

    ``progress`` may be ``None`` (auto), ``False`` (silent), ``True`` (bar or lines) or a
    ``rich.progress.Progress`` owned by the caller (e.g. a study), in which a task is added.
    """

    def __init__(self, progress: Any, epochs: int, start: int, description: str) -> None:
        self.progress, self.task, self.own, self.lines = None, None, False, False
        if progress is False:
            return
        from rich.progress import Progress

        if isinstance(progress, Progress):
            self.progress = progress
        elif sys.stderr.isatty():
            self.progress = progress_bar()
            self.progress.start()
            self.own = True
        else:
            self.lines = progress is True or progress is None
            self.epochs = epochs
            return
        self.task = self.progress.add_task(description, total=epochs, completed=start, metrics="")

    def update(self, record: dict[str, Any]) -> None:
        text = "  ".join(
            f"{k}={record[k]:.4g}"
            for k in ("train_loss", "val_loss", "val_accuracy")
            if k in record and isinstance(record[k], float)
        )
        if self.progress is not None:
            self.progress.update(self.task, advance=1, metrics=text)
        elif self.lines:
            print(
                f"epoch {record['epoch']}/{self.epochs}  {text}  ({record['epoch_seconds']:.2f}s)",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.progress is not None and not self.own:
            self.progress.remove_task(self.task)
        if self.own:
            self.progress.stop()
