"""Host-side training targets: BAN point labels, RD proposals, contrastive pairs (SPEC sections 7.3-7.5, 8.4).

Everything here is NumPy and runs in the data pipeline. Every random draw comes from an explicit
``np.random.Generator`` argument, so the outputs are deterministic given the generator state.

Box formats (see ``siamrn_jax.geometry.boxes``): ``xyxy`` = (x1, y1, x2, y2) corners; ``xywh`` = (x, y, w, h)
top-left corner and size ("lt" in the official code). All coordinates are in crop pixels (255 search/query
crop unless said otherwise).
"""

from __future__ import annotations

import numpy as np

from siamrn_jax.geometry.score_map import points

NUM_POSITIVE = 16
NUM_NEGATIVE = 48
NUM_HARD = 24
GROUP = 16

# RD training strategies (``train.rd_pairs``; the paper's Table 3 compares them), see ``pair_groups``.
RD_PAIRS = ("contrastive", "one_way")


def pair_groups(strategy: str = "contrastive") -> tuple[tuple[int, int], ...]:
    """(support, label) of the four groups of 16 pairs, A to D, of an RD training strategy.

    - ``"contrastive"`` (official, SPEC 7.5): A = (template, positives, 1), B / C = (template,
      negatives[0:32], 0), D = (negative support, positives or negatives[32:48], 0): 1:2:1.
    - ``"one_way"``: the paper's naive "one-way one-shot" training: the template is the only support
      the relation detector ever sees. Every sample keeps its 64 pairs and its 16 positive pairs (the
      same positive share, 1/4); group D becomes (template, negatives[32:48], 0), a third
      target-vs-background group. So exactly the negative-support pairs are replaced, 16:48 with no
      negative support (the negative-support crop still goes through the backbone, so BatchNorm
      batches are the same as in the contrastive run; no RoI is pooled on it), and the batch's coin
      for group D has no effect.

    Returns:
      ((support, label), ...) for A, B, C, D; support 0 = template RoI, 1 = negative-support RoI.
    """
    if strategy not in RD_PAIRS:
        raise ValueError(f"train.rd_pairs={strategy!r}: expected one of {', '.join(RD_PAIRS)}")
    return ((0, 1), (0, 0), (0, 0), (1 if strategy == "contrastive" else 0, 0))


def point_labels(
    box_xyxy,
    positive_pair: bool,
    rng: np.random.Generator,
    size: int = 25,
    stride: int = 8,
    instance_size: int = 255,
    pos_num: int = 16,
    total_num: int = 64,
    neg_num: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """BAN classification / regression labels on the score map (pysot/SiamBAN ``PointTarget``, SPEC 8.4).

    With the target centre (cx, cy) and size (w, h), and score-map points p = (x, y) from
    ``score_map.points``: E2(p) = ((x-cx)/(w/4))^2 + ((y-cy)/(h/4))^2 and
    E1(p) = ((x-cx)/(w/2))^2 + ((y-cy)/(h/2))^2.

    - positive pair: {E2 < 1} -> 1 (at most ``pos_num``, chosen at random); {E1 > 1} -> 0 (at most
      ``total_num - pos_num``, chosen at random); all other cells -1. ``label_loc`` = (x-x1, y-y1, x2-x, y2-y)
      at every cell.
    - negative pair: {E2 < 1} -> 0 (at most ``neg_num``, at random); all else -1; ``label_loc`` zeros.

    Random draws, in order: positives subset, then negatives subset (positive pair) or the negatives subset
    only (negative pair); a draw is made only when a set is larger than its budget.

    Args:
      box_xyxy: [4] target box (x1, y1, x2, y2) in search-crop pixels.
      positive_pair: whether the search image contains the template's target.
      rng: random generator.
      size, stride, instance_size: score-map geometry (25, 8, 255 for the paper model).
      pos_num, total_num, neg_num: ``TRAIN.POS_NUM``, ``TRAIN.TOTAL_NUM``, ``TRAIN.NEG_NUM``.

    Returns:
      label_cls: [S, S] int64 in {-1, 0, 1}.
      label_loc: [S, S, 4] float32 (l, t, r, b) distances in crop pixels (channels last; the official layout
        is (4, S, S)).
    """
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box_xyxy, np.float64))
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    # float64 points: pysot subtracts float64 box coordinates from its float32 points (a float64 result);
    # with float32 points NumPy would round the box to float32 first and flip cells on the ellipse edges.
    p = points(size, stride, instance_size).astype(np.float64)
    x, y = p[..., 0], p[..., 1]
    cls = -np.ones((size, size), np.int64)
    loc = np.zeros((size, size, 4), np.float32)
    e2 = np.square(cx - x) / np.square(w / 4) + np.square(cy - y) / np.square(h / 4)
    if not positive_pair:
        cls[_select(e2 < 1, neg_num, rng)] = 0
        return cls, loc
    loc[..., 0] = x - x1
    loc[..., 1] = y - y1
    loc[..., 2] = x2 - x
    loc[..., 3] = y2 - y
    e1 = np.square(cx - x) / np.square(w / 2) + np.square(cy - y) / np.square(h / 2)
    pos = _select(e2 < 1, pos_num, rng)
    neg = _select(e1 > 1, total_num - pos_num, rng)
    cls[pos] = 1
    cls[neg] = 0
    return cls, loc


