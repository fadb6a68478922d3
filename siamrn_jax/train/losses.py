"""Training losses of SiamRN (SPEC_OFFICIAL_SIAMRN.md §7.6), as pure, jit-able JAX functions.

All functions take model outputs and targets as arrays (channel-last layout) and return a float32 scalar:
model outputs of a lower precision (a bfloat16 model) are cast to float32 first, so log-softmax, the IoU
terms and the masked means never run in bfloat16.
Masked terms are computed with masked sums over a safe denominator (``max(count, 1)``), so an empty
selection contributes exactly 0 to the value *and* to the gradient (no NaN anywhere).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp

__all__ = [
    "cls_loss",
    "linear_iou_loss",
    "matching_loss",
    "select_cross_entropy",
    "total_loss",
]


def _f32(x: jax.Array) -> jax.Array:
    """``x`` promoted to at least float32 (float64 under x64 stays float64, for gradient checks)."""
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``values`` over ``mask``; 0 (with zero gradient) when the mask is empty.

    Args:
        values: float array of any shape.
        mask: bool array broadcastable to ``values``.

    Returns:
        Scalar float array.
    """
    mask = jnp.broadcast_to(mask, values.shape)
    # jnp.where (not values * mask) so that inf/NaN in unselected entries cannot leak into the sum or
    # its gradient.
    total = jnp.sum(jnp.where(mask, values, jnp.zeros_like(values)))
    count = jnp.sum(mask.astype(values.dtype))
    return total / jnp.maximum(count, 1.0)


def select_cross_entropy(log_probs: jax.Array, labels: jax.Array) -> jax.Array:
    """Select cross-entropy of pysot/SiamBAN (``select_cross_entropy_loss``).

    ``L = 0.5 * mean_{y=1}(-log_probs[..., 1]) + 0.5 * mean_{y=0}(-log_probs[..., 0])``; label -1 is
    ignored and a term with no selected element contributes 0.

    Note: the official code selects indices with ``nonzero().squeeze()``, which turns a selection of
    exactly one element into a 0-d tensor that ``get_cls_loss`` then treats as empty (returns 0). That is
    an accident of ``squeeze``; we implement the intended behaviour and average over the single element.

    Args:
        log_probs: ``[..., 2]`` log-probabilities (class 0 = background/negative, 1 = positive).
        labels: ``[...]`` integer labels in {-1, 0, 1}, same leading shape as ``log_probs``.

    Returns:
        Scalar float array.
    """
    labels = jnp.asarray(labels)
    loss_pos = _masked_mean(-log_probs[..., 1], labels == 1)
    loss_neg = _masked_mean(-log_probs[..., 0], labels == 0)
    return 0.5 * loss_pos + 0.5 * loss_neg


def cls_loss(cls_logits: jax.Array, label_cls: jax.Array) -> jax.Array:
    """BAN classification loss: select cross-entropy on ``log_softmax`` of the fused cls map.

    Args:
        cls_logits: ``[B, S, S, 2]`` raw classification logits (channel-last).
        label_cls: ``[B, S, S]`` integer labels in {-1, 0, 1}.

    Returns:
        Scalar float array.
    """
    return select_cross_entropy(jax.nn.log_softmax(_f32(cls_logits), axis=-1), label_cls)


def linear_iou_loss(loc: jax.Array, label_loc: jax.Array, label_cls: jax.Array) -> jax.Array:
    """BAN regression loss ("linear IoU", ``IOULoss`` of siamban) over positive points.

    With prediction (l, t, r, b) and target (l*, t*, r*, b*) in pixels,
    ``I = (min(l, l*) + min(r, r*)) * (min(t, t*) + min(b, b*))``,
    ``U = (l + r)(t + b) + (l* + r*)(t* + b*) - I`` and the loss is ``mean_{label=1}(1 - (I + 1) / (U + 1))``.

    The official code asserts that the batch has at least one positive point; we instead return 0 (with
    zero gradient) when there is none, so that a batch of only negative pairs cannot crash a jitted step.

    Args:
        loc: ``[B, S, S, 4]`` predicted (l, t, r, b) distances in pixels (channel-last).
        label_loc: ``[B, S, S, 4]`` target (l*, t*, r*, b*) distances in pixels.
        label_cls: ``[B, S, S]`` integer labels; only points labelled 1 contribute.

    Returns:
        Scalar float array.
    """
    loc, label_loc = _f32(loc), _f32(label_loc)
    l, t, r, b = (loc[..., i] for i in range(4))
    tl, tt, tr, tb = (label_loc[..., i] for i in range(4))
    pred_area = (l + r) * (t + b)
    target_area = (tl + tr) * (tt + tb)
    w_inter = jnp.minimum(l, tl) + jnp.minimum(r, tr)
    h_inter = jnp.minimum(t, tt) + jnp.minimum(b, tb)
    inter = w_inter * h_inter
    union = pred_area + target_area - inter
    losses = 1.0 - (inter + 1.0) / (union + 1.0)
    return _masked_mean(losses, jnp.asarray(label_cls) == 1)


def matching_loss(logits: jax.Array, labels: jax.Array, kind: Literal["ce", "mse"] = "ce") -> jax.Array:
    """Relation-detector matching loss.

    ``kind='ce'`` (the official default, ``TRAIN.CE_LOSS=True``): select cross-entropy on
    ``log_softmax(logits)``.

    ``kind='mse'`` (``TRAIN.MSE_LOSS``, unused officially): the official path is buggy (SPEC §12 item 10):
    it builds one-hot targets as [1, 0] for positives — the class order reversed relative to CE — and
    applies MSE to log-probabilities. We implement the intended loss instead: the mean over the selected
    pairs (label != -1) and both classes of ``(softmax(logits) - one_hot(label))**2`` with class 1 =
    positive, as in CE; 0 when nothing is selected.

    Args:
        logits: ``[B, P, 2]`` raw matching logits for P support/proposal pairs per image.
        labels: ``[B, P]`` integer labels in {0, 1}; -1 is ignored.
        kind: ``'ce'`` or ``'mse'``.

    Returns:
        Scalar float array.

    Raises:
        ValueError: for an unknown ``kind``.
    """
    logits = _f32(logits)
    if kind == "ce":
        return select_cross_entropy(jax.nn.log_softmax(logits, axis=-1), labels)
    if kind == "mse":
        labels = jnp.asarray(labels)
        probs = jax.nn.softmax(logits, axis=-1)
        target = jax.nn.one_hot(jnp.clip(labels, 0, 1), 2, dtype=probs.dtype)
        per_pair = jnp.mean((probs - target) ** 2, axis=-1)
        return _masked_mean(per_pair, labels >= 0)
    raise ValueError(f"unknown matching loss kind {kind!r} (expected 'ce' or 'mse')")


def total_loss(
    cls: jax.Array, loc: jax.Array, match: jax.Array, weights: Sequence[float] = (1.0, 1.0, 1.0)
) -> jax.Array:
    """Weighted sum of the three losses (officially ``CLS_WEIGHT = LOC_WEIGHT = 1``, matching unweighted).

    Args:
        cls: scalar classification loss.
        loc: scalar regression loss.
        match: scalar matching loss.
        weights: ``(w_cls, w_loc, w_match)``.

    Returns:
        Scalar ``w_cls * cls + w_loc * loc + w_match * match``.
    """
    w_cls, w_loc, w_match = weights
    return w_cls * cls + w_loc * loc + w_match * match
