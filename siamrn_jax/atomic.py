"""Atomic file and directory output: nothing is ever half-written under its final name.

Writers get a temporary sibling of the target (same folder, so the final ``os.replace`` is atomic on
POSIX), which is synced to disk and renamed into place on success and removed on an exception. Used by
every writer of the package: result files, reports, plots, videos, checkpoints, training metadata, the
hard-negative index and ``.pth`` files.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from siamrn_jax.errors import SiamrnError


class OutputError(SiamrnError, ValueError):
    """An output (result file, video, image) that cannot be written as asked."""


def _replace(src: Path, dst: Path) -> None:
    """The one rename that publishes every output (a single place to fail in tests: disk full, ...)."""
    os.replace(src, dst)


def _in_existing_folder(path: str | os.PathLike) -> Path:
    """``path`` as a Path; ``OutputError`` naming it when its folder does not exist."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"{path}: output folder {path.parent} does not exist")
    return path


@functools.cache
def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it before Python 3.13's os.getumask
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it is synced and renamed to ``path``.

    The temporary name keeps the suffix of ``path`` because some writers (``cv2.VideoWriter``,
    ``cv2.imwrite``) choose the format from it. On an exception the temporary file is removed.
    """
    path = _in_existing_folder(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results should look like any other file
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        _replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yields an empty temporary directory beside ``path``; on success it replaces ``path`` (an existing
    directory of that name is removed first). On an exception the temporary directory is removed and
    ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp"))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        _replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _LineSink:
    def __init__(self, f):
        self._f = f

    def write_line(self, line: str) -> None:
        self._f.write(f"{line}\n")
        self._f.flush()  # each finished frame reaches the file before the next is tracked


@contextlib.contextmanager
def progressive_output(path: str | os.PathLike) -> Iterator[_LineSink]:
    """Lines written as they come, atomically renamed to ``path`` at the end.

    The lines go to ``<path>.partial`` (flushed after each line); on success it is synced and renamed to
    ``path``. If the run dies, ``path`` is not created (or keeps its old content) and ``<path>.partial``
    keeps every finished line.
    """
    path = _in_existing_folder(path)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w") as f:
        yield _LineSink(f)
        f.flush()
        os.fsync(f.fileno())
    _replace(partial, path)
