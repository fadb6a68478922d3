"""OPE metrics: every row of EVALUATION.md §11.1, plus a cross-check against got10k 0.1.3."""

from __future__ import annotations

import numpy as np
import pytest
from got10k.experiments.otb import ExperimentOTB
from got10k.utils import metrics as g10k_metrics

from siamrn_jax.eval import ope

TOL = 1e-6

GT_A = np.array(
    [
        [10, 10, 40, 30],
        [12, 11, 40, 30],
        [15, 13, 42, 31],
        [18, 15, 42, 32],
        [20, 18, 44, 33],
        [0, 0, 0, 0],
        [25, 22, 45, 34],
        [28, 25, 46, 35],
        [30, 27, 46, 36],
        [33, 30, 48, 36],
        [35, 31, 48, 37],
        [38, 33, 50, 38],
    ],
    dtype=float,
)
PR_A = np.array(
    [
        [10.5, 10.5, 40, 30],
        [13.2, 10.1, 39.0, 31.5],
        [17.9, 16.4, 40.2, 29.8],
        [25.0, 20.0, 30.0, 25.0],
        [20.0, 18.0, 44.0, 33.0],
        [21.0, 19.0, 44.0, 33.0],
        [60.0, 70.0, 45.0, 34.0],
        [29.5, 24.1, 47.3, 33.8],
        [30.2, 27.7, 44.0, 37.9],
        [150.0, 140.0, 20.0, 20.0],
        [36.0, 30.0, 50.0, 40.0],
        [38.4, 33.6, 49.1, 37.2],
    ],
)
KEEP_A = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1])
GT_B = np.array(
    [
        [100, 50, 20, 60],
        [102, 52, 20, 60],
        [104, 55, 21, 61],
        [107, 57, 21, 62],
        [109, 60, 22, 62],
        [112, 62, 22, 63],
        [114, 65, 23, 64],
        [117, 68, 23, 64],
    ],
    dtype=float,
)
PR_B = np.array(
    [
        [100.5, 50.5, 20, 60],
        [101.0, 53.0, 22.0, 58.0],
        [104.0, 55.0, 21.0, 61.0],
        [90.0, 40.0, 20.0, 60.0],
        [109.5, 61.0, 21.0, 60.0],
        [113.0, 61.0, 24.0, 66.0],
        [130.0, 90.0, 23.0, 64.0],
        [117.0, 68.0, 23.0, 64.0],
    ],
)

IOU_A = [0.943713, 0.920522, 0.759544, 0.558036, 1, 0, 0, 0.839146, 0.877316, 0, 0.853706, 0.961326]
IOU_B = [0.935874, 0.881459, 1, 0.054362, 0.923754, 0.803279, 0.102209, 1]

CURVE_A = [0.75] * 12 + [2 / 3] * 4 + [7 / 12, 0.5, 1 / 3, 1 / 6, 0.0]
CURVE_A_LASOT = [7 / 12] * 12 + [0.5] * 4 + [5 / 12, 5 / 12, 1 / 3, 1 / 6, 0.0]
CURVE_B = [1, 1, 0.875] + [0.75] * 14 + [0.625, 0.5, 0.25, 0.0]


def test_thresholds_are_arange_values():
    assert ope.SUCCESS_THRESHOLDS.shape == (21,)
    assert ope.SUCCESS_THRESHOLDS[3] == 0.15000000000000002
    np.testing.assert_array_equal(ope.SUCCESS_THRESHOLDS, np.arange(0, 1.05, 0.05))
    np.testing.assert_array_equal(ope.SUCCESS_THRESHOLDS, np.linspace(0, 1, 21))
    np.testing.assert_array_equal(ope.PRECISION_THRESHOLDS, np.arange(51))
    np.testing.assert_array_equal(ope.NORM_PRECISION_THRESHOLDS, np.arange(0, 51) / 100)


@pytest.mark.parametrize(("gt", "pr", "expected"), [(GT_A, PR_A, IOU_A), (GT_B, PR_B, IOU_B)], ids=["A", "B"])
def test_per_frame_iou(gt, pr, expected):
    np.testing.assert_allclose(ope.overlap_ratio(gt, pr), expected, atol=TOL, rtol=0)


def test_overlap_ratio_nan_and_degenerate():
    gt = np.array([[0, 0, 0, 0], [1, 1, 10, 10], [np.nan, 1, 2, 3], [0, 0, 10, 10]], float)
    pr = np.array([[0, 0, 0, 0], [np.nan] * 4, [1, 1, 2, 3], [10, 0, 10, 10]], float)
    iou = ope.overlap_ratio(gt, pr)  # 0/0 must not warn (filterwarnings = error)
    assert np.isnan(iou[0]) and np.isnan(iou[1]) and np.isnan(iou[2])
    assert iou[3] == 0.0  # touching boxes
    assert ope.overlap_ratio(gt[:1], pr[:1], eps=np.finfo(float).eps)[0] == 0.0


