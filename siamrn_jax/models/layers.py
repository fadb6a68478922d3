"""Small building blocks shared by the SiamRN modules.

Every helper takes an explicit ``name`` so that the Flax parameter tree mirrors the PyTorch state-dict
keys of the official code (``conv1``, ``downsample/0``, ``head/3``...): conversion is then a table of
module kinds, not index arithmetic (see ``siamrn_jax.convert.mapping``).

All tensors are NHWC. Convolutions are cross-correlations (no kernel flip), exactly like ``torch.nn.Conv2d``.
Padding is always explicit and symmetric: ``'SAME'`` pads stride-2 convolutions asymmetrically and would
not match PyTorch.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from siamrn_jax.errors import SiamrnError
from siamrn_jax.ops import conv_grad, depthwise, winograd
from siamrn_jax.ops.depthwise import depthwise_conv
from siamrn_jax.ops.varying import varying_like

Dtype = Any

# Variable collection of the load-time inference transforms (``siamrn_jax.models.fuse``): at a
# convolution's path, the ``kernel`` (and ``bias``) to run with (a following BatchNorm folded in); at a
# folded BatchNorm's path, ``folded`` (the BatchNorm is then the identity in eval mode).
FUSED = "fused"

# PyTorch's default Conv2d/Linear weight init: kaiming_uniform(a=sqrt(5)) == U(+-sqrt(1/fan_in)).
torch_default_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
# pysot's ResNet init: N(0, sqrt(2 / (k*k*out_channels))), i.e. kaiming normal with fan_out.
resnet_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
# Relation-detector Linear layers: N(0, 0.01^2), bias 0 (official dis_detector.py).
rd_dense_init = nn.initializers.normal(0.01)
# Non-local convs: kaiming normal (fan_in) weights (official non_local.py).
kaiming_fan_in_init = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def torch_default_bias_init(fan_in: int):
    """PyTorch's default bias init U(+-1/sqrt(fan_in)); Flax bias inits do not see fan_in, so bind it."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Dtype = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class Conv(nn.Conv):
    """``nn.Conv`` (same attributes, parameters and direct convolution) that runs as a Winograd F(2x2, 3x3)
    convolution when the variables hold its transformed kernel (``winograd/<path>/kernel``, added by
    ``siamrn_jax.ops.winograd.with_winograd`` at load time on CPU) and the layer is a dense, stride-1 3x3
    convolution with enough work to gain (``winograd.MIN_WORK``). Same result to float32 rounding."""

    def _winograd_padding(self, inputs: jax.Array) -> tuple[int, int] | None:
        """(padding, dilation) when this call can take the Winograd path, else None."""
        if inputs.ndim != 4 or not self.has_variable(winograd.COLLECTION, "kernel"):
            return None
        if tuple(self.kernel_size) != (3, 3) or self.feature_group_count != 1 or self.mask is not None:
            return None
        if self.strides not in (1, (1, 1), None) or self.input_dilation not in (1, (1, 1), None):
            return None
        (p0, p1), (p2, p3) = self.padding  # conv() always passes explicit symmetric padding
        d = self.kernel_dilation if isinstance(self.kernel_dilation, int) else self.kernel_dilation[0]
        if len({p0, p1, p2, p3}) != 1 or self.kernel_dilation not in (d, (d, d)):
            return None
        ho, wo = inputs.shape[1] + 2 * p0 - 2 * d, inputs.shape[2] + 2 * p0 - 2 * d
        if ho * wo * inputs.shape[3] * self.features < winograd.MIN_WORK:
            return None
        return p0, d

    def __call__(self, inputs: jax.Array) -> jax.Array:
        if self.has_variable(FUSED, "kernel") and full_precision(self.dtype):
            return self._fused(inputs)
        geometry = self._winograd_padding(inputs)
        if geometry is None:
            return super().__call__(inputs)
        u = self.get_variable(winograd.COLLECTION, "kernel")
        bias = self.get_variable("params", "bias") if self.use_bias else None
        inputs, u, bias = self.promote_dtype(inputs, u, bias, dtype=self.dtype)
        y = winograd.conv3x3(inputs, u, *geometry)
        return y if bias is None else y + bias

    def _fused(self, inputs: jax.Array) -> jax.Array:
        """The inference form prepared at load (``siamrn_jax.models.fuse``): the ``fused`` kernel and bias
        (a following BatchNorm folded in), a depthwise layer as shifted multiply-adds (``depthwise_conv``:
        XLA:CPU's grouped convolution is 10-40x slower at NanoTrack's sizes), a dense one on very few input
        channels likewise (``narrow_conv``, the RGB stem), the others as ``nn.Conv``."""
        kernel = self.get_variable(FUSED, "kernel")
        if self.has_variable(FUSED, "bias"):
            bias = self.get_variable(FUSED, "bias")
        else:
            bias = self.get_variable("params", "bias") if self.use_bias else None
        inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        (p0, p1), (p2, p3) = self.padding  # conv() always passes explicit symmetric padding
        s, d = self.strides[0], self.kernel_dilation[0]
        groups = self.feature_group_count
        symmetric = len({p0, p1, p2, p3}) == 1
        if groups > 1 and groups == inputs.shape[-1] == self.features and symmetric:
            y = depthwise_conv(inputs, kernel, s, p0, d)
        elif groups == 1 and symmetric and depthwise.narrow(kernel.shape):
            y = depthwise.narrow_conv(inputs, kernel, s, p0, d)  # NanoTrack's RGB stem
        else:
            y = jax.lax.conv_general_dilated(
                inputs,
                kernel,
                self.strides,
                self.padding,
                rhs_dilation=self.kernel_dilation,
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=groups,
                precision=self.precision,
            )
        return y if bias is None else y + bias


