"""NanoTrack (V2 / V3, HonglinChu/SiamTrackers) and SiamRN-Nano in the staged API of ``SiamRN``.

NanoTrack is SiamBAN with a MobileNetV3-small backbone: one level at stride 16, no neck in the forward
pass, a light BAN head (``nano_head``). Its score map is 16x16 (V2) or 15x15 (V3) on the usual 127 / 255
crops. ``relation=True`` adds SiamRN's relation detector (``multi_det``, one level, PrRoIPool at stride 16
on the backbone features, C = 48 or 96) and the refinement module (the match map multiplies the head's cls
correlation): SiamRN-Nano. Its relation detector reads the backbone features through ``rd_neck``, a
trainable ``AdjustLayer`` (1x1 conv + BN, no ReLU) to ``rd_width`` channels (default: the width of
NanoTrack's configured neck, 64 for V2, 96 for V3; SiamRN-Nano's configs use 32), as SiamRN's reads the
neck output: the raw MobileNet features are unnormalised (values up to about 26), and a relation detector
trained on them directly diverged (match loss 3.5 at step 1 and spikes above 20 with the paper's learning
rate; measured 2026-12-01).

Parameter tree (mirrors the official ``ModelBuilder`` keys): ``backbone/features/...``, ``head/...`` (PyTorch
``ban_head.``: the stage method ``ban_head`` owns that name here, as in ``SiamRN``, so the converter renames
the prefix and nothing else), and for SiamRN-Nano ``multi_det/...`` with level id 4 (``global_det4``...;
NanoTrack's ``used_layers=[4]``). The official checkpoints also hold ``neck.downsample.*``, which their
forward pass never uses; the converter reports them as ignored.

Stages (``model.apply(variables, ..., method="<stage>")``), with the shapes of ``SiamRN``'s (levels = one):
``encode_template``, ``encode_search``, ``ban_head``, ``refine``, ``pool_proposals``, ``prepare_support``,
``relate``, ``track_frame``, ``track_forward``. All tensors NHWC, raw BGR 0-255 images.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from siamrn_jax.models import relation_detector
from siamrn_jax.models.ban_head import HeadOutput
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
from siamrn_jax.models.mobilenet_v3 import SMALL_V2, SMALL_V3, MobileNetV3Small
from siamrn_jax.models.nano_head import NanoBANV2, NanoBANV3
from siamrn_jax.models.neck import AdjustLayer
from siamrn_jax.models.relation_detector import MultiDetector, SupportCache
from siamrn_jax.ops.prroi_pool import prroi_pool

# arch -> (backbone blocks, head class, backbone width, neck width of the official config)
VERSIONS = {
    "nanotrack_v2": (SMALL_V2, NanoBANV2, 48, 64),
    "nanotrack_v3": (SMALL_V3, NanoBANV3, 96, 96),
}


def feature_side(crop: int) -> int:
    """Backbone output side for a ``crop`` x ``crop`` input: four stride-2 stages, each (n - 1) // 2 + 1
    (127 -> 8, 255 -> 16)."""
    for _ in range(4):
        crop = (crop - 1) // 2 + 1
    return crop


class NanoTrack(nn.Module):
    """NanoTrack V2/V3, optionally with SiamRN's relation detector (SiamRN-Nano).

    Attributes:
      arch: ``"nanotrack_v2"`` or ``"nanotrack_v3"``.
      relation: add the relation detector + refinement module.
      roi_size: PrRoIPool output side of the relation detector (7).
      rd_width: the relation detector's RoI width (``rd_neck`` output); None: the width of the official
        config's neck (64 V2, 96 V3). SiamRN-Nano's configs use 32: the detector's per-proposal products
        grow with its square, and at 64 it took 4 of V2's 5.5 ms per frame on a 2-core CPU.
      default_preset: the tracker preset (``PRESETS`` below) the model tracks with when none is given;
        None: the official config's, named as ``arch``. The embedded demo model (SiamRN-Nano's shape
        trained from scratch) names its own tuned ``demo``.
      exemplar_size, instance_size: crop sides (127, 255).
      dtype: computation dtype (parameters float32; maps and logits returned float32).
    """

    arch: str = "nanotrack_v2"
    relation: bool = False
    roi_size: int = 7
    rd_width: int | None = None
    default_preset: str | None = None
    exemplar_size: int = 127
    instance_size: int = 255
    dtype: Dtype = jnp.float32

    stride: ClassVar[int] = 16
    levels: ClassVar[tuple[int, ...]] = (4,)

    @property
    def channels(self) -> int:
        """Backbone width: 48 (V2) or 96 (V3)."""
        return VERSIONS[self.arch][2]

    @property
    def rd_channels(self) -> int:
        """Relation-detector RoI width (``rd_neck`` output): ``rd_width``, or 64 (V2) / 96 (V3)."""
        return VERSIONS[self.arch][3] if self.rd_width is None else self.rd_width

    @property
    def has_relation(self) -> bool:
        return self.relation

    def config_problem(self) -> str | None:
        """A ``default_preset`` that is not one of ``PRESETS`` (``build_model`` reports it as a
        ``ConfigError``)."""
        if self.default_preset is not None and self.default_preset not in PRESETS:
            known = ", ".join(sorted(PRESETS))
            return f"model.default_preset={self.default_preset!r}: not a NanoTrack preset (known: {known})"
        return None

    @property
    def template_crop(self) -> int:
        """The head's template kernel is the whole template feature map (8x8): no centre crop."""
        return feature_side(self.exemplar_size)

    @property
    def score_size(self) -> int:
        """Score-map side: 16 (V2: search features as they are) or 15 (V3: its 2x2 / padded correlations)."""
        side = feature_side(self.instance_size)
        return side if self.arch == "nanotrack_v2" else side - 1

    def setup(self):
        if self.arch not in VERSIONS:
            raise ValueError(f"NanoTrack: unknown arch {self.arch!r} (known: {sorted(VERSIONS)})")
        blocks, head, channels, _ = VERSIONS[self.arch]
        self.backbone = MobileNetV3Small(blocks, self.dtype)
        self.head = head(channels, self.dtype)
        if self.relation:
            self.rd_neck = AdjustLayer(self.rd_channels, self.dtype)
            self.multi_det = MultiDetector(self.rd_channels, self.levels, self.dtype)

    def neck(self, feats: Levels, train: bool = False) -> Levels:
        """Identity: the official NanoTrack forward pass never applies its ``AdjustLayer``."""
        del train
        return tuple(feats)

    def _features(self, img: jax.Array, bn: BNTrain) -> Levels:
        return self.backbone(img.astype(self.dtype), train_layers=bn.backbone)

    def _pool(self, feats: Levels, boxes: jax.Array, train: bool = False) -> Levels:
        """``rd_neck`` then PrRoIPool at stride 16: per level [B, R, 7, 7, rd_channels] float32."""
        size = (self.roi_size, self.roi_size)
        return tuple(prroi_pool(self.rd_neck(f, train), boxes, size, 1.0 / self.stride) for f in feats)

    def encode_template(self, z: jax.Array, box: jax.Array, bn: BNTrain = EVAL) -> TemplateFeatures:
        """z [B, 127, 127, 3], box [B, 4] (x1, y1, x2, y2) template RoI -> ``TemplateFeatures`` with
        kernel = full = ([B, 8, 8, C],) and support = ([B, 7, 7, C],) (empty without the relation
        detector)."""
        full = self._features(z, bn)
        support = ()
        if self.relation:
            support = tuple(r[:, 0] for r in self._pool(full, box[:, None, :], bn.relation))
        return TemplateFeatures(full, full, support)

    def encode_search(self, x: jax.Array, bn: BNTrain = EVAL) -> Levels:
        """x [B, 255, 255, 3] -> ([B, 16, 16, C],)."""
        return self._features(x, bn)

    def ban_head(
        self, kernel: Levels, search: Levels, match_map: jax.Array | None = None, bn: BNTrain = EVAL
    ) -> HeadOutput:
        """cls [B, S, S, 2], loc [B, S, S, 4] (float32), cls_corr; ``match_map`` [B, S, S] refines cls."""
        return self.head(kernel, search, match_map, bn.head)

    def refine(self, cls_corr: Levels, match_map: jax.Array, bn: BNTrain = EVAL) -> jax.Array:
        return self.head.refine(cls_corr, match_map, bn.head)

    def pool_proposals(self, search: Levels, boxes: jax.Array, bn: BNTrain = EVAL) -> Levels:
        """boxes [B, R, 4] clipped (x1, y1, x2, y2) search-crop pixels -> ([B, R, 7, 7, rd_channels],)
        float32 (``rd_neck``'s BatchNorm follows ``bn.relation``)."""
        return self._pool(search, boxes, bn.relation)

    def prepare_support(self, support: Levels) -> SupportCache:
        return self.multi_det.prepare(support)

    def relate(
        self, support: Levels | None, proposals: Levels, bn: BNTrain = EVAL, cache: SupportCache | None = None
    ) -> jax.Array:
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
        """SiamRN-Nano's per-frame network (``SiamRN.track_frame`` on one level; S*S proposals)."""
        return relation_frame(self, kernel, support, x, cache, reuse_corr, bn)

    def track_forward(self, template: TemplateFeatures, x: jax.Array, reuse_corr: bool = False):
        return self.track_frame(template.kernel, template.support, x, None, reuse_corr)

    def __call__(self, z: jax.Array, box: jax.Array, x: jax.Array, bn: BNTrain = EVAL):
        """Template + one search frame through every stage (initialises the parameters)."""
        t = self.encode_template(z, box, bn)
        if not self.relation:
            return self.ban_head(t.kernel, self.encode_search(x, bn), bn=bn)
        return self.track_frame(t.kernel, t.support, x, None, False, bn)


