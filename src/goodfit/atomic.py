"""Atomic file writes: a temporary file in the target's folder, flushed to disk, then renamed
over the target — a kill at any moment leaves the old file or the new one, never a torn one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "atomic_savefig",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "figure_to_png",
]


def _default_mode() -> int:
    """Permissions a plain ``open(path, "w")`` would give (0o666 minus the umask), since
    ``mkstemp`` creates files readable by the owner only."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(handle)`` on a temporary binary file beside ``path``, fsync it and rename it
    to ``path`` (creating the folder). On any error the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _default_mode())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_savefig(fig: Any, path: str | Path, **kwargs: Any) -> Path:
    """``fig.savefig`` (a matplotlib Figure) to ``path`` atomically, in the format of the
    path's suffix (PNG without one)."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda handle: fig.savefig(handle, format=fmt, **kwargs))


def figure_to_png(fig: Any, path: str | Path | None = None) -> bytes:
    """PNG bytes of a matplotlib Figure (written atomically to ``path`` too when given)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    png = buf.getvalue()
    if path is not None:
        atomic_write_bytes(path, png)
    return png