def test_center_convention():
    np.testing.assert_allclose(ope.box_centers(np.array([[10, 20, 40, 30]])), [[29.5, 34.5]])
    assert ope.center_error(np.array([[0, 0, 3, 5]]), np.array([[3, 4, 3, 5]]))[0] == 5.0


# (name, gt, pred, keep, rules, auc, P(20), normalized P(0.20) or None, normalized-P AUC or None)
ROWS = [
    ("pysot A", GT_A, PR_A, None, "pysot", 0.630952, 0.833333, 0.833333, 0.767974),
    ("pysot A LaSOT", GT_A, PR_A, KEEP_A, "pysot", 0.492063, 0.666667, 0.666667, 0.620915),
    ("pysot B", GT_B, PR_B, None, "pysot", 0.702381, 0.750000, 0.750000, 0.718137),
    ("OTB-MATLAB A", GT_A, PR_A, None, "otb_matlab", 0.634921, 0.833333, None, None),
    ("OTB-MATLAB B", GT_B, PR_B, None, "otb_matlab", 0.708333, 0.750000, None, None),
    ("LaSOT-MATLAB A", GT_A, PR_A, KEEP_A, "lasot_matlab", 0.496032, 0.666667, 0.666667, 0.625817),
    ("got10k A", GT_A, PR_A, None, "got10k", 0.634921, 0.750000, None, None),
    ("got10k B", GT_B, PR_B, None, "got10k", 0.708333, 0.750000, None, None),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_cross_check_rows(row):
    _, gt, pr, keep, rules, auc, prec, nprec, nauc = row
    s = ope.evaluate_sequence(gt, pr, keep=keep, rules=rules)
    assert s.n == len(gt)
    assert abs(s.success_auc - auc) < TOL
    assert abs(s.precision - prec) < TOL
    if nprec is not None:
        assert abs(s.norm_precision - nprec) < TOL
        assert abs(s.norm_precision_auc - nauc) < TOL
    # the single-curve functions agree with evaluate_sequence
    np.testing.assert_array_equal(ope.success_curve(gt, pr, keep=keep, rules=rules), s.success_curve)
    np.testing.assert_array_equal(ope.precision_curve(gt, pr, keep=keep, rules=rules), s.precision_curve)
    np.testing.assert_array_equal(
        ope.norm_precision_curve(gt, pr, keep=keep, rules=rules), s.norm_precision_curve
    )


@pytest.mark.parametrize(("gt", "pr"), [(GT_A, PR_A), (GT_B, PR_B)], ids=["A", "B"])
def test_got10k_success_rate_row(gt, pr):
    assert abs(ope.evaluate_sequence(gt, pr, rules="got10k").success_rate - 0.75) < TOL


def test_dataset_mean_row():
    per_seq = {"A": ope.evaluate_sequence(GT_A, PR_A), "B": ope.evaluate_sequence(GT_B, PR_B)}
    d = ope.aggregate(per_seq)
    assert d.n == 2
    assert abs(d.success_auc - 0.666667) < TOL
    assert abs(d.precision - 0.791667) < TOL
    assert abs(d.norm_precision - 0.791667) < TOL
    assert abs(d.success_auc - np.mean([s.success_auc for s in per_seq.values()])) < 1e-12


@pytest.mark.parametrize(
    ("gt", "pr", "keep", "expected"),
    [(GT_A, PR_A, None, CURVE_A), (GT_A, PR_A, KEEP_A, CURVE_A_LASOT), (GT_B, PR_B, None, CURVE_B)],
    ids=["A", "A-LaSOT", "B"],
)
def test_pysot_success_curves(gt, pr, keep, expected):
    assert len(expected) == 21
    np.testing.assert_allclose(ope.success_curve(gt, pr, keep=keep), expected, atol=TOL, rtol=0)


def test_pysot_invalid_and_nan_ground_truth():
    gt = np.array([[10, 10, 20, 20], [np.nan] * 4, [5, 5, 0, 10], [10, 10, 20, 20]], float)
    pr = np.array([[10, 10, 20, 20], [10, 10, 20, 20], [5, 5, 1, 10], [np.nan] * 4], float)
    s = ope.evaluate_sequence(gt, pr)
    # success: only frame 0 is a hit (NaN gt and w = 0 gt are misses, NaN prediction is a miss)
    np.testing.assert_allclose(s.success_curve[:20], 0.25)
    # precision: NaN gt -> -1 (hit); w = 0 gt has centre (4.5, 9.5) > 0, distance 0.5 -> hit; NaN pred misses
    np.testing.assert_allclose(s.precision_curve[1:], 0.75)
    assert s.precision_curve[0] == 0.5


def test_matlab_prediction_replacement():
    gt = np.array([[10, 10, 20, 20], [12, 10, 20, 20], [14, 10, 20, 20], [16, 10, 20, 20]], float)
    pr = np.array([[11, 11, 20, 20], [12, 10, 20, 20], [np.nan] * 4, [0, 0, -1, 5]], float)
    fixed = ope.matlab_fix_predictions(gt, pr)
    np.testing.assert_array_equal(fixed[0], gt[0])
    np.testing.assert_array_equal(fixed[2], pr[1])
    np.testing.assert_array_equal(fixed[3], pr[1])
    # NaN ground truth blocks the replacement
    gt2 = gt.copy()
    gt2[2] = np.nan
    assert np.all(np.isnan(ope.matlab_fix_predictions(gt2, pr)[2]))


def test_matlab_aggregate_drops_all_zero_sequences():
    good = ope.evaluate_sequence(GT_B, PR_B, rules="otb_matlab")
    zero = ope.OPEScores(np.zeros(21), np.zeros(51), np.zeros(51), n=8)  # e.g. gt invalid everywhere
    d = ope.aggregate([good, zero], rules="otb_matlab")
    assert abs(d.success_auc - good.success_auc) < 1e-12
    assert abs(d.precision - good.precision) < 1e-12
    d = ope.aggregate([good, zero], rules="pysot")
    assert abs(d.success_auc - good.success_auc / 2) < 1e-12


def test_attribute_breakdown():
    per_seq = {"A": ope.evaluate_sequence(GT_A, PR_A), "B": ope.evaluate_sequence(GT_B, PR_B)}
    attrs = {"OCC": ["A", "B"], "FM": ["B"], "none": []}
    out = ope.attribute_breakdown(per_seq, attrs)
    assert set(out) == {"OCC", "FM"}
    assert abs(out["OCC"].success_auc - 0.666667) < TOL
    assert abs(out["FM"].precision - 0.75) < TOL
    floats = ope.attribute_breakdown({k: v.success_auc for k, v in per_seq.items()}, attrs)
    assert abs(floats["OCC"] - 0.666667) < TOL and abs(floats["FM"] - 0.702381) < TOL


def test_bad_inputs():
    with pytest.raises(ValueError):
        ope.evaluate_sequence(GT_A, PR_B)
    with pytest.raises(ValueError):
        ope.evaluate_sequence(GT_A, PR_A, rules="vot")
    with pytest.raises(ValueError):
        ope.evaluate_sequence(GT_A, PR_A, keep=KEEP_A[:-1])


# ---- cross-check against got10k 0.1.3 (ExperimentOTB math) on random boxes ----------------------------


def _random_boxes(rng, n, invalid_gt):
    gt = np.column_stack([rng.uniform(0, 400, (n, 2)), rng.uniform(5, 120, (n, 2))])
    jitter = rng.normal(0, 1, (n, 4)) * np.array([15, 15, 10, 10])
    pred = gt + jitter * rng.choice([0.2, 1.0, 4.0], size=(n, 1))
    pred[:, 2:] = np.abs(pred[:, 2:]) + 1
    pred[rng.random(n) < 0.05] = np.nan  # NaN predictions (tracker failure rows)
    if invalid_gt:
        gt[rng.random(n) < 0.05] = 0.0
        gt[rng.random(n) < 0.05] = np.nan
    return gt, pred


def _got10k_curves(gt, pred):
    holder = type("Holder", (), {"nbins_iou": 21, "nbins_ce": 51})()
    with np.errstate(invalid="ignore"):
        ious = g10k_metrics.rect_iou(pred.copy(), gt.copy())
        ce = g10k_metrics.center_error(pred.copy(), gt.copy())
        return ExperimentOTB._calc_curves(holder, ious, ce)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_got10k_on_random_boxes(seed):
    rng = np.random.default_rng(seed)
    # valid ground truth: pysot rules == got10k's math for success and precision
    gt, pred = _random_boxes(rng, 300, invalid_gt=False)
    succ, prec = _got10k_curves(gt, pred)
    ours = ope.evaluate_sequence(gt, pred, rules="pysot")
    assert np.max(np.abs(ours.success_curve - succ)) <= 1e-9
    assert np.max(np.abs(ours.precision_curve - prec)) <= 1e-9
    # invalid / NaN ground truth: success agrees (a miss for both); precision differs by design (pysot
    # counts invalid gt as a hit, got10k 0.1.3 as a distance), so only success is compared.
    gt, pred = _random_boxes(rng, 300, invalid_gt=True)
    succ, _ = _got10k_curves(gt, pred)
    assert np.max(np.abs(ope.success_curve(gt, pred) - succ)) <= 1e-9
    # rules="got10k" reproduces the whole ExperimentOTB report path (frame 0 := gt, no masking)
    pred0 = pred.copy()
    pred0[0] = gt[0]
    succ, prec = _got10k_curves(gt, pred0)
    ours = ope.evaluate_sequence(gt, pred, rules="got10k")
    assert np.max(np.abs(ours.success_curve - succ)) <= 1e-9
    assert np.max(np.abs(ours.precision_curve - prec)) <= 1e-9
