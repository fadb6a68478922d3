"""Tests for siamrn_jax.data.targets (SPEC 7.3-7.5, 8.4)."""

from __future__ import annotations

import numpy as np
import pytest

from siamrn_jax.data.targets import contrastive_pairs, point_labels, sample_boxes
from siamrn_jax.geometry.score_map import points
from tests.train.target_oracle import negative_proposals, positive_proposals, rect_iou

BOX = np.array([60.0, 50.0, 200.0, 210.0])  # xyxy: centre (130, 130), size (140, 160)
GT = np.array([90.0, 80.0, 70.0, 90.0])  # xywh


def _ellipses(box):
    x1, y1, x2, y2 = box
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    p = points(25, 8, 255).astype(np.float64)
    dx, dy = p[..., 0] - cx, p[..., 1] - cy
    e2 = (dx / (w / 4)) ** 2 + (dy / (h / 4)) ** 2
    e1 = (dx / (w / 2)) ** 2 + (dy / (h / 2)) ** 2
    return e1, e2


def test_point_labels_positive_pair():
    cls, loc = point_labels(BOX, True, np.random.default_rng(0))
    assert cls.shape == (25, 25) and cls.dtype == np.int64
    assert loc.shape == (25, 25, 4) and loc.dtype == np.float32
    assert set(np.unique(cls)) <= {-1, 0, 1}
    e1, e2 = _ellipses(BOX)
    assert (e2 < 1).sum() > 16  # the subsetting is exercised
    assert (cls == 1).sum() == 16
    assert np.all(e2[cls == 1] < 1)
    assert (cls == 0).sum() == 48
    assert np.all(e1[cls == 0] > 1)
    # loc = (x - x1, y - y1, x2 - x, y2 - y) everywhere; point (i, j) = (31 + 8 j, 31 + 8 i)
    np.testing.assert_array_equal(loc[12, 12], [127 - 60, 127 - 50, 200 - 127, 210 - 127])
    np.testing.assert_array_equal(loc[0, 24], [223 - 60, 31 - 50, 200 - 223, 210 - 31])
    np.testing.assert_array_equal(loc[3, 5], [71 - 60, 55 - 50, 200 - 71, 210 - 55])


def test_point_labels_small_box_keeps_all_positives():
    box = np.array([110.0, 100.0, 150.0, 160.0])
    cls, _ = point_labels(box, True, np.random.default_rng(1))
    _, e2 = _ellipses(box)
    assert 0 < (e2 < 1).sum() <= 16
    np.testing.assert_array_equal(cls == 1, e2 < 1)


def test_point_labels_negative_pair():
    cls, loc = point_labels(BOX, False, np.random.default_rng(0))
    _, e2 = _ellipses(BOX)
    assert np.all(loc == 0)
    assert (cls == 0).sum() == 16
    assert not np.any(cls == 1)
    assert np.all(e2[cls == 0] < 1)
    assert np.all(cls[e2 >= 1] == -1)


def test_point_labels_deterministic():
    a = point_labels(BOX, True, np.random.default_rng(5))
    b = point_labels(BOX, True, np.random.default_rng(5))
    c = point_labels(BOX, True, np.random.default_rng(6))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def _check_clipped(boxes):
    w, h = boxes[:, 2], boxes[:, 3]
    assert np.all((w >= 10) & (w <= 245) & (h >= 10) & (h <= 245))
    cx, cy = boxes[:, 0] + w / 2, boxes[:, 1] + h / 2
    tol = 1e-3
    assert np.all((cx >= -tol) & (cx <= 255 + tol) & (cy >= -tol) & (cy <= 255 + tol))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sample_boxes_gaussian_window(seed):
    boxes, count = sample_boxes(GT, 16, "gaussian", 0.1, 1.3, (0.7, 1.0), np.random.default_rng(seed))
    assert boxes.shape == (16, 4) and boxes.dtype == np.float32
    assert count == 16
    iou = rect_iou(boxes, GT)
    assert np.all((iou >= 0.7) & (iou <= 1.0))
    _check_clipped(boxes)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sample_boxes_uniform_window(seed):
    boxes, count = sample_boxes(GT, 48, "uniform", 1.0, 1.5, (0.0, 0.1), np.random.default_rng(seed))
    assert boxes.shape == (48, 4)
    assert count > 0
    iou = rect_iou(boxes[:count], GT)
    assert np.all((iou >= 0.0) & (iou <= 0.1))
    _check_clipped(boxes[:count])
    assert np.all(boxes[count:] == 0)


