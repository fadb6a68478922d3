"""Tests of ``siamrn_jax.ops.prroi_pool`` against a literal float64 port of the official CUDA kernels.

The port below follows ``vacancy/PreciseRoIPooling`` ``src/prroi_pooling_gpu_impl.cu`` loop by loop
(PrRoIPoolingGetData / MatCalculation / Forward, the feature backward and PrRoIPoolingCoorBackward), one RoI
at a time, so it is slow but independent of the separable closed form used by the implementation.
"""

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siamrn_jax.ops.prroi_pool import prroi_pool

# ----------------------------------------------------------------------------------------------------------
# Literal port of the CUDA kernels (float64 NumPy; ``data`` is [H, W, C], the C channels run in parallel).
# ----------------------------------------------------------------------------------------------------------


def _get_data(data, h, w):
    """PrRoIPoolingGetData: the sample, or 0 outside the map."""
    height, width = data.shape[:2]
    if h < 0 or w < 0 or h >= height or w >= width:
        return np.zeros(data.shape[2])
    return data[h, w]


def _corner_integrals(s_h, s_w, e_h, e_w, y0, x0, y1, x1):
    """The four ``tmp`` coefficients of PrRoIPoolingMatCalculation for cell [s_h, e_h] x [s_w, e_w]."""

    def axis(a, lim):  # integral of (1 - u) for u in [a, lim]
        return lim - 0.5 * lim * lim - a + 0.5 * a * a

    ax_s, ax_e = axis(x0 - s_w, x1 - s_w), axis(e_w - x1, e_w - x0)
    ay_s, ay_e = axis(y0 - s_h, y1 - s_h), axis(e_h - y1, e_h - y0)
    return {
        (s_h, s_w): ax_s * ay_s,
        (s_h, e_w): ax_e * ay_s,
        (e_h, s_w): ax_s * ay_e,
        (e_h, e_w): ax_e * ay_e,
    }


def _bins(box, pooled_h, pooled_w, scale):
    """Yields (ph, pw, win_start_h, win_start_w, win_end_h, win_end_w, win_size) as in the kernels."""
    start_w, start_h, end_w, end_h = (v * scale for v in box)
    bin_h = max(end_h - start_h, 0.0) / pooled_h
    bin_w = max(end_w - start_w, 0.0) / pooled_w
    for ph in range(pooled_h):
        for pw in range(pooled_w):
            ws_w, ws_h = start_w + bin_w * pw, start_h + bin_h * ph
            yield ph, pw, ws_h, ws_w, ws_h + bin_h, ws_w + bin_w, max(0.0, bin_w * bin_h)


def _cells(ws_h, ws_w, we_h, we_w):
    """The integer cells the kernels loop over, with the clipped sub-rectangle of the bin in each."""
    for w_iter in range(math.floor(ws_w), math.ceil(we_w)):
        for h_iter in range(math.floor(ws_h), math.ceil(we_h)):
            sub = (max(ws_h, h_iter), max(ws_w, w_iter), min(we_h, h_iter + 1.0), min(we_w, w_iter + 1.0))
            yield (h_iter, w_iter, h_iter + 1, w_iter + 1, *sub)


def port_forward(data, box, pooled=(7, 7), scale=1 / 8):
    """PrRoIPoolingForward for one RoI: [H, W, C] -> [P, Q, C]."""
    out = np.zeros((*pooled, data.shape[2]))
    for ph, pw, ws_h, ws_w, we_h, we_w, win_size in _bins(box, *pooled, scale):
        if win_size == 0:
            continue
        total = np.zeros(data.shape[2])
        for cell in _cells(ws_h, ws_w, we_h, we_w):
            for (h, w), coeff in _corner_integrals(*cell).items():
                total += _get_data(data, h, w) * coeff
        out[ph, pw] = total / win_size
    return out


def port_feature_backward(shape_hw, box, top_diff, scale=1 / 8):
    """PrRoIPoolingBackward for one RoI: top_diff [P, Q, C] -> d loss / d data [H, W, C]."""
    grad = np.zeros((*shape_hw, top_diff.shape[2]))
    for ph, pw, ws_h, ws_w, we_h, we_w, win_size in _bins(box, *top_diff.shape[:2], scale):
        sum_out = 0.0 if win_size == 0 else top_diff[ph, pw] / win_size
        for cell in _cells(ws_h, ws_w, we_h, we_w):
            for (h, w), coeff in _corner_integrals(*cell).items():
                if 0 <= h < shape_hw[0] and 0 <= w < shape_hw[1]:  # PrRoIPoolingDistributeDiff
                    grad[h, w] += sum_out * coeff
    return grad


