"""Annotation text: numbers in rows, one row per line, fields separated by commas, tabs or spaces.

The one field rule of every text file the project reads (ground truth, result files, label and flag files,
VOT result codes, target lists): OTB files mix commas, tabs and spaces (Toy is tab-separated, Crossing has
CRLF line ends), so any run of commas and whitespace separates two fields and blank fields are dropped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from siamrn_jax.format_json import read_text
from siamrn_jax.geometry.boxes import polygon_to_box

#: Any run of commas and whitespace separates two fields.
FIELD_SEPARATORS = re.compile(r"[,\s]+")


def split_fields(text: str) -> list[str]:
    """The non-empty fields of ``text`` (a line, or several: newlines separate fields too)."""
    return [p for p in FIELD_SEPARATORS.split(text.strip()) if p]


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
        parts = split_fields(line)
        try:
            row = np.array([float(p) for p in parts], np.float64)
        except ValueError:
            row = None
        if row is None or len(row) not in widths:
            expected = " or ".join(str(w) for w in widths)
            raise ValueError(f"{path}:{i}: expected {expected} numbers, got {line.strip()!r}")
        rows.append(row)
    return rows


def boxes_from_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Ground-truth rows (4-value boxes or 8-value polygons) -> [T, 4] (x, y, w, h), polygons converted."""
    out = np.zeros((len(rows), 4))
    for i, r in enumerate(rows):
        out[i] = polygon_to_box(r) if len(r) == 8 else r
    return out
