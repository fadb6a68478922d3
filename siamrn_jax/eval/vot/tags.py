"""Per-attribute VOT analysis: accuracy, robustness and EAO per visual-attribute tag (the paper's Figure 6).

VOT sequences tag every frame with five 0/1 visual attributes (``camera_motion``, ``illum_change``,
``motion_change``, ``size_change``, ``occlusion``); ``all`` is every frame and ``empty`` the frames
carrying none of the five. For a tag, over the frames carrying it:

- **accuracy**: the frame-pooled mean of the per-frame run-mean accuracy overlaps (burn-in and codes
  excluded exactly as for the overall accuracy, ``vot.accuracy_robustness``);
- **failures**: the mean over runs of the failures whose failure frame carries the tag, and
  **robustness** = 100 x failures / tagged frames (pysot's failures per 100 frames, restricted to the tag);
- **EAO**: pysot's per-tag expected average overlap, each fragment weighted by the fraction of its frames
  carrying the tag (EVALUATION.md §8.1, ``vot.expected_overlap_curve(..., tags=...)``).

For ``all`` these are exactly the overall accuracy, robustness and EAO. A tag no frame carries scores NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from siamrn_jax.eval import vot
from siamrn_jax.eval.benchmarks.vot import TAGS

TAG_NAMES = ("all", *TAGS, "empty")


class TagScore(NamedTuple):
    """One tag's scores over a dataset (see the module docstring)."""

    frames: int
    accuracy: float
    failures: float
    robustness: float
    eao: float


def frame_tags(tags: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The ``TAG_NAMES`` masks ([n] bool) of one sequence from its per-frame tags (missing tags: all 0)."""
    five = {t: np.zeros(n, bool) for t in TAGS}
    for t in TAGS:
        if t in tags:
            five[t][:] = np.asarray(tags[t], bool)[:n]
    any_tag = np.any(np.stack(list(five.values())), axis=0)
    return {"all": np.ones(n, bool), **five, "empty": ~any_tag}


def tag_scores(
    trajectories: Sequence[Sequence[Sequence[Any]]],
    groundtruths: Sequence[Sequence[Any]],
    image_sizes: Sequence[tuple[float, float]],
    tags: Sequence[Mapping[str, np.ndarray]],
    interval: tuple[int, int] | str,
) -> dict[str, TagScore]:
    """Accuracy, failures, robustness and EAO per tag.

    Args:
      trajectories, groundtruths, image_sizes: as ``vot.accuracy_robustness``.
      tags: per sequence its per-frame tags (``Sequence.tags``), completed by ``frame_tags``.
      interval: EAO interval, ``(N_lo, N_hi)`` or a key of ``vot.EAO_INTERVALS``.

    Returns:
      ``TAG_NAMES`` -> ``TagScore``.
    """
    masks = [frame_tags(t, len(gt)) for t, gt in zip(tags, groundtruths, strict=True)]
    ar = vot.accuracy_robustness(trajectories, groundtruths, image_sizes)
    runs = len(trajectories[0]) if trajectories else 1
    by_tag = {name: [m[name] for m in masks] for name in TAG_NAMES}
    curves = vot.expected_overlap_curves(trajectories, groundtruths, image_sizes, by_tag)
    out = {}
    for name in TAG_NAMES:
        frames = int(sum(m[name].sum() for m in masks))
        overlaps = np.concatenate(
            [fo[m[name][: len(fo)]] for fo, m in zip(ar["frame_overlaps"], masks, strict=True)]
        )
        valid = overlaps[~np.isnan(overlaps)]
        accuracy = float(valid.mean()) if valid.size else float("nan")
        failures = sum(
            sum(int(m[name][f]) for f in vot.failure_frames(t) if f < len(m[name]))
            for trajs, m in zip(trajectories, masks, strict=True)
            for t in trajs
        ) / max(runs, 1)
        eao = vot.eao_from_curve(curves[name], interval) if frames else float("nan")
        robustness = 100.0 * failures / frames if frames else float("nan")
        out[name] = TagScore(frames, accuracy, float(failures), robustness, eao)
    return out
