"""Score-map geometry: map cells <-> search-crop points, and box decoding (pysot ``utils/point.py``).

For the paper model: 255 search crop, stride 8, 25x25 score map, cell (i, j) <-> point
(x, y) = (origin + 8 j, origin + 8 i) with origin = 255 // 2 - (25 // 2) * 8 = 31.
See ``siamrn_jax.geometry.boxes`` for the conventions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def score_size(exemplar_size: int, instance_size: int, stride: int, base_size: int = 8) -> int:
    """pysot's score-map size: (instance - exemplar) // stride + 1 + base_size (25 for 127/255/8)."""
    return (instance_size - exemplar_size) // stride + 1 + base_size


def points(size: int, stride: int, instance_size: int) -> np.ndarray:
    """Crop-pixel coordinates of the score-map cells.

    Returns:
      [size, size, 2] float32 array of (x, y); [i, j] = (origin + stride j, origin + stride i).
    """
    origin = instance_size // 2 - (size // 2) * stride
    ij = np.arange(size, dtype=np.float32) * stride + origin
    xs, ys = np.meshgrid(ij, ij)  # xs varies along columns (j), ys along rows (i)
    return np.stack([xs, ys], axis=-1)


def decode_boxes(loc: jax.Array, stride: int, instance_size: int) -> jax.Array:
    """(l, t, r, b) distances at every cell -> corner boxes in crop pixels.

    Args:
      loc: [B, S, S, 4] fused loc map.

    Returns:
      [B, S*S, 4] (x1, y1, x2, y2), row-major over cells (k = S i + j), unclipped.
    """
    b, s = loc.shape[0], loc.shape[1]
    p = jnp.asarray(points(s, stride, instance_size))
    x, y = p[..., 0], p[..., 1]
    boxes = jnp.stack([x - loc[..., 0], y - loc[..., 1], x + loc[..., 2], y + loc[..., 3]], axis=-1)
    return boxes.reshape(b, s * s, 4)


def proposal_boxes(loc: jax.Array, stride: int, instance_size: int) -> jax.Array:
    """The relation detector's tracking proposals: one box per cell, clipped to the crop.

    Mirrors ``GetMultidectTarget(type='track')`` + ``GetPrroiPoolFeature``: corners are converted to
    (x, y, w, h) and back (kept for float32 bit-compatibility with the official round trip), then clipped
    to [0, instance_size].

    Args:
      loc: [B, S, S, 4].

    Returns:
      [B, S*S, 4] (x1, y1, x2, y2) in crop pixels.
    """
    c = decode_boxes(loc, stride, instance_size)
    w, h = c[..., 2] - c[..., 0], c[..., 3] - c[..., 1]
    c = jnp.stack([c[..., 0], c[..., 1], c[..., 0] + w, c[..., 1] + h], axis=-1)
    return jnp.clip(c, 0.0, float(instance_size))
