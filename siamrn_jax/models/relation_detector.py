"""Relation detector (``MultiDetector``): is a proposal RoI the same object as the template support RoI?

Per level l, four sub-modules (names mirror the PyTorch keys ``multi_det.global_det2.MLP.0`` ...):
- ``non_local{l}``: aligns the concatenated pair a0 = [support, proposal] -> a (see ``non_local.py``);
- ``global_det{l}`` (on a): global mean over 7x7 -> ``MLP/0`` 2C->C, ReLU, ``MLP/2`` C->C, ReLU, ``fc`` C->2;
- ``local_det{l}`` (on the *raw* support and proposal, not on a): shared 1x1 ``conv`` C->C (no bias),
  per-channel correlation of the two 7x7 maps -> [..., C], ReLU, ``fc`` C->2;
- ``patch_det{l}`` (on a): ``conv_1`` 1x1 2C->C/4, ReLU, 3x3/1 average pool (7 -> 5), ``conv_2`` 3x3 valid
  (5 -> 3), ReLU, ``conv_3`` 1x1 C/4->C, ReLU, global mean, ``fc`` C->2.
Level score = global + local + patch (2-way logits); output = sum_l softmax(matching_weight)_l * score_l.
Logit index 1 = "same target", 0 = "different".

The support's own terms (the non-local theta/phi/g support halves and the local conv of the support,
``prepare``) are computed once per support and broadcast over the proposals. In tracking one template
faces 625 proposals, so this removes a third of the detector's multiply-adds; in training every pair has
its own support and nothing changes. Inputs may have any leading shape ([N] pairs, or [N, R] proposals
against a support of leading shape [N, 1]).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from siamrn_jax.models.layers import Dtype, SplitLinear, conv, dense, rd_dense_init
from siamrn_jax.models.non_local import NonLocalBlock, NonLocalSupport


class LevelSupport(NamedTuple):
    """Support-side terms of one level, with the support's leading shape.

    Attributes:
      support: [..., 7, 7, C] the support RoI (the non-local block's residual input).
      non_local: its theta / phi / g terms.
      local: [..., 7, 7, C] the local detector's conv of the support.
    """

    support: jax.Array
    non_local: NonLocalSupport
    local: jax.Array


SupportCache = tuple[LevelSupport, ...]


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
        """a [..., 7, 7, 2C] -> logits [..., 2]."""
        x = _MLP(self.channels, self.dtype, name="MLP")(a.mean(axis=(-3, -2)))
        return dense(2, self.channels, kernel_init=rd_dense_init, name="fc", dtype=self.dtype)(x)


class LocalDetector(nn.Module):
    channels: int
    dtype: Dtype = jnp.float32

    def setup(self):
        self.conv = SplitLinear(self.channels, self.channels, use_bias=False, dtype=self.dtype)
        self.fc = SplitLinear(2, self.channels, conv=False, kernel_init=rd_dense_init, dtype=self.dtype)

    def prepare(self, support: jax.Array) -> jax.Array:
        return self.conv(support)

    def __call__(self, proposal: jax.Array, support_conv: jax.Array) -> jax.Array:
        """Per-channel correlation of conv(support) and conv(proposal) -> ReLU -> fc: [..., 2]."""
        corr = jnp.einsum(
            "...hwc,...hwc->...c", jnp.broadcast_to(support_conv, proposal.shape), self.conv(proposal)
        )
        return self.fc(nn.relu(corr))


class PatchDetector(nn.Module):
    channels: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, a: jax.Array) -> jax.Array:
        """a [..., 7, 7, 2C] -> logits [..., 2]."""
        hidden = self.channels // 4
        *lead, h, w, c2 = a.shape
        x = nn.relu(conv(hidden, 1, name="conv_1", dtype=self.dtype)(a.reshape(-1, h, w, c2)))
        x = nn.avg_pool(x, (3, 3), strides=(1, 1), padding="VALID")
        x = nn.relu(conv(hidden, 3, name="conv_2", dtype=self.dtype)(x))
        x = nn.relu(conv(self.channels, 1, name="conv_3", dtype=self.dtype)(x))
        # The official AdaptiveAvgPool2d(1) and the paper-time AvgPool2d(3, 1) agree on a 3x3 map.
        x = x.mean(axis=(1, 2)).reshape(*lead, self.channels)
        return dense(2, self.channels, kernel_init=rd_dense_init, name="fc", dtype=self.dtype)(x)


class MultiDetector(nn.Module):
    """Relation detector over the three levels.

    Attributes:
      channels: RoI feature width C (256).
      levels: level ids used in parameter names.
    """

    channels: int = 256
    levels: Sequence[int] = (2, 3, 4)
    dtype: Dtype = jnp.float32

    def setup(self):
        c, d = self.channels, self.dtype
        for lvl in self.levels:
            setattr(self, f"global_det{lvl}", GlobalDetector(c, d))
            setattr(self, f"local_det{lvl}", LocalDetector(c, d))
            setattr(self, f"patch_det{lvl}", PatchDetector(c, d))
            setattr(self, f"non_local{lvl}", NonLocalBlock(2 * c, d))
        self.matching_weight = self.param("matching_weight", nn.initializers.ones, (len(self.levels),))

    def _level(self, kind: str, lvl: int) -> nn.Module:
        return getattr(self, f"{kind}{lvl}")

    def prepare(self, support: Sequence[jax.Array]) -> SupportCache:
        """Support terms, per level, from support RoIs [..., 7, 7, C]."""
        return tuple(
            LevelSupport(
                s, self._level("non_local", lvl).prepare(s), self._level("local_det", lvl).prepare(s)
            )
            for lvl, s in zip(self.levels, support, strict=True)
        )

    def __call__(
        self,
        support: Sequence[jax.Array] | None,
        proposals: Sequence[jax.Array],
        train: bool = False,
        cache: SupportCache | None = None,
    ) -> jax.Array:
        """Scores support/proposal pairs.

        Args:
          support: per level support RoIs [..., 7, 7, C], broadcastable to the proposals (ignored when
            ``cache`` is given).
          proposals: per level proposal RoIs [..., 7, 7, C].
          train: BN batch statistics (only the non-local ``W/1`` BN).
          cache: ``prepare(support)``, to reuse support terms across calls.

        Returns:
          [..., 2] fused match logits (index 1 = same target), leading shape of the proposals.
        """
        if cache is None:
            cache = self.prepare(support)
        weights = jax.nn.softmax(self.matching_weight)
        out = 0.0
        for i, (lvl, sup, r) in enumerate(zip(self.levels, cache, proposals, strict=True)):
            a = self._level("non_local", lvl)(sup.support, r, sup.non_local, train)
            score = (
                self._level("global_det", lvl)(a)
                + self._level("local_det", lvl)(r, sup.local)
                + self._level("patch_det", lvl)(a)
            )
            out = out + weights[i] * score
        return out
