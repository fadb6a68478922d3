"""Box formats and the coordinate conventions of the whole package (single source of truth).

We follow pysot exactly, so that boxes match the official tracker and the official toolkits:

- ``xywh``: (x, y, w, h), top-left corner and size. ``--init`` and the tracker use 0-based pixel indices
  (frame pixel (i, j) is array element [i, j]). Ground-truth files are **not shifted**: OTB/UAV/LaSOT
  numbers are 1-based MATLAB coordinates, kept as read, exactly as pysot and every toolkit does; pysot's
  OPE scripts initialise with ``pysot_init_box`` = (x + 0.5, y + 0.5, w, h) of the first ground-truth
  row, and results are compared with the ground truth as read (EVALUATION.md section 1).
- ``xyxy``: (x1, y1, x2, y2) corners. ``x2 = x1 + w`` (not ``x1 + w - 1``).
- ``cxcywh``: centre and size. **pysot convention at init**: cx = x + (w - 1) / 2 (the ``-1`` treats x as
  the centre of the first pixel), but the tracker's *output* box is (cx - w / 2, cy - h / 2, w, h) without
  the -1. Both are reproduced on purpose (SPEC section 12, item 14).
- Crops: a ``s x s`` search/template crop is indexed by pixel centres 0..s-1; its centre is at (s-1)/2
  = 127 for the 255 crop, 63.5 for the 127 crop.
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
    ``siamrn_jax.tracking.sources.polygon_to_box``)."""
    b = np.asarray(gt_box, np.float64)
    return b + np.array([0.5, 0.5, 0.0, 0.0])


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
