"""NanoTrack's MobileNetV3-small backbone (official ``nanotrack/models/backbone/mobile_v3.py``).

Parameter names mirror the PyTorch keys: ``features/0/0`` (stem conv), ``features/0/1`` (its BN),
``features/<i>/conv/<j>`` inside inverted-residual block i, where j indexes the official ``nn.Sequential``:

- expansion == input width (block 1): ``0`` depthwise conv, ``1`` BN, ``2`` act, ``3`` SE (or identity),
  ``4`` 1x1 projection, ``5`` BN;
- otherwise: ``0`` 1x1 expansion, ``1`` BN, ``2`` act, ``3`` depthwise conv, ``4`` BN, ``5`` SE (or
  identity), ``6`` act, ``7`` 1x1 projection, ``8`` BN.

SE is ``fc/0`` Linear C -> make_divisible(C // 4, 8), ReLU, ``fc/2`` Linear back to C, hard-sigmoid, and
scales the channels by its output. Activations: ReLU or hard-swish (``nn.Hardswish``: x relu6(x + 3) / 6).
Every convolution pads (k - 1) // 2 symmetrically, like PyTorch. One output, at stride 16: 8x8 for a 127
template crop, 16x16 for a 255 search crop. No ImageNet normalisation: raw BGR 0-255 pixels go in, as in
the official tracker.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from siamrn_jax.models.layers import Dtype, batch_norm, conv, dense, spatial_mean

# One row per inverted-residual block: kernel, expansion ratio, output width, SE, hard-swish, stride.
BlockSpec = tuple[int, float, int, bool, bool, int]

# ``mobilenetv3_small`` (NanoTrack V2): 8 blocks, output 48 channels at stride 16.
SMALL_V2: tuple[BlockSpec, ...] = (
    (3, 1, 16, True, False, 2),
    (3, 4.5, 24, False, False, 2),
    (3, 3.67, 24, False, False, 1),
    (5, 4, 40, True, True, 2),
    (5, 6, 40, True, True, 1),
    (5, 6, 40, True, True, 1),
    (5, 3, 48, True, True, 1),
    (5, 3, 48, True, True, 1),
)
# ``mobilenetv3_small_v3`` (NanoTrack V3): one more block to 96 channels, still stride 16.
SMALL_V3: tuple[BlockSpec, ...] = (*SMALL_V2, (5, 6, 96, True, True, 1))


def make_divisible(v: float, divisor: int = 8) -> int:
    """The official ``_make_divisible``: round to a multiple of ``divisor``, never below 90 % of ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def hard_swish(x: jax.Array) -> jax.Array:
    """``nn.Hardswish``: x * relu6(x + 3) / 6."""
    return x * jnp.clip(x + 3.0, 0.0, 6.0) / 6.0


def hard_sigmoid(x: jax.Array) -> jax.Array:
    """``nn.Hardsigmoid``: relu6(x + 3) / 6."""
    return jnp.clip(x + 3.0, 0.0, 6.0) / 6.0


class SELayer(nn.Module):
    """Squeeze-and-excite: ``fc/0`` (C -> C/4 rounded), ReLU, ``fc/2`` (-> C), hard-sigmoid, x * gate."""

    channels: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return x * _SEGate(self.channels, self.dtype, name="fc")(spatial_mean(x))[:, None, None, :]


class _SEGate(nn.Module):
    channels: int
    dtype: Dtype

    @nn.compact
    def __call__(self, y: jax.Array) -> jax.Array:
        hidden = make_divisible(self.channels // 4, 8)
        y = nn.relu(dense(hidden, self.channels, name="0", dtype=self.dtype)(y))
        return hard_sigmoid(dense(self.channels, hidden, name="2", dtype=self.dtype)(y))


class _BlockLayers(nn.Module):
    """The ``conv`` Sequential of one inverted-residual block (numbered children, see the module doc)."""

    inp: int
    hidden: int
    oup: int
    kernel: int
    stride: int
    use_se: bool
    use_hs: bool
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        act = hard_swish if self.use_hs else nn.relu
        d, k = self.dtype, self.kernel

        def depthwise(name: str):
            pad = (k - 1) // 2
            return conv(
                self.hidden, k, stride=self.stride, padding=pad, groups=self.hidden, name=name, dtype=d
            )

        def bn(name: str):
            return batch_norm(train, name=name, dtype=d)

        if self.inp == self.hidden:
            x = act(bn("1")(depthwise("0")(x)))
            if self.use_se:
                x = SELayer(self.hidden, d, name="3")(x)
            return bn("5")(conv(self.oup, 1, name="4", dtype=d)(x))
        x = act(bn("1")(conv(self.hidden, 1, name="0", dtype=d)(x)))
        x = bn("4")(depthwise("3")(x))
        if self.use_se:
            x = SELayer(self.hidden, d, name="5")(x)
        return bn("8")(conv(self.oup, 1, name="7", dtype=d)(act(x)))


class InvertedResidual(nn.Module):
    inp: int
    hidden: int
    oup: int
    kernel: int
    stride: int
    use_se: bool
    use_hs: bool
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        y = _BlockLayers(
            self.inp,
            self.hidden,
            self.oup,
            self.kernel,
            self.stride,
            self.use_se,
            self.use_hs,
            self.dtype,
            name="conv",
        )(x, train)
        return x + y if self.stride == 1 and self.inp == self.oup else y


class _Stem(nn.Module):
    """``features/0``: ``0`` Conv3x3 stride 2 (no bias), ``1`` BN, hard-swish."""

    width: int
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = conv(self.width, 3, stride=2, padding=1, name="0", dtype=self.dtype)(x)
        return hard_swish(batch_norm(train, name="1", dtype=self.dtype)(x))


class _Features(nn.Module):
    blocks: Sequence[BlockSpec]
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        width = make_divisible(16, 8)
        x = _Stem(width, self.dtype, name="0")(x, train)
        for i, (k, t, c, se, hs, s) in enumerate(self.blocks, start=1):
            out = make_divisible(c, 8)
            hidden = make_divisible(width * t, 8)
            x = InvertedResidual(width, hidden, out, k, s, se, hs, self.dtype, name=str(i))(x, train)
            width = out
        return x


class MobileNetV3Small(nn.Module):
    """``backbone``: the ``features`` stack; returns a one-level tuple (the same shape as the ResNet taps).

    Attributes:
      blocks: ``SMALL_V2`` or ``SMALL_V3``.
      dtype: computation dtype.
    """

    blocks: Sequence[BlockSpec] = SMALL_V2
    dtype: Dtype = jnp.float32

    @property
    def out_channels(self) -> tuple[int]:
        return (make_divisible(self.blocks[-1][2], 8),)

    @nn.compact
    def __call__(self, x: jax.Array, train_stem: bool = False, train_layers: bool = False):
        """x: [B, H, W, 3] raw BGR -> ([B, ceil(H / 16), ceil(W / 16), C],). Every BN follows
        ``train_layers`` (there is no separately frozen stem); ``train_stem`` is accepted for the shared
        training code and ignored."""
        del train_stem
        return (_Features(tuple(self.blocks), self.dtype, name="features")(x, train_layers),)
