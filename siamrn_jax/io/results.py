"""Result files in the pysot text format.

A result file has one ``x,y,w,h`` line per frame (in the coordinates of the ground truth the tracker was
started from, ``siamrn_jax.geometry.boxes``), frame 0 being the initial box. Writers never leave a
half-written file under the final name (``siamrn_jax.atomic``).

Layouts under ``results_dir/<tracker>/``: OPE ``<sequence>.txt`` and ``<sequence>_time.txt`` (seconds per
frame; ``result_path``, ``write_ope_result``), VOT supervised ``baseline/<sequence>/<sequence>_001.txt``
(``vot_result_path``; its text format is ``siamrn_jax.eval.vot.format_vot_results``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from siamrn_jax.atomic import OutputError, atomic_output, progressive_output
from siamrn_jax.io.annotations import read_rows

__all__ = ["OutputError", "progressive_output"]  # re-exported for the result writers

_LOG = logging.getLogger(__name__)


class Named(Protocol):
    """A sequence as the result layout sees it: its name (``eval.sequence.Sequence`` is one)."""

    name: str


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


def read_boxes(path: str | os.PathLike) -> np.ndarray:
    """Reads a result (or OTB ground-truth) file as [T, 4] float64 boxes, values as written."""
    rows = read_rows(path, (4,))
    return np.stack(rows) if rows else np.zeros((0, 4))


def result_path(results_dir: str | Path, tracker: str, seq: Named) -> Path:
    """pysot OPE layout: ``<tracker>/<seq>.txt`` (one ``x,y,w,h`` line per frame)."""
    return Path(results_dir) / tracker / f"{seq.name}.txt"


def write_ope_result(
    results_dir: str | Path,
    tracker: str,
    seq: Named,
    boxes: np.ndarray,
    times: Sequence[float],
    log: Callable[[str], None] = _LOG.info,
) -> None:
    """Writes ``<seq>_time.txt``, then ``<seq>.txt`` (last: its presence marks "done"); logs FPS."""
    write_lines(Path(results_dir) / tracker / f"{seq.name}_time.txt", [f"{t:.6f}" for t in times])
    write_boxes(result_path(results_dir, tracker, seq), boxes)
    fps = (len(times) - 1) / max(float(np.sum(times[1:])), 1e-9)
    log(f"{seq.name}: {len(times)} frames, {fps:.1f} FPS")


def vot_result_path(results_dir: str | Path, tracker: str, seq: Named) -> Path:
    """pysot/VOT layout: ``<tracker>/baseline/<seq>/<seq>_001.txt`` (one run)."""
    return Path(results_dir) / tracker / "baseline" / seq.name / f"{seq.name}_001.txt"