def _interpolation(data, h, w):
    """PrRoIPoolingInterpolation: bilinear sample at (h, w) with zero outside the map."""
    total = np.zeros(data.shape[2])
    for h1 in (math.floor(h), math.floor(h) + 1):
        for w1 in (math.floor(w), math.floor(w) + 1):
            total += _get_data(data, h1, w1) * (1.0 - abs(h - h1)) * (1.0 - abs(w - w1))
    return total


def _single_coor_integral(s, t, c1, c2):
    return 0.5 * (t * t - s * s) * c2 + (t - 0.5 * t * t - s + 0.5 * s * s) * c1


def port_coor_backward(data, box, top_diff, scale=1 / 8):
    """PrRoIPoolingCoorBackward for one RoI: top_diff [P, Q, C] -> d loss / d (x1, y1, x2, y2)."""
    pooled_h, pooled_w = top_diff.shape[:2]
    top = port_forward(data, box, (pooled_h, pooled_w), scale)
    grad = np.zeros(4)
    for ph, pw, ws_h, ws_w, we_h, we_w, win_size in _bins(box, pooled_h, pooled_w, scale):
        for c in range(data.shape[2]):
            sum_out = 0.0 if win_size == 0 else top_diff[ph, pw, c] / win_size
            if sum_out == 0:
                continue
            g_x1_y = g_x2_y = g_x_y1 = g_x_y2 = 0.0
            for h_iter in range(math.floor(ws_h), math.ceil(we_h)):
                s, t = max(ws_h, h_iter) - h_iter, min(we_h, h_iter + 1) - h_iter
                for x, acc in ((ws_w, "x1"), (we_w, "x2")):
                    v = _single_coor_integral(
                        s, t, _interpolation(data, h_iter, x)[c], _interpolation(data, h_iter + 1, x)[c]
                    )
                    g_x1_y, g_x2_y = (g_x1_y + v, g_x2_y) if acc == "x1" else (g_x1_y, g_x2_y + v)
            for w_iter in range(math.floor(ws_w), math.ceil(we_w)):
                s, t = max(ws_w, w_iter) - w_iter, min(we_w, w_iter + 1) - w_iter
                for y, acc in ((ws_h, "y1"), (we_h, "y2")):
                    v = _single_coor_integral(
                        s, t, _interpolation(data, y, w_iter)[c], _interpolation(data, y, w_iter + 1)[c]
                    )
                    g_x_y1, g_x_y2 = (g_x_y1 + v, g_x_y2) if acc == "y1" else (g_x_y1, g_x_y2 + v)
            o = top[ph, pw, c]
            px1 = (-g_x1_y + (we_h - ws_h) * o) / win_size * scale
            py1 = (-g_x_y1 + (we_w - ws_w) * o) / win_size * scale
            px2 = (g_x2_y - (we_h - ws_h) * o) / win_size * scale
            py2 = (g_x_y2 - (we_w - ws_w) * o) / win_size * scale
            d = top_diff[ph, pw, c]
            grad[0] += (px1 * (1 - pw / pooled_w) + px2 * (1 - (pw + 1) / pooled_w)) * d
            grad[1] += (py1 * (1 - ph / pooled_h) + py2 * (1 - (ph + 1) / pooled_h)) * d
            grad[2] += (px2 * (pw + 1) / pooled_w + px1 * pw / pooled_w) * d
            grad[3] += (py2 * (ph + 1) / pooled_h + py1 * ph / pooled_h) * d
    return grad


# ----------------------------------------------------------------------------------------------------------
# Fixtures and test data
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def x64():
    """Float64 for one test only; the context manager restores the previous setting afterwards."""
    with jax.enable_x64(True):
        yield


def _test_boxes(rng):
    """~50 boxes (image pixels) for a 31x31 map at scale 1/8 (cells at pixels 0, 8, ..., 240)."""
    special = [
        (-30.0, -20.0, 60.0, 50.0),  # partly outside (top-left)
        (200.0, 190.0, 290.0, 275.0),  # past the right and bottom edges, into the zero-decay band and beyond
        (230.0, 10.0, 300.0, 100.0),  # past the right edge only
        (-100.0, -90.0, -20.0, -5.0),  # entirely outside: all zeros, not a zero-area case
        (40.0, 40.0, 40.0, 120.0),  # zero width
        (40.0, 90.0, 130.0, 90.0),  # zero height
        (81.6, 81.6, 83.2, 82.4),  # tiny box inside cell (10, 10)
        (120.3, 7.7, 121.0, 8.9),  # tiny box straddling a cell boundary
        (0.0, 0.0, 255.0, 255.0),  # the whole search crop
        (16.0, 24.0, 72.0, 128.0),  # edges on exact cell boundaries
        (3.0, 5.0, 250.0, 9.0),  # very flat
    ]
    centres = rng.uniform(-20, 270, size=(39, 2))
    sizes = rng.uniform(2, 140, size=(39, 2))
    rand = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    return np.concatenate([np.array(special), rand])


