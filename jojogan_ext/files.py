"""Writing files so that a crash, a full disk or a cancel never leaves a half-written one behind.

Temp files are hidden siblings named `.<name>.<random>.tmp`; `remove_stale_temp_files` clears leftovers.
"""

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def temp_sibling(path: Path) -> Path:
    """A unique hidden temp path in the same folder (so the final rename is atomic)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces `path`, on any error it is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_sibling(path)
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as temp:
        temp.write_bytes(data)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(temp_path)`, then move the result into place atomically."""
    with atomic_path(path) as temp:
        write(temp)


def remove_stale_temp_files(folder: str | Path, min_age_seconds: float = 300.0) -> list[Path]:
    """Delete temp files left by an interrupted write (a killed process); returns what was removed.

    Only files older than `min_age_seconds` go, so a save that is running right now is left alone.
    """
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        now = time.time()
        for temp in folder.glob(f".*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                if now - temp.stat().st_mtime >= min_age_seconds:
                    temp.unlink()
                    removed.append(temp)
    return removed
