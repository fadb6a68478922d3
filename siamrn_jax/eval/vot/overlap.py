"""VOT region overlap: pysot's raster overlap (the target semantics) and an exact continuous overlap.

Regions, codes and bounds as ``siamrn_jax.eval.vot.region`` states them (EVALUATION.md §3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from siamrn_jax.eval.vot.region import is_code
from siamrn_jax.geometry.boxes import box_to_polygon


def _as_polygon_f32(region: Any) -> np.ndarray:
    """Region -> [k, 2] float32 vertices, as pysot's ``vot_overlap`` builds its C polygon.

    Box corners are ``x + w`` / ``y + h`` (computed in float64, then stored as float32).
    """
    r = np.asarray(region, np.float64).reshape(-1)
    if r.size == 4:
        r = box_to_polygon(r)
    if r.size < 6 or r.size % 2:
        raise ValueError(f"a region needs 4 (box) or an even number >= 6 (polygon) of values, got {r.size}")
    return r.astype(np.float32).reshape(-1, 2)


def _c_round(v: np.ndarray) -> np.ndarray:
    # C round(): halves away from zero (float32 inputs are exact in float64).
    v = np.asarray(v, np.float64)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def _rasterize(poly: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scan-line raster of rounded polygon vertices ``poly`` [k, 2] into a ``[height, width]`` bool mask."""
    p = _c_round(poly)
    xi, yi = p[:, 0], p[:, 1]
    xj, yj = np.roll(xi, 1), np.roll(yi, 1)  # edge (previous vertex -> current vertex)
    rows = np.arange(height, dtype=np.float64)[:, None]
    dy = yj - yi
    hit = (dy != 0) & (np.minimum(yi, yj) <= rows) & (rows <= np.maximum(yi, yj))  # [H, k]
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = xi + (rows - yi) / dy * (xj - xi)
    big = np.iinfo(np.int64).max
    nodes = np.where(hit, np.trunc(np.where(hit, cross, 0.0)), np.inf)
    nodes = np.sort(nodes, axis=1)
    count = hit.sum(axis=1)
    nodes = np.where(np.isfinite(nodes), nodes, 0).astype(np.int64)
    cols = np.arange(width)
    mask = np.zeros((height, width), bool)
    k = nodes.shape[1]
    idx = np.zeros(height, np.int64)
    alive = count > 1
    r_all = np.arange(height)
    # The C walk, vectorised over rows: at most k steps.
    for _ in range(k):
        alive &= idx < count - 1
        if not alive.any():
            break
        i0 = np.minimum(idx, k - 1)
        i1 = np.minimum(idx + 1, k - 1)
        left, right = nodes[r_all, i0], nodes[r_all, i1]
        same = alive & (left == right)
        stop = alive & ~same & (left >= width)
        fill = alive & ~same & ~stop & (right >= 0)
        lo = np.maximum(left, 0)
        hi = np.minimum(right, width - 1)
        lo = np.where(fill, lo, big)
        mask |= (cols[None, :] >= lo[:, None]) & (cols[None, :] <= hi[:, None])
        alive &= ~stop
        idx = np.where(same, idx + 1, idx + 2)
    return mask