def _port_batch(feat, boxes, pooled=(7, 7), scale=1 / 8):
    """Port over [B, H, W, C] and [B, R, 4] -> [B, R, P, Q, C]."""
    return np.stack(
        [np.stack([port_forward(f, b, pooled, scale) for b in bs]) for f, bs in zip(feat, boxes, strict=True)]
    )


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


# ----------------------------------------------------------------------------------------------------------
# 1. Forward vs the literal port
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def forward_case():
    rng = np.random.default_rng(0)
    feat = rng.normal(size=(1, 31, 31, 3))
    boxes = _test_boxes(rng)[None]
    return feat, boxes, _port_batch(feat, boxes)


def test_forward_matches_cuda_port_float64(x64, forward_case):
    feat, boxes, ref = forward_case
    out = prroi_pool(jnp.asarray(feat), jnp.asarray(boxes), (7, 7), 1 / 8)
    assert out.dtype == jnp.float64 and out.shape == (1, len(boxes[0]), 7, 7, 3)
    err = float(np.max(np.abs(np.asarray(out) - ref)))
    print(f"\nPrRoIPool f64 vs CUDA loop port: max abs err {err:.2e} (max |ref| {np.max(np.abs(ref)):.2f})")
    assert err <= 1e-12
    assert np.all(ref[0, 4:6] == 0) and np.all(np.asarray(out)[0, 4:6] == 0)  # zero-area boxes


def test_forward_matches_cuda_port_float32(forward_case):
    feat, boxes, ref = forward_case
    out = prroi_pool(jnp.asarray(feat, jnp.float32), jnp.asarray(boxes, jnp.float32), (7, 7), 1 / 8)
    assert out.dtype == jnp.float32
    rel = _rel(out, ref)
    print(f"\nPrRoIPool f32 vs CUDA loop port: max abs err / max |ref| = {rel:.2e}")
    assert rel <= 1e-5


def test_forward_non_square_output_and_map(x64):
    """P != Q, H != W and scale 1 catch any row/column or x/y mix-up."""
    rng = np.random.default_rng(1)
    feat = rng.normal(size=(1, 9, 13, 2))
    boxes = np.array([[[1.3, 0.4, 11.7, 6.2], [-1.5, 2.2, 6.1, 9.8], [4.0, 4.0, 4.5, 7.0]]])
    ref = _port_batch(feat, boxes, (3, 5), 1.0)
    out = prroi_pool(jnp.asarray(feat), jnp.asarray(boxes), output_size=(3, 5), spatial_scale=1.0)
    assert out.shape == (1, 3, 3, 5, 2)
    assert float(np.max(np.abs(np.asarray(out) - ref))) <= 1e-12


# ----------------------------------------------------------------------------------------------------------
# 2. Upstream unit test: unit bins on cell corners are 2x2 average pools
# ----------------------------------------------------------------------------------------------------------


def _avg_pool_2x2(x):
    """avg_pool2d(kernel 2, stride 1) of [H, W, C]."""
    return (x[:-1, :-1] + x[1:, :-1] + x[:-1, 1:] + x[1:, 1:]) / 4


