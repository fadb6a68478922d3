"""Strided k x k convolutions with a weight gradient XLA:CPU computes well.

Why: differentiated as a convolution, the weight gradient of a strided convolution (the stride-2 3x3
``conv2`` and 3x3 downsample of ResNet-50's layer2) is a window-dilated convolution that XLA:CPU feeds
with its input copied channel-major: for the downsample, layer1's output [4, 63, 63, 256] transposed,
65 ms of a 3.7 s phase-b train step on the 2-core development CPU (issue 25). Written per tap, the
gradient is ``sum_taps (dy^T x_tap)^T`` over the strided views ``x_tap`` of the padded input, each a
[P, Ci] x [P, Co] product read in its own layout, as ``ops.pointwise`` does for 1x1 layers. The forward
pass and the input gradient are ``lax``'s, so inference, export and every forward value are unchanged.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from siamrn_jax.ops.pointwise import NHWC
from siamrn_jax.ops.varying import varying_like


def is_strided(lhs, rhs, window_strides, padding, lhs_dilation, dimension_numbers, groups) -> bool:
    """A dense NHWC / HWIO k x k convolution (k > 1) with a stride above 1 and explicit padding."""
    if lhs.ndim != 4 or groups != 1 or isinstance(padding, str) or rhs.shape[0] == 1:
        return False
    if all(s == 1 for s in window_strides):
        return False
    if lhs_dilation is not None and tuple(lhs_dilation) != (1, 1):
        return False
    return dimension_numbers == jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, NHWC)


def strided(x, kernel, stride, padding, dilation, precision=None) -> jax.Array:
    """x [N, H, W, Ci], kernel [kh, kw, Ci, Co] -> [N, Ho, Wo, Co]: ``lax.conv_general_dilated`` with
    ``stride`` (sy, sx), ``padding`` ((top, bottom), (left, right)) and ``dilation`` (dy, dx), and the
    weight gradient per tap (module docstring).

    Inside ``shard_map`` the kernel is marked varying like x first (``ops.varying``)."""
    (kernel,) = varying_like(x, kernel)
    conf = (tuple(stride), tuple(map(tuple, padding)), tuple(dilation), precision)
    return _strided(x, kernel, conf)


def _forward(x, kernel, conf):
    stride, padding, dilation, precision = conf
    return jax.lax.conv_general_dilated(
        x, kernel, stride, padding, rhs_dilation=dilation, dimension_numbers=NHWC, precision=precision
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _strided(x, kernel, conf):
    return _forward(x, kernel, conf)


def _strided_fwd(x, kernel, conf):
    return _forward(x, kernel, conf), (x, kernel)


def _strided_bwd(conf, residuals, dy):
    x, kernel = residuals
    (sy, sx), padding, (dly, dlx), precision = conf
    (dx,) = jax.linear_transpose(lambda x_: _forward(x_, kernel, conf), x)(dy)
    # Meant to read x as stored rather than fuse the elementwise chain that produced x into each of the
    # kh * kw strided views below. XLA:CPU drops optimization barriers before fusion (none is left in the
    # compiled phase-b step, issue 27 / 25 notes), so there it does nothing; layers.materialize is the
    # form that works on XLA:CPU.
    xp = jnp.pad(jax.lax.optimization_barrier(x), ((0, 0), *padding, (0, 0)))
    n, ho, wo, co = dy.shape
    dy2 = dy.reshape(-1, co)
    kh, kw = kernel.shape[:2]
    taps = []
    for i in range(kh):
        for j in range(kw):
            view = xp[
                :, i * dly : i * dly + sy * (ho - 1) + 1 : sy, j * dlx : j * dlx + sx * (wo - 1) + 1 : sx
            ]
            taps.append(jnp.einsum("po,pi->oi", dy2, view.reshape(-1, x.shape[-1]), precision=precision).T)
    dw = jnp.stack(taps).reshape(kernel.shape)
    return dx.astype(x.dtype), dw.astype(kernel.dtype)


_strided.defvjp(_strided_fwd, _strided_bwd)
