"""Neck (``AdjustAllLayer``): per-level 1x1 conv + BN to 256 channels, no ReLU.

SiamRN change vs SiamBAN/pysot: template features are returned both as the 7x7 centre crop (rows/columns
4..10 of the 15x15 map, the BAN head's kernel input) and as the full 15x15 map (input of the support RoI of
the relation detector). The official code decides by width (< 20); here the caller says which it wants.

Parameter names: ``downsample2/downsample/0`` (conv), ``downsample2/downsample/1`` (BN), ... per level.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from siamrn_jax.models.layers import Dtype, batch_norm, conv


class AdjustLayer(nn.Module):
    """``downsample.0`` Conv1x1 (no bias) + ``downsample.1`` BatchNorm."""

    out_channels: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return _Seq(self.out_channels, self.dtype, name="downsample")(x, train)


class _Seq(nn.Module):
    out_channels: int
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = conv(self.out_channels, 1, name="0", dtype=self.dtype)(x)
        return batch_norm(train, name="1", dtype=self.dtype)(x)


class AdjustAllLayer(nn.Module):
    """Adjusts the backbone taps of levels 2, 3, 4.

    Attributes:
      out_channels: neck width (256).
      levels: level ids used in the parameter names (``downsample2`` ...).
    """

    out_channels: int = 256
    levels: Sequence[int] = (2, 3, 4)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, features: Sequence[jax.Array], train: bool = False) -> tuple[jax.Array, ...]:
        """Args: features: per level [B, H, W, C_l]. Returns: per level [B, H, W, out_channels]."""
        return tuple(
            AdjustLayer(self.out_channels, self.dtype, name=f"downsample{lvl}")(f, train)
            for lvl, f in zip(self.levels, features, strict=True)
        )


def center_crop(x: jax.Array, size: int) -> jax.Array:
    """Centre ``size x size`` crop of [B, H, W, C]; for 15 -> 7 this is the official ``[4:11, 4:11]``."""
    top = (x.shape[1] - size) // 2
    left = (x.shape[2] - size) // 2
    return x[:, top : top + size, left : left + size, :]