def conv(
    features: int,
    kernel: int,
    *,
    name: str,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    use_bias: bool = False,
    in_features: int | None = None,
    groups: int = 1,
    kernel_init=torch_default_kernel_init,
    dtype: Dtype = jnp.float32,
) -> Conv:
    """A square ``Conv`` (``nn.Conv``; Winograd where prepared) with PyTorch semantics (symmetric explicit
    padding, optional bias, ``groups`` as in ``torch.nn.Conv2d``: ``groups == features`` is depthwise).

    ``in_features`` is only needed for the PyTorch default bias init (its bound depends on fan-in).
    """
    bias_init = nn.initializers.zeros
    if use_bias and in_features is not None:
        bias_init = torch_default_bias_init(in_features // groups * kernel * kernel)
    # 1x1 layers differentiate their weight as a matrix product (``ops.pointwise``), strided dense k x k
    # layers as one product per tap (``ops.strided``); same forward (``ops.conv_grad``).
    grads = {}
    if kernel == 1 or (stride > 1 and groups == 1):
        grads = {"conv_general_dilated": conv_grad.conv_general_dilated}
    return Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        kernel_dilation=(dilation, dilation),
        feature_group_count=groups,
        use_bias=use_bias,
        kernel_init=kernel_init,
        bias_init=bias_init,
        dtype=dtype,
        name=name,
        **grads,
    )


def accum_dtype(dtype: Dtype) -> jnp.dtype:
    """The dtype of the sums a model of computation ``dtype`` takes at full precision (BatchNorm
    statistics, softmax logits, level fusions, ``exp``): float32 for float32 and bfloat16 models, float64 for
    a float64 model (``jax_enable_x64``), so that a float64 model computes in float64 end to end."""
    return jnp.promote_types(dtype, jnp.float32)


def full_precision(dtype: Dtype) -> bool:
    """Whether ``dtype`` computes at least in float32 (float32, float64): the folded inference form
    (``FUSED``) is used only there, where folding changes the result by float rounding alone."""
    return jnp.dtype(dtype) == accum_dtype(dtype)


class FoldedBatchNormError(SiamrnError, ValueError):
    """A BatchNorm folded into its convolution (``FUSED``, inference variables) asked for train mode:
    train from the stored variables (``checkpoint.load(..., inference=False)``)."""


