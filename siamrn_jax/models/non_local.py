"""Embedded-Gaussian non-local block (``NONLocalBlock2D``), the relation detector's alignment module.

Input a0 = concat([support, proposal], channels) [N, 7, 7, 2C] (support channels first). With 1x1 convs
theta, phi, g (2C -> C, with bias) and 2x2/2 max-pooling (floor, 7 -> 3) after phi and g:
  A = softmax_keys(theta(a0) phi(a0)^T)   [N, 49, 9]   (no 1/sqrt(d) scaling, as in the official code)
  y = A g(a0)                             [N, 49, C] -> [N, 7, 7, C]
  a = a0 + BN(W(y))                       W: 1x1 conv C -> 2C with bias; BN zero-initialised (identity start)

Parameter names mirror the PyTorch keys: ``theta``, ``phi/0``, ``g/0``, ``W/0``, ``W/1``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from siamrn_jax.models.layers import Dtype, batch_norm, conv, kaiming_fan_in_init


def _conv1x1(features: int, in_features: int, name: str, dtype: Dtype) -> nn.Conv:
    return conv(
        features,
        1,
        use_bias=True,
        in_features=in_features,
        kernel_init=kaiming_fan_in_init,
        name=name,
        dtype=dtype,
    )


def _pool(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")


class _ConvPool(nn.Module):
    """``phi`` / ``g``: ``0`` Conv1x1, ``1`` MaxPool2d(2)."""

    features: int
    in_features: int
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return _pool(_conv1x1(self.features, self.in_features, "0", self.dtype)(x))


class _ConvBN(nn.Module):
    """``W``: ``0`` Conv1x1 (bias), ``1`` BatchNorm with gamma = beta = 0 at init."""

    features: int
    in_features: int
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = _conv1x1(self.features, self.in_features, "0", self.dtype)(x)
        return batch_norm(train, name="1", scale_init=nn.initializers.zeros, dtype=self.dtype)(x)


class NonLocalBlock(nn.Module):
    """Non-local block over [N, H, W, in_channels] with ``inter_channels`` = in_channels // 2."""

    in_channels: int = 512
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, a0: jax.Array, train: bool = False) -> jax.Array:
        """a0 [N, H, W, 2C] -> [N, H, W, 2C]."""
        n, h, w, c2 = a0.shape
        inter = self.in_channels // 2
        theta = _conv1x1(inter, c2, "theta", self.dtype)(a0).reshape(n, h * w, inter)
        phi = _ConvPool(inter, c2, self.dtype, name="phi")(a0).reshape(n, -1, inter)
        g = _ConvPool(inter, c2, self.dtype, name="g")(a0).reshape(n, -1, inter)
        attn = jax.nn.softmax(
            jnp.einsum("nqc,nkc->nqk", theta, phi, precision=lax.Precision.HIGHEST), axis=-1
        )
        y = jnp.einsum("nqk,nkc->nqc", attn, g, precision=lax.Precision.HIGHEST).reshape(n, h, w, inter)
        return a0 + _ConvBN(c2, inter, self.dtype, name="W")(y, train)
