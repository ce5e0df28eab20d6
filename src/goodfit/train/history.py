"""Per-epoch training history: a list of plain records, one per epoch."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from goodfit.atomic import atomic_write_text

__all__ = ["History", "json_safe"]


class History:
    """One record (a ``dict`` of plain numbers/strings) per epoch, in order.

    ``history["val_loss"]`` gives the list of values of one key (``nan`` where an epoch has none);
    ``history.records`` is the raw list; ``to_jsonl`` writes one JSON line per epoch.
    """

    def __init__(self, records: list[dict[str, Any]] | None = None) -> None:
        self.records: list[dict[str, Any]] = list(records or [])
        self.summary: dict[str, Any] = {}

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, int):
            return self.records[key]
        return [r.get(key, math.nan) for r in self.records]

    def __contains__(self, key: object) -> bool:
        """True when some epoch record has ``key`` (e.g. ``"penalty" in history``)."""
        return any(key in r for r in self.records)

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for record in self.records:
            seen.update(dict.fromkeys(record))
        return list(seen)

    @property
    def last(self) -> dict[str, Any]:
        return self.records[-1] if self.records else {}

    def to_jsonl(self, path: str | Path) -> None:
        """Write one JSON object per line (non-finite floats become ``null``), atomically: a
        kill leaves the old file or the new one."""
        lines = [json.dumps(json_safe(r), allow_nan=False) for r in self.records]
        atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))

    @classmethod
    def from_jsonl(cls, path: str | Path) -> History:
        text = Path(path).read_text()
        return cls([json.loads(line) for line in text.splitlines() if line.strip()])

    def __repr__(self) -> str:
        return f"History({len(self)} epochs, keys={self.keys()})"


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats (at any depth) replaced by ``None``, for strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
