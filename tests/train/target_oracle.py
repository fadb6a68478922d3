"""NumPy oracle of the RD proposals with hard-negative mining (SPEC 7.3, 7.4): the reference that
``siamrn_jax.train.mining`` (which runs them on the device) is tested against.

Without predictions both functions are the library's (``siamrn_jax.data.targets``, the data pipeline's
samples); with ``predicted`` (and ``scores``) they follow the official ``ProposalTarget`` / ``ohnm.py``
rules. ``contrastive_pairs`` is the library's, re-exported so that a test reaches the library's pairs and
the oracle's proposals through one name.
"""

from __future__ import annotations

import numpy as np

from siamrn_jax.data import targets
from siamrn_jax.data.targets import NUM_HARD, NUM_NEGATIVE, NUM_POSITIVE, contrastive_pairs
from siamrn_jax.geometry.iou import iou

__all__ = ["contrastive_pairs", "negative_proposals", "positive_proposals", "rect_iou"]


def rect_iou(boxes_xywh, gt_xywh, eps: float = 1e-6) -> np.ndarray:
    """IoU of (x, y, w, h) rectangles with one (x, y, w, h) box, ``eps`` added to the union.

    Args:
      boxes_xywh: [N, 4] (x, y, w, h).
      gt_xywh: [4] (x, y, w, h).

    Returns:
      [N] float IoU in [0, 1].
    """
    b = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
    return iou(b, np.asarray(gt_xywh, np.float64)[None], eps)


def positive_proposals(gt_xywh, rng: np.random.Generator, predicted=None) -> np.ndarray:
    """16 positive RD proposals for one query crop (SPEC 7.3).

    16 gaussian samples (trans 0.1, scale 1.3, IoU in [0.7, 1]) are always drawn first. With ``predicted``
    (from the hard-negative-mining epoch on), the predicted boxes with IoU > 0.6 come first, at most 16
    chosen at random (a random permutation, then the first 16), and the remaining rows are the first
    gaussian samples.

    Args:
      gt_xywh: [4] query GT (x, y, w, h) in query-crop pixels.
      rng: random generator.
      predicted: optional [N, 4] (x, y, w, h) boxes predicted by the BAN head on (template, query).

    Returns:
      [16, 4] float32 (x, y, w, h); rows the gaussian sampler could not fill are zeros.
    """
    gauss = targets.positive_proposals(gt_xywh, rng)
    if predicted is None:
        return gauss
    pred = np.asarray(predicted, np.float32).reshape(-1, 4)
    good = np.nonzero(rect_iou(pred, gt_xywh) > 0.6)[0]
    if len(good) > NUM_POSITIVE:
        good = good[rng.permutation(len(good))[:NUM_POSITIVE]]
    out = gauss.copy()
    out[: len(good)] = pred[good]
    out[len(good) :] = gauss[: NUM_POSITIVE - len(good)]
    return out


def negative_proposals(gt_xywh, rng: np.random.Generator, predicted=None, scores=None) -> np.ndarray:
    """48 negative RD proposals for one query crop (SPEC 7.4).

    - ``predicted is None`` (epochs < ``HNM_EPOCH`` = 3): 48 uniform samples (trans 1, scale 1.5,
      IoU in [0, 0.1]) — the intended ``TRAIN.HNM=False`` path (SPEC 12.1).
    - with ``predicted`` (``ProposalTarget``): predicted boxes with IoU < 0.2, ordered by the distance of
      their centre to the GT centre (nearest first, stable), first 48 kept, missing rows zero. The official
      "centre" helper is wrong (SPEC 7.4 / 12.4: it returns half the size, not the centre), which makes its
      ordering essentially arbitrary; we implement the intended spatial ordering with true box centres.
    - with ``scores`` as well (online hard-negative mining, ``ohnm.py``): the predicted boxes with IoU < 0.1
      (the code's threshold, SPEC 12.5), sorted by descending score (stable), top 24 overwrite rows 0..23
      (fewer rows when there are fewer such boxes).

    Args:
      gt_xywh: [4] query GT (x, y, w, h) in query-crop pixels.
      rng: random generator (used only by the uniform path).
      predicted: optional [N, 4] (x, y, w, h) predicted boxes (N = 625 in the paper model).
      scores: optional [N] BAN foreground probabilities of ``predicted``.

    Returns:
      [48, 4] float32 (x, y, w, h).
    """
    if predicted is None:
        return targets.negative_proposals(gt_xywh, rng)
    pred = np.asarray(predicted, np.float32).reshape(-1, 4)
    iou = rect_iou(pred, gt_xywh)
    g = np.asarray(gt_xywh, np.float64)
    gc = g[:2] + g[2:] / 2
    cand = np.nonzero(iou < 0.2)[0]
    pc = pred[cand, :2].astype(np.float64) + pred[cand, 2:].astype(np.float64) / 2
    dist = np.sum(np.square(pc - gc), axis=1)
    cand = cand[np.argsort(dist, kind="stable")][:NUM_NEGATIVE]
    out = np.zeros((NUM_NEGATIVE, 4), np.float32)
    out[: len(cand)] = pred[cand]
    if scores is not None:
        s = np.asarray(scores, np.float64).reshape(-1)
        order = np.argsort(-s, kind="stable")
        hard = order[iou[order] < 0.1][:NUM_HARD]
        out[: len(hard)] = pred[hard]
    return out
