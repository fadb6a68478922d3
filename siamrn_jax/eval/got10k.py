"""GOT-10k metrics (AO, SR0.5, SR0.75 and the 101-point success curve), EVALUATION.md §5.

Pure NumPy, float64 on the host, no file I/O. Reproduces the released got10k toolkit (0.1.3,
``ExperimentGOT10k.report`` with ``rect_iou(..., bound=resolution)``) for the val split:

1. Per sequence and per run: frames ``t >= 1`` only (frame 0 is the given init box). Both boxes are
   clipped to the image ``resolution = (W, H)`` first: ``x <- clip(x, 0, W)``, ``y <- clip(y, 0, H)``,
   then ``w <- clip(w, 0, W - x_clipped)``, ``h <- clip(h, 0, H - y_clipped)`` (toolkit quirk: a box
   with negative ``x`` keeps its width, so it is shifted rather than cropped). Continuous IoU with machine
   epsilon added to the union, clipped to [0, 1].
2. Only frames with ``cover[t] > 0`` (target visible) are kept.
3. The kept IoUs of all runs of a sequence are concatenated (per-sequence scores); the dataset score
   ("overall") pools the kept IoUs of all runs of all sequences (**frame-pooled**, not the mean of
   per-sequence AOs).
4. ``AO = mean(IoU)``, ``SR_θ = mean(IoU > θ)`` (strict), success curve over ``linspace(0, 1, 101)``,
   strict ``>``; ``curve[50] == SR0.5``.

Boxes are ``[x, y, w, h]`` rows (top-left corner, width, height). NaN predictions are not repaired (as in
the toolkit): a NaN IoU makes AO NaN, so a runner must never write NaN rows for GOT-10k.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from siamrn_jax.eval.ope import overlap_ratio

#: 101 success thresholds ``linspace(0, 1, 101)`` (== ``k * 0.01``).
SUCCESS_THRESHOLDS_101: np.ndarray = np.linspace(0.0, 1.0, 101)
_EPS = float(np.finfo(float).eps)


def clip_boxes_to_image(boxes: np.ndarray, resolution: tuple[float, float]) -> np.ndarray:
    """got10k's bound clipping of ``[N, 4]`` ``[x, y, w, h]`` boxes to ``resolution = (W, H)``.

    ``x, y`` are clipped to ``[0, W]``, ``[0, H]``; then ``w, h`` to ``[0, W - x]``, ``[0, H - y]`` with
    the clipped ``x, y`` (negative ``x`` keeps its width: shifted, not cropped). Returns a new float64
    array; the input is not modified (got10k's ``rect_iou`` modifies its inputs in place).
    """
    b = np.array(boxes, dtype=np.float64, copy=True)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"expected [N, 4] boxes, got shape {b.shape}")
    width, height = float(resolution[0]), float(resolution[1])
    b[:, 0] = np.clip(b[:, 0], 0, width)
    b[:, 1] = np.clip(b[:, 1], 0, height)
    b[:, 2] = np.clip(b[:, 2], 0, width - b[:, 0])
    b[:, 3] = np.clip(b[:, 3], 0, height - b[:, 1])
    return b


def bounded_iou(gt: np.ndarray, pred: np.ndarray, resolution: tuple[float, float] | None) -> np.ndarray:
    """got10k ``rect_iou``: optional bound clipping, continuous IoU with ``+eps``, clipped to [0, 1].

    Args:
        gt: ``[N, 4]`` boxes ``[x, y, w, h]``.
        pred: ``[N, 4]`` boxes.
        resolution: Image ``(W, H)``; ``None`` for no clipping.

    Returns:
        ``[N]`` float64 IoUs.
    """
    g = np.asarray(gt, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    if resolution is not None:
        g = clip_boxes_to_image(g, resolution)
        p = clip_boxes_to_image(p, resolution)
    return overlap_ratio(p, g, eps=_EPS)


def _as_runs(runs) -> list[np.ndarray]:
    if isinstance(runs, np.ndarray) and runs.ndim == 2:
        return [runs]
    arr_list = [np.asarray(r, dtype=np.float64) for r in runs]
    if arr_list and arr_list[0].ndim == 1:  # a single run given as a list of rows
        return [np.asarray(runs, dtype=np.float64)]
    return arr_list


def sequence_ious(
    gt: np.ndarray,
    runs: np.ndarray | Sequence[np.ndarray],
    cover: np.ndarray,
    resolution: tuple[float, float],
) -> np.ndarray:
    """Kept IoUs of one sequence: frames ``t >= 1`` with ``cover[t] > 0``, runs concatenated in order.

    Args:
        gt: ``[N, 4]`` ground-truth boxes ``[x, y, w, h]``.
        runs: One ``[N, 4]`` prediction array, or a list of them (1 or 3 runs).
        cover: ``[N]`` visibility labels (``cover.label``, 0 = invisible); frame 0's entry is ignored.
        resolution: Image ``(W, H)`` (``meta_info.ini`` ``resolution``).

    Returns:
        ``[R * K]`` float64 IoUs, K = number of kept frames.
    """
    g = np.asarray(gt, dtype=np.float64)
    c = np.asarray(cover).reshape(-1)
    if c.shape[0] != g.shape[0]:
        raise ValueError(f"cover has {c.shape[0]} entries for {g.shape[0]} frames")
    keep = c[1:] > 0
    out = []
    for r in _as_runs(runs):
        if r.shape != g.shape:
            raise ValueError(f"run shape {r.shape} differs from ground truth {g.shape}")
        out.append(bounded_iou(g[1:], r[1:], resolution)[keep])
    return np.concatenate(out) if out else np.zeros(0)


@dataclass(frozen=True)
class GOT10kScores:
    """GOT-10k scores of a set of IoUs.

    Attributes:
        ao: Average overlap, ``mean(IoU)`` (NaN if there are no frames).
        sr50: Success rate ``mean(IoU > 0.5)``.
        sr75: Success rate ``mean(IoU > 0.75)``.
        success_curve: ``[101]`` ``mean(IoU > θ)`` over ``SUCCESS_THRESHOLDS_101``.
        n_frames: Number of IoUs the scores are computed from.
    """

    ao: float
    sr50: float
    sr75: float
    success_curve: np.ndarray
    n_frames: int


def scores_from_ious(ious: np.ndarray) -> GOT10kScores:
    """AO, SR0.5, SR0.75 and the 101-point success curve of a 1-D array of IoUs (strict ``>``)."""
    u = np.asarray(ious, dtype=np.float64).reshape(-1)
    if u.size == 0:
        nan = float("nan")
        return GOT10kScores(nan, nan, nan, np.full(101, nan), 0)
    with np.errstate(invalid="ignore"):
        curve = np.mean(np.greater(u[:, None], SUCCESS_THRESHOLDS_101[None, :]), axis=0)
        return GOT10kScores(
            ao=float(np.mean(u)),
            sr50=float(np.mean(u > 0.5)),
            sr75=float(np.mean(u > 0.75)),
            success_curve=curve,
            n_frames=int(u.size),
        )


@dataclass(frozen=True)
class GOT10kResult:
    """Dataset result: ``overall`` (frame-pooled, the toolkit headline) and ``per_sequence`` scores."""

    overall: GOT10kScores
    per_sequence: dict[str, GOT10kScores]
    ious: dict[str, np.ndarray]

    @property
    def mean_sequence_ao(self) -> float:
        """Mean of per-sequence AOs — NOT the GOT-10k metric, only for comparison."""
        return float(np.mean([s.ao for s in self.per_sequence.values()]))


def evaluate(
    sequences: Mapping[str, tuple[np.ndarray, np.ndarray | Sequence[np.ndarray], np.ndarray, tuple]],
) -> GOT10kResult:
    """GOT-10k val evaluation of several sequences.

    Args:
        sequences: ``name -> (gt, runs, cover, resolution)`` with the shapes of ``sequence_ious``.

    Returns:
        ``GOT10kResult``; ``overall`` pools the kept IoUs of all runs of all sequences (in the mapping's
        order; the order does not change the scores).
    """
    ious = {name: sequence_ious(*args) for name, args in sequences.items()}
    per_seq = {name: scores_from_ious(u) for name, u in ious.items()}
    pooled = np.concatenate(list(ious.values())) if ious else np.zeros(0)
    return GOT10kResult(overall=scores_from_ious(pooled), per_sequence=per_seq, ious=ious)
