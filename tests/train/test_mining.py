"""The on-device proposal choices (``train.mining``) against the host reference (``data.targets``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siamrn_jax.train import mining
from tests.train import target_oracle as targets


def _predicted(rng, gt, n=625):
    """Boxes around the GT (some overlap a lot, most do not), xywh."""
    c = gt[:2] + gt[2:] / 2 + rng.normal(0, 40, (n, 2))
    c[: n // 10] = gt[:2] + gt[2:] / 2 + rng.normal(0, 3, (n // 10, 2))
    wh = gt[2:] * np.exp(rng.normal(0, 0.15, (n, 2)))
    return np.concatenate([c - wh / 2, wh], axis=1).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_negatives_and_hard_negatives_match_host(seed):
    rng = np.random.default_rng(seed)
    gt = np.array([100.0, 90.0, 60.0, 40.0])
    pred = _predicted(rng, gt)
    scores = rng.random(len(pred)).astype(np.float32)
    ref = targets.negative_proposals(gt, rng, predicted=pred, scores=scores)
    got = np.asarray(
        mining.negative_proposals(jnp.asarray(pred), jnp.asarray(scores), jnp.asarray(gt, jnp.float32))
    )
    np.testing.assert_allclose(got, ref, atol=1e-5)
    ref_plain = targets.negative_proposals(gt, rng, predicted=pred)
    # Without OHNM rows 24.. are the ProposalTarget rows; they must agree too.
    np.testing.assert_allclose(got[24:], ref_plain[24:], atol=1e-5)


def test_negatives_short_rows_are_zero():
    gt = np.array([100.0, 90.0, 60.0, 40.0], np.float32)
    pred = np.tile(gt, (625, 1))
    pred[:5, 0] += 200  # only 5 boxes with IoU < 0.2
    got = np.asarray(mining.negative_proposals(jnp.asarray(pred), jnp.ones(625), jnp.asarray(gt)))
    assert np.all(got[5:] == 0) and np.all(got[:5, 0] == gt[0] + 200)


@pytest.mark.parametrize("n_good", [0, 5, 16, 100])
def test_positives_random_subset_then_gaussian(n_good):
    rng = np.random.default_rng(n_good)
    gt = np.array([100.0, 90.0, 60.0, 40.0], np.float32)
    pred = np.tile(gt + [200, 0, 0, 0], (625, 1)).astype(np.float32)
    pred[:n_good] = gt + rng.normal(0, 1, (n_good, 4)).astype(np.float32)
    gauss = rng.normal(100, 5, (16, 4)).astype(np.float32)
    got = np.asarray(
        mining.positive_proposals(jax.random.key(3), jnp.asarray(pred), jnp.asarray(gt), jnp.asarray(gauss))
    )
    k = min(n_good, 16)
    chosen = {tuple(r) for r in got[:k]}
    assert len(chosen) == k and chosen <= {tuple(r) for r in pred[:n_good]}
    np.testing.assert_array_equal(got[k:], gauss[: 16 - k])
    # Same count and structure as the host reference.
    ref = targets.positive_proposals(gt, rng, predicted=pred)
    assert {tuple(r) for r in ref[:k]} <= {tuple(r) for r in pred[:n_good]}


def test_positive_subset_is_uniform():
    gt = np.array([100.0, 90.0, 60.0, 40.0], np.float32)
    pred = np.tile(gt + [200, 0, 0, 0], (625, 1)).astype(np.float32)
    pred[:32, :] = gt
    pred[:32, 0] += np.arange(32) * 0.01  # 32 distinct good boxes, 16 chosen each time
    keys = jax.random.split(jax.random.key(0), 400)
    f = jax.vmap(
        lambda k: mining.positive_proposals(k, jnp.asarray(pred), jnp.asarray(gt), jnp.zeros((16, 4)))
    )
    out = np.asarray(f(keys))
    idx = np.rint((out[..., 0] - gt[0]) / 0.01).astype(int)
    counts = np.bincount(idx.ravel(), minlength=32)
    assert counts.min() > 140 and counts.max() < 260  # expected 200 each


@pytest.mark.parametrize("flip", [False, True])
def test_contrastive_pairs_match_host(flip):
    rng = np.random.default_rng(7)
    pos = rng.random((16, 4)).astype(np.float32)
    neg = rng.random((48, 4)).astype(np.float32)
    ref = targets.contrastive_pairs(np.random.default_rng(5), pos, neg, flip)
    order = np.random.default_rng(5).permutation(4)
    got = mining.contrastive_pairs(jnp.asarray(pos), jnp.asarray(neg), jnp.asarray(order), jnp.asarray(flip))
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_array_equal(np.asarray(g), r)
    assert np.asarray(got[2]).sum() == 16


def test_selection_sees_unclipped_boxes_and_pooling_clips_them():
    """Official training: ProposalTarget / GetHN select from unclipped 'train_lt' boxes; PrRoIPool's
    'search' RoIs (gaussian, uniform and mined proposals alike) are clipped to [0, 255] (SPEC 7, issue 11)."""
    from siamrn_jax.train.forward import mining_boxes, pooling_rois

    loc = jnp.full((1, 25, 25, 4), 20.0).at[0, 0, 0].set(jnp.array([50.0, 40.0, 10.0, 10.0]))
    boxes = mining_boxes(loc, 8, 255)
    # cell (0, 0) sits at (31, 31): x1 = 31 - 50 = -19, y1 = 31 - 40 = -9, w = 60, h = 50, unclipped.
    np.testing.assert_allclose(np.asarray(boxes[0, 0]), [-19.0, -9.0, 60.0, 50.0])
    rois = pooling_rois(
        jnp.array([[-19.0, -9.0, 60.0, 50.0], [200.0, 230.0, 80.0, 40.0], [0.0, 0, 0, 0]]), 255
    )
    np.testing.assert_allclose(np.asarray(rois), [[0, 0, 41, 41], [200, 230, 255, 255], [0, 0, 0, 0]])
