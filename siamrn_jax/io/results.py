"""Result files in the pysot text format.

A result file has one ``x,y,w,h`` line per frame (in the coordinates of the ground truth the tracker was
started from, ``siamrn_jax.geometry.boxes``), frame 0 being the initial box. Writers never leave a
half-written file under the final name (``siamrn_jax.atomic``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from siamrn_jax.atomic import OutputError, atomic_output, progressive_output
from siamrn_jax.format_json import read_text

__all__ = ["OutputError", "progressive_output"]  # re-exported for the result writers

# OTB files mix commas, tabs and spaces (Toy is tab-separated, Crossing has CRLF line ends).
_SEPARATORS = re.compile(r"[,\s]+")


def box_line(box: Sequence[float]) -> str:
    """One result line: ``x,y,w,h`` with ``%.6f`` (NaN as ``nan``)."""
    return ",".join(f"{float(v):.6f}" for v in box)


def write_boxes(path: str | os.PathLike, boxes: np.ndarray | Sequence[Sequence[float]]) -> None:
    """Writes [T, 4] (x, y, w, h) boxes, one ``x,y,w,h`` line per frame (``box_line``)."""
    b = np.asarray(boxes, np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise OutputError(f"{path}: expected [T, 4] boxes, got shape {list(b.shape)}")
    write_lines(path, [box_line(row) for row in b])


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
    lines = read_text(path, ValueError).splitlines()
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
