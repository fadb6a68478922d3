"""Batched tuning trials give the boxes single runs with the same values give (OPE and VOT restarts)."""

from __future__ import annotations

import numpy as np
import pytest

from siamrn_jax import api
from siamrn_jax.eval.benchmarks.otb import load_folder
from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.eval.vot import CODE_FAILURE, CODE_INIT, run_supervised
from siamrn_jax.geometry.boxes import pysot_init_box
from siamrn_jax.tracking.params import TrackerParams
from siamrn_jax.tracking.runner import Tracker, track_batch
from siamrn_jax.tune import trials
from tests.conftest import SHARED

pytestmark = pytest.mark.slow  # demo-model tracking, ~40 s in all on 2 cores

# Three trials: the otb preset (the demo's own before issue 27), and two far from it (different boxes, so a
# mix-up of rows shows).
HYPERS = np.array(
    [[0.020530504470126613, 0.3850733326567302, 0.4730770315643308], [0.5, 0.1, 0.9], [0.2, 0.8, 0.1]]
)


def _short(seq: Sequence, n: int) -> Sequence:
    return Sequence(seq.name, seq.frames[:n], seq.groundtruth[:n])


@pytest.fixture(scope="module")
def demo():
    return api.load("demo_resnet")


@pytest.fixture(scope="module")
def seqs():
    root = SHARED / "data" / "sequences"
    # Different lengths: the shorter rows of a lockstep batch are padded.
    return [_short(s, n) for s, n in zip(load_folder(root, ["Bolt", "Deer"]), (14, 9), strict=True)]


def _params(model, h) -> TrackerParams:
    return TrackerParams.for_model(model).replace(**dict(zip(trials.HYPER_NAMES, map(float, h), strict=True)))


def test_batched_ope_equals_single(demo, seqs):
    model, variables, _ = demo
    params = TrackerParams.for_model(model, "otb")  # = HYPERS[0]
    batched = trials.track_ope(model, variables, params, seqs, HYPERS)  # 6 rows in one batch
    by_sequence = trials.track_ope(model, variables, params, seqs, HYPERS, rows=3)  # one sequence a batch
    for k, h in enumerate(HYPERS):
        for s, seq in enumerate(seqs):
            single = track_batch(
                model,
                variables,
                _params(model, h),
                [trials.SharedFrames(seq)],
                [pysot_init_box(seq.init_box)],
            )[0].boxes
            assert batched[k][s].shape == single.shape == (len(seq), 4)
            # The same per-row program at another batch size: equal up to the float32 rounding of a
            # differently tiled batch (1e-3 px, far below the > 1 px the trials differ by).
            np.testing.assert_allclose(batched[k][s], single, atol=1e-3, rtol=0)
            np.testing.assert_allclose(by_sequence[k][s], single, atol=1e-3, rtol=0)
    # The values matter: the trials' trajectories differ (else the test could not see a mix-up).
    assert np.abs(batched[1][0] - batched[2][0]).max() > 1.0
    assert trials.ope_auc(batched[0], seqs) == pytest.approx(
        trials.ope_auc(
            [
                track_batch(model, variables, params, [trials.SharedFrames(s)], [pysot_init_box(s.init_box)])[
                    0
                ].boxes
                for s in seqs
            ],
            seqs,
        ),
        abs=1e-6,
    )


def _with_failure(seq: Sequence) -> Sequence:
    """The ground truth moved to the far corner on frames 4-5: every trial fails at 4 and restarts at 9."""
    gt = seq.groundtruth.copy()
    gt[4:6] = [1, 1, 8, 8]
    return Sequence(seq.name, seq.frames, gt)


def test_batched_vot_restarts_equal_single(demo, seqs):
    model, variables, _ = demo
    params = TrackerParams.for_model(model)
    vs = [_with_failure(seqs[0]), seqs[1]]
    runs = trials.vot_supervised_trials(model, variables, params, vs, HYPERS)
    for k, h in enumerate(HYPERS):
        trk = Tracker(model, variables, _params(model, h))
        for s, seq in enumerate(vs):
            single = run_supervised(
                lambda t, box, seq=seq, trk=trk: trk.init(seq.frame(t), box),
                lambda t, seq=seq, trk=trk: trk.track(seq.frame(t))["bbox"],
                len(seq),
                list(seq.groundtruth),
                seq.frame_size(),
            )
            got = runs[k][s]
            assert [r if isinstance(r, int) else "box" for r in got] == [
                r if isinstance(r, int) else "box" for r in single
            ]
            for a, b in zip(got, single, strict=True):
                if not isinstance(a, int):
                    np.testing.assert_allclose(a, b, atol=1e-3, rtol=0)
        # The constructed failure: frame 4 fails, re-initialised on frame 9 (5 frames later).
        assert runs[k][0][4] == CODE_FAILURE and runs[k][0][9] == CODE_INIT
        assert runs[k][0][5:9] == [0, 0, 0, 0]
