"""Depthwise convolution as shifted multiply-adds (siamrn_jax.ops.depthwise) against XLA's grouped
convolution and an explicit float64 sum.

Tolerance: max |d| / max |ref| <= 1e-6 against the float64 reference (measured 1e-7 to 2e-7, the grouped
float32 convolution alike), at NanoTrack's layer geometries and with dilation.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from siamrn_jax.ops import depthwise
from siamrn_jax.ops.depthwise import depthwise_conv


def depthwise_f64(x: np.ndarray, k: np.ndarray, stride: int, padding: int, dilation: int) -> np.ndarray:
    """Per-channel cross-correlation in float64: [N, H, W, C] x [kh, kw, 1, C]."""
    x = np.pad(x.astype(np.float64), ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    kh, kw = k.shape[:2]
    ho = (x.shape[1] - dilation * (kh - 1) - 1) // stride + 1
    wo = (x.shape[2] - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, x.shape[3]))
    for n in range(x.shape[0]):
        for u in range(ho):
            for v in range(wo):
                patch = x[n, u * stride : u * stride + dilation * (kh - 1) + 1 : dilation]
                patch = patch[:, v * stride : v * stride + dilation * (kw - 1) + 1 : dilation]
                out[n, u, v] = np.einsum("ijc,ijc->c", patch, k[:, :, 0].astype(np.float64))
    return out


@pytest.mark.parametrize(
    "n,h,w,c,k,stride,padding,dilation",
    [
        (1, 17, 17, 16, 3, 2, 1, 1),  # MobileNetV3 block 1 (a 128x128 map cut down)
        (2, 16, 16, 24, 5, 1, 2, 1),  # 5x5 stride 1
        (1, 15, 13, 8, 5, 2, 2, 1),  # odd sides, stride 2
        (1, 9, 9, 6, 2, 1, 0, 1),  # V3's 2x2 tail conv: 16 -> 15
        (1, 12, 12, 4, 3, 1, 2, 2),  # dilated
        (3, 7, 7, 5, 3, 1, 1, 1),
    ],
)
def test_depthwise_conv_matches_grouped_convolution(n, h, w, c, k, stride, padding, dilation):
    rng = np.random.default_rng(h * 10 + k)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    kern = rng.standard_normal((k, k, 1, c)).astype(np.float32)
    ref = depthwise_f64(x, kern, stride, padding, dilation)
    got = np.asarray(depthwise_conv(jnp.asarray(x), jnp.asarray(kern), stride, padding, dilation))
    grouped = lax.conv_general_dilated(
        x,
        kern,
        (stride, stride),
        ((padding, padding), (padding, padding)),
        rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=c,
        precision=lax.Precision.HIGHEST,
    )
    assert got.shape == ref.shape == grouped.shape
    scale = np.abs(ref).max()
    assert np.abs(got - ref).max() / scale <= 1e-6
    assert np.abs(got - np.asarray(grouped)).max() / scale <= 2e-6


def test_depthwise_conv_rejects_a_kernel_of_other_width():
    with pytest.raises(ValueError, match="does not fit"):
        depthwise_conv(jnp.zeros((1, 5, 5, 4)), jnp.zeros((3, 3, 1, 3)))


def conv_f64(x: np.ndarray, k: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Dense cross-correlation in float64: [N, H, W, Ci] x [kh, kw, Ci, Co]."""
    x = np.pad(x.astype(np.float64), ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    kh, kw = k.shape[:2]
    ho, wo = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, k.shape[-1]))
    for i in range(kh):
        for j in range(kw):
            out += (
                x[:, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride] @ k[i, j]
            )
    return out


@pytest.mark.parametrize("h,stride,padding", [(31, 2, 1), (30, 2, 1), (9, 1, 0)])
def test_narrow_conv_matches_the_dense_convolution(h, stride, padding):
    """NanoTrack's stem (3x3 stride 2 on RGB, raw 0-255 pixels) as broadcast multiply-adds."""
    rng = np.random.default_rng(h)
    x = rng.integers(0, 256, (1, h, h, 3)).astype(np.uint8)
    k = rng.standard_normal((3, 3, 3, 16)).astype(np.float32)
    ref = conv_f64(x, k, stride, padding)
    got = np.asarray(depthwise.narrow_conv(jnp.asarray(x), jnp.asarray(k), stride, padding))
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.abs(got - ref).max() / np.abs(ref).max() <= 1e-6
    assert (
        depthwise.narrow(k.shape)
        and not depthwise.narrow((1, 1, 16, 72))
        and not depthwise.narrow((7, 7, 3, 8))
    )
