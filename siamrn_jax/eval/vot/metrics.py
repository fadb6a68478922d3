"""VOT supervised metrics, pysot's semantics: accuracy, robustness (EVALUATION.md §7) and EAO (§8).

Inputs are trajectories as ``protocol.run_supervised`` records them and regions as
``siamrn_jax.eval.vot.region`` states.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from siamrn_jax.eval.vot.overlap import region_overlaps
from siamrn_jax.eval.vot.protocol import SKIP_INITIALIZE, failure_frames
from siamrn_jax.eval.vot.region import CODE_INIT, CODE_SKIP, code_value

BURNIN = 10

#: Published EAO length intervals ``(N_lo, N_hi)`` (inclusive, 1-based sequence lengths; §8.1).
EAO_INTERVALS: dict[str, tuple[int, int]] = {
    "VOT2016": (108, 371),
    "VOT2017": (100, 356),
    "VOT2018": (100, 356),
    "VOT2019": (46, 291),
}


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
        if code_value(r) == CODE_INIT:
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
