"""One-pass evaluation (OTB100, UAV123, LaSOT): success, precision and normalized precision.

Pure NumPy, float64 on the host, no file I/O (EVALUATION.md §1, §4, §10). Conventions:

* Boxes are ``[x, y, w, h]`` rows (top-left corner, width, height), float, as read from the annotation
  or result files; nobody shifts coordinates (the MATLAB 1-based numbers are kept as they are).
* Box centre is ``(x + (w - 1) / 2, y + (h - 1) / 2)`` in every OPE toolkit.
* Per-sequence curves use the **original** sequence length ``N`` as denominator, also when frames are
  dropped (LaSOT ``keep`` flags, invalid ground truth), so dropped/invalid frames count as misses for
  success. Success tests are strict (``IoU > θ``), precision tests non-strict (``d <= θ``).
* Thresholds are float64: success ``k * 0.05`` (k = 0..20, numpy ``arange`` values, so the 4th is
  0.15000000000000002), precision ``k`` pixels (k = 0..50), normalized precision ``k / 100``
  (k = 0..50, as pysot's ``np.arange(0, 51) / 100``).

``rules`` selects the toolkit whose per-frame rules are reproduced (§4.1-§4.3):

* ``'pysot'`` (the target; SiamRN's paper numbers): recorded frame-0 box kept; a frame is valid for
  success if ``gt.w > 0 and gt.h > 0`` (else IoU := -1, a miss) and valid for precision if both
  ground-truth centre coordinates are ``> 0`` (else distance := -1, a hit at every threshold). NaN
  predictions give NaN IoU/distance, i.e. misses. NaN ground truth: a miss for success, a hit for
  precision. IoU has no epsilon (0/0 = NaN, a miss).
* ``'otb_matlab'`` (official OTB MATLAB toolkit): bad predictions are first replaced by the previous
  frame's prediction (see ``matlab_fix_predictions``), then frame 0's prediction := ground truth; a
  frame is valid only if all four ground-truth numbers are ``> 0``; invalid frames get IoU -1 (miss) and
  distance -1 (hit). Normalized precision is not part of the OTB toolkit; it is computed with these
  same rules (as the LaSOT toolkit does).
* ``'lasot_matlab'`` (official LaSOT MATLAB toolkit): as ``'otb_matlab'``; ``keep`` carries
  ``1 - absent``.
* ``'got10k'`` (got10k 0.1.3 ``ExperimentOTB``): frame 0's prediction := ground truth, IoU with machine
  epsilon in the denominator, no invalid-ground-truth masking at all (zero rows give IoU 0 and the plain
  centre distance). Normalized precision is not defined there; it is computed without masking.

With ``keep`` (LaSOT mode), frames with ``keep[t] == 0`` are removed from both arrays after the
per-rule prediction fixes and before scoring, while ``N`` stays the denominator (§4.1, §10.3).

Dataset scores (``aggregate``) are the plain mean over sequences; with the MATLAB rules, sequences whose
whole curve sums to ``<= eps`` are dropped per curve before averaging (§4.2.4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from siamrn_jax.geometry.iou import box_centers as geometry_box_centers
from siamrn_jax.geometry.iou import center_error as geometry_center_error
from siamrn_jax.geometry.iou import iou as geometry_iou

Rules = Literal["pysot", "otb_matlab", "lasot_matlab", "got10k"]
RULES: tuple[str, ...] = ("pysot", "otb_matlab", "lasot_matlab", "got10k")

#: 21 success thresholds ``k * 0.05``, k = 0..20 (== ``np.arange(0, 1.05, 0.05)`` == ``linspace(0, 1, 21)``).
SUCCESS_THRESHOLDS: np.ndarray = np.arange(21, dtype=np.float64) * 0.05
#: 51 precision thresholds in pixels, 0..50.
PRECISION_THRESHOLDS: np.ndarray = np.arange(51, dtype=np.float64)
#: 51 normalized-precision thresholds ``k / 100``, k = 0..50 (pysot's ``np.arange(0, 51) / 100``).
NORM_PRECISION_THRESHOLDS: np.ndarray = np.arange(51, dtype=np.float64) / 100.0
#: Index of the reported point: 20 px for precision, 0.20 for normalized precision.
PRECISION_INDEX = 20
#: Index of the success rate at IoU threshold 0.5 in the 21-point curve.
SUCCESS_RATE_INDEX = 10

_GOT10K_EPS = float(np.finfo(float).eps)


def _as_boxes(boxes: np.ndarray | Sequence, name: str) -> np.ndarray:
    arr = np.array(boxes, dtype=np.float64, copy=True)
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name}: expected [N, 4] boxes (x, y, w, h), got shape {arr.shape}")
    return arr


def _check_rules(rules: str) -> None:
    if rules not in RULES:
        raise ValueError(f"rules must be one of {RULES}, got {rules!r}")


def overlap_ratio(rect1: np.ndarray, rect2: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """Continuous IoU of paired ``[x, y, w, h]`` boxes (pysot ``overlap_ratio`` semantics).

    ``I = max(0, min(x1+w1, x2+w2) - max(x1, x2)) * max(0, min(y1+h1, y2+h2) - max(y1, y2))``,
    ``IoU = I / (w1*h1 + w2*h2 - I + eps)``, then clipped to [0, 1]. NaN stays NaN (the clipping does not
    remove it; ``NaN > θ`` is then a miss). pysot uses ``eps = 0`` (0/0 gives NaN), got10k uses machine
    epsilon. No floating-point warning is emitted for 0/0.

    Args:
        rect1: ``[N, 4]`` (or ``[4]``) boxes ``[x, y, w, h]``.
        rect2: Boxes of the same shape as ``rect1``.
        eps: Added to the union in the denominator.

    Returns:
        ``[N]`` float64 IoUs in [0, 1] or NaN.
    """
    a = _as_boxes(rect1, "rect1")
    b = _as_boxes(rect2, "rect2")
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    return geometry_iou(a, b, eps)


def box_centers(boxes: np.ndarray) -> np.ndarray:
    """Centres ``(x + (w - 1) / 2, y + (h - 1) / 2)`` of ``[N, 4]`` boxes, as ``[N, 2]`` float64."""
    return geometry_box_centers(_as_boxes(boxes, "boxes"))


def center_error(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Euclidean distance between box centres, ``[N]`` float64 (no masking; NaN propagates).

    Args:
        gt: ``[N, 4]`` ground-truth boxes ``[x, y, w, h]``.
        pred: ``[N, 4]`` predicted boxes.
    """
    return geometry_center_error(_as_boxes(gt, "gt"), _as_boxes(pred, "pred"))


