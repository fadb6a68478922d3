"""Depthwise cross-correlation (pysot ``core/xcorr.py: xcorr_depthwise``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def xcorr_depthwise(search: jax.Array, kernel: jax.Array) -> jax.Array:
    """Per-sample, per-channel valid cross-correlation (no kernel flip, no padding).

    out[b, u, v, c] = sum_{a, d} search[b, u + a, v + d, c] * kernel[b, a, d, c]

    Args:
      search: [B, Hs, Ws, C] search features (e.g. 29x29 after the head's 3x3 conv).
      kernel: [B, Hk, Wk, C] template features used as per-channel kernels (e.g. 5x5).

    Returns:
      [B, Hs - Hk + 1, Ws - Wk + 1, C] (25x25 for SiamRN).
    """
    b, hs, ws, c = search.shape
    _, hk, wk, _ = kernel.shape
    # Fold the batch into the channels so the whole batch is one grouped convolution (groups = B*C),
    # as the official code does with F.conv2d(..., groups=batch*channel).
    lhs = search.transpose(1, 2, 0, 3).reshape(1, hs, ws, b * c)
    rhs = kernel.transpose(1, 2, 0, 3).reshape(hk, wk, 1, b * c)
    out = lax.conv_general_dilated(
        lhs,
        rhs,
        window_strides=(1, 1),
        padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=b * c,
        precision=lax.Precision.HIGHEST,
    )
    ho, wo = hs - hk + 1, ws - wk + 1
    return out.reshape(ho, wo, b, c).transpose(2, 0, 1, 3)


def correlate_equal(support: jax.Array, query: jax.Array) -> jax.Array:
    """Depthwise correlation of two equally sized maps: one value per channel.

    Args:
      support, query: [N, H, W, C].

    Returns:
      [N, C] = sum over H, W of support * query (the local detector's "conv with the support as kernel").
    """
    return jnp.einsum("nhwc,nhwc->nc", support, query, precision=lax.Precision.HIGHEST)