def test_sample_boxes_clipping_at_border():
    gt = np.array([200.0, 0.0, 240.0, 250.0])  # huge and at the edge: sizes and centres get clipped
    boxes, count = sample_boxes(gt, 32, "uniform", 1.0, 1.5, (0.0, 1.0), np.random.default_rng(3))
    assert count == 32
    _check_clipped(boxes)
    assert np.any(boxes[:, 3] == 245)


def test_sample_boxes_too_strict_window_leaves_zero_rows():
    boxes, count = sample_boxes(GT, 16, "gaussian", 0.1, 1.3, (0.9999, 1.0), np.random.default_rng(0))
    assert count == 0
    assert np.all(boxes == 0)


def test_sample_boxes_deterministic():
    a = sample_boxes(GT, 16, "gaussian", 0.1, 1.3, (0.7, 1.0), np.random.default_rng(9))
    b = sample_boxes(GT, 16, "gaussian", 0.1, 1.3, (0.7, 1.0), np.random.default_rng(9))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]


def test_rect_iou():
    np.testing.assert_allclose(rect_iou(GT[None], GT), [1.0], atol=1e-6)
    np.testing.assert_allclose(rect_iou(np.array([[0.0, 0, 10, 10]]), np.array([5.0, 0, 10, 10])), [1 / 3])
    assert rect_iou(np.array([[0.0, 0, 10, 10]]), np.array([20.0, 0, 10, 10]))[0] == 0


def test_positive_proposals_gaussian_only():
    pos = positive_proposals(GT, np.random.default_rng(0))
    assert pos.shape == (16, 4)
    assert np.all(rect_iou(pos, GT) >= 0.7)


def test_positive_proposals_predicted_first_then_gaussian():
    rng = np.random.default_rng(0)
    good = GT[None] + np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])  # IoU > 0.6
    bad = np.array([[0.0, 0, 20, 20], [200, 200, 30, 30]])
    pred = np.concatenate([bad[:1], good, bad[1:]])
    pos = positive_proposals(GT, np.random.default_rng(0), predicted=pred)
    gauss, _ = sample_boxes(GT, 16, "gaussian", 0.1, 1.3, (0.7, 1.0), rng)
    np.testing.assert_array_equal(pos[:3], good.astype(np.float32))
    np.testing.assert_array_equal(pos[3:], gauss[:13])


def test_positive_proposals_at_most_16_predicted():
    pred = GT[None] + np.stack([np.arange(40.0) * 0.1, np.zeros(40), np.zeros(40), np.zeros(40)], axis=1)
    pos = positive_proposals(GT, np.random.default_rng(0), predicted=pred)
    assert pos.shape == (16, 4)
    rows = {tuple(r) for r in pred.astype(np.float32)}
    assert all(tuple(r) in rows for r in pos)
    assert len({tuple(r) for r in pos}) == 16


def test_negative_proposals_uniform():
    neg = negative_proposals(GT, np.random.default_rng(0))
    assert neg.shape == (48, 4)
    nonzero = np.any(neg != 0, axis=1)
    assert nonzero.sum() > 0
    assert np.all(rect_iou(neg[nonzero], GT) <= 0.1)


def _grid_predictions(n=625):
    rng = np.random.default_rng(11)
    xy = rng.uniform(0, 220, size=(n, 2))
    wh = rng.uniform(20, 80, size=(n, 2))
    return np.concatenate([xy, wh], axis=1).astype(np.float32), rng.random(n)


