"""On-device relation-detector proposals from the BAN head's own predictions (SPEC 7.3-7.5).

From ``HNM_EPOCH`` (3) on, the official code runs the BAN head on (template, query), copies the 625
predicted boxes and scores to the host and picks positive / negative / hard-negative proposals there
(``proposals_target.py``, ``ohnm.py``). A host round trip in the middle of the step would stall the
accelerator, so we make the same choices with array operations inside the jitted step. The host versions
in ``siamrn_jax.data.targets`` stay the reference: ``tests/train/test_mining.py`` checks these against them.

Box formats: ``xywh`` = (x, y, w, h) top-left + size; ``xyxy`` = corners; query-crop pixels.
Shapes are per sample; the train step ``vmap``s over the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from siamrn_jax.data.targets import GROUP, NUM_HARD, NUM_NEGATIVE, NUM_POSITIVE, pair_groups
from siamrn_jax.geometry.iou import iou


def rect_iou(boxes_xywh: jax.Array, gt_xywh: jax.Array, eps: float = 1e-6) -> jax.Array:
    """IoU of [N, 4] (x, y, w, h) boxes with one [4] box (``geometry.iou`` with the official eps 1e-6)."""
    return iou(boxes_xywh, gt_xywh[None], eps)


def _first_k(key_values: jax.Array, valid: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Indices of the ``k`` valid entries with the smallest keys (ties: lower index first) and how many
    valid entries there are (capped at ``k``)."""
    order = jnp.argsort(jnp.where(valid, key_values, jnp.inf), stable=True)[:k]
    return order, jnp.minimum(jnp.sum(valid), k)


def positive_proposals(key: jax.Array, predicted: jax.Array, gt_xywh: jax.Array, gaussian: jax.Array):
    """16 positives: predicted boxes with IoU > 0.6 (at most 16, a uniformly random subset), then the first
    gaussian samples (the NumPy oracle: ``tests/train/target_oracle.py``).

    Args:
      key: PRNG key (the random subset).
      predicted: [N, 4] xywh predicted boxes.
      gt_xywh: [4] query ground truth.
      gaussian: [16, 4] xywh gaussian samples drawn by the data pipeline.

    Returns:
      [16, 4] xywh.
    """
    good = rect_iou(predicted, gt_xywh) > 0.6
    # A random permutation restricted to the good boxes: sort i.i.d. uniform keys.
    idx, count = _first_k(jax.random.uniform(key, good.shape), good, NUM_POSITIVE)
    rows = jnp.arange(NUM_POSITIVE)
    fill = gaussian[jnp.clip(rows - count, 0, NUM_POSITIVE - 1)]
    return jnp.where((rows < count)[:, None], predicted[idx], fill)


def negative_proposals(predicted: jax.Array, scores: jax.Array, gt_xywh: jax.Array) -> jax.Array:
    """48 negatives: ``ProposalTarget`` (IoU < 0.2, nearest centres first, zeros when short) with the top 24
    online hard negatives (IoU < 0.1, highest BAN foreground score first) written over rows 0..23
    (the NumPy oracle: ``tests/train/target_oracle.py``).

    The official "centre" helper returns half the box size instead of the centre (SPEC 7.4), which makes
    its ordering arbitrary; like the host version we implement the intended spatial ordering.

    Args:
      predicted: [N, 4] xywh predicted boxes.
      scores: [N] foreground probabilities of ``predicted``.
      gt_xywh: [4] query ground truth.

    Returns:
      [48, 4] xywh.
    """
    iou = rect_iou(predicted, gt_xywh)
    centre = predicted[:, :2] + predicted[:, 2:] / 2
    gt_centre = gt_xywh[:2] + gt_xywh[2:] / 2
    dist = jnp.sum(jnp.square(centre - gt_centre), axis=1)
    idx, count = _first_k(dist, iou < 0.2, NUM_NEGATIVE)
    rows = jnp.arange(NUM_NEGATIVE)
    out = jnp.where((rows < count)[:, None], predicted[idx], 0.0)
    hard, n_hard = _first_k(-scores, iou < 0.1, NUM_HARD)
    hard_rows = jnp.where((jnp.arange(NUM_HARD) < n_hard)[:, None], predicted[hard], out[:NUM_HARD])
    return out.at[:NUM_HARD].set(hard_rows)


def contrastive_pairs(
    positives: jax.Array,
    negatives: jax.Array,
    order: jax.Array,
    flip: jax.Array,
    strategy: str = "contrastive",
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The 64 pairs of one sample, 1:2:1 or one-way one-shot (``targets.contrastive_pairs`` with the
    permutation given; ``targets.pair_groups`` defines the strategies).

    Args:
      positives: [16, 4] boxes.
      negatives: [48, 4] boxes (same format).
      order: [4] int permutation of the groups (drawn by the data pipeline).
      flip: bool scalar, the batch's coin: group D pairs the negative support with the positives
        (contrastive only).
      strategy: one of ``targets.RD_PAIRS`` (static).

    Returns:
      support_index [64] int32 (0 template, 1 negative support), boxes [64, 4], labels [64] int32.
    """
    groups = pair_groups(strategy)
    d = negatives[2 * GROUP :]
    if strategy == "contrastive":
        d = jnp.where(flip, positives, d)
    boxes = jnp.stack([positives, negatives[:GROUP], negatives[GROUP : 2 * GROUP], d])[order]
    support = jnp.asarray([g[0] for g in groups], jnp.int32)[order]
    labels = jnp.asarray([g[1] for g in groups], jnp.int32)[order]
    return (
        jnp.repeat(support, GROUP),
        boxes.reshape(4 * GROUP, 4),
        jnp.repeat(labels, GROUP),
    )
