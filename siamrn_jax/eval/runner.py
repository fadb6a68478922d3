"""One-pass evaluation (OPE) runner: track every sequence of a benchmark and write pysot result files.

Layout written under ``results_dir/<tracker>/``: ``<sequence>.txt`` (one ``x,y,w,h`` line per frame, the
first being the initial box) and ``<sequence>_time.txt`` (seconds per frame). Files are written
atomically, and a sequence whose result file exists is skipped, so an interrupted run resumes where it
stopped. Initialisation follows pysot's OPE scripts: ``pysot_init_box`` of the first ground-truth row, and
results are in the ground truth's coordinates (``siamrn_jax.geometry.boxes``).

Across devices and processes (``eval run --devices N``, ``--num_processes``): a lockstep batch is split
over the local devices (``mesh``, ``siamrn_jax.sharding.local_data_mesh``), and every process of a
multi-process run tracks its own share of the sequences (``process_share``) into the same folder. Tracking
needs no communication between processes: every sequence is tracked by one process on one device.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Sequence as Seq
from pathlib import Path
from typing import Any

import numpy as np
from jax.sharding import Mesh

from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.geometry.boxes import pysot_init_box
from siamrn_jax.io.results import result_path, vot_result_path, write_lines, write_ope_result
from siamrn_jax.models.interface import Architecture
from siamrn_jax.sharding import ShardingError, replicate
from siamrn_jax.tracking.params import TrackerParams
from siamrn_jax.tracking.runner import (
    SequenceResult,
    track_batch,
    warm_up,
)

_LOG = logging.getLogger(__name__)


class LazyFrames:
    """The frames of a ``Sequence`` as a read-on-demand list (what ``track_batch`` indexes)."""

    def __init__(self, seq: Sequence):
        self.seq = seq

    def __len__(self) -> int:
        return len(self.seq)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.seq.frame(i)


def process_share(sequences: Seq[Sequence], index: int, count: int) -> list[Sequence]:
    """The sequences process ``index`` of ``count`` tracks: a deterministic split balanced by frames.

    Greedy longest-first: sequences in order of decreasing length (ties in benchmark order) each go to the
    process with the fewest frames so far (ties to the lowest index), so every process computes the same
    split from the benchmark alone (not from the results folder, which the others are writing), and the
    shares' frame counts differ by at most the longest sequence's (LaSOT's lengths vary 1000-11000; a
    split by count would not balance them). Returned in benchmark order. ``count == 1``: all of them.
    """
    if not 0 <= index < count:
        raise ValueError(f"process index {index} not in 0 .. {count - 1}")
    load = [0] * count
    mine = set()
    for i in sorted(range(len(sequences)), key=lambda i: (-len(sequences[i]), i)):
        p = min(range(count), key=lambda p: (load[p], p))
        load[p] += len(sequences[i])
        if p == index:
            mine.add(i)
    return [s for i, s in enumerate(sequences) if i in mine]


def run_ope(
    model: Architecture,
    variables: Any,
    params: TrackerParams,
    sequences: Seq[Sequence],
    results_dir: str | Path,
    tracker: str,
    batch: int | None = None,
    log: Callable[[str], None] = _LOG.info,
    mesh: Mesh | None = None,
) -> list[str]:
    """Tracks the sequences that have no result file yet, ``batch`` of them in lockstep at a time.

    Batching pays on accelerators; on a 2-core CPU batch 1 is fastest (see docs/performance.md). Lockstep
    groups are cut from the sequences in order of decreasing length, so that sequences of a group end together
    (a group runs as long as its longest member). With ``mesh`` (``local_data_mesh``) every group is split
    over its devices, ``batch / devices`` sequences each; a last group that does not fill the devices is
    padded with 2-frame blank sequences whose results are dropped. The compiled functions are warmed up
    first, so ``<seq>_time.txt`` and the FPS exclude compilation.

    Args:
      batch: sequences per lockstep group, a multiple of the mesh's device count; default one per device.
      mesh: a 1-D ``DATA_AXIS`` mesh of local devices, or None for the default device.

    Returns:
      The names of the sequences tracked by this call, in benchmark order (skipped ones excluded).

    Raises:
      ShardingError: ``batch`` is not a multiple of the mesh's device count.
    """
    devices = 1 if mesh is None else mesh.size
    batch = devices if batch is None else batch
    if batch < 1 or batch % devices:
        raise ShardingError(
            f"batch {batch}: a lockstep batch must be a multiple of the {devices} device(s) it is split over"
        )
    out = Path(results_dir) / tracker
    out.mkdir(parents=True, exist_ok=True)
    todo = [s for s in sequences if not result_path(results_dir, tracker, s).exists()]
    for s in sequences:
        if s not in todo:
            log(f"{s.name}: result exists, skipped")
    if todo:
        log(f"{len(todo)} sequence(s) to track, in lockstep batches of {batch} over {devices} device(s)")
    by_length = sorted(todo, key=len, reverse=True)  # stable: ties stay in benchmark order
    groups = [by_length[start : start + batch] for start in range(0, len(by_length), batch)]
    if mesh is not None:
        variables = replicate(variables, mesh)  # once, not per group
    padded = {-(-len(g) // devices) * devices for g in groups}  # the batch shapes track_batch compiles
    for n in sorted(padded):
        warm_up(model, variables, params, n, mesh)  # the per-frame times and FPS exclude compilation
    for group in groups:
        frames = [LazyFrames(s) for s in group]
        inits = [pysot_init_box(s.init_box) for s in group]
        results: list[SequenceResult] = track_batch(model, variables, params, frames, inits, mesh)
        for s, r in zip(group, results, strict=True):
            write_ope_result(results_dir, tracker, s, r.boxes, r.times, log)
    return [s.name for s in todo]


def run_vot(
    model: Architecture,
    variables: Any,
    params: TrackerParams,
    sequences: Seq[Sequence],
    results_dir: str | Path,
    tracker: str,
    log: Callable[[str], None] = _LOG.info,
) -> list[str]:
    """The VOT supervised (restart) experiment, one run per sequence, VOT result files (1/2/0 codes).

    Failure = zero overlap with the ground truth (raster, image bounds), re-initialisation 5 frames later
    from pysot's init box (``siamrn_jax.eval.vot.run_supervised``). The tracker is compiled once and
    re-initialised in place. Sequences with a result file are skipped.

    Returns:
      The names of the sequences run by this call.
    """
    from siamrn_jax.eval.vot import failure_frames, format_vot_results, run_supervised
    from siamrn_jax.tracking.runner import Tracker

    trk = Tracker(model, variables, params)
    warm_up(model, variables, params, 1)
    done = []
    for s in sequences:
        path = vot_result_path(results_dir, tracker, s)
        if path.exists():
            log(f"{s.name}: result exists, skipped")
            continue
        traj = run_supervised(
            lambda t, box, s=s: trk.init(s.frame(t), box),
            lambda t, s=s: trk.track(s.frame(t))["bbox"],
            len(s),
            list(s.groundtruth),
            s.frame_size(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        write_lines(path, format_vot_results(traj).splitlines())
        log(f"{s.name}: {len(s)} frames, {len(failure_frames(traj))} failures")
        done.append(s.name)
    return done