def test_negative_proposals_ordered_by_distance():
    pred, _ = _grid_predictions()
    neg = negative_proposals(GT, np.random.default_rng(0), predicted=pred)
    assert neg.shape == (48, 4)
    assert np.all(rect_iou(neg, GT) < 0.2)
    gc = GT[:2] + GT[2:] / 2
    d = np.sum((neg[:, :2] + neg[:, 2:] / 2 - gc) ** 2, axis=1)
    assert np.all(np.diff(d) >= -1e-3)
    # they are the 48 nearest of all low-IoU predictions
    low = pred[rect_iou(pred, GT) < 0.2]
    dl = np.sort(np.sum((low[:, :2] + low[:, 2:] / 2 - gc) ** 2, axis=1))
    np.testing.assert_allclose(np.sort(d), dl[:48], rtol=1e-5)


def test_negative_proposals_missing_rows_zero():
    pred = np.array([[0.0, 0, 20, 20], [200, 200, 30, 30], GT], np.float32)
    neg = negative_proposals(GT, np.random.default_rng(0), predicted=pred)
    assert np.all(np.any(neg[:2] != 0, axis=1))
    assert np.all(neg[2:] == 0)


def test_negative_proposals_hnm_overwrite():
    pred, scores = _grid_predictions()
    base = negative_proposals(GT, np.random.default_rng(0), predicted=pred)
    neg = negative_proposals(GT, np.random.default_rng(0), predicted=pred, scores=scores)
    iou = rect_iou(pred, GT)
    order = np.argsort(-scores)
    hard = pred[order[iou[order] < 0.1][:24]]
    np.testing.assert_array_equal(neg[:24], hard)
    np.testing.assert_array_equal(neg[24:], base[24:])
    # a high-scoring box that overlaps the GT is never mined
    scores2 = scores.copy()
    pred2 = pred.copy()
    pred2[0] = GT
    scores2[0] = 10.0
    neg2 = negative_proposals(GT, np.random.default_rng(0), predicted=pred2, scores=scores2)
    assert not np.any(np.all(neg2 == GT.astype(np.float32), axis=1))


def _pairs(seed, flip):
    pos = np.arange(64, dtype=np.float32).reshape(16, 4) + 1000
    neg = np.arange(192, dtype=np.float32).reshape(48, 4)
    return pos, neg, contrastive_pairs(np.random.default_rng(seed), pos, neg, flip)


@pytest.mark.parametrize("flip", [False, True])
def test_contrastive_pairs(flip):
    pos, neg, (support, boxes, labels) = _pairs(0, flip)
    assert support.shape == (64,) and boxes.shape == (64, 4) and labels.shape == (64,)
    assert labels.dtype == np.int64
    assert labels.sum() == 16
    assert np.all(support[labels == 1] == 0)
    np.testing.assert_array_equal(np.sort(boxes[labels == 1], axis=0), np.sort(pos, axis=0))
    assert (support == 1).sum() == 16
    d = boxes[support == 1]
    np.testing.assert_array_equal(d, pos if flip else neg[32:48])
    assert np.all(labels[support == 1] == 0)
    t0 = boxes[(support == 0) & (labels == 0)]
    np.testing.assert_array_equal(np.sort(t0, axis=0), np.sort(neg[0:32], axis=0))


def test_contrastive_pairs_group_shuffle_is_permutation():
    pos, neg = _pairs(0, False)[:2]
    groups = {0: pos, 1: neg[0:16], 2: neg[16:32], 3: neg[32:48]}
    orders = set()
    for seed in range(20):
        _, _, (support, boxes, labels) = _pairs(seed, False)
        order = []
        for k in range(4):
            blk = boxes[16 * k : 16 * (k + 1)]
            (g,) = [g for g, v in groups.items() if np.array_equal(v, blk)]
            order.append(g)
            assert len(set(support[16 * k : 16 * (k + 1)])) == 1
            assert len(set(labels[16 * k : 16 * (k + 1)])) == 1
        assert sorted(order) == [0, 1, 2, 3]
        orders.add(tuple(order))
    assert len(orders) > 1
    a = _pairs(3, True)[2]
    b = _pairs(3, True)[2]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
