"""NanoTrack's BAN heads (official ``nanotrack/models/head/ban_v2.py`` and ``ban_v3.py``, both named
``DepthwiseBAN`` there), with the SiamRN refinement hook.

Both take the one-level backbone features (template [B, 8, 8, C], search [B, 16, 16, C]) directly: the
official ``ModelBuilder`` builds an ``AdjustLayer`` neck but never calls it (its weights are in the
checkpoints, unused).

V2 (C = 48, S = 16): per branch (``reg`` / ``cls``) a ``PixelwiseXCorr``: ``conv_kernel`` and
``conv_search`` (``0`` 1x1 conv with bias, ``1`` BN), pixel-wise correlation (every template cell is one
output channel: [B, 16, 16, 64], channel 8 i + j <-> template cell (i, j)), ``CA_layer`` channel attention
(``fc1`` 1x1, ReLU, ``fc2`` 1x1, sigmoid gate on the spatial mean). Then a tower of 6 x (3x3 depthwise conv,
1x1 conv, BN, ReLU6) (``cls_pw_tower`` / ``bbox_pw_tower``, 64 -> 96 in its first layer) and a 1x1 conv with
bias (``cls_pred/0`` -> 2, ``bbox_pred/0`` -> 4); loc = exp(bbox_pred).

V3 (C = 96, S = 15): per branch a ``PixelwiseXCorr`` as above plus ``conv`` (``0`` 2x2 depthwise conv,
``1`` BN, ReLU6, ``3`` 1x1 conv with bias, ``4`` BN: 16 -> 15) and a ``DepthwiseXCorr`` of the search
against the template's centre 4x4 (rows/columns 2..5; ``conv_kernel``/``conv_search`` 1x1 conv + BN,
depthwise correlation with zero padding 1: 16 -> 15); the two are concatenated (pixel-wise first) and
reduced by ``down_cls/0`` / ``down_reg/0`` (1x1, 160 -> 96); towers of 6 x (3x3 depthwise conv, BN, ReLU6,
1x1 conv, BN) (``cls_tower`` / ``bbox_tower``), then ``cls_logits/0`` / ``bbox_pred/0``; loc = exp.

Refinement (SiamRN-Nano): the match map M [B, S, S] multiplies the cls correlation C (the tower's input:
V2's ``corr_pw_cls`` output, V3's ``down_cls`` output) before the tower, as ``MultiBAN`` does per level.

cls channel 0 is background, 1 foreground; loc is (l, t, r, b) in search-crop pixels. NHWC throughout.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from siamrn_jax.models.ban_head import HeadOutput
from siamrn_jax.models.layers import Dtype, accum_dtype, batch_norm, conv, resnet_kernel_init
from siamrn_jax.ops.xcorr import xcorr_depthwise


def _conv(features: int, kernel: int, name: str, dtype: Dtype, **kw) -> nn.Conv:
    # The official heads initialise every conv with N(0, sqrt(2 / (k k out))) (= resnet_kernel_init).
    return conv(features, kernel, name=name, kernel_init=resnet_kernel_init, dtype=dtype, **kw)


def relu6(x: jax.Array) -> jax.Array:
    return jnp.clip(x, 0.0, 6.0)


def xcorr_pixelwise(search: jax.Array, kernel: jax.Array) -> jax.Array:
    """search [B, H, W, C], kernel [B, h, w, C] -> [B, H, W, h w]; channel k = w i + j <-> kernel (i, j)
    (official ``xcorr_pixelwise``: kernel.view(b, c, -1) is row-major over the template cells)."""
    b, h, w, c = kernel.shape
    return jnp.einsum("bxyc,bkc->bxyk", search, kernel.reshape(b, h * w, c), precision=lax.Precision.HIGHEST)


class ConvBN(nn.Module):
    """``0`` 1x1 conv with bias, ``1`` BN (``conv_kernel`` / ``conv_search`` of both correlations)."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = _conv(self.features, 1, "0", self.dtype, use_bias=True)(x)
        return batch_norm(train, name="1", dtype=self.dtype)(x)


class CAModule(nn.Module):
    """``CA_layer``: x * sigmoid(fc2(relu(fc1(mean_hw x)))) with 1x1 convs ``fc1`` / ``fc2`` (bias)."""

    channels: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = x.mean(axis=(1, 2), keepdims=True)
        y = nn.relu(_conv(self.channels, 1, "fc1", self.dtype, use_bias=True)(y))
        return x * jax.nn.sigmoid(_conv(self.channels, 1, "fc2", self.dtype, use_bias=True)(y))


