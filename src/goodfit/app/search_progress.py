"""Progress of a search: a bar for the trials (with the best value so far) and one for the
current trial's epochs on a terminal; one plain line per finished trial otherwise (logs, CI)."""

from __future__ import annotations

from typing import Any

from goodfit.app.progress import Bars

__all__ = ["SearchProgress"]


class SearchProgress(Bars):
    """The trials bar (finished / requested, best so far) and the current trial's bar."""

    label = "search"

    def __init__(self, enabled: bool | None, total: int, direction: str) -> None:
        super().__init__(enabled, total)
        self.direction = direction
        self.seen: set[int] = set()

    def catch_up(self, study: Any) -> None:
        """Count the trials a resumed study already holds."""
        from goodfit.app.search import finished_count

        trials = study.get_trials(deepcopy=False)
        self.seen.update(t.number for t in trials if t.state.is_finished())
        self.done = finished_count(trials)
        if self.progress is not None:
            self.progress.update(self.task, completed=self.done)
        if self.done:
            self.line(f"resuming: {self.done} of {self.total} trials finished before")

    def start_trial(self, number: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"search: trial {number}")

    def finished(self, trial: Any, study: Any) -> None:
        """A finished trial (each counted once): its state, value and the best so far."""
        if trial.number in self.seen:
            return
        self.seen.add(trial.number)
        self.done += 1
        value = "" if trial.value is None else f" {trial.value:.4f}"
        try:
            best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:
            best = "no completed trial yet"
        state = trial.state.name.lower()
        if self.progress is not None:
            self.progress.update(self.task, advance=1, metrics=best)
        self.line(f"[{self.done}/{self.total}] trial {trial.number} {state}{value}; {best}")
