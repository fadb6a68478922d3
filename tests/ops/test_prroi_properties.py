"""Property tests of PrRoIPool and the box helpers (hypothesis)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from siamrn_jax.geometry.boxes import xywh_to_xyxy, xyxy_to_xywh
from siamrn_jax.ops.prroi_pool import prroi_pool

coord = st.floats(0.0, 240.0, allow_nan=False)
size = st.floats(0.5, 120.0, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(x=coord, y=coord, w=size, h=size)
def test_constant_map_pools_to_the_constant_inside_the_map(x, y, w, h):
    """The bilinear interpolant of a constant map is that constant on [0, H-1] x [0, W-1] (feature cells),
    so any box inside pools to it exactly (up to float32 rounding), whatever its bins."""
    x2, y2 = min(x + w, 240.0), min(y + h, 240.0)  # 31 cells at stride 8: cell 30 sits at pixel 240
    if x2 - x < 1e-3 or y2 - y < 1e-3:
        return
    feat = jnp.full((1, 31, 31, 2), 3.0)
    out = prroi_pool(feat, jnp.asarray([[[x, y, x2, y2]]], jnp.float32))
    np.testing.assert_allclose(np.asarray(out), 3.0, rtol=2e-4)


@settings(max_examples=40, deadline=None)
@given(a=st.floats(-1.0, 1.0), b=st.floats(-1.0, 1.0), seed=st.integers(0, 2**16))
def test_pooling_is_linear_in_the_features(a, b, seed):
    rng = np.random.default_rng(seed)
    f, g = (jnp.asarray(rng.normal(size=(1, 9, 11, 3)), jnp.float32) for _ in range(2))
    box = jnp.asarray([[[3.0, 5.0, 60.0, 41.0]]])
    lhs = prroi_pool(a * f + b * g, box)
    rhs = a * prroi_pool(f, box) + b * prroi_pool(g, box)
    np.testing.assert_allclose(np.asarray(lhs), np.asarray(rhs), atol=1e-5)


@settings(deadline=None)  # timing is not what this checks (a busy 2-core CI machine exceeded 200 ms)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=4, max_size=4))
def test_box_format_round_trip(b):
    box = np.asarray(b)
    np.testing.assert_allclose(xyxy_to_xywh(xywh_to_xyxy(box)), box, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(
        np.asarray(xywh_to_xyxy(jnp.asarray(box, jnp.float32))), xywh_to_xyxy(box), rtol=1e-6, atol=1e-2
    )
