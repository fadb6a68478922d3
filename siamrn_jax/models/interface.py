"""The architecture interface: the staged API every network provides, the types its stages share, and
what an architecture registers (``ArchSpec``: its class, config builder, tracker presets, ``.pth`` mapping).

Every architecture (``siamrn_jax.models.registry``) is a Flax module satisfying ``Architecture``; the
tracker, evaluation, training (also its ``backbone`` and ``neck``: see ``Architecture``), benchmarks,
exporters and converter read nothing else of it. Each stage is called as ``model.apply(variables, ...,
method="<stage>")``. All tensors are NHWC, images raw BGR 0-255; box conventions:
``siamrn_jax.geometry.boxes``. Shapes below use B (batch), S (score-map side), C (channels), R
(proposals per image); "per level" means a tuple with one entry per feature level.

Adding an architecture: ``docs/adding_an_architecture.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from siamrn_jax.geometry.score_map import proposal_boxes
from siamrn_jax.models.ban_head import HeadOutput
from siamrn_jax.models.relation_detector import SupportCache

Levels = tuple[jax.Array, ...]


class BNTrain(NamedTuple):
    """Which BatchNorms use batch statistics (a static, hashable switch per stage).

    ``backbone`` covers layer2-4 only: conv1/bn1/layer1 stay in eval mode for the whole official training.
    The default (all False) is inference.
    """

    backbone: bool = False
    neck: bool = False
    head: bool = False
    relation: bool = False


EVAL = BNTrain()


class TemplateFeatures(NamedTuple):
    """Output of ``encode_template``.

    Attributes:
      kernel: per level [B, 7, 7, C] centre crops of the neck output (the BAN head's template input),
        computation dtype.
      full: per level [B, 15, 15, C] uncropped neck output, computation dtype.
      support: per relation-detector level (``SiamRN.relation_levels``) [B, 7, 7, C] float32 PrRoIPool of
        ``full`` over the template box (RD support RoI).
    """

    kernel: Levels
    full: Levels
    support: Levels


class TrackOutput(NamedTuple):
    """Per-frame network outputs (``track_forward``), batch B (1 when tracking one sequence); all float32
    whatever the computation dtype.

    Attributes:
      cls: [B, S, S, 2] first-pass (unrefined) fused cls logits.
      loc: [B, S, S, 4] fused (l, t, r, b) in crop pixels.
      proposals: [B, S*S, 4] clipped (x1, y1, x2, y2) proposal boxes, row-major over cells.
      rd_logits: [B, S*S, 2] relation-detector logits.
      p_match: [B, S*S] softmax(rd_logits)[..., 1].
      cls_refined: [B, S, S, 2] cls after the refinement module.
    """

    cls: jax.Array
    loc: jax.Array
    proposals: jax.Array
    rd_logits: jax.Array
    p_match: jax.Array
    cls_refined: jax.Array


def relation_frame(
    m, kernel: Levels, support: Levels, x, cache, reuse_corr: bool, bn: BNTrain
) -> TrackOutput:
    """The per-frame network of any architecture with a relation detector (``SiamRN.track_frame``,
    ``NanoTrack.track_frame``), on the bound module ``m``: search features, first head pass, one
    proposal per cell, their RoIs, match probabilities, refined cls."""
    search = m.encode_search(x, bn)
    first = m.ban_head(kernel, search, bn=bn)
    b, s = first.cls.shape[0], first.cls.shape[1]
    boxes = proposal_boxes(first.loc, m.stride, m.instance_size)
    rois = m.pool_proposals(search, boxes, bn)
    if cache is None:
        support = tuple(jnp.broadcast_to(t[:, None], r.shape) for t, r in zip(support, rois, strict=True))
    logits = m.relate(support, rois, bn, cache)
    p_match = jax.nn.softmax(logits, axis=-1)[..., 1]
    match_map = p_match.reshape(b, s, s)
    if reuse_corr:
        cls_refined = m.refine(first.cls_corr, match_map, bn)
    else:
        cls_refined = m.ban_head(kernel, search, match_map, bn).cls
    return TrackOutput(first.cls, first.loc, boxes, logits, p_match, cls_refined)


@runtime_checkable
class Architecture(Protocol):
    """The staged network every architecture provides (``SiamRN``, ``NanoTrack``).

    Geometry attributes (fields, class variables or properties): ``arch`` (its registry name), ``stride``
    (feature stride in crop pixels), ``exemplar_size`` / ``instance_size`` (template / search crop sides),
    ``score_size`` (S), ``template_crop`` (side of the head's template kernel), ``levels`` (feature levels,
    one entry each in every per-level tuple), ``channels`` (C), ``has_relation`` (a relation detector and
    refinement module: ``pool_proposals``, ``prepare_support``, ``relate``, ``refine`` and ``track_frame``
    are usable), ``default_preset`` (the ``tracking.params.PRESETS`` name it tracks with by default;
    None: the preset named as ``arch``, NanoTrack's official config: ``tracking.params.own_preset``),
    ``roi_size`` (PrRoIPool side) and ``dtype`` (computation dtype; parameters stay float32).

    Training (``siamrn_jax.train.forward``) also calls, inside ``apply``, ``backbone(img, train_stem=...,
    train_layers=...)`` (per level features) and ``neck(feats, train)``: submodules made in ``setup``,
    which an unbound module does not have yet, so they are not members here.
    """

    arch: str
    stride: int
    exemplar_size: int
    instance_size: int
    score_size: int
    template_crop: int
    levels: Any
    channels: int
    has_relation: bool
    default_preset: str | None
    roi_size: int
    dtype: Any

    def encode_template(self, z: jax.Array, box: jax.Array, bn: BNTrain = ...) -> TemplateFeatures:
        """z [B, 127, 127, 3], box [B, 4] (x1, y1, x2, y2) template RoI -> ``TemplateFeatures``."""
        ...

    def encode_search(self, x: jax.Array, bn: BNTrain = ...) -> Levels:
        """x [B, 255, 255, 3] -> per level search features [B, H, W, C]."""
        ...

    def ban_head(
        self, kernel: Levels, search: Levels, match_map: jax.Array | None = None, bn: BNTrain = ...
    ) -> HeadOutput:
        """cls [B, S, S, 2], loc [B, S, S, 4] (float32) and the cls correlations; ``match_map`` [B, S, S]
        refines cls."""
        ...

    def refine(self, cls_corr: Levels, match_map: jax.Array, bn: BNTrain = ...) -> jax.Array:
        """Refined cls [B, S, S, 2] from ``HeadOutput.cls_corr`` and a [B, S, S] match map."""
        ...

    def pool_proposals(self, search: Levels, boxes: jax.Array, bn: BNTrain = ...) -> Levels:
        """boxes [B, R, 4] clipped (x1, y1, x2, y2) search-crop pixels -> per relation-detector level
        [B, R, roi, roi, C'] float32."""
        ...

    def prepare_support(self, support: Levels) -> SupportCache:
        """Relation-detector support terms of support RoIs, reusable by ``relate``."""
        ...

    def relate(
        self, support: Levels | None, proposals: Levels, bn: BNTrain = ..., cache: SupportCache | None = None
    ) -> jax.Array:
        """Relation-detector logits [..., 2] (index 1 = same target)."""
        ...

    def track_frame(
        self,
        kernel: Levels,
        support: Levels,
        x: jax.Array,
        cache: SupportCache | None = None,
        reuse_corr: bool = False,
        bn: BNTrain = ...,
    ) -> TrackOutput:
        """The per-frame network for B sequences (``relation_frame``)."""
        ...

    def track_forward(
        self, template: TemplateFeatures, x: jax.Array, reuse_corr: bool = False
    ) -> TrackOutput:
        """``track_frame`` from ``TemplateFeatures``."""
        ...

    def __call__(self, z: jax.Array, box: jax.Array, x: jax.Array, bn: BNTrain = ...) -> Any:
        """Template + one search frame through every stage (initialises the parameters)."""
        ...

    def init(self, *args, **kwargs) -> Any: ...

    def apply(self, *args, **kwargs) -> Any: ...

    def clone(self, **kwargs) -> Any: ...


# Layout kinds a ``TorchMapping`` rule names (``siamrn_jax.convert.mapping.KINDS`` turns each into its
# per-leaf transforms): Conv2d without / with bias, Linear, BatchNorm2d, a bare ``nn.Parameter``.
LAYOUTS = ("conv", "conv_bias", "linear", "bn", "vector")


@dataclasses.dataclass(frozen=True)
class TorchMapping:
    """How an architecture's official PyTorch state dicts map onto its Flax variables.

    The Flax tree mirrors the PyTorch module paths, so the mapping is a table of module kinds.

    Attributes:
      modules: (regex on the PyTorch module path, anchored at both ends; layout kind of ``LAYOUTS``), first
        match wins.
      prefixes: Flax top-level module -> PyTorch prefix where the two differ (NanoTrack's ``ban_head``).
      provides: source kind -> the top-level Flax modules a file of that kind holds (the rest of the model
        keeps its fresh initialisation and is reported).
      detect: the source kind of a state dict (keys as in the file), or None when it is not this
        architecture's; the default architecture's is the fallback and never returns None.
      default_arch: the architecture a state dict of this mapping converts into without a config.
      unused: PyTorch top-level modules its files hold that the forward pass never uses (reported ignored).
      adapt: (kind, state dict, target variables) -> (state dict with the model's keys, ignored entries),
        for source kinds whose keys are not the model's (pysot's backbone-only ``resnet50.model``).
    """

    modules: tuple[tuple[str, str], ...]
    provides: Mapping[str, tuple[str, ...]]
    detect: Callable[[Mapping[str, Any]], str | None]
    default_arch: Callable[[Mapping[str, Any]], str]
    prefixes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    unused: tuple[str, ...] = ()
    adapt: Callable[[str, Mapping[str, Any], Mapping[str, Any]], tuple[dict[str, Any], list[str]]] | None = (
        None
    )


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """One architecture's registration (``siamrn_jax.models.registry``), written beside its model.

    Attributes:
      name: the config's / model.json's ``model.arch``.
      model_class: its Flax module class (satisfies ``Architecture``).
      build: its config builder: model fields (the ``model`` section without ``arch``) -> the model.
      presets: tracker presets it brings, name -> ``TrackerParams`` field values (``tracking.params.PRESETS``
        holds those of every architecture; any model may track with any of them).
      torch: its ``.pth`` mapping.
      addon_modules: the top-level modules an add-on checkpoint of it holds (``convert.addon``: the parts
        trained here on top of third-party weights); empty when it has no add-ons.
      frozen_bn_stats: (model, variables, z) -> ``batch_stats`` subtrees to merge per top-level module, for
        BatchNorms that the all-train-mode forward pass leaves in eval mode (``checkpoint.init_variables``'s
        calibration of random weights); None when there are none.
    """

    name: str
    model_class: type
    build: Callable[..., Any]
    presets: Mapping[str, Mapping[str, Any]]
    torch: TorchMapping
    addon_modules: tuple[str, ...] = ()
    frozen_bn_stats: Callable[[Any, Any, jax.Array], dict[str, Any]] | None = None