class _PixelwiseTail(nn.Module):
    """V3's ``PixelwiseXCorr.conv``: ``0`` 2x2 depthwise, ``1`` BN, ReLU6, ``3`` 1x1 (bias), ``4`` BN."""

    channels: int
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        c, d = self.channels, self.dtype
        x = relu6(batch_norm(train, name="1", dtype=d)(_conv(c, 2, "0", d, groups=c)(x)))
        return batch_norm(train, name="4", dtype=d)(_conv(c, 1, "3", d, use_bias=True)(x))


class PixelwiseXCorr(nn.Module):
    """Pixel-wise correlation branch; ``tail`` adds V3's ``conv`` block."""

    channels: int
    cells: int = 64  # template cells h * w (8 x 8): the correlation's width
    tail: bool = False
    dtype: Dtype = jnp.float32

    def setup(self):
        self.conv_kernel = ConvBN(self.channels, self.dtype)
        self.conv_search = ConvBN(self.channels, self.dtype)
        self.CA_layer = CAModule(self.cells, self.dtype)
        if self.tail:
            self.conv = _PixelwiseTail(self.cells, self.dtype)

    def __call__(self, z: jax.Array, x: jax.Array, train: bool = False) -> jax.Array:
        corr = self.CA_layer(xcorr_pixelwise(self.conv_search(x, train), self.conv_kernel(z, train)))
        return self.conv(corr, train) if self.tail else corr


class DepthwiseXCorr(nn.Module):
    """V3's depthwise branch: 1x1 conv + BN on both sides, depthwise correlation with zero padding 1."""

    channels: int
    dtype: Dtype = jnp.float32

    def setup(self):
        self.conv_kernel = ConvBN(self.channels, self.dtype)
        self.conv_search = ConvBN(self.channels, self.dtype)

    def __call__(self, z: jax.Array, x: jax.Array, train: bool = False) -> jax.Array:
        x = jnp.pad(self.conv_search(x, train), ((0, 0), (1, 1), (1, 1), (0, 0)))
        return xcorr_depthwise(x, self.conv_kernel(z, train))


class TowerV2(nn.Module):
    """``cls_pw_tower`` / ``bbox_pw_tower``: layer i = ``4i`` 3x3 depthwise, ``4i+1`` 1x1, ``4i+2`` BN,
    ReLU6 (no conv bias)."""

    width: int = 96
    layers: int = 6
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        d = self.dtype
        for i in range(self.layers):
            x = _conv(x.shape[-1], 3, str(4 * i), d, padding=1, groups=x.shape[-1])(x)
            x = _conv(self.width, 1, str(4 * i + 1), d)(x)
            x = relu6(batch_norm(train, name=str(4 * i + 2), dtype=d)(x))
        return x


class TowerV3(nn.Module):
    """``cls_tower`` / ``bbox_tower``: layer i = ``5i`` 3x3 depthwise, ``5i+1`` BN, ReLU6, ``5i+3`` 1x1,
    ``5i+4`` BN (no conv bias, no activation after the last BN of a layer)."""

    width: int = 96
    layers: int = 6
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        d, c = self.dtype, self.width
        for i in range(self.layers):
            x = _conv(c, 3, str(5 * i), d, padding=1, groups=c)(x)
            x = relu6(batch_norm(train, name=str(5 * i + 1), dtype=d)(x))
            x = batch_norm(train, name=str(5 * i + 4), dtype=d)(_conv(c, 1, str(5 * i + 3), d)(x))
        return x


class _Pred(nn.Module):
    """``<name>/0``: the 1x1 output conv with bias."""

    features: int
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return _conv(self.features, 1, "0", self.dtype, use_bias=True)(x)


def _exp32(x: jax.Array) -> jax.Array:
    """loc = exp(pred), in float32 whatever the computation dtype (as ``MultiBAN``)."""
    return jnp.exp(x.astype(accum_dtype(x.dtype)))


def _head_output(m, template, search, match_map, train) -> HeadOutput:
    """Shared ``__call__`` of both heads: loc, the cls correlation, and (refined) cls."""
    (z,), (x,) = template, search
    corr = m.correlate_cls(z, x, train)
    c = corr if match_map is None else corr * match_map[..., None].astype(corr.dtype)
    return HeadOutput(m.predict_cls(c, train), m.loc(z, x, train), (corr,))


def _refine(m, cls_corr, match_map, train) -> jax.Array:
    (corr,) = cls_corr
    return m.predict_cls(corr * match_map[..., None].astype(corr.dtype), train)


