"""``ops.pointwise``: the 1x1 convolution whose gradients are matrix products. Its forward is the lax
convolution itself (bitwise); its gradients equal autodiff of the lax convolution (float64, to rounding),
also inside ``shard_map`` with a replicated kernel; other convolutions pass through to lax unchanged;
the models' 1x1 layers use it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from siamrn_jax.models.layers import conv
from siamrn_jax.ops import conv_grad, pointwise
from tests.ops.sharded_grad import kernel_grad_in_shard_map

DN = ("NHWC", "HWIO", "NHWC")


def _lax(x, w, pad=0):
    return jax.lax.conv_general_dilated(x, w, (1, 1), ((pad, pad), (pad, pad)), dimension_numbers=DN)


def _data(dtype, k=1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (2, 5, 6, 7)).astype(dtype)
    w = rng.normal(0, 1, (k, k, 7, 3)).astype(dtype)
    weights = rng.normal(0, 1, (2, 5, 6, 3)).astype(dtype)
    return x, w, weights


def test_forward_is_the_lax_convolution():
    x, w, _ = _data(np.float32)
    np.testing.assert_array_equal(np.asarray(pointwise.pointwise(x, w)), np.asarray(_lax(x, w)))


def test_gradients_equal_autodiff_of_the_lax_convolution():
    with jax.enable_x64(True):
        x, w, weights = _data(np.float64)

        def loss(f):
            return lambda x, w: jnp.sum(jnp.tanh(f(x, w)) * weights)

        got = jax.grad(loss(pointwise.pointwise), argnums=(0, 1))(x, w)
        want = jax.grad(loss(_lax), argnums=(0, 1))(x, w)
    for g, r in zip(got, want, strict=True):
        assert g.dtype == np.float64 and g.shape == r.shape
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-12, atol=1e-12)


def test_replicated_kernel_gradient_inside_shard_map():
    """The step differentiates inside shard_map with replicated parameters: the kernel's gradient is the
    full-batch one (reduced over the mesh axis), as for the lax convolution."""
    x, w, weights = _data(np.float32)
    got, want = (
        kernel_grad_in_shard_map(pointwise.pointwise)(x, w, weights),
        kernel_grad_in_shard_map(_lax)(x, w, weights),
    )
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_other_convolutions_go_to_lax_unchanged():
    x, w, _ = _data(np.float32, k=3)
    dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, DN)
    args = (x, w, (1, 1), ((1, 1), (1, 1)))
    jaxpr = str(
        jax.make_jaxpr(lambda x, w: conv_grad.conv_general_dilated(x, w, *args[2:], dimension_numbers=dn))(
            x, w
        )
    )
    assert "custom_vjp" not in jaxpr and "conv_general_dilated" in jaxpr
    np.testing.assert_array_equal(
        np.asarray(conv_grad.conv_general_dilated(*args, dimension_numbers=dn)), np.asarray(_lax(x, w, 1))
    )


def test_model_1x1_layers_use_it():
    """Differentiated, a model 1x1 layer has one convolution left (its forward; both gradients are matrix
    products), a 3x3 layer three (forward, input and weight gradients)."""
    x = jnp.ones((1, 4, 4, 8))
    for k, convolutions in ((1, 1), (3, 3)):
        layer = conv(5, k, name="c", padding=k // 2)
        variables = layer.init(jax.random.key(0), x)
        grad = jax.grad(lambda v, x, layer=layer: jnp.sum(layer.apply(v, x)), argnums=(0, 1))
        jaxpr = str(jax.make_jaxpr(grad)(variables, x))
        assert jaxpr.count("conv_general_dilated[") == convolutions, (k, jaxpr)
