"""SiamRN: Siamese Relation Network (Cheng et al., CVPR 2021) as a staged Flax module.

Submodules (and parameter-tree prefixes, mirroring the official ``ModelBuilder`` state dict):
``backbone`` (ResNet-50 atrous), ``neck`` (AdjustAllLayer), ``head`` (MultiBAN), ``multi_det``
(MultiDetector).

Stages, each called with ``model.apply(variables, ..., method=SiamRN.<stage>)``:

1. ``encode_template(z, box)``: template crop -> 7x7 head kernels, full 15x15 maps, support RoIs.
2. ``encode_search(x)``: search crop -> 31x31 features per level.
3. ``ban_head(kernels, search, match_map=None)``: fused cls/loc maps (+ the cls correlations).
4. ``pool_proposals(search, boxes)``: PrRoIPool of proposal boxes on the search features.
5. ``relate(support, proposals)``: relation-detector logits (``prepare_support`` caches the support
   terms for reuse across proposals and frames).
6. ``refine(cls_corr, match_map)``: refined cls from stored correlations (exact speed-up of rerunning 3).

``track_frame`` / ``track_forward`` compose 2-6 into the per-frame network of the official tracker.
All tensors are NHWC; images are raw BGR 0-255. Box conventions: ``siamrn_jax.geometry.boxes``.

Mixed precision (``dtype=jnp.bfloat16``): convolutions, correlations and matmuls compute in bfloat16 with
float32 parameters (Flax's ``param_dtype`` default: checkpoints load and save unchanged). Float32 are: the
BatchNorm statistics and normalisation, the non-local softmax, PrRoIPool (it promotes its inputs, so the
pooled RoIs are float32), the level fusions and ``exp`` of the BAN head, and so every network output the
tracker and the losses read: cls / loc maps, proposal boxes, relation-detector logits and match
probabilities. Intermediate features (``encode_search``, template kernels, ``cls_corr``) are bfloat16.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from siamrn_jax.geometry.score_map import score_size
from siamrn_jax.models import relation_detector
from siamrn_jax.models.backbone import ResNetAtrous
from siamrn_jax.models.ban_head import HeadOutput, MultiBAN
from siamrn_jax.models.interface import (
    EVAL,
    ArchSpec,
    BNTrain,
    Levels,
    TemplateFeatures,
    TorchMapping,
    TrackOutput,
    relation_frame,
)
from siamrn_jax.models.layers import Dtype
from siamrn_jax.models.neck import AdjustAllLayer, center_crop
from siamrn_jax.models.relation_detector import HEADS, MultiDetector, SupportCache
from siamrn_jax.ops.prroi_pool import prroi_pool

# Backbone taps a SiamRN level can be (pysot's used_layers: layer2, layer3, layer4 = the paper's C3, C4, C5).
BACKBONE_LEVELS = (2, 3, 4)


def ablation_problem(levels, rd_levels, rd_heads) -> str | None:
    """Why a choice of ``levels`` / ``rd_levels`` / ``rd_heads`` (``SiamRN`` fields) builds no model, in
    one line, or None when it is valid: ``levels`` a non-empty increasing subset of (2, 3, 4),
    ``rd_levels`` None or a non-empty increasing subset of ``levels``, ``rd_heads`` a non-empty subset of
    ("global", "local", "patch") in that order, without repeats."""

    def increasing_subset(name: str, got, allowed) -> str | None:
        got = tuple(got)
        if not got or any(x not in allowed for x in got) or list(got) != sorted(set(got)):
            return f"model.{name}={got!r}: expected a non-empty increasing subset of {tuple(allowed)}"
        return None

    problem = increasing_subset("levels", levels, BACKBONE_LEVELS)
    if problem is None and rd_levels is not None:
        problem = increasing_subset("rd_levels", rd_levels, tuple(levels))
        if problem:  # the relation detector pools its RoIs from the neck's features
            problem += " (the levels of model.levels)"
    if problem is None:
        heads = (rd_heads,) if isinstance(rd_heads, str) else tuple(rd_heads)
        ordered = all(h in HEADS for h in heads) and list(heads) == sorted(set(heads), key=HEADS.index)
        if isinstance(rd_heads, str) or not heads or not ordered:
            problem = f"model.rd_heads={rd_heads!r}: expected a non-empty subset of {HEADS} in that order"
    return problem


class SiamRN(nn.Module):
    """The SiamRN network.

    Attributes:
      backbone_blocks, backbone_widths, stem_width: ResNet geometry
        (ResNet-50: (3, 4, 6, 3), (64, 128, 256, 512), 64).
      channels: neck / head / RoI width C (256).
      levels: backbone levels used (2, 3, 4).
      template_crop: side of the template kernel crop (7; the official 2021 snapshot's 8 is a bug).
      roi_size: PrRoIPool output side (7).
      stride: feature stride in crop pixels (8); PrRoIPool uses spatial scale 1 / stride.
      exemplar_size: template crop side (127); the tracker's template geometry reads it from here.
      instance_size: search crop side (255); proposals are clipped to [0, instance_size].
      dtype: computation dtype, ``jnp.float32`` or ``jnp.bfloat16`` (parameters stay float32; see the
        module docstring for what stays float32).
      remat_backbone: recompute the activations of the layer2-4 Bottleneck blocks in the backward pass
        instead of storing them (``nn.remat``): less memory when the backbone trains, same values and
        parameter tree. An execution choice, not architecture: checkpoints' ``model.json`` omits it.
      rd_levels: ablation (paper Table 3): the levels the relation detector reads, a subset of
        ``levels`` (its RoIs are pooled from the neck's features); None = ``levels`` (the paper model).
      rd_heads: ablation: the relation heads summed into each level's score, a subset of ("global",
        "local", "patch") in that order; the default is all three (the paper model).
      default_preset: the tracker preset (``PRESETS`` below) the model tracks with when none is given:
        ``otb`` (the paper model); the embedded ``demo_resnet`` checkpoint's ``model.json`` names
        ``demo_resnet``, tuned for its weights. Not architecture: it changes no computation, and
        ``model.json`` states it only when it is not ``otb``.

    Ablated models (``ablation_problem`` says which choices are valid) build only what they use: the
    backbone stops after the deepest of ``levels``, the neck and the BAN head have one level per entry of
    ``levels``, the relation detector one per entry of ``rd_levels`` with the chosen heads only. Support
    and proposal RoIs (``TemplateFeatures.support``, ``pool_proposals``) are pooled for ``rd_levels``.
    """

    backbone_blocks: Sequence[int] = (3, 4, 6, 3)
    backbone_widths: Sequence[int] = (64, 128, 256, 512)
    stem_width: int = 64
    channels: int = 256
    levels: Sequence[int] = (2, 3, 4)
    template_crop: int = 7
    roi_size: int = 7
    stride: int = 8
    exemplar_size: int = 127
    instance_size: int = 255
    dtype: Dtype = jnp.float32
    remat_backbone: bool = False
    rd_levels: Sequence[int] | None = None
    rd_heads: Sequence[str] = HEADS
    default_preset: str = "otb"

    # The architecture registry's name (``siamrn_jax.models.registry``); not a field, so the paper model's
    # model.json and parameter tree are what they were before the registry existed.
    arch: ClassVar[str] = "resnet50_atrous"
    has_relation: ClassVar[bool] = True

    @property
    def score_size(self) -> int:
        """Score-map side (25 for 127 / 255 crops at stride 8)."""
        return score_size(self.exemplar_size, self.instance_size, self.stride)

    def config_problem(self) -> str | None:
        """``ablation_problem`` of this model's fields, or a ``default_preset`` that is not one of
        ``PRESETS`` (``build_model`` reports it as a ``ConfigError``)."""
        if self.default_preset not in PRESETS:
            known = ", ".join(sorted(PRESETS))
            return f"model.default_preset={self.default_preset!r}: not a SiamRN preset (known: {known})"
        return ablation_problem(self.levels, self.rd_levels, self.rd_heads)

    @property
    def relation_levels(self) -> tuple[int, ...]:
        """The levels of the relation detector (``rd_levels``, or ``levels`` when None)."""
        return tuple(self.levels if self.rd_levels is None else self.rd_levels)

    def setup(self):
        problem = self.config_problem()
        if problem:
            raise ValueError(problem)
        self.backbone = ResNetAtrous(
            self.backbone_blocks,
            self.backbone_widths,
            self.stem_width,
            self.dtype,
            self.remat_backbone,
            used_layers=tuple(self.levels),
        )
        self.neck = AdjustAllLayer(self.channels, self.levels, self.dtype)
        self.head = MultiBAN(self.channels, self.levels, dtype=self.dtype)
        self.multi_det = MultiDetector(self.channels, self.relation_levels, self.dtype, tuple(self.rd_heads))

    def _features(self, img: jax.Array, bn: BNTrain) -> Levels:
        return self.neck(self.backbone(img.astype(self.dtype), train_layers=bn.backbone), bn.neck)

    def _pool(self, feats: Levels, boxes: jax.Array) -> Levels:
        """PrRoIPool of ``boxes`` on the relation detector's levels of ``feats`` (per entry of ``levels``)."""
        size = (self.roi_size, self.roi_size)
        levels = tuple(self.levels)
        rd = tuple(feats[levels.index(lvl)] for lvl in self.relation_levels)
        return tuple(prroi_pool(f, boxes, size, 1.0 / self.stride) for f in rd)

    def encode_template(self, z: jax.Array, box: jax.Array, bn: BNTrain = EVAL) -> TemplateFeatures:
        """Template branch.

        Args:
          z: [B, 127, 127, 3] template crops (raw BGR).
          box: [B, 4] target (x1, y1, x2, y2) in template-crop pixels, **not clipped** (official).
          bn: BatchNorm modes.

        Returns:
          ``TemplateFeatures``.
        """
        full = self._features(z, bn)
        kernel = tuple(center_crop(f, self.template_crop) for f in full)
        support = tuple(r[:, 0] for r in self._pool(full, box[:, None, :]))
        return TemplateFeatures(kernel, full, support)

    def encode_search(self, x: jax.Array, bn: BNTrain = EVAL) -> Levels:
        """x: [B, 255, 255, 3] raw BGR -> per level [B, 31, 31, C]."""
        return self._features(x, bn)

    def ban_head(
        self, kernel: Levels, search: Levels, match_map: jax.Array | None = None, bn: BNTrain = EVAL
    ) -> HeadOutput:
        """BAN head; with ``match_map`` [B, S, S] the cls branch is refined (RM). See ``MultiBAN``."""
        return self.head(kernel, search, match_map, bn.head)

    def refine(self, cls_corr: Levels, match_map: jax.Array, bn: BNTrain = EVAL) -> jax.Array:
        """Refined cls [B, S, S, 2] from stored correlations (``HeadOutput.cls_corr``) and [B, S, S] map."""
        return self.head.refine(cls_corr, match_map, bn.head)

    def pool_proposals(self, search: Levels, boxes: jax.Array, bn: BNTrain = EVAL) -> Levels:
        """PrRoIPool proposal RoIs.

        Args:
          search: per level [B, H, W, C].
          boxes: [B, R, 4] (x1, y1, x2, y2) in search-crop pixels (already clipped by the caller).
          bn: unused here (the pooled features are the neck's); architectures that adjust the features
            for their relation detector (``NanoTrack.rd_neck``) take its BatchNorm mode from it.

        Returns:
          per relation-detector level (``relation_levels``) [B, R, 7, 7, C], float32 whatever the
          computation dtype.
        """
        return self._pool(search, boxes)

    def prepare_support(self, support: Levels) -> SupportCache:
        """Relation-detector support terms of support RoIs (per level [..., 7, 7, C]), reusable by
        ``relate`` for any number of proposals (``MultiDetector.prepare``)."""
        return self.multi_det.prepare(support)

    def relate(
        self,
        support: Levels | None,
        proposals: Levels,
        bn: BNTrain = EVAL,
        cache: SupportCache | None = None,
    ) -> jax.Array:
        """Relation-detector logits [..., 2] (index 1 = same target).

        Args:
          support: per level support RoIs [..., 7, 7, C] broadcastable to the proposals (e.g.
            [N, 1, 7, 7, C] against [N, R, 7, 7, C]); unused when ``cache`` is given.
          proposals: per level [..., 7, 7, C].
          bn: BatchNorm modes.
          cache: ``prepare_support(support)``.
        """
        return self.multi_det(support, proposals, bn.relation, cache)

    def track_frame(
        self,
        kernel: Levels,
        support: Levels,
        x: jax.Array,
        cache: SupportCache | None = None,
        reuse_corr: bool = False,
        bn: BNTrain = EVAL,
    ) -> TrackOutput:
        """The official per-frame network (``ModelBuilder.track``) for B sequences.

        Args:
          kernel: per level [B, 7, 7, C] template kernels (``TemplateFeatures.kernel``).
          support: per level [B, 7, 7, C] support RoIs (``TemplateFeatures.support``).
          x: [B, 255, 255, 3] search crops.
          cache: ``prepare_support`` of ``support[:, None]``, computed once per sequence by the tracker;
            ``None`` recomputes the support terms for every proposal, as the official code does.
          reuse_corr: apply the refinement to the first pass's correlations instead of rerunning the head
            (exact up to float rounding; the official code reruns the whole head).
          bn: BatchNorm modes (inference: ``EVAL``; others only to calibrate statistics).

        Returns:
          ``TrackOutput``.
        """
        return relation_frame(self, kernel, support, x, cache, reuse_corr, bn)

    def track_forward(
        self, template: TemplateFeatures, x: jax.Array, reuse_corr: bool = False
    ) -> TrackOutput:
        """``track_frame`` from ``TemplateFeatures``; support terms recomputed per proposal (official)."""
        return self.track_frame(template.kernel, template.support, x, None, reuse_corr)

    def __call__(self, z: jax.Array, box: jax.Array, x: jax.Array, bn: BNTrain = EVAL) -> TrackOutput:
        """Template + one search frame through every stage (initialises the parameters)."""
        t = self.encode_template(z, box, bn)
        return self.track_frame(t.kernel, t.support, x, None, False, bn)


# --- registration (``siamrn_jax.models.registry``) ----------------------------------------------------------

_L = r"\d+"
# The official ModelBuilder's keys (pysot ResNet-50, AdjustAllLayer neck, MultiBAN head, MultiDetector).
TORCH_MODULES: tuple[tuple[str, str], ...] = (
    (rf"backbone\.(conv1|layer{_L}\.{_L}\.conv{_L}|layer{_L}\.{_L}\.downsample\.0)", "conv"),
    (rf"backbone\.(bn1|layer{_L}\.{_L}\.bn{_L}|layer{_L}\.{_L}\.downsample\.1)", "bn"),
    (rf"neck\.downsample{_L}\.downsample\.0", "conv"),
    (rf"neck\.downsample{_L}\.downsample\.1", "bn"),
    (rf"head\.box{_L}\.(cls|loc)\.(conv_kernel|conv_search|head)\.0", "conv"),
    (rf"head\.box{_L}\.(cls|loc)\.(conv_kernel|conv_search|head)\.1", "bn"),
    (rf"head\.box{_L}\.(cls|loc)\.head\.3", "conv_bias"),
    (r"head\.(cls_weight|loc_weight|loc_scale)", "vector"),
    *relation_detector.TORCH_MODULES,
)


def torch_source_kind(sd: Mapping[str, Any]) -> str:
    """``siamrn`` (has ``multi_det.*``), ``siamban`` (``backbone`` / ``neck`` / ``head``, no relation
    detector) or ``backbone`` (pysot's ``resnet50.model``: keys without ``backbone.``)."""
    if any(k.startswith("multi_det.") for k in sd):
        return "siamrn"
    if any(k.startswith(("backbone.", "neck.", "head.")) for k in sd):
        return "siamban"
    return "backbone"


def pysot_backbone_file(
    kind: str, sd: Mapping[str, Any], target: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """pysot's ``resnet50.model`` keys -> ``backbone.*`` keys, and what is ignored: the ImageNet classifier
    ``fc.*`` (by key) and the stages a model with fewer levels does not build (``ResNetAtrous.used_layers``;
    as ``layer4.* (N keys)``), which pysot's loader skips the same way. Other kinds are returned as given."""
    if kind != "backbone":
        return dict(sd), []
    built = set(target.get("params", {}).get("backbone", {}))
    ignored = sorted(k for k in sd if k.startswith("fc."))
    unbuilt: dict[str, int] = {}
    for k in sd:
        stage = k.split(".")[0]
        if stage.startswith("layer") and stage not in built:
            unbuilt[stage] = unbuilt.get(stage, 0) + 1
    ignored += [f"{stage}.* ({n} keys)" for stage, n in sorted(unbuilt.items())]
    kept = {
        f"backbone.{k}": v
        for k, v in sd.items()
        if not k.startswith("fc.") and k.split(".")[0] not in unbuilt
    }
    return kept, ignored


def stem_batch_stats(model: SiamRN, variables: Any, z: jax.Array) -> dict[str, Any]:
    """The backbone stem's statistics (``bn1``, ``layer1``) from one pass on ``z`` with them in train mode:
    the official training never trains the stem BatchNorms, but random weights need their statistics too."""
    stem = model.apply(
        variables, z, method=lambda m, z: m.backbone(z, train_stem=True), mutable=["batch_stats"]
    )[1]
    return {"backbone": {k: v for k, v in stem["batch_stats"]["backbone"].items() if k in ("bn1", "layer1")}}


TORCH = TorchMapping(
    modules=TORCH_MODULES,
    provides={
        "siamrn": ("backbone", "neck", "head", "multi_det"),
        "siamban": ("backbone", "neck", "head"),
        "backbone": ("backbone",),
    },
    detect=torch_source_kind,
    default_arch=lambda sd: SiamRN.arch,
    adapt=pysot_backbone_file,
)
# Tracker presets (``TrackerParams`` fields): experiments/siamban_r50_l234/config.yaml of the official
# repository (VOT), and experiments/siamban_r50_l234_otb/config.yaml (= SiamBAN's OTB100 values).
PRESETS = {
    "vot": {
        "penalty_k": 0.07556044641459468,
        "window_influence": 0.44906151090793267,
        "lr": 0.4452151389448233,
    },
    "otb": {
        "penalty_k": 0.020530504470126613,
        "window_influence": 0.3850733326567302,
        "lr": 0.4730770315643308,
    },
    # The embedded ResNet-family demo model's own (``demo_resnet``: the demo model, and this preset ``demo``,
    # until issue 27 gave the demo SiamRN-Nano's shape; its model.json names it), tuned for its weights and
    # rounded to 3 decimals: 2026-12-06, 32 TPE trials (trial 0 = otb), OPE success AUC on 12 synthetic
    # validation scenes (eval.synthetic VALIDATION, seed 20000: disjoint from the 50 held-out test scenes
    # and the demo scene, seed 10000, and from training, seed 0), never on real video; best trial 25, AUC
    # 0.518 vs otb's 0.317:
    #   python -m siamrn_jax.eval.synthetic --split validation --num 12 --write val
    #   python -m siamrn_jax.tune --checkpoint demo_resnet --benchmark folder --root val --preset otb \
    #       --trials 32 --batch 4 --rows 4 --out tune/best.json
    # The official lr (0.473, tuned for the paper's ResNet-50) is far too high for this toy model's noisy box
    # regression: the eight best trials all have lr < 0.1.
    "demo_resnet": {"penalty_k": 0.237, "window_influence": 0.553, "lr": 0.016},
}
ARCH = ArchSpec(
    name=SiamRN.arch,
    model_class=SiamRN,
    build=SiamRN,
    presets=PRESETS,
    torch=TORCH,
    frozen_bn_stats=stem_batch_stats,
)
