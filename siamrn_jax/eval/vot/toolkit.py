"""vot-toolkit (Python, 0.7.x-0.9.0) variants of the VOT supervised metrics (EVALUATION.md §3.3, §7.2, §8.2).

These are *not* the target semantics (pysot's, in :mod:`siamrn_jax.eval.vot`); they reproduce what the
official Python toolkit reports, so that our numbers can be cross-checked against a ``vot analysis`` run.
Pure NumPy, float64 arithmetic (regions are stored as float32 first, as the toolkit stores them).

Boxes, polygons, codes, trajectories and bounds as :mod:`siamrn_jax.eval.vot.region` states them.

Differences from pysot (§3.3, §7.2, §8.2): box ``[x, y, w, h]`` covers ``round(w)`` columns from
``round(x)`` (numpy half-to-even rounding of every value), polygon vertices are rounded the same way and
horizontal edges add a crossing; the raster window is the union of both regions' integer bounds clipped
to the image; a code overlaps 0 with anything; accuracy/robustness are length-weighted per-sequence
means; EAO fragments are ``[init, failure)`` and the EAO interval is applied on 0-based curve indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from siamrn_jax.eval.vot.metrics import BURNIN, EAO_INTERVALS
from siamrn_jax.eval.vot.region import CODE_FAILURE, CODE_INIT, CODE_SKIP, code_value, is_code

__all__ = [
    "SENSITIVITY",
    "accuracy_robustness_toolkit",
    "eao_curve_toolkit",
    "eao_curve_toolkit_from_overlaps",
    "eao_from_curve_toolkit",
    "eao_toolkit",
    "region_overlap_toolkit",
    "region_overlaps_toolkit",
    "sequence_accuracy_toolkit",
]

#: AR-plot sensitivity of the vot-toolkit ``supervised_ar`` analysis.
SENSITIVITY = 30.0


# ------------------------------------------------------------------------------------------------
# Overlap (§3.3)
# ------------------------------------------------------------------------------------------------


def _region_data(region: Any) -> tuple[str, np.ndarray]:
    """Region -> ('box', [4]) or ('poly', [k, 2]), float32-stored values rounded half-to-even (float64)."""
    r = np.asarray(region, np.float32).reshape(-1)
    if r.size == 4:
        return "box", np.round(r).astype(np.float64)
    if r.size < 6 or r.size % 2:
        raise ValueError(f"a region needs 4 (box) or an even number >= 6 (polygon) of values, got {r.size}")
    return "poly", np.round(r).astype(np.float64).reshape(-1, 2)


def _is_empty(kind: str, d: np.ndarray) -> bool:
    if kind == "box":
        return bool(d[2] <= 0 or d[3] <= 0)
    x, y = d[:, 0], d[:, 1]
    return bool(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) == 0)


def _int_bounds(kind: str, d: np.ndarray) -> tuple[int, int, int, int]:
    """Inclusive integer bounds ``(left, top, right, bottom)`` of a (rounded) region."""
    if kind == "box":
        return int(d[0]), int(d[1]), int(d[0] + d[2] - 1), int(d[1] + d[3] - 1)
    return int(d[:, 0].min()), int(d[:, 1].min()), int(d[:, 0].max()), int(d[:, 1].max())


def _raster_box(d: np.ndarray, rb: tuple[int, int, int, int]) -> np.ndarray:
    l0, t0, r0, b0 = rb
    width, height = r0 - l0 + 1, b0 - t0 + 1
    mask = np.zeros((height, width), bool)
    x, y, w, h = (int(v) for v in d)
    if x > r0 or x + w - 1 < l0 or y > b0 or y + h - 1 < t0:
        return mask
    left, top = max(0, x - l0), max(0, y - t0)
    # The toolkit clips the relative right/bottom edge to the *absolute* window edge (a no-op unless the
    # window starts left of / above 0, which only happens without bounds).
    right = min(r0, x + w - 1 - l0, width - 1)
    bottom = min(b0, y + h - 1 - t0, height - 1)
    if right >= left and bottom >= top:
        mask[top : bottom + 1, left : right + 1] = True
    return mask


def _raster_polygon(p: np.ndarray, rb: tuple[int, int, int, int]) -> np.ndarray:
    """Scan-line raster of the rounded polygon ``p`` [k, 2] in the window ``rb``, vectorised over rows."""
    l0, t0, r0, b0 = rb
    width, height = r0 - l0 + 1, b0 - t0 + 1
    xi, yi = p[:, 0] - l0, p[:, 1] - t0
    xj, yj = np.roll(xi, 1), np.roll(yi, 1)  # edge (previous vertex -> current vertex)
    rows = np.arange(height, dtype=np.float64)[:, None]
    hit = (np.minimum(yi, yj) <= rows) & (rows <= np.maximum(yi, yj))  # [H, k]; horizontal edges too
    dy = yj - yi
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = np.where(dy != 0, xi + (rows - yi) / np.where(dy != 0, dy, 1.0) * (xj - xi), xi)
    big = np.iinfo(np.int64).max
    nodes = np.where(hit, np.trunc(cross), np.inf)
    nodes = np.sort(nodes, axis=1)
    count = hit.sum(axis=1)
    nodes = np.where(np.isfinite(nodes), nodes, 0).astype(np.int64)
    k = nodes.shape[1]
    cols = np.arange(width)
    r_all = np.arange(height)
    mask = np.zeros((height, width), bool)
    idx = np.zeros(height, np.int64)
    alive = count > 1
    for _ in range(2 * k + 1):  # each step advances idx by >= 1; at most k steps per row
        alive &= idx < count - 1
        if not alive.any():
            break
        left = nodes[r_all, np.minimum(idx, k - 1)]
        right = nodes[r_all, np.minimum(idx + 1, k - 1)]
        stop = alive & (left >= width)
        alive &= ~stop
        dup = alive & (left == right) & (idx < count - 2)
        fill = alive & ~dup & (right >= 0)
        lo = np.where(fill, np.maximum(left, 0), big)
        hi = np.minimum(right, width - 1)
        mask |= (cols[None, :] >= lo[:, None]) & (cols[None, :] <= hi[:, None])
        idx = np.where(dup, idx + 1, idx + 2)
    return mask


def _raster(kind: str, d: np.ndarray, rb: tuple[int, int, int, int]) -> np.ndarray:
    return _raster_box(d, rb) if kind == "box" else _raster_polygon(d, rb)


def region_overlap_toolkit(a: Any, b: Any, bounds: Sequence[float] | None = None) -> float:
    """vot-toolkit raster overlap (``vot.region.raster.calculate_overlap``) of two regions (§3.3).

    Args:
        a: box ``[x, y, w, h]``, polygon ``[x1, y1, ...]`` (>= 3 vertices) or a code.
        b: same.
        bounds: image size ``(W, H)`` -> the raster window is clipped to ``[0, W-1] x [0, H-1]``;
            ``None`` -> no clipping.

    Returns:
        float64 IoU of the two pixel rasters in [0, 1]: 0 if either region is a code, 1 if both regions
        are empty (zero width/height/area), 0 if the clipped window is degenerate (one column or row, or
        less) or both rasters are empty.
    """
    if is_code(a) or is_code(b):
        return 0.0
    ka, da = _region_data(a)
    kb, db = _region_data(b)
    if _is_empty(ka, da) and _is_empty(kb, db):
        return 1.0
    b1, b2 = _int_bounds(ka, da), _int_bounds(kb, db)
    union = (min(b1[0], b2[0]), min(b1[1], b2[1]), max(b1[2], b2[2]), max(b1[3], b2[3]))
    if bounds is not None:
        W, H = int(bounds[0]), int(bounds[1])
        rb = (max(0, union[0]), max(0, union[1]), min(W - 1, union[2]), min(H - 1, union[3]))
    else:
        rb = union
    if rb[0] >= rb[2] or rb[1] >= rb[3]:
        return 0.0
    m1, m2 = _raster(ka, da, rb), _raster(kb, db, rb)
    n_uni = np.count_nonzero(m1 | m2)
    if n_uni == 0:
        return 0.0
    return float(np.count_nonzero(m1 & m2)) / float(n_uni)


def region_overlaps_toolkit(
    trajectory: Sequence[Any], groundtruth: Sequence[Any], bounds: Sequence[float] | None = None
) -> np.ndarray:
    """Per-frame :func:`region_overlap_toolkit` of two equally long region lists -> float64 ``[N]``."""
    if len(trajectory) != len(groundtruth):
        raise ValueError(f"length mismatch: {len(trajectory)} vs {len(groundtruth)}")
    return np.array(
        [region_overlap_toolkit(p, g, bounds) for p, g in zip(trajectory, groundtruth, strict=True)],
        np.float64,
    )


# ------------------------------------------------------------------------------------------------
# Accuracy and robustness (§7.2)
# ------------------------------------------------------------------------------------------------


def _codes(trajectory: Sequence[Any]) -> np.ndarray:
    """Per-frame code (-1 for a region) -> int64 ``[N]``."""
    return np.array([-1 if (c := code_value(r)) is None else c for r in trajectory], np.int64)


def sequence_accuracy_toolkit(
    trajectory: Sequence[Any],
    groundtruth: Sequence[Any],
    image_size: tuple[float, float],
    burnin: int = BURNIN,
    ignore_unknown: bool = True,
) -> tuple[float, int]:
    """vot-toolkit ``compute_accuracy`` of one run: mean overlap over the frames kept.

    Args:
        trajectory: ``N`` regions/codes.
        groundtruth: ``N`` ground-truth regions.
        image_size: ``(W, H)`` (the toolkit's ``sequence.size``).
        burnin: frames ``i .. i + burnin - 1`` after every init frame ``i`` are dropped.
        ignore_unknown: drop skipped (code ``0``) frames.

    Returns:
        ``(accuracy, number of frames kept)``; ``(0.0, 0)`` if no frame is kept.
    """
    ov = region_overlaps_toolkit(trajectory, groundtruth, image_size)
    codes = _codes(trajectory)
    n = len(codes)
    keep = np.ones(n, bool)
    if ignore_unknown:
        keep &= codes != CODE_SKIP
    keep &= codes != CODE_FAILURE
    init = np.flatnonzero(codes == CODE_INIT)
    if init.size:
        t = np.arange(n)
        keep &= ~np.any((t[None, :] >= init[:, None]) & (t[None, :] < init[:, None] + burnin), axis=0)
    if not keep.any():
        return 0.0, 0
    return float(np.mean(ov[keep])), int(keep.sum())


def accuracy_robustness_toolkit(
    trajectories: Sequence[Sequence[Sequence[Any]]],
    groundtruths: Sequence[Sequence[Any]],
    image_sizes: Sequence[tuple[float, float]],
    burnin: int = BURNIN,
    sensitivity: float = SENSITIVITY,
) -> dict[str, Any]:
    """vot-toolkit ``supervised_average_ar``: length-weighted accuracy and robustness (§7.2).

    Args:
        trajectories: ``trajectories[s][r]`` = run ``r`` of sequence ``s`` (``N_s`` regions/codes).
        groundtruths: ``groundtruths[s]`` = ``N_s`` ground-truth regions.
        image_sizes: ``(W, H)`` per sequence (overlaps with bounds ``(W, H)``, window = the image).
        burnin: burn-in frames (10).
        sensitivity: AR-plot sensitivity (30).

    Returns:
        dict with ``accuracy`` (``sum_s A_s N_s / sum_s N_s``, ``A_s`` = mean over runs of the per-run
        accuracy), ``robustness`` (``sum_s F_s N_s / sum_s N_s``, ``F_s`` = mean failures per run),
        ``ar_point`` (``(exp(-sensitivity * robustness), accuracy)``, as the toolkit's aggregate computes
        it), and the per-sequence float64 ``[S]`` arrays ``sequence_accuracy``, ``sequence_failures``
        and int64 ``lengths`` (``N_s`` = length of the first run).
    """
    acc, fails, lens = [], [], []
    for trajs, gt, size in zip(trajectories, groundtruths, image_sizes, strict=True):
        if len(trajs) == 0:
            raise ValueError("every sequence needs at least one run")
        acc.append(np.mean([sequence_accuracy_toolkit(t, gt, size, burnin)[0] for t in trajs]))
        fails.append(np.mean([np.count_nonzero(_codes(t) == CODE_FAILURE) for t in trajs]))
        lens.append(len(trajs[0]))
    a, f, n = np.array(acc, np.float64), np.array(fails, np.float64), np.array(lens, np.int64)
    total = float(n.sum())
    accuracy = float(np.sum(a * n) / total) if total else float("nan")
    robustness = float(np.sum(f * n) / total) if total else float("nan")
    return {
        "accuracy": accuracy,
        "robustness": robustness,
        "ar_point": (float(np.exp(-sensitivity * robustness)), accuracy),
        "sequence_accuracy": a,
        "sequence_failures": f,
        "lengths": n,
    }


# ------------------------------------------------------------------------------------------------
# EAO (§8.2)
# ------------------------------------------------------------------------------------------------


def eao_curve_toolkit_from_overlaps(
    overlaps: Sequence[np.ndarray],
    failures: Sequence[Sequence[int]],
    inits: Sequence[Sequence[int]],
) -> np.ndarray:
    """vot-toolkit ``compute_eao_curve`` from per-run overlaps, failure and init frames (§8.2).

    Args:
        overlaps: one ``[N_run]`` array per run (every run of every sequence); NaN entries (codes) count
            as 0, as the toolkit's overlap of a code is 0.
        failures: failure frame indices of each run (ascending).
        inits: init frame indices of each run (ascending, the first is 0).

    Returns:
        float64 ``[L]`` curve, ``L`` = the longest fragment; index ``j`` = weighted mean over fragments
        alive at ``j`` of ``mean(fragment[1 .. j])`` (index 0: the fragments' first value, i.e. 0).
        Fragment ``k`` of a run with failures is ``o[init_k : failure_k]`` (failure frame excluded),
        zero-extended and alive everywhere; a trailing ``o[init_last:]`` exists only if there are more
        inits than failures and is alive over its own length; a run without failures is one such row.
        Every fragment has weight 1.
    """
    frags: list[np.ndarray] = []
    success: list[bool] = []
    for ov, fl, it in zip(overlaps, failures, inits, strict=True):
        o = np.nan_to_num(np.asarray(ov, np.float64), nan=0.0)
        fl, it = list(fl), list(it)
        if fl:
            for i in range(len(fl)):
                frags.append(o[it[i] : fl[i]])
                success.append(False)
            if len(it) > len(fl):
                frags.append(o[it[-1] :])
                success.append(True)
        else:
            frags.append(o)
            success.append(True)
    L = max(len(f) for f in frags)
    F = np.zeros((len(frags), L))
    alive = np.zeros((len(frags), L), bool)
    for r, (f, ok) in enumerate(zip(frags, success, strict=True)):
        F[r, : len(f)] = f
        alive[r] = True if not ok else np.arange(L) < len(f)
    means = F.copy()
    if L > 1:
        means[:, 1:] = np.cumsum(F[:, 1:], axis=1) / np.arange(1, L)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(means * alive, axis=0) / np.sum(alive, axis=0)


def eao_curve_toolkit(
    trajectories: Sequence[Sequence[Sequence[Any]]],
    groundtruths: Sequence[Sequence[Any]],
    image_sizes: Sequence[tuple[float, float]],
) -> np.ndarray:
    """vot-toolkit ``supervised_eao_curve`` over a dataset (§8.2).

    Args:
        trajectories: ``trajectories[s][r]`` = run ``r`` of sequence ``s``.
        groundtruths: ``groundtruths[s]`` = ``N_s`` ground-truth regions.
        image_sizes: ``(W, H)`` per sequence (overlaps with bounds ``(W, H)``, codes overlap 0).

    Returns:
        float64 curve as in :func:`eao_curve_toolkit_from_overlaps`.
    """
    ovs, fls, its = [], [], []
    for trajs, gt, size in zip(trajectories, groundtruths, image_sizes, strict=True):
        for t in trajs:
            codes = _codes(t)
            ovs.append(region_overlaps_toolkit(t, gt, size))
            fls.append(np.flatnonzero(codes == CODE_FAILURE).tolist())
            its.append(np.flatnonzero(codes == CODE_INIT).tolist())
    return eao_curve_toolkit_from_overlaps(ovs, fls, its)


def eao_from_curve_toolkit(curve: np.ndarray, interval: tuple[int, int] | str) -> float:
    """vot-toolkit ``supervised_eao_score``: ``mean(curve[low : high + 1])`` on **0-based** indices.

    Args:
        curve: curve from :func:`eao_curve_toolkit` (index ``j`` <-> pysot length ``j + 1``).
        interval: ``(low, high)`` or a key of :data:`~siamrn_jax.eval.vot.EAO_INTERVALS`; the slice is
            truncated at the end of the curve (NaN if nothing is left).
    """
    lo, hi = EAO_INTERVALS[interval] if isinstance(interval, str) else interval
    seg = np.asarray(curve, np.float64)[lo : hi + 1]
    return float(np.mean(seg)) if seg.size else float("nan")


def eao_toolkit(
    trajectories: Sequence[Sequence[Sequence[Any]]],
    groundtruths: Sequence[Sequence[Any]],
    image_sizes: Sequence[tuple[float, float]],
    interval: tuple[int, int] | str,
) -> float:
    """vot-toolkit EAO of a dataset (§8.2); arguments as in :func:`eao_curve_toolkit` and
    :func:`eao_from_curve_toolkit`."""
    return eao_from_curve_toolkit(eao_curve_toolkit(trajectories, groundtruths, image_sizes), interval)