def region_overlap(a: Any, b: Any, bounds: Sequence[float] | None = None) -> float:
    """pysot/legacy-VOT raster overlap of two regions (§3.2), bit-exact with pysot's region extension.

    Args:
        a: box ``[x, y, w, h]``, polygon ``[x1, y1, ...]`` or a code.
        b: same.
        bounds: ``(W, H)`` -> window ``[0, W] x [0, H]`` (inclusive pixel indices);
            ``(left, top, right, bottom)`` -> that window; ``None`` -> unbounded.

    Returns:
        The IoU of the two pixel rasters (a float32 value returned as Python ``float``); NaN if either
        region is a code.
    """
    if is_code(a) or is_code(b):
        return float("nan")
    p1, p2 = _as_polygon_f32(a), _as_polygon_f32(b)
    if bounds is None:
        win = (-np.inf, -np.inf, np.inf, np.inf)
    elif len(bounds) == 2:
        win = (0.0, 0.0, float(bounds[0]), float(bounds[1]))
    elif len(bounds) == 4:  # pysot's 4-tuple is (top, bottom, left, right) -> we take (l, t, r, b)
        win = tuple(float(v) for v in bounds)
    else:
        raise ValueError("bounds must be (W, H) or (left, top, right, bottom)")
    # float32 C structs: window values are stored as float (inf stays inf).
    wl, wt, wr, wb = (np.float32(v) for v in win)

    def clipped(p):
        left, top = np.floor(p[:, 0].min()), np.floor(p[:, 1].min())
        right, bottom = np.ceil(p[:, 0].max()), np.ceil(p[:, 1].max())
        return (max(left, wl), max(top, wt), min(right, wr), min(bottom, wb))

    b1, b2 = clipped(p1), clipped(p2)
    x0, y0 = np.float32(min(b1[0], b2[0])), np.float32(min(b1[1], b2[1]))
    w_f = np.float32(max(b1[2], b2[2])) - x0
    h_f = np.float32(max(b1[3], b2[3])) - y0
    if not (np.isfinite(w_f) and np.isfinite(h_f)):
        return 0.0
    width, height = int(w_f) + 1, int(h_f) + 1
    a1 = (float(b1[2]) - float(b1[0])) * (float(b1[3]) - float(b1[1]))
    a2 = (float(b2[2]) - float(b2[0])) * (float(b2[3]) - float(b2[1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        r12 = np.float64(a1) / np.float64(a2)
        r21 = np.float64(a2) / np.float64(a1)
    if r12 < 1e-10 or r21 < 1e-10 or width < 1 or height < 1:
        return 0.0
    # bounds_overlap(b1, b2) == 0 -> 0 (touching or disjoint clipped bounding boxes).
    iw = min(b1[2], b2[2]) - max(b1[0], b2[0])
    ih = min(b1[3], b2[3]) - max(b1[1], b2[1])
    inter = np.float32(iw) * np.float32(ih)
    with np.errstate(divide="ignore", invalid="ignore"):
        bo = inter / (np.float32(a1) + np.float32(a2) - inter)
    bo = np.float32(0) if np.float32(0) > bo else bo  # C MAX(0, v): NaN passes through
    if bo == 0:
        return 0.0
    off = np.array([x0, y0], np.float32)
    m1 = _rasterize((p1 - off).astype(np.float32), width, height)
    m2 = _rasterize((p2 - off).astype(np.float32), width, height)
    n_int = np.count_nonzero(m1 & m2)
    n_uni = np.count_nonzero(m1 | m2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float32(n_int) / np.float32(n_uni))


def region_overlaps(
    trajectory: Sequence[Any], groundtruth: Sequence[Any], bounds: Sequence[float] | None = None
) -> np.ndarray:
    """Per-frame :func:`region_overlap` of two equally long region lists -> float64 ``[N]`` (codes: NaN)."""
    if len(trajectory) != len(groundtruth):
        raise ValueError(f"length mismatch: {len(trajectory)} vs {len(groundtruth)}")
    return np.array(
        [region_overlap(p, g, bounds) for p, g in zip(trajectory, groundtruth, strict=True)], np.float64
    )


def _clip_convex(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman: ``subject`` [n, 2] clipped by the convex polygon ``clip`` [m, 2] (any winding)."""
    cx, cy = clip[:, 0], clip[:, 1]
    orient = np.sign(np.sum(cx * np.roll(cy, -1) - np.roll(cx, -1) * cy)) or 1.0
    out = subject
    for e in range(len(clip)):
        if len(out) == 0:
            break
        a, b = clip[e], clip[(e + 1) % len(clip)]
        d = b - a
        side = orient * (d[0] * (out[:, 1] - a[1]) - d[1] * (out[:, 0] - a[0]))  # >= 0 inside
        prev = np.roll(out, 1, axis=0)
        sprev = np.roll(side, 1)
        inside, pin = side >= 0, sprev >= 0
        with np.errstate(divide="ignore", invalid="ignore"):
            t = sprev / (sprev - side)
            inter = prev + t[:, None] * (out - prev)
        pts = []
        for i in range(len(out)):  # tiny loop (<= a handful of vertices)
            if inside[i]:
                if not pin[i]:
                    pts.append(inter[i])
                pts.append(out[i])
            elif pin[i]:
                pts.append(inter[i])
        out = np.array(pts, np.float64).reshape(-1, 2)
    return out


def _area(p: np.ndarray) -> float:
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return abs(float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))) / 2


def continuous_overlap(a: Any, b: Any, bounds: Sequence[float] | None = None) -> float:
    """Geometric IoU of two regions, each first clipped to the window ``[0, W] x [0, H]`` (§11.3 column).

    Args:
        a: box ``[x, y, w, h]`` (corners at ``x + w``) or polygon; codes give NaN.
        b: same; at least one of ``a``, ``b`` must be convex (boxes and VOT rotated rectangles are).
        bounds: ``(W, H)`` or ``None`` (no clipping).

    Returns:
        float64 IoU in [0, 1] (0 when the union is empty).
    """
    if is_code(a) or is_code(b):
        return float("nan")
    pa, pb = _poly64(a), _poly64(b)
    if bounds is not None:
        W, H = float(bounds[0]), float(bounds[1])
        win = np.array([[0, 0], [W, 0], [W, H], [0, H]], np.float64)
        pa, pb = _clip_convex(pa, win), _clip_convex(pb, win)
    inter = _area(_clip_convex(pa, pb)) if len(pb) >= 3 and len(pa) >= 3 else 0.0
    union = _area(pa) + _area(pb) - inter
    if union <= 0:
        return 0.0
    return float(min(max(inter / union, 0.0), 1.0))


def _poly64(region: Any) -> np.ndarray:
    r = np.asarray(region, np.float64).reshape(-1)
    if r.size == 4:
        r = box_to_polygon(r)
    return r.reshape(-1, 2)