def matlab_fix_predictions(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """OTB/LaSOT MATLAB ``calcSeqErrRobust`` prediction fixes, returns a new array.

    For t = 1..N-1 (in order, so runs of bad rows propagate the last good box): the row is replaced by
    row t-1 when MATLAB's ``if all((isnan(r) | r(3) <= 0 | r(4) <= 0) & ~isnan(r_anno))`` holds, i.e.
    when (``w <= 0`` or ``h <= 0`` or the whole row is NaN) and the ground-truth row has no NaN. Then row
    0 := ground truth.
    """
    out = pred.copy()
    for t in range(1, len(out)):
        r = out[t]
        bad = bool(r[2] <= 0 or r[3] <= 0 or np.all(np.isnan(r)))
        if bad and not np.any(np.isnan(gt[t])):
            out[t] = out[t - 1]
    if len(out):
        out[0] = gt[0]
    return out


@dataclass(frozen=True)
class _Frames:
    """Per-frame scores after the rule-specific fixes and the ``keep`` filter (``-1`` = invalid gt)."""

    ious: np.ndarray
    dists: np.ndarray
    norm_dists: np.ndarray
    n_frames: int


def _frame_scores(gt, pred, keep, rules: str) -> _Frames:
    _check_rules(rules)
    g = _as_boxes(gt, "gt")
    p = _as_boxes(pred, "pred")
    if g.shape != p.shape:
        raise ValueError(f"gt and pred lengths differ: {g.shape} vs {p.shape}")
    n = len(g)
    if rules in ("otb_matlab", "lasot_matlab"):
        p = matlab_fix_predictions(g, p)
    elif rules == "got10k" and n:
        p[0] = g[0]
    if keep is not None:
        k = np.asarray(keep).reshape(-1)
        if k.shape[0] != n:
            raise ValueError(f"keep has {k.shape[0]} flags for {n} frames")
        sel = k == 1
        g, p = g[sel], p[sel]

    with np.errstate(divide="ignore", invalid="ignore"):
        if rules == "pysot":
            ious = -np.ones(len(g))
            m = np.sum(g[:, 2:] > 0, axis=1) == 2
            ious[m] = overlap_ratio(g[m], p[m])
            gc, pc = box_centers(g), box_centers(p)
            dists = -np.ones(len(g))
            m = np.sum(gc > 0, axis=1) == 2
            dists[m] = np.sqrt(np.sum((gc[m] - pc[m]) ** 2, axis=1))
            wh = g[:, 2:] + 1e-16
            gcn, pcn = gc / wh, pc / wh
            norm = -np.ones(len(g))
            m = np.sum(gcn > 0, axis=1) == 2
            norm[m] = np.sqrt(np.sum((gcn[m] - pcn[m]) ** 2, axis=1))
        elif rules == "got10k":
            ious = overlap_ratio(g, p, eps=_GOT10K_EPS)
            gc, pc = box_centers(g), box_centers(p)
            dists = np.sqrt(np.sum((gc - pc) ** 2, axis=1))
            wh = g[:, 2:] + 1e-16
            norm = np.sqrt(np.sum((gc / wh - pc / wh) ** 2, axis=1))
        else:  # MATLAB rules: valid iff all four gt numbers > 0
            m = np.sum(g > 0, axis=1) == 4
            ious = -np.ones(len(g))
            ious[m] = overlap_ratio(p[m], g[m])
            gc, pc = box_centers(g), box_centers(p)
            dists = -np.ones(len(g))
            dists[m] = np.sqrt(np.sum((gc[m] - pc[m]) ** 2, axis=1))
            norm = -np.ones(len(g))
            wh = g[m, 2:]
            norm[m] = np.sqrt(np.sum((gc[m] / wh - pc[m] / wh) ** 2, axis=1))
    return _Frames(ious=ious, dists=dists, norm_dists=norm, n_frames=n)


def _curve_gt(values: np.ndarray, thresholds: np.ndarray, n_frames: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        hits = np.greater(values[:, None], thresholds[None, :])
    return hits.sum(axis=0) / float(n_frames) if n_frames else np.zeros(len(thresholds))


def _curve_le(values: np.ndarray, thresholds: np.ndarray, n_frames: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        hits = np.less_equal(values[:, None], thresholds[None, :])
    return hits.sum(axis=0) / float(n_frames) if n_frames else np.zeros(len(thresholds))


def success_curve(gt, pred, *, keep=None, rules: Rules = "pysot") -> np.ndarray:
    """21-point success curve ``S(θ_k) = #{t : IoU_t > θ_k} / N``, ``θ_k = 0.05 k``.

    Args:
        gt: ``[N, 4]`` ground-truth boxes ``[x, y, w, h]`` (invalid rows and NaN allowed).
        pred: ``[N, 4]`` predicted boxes, frame 0 included as written by the tracker.
        keep: Optional ``[N]`` flags, 1 = target present (LaSOT ``1 - absent``); other frames are
            dropped but still counted in ``N``.
        rules: Which toolkit's per-frame rules to follow, see the module docstring.

    Returns:
        ``[21]`` float64 curve.
    """
    f = _frame_scores(gt, pred, keep, rules)
    return _curve_gt(f.ious, SUCCESS_THRESHOLDS, f.n_frames)


def precision_curve(gt, pred, *, keep=None, rules: Rules = "pysot") -> np.ndarray:
    """51-point precision curve ``P(k) = #{t : d_t <= k} / N``, k = 0..50 pixels (``d = -1`` is a hit).

    Args and conventions as ``success_curve``. Returns ``[51]`` float64; the precision score is
    index 20 (20 px).
    """
    f = _frame_scores(gt, pred, keep, rules)
    return _curve_le(f.dists, PRECISION_THRESHOLDS, f.n_frames)


def norm_precision_curve(gt, pred, *, keep=None, rules: Rules = "pysot") -> np.ndarray:
    """51-point normalized precision curve, thresholds ``k / 100`` (0..0.5).

    Both centres are divided component-wise by the ground-truth size (``w + 1e-16, h + 1e-16`` for
    pysot/got10k; plain ``w, h`` on valid frames for the MATLAB rules). Args as ``success_curve``.
    Returns ``[51]`` float64; the normalized precision is index 20 (threshold 0.20).
    """
    f = _frame_scores(gt, pred, keep, rules)
    return _curve_le(f.norm_dists, NORM_PRECISION_THRESHOLDS, f.n_frames)


@dataclass(frozen=True)
class OPEScores:
    """OPE curves and scores of one sequence, or their dataset mean (see ``aggregate``).

    Attributes:
        success_curve: ``[21]`` success curve over ``SUCCESS_THRESHOLDS``.
        precision_curve: ``[51]`` precision curve over ``PRECISION_THRESHOLDS`` (pixels).
        norm_precision_curve: ``[51]`` normalized precision curve over ``NORM_PRECISION_THRESHOLDS``.
        n: Number of frames (sequence) or of sequences (dataset).
    """

    success_curve: np.ndarray
    precision_curve: np.ndarray
    norm_precision_curve: np.ndarray
    n: int

    @property
    def success_auc(self) -> float:
        """Success score ("AUC"): plain mean of the 21 curve points (not a trapezoid integral)."""
        return float(np.mean(self.success_curve))

    @property
    def success_rate(self) -> float:
        """Success rate at IoU threshold 0.5 (curve index 10)."""
        return float(self.success_curve[SUCCESS_RATE_INDEX])

    @property
    def precision(self) -> float:
        """Precision score: curve value at 20 px (index 20)."""
        return float(self.precision_curve[PRECISION_INDEX])

    @property
    def norm_precision(self) -> float:
        """Normalized precision as pysot/pytracking/official LaSOT rank it: value at threshold 0.20."""
        return float(self.norm_precision_curve[PRECISION_INDEX])

    @property
    def norm_precision_auc(self) -> float:
        """Normalized precision *AUC variant*: mean of the 51 points over [0, 0.5] (LaSOT paper text).

        Computed from this curve (the chosen ``rules``); got10k master's LaSOT variant additionally floors
        the gt size at 1 and drops NaN-gt frames, which is not reproduced here.
        """
        return float(np.mean(self.norm_precision_curve))


def evaluate_sequence(gt, pred, *, keep=None, rules: Rules = "pysot") -> OPEScores:
    """All three OPE curves of one sequence (args as ``success_curve``); ``n`` = ``N`` frames."""
    f = _frame_scores(gt, pred, keep, rules)
    return OPEScores(
        success_curve=_curve_gt(f.ious, SUCCESS_THRESHOLDS, f.n_frames),
        precision_curve=_curve_le(f.dists, PRECISION_THRESHOLDS, f.n_frames),
        norm_precision_curve=_curve_le(f.norm_dists, NORM_PRECISION_THRESHOLDS, f.n_frames),
        n=f.n_frames,
    )


def _mean_curves(curves: np.ndarray, drop_all_zero: bool) -> np.ndarray:
    if drop_all_zero:
        curves = curves[curves.sum(axis=1) > np.finfo(float).eps]
    if len(curves) == 0:
        return np.zeros(curves.shape[1])
    return curves.mean(axis=0)


def aggregate(
    per_sequence: Mapping[str, OPEScores] | Sequence[OPEScores], *, rules: Rules = "pysot"
) -> OPEScores:
    """Dataset-level scores: plain mean over sequences, each sequence weighted equally.

    The mean curve's AUC equals the mean of per-sequence AUCs (and likewise for the points at index 20),
    so this matches pysot's "mean of per-sequence scores". With ``rules`` ``'otb_matlab'`` or
    ``'lasot_matlab'`` a sequence whose curve sums to ``<= eps`` is dropped from that curve's mean (the
    official plotting code's filter, applied per metric).

    Args:
        per_sequence: ``name -> OPEScores`` (or a sequence of them) from ``evaluate_sequence``.
        rules: Selects the MATLAB all-zero filter; otherwise no effect.

    Returns:
        ``OPEScores`` holding mean curves; ``n`` = number of sequences given.
    """
    _check_rules(rules)
    items = list(per_sequence.values()) if isinstance(per_sequence, Mapping) else list(per_sequence)
    if not items:
        raise ValueError("aggregate: no sequences")
    drop = rules in ("otb_matlab", "lasot_matlab")
    return OPEScores(
        success_curve=_mean_curves(np.stack([s.success_curve for s in items]), drop),
        precision_curve=_mean_curves(np.stack([s.precision_curve for s in items]), drop),
        norm_precision_curve=_mean_curves(np.stack([s.norm_precision_curve for s in items]), drop),
        n=len(items),
    )


def attribute_breakdown(
    per_sequence: Mapping[str, float] | Mapping[str, OPEScores],
    attributes: Mapping[str, Sequence[str]],
    *,
    rules: Rules = "pysot",
) -> dict[str, float] | dict[str, OPEScores]:
    """Per-attribute scores: the mean over the sequences carrying each attribute.

    Args:
        per_sequence: ``name -> float`` (any per-sequence score, e.g. AUC) or ``name -> OPEScores``.
        attributes: ``attribute -> sequence names``. Names absent from ``per_sequence`` raise
            ``KeyError``; an attribute with no sequence is left out of the result.
        rules: Passed to ``aggregate`` when values are ``OPEScores``.

    Returns:
        ``attribute -> mean float`` or ``attribute -> OPEScores`` (from ``aggregate``).
    """
    out: dict = {}
    for attr, names in attributes.items():
        names = list(names)
        if not names:
            continue
        vals = [per_sequence[n] for n in names]
        if isinstance(vals[0], OPEScores):
            out[attr] = aggregate(vals, rules=rules)
        else:
            out[attr] = float(np.mean(np.asarray(vals, dtype=np.float64)))
    return out
