"""VOT supervised ("baseline") evaluation: region overlap, restart protocol, accuracy, robustness, EAO.

Pure NumPy on the host (EVALUATION.md §3, §6-§8, §10), no file I/O, no compiled extension. pysot's
semantics (= SiamRN's paper numbers, = the legacy MATLAB "pooled" definitions) are the target.

Formats used throughout:

* **Box**: ``[x, y, w, h]`` (top-left corner, width, height), floats.
* **Polygon**: ``[x1, y1, ..., xk, yk]`` (VOT ground truth: k = 4, 8 numbers).
* **Region**: a box (4 numbers), a polygon (>= 6 numbers) or a **code** (VOT convention ``1`` = init,
  ``2`` = failure, ``0`` = skipped frame). Codes may be given as an ``int`` or as a 1-element sequence
  (pysot stores them as ``[1]``); every overlap with a code is NaN.
* **Trajectory**: list of regions, one per frame (frame index ``t`` 0-based).
* **Bounds / image size**: ``(W, H)``; the overlap window is ``[0, W] x [0, H]`` with *inclusive*
  integer pixel indices (so ``(W, H)`` includes one column/row beyond the image). pysot uses ``(W, H)``
  for the restart test and accuracy and ``(W - 1, H - 1)`` for EAO.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from siamrn_jax.geometry.boxes import polygon_to_box, pysot_init_box
from siamrn_jax.io.annotations import split_fields

__all__ = [
    "BURNIN",
    "CODE_FAILURE",
    "CODE_INIT",
    "CODE_SKIP",
    "EAO_INTERVALS",
    "SKIP_INITIALIZE",
    "SupervisedRun",
    "accuracy_overlaps",
    "accuracy_robustness",
    "continuous_overlap",
    "eao",
    "eao_from_curve",
    "eao_overlaps",
    "expected_overlap_curve",
    "expected_overlap_curve_from_overlaps",
    "expected_overlap_curves",
    "failure_frames",
    "format_vot_results",
    "is_code",
    "parse_vot_results",
    "polygon_to_center_size",
    "polygon_to_init_box",
    "region_overlap",
    "region_overlaps",
    "run_supervised",
    "vot_toolkit_robustness",
]

CODE_INIT = 1
CODE_FAILURE = 2
CODE_SKIP = 0
SKIP_INITIALIZE = 5
BURNIN = 10

#: Published EAO length intervals ``(N_lo, N_hi)`` (inclusive, 1-based sequence lengths; §8.1).
EAO_INTERVALS: dict[str, tuple[int, int]] = {
    "VOT2016": (108, 371),
    "VOT2017": (100, 356),
    "VOT2018": (100, 356),
    "VOT2019": (46, 291),
}

_FLT_MAX = float(np.finfo(np.float32).max)


# ------------------------------------------------------------------------------------------------
# Regions and codes
# ------------------------------------------------------------------------------------------------


def is_code(region: Any) -> bool:
    """True if ``region`` is a VOT code: an ``int`` or a 1-element sequence (``[1]``, ``[2]``, ``[0]``)."""
    if isinstance(region, (int, np.integer)):
        return True
    return np.size(region) == 1


def _code_value(region: Any) -> int | None:
    if not is_code(region):
        return None
    return int(np.asarray(region).reshape(-1)[0])


def _as_polygon_f32(region: Any) -> np.ndarray:
    """Region -> [k, 2] float32 vertices, as pysot's ``vot_overlap`` builds its C polygon.

    Box corners are ``x + w`` / ``y + h`` (computed in float64, then stored as float32).
    """
    r = np.asarray(region, np.float64).reshape(-1)
    if r.size == 4:
        x, y, w, h = r
        r = np.array([x, y, x + w, y, x + w, y + h, x, y + h])
    if r.size < 6 or r.size % 2:
        raise ValueError(f"a region needs 4 (box) or an even number >= 6 (polygon) of values, got {r.size}")
    return r.astype(np.float32).reshape(-1, 2)


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


# ------------------------------------------------------------------------------------------------
# Overlaps
# ------------------------------------------------------------------------------------------------


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
        x, y, w, h = r
        r = np.array([x, y, x + w, y, x + w, y + h, x, y + h])
    return r.reshape(-1, 2)


# ------------------------------------------------------------------------------------------------
# Supervised (restart) protocol
# ------------------------------------------------------------------------------------------------


class SupervisedRun:
    """The restart rule of the supervised experiment for one sequence and one run (pysot, SPEC §6): the
    one place that decides, frame by frame, whether the tracker is (re)initialised, run or skipped, and
    what the trajectory records. ``run_supervised`` drives one tracker with it; the tuner drives a row of
    a lockstep batch with it.

    Call :meth:`action` for frames 0, 1, 2, ... in order; for ``"track"`` frames, hand the prediction to
    :meth:`record` before the next frame.
    """

    def __init__(
        self,
        gt_polygons: Sequence[Any],
        image_size: tuple[float, float],
        skip_initialize: int = SKIP_INITIALIZE,
        failure_overlap: float = 0.0,
    ):
        self.gt = gt_polygons
        self.bounds = (float(image_size[0]), float(image_size[1]))
        self.skip_initialize, self.failure_overlap = skip_initialize, failure_overlap
        self.next_init = 0
        self.trajectory: list[int | list[float]] = []

    def action(self, t: int) -> str:
        """``"init"`` (frame ``t`` re-initialises; recorded as code 1), ``"skip"`` (tracker not called;
        code 0) or ``"track"`` (run the tracker, then :meth:`record`)."""
        if len(self.trajectory) != t:
            raise RuntimeError(f"frame {t} out of order: {len(self.trajectory)} frames recorded")
        if t == self.next_init:
            self.trajectory.append(CODE_INIT)
            return "init"
        if t < self.next_init:
            self.trajectory.append(CODE_SKIP)
            return "skip"
        return "track"

    def init_box(self, t: int) -> np.ndarray:
        """The float64 [4] box a re-initialisation on frame ``t`` starts from."""
        return polygon_to_init_box(self.gt[t])

    def record(self, t: int, pred: Any) -> None:
        """Frame ``t``'s prediction (a box or polygon): kept if its raster overlap with the ground truth
        exceeds ``failure_overlap``, else a failure (code 2) and a restart ``skip_initialize`` frames on."""
        box = [float(v) for v in np.asarray(pred, np.float64).reshape(-1)]
        if region_overlap(box, self.gt[t], self.bounds) > self.failure_overlap:
            self.trajectory.append(box)
        else:
            self.trajectory.append(CODE_FAILURE)
            self.next_init = t + self.skip_initialize


def run_supervised(
    init_fn: Callable[[int, np.ndarray], Any],
    track_fn: Callable[[int], Any],
    num_frames: int,
    gt_polygons: Sequence[Any],
    image_size: tuple[float, float],
    skip_initialize: int = SKIP_INITIALIZE,
    failure_overlap: float = 0.0,
) -> list[int | list[float]]:
    """VOT supervised experiment for one sequence and one run, as pysot/SiamRN run it (§6).

    Args:
        init_fn: ``init_fn(t, box)`` (re)initialises the tracker on frame ``t`` with the float64 ``[4]``
            box :func:`polygon_to_init_box` of ``gt_polygons[t]``; it must fully reset tracker state.
        track_fn: ``track_fn(t) -> box`` tracks frame ``t`` and returns ``[x, y, w, h]`` (or a polygon).
        num_frames: ``N``.
        gt_polygons: ``N`` ground-truth regions (8-value polygons or 4-value boxes).
        image_size: ``(W, H)``; the failure test uses the raster overlap with bounds ``(W, H)``.
        skip_initialize: re-initialise this many frames after a failure (5).
        failure_overlap: a prediction fails unless its overlap is ``> failure_overlap`` (0).

    Returns:
        List of ``N`` entries: ``1`` (init frame, tracker not run), ``2`` (failure), ``0`` (skipped
        frame, tracker not called), otherwise the prediction as a list of floats.
    """
    if len(gt_polygons) < num_frames:
        raise ValueError(f"{len(gt_polygons)} ground-truth regions for {num_frames} frames")
    run = SupervisedRun(gt_polygons, image_size, skip_initialize, failure_overlap)
    for t in range(num_frames):
        action = run.action(t)
        if action == "init":
            init_fn(t, run.init_box(t))
        elif action == "track":
            run.record(t, track_fn(t))
    return run.trajectory


def failure_frames(trajectory: Sequence[Any]) -> list[int]:
    """Frame indices with code ``2`` (pysot ``calculate_failures``)."""
    return [t for t, r in enumerate(trajectory) if _code_value(r) == CODE_FAILURE]


# ------------------------------------------------------------------------------------------------
# Accuracy and robustness
# ------------------------------------------------------------------------------------------------


def accuracy_overlaps(
    trajectory: Sequence[Any],
    groundtruth: Sequence[Any],
    image_size: tuple[float, float],
    burnin: int = BURNIN,
) -> np.ndarray:
    """pysot per-frame accuracy overlaps of one run (§7.1).

    Args:
        trajectory: ``N`` regions/codes (as :func:`run_supervised` returns).
        groundtruth: ground-truth regions (the first ``min(N, len)`` are used).
        image_size: ``(W, H)``; overlaps use bounds ``(W, H)``.
        burnin: frames ``i .. i + burnin - 1`` after every init frame ``i`` are excluded.

    Returns:
        float64 ``[min(N, len(groundtruth))]``; excluded frames (burn-in, codes) are NaN.
    """
    traj = list(trajectory)
    for i, r in enumerate(trajectory):
        if _code_value(r) == CODE_INIT:
            for j in range(i, min(i + burnin, len(traj))):
                traj[j] = CODE_SKIP
    n = min(len(traj), len(groundtruth))
    return region_overlaps(traj[:n], list(groundtruth)[:n], (float(image_size[0]), float(image_size[1])))


def accuracy_robustness(
    trajectories: Sequence[Sequence[Sequence[Any]]],
    groundtruths: Sequence[Sequence[Any]],
    image_sizes: Sequence[tuple[float, float]],
    burnin: int = BURNIN,
) -> dict[str, Any]:
    """pysot accuracy, lost number and robustness over a dataset (§7.1).

    Args:
        trajectories: ``trajectories[s][r]`` = run ``r`` of sequence ``s`` (a list of regions/codes).
            Every sequence must have the same number of runs.
        groundtruths: ``groundtruths[s]`` = ``N_s`` ground-truth regions.
        image_sizes: ``image_sizes[s]`` = ``(W, H)``.
        burnin: burn-in frames (10).

    Returns:
        dict with ``accuracy`` (frame-pooled mean of per-frame run means), ``lost_number`` (mean over runs
        of the total failures), ``robustness`` (``100 * lost_number / sum_s N_s``, pysot's printout),
        ``failures`` (``[S, R]`` int array) and ``frame_overlaps`` (per sequence, the per-frame run means,
        NaN where excluded).
    """
    runs = {len(t) for t in trajectories}
    if len(runs) != 1:
        raise ValueError(f"every sequence needs the same number of runs, got {sorted(runs)}")
    per_seq, fails, total_len = [], [], 0
    for trajs, gt, size in zip(trajectories, groundtruths, image_sizes, strict=True):
        ov = np.array([accuracy_overlaps(t, gt, size, burnin) for t in trajs])
        with _quiet():
            per_seq.append(np.nanmean(ov, axis=0))
        fails.append([len(failure_frames(t)) for t in trajs])
        total_len += len(gt)
    pooled = np.concatenate(per_seq) if per_seq else np.zeros(0)
    with _quiet():
        acc = float(np.nanmean(pooled)) if pooled.size else float("nan")
    fails_arr = np.array(fails, np.int64)
    lost = float(np.mean(fails_arr.sum(axis=0))) if fails_arr.size else 0.0
    return {
        "accuracy": acc,
        "lost_number": lost,
        "robustness": 100.0 * lost / total_len if total_len else float("nan"),
        "failures": fails_arr,
        "frame_overlaps": per_seq,
    }


def vot_toolkit_robustness(failures: Sequence[Sequence[int]] | np.ndarray, lengths: Sequence[int]) -> float:
    """vot-toolkit (Python 0.7-0.9) robustness: ``sum_s F_s N_s / sum_s N_s`` with ``F_s`` the mean over
    runs of the failure count of sequence ``s`` (§7.2). ``failures[s]`` lists the counts per run."""
    f = np.array([np.mean(np.asarray(x, np.float64)) for x in failures])
    n = np.asarray(lengths, np.float64)
    return float(np.sum(f * n) / np.sum(n))


def _quiet() -> warnings.catch_warnings:
    # np.nanmean over all-NaN slices ("Mean of empty slice") is expected: those frames stay excluded.
    return warnings.catch_warnings(action="ignore", category=RuntimeWarning)


# ------------------------------------------------------------------------------------------------
# EAO
# ------------------------------------------------------------------------------------------------


def eao_overlaps(
    trajectory: Sequence[Any], groundtruth: Sequence[Any], image_size: tuple[float, float]
) -> np.ndarray:
    """pysot EAO inputs of one run: overlaps without burn-in, bounds ``(W - 1, H - 1)`` -> float64 ``[N]``."""
    n = min(len(trajectory), len(groundtruth))
    bounds = (float(image_size[0]) - 1, float(image_size[1]) - 1)
    return region_overlaps(list(trajectory)[:n], list(groundtruth)[:n], bounds)


def expected_overlap_curve_from_overlaps(
    overlaps: Sequence[np.ndarray],
    failures: Sequence[Sequence[int]],
    lengths: Sequence[int] | None = None,
    run_weights: Sequence[float] | None = None,
    skip_initialize: int = SKIP_INITIALIZE,
    tags: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """pysot/legacy expected-overlap curve Φ from per-run overlaps and failures (§8.1).

    Args:
        overlaps: one float64 ``[N_run]`` array per run (every run of every sequence), NaN for codes.
        failures: the failure frame indices of each run.
        lengths: ground-truth length ``N`` of each run's sequence (default: ``len(overlaps[k])``).
        run_weights: per-run fragment weight factor (default 1; pysot's ``1 / #runs`` of the last
            sequence is a constant and cancels; pass ``1 / #runs of that sequence`` for the legacy rule).
        skip_initialize: re-init offset (5); a breakpoint ``f + 5`` is used only if ``f + 5 <= N``.
        tags: per run, the ``[N]`` 0/1 per-frame tag of its sequence (default: tag ``all``, all ones);
            every fragment's weight is multiplied by the fraction of its frames carrying the tag (pysot's
            per-tag EAO: ``sum(tag[q_k : q_(k+1) + 1]) / (q_(k+1) - q_k + 1)``, the last fragment over
            ``N - q_last``, a run without failures over its frames).

    Returns:
        float32 ``[L]`` with ``L = max N``: ``Φ[n - 1]`` = expected overlap for length ``n``, ``Φ[0] = 1``.
    """
    ovs = [np.asarray(o, np.float64) for o in overlaps]
    if lengths is None:
        lengths = [len(o) for o in ovs]
    if run_weights is None:
        run_weights = [1.0] * len(ovs)
    if tags is None:
        tags = [np.ones(n) for n in lengths]
    L = max(len(o) for o in ovs)
    rows, weights = [], []
    for ov, fl, n, rw, tag in zip(ovs, failures, lengths, run_weights, tags, strict=True):
        tag = np.asarray(tag, np.float64)
        if len(fl) == 0:
            row = np.full(L, np.nan)
            m = min(len(ov), L)
            row[:m] = ov[:m]
            rows.append(row)
            weights.append(rw * (float(tag[:m].sum()) / m if m else 0.0))
            continue
        points = [0] + [f + skip_initialize for f in fl if f + skip_initialize <= len(ov)]
        for k, q in enumerate(points):
            last = k == len(points) - 1
            if not last:
                frag = ov[q : points[k + 1] + 1].copy()
                row = np.zeros(L)
                w = float(tag[q : points[k + 1] + 1].sum()) / (points[k + 1] - q + 1)
            else:
                frag = ov[q:].copy()
                row = np.full(L, np.nan)
                w = float(tag[q : min(len(ov), n)].sum()) / (n - q + 1e-16)
            frag[np.isnan(frag)] = 0
            row[: len(frag)] = frag
            rows.append(row)
            weights.append(rw * w)
    F = np.array(rows)
    wts = np.array(weights, np.float64)
    phi = np.zeros(L, np.float32)
    phi[0] = 1
    if L > 1:
        csum = np.cumsum(F[:, 1:], axis=1)  # csum[:, i-1] = sum(F[:, 1..i])
        means = csum / np.arange(1, L)[None, :]
        alive = ~np.isnan(F[:, 1:])
        wm = np.where(alive, wts[:, None], 0.0)
        num = np.sum(np.where(alive, means * wts[:, None], 0.0), axis=0)
        den = np.sum(wm, axis=0)
        any_alive = alive.any(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            val = num / den
        phi[1:] = np.where(any_alive, val, 0.0).astype(np.float32)
    return phi


def expected_overlap_curve(
    trajectories: Sequence[Sequence[Sequence[Any]]],
    groundtruths: Sequence[Sequence[Any]],
    image_sizes: Sequence[tuple[float, float]],
    run_weighting: str = "pysot",
    tags: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Expected-overlap curve Φ over a dataset (§8.1).

    Args:
        trajectories: ``trajectories[s][r]`` = run ``r`` of sequence ``s``.
        groundtruths: ``groundtruths[s]`` = ``N_s`` ground-truth regions.
        image_sizes: ``(W, H)`` per sequence (overlaps use bounds ``(W - 1, H - 1)``).
        run_weighting: ``'pysot'`` (constant run weight; identical to ``'legacy'`` when every sequence has
            the same number of runs) or ``'legacy'`` (``1 / #runs`` of each sequence).
        tags: per sequence a ``[N_s]`` 0/1 per-frame tag (per-tag EAO); None: tag ``all``.

    Returns:
        float32 ``[max_s N_s]`` curve (index ``n - 1`` = length ``n``).
    """
    if tags is None:
        tags = [np.ones(len(gt)) for gt in groundtruths]
    return expected_overlap_curves(trajectories, groundtruths, image_sizes, {"": tags}, run_weighting)[""]


def expected_overlap_curves(
    trajectories: Sequence[Sequence[Sequence[Any]]],
    groundtruths: Sequence[Sequence[Any]],
    image_sizes: Sequence[tuple[float, float]],
    tags: Mapping[str, Sequence[np.ndarray]],
    run_weighting: str = "pysot",
) -> dict[str, np.ndarray]:
    """:func:`expected_overlap_curve` for several tags at once (name -> per-sequence ``[N_s]`` 0/1 masks);
    the overlaps and failures, the costly part, are computed once for all of them."""
    if run_weighting not in ("pysot", "legacy"):
        raise ValueError(f"unknown run_weighting {run_weighting!r}")
    ovs, fls, lens, rws, seq = [], [], [], [], []
    for s, (trajs, gt, size) in enumerate(zip(trajectories, groundtruths, image_sizes, strict=True)):
        for t in trajs:
            ovs.append(eao_overlaps(t, gt, size))
            fls.append(failure_frames(t))
            lens.append(len(gt))
            rws.append(1.0 if run_weighting == "pysot" else 1.0 / len(trajs))
            seq.append(s)
    return {
        name: expected_overlap_curve_from_overlaps(ovs, fls, lens, rws, tags=[masks[s] for s in seq])
        for name, masks in tags.items()
    }


def eao_from_curve(curve: np.ndarray, interval: tuple[int, int] | str) -> float:
    """EAO = mean of Φ(n) for lengths ``n`` in ``[N_lo, N_hi]`` (inclusive, 1-based), NaN entries skipped.

    Args:
        curve: Φ as returned by :func:`expected_overlap_curve` (index ``n - 1``).
        interval: ``(N_lo, N_hi)`` or a key of :data:`EAO_INTERVALS` (``'VOT2018'`` ...).
    """
    lo, hi = EAO_INTERVALS[interval] if isinstance(interval, str) else interval
    phi = np.asarray(curve)
    weight = np.zeros(len(phi))
    weight[lo - 1 : hi] = 1
    valid = ~np.isnan(phi)
    if not np.any(weight[valid]):  # the interval lies beyond the longest sequence: EAO is undefined
        return float("nan")
    return float(np.sum(phi[valid] * weight[valid]) / np.sum(weight[valid]))


def eao(
    trajectories: Sequence[Sequence[Sequence[Any]]],
    groundtruths: Sequence[Sequence[Any]],
    image_sizes: Sequence[tuple[float, float]],
    interval: tuple[int, int] | str,
    run_weighting: str = "pysot",
) -> float:
    """pysot EAO of a dataset (§8.1); arguments as in :func:`expected_overlap_curve` and
    :func:`eao_from_curve`."""
    curve = expected_overlap_curve(trajectories, groundtruths, image_sizes, run_weighting)
    return eao_from_curve(curve, interval)


# ------------------------------------------------------------------------------------------------
# Result text
# ------------------------------------------------------------------------------------------------


def format_vot_results(results: Sequence[Any]) -> str:
    """VOT result-file text (§2.7): one line per frame, ``1``/``2``/``0`` or the values printed ``%.4f``
    after a float32 cast (pysot ``vot_float2str``), comma-separated, each line ending in ``\\n``."""
    lines = []
    for r in results:
        c = _code_value(r)
        if c is not None:
            lines.append(f"{c:d}")
        else:
            lines.append(",".join(f"{float(np.float32(v)):.4f}" for v in np.asarray(r).reshape(-1)))
    return "".join(line + "\n" for line in lines)


def parse_vot_results(text: str) -> list[int | list[float]]:
    """Inverse of :func:`format_vot_results`: codes become ``int``, other lines lists of floats.

    Blank lines are skipped; values may be separated by commas, tabs or spaces.
    """
    out: list[int | list[float]] = []
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        parts = split_fields(s)
        if len(parts) == 1:
            out.append(int(float(parts[0])))
        else:
            out.append([float(p) for p in parts])
    return out