def test_upstream_avg_pool_fact(x64):
    rng = np.random.default_rng(2)
    small = rng.uniform(size=(1, 14, 14, 1))
    out = prroi_pool(jnp.asarray(small), jnp.asarray([[[0.0, 0.0, 14.0, 14.0]]]), (7, 7), 0.5)
    np.testing.assert_allclose(np.asarray(out)[0, 0], _avg_pool_2x2(small[0])[:7, :7], rtol=0, atol=1e-14)
    # upstream's second RoI, (14, 14, 28, 28) on the second image, is the [7:14, 7:14] window
    feat = rng.uniform(size=(2, 24, 32, 4))
    rois = jnp.asarray([[[0.0, 0.0, 14.0, 14.0]], [[14.0, 14.0, 28.0, 28.0]]])
    out = np.asarray(prroi_pool(jnp.asarray(feat), rois, (7, 7), 0.5))
    np.testing.assert_allclose(out[0, 0], _avg_pool_2x2(feat[0])[:7, :7], rtol=0, atol=1e-14)
    np.testing.assert_allclose(out[1, 0], _avg_pool_2x2(feat[1])[7:14, 7:14], rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------------------------------------
# 3. Gradients
# ----------------------------------------------------------------------------------------------------------


def _grad_boxes(rng, n):
    """Random boxes whose bin edges stay >= 0.02 cell from integers (central FD must not straddle a kink)."""
    out = []
    while len(out) < n:
        x1, y1 = rng.uniform(-10, 200, size=2)
        x2, y2 = x1 + rng.uniform(10, 90), y1 + rng.uniform(10, 90)
        edges = np.concatenate([np.linspace(x1, x2, 8), np.linspace(y1, y2, 8)]) / 8
        if np.min(np.abs(edges - np.round(edges))) > 0.02:
            out.append((x1, y1, x2, y2))
    return np.array(out)


def test_feature_gradient(x64):
    rng = np.random.default_rng(3)
    feat = rng.normal(size=(1, 31, 31, 2))
    boxes = np.concatenate([_grad_boxes(rng, 3), [[200.0, -20.0, 280.0, 60.0]]])[None]  # + one past the edges
    cot = rng.normal(size=(1, len(boxes[0]), 7, 7, 2))

    def loss(f):
        return jnp.sum(prroi_pool(f, jnp.asarray(boxes)) * cot)

    grad = np.asarray(jax.grad(loss)(jnp.asarray(feat)))
    # the analytic linear map: the ported CUDA feature backward (scatter-add of the bin weights)
    ref = sum(port_feature_backward((31, 31), b, c) for b, c in zip(boxes[0], cot[0], strict=True))
    rel_map = _rel(grad, ref)
    # central finite differences on a few entries (the op is linear, so FD is exact up to rounding)
    idx = [tuple(rng.integers(0, [31, 31, 2])) for _ in range(6)] + [(30, 30, 1), (0, 29, 0)]
    idx += [tuple(i) for i in np.argwhere(np.abs(ref) > 0.05)[:4]]
    eps, fd = 1e-3, []
    for i, j, c in idx:
        fp, fm = feat.copy(), feat.copy()
        fp[0, i, j, c] += eps
        fm[0, i, j, c] -= eps
        fd.append((float(loss(jnp.asarray(fp))) - float(loss(jnp.asarray(fm)))) / (2 * eps))
    rel_fd = _rel([grad[0, i, j, c] for i, j, c in idx], fd)
    print(f"\nd/dfeatures: rel err vs CUDA backward port {rel_map:.1e}, vs central FD {rel_fd:.1e}")
    assert rel_map <= 1e-12 and rel_fd <= 1e-8


# Scale 1/8: bin edges and/or bin centres exactly on cells, where the weights switch pieces.
_ALIGNED_BOXES = [
    (0.0, 0.0, 56.0, 56.0),
    (-4.0, -4.0, 52.0, 52.0),
    (8.0, 16.0, 120.0, 72.0),
    (4.0, 4.0, 116.0, 60.0),
    (236.0, 236.0, 292.0, 292.0),
    (16.0, 16.0, 44.0, 72.0),
]


@pytest.mark.parametrize("kind", ["random", "cell_aligned"])
def test_box_gradient(x64, kind):
    rng = np.random.default_rng(4)
    feat = rng.normal(size=(1, 31, 31, 2))
    if kind == "random":  # + one box past the right/bottom edges
        boxes = np.concatenate([_grad_boxes(rng, 4), [[213.0, 181.0, 290.3, 262.7]]])[None]
    else:
        boxes = np.array([_ALIGNED_BOXES])
    cot = rng.normal(size=(1, len(boxes[0]), 7, 7, 2))

    def loss(b):
        return jnp.sum(prroi_pool(jnp.asarray(feat), b) * cot)

    grad = np.asarray(jax.grad(loss)(jnp.asarray(boxes)))
    assert np.all(np.isfinite(grad)) and np.max(np.abs(grad)) > 0.1
    # the loss is C1 but piecewise smooth: on cell-aligned boxes central FD straddles a kink (smaller eps)
    eps, fd = (1e-5 if kind == "random" else 1e-7), np.zeros_like(boxes)
    for r in range(boxes.shape[1]):
        for k in range(4):
            bp, bm = boxes.copy(), boxes.copy()
            bp[0, r, k] += eps
            bm[0, r, k] -= eps
            fd[0, r, k] = (float(loss(jnp.asarray(bp))) - float(loss(jnp.asarray(bm)))) / (2 * eps)
    rel_fd = _rel(grad, fd)
    # the paper's coordinate gradient, as the CUDA PrRoIPoolingCoorBackward computes it
    ref = np.stack([port_coor_backward(feat[0], b, c) for b, c in zip(boxes[0], cot[0], strict=True)])
    rel_cuda = _rel(grad[0], ref)
    print(
        f"\nd/dboxes ({kind}): rel err vs central FD {rel_fd:.1e}, vs CUDA CoorBackward port {rel_cuda:.1e}"
    )
    assert rel_fd <= 1e-6 and rel_cuda <= 1e-10


# ----------------------------------------------------------------------------------------------------------
# 4. Zero-area boxes
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_zero_area_boxes(dtype):
    with jax.enable_x64(dtype == "float64"):
        rng = np.random.default_rng(5)
        feat = jnp.asarray(rng.normal(size=(1, 31, 31, 3)), dtype)
        boxes = jnp.asarray(
            [[[40, 40, 40, 120], [40, 90, 130, 90], [50, 50, 50, 50], [90, 80, 60, 120], [30, 30, 90, 70]]],
            dtype,
        )

        def loss(f, b):
            return jnp.sum(prroi_pool(f, b) ** 2)

        out = np.asarray(jax.jit(prroi_pool)(feat, boxes))
        assert np.all(out[0, :4] == 0) and np.all(out[0, 4] != 0)  # the last (valid) box is the control
        g_feat, g_box = jax.jit(jax.grad(loss, argnums=(0, 1)))(feat, boxes)
        assert np.all(np.isfinite(g_feat)) and np.all(np.isfinite(g_box))
        assert np.all(np.asarray(g_box)[0, :4] == 0) and np.all(np.asarray(g_box)[0, 4] != 0)
        # a feature map that only the zero-area boxes touch gets no gradient
        g_only = jax.grad(loss)(feat, boxes[:, :4])
        assert np.all(np.asarray(g_only) == 0)


# ----------------------------------------------------------------------------------------------------------
# 5. jit, batching, vmap, per-image boxes, SiamRN size
# ----------------------------------------------------------------------------------------------------------


def test_batch_jit_vmap_and_per_image_boxes():
    rng = np.random.default_rng(6)
    feat = jnp.asarray(rng.normal(size=(2, 31, 31, 8)), jnp.float32)
    boxes = jnp.asarray(np.stack([_test_boxes(rng)[:20], _test_boxes(rng)[20:40]]), jnp.float32)
    pool = jax.jit(prroi_pool, static_argnames=("output_size", "spatial_scale"))
    out = pool(feat, boxes)
    assert out.shape == (2, 20, 7, 7, 8)
    for i in range(2):
        np.testing.assert_allclose(out[i], pool(feat[i : i + 1], boxes[i : i + 1])[0], rtol=1e-6, atol=1e-6)
    # vmap over an extra leading axis gives the same as the batched call
    v = jax.vmap(lambda f, b: prroi_pool(f[None], b[None])[0])(feat, boxes)
    np.testing.assert_allclose(v, out, rtol=1e-6, atol=1e-6)
    # one box per image ([B, 4], SiamRN's template RoIs) drops the R axis
    one = pool(feat, boxes[:, 3])
    assert one.shape == (2, 7, 7, 8)
    np.testing.assert_allclose(one, out[:, 3], rtol=1e-6, atol=1e-6)


def test_siamrn_size_625_rois_under_jit():
    rng = np.random.default_rng(7)
    feat = jnp.asarray(rng.normal(size=(1, 31, 31, 256)), jnp.float32)
    xy = rng.uniform(0, 200, size=(1, 625, 2))
    boxes = jnp.asarray(np.concatenate([xy, xy + rng.uniform(8, 120, size=(1, 625, 2))], -1), jnp.float32)
    pool = jax.jit(prroi_pool)
    t0 = time.perf_counter()
    out = pool(feat, boxes).block_until_ready()
    t_first = time.perf_counter() - t0
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        pool(feat, boxes).block_until_ready()
        times.append(time.perf_counter() - t0)
    assert out.shape == (1, 625, 7, 7, 256) and bool(jnp.all(jnp.isfinite(out)))
    # spot check one RoI against the port (float32 tolerance)
    ref = port_forward(np.asarray(feat[0], np.float64), np.asarray(boxes[0, 17], np.float64))
    assert _rel(out[0, 17], ref) <= 1e-5
    print(
        f"\nprroi_pool 625 RoIs on [1,31,31,256] ({jax.devices()[0].platform}): "
        f"first call (compile+run) {t_first * 1e3:.0f} ms, then median {np.median(times) * 1e3:.1f} ms"
    )