# --- registration (``siamrn_jax.models.registry``) ----------------------------------------------------------


def _indices(period: int, offsets: tuple[int, ...], layers: int = 6) -> str:
    """Regex alternation of the Sequential indices ``period * i + offset`` (NanoTrack's head towers)."""
    return "(" + "|".join(str(period * i + o) for i in range(layers) for o in offsets) + ")"


# NanoTrack's keys (MobileNetV3-small backbone, V2/V3 heads: siamrn_jax.models.mobilenet_v3 / nano_head)
# after the converter's ``ban_head.`` -> ``head.`` rename (``TORCH.prefixes``). Block 1 is the only inverted
# residual without an expansion conv (ratio 1), hence its own indices.
_BLOCK = r"backbone\.features\.([2-9]|\d\d+)\.conv"
_CORR = r"head\.corr_(pw|dw)_(reg|cls)"
TORCH_MODULES: tuple[tuple[str, str], ...] = (
    (r"rd_neck\.downsample\.0", "conv"),  # SiamRN-Nano's adjust layer ahead of its relation detector
    (r"rd_neck\.downsample\.1", "bn"),
    *relation_detector.TORCH_MODULES,
    (r"backbone\.features\.0\.0", "conv"),
    (r"backbone\.features\.0\.1", "bn"),
    (r"backbone\.features\.1\.conv\.[04]", "conv"),
    (r"backbone\.features\.1\.conv\.[15]", "bn"),
    (r"backbone\.features\.1\.conv\.3\.fc\.[02]", "linear"),
    (rf"{_BLOCK}\.[037]", "conv"),
    (rf"{_BLOCK}\.[148]", "bn"),
    (rf"{_BLOCK}\.5\.fc\.[02]", "linear"),
    (rf"{_CORR}\.(conv_kernel|conv_search)\.0", "conv_bias"),
    (rf"{_CORR}\.(conv_kernel|conv_search)\.1", "bn"),
    (rf"{_CORR}\.CA_layer\.fc[12]", "conv_bias"),
    (rf"{_CORR}\.conv\.0", "conv"),
    (rf"{_CORR}\.conv\.[14]", "bn"),
    (rf"{_CORR}\.conv\.3", "conv_bias"),
    (rf"head\.(cls|bbox)_pw_tower\.{_indices(4, (0, 1))}", "conv"),
    (rf"head\.(cls|bbox)_pw_tower\.{_indices(4, (2,))}", "bn"),
    (rf"head\.(cls|bbox)_tower\.{_indices(5, (0, 3))}", "conv"),
    (rf"head\.(cls|bbox)_tower\.{_indices(5, (1, 4))}", "bn"),
    (r"head\.(cls_pred|bbox_pred|cls_logits|down_reg|down_cls)\.0", "conv_bias"),
)
# The modules SiamRN-Nano trains (``train.frozen`` keeps the rest of NanoTrack as converted): what its
# add-on checkpoints hold (``siamrn_jax.convert.addon``).
ADDON_MODULES = ("multi_det", "rd_neck")


