"""Precise RoI Pooling (PrRoIPool, Jiang et al. 2018) in JAX, exactly as the official CUDA forward kernel.

Convention (``vacancy/PreciseRoIPooling``, used by SiamRN as ``PrRoIPool2D(7, 7, 1/8)``):

* A box ``(x1, y1, x2, y2)`` is a half-open pixel RoI in input-image pixels. It is mapped to feature
  coordinates by ``X = spatial_scale * x`` only: no -0.5 offset, no rounding, no clipping.
* Feature cell ``(i, j)`` sits at the continuous point ``(y, x) = (i, j)``, i.e. at image pixel
  ``(i, j) / spatial_scale``. For SiamRN (stride 8) the receptive-field centre of cell ``q`` is ``8q + 7``,
  so the pooling is shifted by ~0.9 cell; this is reproduced on purpose, because the trained weights
  absorb it (SPEC_OFFICIAL_SIAMRN.md section 6.3).
* The map is a continuous function by bilinear interpolation, with samples outside ``[0, H-1] x [0, W-1]``
  equal to 0 (it decays to 0 over one cell past the border). Each of the ``P x Q`` bins of width
  ``max(X2 - X1, 0) / Q`` and height ``max(Y2 - Y1, 0) / P`` returns the exact integral of that function over
  the bin divided by the bin area, and exactly 0 (with zero gradient) when the area is 0.

Implementation: the interpolant is ``sum_ij F[i, j] k(y - i) k(x - j)`` with the tent
``k(t) = max(0, 1 - |t|)``, so the bin integral is separable (JAX_STACK.md section 9):
``out[p, q] = Wy[p] @ F @ Wx[q]^T / area``, where ``W[p, i]`` is the integral of ``k(. - i)`` over bin ``p``.
The weights are a C1 function of the box, so ``jax.grad`` w.r.t. the boxes is the paper's coordinate
gradient (CUDA ``PrRoIPoolingCoorBackward``, cell-aligned boxes included); w.r.t. the features the op is
linear.
"""

import jax
import jax.numpy as jnp

__all__ = ["prroi_pool"]


def _relu_integral(d: jax.Array, h: jax.Array) -> jax.Array:
    """Integral of ``relu(u)`` over ``[d - h, d + h]`` for ``h >= 0`` (elementwise).

    The three branches meet with equal values and first derivatives (in ``d`` and ``h``), so the result is
    C1 and ``jnp.where`` gives the exact gradient whatever branch a tie picks.
    """
    return jnp.where(d >= h, 2 * h * d, jnp.where(d > -h, 0.5 * (d + h) ** 2, 0.0))


def _axis_weights(start: jax.Array, end: jax.Array, n_bins: int, size: int) -> tuple[jax.Array, jax.Array]:
    """Per-bin integration weights along one axis.

    Args:
      start: [N] RoI start in feature coordinates.
      end: [N] RoI end in feature coordinates.
      n_bins: number of output bins along this axis.
      size: feature-map length along this axis.

    Returns:
      ``(weights [N, n_bins, size], bin_size [N])``: ``weights[n, b, i]`` is the integral of the tent
      ``max(0, 1 - |u - i|)`` over bin ``b``, i.e. zero for samples farther than one cell from the bin.
    """
    bin_size = jnp.maximum(end - start, 0.0) / n_bins
    half = 0.5 * bin_size[:, None, None]
    # Bin centres relative to each sample. start - i first: near the bin it is (almost) exact, so rounding
    # is relative to the cell-sized result, not to the absolute coordinate.
    centre = (start[:, None, None] - jnp.arange(size, dtype=start.dtype)) + bin_size[:, None, None] * (
        jnp.arange(n_bins, dtype=start.dtype)[:, None] + 0.5
    )  # [N, n_bins, size]
    # tent(u) = relu(u + 1) - 2 relu(u) + relu(u - 1). Unlike K(end) - K(start) with K the tent's
    # antiderivative, each term is O(bin size), so float32 keeps its relative accuracy for bins much
    # smaller than a cell; the where() drops the O(|centre| * eps) residue of far samples, where the exact
    # value and its derivative are 0.
    weights = (
        _relu_integral(centre + 1, half) - 2 * _relu_integral(centre, half) + _relu_integral(centre - 1, half)
    )
    return jnp.where(jnp.abs(centre) < 1 + half, weights, 0.0), bin_size


