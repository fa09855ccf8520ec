"""Writing files so that a crash, a full disk or a cancel never leaves a half-written one behind.

Temp files are hidden siblings named `.<name>.<random>.tmp`; `remove_stale_temp_files` clears leftovers
(ours and the `.partial`/`.incoming` files of interrupted downloads). Nothing here knows about packs or models.
"""

import contextlib
import errno
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"
# leftovers of writes and downloads that a killed process never finished (torch.hub: `.partial`, weights: `.incoming`)
TEMP_PATTERNS = (f".*{TEMP_SUFFIX}", "*.partial", "*.incoming")


def temp_sibling(path: Path) -> Path:
    """A unique hidden temp path in the same folder (so the final rename is atomic)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")


def commit(temp: Path, path: Path, *, overwrite: bool = True) -> None:
    """Move `temp` (any file in the same folder) to `path`; without `overwrite`, FileExistsError if `path` exists.

    The no-overwrite move is a hard link, which the OS refuses atomically when `path` is taken (no window
    between check and rename); on file systems without hard links it falls back to check, then rename.
    """
    if overwrite:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (FAT, some network shares)
        if path.exists():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.replace(temp, path)
        return
    temp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temp path to write; on success it becomes `path` (see `commit`), on any error it is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_sibling(path)
    try:
        yield temp
        commit(temp, path, overwrite=overwrite)
    finally:
        temp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as temp:
        temp.write_bytes(data)


def atomic_write(path: str | Path, write: Callable[[Path], None], *, overwrite: bool = True) -> None:
    """Call `write(temp_path)`, then move the result into place atomically."""
    with atomic_path(path, overwrite=overwrite) as temp:
        write(temp)


def remove_stale_temp_files(folder: str | Path, min_age_seconds: float = 300.0) -> list[Path]:
    """Delete temp files left by an interrupted write or download (a killed process); returns what was removed.

    Only files older than `min_age_seconds` go, so a save or download that is running right now is left alone.
    """
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        now = time.time()
        for pattern in TEMP_PATTERNS:
            for temp in folder.glob(pattern):
                with contextlib.suppress(OSError):
                    if temp.is_file() and now - temp.stat().st_mtime >= min_age_seconds:
                        temp.unlink()
                        removed.append(temp)
    return removed


def _move_one(source: Path, target: Path) -> None:
    """Move a file without ever replacing one (FileExistsError if `target` exists); across file systems too."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        commit(source, target, overwrite=False)  # a hard link + unlink on the same file system
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        with atomic_path(target, overwrite=False) as temp:
            shutil.copyfile(source, temp)
        source.unlink()


def move_missing_files(source: Path, target: Path) -> tuple[list[Path], list[Path]]:
    """Move every file of `source` (recursively) that `target` lacks; returns (moved, left), as source paths.

    Nothing in `target` is overwritten and nothing is deleted: a file whose name `target` already has stays
    where it is. A style pack's `<name>.preview.png` moves or stays together with `<name>.safetensors`.
    Hidden files (`.gitkeep`, temp files) and unfinished downloads are skipped; links (a folder the user
    linked to another disk, say) are left where they are, never followed.
    """
    if not source.is_dir() or source.is_symlink() or source.resolve() == target.resolve():
        return [], []
    files, links = [], []
    for folder, subfolders, names in os.walk(source):
        for name in [*subfolders, *names]:
            path = Path(folder, name)
            if path.is_symlink():
                links.append(path)
            elif name in names and not name.startswith(".") and path.suffix not in (".partial", ".incoming"):
                files.append(path)
    files.sort()
    units: dict[Path, list[Path]] = {}
    for path in files:
        pack = path.with_name(path.name.removesuffix(".preview.png") + ".safetensors")
        owner = pack if path.name.endswith(".preview.png") and pack in files else path
        units.setdefault(owner, []).append(path)
    moved, left = [], sorted(links)
    for unit in units.values():
        destinations = [target / path.relative_to(source) for path in unit]
        if any(destination.exists() for destination in destinations):
            left += unit
            continue
        for path, destination in zip(unit, destinations, strict=True):
            try:
                _move_one(path, destination)
                moved.append(path)
            except FileExistsError:  # created meanwhile by someone else: keep ours where it is
                left.append(path)
    return moved, left
