"""Relation detector (``MultiDetector``): is a proposal RoI the same object as the template support RoI?

Per level l, four sub-modules (names mirror the PyTorch keys ``multi_det.global_det2.MLP.0`` ...):
- ``non_local{l}``: aligns the concatenated pair a0 = [support, proposal] -> a (see ``non_local.py``);
- ``global_det{l}`` (on a): global mean over 7x7 -> ``MLP/0`` 2C->C, ReLU, ``MLP/2`` C->C, ReLU, ``fc`` C->2;
- ``local_det{l}`` (on the *raw* support and proposal, not on a): shared 1x1 ``conv`` C->C (no bias),
  per-channel correlation of the two 7x7 maps -> [N, C], ReLU, ``fc`` C->2;
- ``patch_det{l}`` (on a): ``conv_1`` 1x1 2C->C/4, ReLU, 3x3/1 average pool (7 -> 5), ``conv_2`` 3x3 valid
  (5 -> 3), ReLU, ``conv_3`` 1x1 C/4->C, ReLU, global mean, ``fc`` C->2.
Level score = global + local + patch (2-way logits); output = sum_l softmax(matching_weight)_l * score_l.
Logit index 1 = "same target", 0 = "different".
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from siamrn_jax.models.layers import Dtype, conv, dense, rd_dense_init
from siamrn_jax.models.non_local import NonLocalBlock
from siamrn_jax.ops.xcorr import correlate_equal


class _MLP(nn.Module):
    """``MLP``: ``0`` Linear 2C->C, ReLU (``1``), ``2`` Linear C->C, ReLU (``3``)."""

    features: int
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.relu(
            dense(self.features, x.shape[-1], kernel_init=rd_dense_init, name="0", dtype=self.dtype)(x)
        )
        return nn.relu(
            dense(self.features, self.features, kernel_init=rd_dense_init, name="2", dtype=self.dtype)(x)
        )


class GlobalDetector(nn.Module):
    channels: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, a: jax.Array) -> jax.Array:
        """a [N, 7, 7, 2C] -> logits [N, 2]."""
        x = _MLP(self.channels, self.dtype, name="MLP")(a.mean(axis=(1, 2)))
        return dense(2, self.channels, kernel_init=rd_dense_init, name="fc", dtype=self.dtype)(x)


class LocalDetector(nn.Module):
    channels: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, support: jax.Array, proposal: jax.Array) -> jax.Array:
        """support, proposal [N, 7, 7, C] -> logits [N, 2]."""
        layer = conv(self.channels, 1, name="conv", dtype=self.dtype)
        x = nn.relu(correlate_equal(layer(support), layer(proposal)))
        return dense(2, self.channels, kernel_init=rd_dense_init, name="fc", dtype=self.dtype)(x)


class PatchDetector(nn.Module):
    channels: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, a: jax.Array) -> jax.Array:
        """a [N, 7, 7, 2C] -> logits [N, 2]."""
        hidden = self.channels // 4
        x = nn.relu(conv(hidden, 1, name="conv_1", dtype=self.dtype)(a))
        x = nn.avg_pool(x, (3, 3), strides=(1, 1), padding="VALID")
        x = nn.relu(conv(hidden, 3, name="conv_2", dtype=self.dtype)(x))
        x = nn.relu(conv(self.channels, 1, name="conv_3", dtype=self.dtype)(x))
        # The official AdaptiveAvgPool2d(1) and the paper-time AvgPool2d(3, 1) agree on a 3x3 map.
        return dense(2, self.channels, kernel_init=rd_dense_init, name="fc", dtype=self.dtype)(
            x.mean(axis=(1, 2))
        )


class MultiDetector(nn.Module):
    """Relation detector over the three levels.

    Attributes:
      channels: RoI feature width C (256).
      levels: level ids used in parameter names.
    """

    channels: int = 256
    levels: Sequence[int] = (2, 3, 4)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, support: Sequence[jax.Array], proposals: Sequence[jax.Array], train: bool = False
    ) -> jax.Array:
        """Scores support/proposal pairs.

        Args:
          support: per level [N or 1, 7, 7, C] support RoIs (a single template RoI broadcasts to all N).
          proposals: per level [N, 7, 7, C] proposal RoIs.
          train: BN batch statistics (only the non-local ``W/1`` BN).

        Returns:
          [N, 2] fused match logits (index 1 = same target).
        """
        weights = self.param("matching_weight", nn.initializers.ones, (len(self.levels),))
        weights = jax.nn.softmax(weights)
        out = 0.0
        for i, (lvl, s, r) in enumerate(zip(self.levels, support, proposals, strict=True)):
            s = jnp.broadcast_to(s, r.shape)
            a = NonLocalBlock(2 * self.channels, self.dtype, name=f"non_local{lvl}")(
                jnp.concatenate([s, r], axis=-1), train
            )
            score = (
                GlobalDetector(self.channels, self.dtype, name=f"global_det{lvl}")(a)
                + LocalDetector(self.channels, self.dtype, name=f"local_det{lvl}")(s, r)
                + PatchDetector(self.channels, self.dtype, name=f"patch_det{lvl}")(a)
            )
            out = out + weights[i] * score
        return out