# RoIs per step: as many as keep the [chunk * P, W * C] intermediate near this many bytes, so it stays in
# cache. Measured on 2 CPU cores: 625 RoIs on 31x31x256 (paper model) 81 ms in one piece, 32 / 22 / 32 ms
# in chunks of 5 / 25 / 125 (25 RoIs = 5.6 MB; 18, 25 and 36 measure alike); on 31x31x32 (demo_resnet)
# 3.0 / 2.6 / 2.55 / 2.9 ms per level with 25 / 64 / 128 / 625, on 16x16x64 (SiamRN-Nano, 256 RoIs)
# 1.20 / 1.03 / 0.97 / 1.22 ms with 25 / 64 / 128 / 256.
CHUNK_BYTES = 4 << 20


def chunk_size(p: int, w: int, c: int, itemsize: int) -> int:
    """RoIs per chunk for P bin rows on a [H, W, C] map of ``itemsize``-byte values (``CHUNK_BYTES``)."""
    return max(1, CHUNK_BYTES // (p * w * c * itemsize))


def _contract_image(wy: jax.Array, wx: jax.Array, feat: jax.Array) -> jax.Array:
    """out[r, p, q, c] = sum_ij wy[r, p, i] feat[i, j, c] wx[r, q, j] for one image.

    y first as one GEMM ([chunk*P, H] @ [H, W*C]), then x as batched [Q, W] @ [W, C] products, ``chunk_size``
    RoIs at a time. The chunks are unrolled and concatenated rather than looped with ``lax.map``: the loop
    zero-fills its stacked output and copies every chunk into it (measured 120 -> 96 ms for 3 levels x 625
    RoIs on the 2-core CPU, identical values).
    """
    r, p, h = wy.shape
    q, w = wx.shape[1], wx.shape[2]
    fm = feat.reshape(h, w * feat.shape[-1])
    chunk = chunk_size(p, w, feat.shape[-1], feat.dtype.itemsize)
    out = []
    for s in range(0, r, chunk):
        a, bx = wy[s : s + chunk], wx[s : s + chunk]
        k = a.shape[0]
        rows = jnp.matmul(a.reshape(k * p, h), fm).reshape(k, p, w, -1)
        out.append(jnp.matmul(jnp.broadcast_to(bx[:, None], (k, p, q, w)), rows))  # [k, P, Q, C]
    return jnp.concatenate(out, axis=0) if len(out) > 1 else out[0]


def prroi_pool(
    features: jax.Array,
    boxes: jax.Array,
    output_size: tuple[int, int] = (7, 7),
    spatial_scale: float = 1 / 8,
) -> jax.Array:
    """Precise RoI pooling of ``R`` boxes per image (NHWC), identical to the official CUDA forward.

    Args:
      features: [B, H, W, C] feature maps.
      boxes: [B, R, 4] boxes ``(x1, y1, x2, y2)`` in input-image pixels, R boxes per image; or [B, 4], one
        box per image (SiamRN's template / support RoIs), which drops the R axis of the result.
      output_size: ``(P, Q)`` = (rows, columns) of bins.
      spatial_scale: feature cells per image pixel (1 / stride).

    Returns:
      [B, R, P, Q, C] pooled features ([B, P, Q, C] for [B, 4] boxes), in the promoted dtype of
      ``features`` and ``boxes``, at least float32: a bfloat16 feature map (mixed precision) is pooled in
      float32, since the bin weights of sub-cell boxes and their sums over up to H x W samples need more
      than bfloat16's 8 mantissa bits.
    """
    if boxes.ndim == 2:  # one box per image
        return prroi_pool(features, boxes[:, None], output_size, spatial_scale)[:, 0]
    b, h, w, c = features.shape
    r = boxes.shape[1]
    p, q = output_size
    dtype = jnp.promote_types(jnp.result_type(features, boxes), jnp.float32)
    features = features.astype(dtype)
    scaled = boxes.reshape(b * r, 4).astype(dtype) * spatial_scale
    wy, bin_h = _axis_weights(scaled[:, 1], scaled[:, 3], p, h)  # [B*R, P, H]
    wx, bin_w = _axis_weights(scaled[:, 0], scaled[:, 2], q, w)  # [B*R, Q, W]
    out = jax.vmap(_contract_image)(
        wy.reshape(b, r, p, h), wx.reshape(b, r, q, w), features
    )  # [B, R, P, Q, C]
    area = (bin_h * bin_w).reshape(b, r, 1, 1, 1)
    # Double where: the zero-area branch must not divide by 0, or its NaN/inf would leak into the grads.
    nonzero = area > 0
    return jnp.where(nonzero, out / jnp.where(nonzero, area, 1.0), 0.0)
