"""Box formats and the coordinate conventions of the whole package (single source of truth).

We follow pysot exactly, so that boxes match the official tracker and the official toolkits.

Coordinates, one rule per kind of box (and every file kind follows it):

- ``Tracker.init`` / ``track`` boxes and ``--init``: 0-based pixel indices (frame pixel (i, j) is array
  element [i, j]).
- Synthetic scenes in memory (``data.synthetic``): 0-based; pixel j covers [j, j + 1], so x is the index of
  the first pixel, the same numbers as above.
- ``groundtruth_rect.txt`` (OTB layout: OTB, UAV123, LaSOT cuts, and our demo scene): the benchmark's
  1-based MATLAB numbers, kept as read (``io.sources``); the demo writes its 0-based scene boxes
  through ``otb_from_zero_based`` so its folder is an OTB sequence like any other.
- ``groundtruth.txt`` (VOT, GOT-10k, LaSOT layouts): as read; VOT polygons through ``polygon_to_box``.
- Result files (pysot ``<seq>.txt``, ``track.py --output``): the tracker's output boxes as they come, in
  the coordinates of the ground truth it was started from (pysot writes them unshifted).

A tracker starts from a ground-truth row with ``pysot_init_box`` = (x + 0.5, y + 0.5, w, h), exactly as
pysot's test scripts, and results are compared with the ground truth as read (EVALUATION.md section 1).
``track.py`` on a sequence folder, ``eval run``, ``eval.synthetic`` and ``bench track`` all use this one
rule, so a synthetic scene scores the same in memory and after a round trip through its folder.

Box formats:

- ``xywh``: (x, y, w, h), top-left corner and size.
- ``xyxy``: (x1, y1, x2, y2) corners. ``x2 = x1 + w`` (not ``x1 + w - 1``).
- ``cxcywh``: centre and size. **pysot convention at init**: cx = x + (w - 1) / 2 (the ``-1`` treats x as
  the centre of the first pixel), but the tracker's *output* box is (cx - w / 2, cy - h / 2, w, h) without
  the -1. Both are reproduced on purpose (SPEC section 12, item 14).
- Crops: a ``s x s`` search/template crop is indexed by pixel centres 0..s-1; the score map is centred at
  255 // 2 = 127 in the search crop. The relation detector's template RoI is centred at 127 / 2 = 63.5
  (the official ``cropped_gt_bbox``), while training crops put the target centre at (127 - 1) / 2 = 63
  (``data.augment``): both as the official code does.
- Score map: cell (i, j) (row, column) of the 25x25 map sits at crop pixel (x, y) = (31 + 8 j, 31 + 8 i)
  (``siamrn_jax.geometry.score_map``); loc channels are (l, t, r, b) distances in crop pixels.
- PrRoIPool RoIs are half-open (x1, y1, x2, y2) in crop pixels, with feature cell q placed at pixel
  q / spatial_scale = 8 q (``siamrn_jax.ops.prroi_pool``).

Arrays carry the 4 box numbers in their last axis; any leading shape is allowed.
"""

from __future__ import annotations

import numpy as np


def pysot_init_box(gt_box):
    """pysot's initial box from a ground-truth row: ``get_axis_aligned_bbox`` gives the centre
    (x + w / 2, y + h / 2), and the test scripts pass (cx - (w - 1) / 2, cy - (h - 1) / 2, w, h), i.e.
    (x + 0.5, y + 0.5, w, h). ``gt_box`` is (x, y, w, h) as read (VOT polygons: see
    ``siamrn_jax.io.sources.polygon_to_box``)."""
    b = np.asarray(gt_box, np.float64)
    return b + np.array([0.5, 0.5, 0.0, 0.0])


def otb_from_zero_based(box):
    """0-based (x, y, w, h) boxes -> the 1-based numbers an OTB-layout ``groundtruth_rect.txt`` holds."""
    return np.asarray(box, np.float64) + np.array([1.0, 1.0, 0.0, 0.0])


def xywh_to_xyxy(b):
    """(x, y, w, h) -> (x1, y1, x2, y2). Works on NumPy and JAX arrays ``[..., 4]``."""
    x, y, w, h = (b[..., i] for i in range(4))
    return _stack(b, (x, y, x + w, y + h))


def xyxy_to_xywh(b):
    """(x1, y1, x2, y2) -> (x, y, w, h)."""
    x1, y1, x2, y2 = (b[..., i] for i in range(4))
    return _stack(b, (x1, y1, x2 - x1, y2 - y1))


def _stack(like, parts):
    if isinstance(like, np.ndarray):
        return np.stack(parts, axis=-1)
    import jax.numpy as jnp

    return jnp.stack(parts, axis=-1)


def polygon_to_box(poly: np.ndarray) -> np.ndarray:
    """VOT polygons [..., 8] (x1, y1, ..., x4, y4) -> pysot's axis-aligned boxes [..., 4] (x, y, w, h).

    pysot ``get_axis_aligned_bbox`` keeps the polygon's centre (mean of the corners) and its area: the
    min/max box is shrunk by s = sqrt(|p1 - p2| |p2 - p3| / bbox area), then w = s (x2 - x1) + 1. We return
    (cx - w / 2, cy - h / 2, w, h), the same convention as a 4-value row, so ``pysot_init_box`` treats both
    alike. Degenerate (zero-area) and NaN polygons give NaN boxes.
    """
    p = np.asarray(poly, np.float64)
    xs, ys = p[..., 0::2], p[..., 1::2]
    x1, x2, y1, y2 = xs.min(-1), xs.max(-1), ys.min(-1), ys.max(-1)
    a1 = np.linalg.norm(p[..., 0:2] - p[..., 2:4], axis=-1) * np.linalg.norm(
        p[..., 2:4] - p[..., 4:6], axis=-1
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.sqrt(a1 / ((x2 - x1) * (y2 - y1)))
        w, h = s * (x2 - x1) + 1, s * (y2 - y1) + 1
    cx, cy = xs.mean(-1), ys.mean(-1)
    return np.stack([cx - w / 2, cy - h / 2, w, h], axis=-1)


def box_to_polygon(box: np.ndarray) -> np.ndarray:
    """(x, y, w, h) -> the 8 corners (x1, y1, ..., x4, y4) clockwise from the top-left."""
    x, y, w, h = box
    return np.array([x, y, x + w, y, x + w, y + h, x, y + h])
