"""The one rich progress bar goodfit shows (a run's epochs, a study's runs, a search's trials)."""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


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
