"""IoU and centre error of (x, y, w, h) boxes: the one implementation used by evaluation, the command
line summaries, the training targets and the on-device hard-negative mining.

Continuous IoU (EVALUATION.md section 1): I = max(0, min(xa + wa, xb + wb) - max(xa, xb)) * (same in y),
IoU = I / (wa ha + wb hb - I + eps), clipped to [0, 1]. NaN stays NaN (``NaN > threshold`` is a miss).
pysot's OPE uses eps = 0, got10k machine epsilon, the official training ``rect_iou`` 1e-6 (callers pass it).
Works on NumPy (float64, no warning for 0/0) and JAX arrays alike, with broadcasting over leading axes.
"""

from __future__ import annotations

import numpy as np


def _xp(a):
    if isinstance(a, np.ndarray | float | int | list | tuple):
        return np
    import jax.numpy as jnp

    return jnp


def iou(a, b, eps: float = 0.0):
    """IoU of boxes ``a`` [..., 4] and ``b`` [..., 4] (broadcast), both (x, y, w, h). Returns [...]."""
    xp = _xp(a)
    if xp is np:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    left = xp.maximum(a[..., 0], b[..., 0])
    right = xp.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
    top = xp.maximum(a[..., 1], b[..., 1])
    bottom = xp.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
    inter = xp.maximum(0.0, right - left) * xp.maximum(0.0, bottom - top)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    if xp is np:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = inter / (union + eps)
    else:
        ratio = inter / (union + eps)
    return xp.maximum(xp.minimum(1.0, ratio), 0.0)


def box_centers(boxes):
    """Centres (x + (w - 1) / 2, y + (h - 1) / 2) of [..., 4] boxes (the OPE toolkits' rule), [..., 2]."""
    return boxes[..., :2] + (boxes[..., 2:] - 1.0) / 2.0


def center_error(a, b):
    """Euclidean distance between the centres of boxes ``a`` and ``b`` [..., 4]; NaN propagates."""
    xp = _xp(a)
    if xp is np:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = box_centers(a) - box_centers(b)
    return xp.sqrt(xp.sum(d * d, axis=-1))
