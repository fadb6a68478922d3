"""``ops.strided``: strided k x k convolutions whose weight gradient is one matrix product per tap. Its
forward is the lax convolution itself (bitwise); its gradients equal autodiff of the lax convolution
(float64, to rounding) for the strides, paddings and dilations the models use, also inside ``shard_map``
with a replicated kernel; other convolutions pass through; the models' strided layers use it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siamrn_jax.models.layers import conv
from siamrn_jax.ops import conv_grad, strided
from tests.ops.sharded_grad import kernel_grad_in_shard_map

DN = ("NHWC", "HWIO", "NHWC")
# (kernel, stride, padding, dilation): ResNet-50's layer2 conv2 / downsample (3, 2, 0, 1), its stem
# (7, 2, 0, 1), NanoTrack's stem (3, 2, 1, 1), and uneven cases (odd sizes, stride 3, dilation 2).
CASES = [(3, 2, 0, 1), (7, 2, 0, 1), (3, 2, 1, 1), (3, 3, 1, 1), (3, 2, 2, 2), (2, 2, 0, 1)]


def _lax(stride, pad, dil):
    def f(x, w):
        return jax.lax.conv_general_dilated(
            x, w, (stride, stride), ((pad, pad), (pad, pad)), rhs_dilation=(dil, dil), dimension_numbers=DN
        )

    return f


def _ours(stride, pad, dil):
    return lambda x, w: strided.strided(x, w, (stride, stride), ((pad, pad), (pad, pad)), (dil, dil))


def _data(dtype, k, seed=0, hw=(13, 12)):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (2, *hw, 5)).astype(dtype)
    w = rng.normal(0, 1, (k, k, 5, 3)).astype(dtype)
    return x, w


@pytest.mark.parametrize("k,stride,pad,dil", CASES)
def test_forward_and_gradients_equal_the_lax_convolution(k, stride, pad, dil):
    x32, w32 = _data(np.float32, k)
    np.testing.assert_array_equal(
        np.asarray(_ours(stride, pad, dil)(x32, w32)), np.asarray(_lax(stride, pad, dil)(x32, w32))
    )
    with jax.enable_x64(True):
        x, w = _data(np.float64, k)
        weights = np.random.default_rng(1).normal(0, 1, _lax(stride, pad, dil)(x, w).shape)

        def loss(f):
            return lambda x, w: jnp.sum(jnp.tanh(f(x, w)) * weights)

        got = jax.grad(loss(_ours(stride, pad, dil)), argnums=(0, 1))(x, w)
        want = jax.grad(loss(_lax(stride, pad, dil)), argnums=(0, 1))(x, w)
    for g, r in zip(got, want, strict=True):
        assert g.dtype == np.float64 and g.shape == r.shape
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-12, atol=1e-12)


def test_replicated_kernel_gradient_inside_shard_map():
    x, w = _data(np.float32, 3)
    weights = np.random.default_rng(1).normal(0, 1, (2, 6, 5, 3)).astype(np.float32)
    got, want = (
        kernel_grad_in_shard_map(_ours(2, 0, 1))(x, w, weights),
        kernel_grad_in_shard_map(_lax(2, 0, 1))(x, w, weights),
    )
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_other_convolutions_go_to_lax_unchanged():
    x, w = _data(np.float32, 3)
    dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, DN)
    for stride, groups in (((1, 1), 1), ((2, 2), 5)):
        wg = w[:, :, :1] if groups > 1 else w
        wg = jnp.tile(wg, (1, 1, 1, 5)) if groups > 1 else wg

        def f(x, w, stride=stride, groups=groups):
            return conv_grad.conv_general_dilated(
                x, w, stride, ((1, 1), (1, 1)), dimension_numbers=dn, feature_group_count=groups
            )

        assert "custom_vjp" not in str(jax.make_jaxpr(f)(x, wg))


def test_model_strided_layers_use_it():
    """Differentiated, a model's strided 3x3 layer has two convolutions left (forward, input gradient)
    and nine products (the weight gradient), a stride-1 3x3 layer three convolutions."""
    x = jnp.ones((1, 9, 9, 8))
    for stride, convolutions, products in ((2, 2, 9), (1, 3, 0)):
        layer = conv(5, 3, name="c", stride=stride)
        variables = layer.init(jax.random.key(0), x)
        grad = jax.grad(lambda v, x, layer=layer: jnp.sum(layer.apply(v, x)), argnums=(0, 1))
        jaxpr = str(jax.make_jaxpr(grad)(variables, x))
        assert jaxpr.count("conv_general_dilated[") == convolutions, (stride, jaxpr)
        assert jaxpr.count("dot_general[") == products, (stride, jaxpr)
