"""The SiamRN tracker as two pure functions: ``init`` and ``step`` (SPEC section 9).

Both work on a batch of N independent sequences (N = 1 for one video); the network runs batched and the
post-processing is written for one sequence and ``vmap``-ed. Crops are made on the host
(``siamrn_jax.tracking.crop``) from ``state.center`` / ``state.size``; nothing else leaves the device.

Per frame (official ``SiamBANMultiTracker.track``):
  1. network: search features, BAN head, 625 proposals from the fused loc map, relation-detector match
     probabilities, refined cls (``SiamRN.track_forward``);
  2. score = softmax(refined cls)[..., 1]; boxes decoded around the crop centre;
  3. scale / aspect-ratio change penalty, cosine window, argmax;
  4. centre += offset / scale_z; size <- size (1 - lr) + box_size lr with lr = penalty * score * LR;
  5. clip centre to the image and size to [10, image side].
Conventions: ``siamrn_jax.geometry.boxes`` (centre = x + (w - 1) / 2 at init; output x = cx - w / 2); the
official file:line of each one is listed in ``docs/conventions.md``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from siamrn_jax.geometry.score_map import points
from siamrn_jax.tracking.params import TrackerParams, check_fits


class TrackState(NamedTuple):
    """Per-sequence tracker state; every leaf has a leading sequence axis N.

    Attributes:
      center: [N, 2] (cx, cy) in frame pixels.
      size: [N, 2] (w, h) in frame pixels.
      image_hw: [N, 2] (height, width) of the frames, for clipping.
      kernel: per level [N, k, k, C] template kernels of the BAN head (7x7 for the paper model, the whole
        8x8 template map for NanoTrack).
      support: per level [N, 7, 7, C] template RoI of the relation detector (empty without one).
      support_cache: precomputed template halves of the relation detector (``SupportCache``) or None.
    """

    center: jax.Array
    size: jax.Array
    image_hw: jax.Array
    kernel: tuple[jax.Array, ...]
    support: tuple[jax.Array, ...]
    support_cache: Any


class StepOutput(NamedTuple):
    """Per-frame results, each with a leading sequence axis N (S = score-map side, 25 for the paper model).

    Attributes:
      box: [N, 4] (x, y, w, h) in frame pixels (pysot output convention).
      best_score: [N] foreground probability of the chosen cell (refined cls).
      best_index: [N] chosen cell, row-major in the S x S map.
      cls: [N, S, S, 2] the cls logits the scores come from: refined by the relation detector (official
        ``outputs['cls']`` of ``track``, NHWC), or the first head pass when the relation detector is off.
      p_match: [N, S*S] relation-detector match probabilities (official ``outputs['matching_scores']``),
        row-major over cells; None when the relation detector is off.
    """

    box: jax.Array
    best_score: jax.Array
    best_index: jax.Array
    cls: jax.Array
    p_match: jax.Array | None


def template_box(size: np.ndarray, s_z: np.ndarray, exemplar_size: int) -> np.ndarray:
    """The relation detector's template RoI, official ``cropped_gt_bbox`` (SPEC 9.1).

    (x1, y1, x2, y2) in template-crop pixels, centred at ``exemplar_size / 2`` = 63.5 (the official init;
    not the crop's pixel centre (127 - 1) / 2 = 63), of size ``size * exemplar_size / s_z``. Computed on the
    host in float64 and rounded to float32 once, like the official NumPy -> float32 tensor copy.

    Args: size [N, 2] target (w, h); s_z [N] the rounded template window side.  Returns: [N, 4] float64.
    """
    size = np.asarray(size, np.float64)
    c = exemplar_size / 2
    wh = size * (exemplar_size / np.asarray(s_z, np.float64))[:, None]
    return np.concatenate([c - wh / 2, c + wh / 2], axis=-1)


def pixels(crop: jax.Array) -> jax.Array:
    """Crops as the network reads them: uint8 crops (as ``crop.subwindow`` cuts them) become float32 here,
    inside the jitted program, so the host ships a quarter of the bytes; float crops pass unchanged."""
    return crop.astype(jnp.float32) if jnp.issubdtype(crop.dtype, jnp.integer) else crop


def init(
    variables: Any,
    z_crop: jax.Array,
    box: jax.Array,
    center: jax.Array,
    size: jax.Array,
    image_hw: jax.Array,
    *,
    model: Any,
    params: TrackerParams,
) -> TrackState:
    """Template step.

    Args:
      variables: model variables.
      z_crop: [N, 127, 127, 3] template crops (raw BGR or RGB, uint8 or float: ``pixels``).
      box: [N, 4] template RoI (``template_box``).
      center: [N, 2] target centre (x + (w - 1) / 2, y + (h - 1) / 2).
      size: [N, 2] target (w, h).
      image_hw: [N, 2] frame (height, width).
      model, params: static (``params`` must fit the model: ``TrackerParams.for_model``).

    Returns:
      The initial ``TrackState``.
    """
    check_fits(model, params)
    t = model.apply(variables, pixels(z_crop), box, method="encode_template")
    cache = None
    if (
        params.relation and params.precompute_support
    ):  # leading [N, 1]: broadcast over the proposals of each sequence
        cache = model.apply(variables, tuple(s[:, None] for s in t.support), method="prepare_support")
    return TrackState(center, size, image_hw, t.kernel, t.support, cache)


def _cosine_window(n: int) -> np.ndarray:
    """Outer product of ``np.hanning(n)`` (zero at the borders), flattened row-major."""
    return np.outer(np.hanning(n), np.hanning(n)).reshape(-1).astype(np.float32)


def post_process(score, loc, center, size, image_hw, params: TrackerParams, stride: int, hyper=None):
    """One sequence: score [S*S], loc [S, S, 4] -> new (center, size), output box, best score/index.

    ``hyper``: this sequence's (penalty_k, window_influence, lr) as a [3] array, or None for ``params``'
    (tuning tracks several trials' values in one lockstep batch).
    """
    if hyper is None:
        penalty_k, window_influence, lr_rate = params.penalty_k, params.window_influence, params.lr
    else:
        penalty_k, window_influence, lr_rate = hyper[0], hyper[1], hyper[2]
    s = loc.shape[0]
    # Cell points relative to the crop centre: (8 j - 96, 8 i - 96) for the paper model.
    rel = jnp.asarray(points(s, stride, params.instance_size) - params.instance_size // 2).reshape(-1, 2)
    loc = loc.reshape(-1, 4)
    x1, y1 = rel[:, 0] - loc[:, 0], rel[:, 1] - loc[:, 1]
    x2, y2 = rel[:, 0] + loc[:, 2], rel[:, 1] + loc[:, 3]
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1

    pad = params.context_amount * (size[0] + size[1])
    s_z = jnp.sqrt((size[0] + pad) * (size[1] + pad))
    scale_z = params.exemplar_size / s_z

    def sz(a, b):
        p = (a + b) * 0.5
        return jnp.sqrt((a + p) * (b + p))

    def change(r):
        return jnp.maximum(r, 1.0 / r)

    s_c = change(sz(w, h) / sz(size[0] * scale_z, size[1] * scale_z))
    r_c = change((size[0] / size[1]) / (w / h))
    penalty = jnp.exp(-(r_c * s_c - 1) * penalty_k)
    pscore = penalty * score
    pscore = pscore * (1 - window_influence) + jnp.asarray(_cosine_window(s)) * window_influence
    best = jnp.argmax(pscore)
    box = jnp.stack([cx[best], cy[best], w[best], h[best]]) / scale_z
    lr = penalty[best] * score[best] * lr_rate
    new_cx = box[0] + center[0]
    new_cy = box[1] + center[1]
    new_w = size[0] * (1 - lr) + box[2] * lr
    new_h = size[1] * (1 - lr) + box[3] * lr
    img_h, img_w = image_hw[0], image_hw[1]
    new_cx = jnp.clip(new_cx, 0.0, img_w)
    new_cy = jnp.clip(new_cy, 0.0, img_h)
    # pysot _bbox_clip: max(10, min(w, W)), so a frame narrower than 10 px still gives 10 (jnp.clip gives W).
    new_w = jnp.maximum(params.min_size, jnp.minimum(new_w, img_w))
    new_h = jnp.maximum(params.min_size, jnp.minimum(new_h, img_h))
    out_box = jnp.stack([new_cx - new_w / 2, new_cy - new_h / 2, new_w, new_h])
    return jnp.stack([new_cx, new_cy]), jnp.stack([new_w, new_h]), out_box, score[best], best


def first_pass(m, kernel, x_crop):
    """(cls, loc) of the BAN head alone: the tracker with the relation detector switched off.

    A method for ``model.apply(variables, kernel, x_crop, method=first_pass)``.
    """
    head = m.ban_head(kernel, m.encode_search(x_crop))
    return head.cls, head.loc


def step(
    variables: Any,
    state: TrackState,
    x_crop: jax.Array,
    hyper: jax.Array | None = None,
    *,
    model: Any,
    params: TrackerParams,
) -> tuple[TrackState, StepOutput]:
    """One frame for N sequences.

    Args:
      variables: model variables.
      state: ``TrackState`` (the crops were cut around ``state.center`` with side round(s_x)).
      x_crop: [N, 255, 255, 3] search crops (uint8 or float: ``pixels``).
      hyper: optional [N, 3] float32 per-sequence (penalty_k, window_influence, lr) replacing ``params``'
        (``python -m siamrn_jax.tune`` tracks several trials' values in one lockstep batch); None: the
        values of ``params`` as compile-time constants (the program every tracker runs).
      model, params: static.

    Returns:
      (next state, ``StepOutput``).
    """
    check_fits(model, params)
    x_crop = pixels(x_crop)
    p_match = None
    if params.relation:
        out = model.apply(
            variables,
            state.kernel,
            state.support,
            x_crop,
            state.support_cache,
            params.reuse_corr,
            method="track_frame",
        )
        cls, loc, p_match = out.cls_refined, out.loc, out.p_match
    else:
        cls, loc = model.apply(variables, state.kernel, x_crop, method=first_pass)
    n, s = cls.shape[0], cls.shape[1]
    score = jax.nn.softmax(cls.reshape(n, s * s, 2), axis=-1)[..., 1]
    if hyper is None:
        center, size, box, best_score, best = jax.vmap(
            lambda sc, lc, c, z, hw: post_process(sc, lc, c, z, hw, params, model.stride)
        )(score, loc, state.center, state.size, state.image_hw)
    else:
        center, size, box, best_score, best = jax.vmap(
            lambda sc, lc, c, z, hw, hp: post_process(sc, lc, c, z, hw, params, model.stride, hp)
        )(score, loc, state.center, state.size, state.image_hw, hyper)
    return state._replace(center=center, size=size), StepOutput(box, best_score, best, cls, p_match)
