"""Winograd F(2x2, 3x3) convolutions (siamrn_jax.ops.winograd) and where the model uses them.

Reference: the direct convolution in float64 (NumPy inputs through ``lax.conv_general_dilated`` with
x64 off is float32, so the reference is an explicit float64 sum). Tolerance: max |d| / max |ref| <= 5e-6,
measured 3e-7 to 1e-6 (the direct float32 convolution: 4e-7 to 5e-7).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siamrn_jax import checkpoint
from siamrn_jax.models.layers import conv
from siamrn_jax.ops import winograd


def conv_f64(x: np.ndarray, w: np.ndarray, padding: int, dilation: int) -> np.ndarray:
    """Direct cross-correlation in float64: [N, H, W, Ci] x [3, 3, Ci, Co]."""
    x = np.pad(x.astype(np.float64), ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    ho, wo = x.shape[1] - 2 * dilation, x.shape[2] - 2 * dilation
    out = np.zeros((x.shape[0], ho, wo, w.shape[-1]))
    for i in range(3):
        for j in range(3):
            patch = x[:, i * dilation : i * dilation + ho, j * dilation : j * dilation + wo]
            out += patch @ w[i, j].astype(np.float64)
    return out


@pytest.mark.parametrize(
    "n,h,w,padding,dilation",
    [
        (1, 31, 31, 1, 1),
        (2, 15, 15, 2, 2),
        (1, 31, 31, 4, 4),
        (1, 31, 29, 0, 1),
        (1, 8, 11, 2, 2),
        (3, 5, 5, 0, 1),
    ],
)
def test_conv3x3_matches_direct_convolution(n, h, w, padding, dilation):
    rng = np.random.default_rng(h * 7 + dilation)
    x = rng.standard_normal((n, h, w, 24)).astype(np.float32)
    k = rng.standard_normal((3, 3, 24, 40)).astype(np.float32)
    ref = conv_f64(x, k, padding, dilation)
    got = np.asarray(winograd.conv3x3(jnp.asarray(x), winograd.transform_kernel(k), padding, dilation))
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() / np.abs(ref).max() <= 5e-6


def test_transform_kernel_is_g_g_gt():
    g = np.random.default_rng(1).standard_normal((3, 3, 5, 6)).astype(np.float32)
    G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    ref = np.einsum("ai,ijco,bj->abco", G, g.astype(np.float64), G).reshape(16, 5, 6)
    np.testing.assert_allclose(np.asarray(winograd.transform_kernel(g)), ref, rtol=1e-6, atol=1e-7)


def test_with_winograd_transforms_only_large_dense_3x3_kernels():
    big = np.zeros((3, 3, 256, 256), np.float32)
    params = {
        "a": {"kernel": big},
        "b": {"kernel": np.zeros((1, 1, 512, 512), np.float32)},  # 1x1
        "c": {"kernel": np.zeros((3, 3, 1, 4096), np.float32)},  # depthwise
        "d": {"kernel": np.zeros((3, 3, 128, 256), np.float32)},  # too few channels
        "e": {"f": {"kernel": big}, "scale": np.ones(4, np.float32)},
    }
    out = winograd.with_winograd({"params": params, "batch_stats": {}})
    assert out["params"] is params
    assert jax.tree.map(np.shape, out[winograd.COLLECTION]) == {
        "a": {"kernel": (16, 256, 256)},
        "e": {"f": {"kernel": (16, 256, 256)}},
    }


def _conv_prims(variables, x, **kw) -> set[str]:
    layer = conv(256, 3, name="c", **kw)
    jaxpr = jax.make_jaxpr(lambda v, x: layer.apply(v, x))(variables, x)
    return {e.primitive.name for e in jaxpr.eqns}


def test_conv_takes_the_winograd_path_only_when_prepared_and_worth_it():
    x = jnp.ones((1, 31, 31, 256))
    v = conv(256, 3, name="c", padding=2, dilation=2).init(jax.random.key(0), x)
    ready = winograd.with_winograd(v)
    assert "conv_general_dilated" in _conv_prims(v, x, padding=2, dilation=2)
    assert "conv_general_dilated" not in _conv_prims(ready, x, padding=2, dilation=2)
    small = jnp.ones((1, 9, 9, 256))  # 7x7 x 256 x 256 < MIN_WORK: stays direct
    assert "conv_general_dilated" in _conv_prims(ready, small)
    strided = _conv_prims(ready, x, stride=2)  # stride 2: direct, through ops.strided (its own gradient)
    assert "custom_vjp_call" in strided and "dot_general" not in strided
    a = conv(256, 3, name="c", padding=2, dilation=2).apply(v, x * jnp.arange(256) / 256)
    b = conv(256, 3, name="c", padding=2, dilation=2).apply(ready, x * jnp.arange(256) / 256)
    assert float(jnp.abs(a - b).max() / jnp.abs(a).max()) <= 5e-6


@pytest.mark.slow
def test_full_model_search_branch_with_winograd_matches_direct():
    """ResNet-50 + neck + BAN head at full size: the readied variables (Winograd on CPU, device arrays)
    give the raw variables' outputs to float32 rounding (measured 1.3e-6 relative)."""
    from siamrn_jax.config import build_model
    from siamrn_jax.models.siamrn import SiamRN

    model = build_model({})
    raw = checkpoint.init_variables(model, 0)
    ready = checkpoint.inference_variables(raw)
    assert winograd.COLLECTION in ready
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(0, 255, (1, 255, 255, 3)).astype(np.float32))
    f = jax.jit(lambda v, x: model.apply(v, x, method=SiamRN.encode_search))
    for a, b in zip(f(raw, x), f(ready, x), strict=True):
        assert float(jnp.abs(a - b).max() / jnp.abs(a).max()) <= 1e-5
