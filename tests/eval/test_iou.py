"""The one IoU / centre error (siamrn_jax.geometry.iou) against EVALUATION.md 11.1's per-frame IoUs, in NumPy
and in JAX, and as the training targets and the on-device mining use it."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from siamrn_jax.geometry.iou import center_error, iou
from siamrn_jax.train import mining
from tests.train import target_oracle as targets

GT_B = np.array([[100, 50, 20, 60], [102, 52, 20, 60], [104, 55, 21, 61], [107, 57, 21, 62]], float)
PR_B = np.array(
    [[100.5, 50.5, 20, 60], [101.0, 53.0, 22.0, 58.0], [104.0, 55.0, 21.0, 61.0], [90, 40, 20, 60]]
)
IOU_B = [0.935874, 0.881459, 1.0, 0.054362]  # EVALUATION.md 11.1, sequence B frames 0-3


def test_numpy_and_jax_agree_with_the_cross_check_table():
    np.testing.assert_allclose(iou(GT_B, PR_B), IOU_B, atol=1e-6)
    np.testing.assert_allclose(np.asarray(iou(jnp.asarray(GT_B), jnp.asarray(PR_B))), IOU_B, atol=1e-6)


def test_nan_and_empty_boxes():
    out = iou(np.array([[0, 0, 0, 0], [np.nan, 0, 1, 1]]), np.array([[0, 0, 0, 0], [0, 0, 1, 1]]))
    assert np.isnan(out).all()  # pysot: 0/0 and NaN are misses, never hits


def test_centre_error_and_training_uses():
    np.testing.assert_allclose(center_error(GT_B[:1], PR_B[:1]), [np.sqrt(0.5)])
    np.testing.assert_allclose(targets.rect_iou(PR_B, GT_B[0]), iou(PR_B, GT_B[0][None], 1e-6))
    np.testing.assert_allclose(
        np.asarray(mining.rect_iou(jnp.asarray(PR_B), jnp.asarray(GT_B[0]))),
        targets.rect_iou(PR_B, GT_B[0]),
        rtol=1e-6,
    )
