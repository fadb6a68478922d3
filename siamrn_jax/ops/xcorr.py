"""Depthwise cross-correlation (pysot ``core/xcorr.py: xcorr_depthwise``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


@jax.custom_vjp
def xcorr_depthwise(search: jax.Array, kernel: jax.Array) -> jax.Array:
    """Per-sample, per-channel valid cross-correlation (no kernel flip, no padding).

    out[b, u, v, c] = sum_{a, d} search[b, u + a, v + d, c] * kernel[b, a, d, c]

    The gradients are correlations of the same kind (``_xcorr_bwd``): JAX's own transpose of the grouped
    convolution w.r.t. the kernel is a ``batch_group_count`` convolution, which XLA:CPU expands into a
    dense convolution over all B*C x B*C channel pairs and then masks: at B=28, C=256 a [7168, 5, 5, 7168]
    float32 buffer (4.9 GB) per call, six calls per train step (measured on CPU: 9.8 GB of temporaries and
    38 s for one such gradient; 70 MB and 2.7 s with this VJP). The custom VJP is the same math in O(B*C)
    memory (XLA:GPU was not checked).

    Args:
      search: [B, Hs, Ws, C] search features (e.g. 29x29 after the head's 3x3 conv).
      kernel: [B, Hk, Wk, C] template features used as per-channel kernels (e.g. 5x5).

    Returns:
      [B, Hs - Hk + 1, Ws - Wk + 1, C] (25x25 for SiamRN), in the promoted dtype of the inputs.
    """
    return _xcorr(search, kernel)


# Past this many slice-and-multiply terms the unrolled sums below would bloat the program; the grouped
# convolution takes over (no SiamRN / NanoTrack shape comes near it).
MAX_UNROLLED_TERMS = 128


def _xcorr(search: jax.Array, kernel: jax.Array) -> jax.Array:
    """The forward of ``xcorr_depthwise``.

    As sums of shifted element-wise products, over the kernel taps or, when there are fewer, over the
    output pixels (the kernel gradient correlates 29x29 features with a 25x25 cotangent into 5x5): one
    fused element-wise loop on XLA:CPU. XLA:CPU runs the grouped convolution (groups = B*C) the official
    code uses 38x slower: 5.9 ms against 0.16 ms for 29x29x256 by 5x5, i.e. 35 ms of the BAN head's
    55 ms per frame (6 correlations). Products and sums are float32 on every backend (no reduced-precision
    convolution passes), so ``Precision.HIGHEST`` of the grouped form is implied.
    """
    b, hs, ws, c = search.shape
    _, hk, wk, _ = kernel.shape
    ho, wo = hs - hk + 1, ws - wk + 1
    dtype = jnp.result_type(search, kernel)
    search, kernel = search.astype(dtype), kernel.astype(dtype)
    if min(hk * wk, ho * wo) > MAX_UNROLLED_TERMS:
        return grouped_xcorr(search, kernel)
    if hk * wk <= ho * wo:
        out = None
        for i in range(hk):
            for j in range(wk):
                term = search[:, i : i + ho, j : j + wo, :] * kernel[:, i : i + 1, j : j + 1, :]
                out = term if out is None else out + term
        return out
    rows = [
        [jnp.sum(search[:, u : u + hk, v : v + wk, :] * kernel, axis=(1, 2)) for v in range(wo)]
        for u in range(ho)
    ]
    return jnp.stack([jnp.stack(r, axis=1) for r in rows], axis=1)


def grouped_xcorr(search: jax.Array, kernel: jax.Array) -> jax.Array:
    """``_xcorr`` as one grouped convolution (groups = B*C), the official code's formulation."""
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


def _xcorr_fwd(search: jax.Array, kernel: jax.Array):
    return _xcorr(search, kernel), (search, kernel)


def _xcorr_bwd(res, g: jax.Array):
    """Cotangents of (search, kernel) for the output cotangent g [B, Ho, Wo, C], each as one forward-style
    grouped correlation:

    d_kernel[b, a, d, c] = sum_{u, v} search[b, u + a, v + d, c] g[b, u, v, c] = xcorr(search, g);
    d_search[b, i, j, c] = sum_{a, d} g[b, i - a, j - d, c] kernel[b, a, d, c]
                         = xcorr(g zero-padded by (Hk - 1, Wk - 1), kernel flipped in both axes).
    """
    search, kernel = res
    hk, wk = kernel.shape[1], kernel.shape[2]
    d_kernel = _xcorr(search, g.astype(search.dtype))
    padded = jnp.pad(g, ((0, 0), (hk - 1, hk - 1), (wk - 1, wk - 1), (0, 0)))
    d_search = _xcorr(padded.astype(kernel.dtype), kernel[:, ::-1, ::-1, :])
    return d_search.astype(search.dtype), d_kernel.astype(kernel.dtype)


xcorr_depthwise.defvjp(_xcorr_fwd, _xcorr_bwd)


def correlate_equal(support: jax.Array, query: jax.Array) -> jax.Array:
    """Depthwise correlation of two equally sized maps: one value per channel.

    Args:
      support, query: [N, H, W, C].

    Returns:
      [N, C] = sum over H, W of support * query (the local detector's "conv with the support as kernel").
    """
    return jnp.einsum("nhwc,nhwc->nc", support, query, precision=lax.Precision.HIGHEST)
