"""VOT regions: the formats of the whole ``eval.vot`` package (stated here once), the codes, and pysot's
initial box from a ground-truth region.

Formats used throughout ``eval.vot`` (pysot's and the vot-toolkit's alike):

* **Box**: ``[x, y, w, h]`` (top-left corner, width, height), floats.
* **Polygon**: ``[x1, y1, ..., xk, yk]`` (VOT ground truth: k = 4, 8 numbers).
* **Region**: a box (4 numbers), a polygon (>= 6 numbers) or a **code** (VOT convention ``1`` = init,
  ``2`` = failure, ``0`` = skipped frame). Codes may be given as an ``int`` or as a 1-element sequence
  (pysot stores them as ``[1]``); every overlap with a code is NaN.
* **Trajectory**: list of regions, one per frame (frame index ``t`` 0-based).
* **Bounds / image size**: ``(W, H)``; the overlap window is ``[0, W] x [0, H]`` with *inclusive*
  integer pixel indices (so ``(W, H)`` includes one column/row beyond the image). pysot uses ``(W, H)``
  for the restart test and accuracy and ``(W - 1, H - 1)`` for EAO; the vot-toolkit variants
  (``toolkit``) rasterise in ``[0, W - 1] x [0, H - 1]`` (the image itself).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from siamrn_jax.geometry.boxes import polygon_to_box, pysot_init_box

CODE_INIT = 1
CODE_FAILURE = 2
CODE_SKIP = 0


def is_code(region: Any) -> bool:
    """True if ``region`` is a VOT code: an ``int`` or a 1-element sequence (``[1]``, ``[2]``, ``[0]``)."""
    if isinstance(region, (int, np.integer)):
        return True
    return np.size(region) == 1


def code_value(region: Any) -> int | None:
    """The code of a code region (``1`` init, ``2`` failure, ``0`` skipped), None for a box or polygon."""
    if not is_code(region):
        return None
    return int(np.asarray(region).reshape(-1)[0])


def polygon_to_center_size(region: Any) -> np.ndarray:
    """pysot ``get_axis_aligned_bbox``: region -> ``(cx, cy, w, h)`` (§3.1), float64 ``[4]``.

    Args:
        region: 8-value polygon ``[x1, y1, ..., x4, y4]`` or 4-value box ``[x, y, w, h]``.

    Returns:
        ``(cx, cy, w, h)``. Polygon: centre = mean of the corners, area-preserving ``w, h`` with the
        ``+1`` convention. Box: ``(x + w/2, y + h/2, w, h)``.
    """
    r = np.asarray(region, np.float64).reshape(-1)
    if r.size == 8:
        b = polygon_to_box(r)  # (cx - w/2, cy - h/2, w, h)
    elif r.size == 4:
        b = r
    else:
        raise ValueError(f"expected 4 or 8 values, got {r.size}")
    return np.array([b[0] + b[2] / 2, b[1] + b[3] / 2, b[2], b[3]])


def polygon_to_init_box(region: Any) -> np.ndarray:
    """pysot/SiamRN initialisation box from a VOT ground-truth region (§3.1, §11.6).

    Args:
        region: 8-value polygon or 4-value box.

    Returns:
        float64 ``[4]`` box ``[cx - (w-1)/2, cy - (h-1)/2, w, h]`` with ``(cx, cy, w, h)`` from
        :func:`polygon_to_center_size`; for a 4-value box this is ``[x + 0.5, y + 0.5, w, h]``.
    """
    r = np.asarray(region, np.float64).reshape(-1)
    if r.size == 8:
        return pysot_init_box(polygon_to_box(r))
    if r.size == 4:
        return pysot_init_box(r)
    raise ValueError(f"expected 4 or 8 values, got {r.size}")