class BatchNorm(nn.Module):
    """``torch.nn.BatchNorm2d(eps=1e-5, momentum=0.1)`` over the last axis (NHWC), with Flax's variable
    names (``params/{scale,bias}``, ``batch_stats/{mean,var}``) so checkpoints are unchanged.

    Why not ``flax.linen.BatchNorm``: it updates the running variance with the *biased* batch variance;
    PyTorch (and so the official training) normalises with the biased one but updates ``running_var`` with
    the unbiased one, ``var * n / (n - 1)`` with n the number of values per channel. Every BatchNorm we
    train moves like the official one only with the latter (issue 25: all head variances in phase a).

    Batch statistics are two-pass (``mean((x - mean)^2)``, as PyTorch's CPU kernel) in ``accum_dtype``;
    normalisation is ``(x - mean) * (rsqrt(var + eps) * scale) + bias`` in that dtype, then one cast to
    ``dtype`` (the same operations as Flax's, so inference graphs and their ONNX folding are unchanged).
    Running statistics are not updated while the module is initialising.

    Attributes:
      use_running_average: eval mode (PyTorch ``eval()``); None leaves it to the call.
      momentum: PyTorch's momentum: ``running = (1 - momentum) running + momentum batch``.
      epsilon: added to the variance.
      scale_init: initialiser of ``scale`` (the non-local block's last BN starts at zero).
      dtype: output dtype (the computation dtype of the surrounding layers).
    """

    use_running_average: bool | None = None
    momentum: float = 0.1
    epsilon: float = 1e-5
    scale_init: Any = nn.initializers.ones
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, use_running_average: bool | None = None) -> jax.Array:
        """x [..., C] -> [..., C] in ``dtype``."""
        eval_mode = nn.merge_param("use_running_average", self.use_running_average, use_running_average)
        if self.has_variable(FUSED, "folded") and full_precision(self.dtype):
            if not eval_mode:
                raise FoldedBatchNormError(
                    f"BatchNorm {'/'.join(self.path)}: folded (inference variables) in train mode"
                )
            return x.astype(self.dtype)  # normalisation folded into the preceding convolution
        c = x.shape[-1]
        scale = self.param("scale", self.scale_init, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        acc = jnp.promote_types(accum_dtype(x.dtype), accum_dtype(self.dtype))
        x = x.astype(acc)
        if eval_mode:
            mean, var = ra_mean.value, ra_var.value
        else:
            y, mean, var = train_normalize(x, scale.astype(acc), bias.astype(acc), self.epsilon)
            if not self.is_initializing():
                n = x.size // c
                unbiased = var * (n / max(n - 1, 1))
                keep = 1.0 - self.momentum
                ra_mean.value = keep * ra_mean.value + self.momentum * mean
                ra_var.value = keep * ra_var.value + self.momentum * unbiased
            return y.astype(self.dtype)
        y = x - mean
        mul = jax.lax.rsqrt(var + self.epsilon) * scale
        return ((y * mul) + bias).astype(self.dtype)


def column_sums(x: jax.Array) -> jax.Array:
    """[P, C] -> [C], the sum over rows, as a matrix-vector product: XLA:CPU reduces over a major axis 5-10x
    slower than it multiplies (measured on a [3844, 2048] BatchNorm input: forward + backward 482 ms of
    CPU time with ``sum``, 77 ms with this, issue 25)."""
    ones = jnp.ones((1, x.shape[0]), x.dtype)
    return jax.lax.dot_general(ones, x, (((1,), (0,)), ((), ())), precision=jax.lax.Precision.HIGHEST)[0]


def spatial_mean(x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, C], the mean over H and W as ones [HW] times x [HW, C] (``column_sums``' reason:
    in a squeeze-and-excite block XLA:CPU fused the reduction with the depthwise convolution before it,
    ran it at a fraction of the memory bandwidth and computed the convolution a second time for the
    gating multiply: 0.66 of NanoTrack V2's 2.1 ms of XLA work per frame, issue 27)."""
    b, h, w, c = x.shape
    ones = jnp.ones((h * w,), x.dtype)
    dims = (((0,), (1,)), ((), ()))
    return jax.lax.dot_general(ones, x.reshape(b, h * w, c), dims, precision=jax.lax.Precision.HIGHEST) / (
        h * w
    )


def materialize(x: jax.Array) -> jax.Array:
    """``x`` unchanged (a NaN stays NaN; gradients equal except at NaNs, where they are 0), computed once
    into memory by XLA:CPU instead of again inside each consumer.

    Why: XLA:CPU fuses an elementwise producer into every consumer. In a residual chain, ``y_k = relu(bn(
    conv_k) + y_{k-1})``, each consumer of ``y_k`` (the next block's conv and residual add, the backward's
    ReLU mask and weight gradient) then recomputed the whole chain back to the stage's first block from
    every earlier block's conv output: up to 30 input arrays per fusion in layer3 of the ResNet-50, and
    ~100 ms of the 3.5 s phase-b training step (issue 25). Reading ``x`` three times in one expression
    (``isnan`` is ``x != x``, then the select) makes XLA's fusion stop at ``x``: its code-duplication limit
    counts how often a fused value would be evaluated, and that count grows geometrically along such a
    chain. ``tests/models/test_layers.py`` checks the effect on the installed jaxlib."""
    return jnp.where(jnp.isnan(x), jnp.nan, x)


def train_normalize(
    x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Train-mode BatchNorm: x [..., C] -> (y [..., C], batch mean [C], biased batch variance [C]), all in
    x's dtype; two-pass statistics as PyTorch's CPU kernel, ``y = (x - mean) * (rsqrt(var + eps) * scale) +
    bias``. Same values as the direct expressions to float32 rounding; the sums (forward and backward) are
    ``column_sums``.

    Inside ``shard_map`` the parameters are marked varying like x first (``ops.varying``)."""
    scale, bias = varying_like(x, scale, bias)
    return _train_normalize(x, scale, bias, epsilon)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _train_normalize(x, scale, bias, epsilon):
    return _train_normalize_fwd(x, scale, bias, epsilon)[0]


def _train_normalize_fwd(x, scale, bias, epsilon):
    c = x.shape[-1]
    x2 = x.reshape(-1, c)
    n = x2.shape[0]
    mean = column_sums(x2) / n
    centred = x2 - mean
    var = column_sums(centred * centred) / n
    inv = jax.lax.rsqrt(var + epsilon)
    y = centred * (inv * scale) + bias
    return (y.reshape(x.shape), mean, var), (centred, inv, scale)


def _train_normalize_bwd(epsilon, residuals, cotangents):
    """The BatchNorm backward (dx from dy through the batch statistics; d mean and d var for completeness,
    zero when only y is differentiated)."""
    centred, inv, scale = residuals
    dy, dmean, dvar = cotangents
    n, c = centred.shape
    dy2 = dy.reshape(n, c)
    xhat = centred * inv
    dbias = column_sums(dy2)
    dscale = column_sums(dy2 * xhat)
    dx = (scale * inv / n) * (n * dy2 - dbias - xhat * dscale) + dmean / n + dvar * (2.0 / n) * centred
    return dx.reshape(dy.shape), dscale, dbias


_train_normalize.defvjp(_train_normalize_fwd, _train_normalize_bwd)


def batch_norm(
    train: bool | None, *, name: str | None, scale_init=nn.initializers.ones, dtype: Dtype = jnp.float32
) -> BatchNorm:
    """BatchNorm2d(eps=1e-5, momentum=0.1) (``BatchNorm``).

    ``train=False`` normalises with the running statistics (PyTorch ``eval()``); ``train=True`` uses the
    batch statistics and updates ``batch_stats`` (the caller must pass ``mutable=['batch_stats']``);
    ``train=None`` leaves the choice to the call (``use_running_average=...``), for ``setup``-style owners.

    Mixed precision: ``dtype`` is only the output dtype; statistics and normalisation are in
    ``accum_dtype`` (float32 for a bfloat16 model), running statistics and ``scale``/``bias`` as stored.
    """
    return BatchNorm(
        use_running_average=None if train is None else not train,
        scale_init=scale_init,
        dtype=dtype,
        name=name,
    )


def dense(features: int, in_features: int, *, name: str, kernel_init=None, dtype: Dtype = jnp.float32):
    """``torch.nn.Linear`` (kernel stored as (in, out)); default init is PyTorch's."""
    if kernel_init is None:
        return nn.Dense(
            features,
            kernel_init=torch_default_kernel_init,
            bias_init=torch_default_bias_init(in_features),
            dtype=dtype,
            name=name,
        )
    return nn.Dense(
        features, kernel_init=kernel_init, bias_init=nn.initializers.zeros, dtype=dtype, name=name
    )


class SplitLinear(nn.Module):
    """A 1x1 convolution (``conv=True``, kernel (1, 1, in, out)) or Linear (kernel (in, out)) whose input
    channels can be applied in slices.

    The relation detector feeds the concatenation [support, proposal] to such layers; since they are linear,
    ``W [s, r] + b = (W_s s + b) + W_r r``, and the support term, identical for all proposals of a template,
    can be computed once (``part``). Names and shapes are those of ``nn.Conv``/``nn.Dense``, so checkpoints
    convert unchanged.
    """

    features: int
    in_features: int
    conv: bool = True
    use_bias: bool = True
    kernel_init: Any = None
    dtype: Dtype = jnp.float32

    def setup(self):
        shape = (1, 1, self.in_features, self.features) if self.conv else (self.in_features, self.features)
        self.kernel = self.param("kernel", self.kernel_init or torch_default_kernel_init, shape)
        if self.use_bias:
            bias_init = (
                torch_default_bias_init(self.in_features)
                if self.kernel_init is None
                else nn.initializers.zeros
            )
            self.bias = self.param("bias", bias_init, (self.features,))

    def matrix(self, dtype: Dtype | None = None) -> jax.Array:
        """The kernel as an [in_features, features] matrix in ``dtype`` (default: the computation dtype;
        ``jnp.float32`` gives the stored parameter itself, for folding into other float32 weights)."""
        return (self.kernel[0, 0] if self.conv else self.kernel).astype(dtype or self.dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x [..., in_features] -> [..., features]."""
        y = jnp.dot(x.astype(self.dtype), self.matrix())
        return y + self.bias.astype(self.dtype) if self.use_bias else y

    def part(self, x: jax.Array, start: int, with_bias: bool) -> jax.Array:
        """Contribution of input channels ``start : start + x.shape[-1]`` (bias added only if asked)."""
        y = jnp.dot(x.astype(self.dtype), self.matrix()[start : start + x.shape[-1]])
        return y + self.bias.astype(self.dtype) if (with_bias and self.use_bias) else y
