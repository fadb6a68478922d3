"""The convolution ``flax.linen.Conv`` calls in our layers: lax's, except where XLA:CPU computes the weight
gradient badly and an op of ours gives it as matrix products with the same forward (``ops.pointwise`` for
1x1 layers, ``ops.strided`` for strided k x k layers)."""

from __future__ import annotations

import jax

from siamrn_jax.ops import pointwise, strided


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    precision=None,
    **kwargs,
):
    """``jax.lax.conv_general_dilated`` as ``flax.linen.Conv`` calls it (its ``conv_general_dilated``
    attribute): a pointwise convolution (``pointwise.is_pointwise``) goes through ``pointwise.pointwise``, a
    strided dense one (``strided.is_strided``) through ``strided.strided``, anything else to ``lax``
    unchanged."""
    geometry = (lhs, rhs, window_strides, padding, lhs_dilation, dimension_numbers, feature_group_count)
    if not kwargs and pointwise.is_pointwise(*geometry):
        return pointwise.pointwise(lhs, rhs, precision)
    if not kwargs and strided.is_strided(*geometry):
        return strided.strided(lhs, rhs, window_strides, padding, rhs_dilation or (1, 1), precision)
    return jax.lax.conv_general_dilated(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        precision=precision,
        **kwargs,
    )
