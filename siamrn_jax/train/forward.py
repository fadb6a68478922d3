"""The SiamRN training forward pass and losses for one (per-device) batch (SPEC 7.2-7.6).

Per sample the network sees four crops: template (127) and negative support (127) through one backbone
call, search (255) and query (255) through another (SPEC 7.2: the backbone runs on the concatenations,
the neck on each part separately, so its BatchNorm statistics are per part as in the official code).

BatchNorm running statistics move once per call of a train-mode BatchNorm, so the order of the calls is
part of the result; it is the official one: backbone on (template, negative support) then on (search,
query); the neck on template, search, query, negative support; the head on (template, search), then in
hard-negative epochs on (template, query); the non-local BatchNorms once over all pairs.

- BAN losses: head(template kernel, search) against the point labels (select-CE + linear IoU).
- Relation detector: support RoIs (template box on the template features, negative-support box on the
  negative-support features) against 64 proposal RoIs on the query features, labelled 1:2:1
  (``mining.contrastive_pairs``), matching loss on the logits. ``rd_pairs="one_way"`` (ablation): the
  template is the only support (``targets.pair_groups``); the negative-support crop still goes through
  the backbone and neck (same BatchNorm batches) but no RoI is pooled on it.
- Hard-negative epochs (``hnm=True``): the head also runs on (template, query); its boxes and scores pick
  the proposals on device (``mining``). The head's outputs there are constants (the official code converts
  them to NumPy), but its BatchNorm statistics move, as they do officially.

Batch layout (dict of arrays, leading batch axis B; images raw BGR 0-255 float32 NHWC; boxes in the
pixels of their own crop):

=================  ===============  =====================================================
key                shape            meaning
=================  ===============  =====================================================
template           [B,127,127,3]    template crop
template_box       [B,4]            xyxy target box in the template crop
neg_support        [B,127,127,3]    negative-support crop
neg_box            [B,4]            xyxy box in the negative-support crop
search             [B,255,255,3]    search crop (BAN losses only)
label_cls          [B,25,25]        int32 point labels in {-1, 0, 1}
label_loc          [B,25,25,4]      float32 (l, t, r, b)
query              [B,255,255,3]    query crop (RD proposals)
query_box          [B,4]            xyxy query GT box
pos_gauss          [B,16,4]         xywh gaussian positive proposals (host-drawn)
neg_uniform        [B,48,4]         xywh uniform negative proposals (host-drawn, pre-HNM epochs)
group_order        [B,4]            int32 permutation of the four pair groups
flip               [B]              bool, the batch's coin for group D (same for every sample)
index              [B]              int32 global sample index (seeds the on-device random choices)
pos_proposals      [B,16,4]         optional xywh: the RD positives to use instead of sampling / mining
neg_proposals      [B,48,4]         optional xywh: the RD negatives (both or neither; the mining head pass
                                    still runs in hard-negative epochs, its BatchNorm updates count)
=================  ===============  =====================================================
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from siamrn_jax.geometry.boxes import xywh_to_xyxy, xyxy_to_xywh
from siamrn_jax.geometry.score_map import decode_boxes
from siamrn_jax.models.interface import Architecture, BNTrain
from siamrn_jax.models.layers import accum_dtype
from siamrn_jax.models.neck import center_crop
from siamrn_jax.train import losses, mining


class LossConfig(NamedTuple):
    """Static loss settings (hashable: part of the compiled step's identity)."""

    cls_weight: float = 1.0
    loc_weight: float = 1.0
    match_weight: float = 1.0
    match_kind: str = "ce"  # 'ce' (official) or 'mse' (intended form of the unused official option)


def mining_boxes(loc: jax.Array, stride: int, instance_size: int) -> jax.Array:
    """The head's predicted boxes as the official training selects from them: [B, S*S, 4] (x, y, w, h),
    **not clipped** to the crop (``GetMultidectTarget._convert_bbox(type='train_lt')``, multidect_target.py
    lines 97-120); IoU tests against the query box see boxes that leave the crop as they are."""
    return xyxy_to_xywh(decode_boxes(loc, stride, instance_size))


def pooling_rois(boxes_xywh: jax.Array, instance_size: int) -> jax.Array:
    """Proposal (x, y, w, h) -> the RoIs the official training pools: corners clipped to [0, instance_size]
    (``GetPrroiPoolFeature(type='search')``, get_prroi_pool.py lines 29-41). This covers the gaussian
    positives and uniform negatives too, which may extend past the crop; all-zero boxes stay zero."""
    return jnp.clip(xywh_to_xyxy(boxes_xywh), 0.0, float(instance_size))


def _backbone_pair(
    m: Architecture, a: jax.Array, b: jax.Array, bn: BNTrain, backbone_trainable: bool, stem_trainable: bool
) -> tuple[jax.Array, ...]:
    """Backbone on concat(a, b) (one call: its train-mode BatchNorms see both halves), per level
    [2B, H, W, C]."""
    feats = m.backbone(
        jnp.concatenate([a, b]).astype(m.dtype),
        train_stem=stem_trainable and backbone_trainable,
        train_layers=bn.backbone,
    )
    if not backbone_trainable:
        # Frozen phase: nothing may flow into the backbone; this also lets XLA drop its backward pass.
        feats = jax.lax.stop_gradient(feats)
    return feats


def _encode(m: Architecture, batch: dict[str, jax.Array], bn: BNTrain, backbone_trainable: bool, stem: bool):
    """Neck features (template, search, query, negative support), per level [B, H, W, C], with the
    BatchNorm calls in the official order (module docstring)."""
    n = batch["template"].shape[0]
    zn = _backbone_pair(m, batch["template"], batch["neg_support"], bn, backbone_trainable, stem)
    xq = _backbone_pair(m, batch["search"], batch["query"], bn, backbone_trainable, stem)
    first = lambda feats: tuple(f[:n] for f in feats)  # noqa: E731
    second = lambda feats: tuple(f[n:] for f in feats)  # noqa: E731
    zf = m.neck(first(zn), bn.neck)
    xf = m.neck(first(xq), bn.neck)
    qf = m.neck(second(xq), bn.neck)
    nf = m.neck(second(zn), bn.neck)
    return zf, xf, qf, nf


def _rd_proposals(m, batch: dict[str, jax.Array], key: jax.Array, mined, acc) -> tuple[jax.Array, jax.Array]:
    """The relation detector's positive [B, 16, 4] and negative [B, 48, 4] xywh proposals: the batch's
    explicit ones; else, in hard-negative epochs (``mined``: the head's output on the query), picked from
    the head's boxes and scores on device; else the host-drawn gaussian / uniform ones."""
    if "pos_proposals" in batch:
        return batch["pos_proposals"], batch["neg_proposals"]
    if mined is None:
        return batch["pos_gauss"], batch["neg_uniform"]
    mined_loc, mined_cls = mined.loc.astype(acc), mined.cls.astype(acc)
    pred = jax.lax.stop_gradient(mining_boxes(mined_loc, m.stride, m.instance_size))
    scores = jax.lax.stop_gradient(jax.nn.softmax(mined_cls, axis=-1)[..., 1]).reshape(pred.shape[:2])
    gt = xyxy_to_xywh(batch["query_box"])
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(batch["index"])
    positives = jax.vmap(mining.positive_proposals)(keys, pred, gt, batch["pos_gauss"])
    return positives, jax.vmap(mining.negative_proposals)(pred, scores, gt)


def train_forward(
    m: Architecture,
    batch: dict[str, jax.Array],
    key: jax.Array,
    *,
    backbone_trainable: bool,
    hnm: bool,
    loss_cfg: LossConfig,
    stem_trainable: bool = False,
    frozen: tuple[str, ...] = (),
    rd_pairs: str = "contrastive",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Total loss and metrics of one batch; call through ``model.apply(..., method=train_forward,
    mutable=['batch_stats'])``.

    Args:
      m: the bound model.
      batch: see the module docstring.
      key: PRNG key for the on-device random choices; per sample it is folded with ``batch['index']`` so
        the draws do not depend on how the batch is split over devices.
      backbone_trainable: layer2-4 train (BN batch statistics, gradients) or are frozen.
      hnm: hard-negative epochs: proposals from the head's predictions on the query.
      loss_cfg: loss weights and matching-loss kind.
      frozen: top-level modules that never train (``train.frozen``): their BatchNorms stay in eval mode
        and nothing flows into them (SiamRN-Nano trains its relation detector on a frozen NanoTrack).
      stem_trainable: conv1/bn1/layer1 train along with layer2-4 (never in the official recipe, which starts
        from an ImageNet backbone; for models trained from scratch such as demo_resnet).
      rd_pairs: the RD training pairs, ``"contrastive"`` (official 1:2:1) or ``"one_way"``
        (``targets.pair_groups``; ``train.rd_pairs``).

    Returns:
      (loss, metrics), float32 scalars for float32 and bfloat16 models (float64 for a float64 one);
      metrics ``cls``, ``loc``, ``match``, ``match_acc``.
    """
    backbone_trainable = backbone_trainable and "backbone" not in frozen
    bn = BNTrain(
        backbone=backbone_trainable, neck="neck" not in frozen, head="head" not in frozen, relation=True
    )
    zf, xf, qf, nf = _encode(m, batch, bn, backbone_trainable, stem_trainable)
    kernel = tuple(center_crop(f, m.template_crop) for f in zf)

    # Mixed precision: the model returns float32 maps and logits already (SiamRN docstring); the casts make
    # the float32 losses, box decoding and mining independent of that contract (float64 stays float64).
    acc = accum_dtype(m.dtype)
    head = m.ban_head(kernel, xf, bn=bn)
    cls_l = losses.cls_loss(head.cls.astype(acc), batch["label_cls"])
    loc_l = losses.linear_iou_loss(head.loc.astype(acc), batch["label_loc"], batch["label_cls"])

    # The mining pass runs in hard-negative epochs even when the batch brings its proposals: its
    # BatchNorm statistics move (the official head sees (template, query) there). No gradient flows through
    # it (the official code takes its outputs to NumPy): stopped at its inputs, so that autodiff does not
    # even linearise it.
    sg = jax.lax.stop_gradient
    mined = m.ban_head(tuple(map(sg, kernel)), tuple(map(sg, qf)), bn=bn) if hnm else None
    positives, negatives = _rd_proposals(m, batch, key, mined, acc)
    support_index, boxes, labels = jax.vmap(
        lambda p, n, o, f: mining.contrastive_pairs(p, n, o, f, rd_pairs)
    )(positives, negatives, batch["group_order"], batch["flip"])

    support_t = m.pool_proposals(zf, batch["template_box"][:, None], bn)
    proposals = m.pool_proposals(qf, pooling_rois(boxes, m.instance_size), bn)
    # The support terms (the non-local and local detectors' projections of the support RoI) are computed
    # once per distinct support, not once per pair as the official code does on its per-pair concatenation:
    # the same rows through the same linear maps (124 ms of the paper model's 3.5 s phase-b CPU step).
    if rd_pairs == "one_way":  # every pair's support is the template RoI (support_index all 0)
        cache = m.prepare_support(support_t)  # [B, 1, ...], broadcast against the [B, R, ...] proposals
    else:
        support_n = m.pool_proposals(nf, batch["neg_box"][:, None], bn)
        both = m.prepare_support(
            tuple(jnp.concatenate([t, n], axis=1) for t, n in zip(support_t, support_n, strict=True))
        )  # [B, 2, ...]: template, negative support
        use_neg = support_index == 1  # [B, R]

        def pick(x: jax.Array) -> jax.Array:
            which = use_neg.reshape(use_neg.shape + (1,) * (x.ndim - 2))
            return jnp.where(which, x[:, 1:], x[:, :1])

        cache = jax.tree.map(pick, both)
    logits = m.relate(None, proposals, bn, cache).astype(acc)
    match_l = losses.matching_loss(logits, labels, loss_cfg.match_kind)

    total = losses.total_loss(
        cls_l, loc_l, match_l, (loss_cfg.cls_weight, loss_cfg.loc_weight, loss_cfg.match_weight)
    )
    match_acc = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(acc))
    return total, {"cls": cls_l, "loc": loc_l, "match": match_l, "match_acc": match_acc}
