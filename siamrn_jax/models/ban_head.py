"""BAN head (``MultiBAN``) with the SiamRN refinement hook.

Per level l in (2, 3, 4), ``box{l}`` holds two ``DepthwiseXCorr`` branches, ``cls`` (2 outputs) and ``loc``
(4 outputs). Each branch: template 3x3 conv+BN+ReLU (7x7 -> 5x5), search 3x3 conv+BN+ReLU (31 -> 29),
depthwise cross-correlation (-> 25x25, "C"), then ``head``: 1x1 conv + BN + ReLU + 1x1 conv with bias.

Level fusion: cls = sum_l softmax(cls_weight)_l * cls_l;
loc = sum_l softmax(loc_weight)_l * exp(loc_scale_l * loc_l) (l, t, r, b distances in search-crop pixels).
cls channel 0 is background, 1 foreground.

Refinement Module (inference only, SPEC section 4.3): a 25x25 match map M (the relation detector's
match probabilities, row-major, cell (i, j) <-> proposal 25 i + j) multiplies the cls correlation C of every
level *before* the cls ``head``: cls_l = head(C (.) M). The loc branch is untouched.

Mixed precision (``dtype=bfloat16``): the convolutions and the correlation run in ``dtype``; the per-level
outputs are cast to float32 before ``exp`` and the level fusion, so the fused cls / loc maps (what boxes are
decoded from and losses are computed on) are float32 whatever ``dtype``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from siamrn_jax.models.layers import Dtype, accum_dtype, batch_norm, conv
from siamrn_jax.ops.xcorr import xcorr_depthwise


class HeadOutput(NamedTuple):
    """Fused BAN outputs.

    Attributes:
      cls: [B, S, S, 2] float32 level-fused classification logits (S = 25 for the paper model).
      loc: [B, S, S, 4] float32 level-fused (l, t, r, b) distances in search-crop pixels.
      cls_corr: per level [B, S, S, hidden] cls correlation features C (before any refinement), in the
        head's computation dtype, reusable by ``MultiBAN.refine`` so the refined pass need not recompute
        the correlation.
    """

    cls: jax.Array
    loc: jax.Array
    cls_corr: tuple[jax.Array, ...]


class ConvBNReLU(nn.Module):
    """``conv_kernel`` / ``conv_search``: ``0`` Conv3x3 valid (no bias), ``1`` BN, ReLU."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = conv(self.features, 3, name="0", dtype=self.dtype)(x)
        return nn.relu(batch_norm(train, name="1", dtype=self.dtype)(x))


class PointwiseHead(nn.Module):
    """``head``: ``0`` Conv1x1 (no bias), ``1`` BN, ReLU (``2``), ``3`` Conv1x1 with bias."""

    hidden: int
    out_channels: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = conv(self.hidden, 1, name="0", dtype=self.dtype)(x)
        x = nn.relu(batch_norm(train, name="1", dtype=self.dtype)(x))
        return conv(self.out_channels, 1, use_bias=True, in_features=self.hidden, name="3", dtype=self.dtype)(
            x
        )


