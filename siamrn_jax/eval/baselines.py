"""OpenCV reference trackers, written in the same pysot result format as ``run_ope``.

- MIL ships with every OpenCV build (no model download): a classic, reproducible reference.
- NanoTrack (``cv2.TrackerNano``, OpenCV's C++ port of HonglinChu's NanoTrack, a SiamBAN with a
  MobileNetV3 backbone) needs the user's two ONNX files (backbone, neck + head): a real modern tracker
  to compare against in one command. The weights are third-party (Apache-2.0); nothing downloads them.

Same conventions as ``siamrn_jax.eval.runner``: pysot init box, results in ground-truth coordinates,
atomic files, finished sequences skipped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from collections.abc import Sequence as Seq
from pathlib import Path

import cv2
import numpy as np

from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.geometry.boxes import pysot_init_box
from siamrn_jax.io.results import result_path, write_ope_result
from siamrn_jax.io.sources import InputError, quiet_opencv

_LOG = logging.getLogger(__name__)


def nanotrack_files(onnx: str | os.PathLike) -> tuple[Path, Path]:
    """(backbone, head) ONNX files from a folder holding one ``*backbone*.onnx`` and one ``*head*.onnx``, or
    from a prefix (``DIR/v2`` -> ``DIR/v2_backbone.onnx``, ``DIR/v2_head.onnx``); ``InputError`` otherwise."""
    onnx = Path(onnx)
    if onnx.is_dir():
        backbones, heads = sorted(onnx.glob("*backbone*.onnx")), sorted(onnx.glob("*head*.onnx"))
        if len(backbones) != 1 or len(heads) != 1:
            found = ", ".join(p.name for p in backbones + heads) or "none"
            raise InputError(
                f"{onnx}: expected one *backbone*.onnx and one *head*.onnx (found: {found}); "
                "pass a prefix such as DIR/v2 to choose"
            )
        return backbones[0], heads[0]
    pair = (onnx.parent / f"{onnx.name}_backbone.onnx", onnx.parent / f"{onnx.name}_head.onnx")
    missing = [str(p) for p in pair if not p.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: no such NanoTrack ONNX file (--onnx DIR or DIR/PREFIX)")
    return pair


def mil_factory() -> Callable[[], cv2.Tracker]:
    return cv2.TrackerMIL.create


def nanotrack_factory(onnx: str | os.PathLike) -> Callable[[], cv2.Tracker]:
    """A ``cv2.TrackerNano`` maker for the ONNX pair of ``onnx`` (checked once, here)."""
    backbone, head = nanotrack_files(onnx)
    params = cv2.TrackerNano_Params()
    params.backbone, params.neckhead = str(backbone), str(head)
    try:
        with quiet_opencv():
            cv2.TrackerNano.create(params)
    except cv2.error as e:  # OpenCV's DNN cannot read the files: say which, in one line
        raise InputError(
            f"{backbone.parent}: cannot load the NanoTrack ONNX pair ({str(e).strip().splitlines()[-1]})"
        ) from None

    def make() -> cv2.Tracker:
        with quiet_opencv():  # OpenCV's DNN warns about its graph engine on every network it loads
            return cv2.TrackerNano.create(params)

    return make


def run_opencv(
    sequences: Seq[Sequence],
    results_dir: str | Path,
    tracker: str,
    make: Callable[[], cv2.Tracker],
    log: Callable[[str], None] = _LOG.info,
) -> list[str]:
    """Tracks the sequences without a result file with a fresh ``make()`` tracker each; returns their names.

    OpenCV trackers take integer rects at init; a frame where ``update`` reports a loss keeps the last box.
    """
    out = Path(results_dir) / tracker
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for s in sequences:
        if result_path(results_dir, tracker, s).exists():
            continue
        box = pysot_init_box(s.init_box)
        t0 = time.perf_counter()
        trk = make()
        trk.init(s.frame(0), tuple(int(round(v)) for v in box))
        boxes, times = [box], [time.perf_counter() - t0]
        for i in range(1, len(s)):
            t0 = time.perf_counter()
            ok, b = trk.update(s.frame(i))
            boxes.append(np.asarray(b, np.float64) if ok else boxes[-1])
            times.append(time.perf_counter() - t0)
        write_ope_result(results_dir, tracker, s, np.stack(boxes), times, log)
        done.append(s.name)
    return done


def run_mil(
    sequences: Seq[Sequence],
    results_dir: str | Path,
    tracker: str = "OpenCV-MIL",
    log: Callable[[str], None] = _LOG.info,
) -> list[str]:
    """Tracks the sequences without a result file with ``cv2.TrackerMIL``; returns their names."""
    return run_opencv(sequences, results_dir, tracker, mil_factory(), log)
