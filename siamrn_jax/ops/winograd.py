"""Winograd F(2x2, 3x3) convolution for the CPU tracker: the same 3x3 convolution in 16 matrix products
per 2x2 output tile instead of 36 multiply-adds per output pixel (Lavin & Gray, "Fast Algorithms for
Convolutional Neural Networks", CVPR 2016).

Why: ResNet-50's dilated layer3 / layer4 and their 3x3 projection shortcuts are most of the tracker's CPU
time (layer4's 3x3 1024 -> 2048 shortcut alone is 119 ms of a 294 ms search branch on the 2-core
development CPU), and XLA:CPU convolves them at PyTorch/oneDNN speed at best. Measured per layer (255 search
crop, batch 1, XLA:CPU vs XLA:CPU): 1024 -> 2048 d2 at 31x31 1.28x faster, 512 -> 1024 1.51x, 512 d4 1.52x,
256 d2 1.25x, the BAN head's 256 conv 1.18x; below about 2^25 output-pixel x channel products (128-channel
layers, the 15x15 template's 256-channel layers) the transforms cost more than they save, so those stay
direct (``MIN_WORK``).

Exactness: F(2x2, 3x3) uses only the coefficients 0, +-1 and +-1/2, so its float32 rounding error is of the
order of the direct convolution's: measured max |error| / max |output| 6e-7 to 1e-6 against a float64
reference (direct XLA convolution: 4e-7 to 5e-7). F(4x4, 3x3), faster still on the largest layers, was
measured at 2e-5 per layer and is not used: stacked over ResNet-50 it would eat the 1e-4 parity budget.

The kernel transform ``U = G g G^T`` is computed once when a checkpoint is loaded
(``with_winograd``): done inside the jitted function it costs 2.7x the convolution it replaces (a 240 MB
write per call). The transformed kernels live in their own variable collection, ``winograd``, at the
convolution's path; ``siamrn_jax.models.layers.Conv`` uses them when present and convolves directly
otherwise. Training on CPU computes them inside the step from the parameters (``transform_params``,
``train.step.loss_fn``): the gradients flow through the transform back to ``params``, and autodiff of the
Winograd form is itself Winograd-shaped (the input and kernel gradients are 16 batched matrix products
each), 2.25x fewer multiplications than the direct convolution's backward passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

COLLECTION = "winograd"
# Kernels with fewer input x output channels are never transformed (all measured slower, and the
# transformed copy costs 16/9 of the kernel's memory).
MIN_CHANNELS = 256 * 256
# A convolution runs as Winograd when output pixels x input x output channels reach this (measured
# crossover on the development CPU, see the module docstring).
MIN_WORK = 1 << 25


# G of F(2x2, 3x3) (rows [1,0,0], [1/2,1/2,1/2], [1/2,-1/2,1/2], [0,0,1]) and the 16 x 9 matrix of
# ``G g G^T`` on the flattened 3x3 kernel: kron(G, G). Every entry is 0, +-1/4, +-1/2 or 1, exact in
# any float type.
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
_KRON_G = np.kron(_G, _G)


@jax.jit
def transform_kernel(kernel: jax.Array) -> jax.Array:
    """[3, 3, Ci, Co] (HWIO) -> [16, Ci, Co] float32 (float64 for a float64 kernel): ``G g G^T`` per
    channel pair, as one [16, 9] x [9, Ci Co] matrix product (exact coefficients; each output a sum of at
    most nine products, rounded like any float32 sum). Jitted: the NumPy float64 form took 1.9 s for the
    largest ResNet-50 kernel. As a product it is also cheap inside a train step, forward and gradient (the
    transposed product): 70 ms instead of ~200 ms with the earlier stacked sums, paper model, phase b."""
    dtype = jnp.promote_types(kernel.dtype, jnp.float32)  # float64 stays float64
    g = kernel.astype(dtype).reshape(9, -1)
    u = jnp.dot(jnp.asarray(_KRON_G, dtype), g, precision=jax.lax.Precision.HIGHEST)
    return u.reshape(16, *kernel.shape[2:])


def eligible_kernel(kernel: Any) -> bool:
    """Whether ``with_winograd`` transforms this kernel leaf (dense 3x3, enough channels)."""
    shape = getattr(kernel, "shape", ())
    return len(shape) == 4 and tuple(shape[:2]) == (3, 3) and shape[2] * shape[3] >= MIN_CHANNELS


def _transformed(tree: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for name, sub in tree.items():
        if name == "kernel" and eligible_kernel(sub):
            out["kernel"] = transform_kernel(sub)
        elif isinstance(sub, Mapping):
            inner = _transformed(sub)
            if inner:
                out[name] = inner
    return out


def transform_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``winograd`` collection of a parameter tree: the transformed kernel of every eligible convolution
    at its module path. Differentiable (sums and halvings), so a train step computes it from the parameters
    it differentiates and their gradients flow through it."""
    return _transformed(params)