class NanoBANV2(nn.Module):
    """``ban_head`` of NanoTrack V2 (C = 48 in, 16x16 maps)."""

    channels: int = 48
    dtype: Dtype = jnp.float32

    def setup(self):
        d = self.dtype
        self.corr_pw_reg = PixelwiseXCorr(self.channels, dtype=d)
        self.corr_pw_cls = PixelwiseXCorr(self.channels, dtype=d)
        self.cls_pw_tower = TowerV2(dtype=d)
        self.bbox_pw_tower = TowerV2(dtype=d)
        self.cls_pred = _Pred(2, d)
        self.bbox_pred = _Pred(4, d)

    def correlate_cls(self, z: jax.Array, x: jax.Array, train: bool = False) -> jax.Array:
        """z [B, 8, 8, C], x [B, 16, 16, C] -> cls correlation [B, 16, 16, 64]."""
        return self.corr_pw_cls(z, x, train)

    def predict_cls(self, corr: jax.Array, train: bool = False) -> jax.Array:
        """[B, 16, 16, 64] -> float32 logits [B, 16, 16, 2]."""
        return self.cls_pred(self.cls_pw_tower(corr, train)).astype(accum_dtype(self.dtype))

    def loc(self, z: jax.Array, x: jax.Array, train: bool = False) -> jax.Array:
        """-> float32 (l, t, r, b) [B, 16, 16, 4]."""
        return _exp32(self.bbox_pred(self.bbox_pw_tower(self.corr_pw_reg(z, x, train), train)))

    def __call__(self, template, search, match_map=None, train: bool = False) -> HeadOutput:
        """template / search: one-level tuples; match_map optional [B, S, S] (refinement)."""
        return _head_output(self, template, search, match_map, train)

    def refine(self, cls_corr, match_map: jax.Array, train: bool = False) -> jax.Array:
        return _refine(self, cls_corr, match_map, train)


def centre_4x4(z: jax.Array) -> jax.Array:
    """V3's ``crop``: rows/columns 2..5 of a template map wider than 4 (official ``x[:, :, 2:6, 2:6]``)."""
    return z[:, 2:6, 2:6, :] if z.shape[2] > 4 else z


class NanoBANV3(nn.Module):
    """``ban_head`` of NanoTrack V3 (C = 96 in, 15x15 maps)."""

    channels: int = 96
    dtype: Dtype = jnp.float32

    def setup(self):
        c, d = self.channels, self.dtype
        self.corr_dw_reg = DepthwiseXCorr(c, d)
        self.corr_pw_reg = PixelwiseXCorr(c, tail=True, dtype=d)
        self.corr_dw_cls = DepthwiseXCorr(c, d)
        self.corr_pw_cls = PixelwiseXCorr(c, tail=True, dtype=d)
        self.cls_tower = TowerV3(c, dtype=d)
        self.bbox_tower = TowerV3(c, dtype=d)
        self.cls_logits = _Pred(2, d)
        self.bbox_pred = _Pred(4, d)
        self.down_reg = _Pred(c, d)
        self.down_cls = _Pred(c, d)

    def correlate_cls(self, z: jax.Array, x: jax.Array, train: bool = False) -> jax.Array:
        """z [B, 8, 8, C], x [B, 16, 16, C] -> ``down_cls`` output [B, 15, 15, C]."""
        pw = self.corr_pw_cls(z, x, train)
        dw = self.corr_dw_cls(centre_4x4(z), x, train)
        return self.down_cls(jnp.concatenate([pw, dw.astype(pw.dtype)], axis=-1))

    def predict_cls(self, corr: jax.Array, train: bool = False) -> jax.Array:
        return self.cls_logits(self.cls_tower(corr, train)).astype(accum_dtype(self.dtype))

    def loc(self, z: jax.Array, x: jax.Array, train: bool = False) -> jax.Array:
        pw = self.corr_pw_reg(z, x, train)
        dw = self.corr_dw_reg(centre_4x4(z), x, train)
        reg = self.down_reg(jnp.concatenate([pw, dw.astype(pw.dtype)], axis=-1))
        return _exp32(self.bbox_pred(self.bbox_tower(reg, train)))

    def __call__(self, template, search, match_map=None, train: bool = False) -> HeadOutput:
        return _head_output(self, template, search, match_map, train)

    def refine(self, cls_corr, match_map: jax.Array, train: bool = False) -> jax.Array:
        return _refine(self, cls_corr, match_map, train)
