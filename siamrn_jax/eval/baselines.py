"""OpenCV's MIL tracker as a classic baseline, written in the same pysot result format as ``run_ope``.

MIL ships with every OpenCV build (no model download), so it gives the comparison plots a real,
reproducible reference tracker. Same conventions as ``siamrn_jax.eval.runner``: pysot init box, results
in ground-truth coordinates, atomic files, finished sequences skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Sequence as Seq
from pathlib import Path

import cv2
import numpy as np

from siamrn_jax.eval.runner import result_path, write_ope_result
from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.geometry.boxes import pysot_init_box

_LOG = logging.getLogger(__name__)


def run_mil(
    sequences: Seq[Sequence],
    results_dir: str | Path,
    tracker: str = "OpenCV-MIL",
    log: Callable[[str], None] = _LOG.info,
) -> list[str]:
    """Tracks the sequences without a result file with ``cv2.TrackerMIL``; returns their names."""
    out = Path(results_dir) / tracker
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for s in sequences:
        if result_path(results_dir, tracker, s).exists():
            continue
        box = pysot_init_box(s.init_box)
        t0 = time.perf_counter()
        mil = cv2.TrackerMIL.create()
        mil.init(s.frame(0), tuple(int(round(v)) for v in box))  # OpenCV trackers take integer rects
        boxes, times = [box], [time.perf_counter() - t0]
        for i in range(1, len(s)):
            t0 = time.perf_counter()
            ok, b = mil.update(s.frame(i))
            boxes.append(np.asarray(b, np.float64) if ok else boxes[-1])  # keep the last box when lost
            times.append(time.perf_counter() - t0)
        write_ope_result(results_dir, tracker, s, np.stack(boxes), times, log)
        done.append(s.name)
    return done
