"""GOT-10k metrics: every row of EVALUATION.md §11.2, plus a cross-check against got10k 0.1.3."""

from __future__ import annotations

import numpy as np
import pytest
from got10k.experiments.got10k import ExperimentGOT10k
from got10k.utils import metrics as g10k_metrics

from siamrn_jax.eval import got10k

TOL = 1e-6

GT1 = np.array(
    [
        [50, 40, 60, 50],
        [52, 41, 60, 50],
        [55, 43, 62, 52],
        [58, 45, 62, 52],
        [61, 47, 64, 53],
        [63, 50, 64, 54],
        [280, 200, 60, 50],
        [66, 55, 66, 56],
    ],
    dtype=float,
)
PR1 = np.array(
    [
        [50, 40, 60, 50],
        [53, 42, 58, 49],
        [54.5, 44.2, 63, 50],
        [70, 60, 62, 52],
        [61, 47, 64, 53],
        [10, 10, 30, 30],
        [270, 190, 70, 60],
        [66.2, 55.3, 65, 57],
    ],
)
COVER1 = np.array([8, 8, 7, 6, 5, 0, 3, 8])
RES1 = (320, 240)
GT2 = np.array(
    [
        [300, 100, 80, 120],
        [305, 102, 80, 121],
        [310, 104, 81, 122],
        [315, 106, 82, 122],
        [320, 108, 82, 123],
        [325, 110, 83, 124],
    ],
    dtype=float,
)
PR2 = np.array(
    [
        [300, 100, 80, 120],
        [304, 100, 85, 125],
        [330, 130, 70, 100],
        [315, 106, 82, 122],
        [600, 300, 80, 120],
        [326, 112, 80, 120],
    ],
    dtype=float,
)
COVER2 = np.array([8, 8, 8, 8, 8, 8])
RES2 = (640, 360)

SEQS = {"seq1": (GT1, PR1, COVER1, RES1), "seq2": (GT2, PR2, COVER2, RES2)}


def test_seq1_kept_ious():
    np.testing.assert_allclose(
        got10k.sequence_ious(GT1, PR1, COVER1, RES1),
        [0.947333, 0.946854, 0.402349, 1, 0.64, 0.957678],
        atol=TOL,
        rtol=0,
    )


def test_seq2_kept_ious():
    np.testing.assert_allclose(
        got10k.sequence_ious(GT2, PR2, COVER2, RES2), [0.911059, 0.531108, 1, 0, 0.932763], atol=TOL, rtol=0
    )


@pytest.mark.parametrize(
    ("name", "ao", "sr50", "sr75"),
    [("seq1", 0.815702, 0.833333, 0.666667), ("seq2", 0.674986, 0.800000, 0.600000)],
)
def test_per_sequence_scores(name, ao, sr50, sr75):
    s = got10k.evaluate(SEQS).per_sequence[name]
    assert abs(s.ao - ao) < TOL and abs(s.sr50 - sr50) < TOL and abs(s.sr75 - sr75) < TOL


def test_pooled_scores():
    o = got10k.evaluate(SEQS).overall
    assert o.n_frames == 11
    assert abs(o.ao - 0.751740) < TOL
    assert abs(o.sr50 - 0.818182) < TOL
    assert abs(o.sr75 - 0.636364) < TOL


def test_mean_of_sequence_ao_is_not_the_metric():
    r = got10k.evaluate(SEQS)
    assert abs(r.mean_sequence_ao - 0.745344) < TOL
    assert abs(r.mean_sequence_ao - r.overall.ao) > 1e-3


def test_success_curve_101():
    o = got10k.evaluate(SEQS).overall
    assert o.success_curve.shape == (101,)
    assert abs(float(np.mean(o.success_curve)) - 0.747975) < TOL
    assert o.success_curve[50] == o.sr50
    assert o.success_curve[75] == o.sr75
    np.testing.assert_array_equal(got10k.SUCCESS_THRESHOLDS_101, np.arange(101) * 0.01)


def test_clipping_example():
    gt = np.array([[280, 200, 60, 50]], float)
    pr = np.array([[270, 190, 70, 60]], float)
    assert abs(got10k.bounded_iou(gt, pr, None)[0] - 0.714286) < TOL
    assert abs(got10k.bounded_iou(gt, pr, (320, 240))[0] - 0.640000) < TOL
    np.testing.assert_array_equal(gt, [[280, 200, 60, 50]])  # inputs are not modified


def test_negative_x_keeps_width_quirk():
    clipped = got10k.clip_boxes_to_image(np.array([[-10, -5, 30, 20], [310, 230, 30, 20]]), (320, 240))
    np.testing.assert_array_equal(clipped, [[0, 0, 30, 20], [310, 230, 10, 10]])


def test_multiple_runs_are_pooled():
    runs = [PR1, GT1.copy()]
    u = got10k.sequence_ious(GT1, runs, COVER1, RES1)
    assert u.shape == (12,)
    np.testing.assert_allclose(u[6:], 1.0)
    s = got10k.evaluate({"seq1": (GT1, runs, COVER1, RES1)}).per_sequence["seq1"]
    assert abs(s.ao - (0.815702 * 6 + 6) / 12) < TOL


def test_empty_and_bad_inputs():
    s = got10k.scores_from_ious(np.zeros(0))
    assert s.n_frames == 0 and np.isnan(s.ao)
    with pytest.raises(ValueError):
        got10k.sequence_ious(GT1, PR1, COVER1[:-1], RES1)
    with pytest.raises(ValueError):
        got10k.sequence_ious(GT1, PR2, COVER1, RES1)


def test_matches_got10k_toolkit_on_random_boxes():
    rng = np.random.default_rng(0)
    seqs, ref_ious = {}, []
    for i in range(4):
        n = 200
        res = (float(rng.integers(300, 1300)), float(rng.integers(200, 800)))
        gt = np.column_stack([rng.uniform(-30, res[0], (n, 2)), rng.uniform(5, 200, (n, 2))])
        runs = []
        for _ in range(3):
            pr = gt + rng.normal(0, 20, (n, 4))
            pr[:, 2:] = np.abs(pr[:, 2:]) + 1
            runs.append(pr)
        cover = rng.integers(0, 9, n)
        seqs[f"s{i}"] = (gt, runs, cover, res)
        # the toolkit's report loop, minus file reading
        seq = [g10k_metrics.rect_iou(b[1:].copy(), gt[1:].copy(), bound=res) for b in runs]
        seq = np.concatenate([t[cover[1:] > 0] for t in seq])
        ref_ious.append(seq)
        np.testing.assert_array_equal(got10k.sequence_ious(gt, runs, cover, res), seq)
    ours = got10k.evaluate(seqs).overall
    holder = ExperimentGOT10k.__new__(ExperimentGOT10k)
    ao, sr, _, curve = ExperimentGOT10k._evaluate(holder, np.concatenate(ref_ious), np.zeros(0))
    assert abs(ours.ao - ao) <= 1e-12
    assert abs(ours.sr50 - sr) <= 1e-12
    assert np.max(np.abs(ours.success_curve - curve)) <= 1e-12