def with_winograd(variables: Mapping[str, Any]) -> dict[str, Any]:
    """``variables`` plus the ``winograd`` collection: the transformed kernel of every eligible
    convolution, at the convolution's module path (e.g. ``winograd/backbone/layer4/0/downsample/0/kernel``).

    Only worth it where the convolutions run on XLA:CPU (``checkpoint.load`` adds it there); on GPU / TPU
    the vendor convolutions are faster than these matrix products.
    """
    return {**variables, COLLECTION: transform_params(variables["params"])}


def _bt(r0: jax.Array, r1: jax.Array, r2: jax.Array, r3: jax.Array) -> tuple[jax.Array, ...]:
    """One axis of the input transform ``B^T d``.

    Rows of B^T: [1,0,-1,0], [0,1,1,0], [0,-1,1,0], [0,1,0,-1]."""
    return (r0 - r2, r1 + r2, r2 - r1, r1 - r3)


def _at(m0: jax.Array, m1: jax.Array, m2: jax.Array, m3: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One axis of the output transform ``A^T m`` (rows of A^T: [1,1,1,0], [0,1,-1,-1])."""
    return (m0 + m1 + m2, m1 - m2 - m3)


def _space_to_batch(x: jax.Array, d: int) -> jax.Array:
    """[N, L*d, L*d, C] -> [N*d*d, L, L, C]: the d*d sub-lattices a rate-d convolution keeps apart."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // d, d, w // d, d, c).transpose(0, 2, 4, 1, 3, 5)
    return x.reshape(n * d * d, h // d, w // d, c)


def _batch_to_space(y: jax.Array, n: int, d: int) -> jax.Array:
    """Inverse of ``_space_to_batch``."""
    _, h, w, c = y.shape
    y = y.reshape(n, d, d, h, w, c).transpose(0, 3, 1, 4, 2, 5)
    return y.reshape(n, h * d, w * d, c)


def conv3x3(x: jax.Array, u: jax.Array, padding: int, dilation: int = 1) -> jax.Array:
    """A stride-1 3x3 convolution (cross-correlation, as ``torch.nn.Conv2d``) as Winograd F(2x2, 3x3).

    Args:
      x: [N, H, W, Ci].
      u: [16, Ci, Co] from ``transform_kernel``.
      padding: symmetric zero padding (both spatial axes).
      dilation: kernel dilation; the dilated convolution is d*d undilated ones on the input's sub-lattices.

    Returns:
      [N, H + 2 p - 2 d, W + 2 p - 2 d, Co], in the promoted dtype of x and u.
    """
    n, h, w, c = x.shape
    d = dilation
    ho, wo = h + 2 * padding - 2 * d, w + 2 * padding - 2 * d
    th, tw = -(-ho // (2 * d)), -(-wo // (2 * d))  # 2x2 tiles per sub-lattice axis
    lh, lw = (2 * th + 2) * d, (2 * tw + 2) * d  # padded input size (tiles overlap by 2)
    xp = jnp.pad(x, ((0, 0), (padding, lh - h - padding), (padding, lw - w - padding), (0, 0)))
    if d > 1:
        xp = _space_to_batch(xp, d)
    rows = _bt(*(xp[:, i : i + 2 * th : 2] for i in range(4)))
    tiles = [v for r in rows for v in _bt(*(r[:, :, j : j + 2 * tw : 2] for j in range(4)))]
    v = jnp.stack(tiles).reshape(16, -1, c)
    m = jnp.einsum("kpc,kco->kpo", v, u.astype(jnp.result_type(x, u)))
    m = m.reshape(4, 4, xp.shape[0], th, tw, u.shape[-1])
    out = [_at(*(r[j] for j in range(4))) for r in _at(*(m[i] for i in range(4)))]
    y = jnp.stack([jnp.stack(o, axis=3) for o in out], axis=2)  # [N', th, 2, tw, 2, Co]
    y = y.reshape(xp.shape[0], 2 * th, 2 * tw, u.shape[-1])
    if d > 1:
        y = _batch_to_space(y, n, d)
    return y[:, :ho, :wo]