class DepthwiseXCorr(nn.Module):
    """One branch (cls or loc) of one level; staged so the correlation can be reused."""

    hidden: int
    out_channels: int
    dtype: Dtype = jnp.float32

    def setup(self):
        self.conv_kernel = ConvBNReLU(self.hidden, self.dtype)
        self.conv_search = ConvBNReLU(self.hidden, self.dtype)
        self.head = PointwiseHead(self.hidden, self.out_channels, self.dtype)

    def correlate(self, z: jax.Array, x: jax.Array, train: bool = False) -> jax.Array:
        """z [B, 7, 7, C], x [B, 31, 31, C] -> correlation C [B, 25, 25, hidden]."""
        return xcorr_depthwise(self.conv_search(x, train), self.conv_kernel(z, train))

    def predict(self, corr: jax.Array, train: bool = False) -> jax.Array:
        """corr [B, S, S, hidden] -> [B, S, S, out_channels]."""
        return self.head(corr, train)

    def __call__(self, z: jax.Array, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        corr = self.correlate(z, x, train)
        return self.predict(corr, train), corr


class DepthwiseBAN(nn.Module):
    """``box{l}``: the ``cls`` and ``loc`` branches of one level."""

    hidden: int
    cls_out_channels: int = 2
    dtype: Dtype = jnp.float32

    def setup(self):
        self.cls = DepthwiseXCorr(self.hidden, self.cls_out_channels, self.dtype)
        self.loc = DepthwiseXCorr(self.hidden, 4, self.dtype)


class MultiBAN(nn.Module):
    """Three ``DepthwiseBAN`` levels with softmax level weights.

    Attributes:
      hidden: correlation / head width (256, equal to the neck width).
      levels: level ids used in parameter names (``box2``...).
    """

    hidden: int = 256
    levels: Sequence[int] = (2, 3, 4)
    cls_out_channels: int = 2
    dtype: Dtype = jnp.float32

    def setup(self):
        n = len(self.levels)
        self.boxes = [
            DepthwiseBAN(self.hidden, self.cls_out_channels, self.dtype, name=f"box{lvl}")
            for lvl in self.levels
        ]
        self.cls_weight = self.param("cls_weight", nn.initializers.ones, (n,))
        self.loc_weight = self.param("loc_weight", nn.initializers.ones, (n,))
        self.loc_scale = self.param("loc_scale", nn.initializers.ones, (n,))

    def _fuse_cls(self, cls_levels: Sequence[jax.Array]) -> jax.Array:
        """Per-level logits (any float dtype) -> [B, S, S, 2] softmax-weighted sum in ``accum_dtype``."""
        acc = accum_dtype(self.dtype)
        w = jax.nn.softmax(self.cls_weight.astype(acc))
        return sum(w[i] * c.astype(acc) for i, c in enumerate(cls_levels))

    def __call__(
        self,
        template: Sequence[jax.Array],
        search: Sequence[jax.Array],
        match_map: jax.Array | None = None,
        train: bool = False,
    ) -> HeadOutput:
        """Runs all levels.

        Args:
          template: per level [B, 7, 7, C] template crops (neck output).
          search: per level [B, 31, 31, C] search features.
          match_map: optional [B, S, S] refinement map (RD match probabilities); ``None`` = plain SiamBAN.
          train: BN batch statistics.

        Returns:
          ``HeadOutput``; with ``match_map`` its ``cls`` is the refined one and ``cls_corr`` holds the
          unrefined correlations.
        """
        acc = accum_dtype(self.dtype)
        cls_levels, loc_levels, corrs = [], [], []
        for i, (box, z, x) in enumerate(zip(self.boxes, template, search, strict=True)):
            corr = box.cls.correlate(z, x, train)
            corrs.append(corr)
            c = corr if match_map is None else corr * match_map[..., None].astype(corr.dtype)
            cls_levels.append(box.cls.predict(c, train))
            loc, _ = box.loc(z, x, train)
            # exp amplifies relative errors by |loc_scale * loc| (about 3-5): take it at least in float32.
            loc_levels.append(jnp.exp(loc.astype(acc) * self.loc_scale[i].astype(acc)))
        w_loc = jax.nn.softmax(self.loc_weight.astype(acc))
        loc = sum(w_loc[i] * lv for i, lv in enumerate(loc_levels))
        return HeadOutput(self._fuse_cls(cls_levels), loc, tuple(corrs))

    def refine(self, cls_corr: Sequence[jax.Array], match_map: jax.Array, train: bool = False) -> jax.Array:
        """Refined cls from already computed correlations: head_l(C_l (.) M), fused.

        Identical to ``__call__(..., match_map).cls`` without recomputing the template/search convs and the
        correlation (the official tracker reruns the whole head).

        Args:
          cls_corr: per level [B, S, S, hidden] (``HeadOutput.cls_corr``).
          match_map: [B, S, S].

        Returns:
          [B, S, S, 2] refined, level-fused cls logits.
        """
        m = match_map[..., None]
        return self._fuse_cls(
            [
                box.cls.predict(c * m.astype(c.dtype), train)
                for box, c in zip(self.boxes, cls_corr, strict=True)
            ]
        )