def _select(mask: np.ndarray, keep: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Indices of ``mask``'s True cells, a random subset of ``keep`` when there are more."""
    where = np.nonzero(mask)
    num = where[0].shape[0]
    if num <= keep:
        return where
    slt = rng.permutation(num)[:keep]
    return tuple(a[slt] for a in where)


def _gen_samples(gt_xywh, n, kind, trans, scale, img_size, rng) -> np.ndarray:
    """One round of ``SampleGenerator._gen_samples``: [n, 4] float32 (x, y, w, h)."""
    bb = np.asarray(gt_xywh, np.float32)
    sample = np.array([bb[0] + bb[2] / 2, bb[1] + bb[3] / 2, bb[2], bb[3]], np.float32)
    s = np.tile(sample[None, :], (n, 1))
    mean_wh = np.mean(bb[2:])
    if kind == "gaussian":
        s[:, :2] += trans * mean_wh * np.clip(0.5 * rng.standard_normal((n, 2)), -1, 1)
        s[:, 2:] *= scale ** np.clip(0.5 * rng.standard_normal((n, 1)), -1, 1)
    elif kind == "uniform":
        s[:, :2] += trans * mean_wh * (rng.random((n, 2)) * 2 - 1)
        s[:, 2:] *= scale ** (rng.random((n, 1)) * 2 - 1)
    else:
        raise ValueError(f"unknown sample kind {kind!r}")
    img = np.asarray(img_size, np.float32)
    s[:, 2:] = np.clip(s[:, 2:], 10, img - 10)
    s[:, :2] = np.clip(s[:, :2], 0, img)
    s[:, :2] -= s[:, 2:] / 2
    return s


def _overlap_ratio(boxes_xywh: np.ndarray, gt_xywh) -> np.ndarray:
    """IoU of float32 candidates with the float64 GT exactly as pysot's ``SampleGenerator`` computes it
    (``gen_proposal.overlap_ratio``): no eps, the candidates' x + w and w h in float32. ``rect_iou`` (all
    float64, eps 1e-6) differs in the last bits, which moves candidates at the IoU window's edges."""
    b = np.asarray(boxes_xywh, np.float32).reshape(-1, 4)
    g = np.asarray(gt_xywh, np.float64).reshape(1, 4)
    left = np.maximum(b[:, 0], g[:, 0])
    right = np.minimum(b[:, 0] + b[:, 2], g[:, 0] + g[:, 2])
    top = np.maximum(b[:, 1], g[:, 1])
    bottom = np.minimum(b[:, 1] + b[:, 3], g[:, 1] + g[:, 3])
    intersect = np.maximum(0, right - left) * np.maximum(0, bottom - top)
    union = b[:, 2] * b[:, 3] + g[:, 2] * g[:, 3] - intersect
    return np.clip(intersect / union, 0, 1)


def sample_boxes(
    gt_xywh,
    n: int,
    kind: str,
    trans: float,
    scale: float,
    iou_range: tuple[float, float],
    rng: np.random.Generator,
    img_size: tuple[int, int] = (255, 255),
) -> tuple[np.ndarray, int]:
    """MDNet-style ``SampleGenerator`` with an IoU window (SPEC 7.3 / 7.4).

    Candidates are generated around the GT centre:

    - ``'gaussian'``: centre += trans * mean(w, h) * clip(0.5 N(0, 1), -1, 1) per axis;
      (w, h) *= scale ** clip(0.5 N(0, 1), -1, 1) (one factor for both).
    - ``'uniform'``: centre += trans * mean(w, h) * U(-1, 1) per axis; (w, h) *= scale ** U(-1, 1).

    Then w, h are clipped to [10, img - 10] and the centre to [0, img]. Candidates are drawn in rounds of
    2, 4 and 8 times the number still missing (2n, 4n, 8n when no earlier round kept any; this is the
    ``remain * factor`` loop of ``SampleGenerator.__call__``) and those with ``lo <= IoU <= hi`` are kept,
    in draw order, until ``n`` are found. If still short after the 8x round, the missing rows are left
    all-zero (the official code leaves the whole sample zero and prints the GT box; we keep the valid rows
    and report how many there are).

    Args:
      gt_xywh: [4] GT (x, y, w, h).
      n: number of boxes wanted.
      kind: ``'gaussian'`` or ``'uniform'``.
      trans, scale: the generator's translation and scale factors.
      iou_range: (lo, hi) inclusive IoU window against the GT (pysot's ``overlap_ratio``, no eps).
      rng: random generator.
      img_size: (width, height) of the crop.

    Returns:
      boxes: [n, 4] float32 (x, y, w, h); rows ``count:`` are zeros.
      count: number of valid rows.
    """
    lo, hi = iou_range
    out = np.zeros((n, 4), np.float32)
    count = 0
    factor = 2
    while count < n and factor < 16:
        cand = _gen_samples(gt_xywh, (n - count) * factor, kind, trans, scale, img_size, rng)
        r = _overlap_ratio(cand, gt_xywh)
        cand = cand[(r >= lo) & (r <= hi)][: n - count]
        out[count : count + len(cand)] = cand
        count += len(cand)
        factor *= 2
    return out, count


def positive_proposals(gt_xywh, rng: np.random.Generator) -> np.ndarray:
    """16 positive RD proposals for one query crop (SPEC 7.3): gaussian samples (trans 0.1, scale 1.3, IoU in
    [0.7, 1]).

    From the hard-negative-mining epoch on, the boxes the BAN head predicts with IoU > 0.6 replace the first
    rows on the device (``train.mining.positive_proposals``); these samples fill the rest.

    Args:
      gt_xywh: [4] query GT (x, y, w, h) in query-crop pixels.
      rng: random generator.

    Returns:
      [16, 4] float32 (x, y, w, h); rows the gaussian sampler could not fill are zeros.
    """
    gauss, _ = sample_boxes(gt_xywh, NUM_POSITIVE, "gaussian", 0.1, 1.3, (0.7, 1.0), rng)
    return gauss


def negative_proposals(gt_xywh, rng: np.random.Generator) -> np.ndarray:
    """48 negative RD proposals for one query crop before hard-negative mining (SPEC 7.4): uniform samples
    (trans 1, scale 1.5, IoU in [0, 0.1]), the intended ``TRAIN.HNM=False`` path (SPEC 12.1).

    From ``HNM_EPOCH`` = 3 on, the negatives come from the BAN head's predictions on the device
    (``train.mining.negative_proposals``).

    Args:
      gt_xywh: [4] query GT (x, y, w, h) in query-crop pixels.
      rng: random generator.

    Returns:
      [48, 4] float32 (x, y, w, h).
    """
    boxes, _ = sample_boxes(gt_xywh, NUM_NEGATIVE, "uniform", 1.0, 1.5, (0.0, 0.1), rng)
    return boxes


def contrastive_pairs(
    rng: np.random.Generator, positives, negatives, per_batch_flip: bool, strategy: str = "contrastive"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 64 RD training pairs of one sample, 1:2:1 (SPEC 7.5), or one-way one-shot.

    Groups of 16: A = (template, positives, 1); B = (template, negatives[0:16], 0);
    C = (template, negatives[16:32], 0); D = (negative support, positives if ``per_batch_flip`` else
    negatives[32:48], 0). The official code flips D's coin once per batch (SPEC 12.6), so the caller draws
    it once per batch and passes it to every sample. The order of the four groups is shuffled per sample
    with ``rng.permutation(4)``. ``strategy="one_way"``: D = (template, negatives[32:48], 0) whatever the
    coin (``pair_groups``); the same draw is made, so both strategies consume the generator alike.

    Args:
      rng: random generator (one draw: the group permutation).
      positives: [16, 4] positive proposals (any box format; passed through).
      negatives: [48, 4] negative proposals (same format).
      per_batch_flip: the batch's coin; True -> group D uses the positive proposals (contrastive only).
      strategy: one of ``RD_PAIRS``.

    Returns:
      support_index: [64] int32, 0 = template RoI, 1 = negative-support RoI.
      boxes: [64, 4] float32 proposal boxes.
      labels: [64] int64 in {0, 1}.
    """
    pos = np.asarray(positives, np.float32).reshape(GROUP, 4)
    neg = np.asarray(negatives, np.float32).reshape(3 * GROUP, 4)
    contrastive_d = per_batch_flip and strategy == "contrastive"
    boxes_of = [pos, neg[0:16], neg[16:32], pos if contrastive_d else neg[32:48]]
    groups = [(sup, b, lab) for (sup, lab), b in zip(pair_groups(strategy), boxes_of, strict=True)]
    order = rng.permutation(4)
    support = np.concatenate([np.full(GROUP, groups[g][0], np.int32) for g in order])
    boxes = np.concatenate([groups[g][1] for g in order])
    labels = np.concatenate([np.full(GROUP, groups[g][2], np.int64) for g in order])
    return support, boxes, labels
