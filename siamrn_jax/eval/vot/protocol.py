"""The VOT supervised (restart) protocol, as pysot/SiamRN run it (EVALUATION.md §6).

A failure is a prediction with zero raster overlap with the ground truth; the tracker is re-initialised
``SKIP_INITIALIZE`` frames later. Trajectories record codes and boxes as ``siamrn_jax.eval.vot.region``
states.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from siamrn_jax.eval.vot.overlap import region_overlap
from siamrn_jax.eval.vot.region import CODE_FAILURE, CODE_INIT, CODE_SKIP, code_value, polygon_to_init_box

SKIP_INITIALIZE = 5


class SupervisedRun:
    """The restart rule of the supervised experiment for one sequence and one run (pysot, SPEC §6): the
    one place that decides, frame by frame, whether the tracker is (re)initialised, run or skipped, and
    what the trajectory records. ``run_supervised`` drives one tracker with it; the tuner drives a row of
    a lockstep batch with it.

    Call :meth:`action` for frames 0, 1, 2, ... in order; for ``"track"`` frames, hand the prediction to
    :meth:`record` before the next frame.
    """

    def __init__(
        self,
        gt_polygons: Sequence[Any],
        image_size: tuple[float, float],
        skip_initialize: int = SKIP_INITIALIZE,
        failure_overlap: float = 0.0,
    ):
        self.gt = gt_polygons
        self.bounds = (float(image_size[0]), float(image_size[1]))
        self.skip_initialize, self.failure_overlap = skip_initialize, failure_overlap
        self.next_init = 0
        self.trajectory: list[int | list[float]] = []

    def action(self, t: int) -> str:
        """``"init"`` (frame ``t`` re-initialises; recorded as code 1), ``"skip"`` (tracker not called;
        code 0) or ``"track"`` (run the tracker, then :meth:`record`)."""
        if len(self.trajectory) != t:
            raise RuntimeError(f"frame {t} out of order: {len(self.trajectory)} frames recorded")
        if t == self.next_init:
            self.trajectory.append(CODE_INIT)
            return "init"
        if t < self.next_init:
            self.trajectory.append(CODE_SKIP)
            return "skip"
        return "track"

    def init_box(self, t: int) -> np.ndarray:
        """The float64 [4] box a re-initialisation on frame ``t`` starts from."""
        return polygon_to_init_box(self.gt[t])

    def record(self, t: int, pred: Any) -> None:
        """Frame ``t``'s prediction (a box or polygon): kept if its raster overlap with the ground truth
        exceeds ``failure_overlap``, else a failure (code 2) and a restart ``skip_initialize`` frames on."""
        box = [float(v) for v in np.asarray(pred, np.float64).reshape(-1)]
        if region_overlap(box, self.gt[t], self.bounds) > self.failure_overlap:
            self.trajectory.append(box)
        else:
            self.trajectory.append(CODE_FAILURE)
            self.next_init = t + self.skip_initialize


def run_supervised(
    init_fn: Callable[[int, np.ndarray], Any],
    track_fn: Callable[[int], Any],
    num_frames: int,
    gt_polygons: Sequence[Any],
    image_size: tuple[float, float],
    skip_initialize: int = SKIP_INITIALIZE,
    failure_overlap: float = 0.0,
) -> list[int | list[float]]:
    """VOT supervised experiment for one sequence and one run, as pysot/SiamRN run it (§6).

    Args:
        init_fn: ``init_fn(t, box)`` (re)initialises the tracker on frame ``t`` with the float64 ``[4]``
            box :func:`polygon_to_init_box` of ``gt_polygons[t]``; it must fully reset tracker state.
        track_fn: ``track_fn(t) -> box`` tracks frame ``t`` and returns ``[x, y, w, h]`` (or a polygon).
        num_frames: ``N``.
        gt_polygons: ``N`` ground-truth regions (8-value polygons or 4-value boxes).
        image_size: ``(W, H)``; the failure test uses the raster overlap with bounds ``(W, H)``.
        skip_initialize: re-initialise this many frames after a failure (5).
        failure_overlap: a prediction fails unless its overlap is ``> failure_overlap`` (0).

    Returns:
        List of ``N`` entries: ``1`` (init frame, tracker not run), ``2`` (failure), ``0`` (skipped
        frame, tracker not called), otherwise the prediction as a list of floats.
    """
    if len(gt_polygons) < num_frames:
        raise ValueError(f"{len(gt_polygons)} ground-truth regions for {num_frames} frames")
    run = SupervisedRun(gt_polygons, image_size, skip_initialize, failure_overlap)
    for t in range(num_frames):
        action = run.action(t)
        if action == "init":
            init_fn(t, run.init_box(t))
        elif action == "track":
            run.record(t, track_fn(t))
    return run.trajectory


def failure_frames(trajectory: Sequence[Any]) -> list[int]:
    """Frame indices with code ``2`` (pysot ``calculate_failures``)."""
    return [t for t, r in enumerate(trajectory) if code_value(r) == CODE_FAILURE]