def torch_source_kind(sd: Mapping[str, Any]) -> str | None:
    """``nanotrack`` for HonglinChu/SiamTrackers' checkpoints (``ban_head.*`` keys), else None."""
    return "nanotrack" if any(k.startswith("ban_head.") for k in sd) else None


def torch_arch(sd: Mapping[str, Any]) -> str:
    """``nanotrack_v3`` when the backbone has V3's ninth block (``features.9``), else ``nanotrack_v2``."""
    return "nanotrack_v3" if any(k.startswith("backbone.features.9.") for k in sd) else "nanotrack_v2"


TORCH = TorchMapping(
    modules=TORCH_MODULES,
    provides={"nanotrack": ("backbone", "head")},
    detect=torch_source_kind,
    default_arch=torch_arch,
    # ``ban_head.``: the stage method ``ban_head`` owns that name here (module docstring).
    prefixes={"head": "ban_head"},
    unused=("neck",),  # an AdjustLayer the official forward pass never calls
)
# NanoTrack's own TRACK sections (HonglinChu/SiamTrackers NanoTrack/models/config/configv2.yaml and
# configv3.yaml; tests/models/test_nanotrack.py checks them against the shared copies of those files).
_V2 = {"penalty_k": 0.150, "window_influence": 0.490, "lr": 0.385}
PRESETS = {
    "nanotrack_v2": _V2,
    # V2's config values with RGB crops, as OpenCV's TrackerNano feeds them (its other differences are
    # listed in docs/models.md, "Track real video now").
    "nanotrack_v2_rgb": {**_V2, "swap_rb": True},
    "nanotrack_v3": {"penalty_k": 0.138, "window_influence": 0.455, "lr": 0.348},
    # The embedded demo model's own (its model.json names it), tuned for its weights and rounded to 3
    # decimals: 2026-12-07, 64 TPE trials (trial 0 = nanotrack_v2), OPE success AUC on the 12 synthetic
    # validation scenes the ResNet-family demo's preset was tuned on (seed 20000: disjoint from the 50
    # held-out test scenes, the demo scene and training), never on real video; best trial 54, AUC 0.449 vs
    # nanotrack_v2's 0.360:
    #   python -m siamrn_jax.eval.synthetic --split validation --num 12 --write val
    #   python -m siamrn_jax.tune --checkpoint demo --benchmark folder --root val --preset nanotrack_v2 \
    #       --trials 64 --batch 4 --rows 4 --out tune/best.json
    # As for demo_resnet, the official lr (0.385) is far too high for a model trained on 18k synthetic pairs:
    # the eight best trials all have lr < 0.05.
    "demo": {"penalty_k": 0.728, "window_influence": 0.506, "lr": 0.016},
}
# Presets named for a model rather than an architecture, and the architecture they belong to.
_OWN_PRESETS = {"demo": "nanotrack_v2"}
ARCHS = tuple(
    ArchSpec(
        name=arch,
        model_class=NanoTrack,
        build=functools.partial(NanoTrack, arch=arch),
        presets={k: v for k, v in PRESETS.items() if k.startswith(arch) or _OWN_PRESETS.get(k) == arch},
        torch=TORCH,
        addon_modules=ADDON_MODULES,
    )
    for arch in VERSIONS
)
