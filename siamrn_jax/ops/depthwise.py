"""Depthwise convolution (``torch.nn.Conv2d(C, C, k, groups=C)``) as a sum of shifted products.

Why: XLA:CPU runs ``lax.conv_general_dilated`` with ``feature_group_count = C`` as a generic grouped
convolution, much slower than the work it does; NanoTrack's MobileNetV3 and its heads are mostly such
layers. The same sum written as ``k * k`` strided slices, each multiplied by one kernel row
``kernel[i, j]`` and added, is one fused element-wise loop on XLA:CPU (the pattern of ``ops/xcorr.py``,
whose grouped correlation was 38x slower than its shifted sums).

Exactness: the same products, summed tap by tap in float32 (or the inputs' dtype) instead of in the
convolution's order: equal up to float rounding (``tests/ops/test_depthwise.py`` bounds it against
``lax.conv_general_dilated``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _taps(x: jax.Array, kh: int, kw: int, stride: int, padding: int, dilation: int):
    """(i, j, the [N, Ho, Wo, C] input window kernel tap (i, j) multiplies), for every tap in row-major
    order: the shifted views both convolutions here sum over (``torch.nn.Conv2d``'s geometry)."""
    if padding:
        x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    h, w = x.shape[1], x.shape[2]
    s, d = stride, dilation
    ho, wo = (h - d * (kh - 1) - 1) // s + 1, (w - d * (kw - 1) - 1) // s + 1
    for i in range(kh):
        for j in range(kw):
            yield i, j, x[:, d * i : d * i + s * (ho - 1) + 1 : s, d * j : d * j + s * (wo - 1) + 1 : s, :]


def depthwise_conv(
    x: jax.Array, kernel: jax.Array, stride: int = 1, padding: int = 0, dilation: int = 1
) -> jax.Array:
    """Per-channel 2-D cross-correlation (no kernel flip), symmetric zero padding.

    out[n, u, v, c] = sum_{i, j} xp[n, s u + d i, s v + d j, c] * kernel[i, j, 0, c], xp = x zero-padded by p.

    Args:
      x: [N, H, W, C].
      kernel: [kh, kw, 1, C] (HWIO of a convolution with ``feature_group_count = C``).
      stride, padding, dilation: as ``torch.nn.Conv2d``'s (the same on both spatial axes).

    Returns:
      [N, Ho, Wo, C], Ho = (H + 2 p - d (kh - 1) - 1) // s + 1 (Wo alike), in the promoted dtype.
    """
    kh, kw, one, c = kernel.shape
    if one != 1 or x.shape[-1] != c:
        raise ValueError(f"depthwise_conv: kernel {kernel.shape} does not fit input channels {x.shape[-1]}")
    dtype = jnp.result_type(x, kernel)
    x, kernel = x.astype(dtype), kernel.astype(dtype)
    out = None
    for i, j, tap in _taps(x, kh, kw, stride, padding, dilation):
        term = tap * kernel[i, j, 0]
        out = term if out is None else out + term
    return out


# A dense convolution on at most MAX_NARROW_CHANNELS inputs and MAX_NARROW_TERMS kernel taps x inputs runs
# as broadcast multiply-adds (``narrow_conv``): NanoTrack's 3x3 stem on RGB (27 terms) takes 0.33 ms there
# against 0.68 ms as an XLA:CPU convolution (255 crop, 2-core development CPU); wider inputs (1x1 layers
# included) belong to the convolution.
MAX_NARROW_CHANNELS = 3
MAX_NARROW_TERMS = 32


def narrow(kernel_shape: tuple[int, ...]) -> bool:
    """Whether a dense HWIO kernel of this shape runs as ``narrow_conv``."""
    kh, kw, ci, _ = kernel_shape
    return ci <= MAX_NARROW_CHANNELS and kh * kw * ci <= MAX_NARROW_TERMS


def narrow_conv(
    x: jax.Array, kernel: jax.Array, stride: int = 1, padding: int = 0, dilation: int = 1
) -> jax.Array:
    """A dense 2-D cross-correlation with few input channels (an RGB stem) as sums of shifted products.

    out[n, u, v, o] = sum_{i, j, c} xp[n, s u + d i, s v + d j, c] * kernel[i, j, c, o].

    Args:
      x: [N, H, W, Ci].
      kernel: [kh, kw, Ci, Co] (HWIO).
      stride, padding, dilation: as ``torch.nn.Conv2d``'s.

    Returns:
      [N, Ho, Wo, Co] in the promoted dtype (``depthwise_conv``'s geometry).
    """
    kh, kw, ci, _ = kernel.shape
    dtype = jnp.result_type(x, kernel)
    x, kernel = x.astype(dtype), kernel.astype(dtype)
    out = None
    for i, j, tap in _taps(x, kh, kw, stride, padding, dilation):
        for c in range(ci):
            term = tap[..., c : c + 1] * kernel[i, j, c]
            out = term if out is None else out + term
    return out
