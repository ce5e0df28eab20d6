"""Run folders that protect themselves: nothing lost, nothing mixed.

A folder goodfit writes into is *claimed* for the life of the run:

- an exclusive lock (``flock`` on ``.goodfit.lock``, released on any exit, a kill included) —
  a second writer gets a :class:`~goodfit.errors.ConfigError` naming the holder's PID;
- a marker ``.goodfit-run`` (JSON: kind, config hash, goodfit version) written *first*, so a
  folder killed before its first checkpoint is recognised as goodfit's and restarted cleanly;
- a non-empty folder without the marker (the user's own files) is refused, listing what is
  there, unless ``force``;
- orphan temporary files of interrupted atomic writes (``.NAME.*.tmp``) are removed at start.

Every file goodfit writes goes through :mod:`goodfit.atomic` (a kill leaves the old or the new
content).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from goodfit.atomic import atomic_write_text
from goodfit.errors import ConfigError

__all__ = [
    "LOCK_NAME",
    "MARKER_NAME",
    "claim_run_folder",
    "default_out",
    "make_folder",
    "read_marker",
]

LOCK_NAME = ".goodfit.lock"
MARKER_NAME = ".goodfit-run"
#: What ``goodfit train`` writes into a run folder (removed when a run killed before its first
#: checkpoint is restarted).
RUN_FILES = (
    "config.toml",
    "history.jsonl",
    "summary.json",
    "model.pt",
    "init.pt",
    "label_noise.json",
    "lr.png",
    "checkpoints",
)


def default_out(stem: str) -> Path:
    """``runs/<stem>-<time>``: where a run goes when no ``--out`` is given."""
    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The folder's marker, ``None`` if it has none (or an unreadable one)."""
    try:
        data = json.loads((folder / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def make_folder(out: Path) -> None:
    """Create ``out`` (and its parents); a path that is a file, or a folder that cannot be
    created or written, is a :class:`ConfigError`."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; choose a folder path")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot create the folder ({err.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: the folder is not writable")


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[Any]:
    import fcntl

    try:
        handle = open(out / LOCK_NAME, "a+")  # noqa: SIM115 - held for the context's life
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot write in the folder ({err.strerror})") from None
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            handle.seek(0)
            pid = handle.read().strip() or "unknown"
            raise ConfigError(
                f"{out} is in use by another goodfit process (PID {pid}); wait for it to "
                "finish or choose another --out"
            ) from None
        yield handle
    finally:
        handle.close()  # closing the descriptor releases the lock


def _remove_orphans(out: Path) -> None:
    """Temporary files of atomic writes that a kill interrupted (``.NAME.XXXX.tmp``)."""
    for tmp in out.rglob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


def _refuse_foreign(out: Path, force: bool) -> None:
    """A non-empty folder without goodfit's marker holds the user's files: refused."""
    if force or read_marker(out) is not None:
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name not in (LOCK_NAME, MARKER_NAME))
    if foreign:
        shown = ", ".join(foreign[:10]) + (", ..." if len(foreign) > 10 else "")
        raise ConfigError(
            f"--out {out} is not empty and is not a goodfit run folder (it holds {shown}); "
            "choose an empty or new folder, or pass --force to write into it"
        )


@contextlib.contextmanager
def claim_run_folder(
    out: Path,
    *,
    kind: str,
    config_hash: str | None = None,
    resume: bool = False,
    force: bool = False,
    check: Callable[[dict[str, Any] | None], None] | None = None,
) -> Iterator[dict[str, Any] | None]:
    """Lock ``out`` and check it may receive a ``kind`` run (``"train"``, ``"study"``).

    Yields the marker found before (``None`` for a new folder). Refuses (``ConfigError``): a
    file, an unwritable folder, a folder in use, a non-empty folder that is not goodfit's
    (unless ``force``), another kind's folder, and — for a study — another config's folder.
    ``check(marker)`` may refuse more before anything is written.
    """
    make_folder(out)
    _refuse_foreign(out, force)  # before the lock file is created in the user's folder
    with _locked(out) as handle:
        marker = read_marker(out)
        _refuse_foreign(out, force)
        if marker is not None and marker.get("kind") != kind:
            raise ConfigError(
                f"--out {out} holds a goodfit {marker.get('kind')} folder, not a {kind} one; "
                "choose another --out"
            )
        stored = (marker or {}).get("config_hash")
        if kind == "study" and stored is not None and stored != config_hash:
            raise ConfigError(
                f"{out} holds a study with a different configuration; resume it with the same "
                "config or choose another --out"
            )
        if resume and marker is None:
            raise ConfigError(f"--resume {out}: not a goodfit run folder")
        if check is not None:
            check(marker)
        _remove_orphans(out)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))  # the holder's PID, for the message a second writer gets
        handle.flush()
        if marker is None:
            from goodfit import __version__

            record = {"kind": kind, "config_hash": config_hash, "goodfit": __version__}
            atomic_write_text(out / MARKER_NAME, json.dumps(record) + "\n")
        yield marker


def clear_unstarted_run(out: Path) -> None:
    """Remove what a ``goodfit train`` killed before its first checkpoint left (the marker
    stays): the folder then restarts as new."""
    for name in RUN_FILES:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
