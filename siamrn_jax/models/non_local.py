"""Embedded-Gaussian non-local block (``NONLocalBlock2D``), the relation detector's alignment module.

Input a0 = concat([support, proposal], channels) [..., 7, 7, 2C] (support channels first). With 1x1 convs
theta, phi, g (2C -> C, with bias) and 2x2/2 max-pooling (floor, 7 -> 3) after phi and g:
  A = softmax_keys(theta(a0) phi(a0)^T)   [..., 49, 9]   (no 1/sqrt(d) scaling, as in the official code)
  y = A g(a0)                             [..., 49, C] -> [..., 7, 7, C]
  a = a0 + BN(W(y))                       W: 1x1 conv C -> 2C with bias; BN zero-initialised (identity start)

The three input convs are linear in a0, so their support halves (``prepare``) can be computed once per
template and broadcast over proposals (the max-pool comes after the conv, so this is exact).
Parameter names mirror the PyTorch keys: ``theta``, ``phi/0``, ``g/0``, ``W/0``, ``W/1``.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from siamrn_jax.models.layers import (
    BatchNorm,
    Dtype,
    SplitLinear,
    accum_dtype,
    batch_norm,
    kaiming_fan_in_init,
)


class NonLocalSupport(NamedTuple):
    """Support-side terms of theta, phi (before pooling) and g, biases included: each [..., 7, 7, C]."""

    theta: jax.Array
    phi: jax.Array
    g: jax.Array


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """MaxPool2d(2) with floor (7 -> 3) over the two axes before the channels; any leading axes."""
    *lead, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    x = x[..., : 2 * h2, : 2 * w2, :].reshape(*lead, h2, 2, w2, 2, c)
    return x.max(axis=(-4, -2))


def _support_logits(theta_s: jax.Array, phi: jax.Array) -> jax.Array:
    """theta_s [..., 49, C] . phi [..., 9, C] -> float32 [..., 49, 9], leading shapes broadcast; a support
    shared by R proposals ([N, 1] against [N, R]) is one [49, C] x [C, R * 9] product per support (float64
    for float64 inputs)."""
    f32 = accum_dtype(jnp.result_type(theta_s, phi))
    if theta_s.ndim == phi.ndim and theta_s.shape[-3] == 1 and phi.shape[-3] != 1:
        return jnp.einsum("...qc,...rkc->...rqk", theta_s[..., 0, :, :], phi, preferred_element_type=f32)
    theta_s = jnp.broadcast_to(theta_s, phi.shape[:-2] + theta_s.shape[-2:])
    return jnp.einsum("...qc,...kc->...qk", theta_s, phi, preferred_element_type=f32)


class _Indexed(nn.Module):
    """``phi`` / ``g`` (``0``: conv, ``1``: pool) and ``W`` (``0``: conv, ``1``: BN) containers."""

    features: int
    in_features: int
    with_bn: bool
    dtype: Dtype

    def setup(self):
        conv = SplitLinear(self.features, self.in_features, kernel_init=kaiming_fan_in_init, dtype=self.dtype)
        setattr(self, "0", conv)
        if self.with_bn:
            bn = batch_norm(None, name=None, scale_init=nn.initializers.zeros, dtype=self.dtype)
            setattr(self, "1", bn)

    @property
    def conv(self) -> SplitLinear:
        return getattr(self, "0")

    @property
    def norm(self) -> BatchNorm:
        return getattr(self, "1")


class NonLocalBlock(nn.Module):
    """Non-local block over [..., H, W, in_channels] with ``in_channels // 2`` inner channels."""

    in_channels: int = 512
    dtype: Dtype = jnp.float32

    def setup(self):
        inter = self.in_channels // 2
        self.theta = SplitLinear(inter, self.in_channels, kernel_init=kaiming_fan_in_init, dtype=self.dtype)
        self.phi = _Indexed(inter, self.in_channels, False, self.dtype)
        self.g = _Indexed(inter, self.in_channels, False, self.dtype)
        self.W = _Indexed(self.in_channels, inter, True, self.dtype)

    def prepare(self, support: jax.Array) -> NonLocalSupport:
        """support [..., H, W, C] -> its theta / phi / g terms (with the biases)."""
        return NonLocalSupport(
            self.theta.part(support, 0, True),
            self.phi.conv.part(support, 0, True),
            self.g.conv.part(support, 0, True),
        )

    def attention(self, cache: NonLocalSupport, proposal: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(A [..., 49, 9] float32, g [..., 9, C]): the attention weights and the pooled g values, from the
        support terms and the proposal RoIs; y = A g (``attend``).

        phi and g of the last row and column are never seen by the floor-mode 2x2 max-pool (7 -> 3), so
        they are not computed. theta is never formed for the proposals: the logits are
        theta(a0)_q . phi_k = theta_s,q . phi_k + r_q . (phi_k Theta_r^T), with Theta_r the proposal half
        of theta's kernel: 9 keys' phi_k Theta_r^T instead of 49 queries' Theta_r r_q (saves 3 of the
        relation detector's ~16 GFLOP per level for 625 proposals). Same sums in another order: identical
        up to float rounding.
        """
        c = proposal.shape[-1]
        *lead, h, w, _ = proposal.shape
        h2, w2 = 2 * (h // 2), 2 * (w // 2)
        pooled_r = proposal[..., :h2, :w2, :]
        phi = max_pool_2x2(cache.phi[..., :h2, :w2, :] + self.phi.conv.part(pooled_r, c, False))
        g = max_pool_2x2(cache.g[..., :h2, :w2, :] + self.g.conv.part(pooled_r, c, False))
        inter = phi.shape[-1]
        phi = phi.reshape(*lead, -1, inter)
        g = g.reshape(*lead, -1, inter)
        theta_s = cache.theta.reshape(*cache.theta.shape[:-3], h * w, inter)
        psi = jnp.dot(phi, self.theta.matrix()[c:].T)  # [..., 9, C]: phi_k Theta_r^T
        r = proposal.astype(psi.dtype).reshape(*lead, h * w, c)
        # The logits are unscaled dot products over 256 channels (easily |.| > 100): rounding them to
        # bfloat16 would move the softmax weights by whole percents, so they leave the GEMMs (and enter the
        # softmax) as float32 whatever the computation dtype; the weights then go back to it for A g.
        f32 = accum_dtype(psi.dtype)
        logits = _support_logits(theta_s, phi) + jnp.einsum(
            "...qc,...kc->...qk", r, psi, preferred_element_type=f32
        )
        return jax.nn.softmax(logits, axis=-1), g

    def attend(self, cache: NonLocalSupport, proposal: jax.Array) -> jax.Array:
        """y = softmax(theta phi^T) g [..., H, W, C] (computation dtype; softmax in float32)."""
        attn, g = self.attention(cache, proposal)
        *lead, h, w, _ = proposal.shape
        return jnp.einsum("...qk,...kc->...qc", attn.astype(g.dtype), g).reshape(*lead, h, w, g.shape[-1])

    def output_affine(self) -> tuple[jax.Array, jax.Array]:
        """BN(W y) in eval mode as one affine map: (kernel [C, 2C], bias [2C]), float32 (folded from the
        float32 parameters and statistics whatever the computation dtype), such that it equals
        ``y @ kernel + bias`` (running statistics folded into the conv)."""
        bn = self.W.norm
        scale = bn.variables["params"]["scale"] / jnp.sqrt(bn.variables["batch_stats"]["var"] + bn.epsilon)
        kernel = self.W.conv.matrix(accum_dtype(self.dtype)) * scale
        bias = (self.W.conv.bias - bn.variables["batch_stats"]["mean"]) * scale + bn.variables["params"][
            "bias"
        ]
        return kernel, bias

    def __call__(
        self, support: jax.Array, proposal: jax.Array, cache: NonLocalSupport, train: bool = False
    ) -> jax.Array:
        """Aligned pair features.

        Args:
          support: [..., H, W, C] support RoIs (broadcastable to ``proposal``).
          proposal: [..., H, W, C] proposal RoIs.
          cache: ``prepare(support)``.
          train: BN batch statistics.

        Returns:
          a = a0 + BN(W(y)), [..., H, W, 2C] with a0 = concat([support, proposal]).
        """
        y = self.attend(cache, proposal)
        z = self.W.norm(self.W.conv(y), use_running_average=not train)
        a0 = jnp.concatenate([jnp.broadcast_to(support, proposal.shape), proposal], axis=-1)
        return a0 + z
