"""The jaxpr -> ONNX converter of ``siamrn_jax.export.onnx`` primitive by primitive: small functions run by
onnxruntime against JAX (XLA:CPU), including the control flow it unrolls, the gathers it flattens and the
constant folding; an unsupported primitive is an ``ExportError`` naming it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from siamrn_jax.export import jaxpr_onnx as ox
from siamrn_jax.export.stablehlo import ExportError

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def run_both(fn, *args, atol=1e-5):
    """fn converted and run by onnxruntime vs fn run by JAX; returns the ONNX model."""
    specs = [jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype) for a in args]

    def flat(*a):
        out = fn(*a)
        return tuple(out) if isinstance(out, tuple | list) else (out,)

    n_out = len(jax.eval_shape(flat, *specs))
    model, _ = ox.convert(
        flat, specs, [f"in{i}" for i in range(len(args))], [f"out{i}" for i in range(n_out)]
    )
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {f"in{i}": np.asarray(a) for i, a in enumerate(args)})
    want = jax.jit(flat)(*args)
    for g, w in zip(got, want, strict=True):
        w = np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
        np.testing.assert_allclose(g, w, atol=atol, rtol=1e-5)
    return model


rs = np.random.RandomState(0)
X = rs.normal(size=(2, 5, 6, 3)).astype(np.float32)
W = rs.normal(size=(3, 3, 3, 4)).astype(np.float32)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: (jnp.exp(x) - jnp.tanh(x) * jax.nn.sigmoid(x), jnp.abs(x) ** 3, x**-2, jnp.sqrt(x * x) + 1),
        lambda x: (
            lax.rsqrt(jnp.abs(x) + 1),
            jnp.round(x),
            lax.round(x * 2.5),
            x**0,
            jnp.floor(x),
            jnp.sign(x),
        ),
        lambda x: (
            jnp.clip(x, -0.5, 0.5),
            jnp.where(x > 0, x, 0.1 * x),
            jax.nn.relu(x),
            jax.nn.hard_swish(x),
        ),
        lambda x: (jnp.maximum(x, x[:, :1]), jnp.minimum(x, 0.2), x != x[::-1], jnp.isfinite(x / (x - x))),
        lambda x: (
            x.sum(axis=(1, 2)),
            x.max(axis=0),
            x.min(axis=3),
            jnp.prod(x, axis=1),
            (x > 0).any(axis=2),
        ),
        lambda x: (jnp.argmax(x, axis=1), jnp.argmin(x.reshape(2, -1), axis=1), jnp.cumsum(x, axis=2)),
        lambda x: (jax.nn.softmax(x, axis=-1), jax.nn.logsumexp(x, axis=1), jnp.log1p(jnp.abs(x))),
        lambda x: (
            x[:, 1:4:2, ::-1],
            jnp.transpose(x, (3, 0, 2, 1)),
            x.reshape(10, 18),
            jnp.tile(x, (1, 2, 1, 1)),
        ),
        lambda x: (
            jnp.concatenate([x, 2 * x], axis=3),
            jnp.stack([x, -x], axis=1),
            *jnp.split(x, [2], axis=2),
        ),
        lambda x: (
            jnp.pad(x, ((0, 0), (2, 1), (0, 3), (0, 0)), constant_values=1.5),
            lax.pad(x, 0.0, [(0, 0, 0), (-1, 2, 0), (1, -2, 0), (0, 0, 0)]),
        ),
        lambda x: (
            jnp.broadcast_to(x[:, :1], (2, 5, 6, 3)) * x,
            x[None, ..., None].squeeze(),
            jnp.expand_dims(x, 0),
        ),
        lambda x: (
            jnp.einsum("nhwc,nhwd->ncd", x, x),
            jnp.einsum("nhwc,chw->n", x, x[0].transpose(2, 0, 1)),
            x @ x[0, 0].T,
        ),
        lambda x: tuple(lax.top_k(x, 2)),
        lambda x: (lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "SAME"),),
        lambda x: (
            lax.reduce_window(x, 0.0, lax.add, (1, 2, 3, 1), (1, 1, 2, 1), ((0, 0), (1, 1), (0, 2), (0, 0))),
        ),
        lambda x: (lax.reduce_window(x, jnp.inf, lax.min, (2, 2, 1, 1), (1, 1, 1, 1), "VALID"),),
    ],
    ids=[
        "unary",
        "rounding",
        "select",
        "binary",
        "reduce",
        "arg",
        "softmax",
        "slice",
        "concat",
        "pad",
        "bcast",
        "dot",
        "top_k",
        "maxpool",
        "sumpool",
        "minpool",
    ],
)
def test_elementwise_structural_and_reductions(fn):
    run_both(fn, X)


@pytest.mark.parametrize(
    "kw",
    [
        {"window_strides": (1, 1), "padding": "SAME"},
        {"window_strides": (2, 1), "padding": ((1, 0), (2, 2)), "rhs_dilation": (1, 2)},
        {"window_strides": (1, 1), "padding": ((-1, 0), (0, 0))},
    ],
)
def test_convolutions_nhwc_nchw_and_grouped(kw):
    dn = ("NHWC", "HWIO", "NHWC")
    run_both(lambda x: lax.conv_general_dilated(x, W, dimension_numbers=dn, **kw), X, atol=1e-4)
    # the kernel a runtime input (a correlation), NCHW in and out, depthwise groups
    xc = X.transpose(0, 3, 1, 2)
    k = rs.normal(size=(3, 1, 2, 2)).astype(np.float32)

    def f(x, w):
        dn = ("NCHW", "OIHW", "NCHW")
        return lax.conv_general_dilated(x, w, dimension_numbers=dn, feature_group_count=3, **kw)

    run_both(f, xc, k, atol=1e-4)


def test_gathers_in_every_mode():
    idx = np.array([[1, 0, 4, 2], [3, 3, 0, 1]], np.int32)
    run_both(lambda x, i: jnp.take_along_axis(x[:, :, 0, 0], i, axis=1), X, idx)  # batched, FILL_OR_DROP
    run_both(lambda x, i: x[i[0, :3]], X[0], idx)  # PROMISE_IN_BOUNDS, offset slices
    run_both(lambda x, i: x[:, i[1, 0], 2:4], X, idx)  # a dynamic index among static slices
    run_both(lambda x, i: jnp.take(x, i[0] + 3, axis=1, mode="fill", fill_value=-1.0), X, idx)  # out of range
    run_both(lambda x, i: jnp.take(x, i[1] * 3, axis=2, mode="clip"), X, idx)
    best = np.array([7, 11], np.int32)  # the tracker's vmap-ed x[best]
    run_both(lambda x, b: jax.vmap(lambda r, k: r[k])(x.reshape(2, -1), b), X, best)


def test_integer_and_remaining_float_arithmetic():
    def ints(i):
        return i % 3, i // 2, lax.div(i, 3), i ^ 5, i & 6, ~i, -i, jnp.abs(i), i * i, jnp.sign(i), i >= 2

    run_both(ints, np.array([[-7, -2, 0, 3, 8, 11]], np.int32))
    run_both(lambda x: (x**1.5, jax.scipy.special.erf(x), jnp.exp2(x), jnp.expm1(x), jnp.fmod(x, 0.3)), X)


def test_dynamic_slices_and_updates():
    i = np.array(3, np.int32)
    run_both(lambda x, i: lax.dynamic_slice(x, (0, i, i - 1, 0), (2, 2, 4, 3)), X, i)  # clamped start
    run_both(lambda x, i: lax.dynamic_update_slice(x, jnp.ones((1, 2, 2, 3)), (1, i, 0, 0)), X, i)
    run_both(lambda x, i: x.at[0, i].set(-5.0), X, i)
    j = np.array([4, -1, 9, 2], np.int32)  # scatters: one index out of range (dropped), duplicates added
    run_both(lambda x, j: x[0, :, 0].at[j].add(jnp.ones((4, 3))), X, j)
    run_both(lambda x, j: x[0, 0].at[j % 3, 1].max(10.0), X, j)


def test_control_flow_is_unrolled_or_selected():
    def scan_fn(x):
        def body(c, r):
            c = c * 0.5 + r.sum()
            return c, c * r

        return lax.scan(body, jnp.float32(1), x, reverse=True)

    run_both(scan_fn, X)
    run_both(lambda x: lax.map(lambda r: r @ r.T, x.reshape(4, 15, 3)), X)
    run_both(lambda x: lax.fori_loop(0, 4, lambda k, c: c * 1.5 + k, x), X)  # a scan with a counter

    def counted(x):  # a while loop whose condition is known at export time: unrolled
        return lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 1.5 - c[0]), (0, x))

    run_both(counted, X)
    run_both(lambda x: lax.cond(x.sum() > 0, lambda v: v * 2, lambda v: -v, x), X)
    run_both(lambda x, k: lax.switch(k, [lambda v: v + 1, lambda v: v * 3, jnp.sin], x), X, np.int32(5))


def test_constants_are_folded_into_few_initializers():
    w = rs.normal(size=(3, 4)).astype(np.float32)
    scale = rs.uniform(0.5, 1.5, size=(4,)).astype(np.float32)

    def fn(x):  # everything but the matmul with x and the add is computable at export time
        k = (w * lax.rsqrt(scale + 1e-5)).T.reshape(4, 3)
        bias = jnp.broadcast_to(jnp.arange(4.0) * 2, (2, 5, 6, 4))
        return jnp.einsum("nhwc,dc->nhwd", x, k) + bias

    model = run_both(fn, X)
    ops = [n.op_type for n in model.graph.node]
    assert "Rsqrt" not in ops and "Sqrt" not in ops and "Reciprocal" not in ops
    # the [2, 5, 6, 4] bias broadcast is stored as its [1, 1, 1, 4] row, not 240 numbers
    assert sorted(int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type == 1) == [4, 12]


def test_a_nan_splat_is_stored_as_one_number():
    """``layers.materialize``'s ``where(isnan(x), nan, x)``: NaN != NaN must not turn the broadcast NaN into
    a full-size initializer (it did: 0.6 MB of NaNs in the demo's ONNX pair)."""
    model = run_both(lambda x: jnp.where(jnp.isnan(x), jnp.nan, x) * 2.0, X)
    assert all(int(np.prod(t.dims)) <= 1 for t in model.graph.initializer if t.data_type == 1)


def test_batchnorm_after_conv_is_folded_into_the_conv():
    mean, var = rs.normal(size=(4,)).astype(np.float32), rs.uniform(0.5, 2, size=(4,)).astype(np.float32)

    def fn(x):
        y = lax.conv_general_dilated(x, W, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.nn.relu((y - mean) * lax.rsqrt(var + 1e-5) * 1.5 + 0.25)

    model = run_both(fn, X, atol=1e-4)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") == 1 and "Sub" not in ops and "Mul" not in ops and "Relu" in ops


def test_unsupported_primitives_name_themselves():
    spec = jax.ShapeDtypeStruct((4,), jnp.float32)
    with pytest.raises(ExportError, match="primitive 'sort'"):
        ox.convert(lambda x: (jnp.sort(x),), [spec], ["x"], ["y"])
    with pytest.raises(ExportError, match="'while' loop whose condition depends on the inputs"):
        ox.convert(
            lambda x: (lax.while_loop(lambda c: c.sum() < 10, lambda c: c * 2, x),), [spec], ["x"], ["y"]
        )
