"""Result files in the pysot text format, and atomic file output shared by the tracking writers.

A result file has one ``x,y,w,h`` line per frame (0-based pixels, ``siamrn_jax.geometry.boxes``), frame 0
being the initial box. Writers never leave a half-written file under the final name: they write a
temporary sibling, flush it to disk and ``os.replace`` it into place.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

# OTB files mix commas, tabs and spaces (Toy is tab-separated, Crossing has CRLF line ends).
_SEPARATORS = re.compile(r"[,\s]+")


class OutputError(ValueError):
    """An output (result file, video, image) that cannot be written as asked."""


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
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"{path}: output folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results should look like any other file
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
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
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def box_line(box: Sequence[float]) -> str:
    """One result line: ``x,y,w,h`` with ``%.6f`` (NaN as ``nan``)."""
    return ",".join(f"{float(v):.6f}" for v in box)


def write_boxes(path: str | os.PathLike, boxes: np.ndarray | Sequence[Sequence[float]]) -> None:
    """Writes [T, 4] (x, y, w, h) boxes, one ``x,y,w,h`` line per frame (``box_line``)."""
    b = np.asarray(boxes, np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise OutputError(f"{path}: expected [T, 4] boxes, got shape {list(b.shape)}")
    write_lines(path, [box_line(row) for row in b])


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
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"{path}: output folder {path.parent} does not exist")
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w") as f:
        yield _LineSink(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


def write_lines(path: str | os.PathLike, lines: Sequence[str]) -> None:
    """Writes text lines atomically (each followed by a newline)."""
    with atomic_output(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in lines))


def read_rows(path: str | os.PathLike, widths: Sequence[int] = (4,)) -> list[np.ndarray]:
    """Parses a text file of numbers, one row per line, separated by commas, tabs or spaces.

    Args:
      path: the file.
      widths: allowed numbers per line (``(4, 8)`` for VOT files, which mix boxes and polygons).

    Returns:
      One float64 row per line (``NaN`` / ``nan`` accepted). Trailing blank lines are ignored.

    Raises:
      ValueError: a malformed line (the message names the file and the 1-based line number).
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    rows = []
    for i, line in enumerate(lines, start=1):
        parts = [p for p in _SEPARATORS.split(line.strip()) if p]
        try:
            row = np.array([float(p) for p in parts], np.float64)
        except ValueError:
            row = None
        if row is None or len(row) not in widths:
            expected = " or ".join(str(w) for w in widths)
            raise ValueError(f"{path}:{i}: expected {expected} numbers, got {line.strip()!r}")
        rows.append(row)
    return rows


def read_boxes(path: str | os.PathLike) -> np.ndarray:
    """Reads a result (or OTB ground-truth) file as [T, 4] float64 boxes, values as written."""
    rows = read_rows(path, (4,))
    return np.stack(rows) if rows else np.zeros((0, 4))
