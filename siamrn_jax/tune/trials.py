"""Batched tuning trials: k hyper-parameter sets x S sequences tracked as k * S rows of lockstep batches.

Every row is one (trial, sequence) pair with its own (penalty_k, window_influence, lr) — the tracker's
post-processing takes them as a per-row [N, 3] array (``tracking.tracker.step``'s ``hyper``), so one
compiled program serves every trial and a batch of trials costs one network call per frame index. The rows
of one sequence read each frame once (``SharedFrames``). A row's boxes are those a single run with that
trial's values gives (``tests/tune/test_trials.py``).

Two protocols:
  - OPE (``track_ope``): rows through ``tracking.runner.track_batch``;
  - VOT supervised (``track_supervised``): the restart protocol of ``eval.vot.run_supervised`` with every
    row restarting on its own (a failed row is re-initialised 5 frames later, in place in the batch).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence as Seq
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from siamrn_jax import checkpoint
from siamrn_jax.eval import ope, vot
from siamrn_jax.eval.report import ope_groundtruth
from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.geometry.boxes import pysot_init_box
from siamrn_jax.tracking import runner
from siamrn_jax.tracking.params import TrackerParams

# The tracker parameters a trial sets, in the column order of the [N, 3] ``hyper`` arrays.
HYPER_NAMES = ("penalty_k", "window_influence", "lr")


def hyper_of(params: TrackerParams) -> np.ndarray:
    """[3] float32 (penalty_k, window_influence, lr) of ``params``."""
    return np.array([getattr(params, k) for k in HYPER_NAMES], np.float32)


class SharedFrames:
    """The frames of a ``Sequence`` for several rows of one batch: each frame is decoded once per frame
    index, however many rows (trials) read it, by keeping the last one read."""

    def __init__(self, seq: Sequence):
        self.seq = seq
        self._last: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.seq)

    def __getitem__(self, i: int) -> np.ndarray:
        if self._last is None or self._last[0] != i:
            self._last = (i, self.seq.frame(i))
        return self._last[1]


class Row(NamedTuple):
    """One (trial, sequence) row of a batch."""

    trial: int
    seq: int


def _rows(num_trials: int, sequences: Seq[Sequence], rows: int | None) -> list[list[Row]]:
    """Lockstep groups of at most ``rows`` rows (None: all k * S in one), cut from the rows sorted by
    decreasing sequence length (then sequence, then trial), so a group's rows end together and the trials
    of one sequence share its frame reads."""
    order = sorted(range(len(sequences)), key=lambda s: (-len(sequences[s]), s))
    flat = [Row(k, s) for s in order for k in range(num_trials)]
    size = len(flat) if rows is None else rows
    return [flat[i : i + size] for i in range(0, len(flat), size)]


def track_ope(
    model: Any,
    variables: Any,
    params: TrackerParams,
    sequences: Seq[Sequence],
    hypers: np.ndarray,
    rows: int | None = None,
    mesh: Any = None,
) -> list[list[np.ndarray]]:
    """OPE boxes of k trials on every sequence.

    Args:
      params: the tracker settings every trial shares (crop geometry, relation detector ...).
      hypers: [k, 3] per-trial (penalty_k, window_influence, lr).
      rows: rows per lockstep batch (default all k * S; on a 2-core CPU, k, i.e. one sequence's trials).
      mesh: split each batch over these devices (``sharding.local_data_mesh``; ``track_batch`` pads a
        group that does not fill them).

    Returns:
      ``boxes[trial][seq]``: [T, 4] (x, y, w, h) per frame, row 0 the init box (pysot's, as ``run_ope``).
    """
    hypers = np.asarray(hypers, np.float32).reshape(-1, 3)
    frames = [SharedFrames(s) for s in sequences]
    out: list[list[Any]] = [[None] * len(sequences) for _ in range(len(hypers))]
    for group in _rows(len(hypers), sequences, rows):
        seqs = [frames[r.seq] for r in group]
        inits = [pysot_init_box(sequences[r.seq].init_box) for r in group]
        hyper = hypers[[r.trial for r in group]]
        results = runner.track_batch(model, variables, params, seqs, inits, mesh, hyper)
        for r, res in zip(group, results, strict=True):
            out[r.trial][r.seq] = res.boxes
    return out


def ope_auc(boxes: Seq[np.ndarray], sequences: Seq[Sequence]) -> float:
    """Success AUC over the sequences (mean of per-sequence AUCs, pysot rules: what ``eval report`` and
    the official tune.py rank by)."""
    per = [ope.evaluate_sequence(ope_groundtruth(s), b) for s, b in zip(sequences, boxes, strict=True)]
    return ope.aggregate(per).success_auc


@functools.partial(jax.jit, donate_argnums=0)
def _put_row(state: Any, one: Any, i: jax.Array) -> Any:
    """``state`` with row ``i`` replaced by the one-row state ``one`` (a re-initialisation)."""
    return jax.tree.map(lambda a, b: jax.lax.dynamic_update_index_in_dim(a, b[0], i, 0), state, one)


def _template(frame: np.ndarray, box: np.ndarray, params: TrackerParams) -> runner.TemplateGeometry:
    return runner.template_geometry(frame, runner.check_box(box, frame.shape[:2], "init box"), params)


def track_supervised(
    model: Any, variables: Any, params: TrackerParams, seqs: Seq[Sequence], hyper: np.ndarray
) -> list[list]:
    """The VOT supervised experiment (one run) for N rows in lockstep, on the default device.

    Each row follows its own ``eval.vot.SupervisedRun`` (the restart rule ``run_supervised`` uses); a row
    that restarts is re-initialised in place in the batch.

    Args:
      seqs: N sequences (frames read through ``SharedFrames`` when a sequence appears in several rows).
      hyper: [N, 3] per-row (penalty_k, window_influence, lr).

    Returns:
      N trajectories in ``eval.vot.run_supervised``'s format (1 init, 2 failure, 0 skipped, else box).
    """
    init, _ = runner.compiled(model, params)
    hyper_step = runner.compiled_hyper_step(model, params)
    variables = checkpoint.inference_variables(variables)
    shared = {id(s): SharedFrames(s) for s in seqs}
    frames = [shared[id(s)] for s in seqs]
    runs = [vot.SupervisedRun(list(s.groundtruth), s.frame_size()) for s in seqs]
    n = len(seqs)
    firsts = [f[0] for f in frames]
    for r in runs:
        r.action(0)  # "init": every row starts from its frame 0
    geo = [_template(f, r.init_box(0), params) for f, r in zip(firsts, runs, strict=True)]
    avg = [g.avg for g in geo]
    state = init(variables, *map(jnp.asarray, runner.init_args(firsts, geo, params)))
    hyper = jnp.asarray(np.asarray(hyper, np.float32).reshape(n, 3))
    blank = np.zeros((params.instance_size, params.instance_size, 3), np.uint8)
    for t in range(1, max(len(s) for s in seqs)):
        live = [False] * n
        for i in range(n):
            action = runs[i].action(t) if t < len(seqs[i]) else "done"
            live[i] = action == "track"
            if action == "init":
                g = _template(frames[i][t], runs[i].init_box(t), params)
                avg[i] = g.avg
                one = init(variables, *map(jnp.asarray, runner.init_args([frames[i][t]], [g], params)))
                state = _put_row(state, one, jnp.int32(i))
        if not any(live):
            continue
        centers, sizes = np.asarray(state.center), np.asarray(state.size)
        crops = [
            runner.search_crop(frames[i][t], centers[i], sizes[i], avg[i], params, np.uint8)
            if live[i]
            else blank
            for i in range(n)
        ]
        state, out = hyper_step(variables, state, jnp.asarray(np.stack(crops)), hyper)
        boxes = np.asarray(out.box, np.float64)
        for i in np.flatnonzero(live):
            runs[i].record(t, boxes[i])
    return [r.trajectory for r in runs]


def vot_supervised_trials(
    model: Any, variables: Any, params: TrackerParams, sequences: Seq[Sequence], hypers: np.ndarray, rows=None
) -> list[list[list]]:
    """``trajectories[trial][seq]`` of k trials (``hypers`` [k, 3]) in groups of ``rows`` rows."""
    hypers = np.asarray(hypers, np.float32).reshape(-1, 3)
    out: list[list[Any]] = [[None] * len(sequences) for _ in range(len(hypers))]
    for group in _rows(len(hypers), sequences, rows):
        seqs = [sequences[r.seq] for r in group]
        trajs = track_supervised(model, variables, params, seqs, hypers[[r.trial for r in group]])
        for r, traj in zip(group, trajs, strict=True):
            out[r.trial][r.seq] = traj
    return out


def vot_eao(trajs: Seq[list], sequences: Seq[Sequence], interval: str = "VOT2018") -> float:
    """EAO of one trial's trajectories (one run per sequence)."""
    return vot.eao(
        [[t] for t in trajs],
        [list(s.groundtruth) for s in sequences],
        [s.frame_size() for s in sequences],
        interval,
    )
