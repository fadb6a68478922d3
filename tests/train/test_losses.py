"""Tests of siamrn_jax.train.losses against literal PyTorch ports of the official siamban/pysot losses."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from siamrn_jax.train.losses import (
    cls_loss,
    linear_iou_loss,
    matching_loss,
    select_cross_entropy,
    total_loss,
)

TOL = {"rtol": 1e-5, "atol": 1e-6}


# ---------------------------------------------------------------------------------------------------
# Literal PyTorch ports of siamban/models/loss.py (``.cuda()`` dropped; SPEC §7.6).
# ---------------------------------------------------------------------------------------------------
def torch_get_cls_loss(pred, label, select):
    if len(select.size()) == 0 or select.size() == torch.Size([0]):
        return 0
    pred = torch.index_select(pred, 0, select)
    label = torch.index_select(label, 0, select)
    return F.nll_loss(pred, label)


def torch_select_cross_entropy_loss(pred, label):
    pred = pred.view(-1, 2)
    label = label.view(-1)
    pos = label.data.eq(1).nonzero().squeeze()
    neg = label.data.eq(0).nonzero().squeeze()
    loss_pos = torch_get_cls_loss(pred, label, pos)
    loss_neg = torch_get_cls_loss(pred, label, neg)
    return loss_pos * 0.5 + loss_neg * 0.5


class TorchIOULoss(torch.nn.Module):
    def forward(self, pred, target, weight=None):
        pred_left = pred[:, 0]
        pred_top = pred[:, 1]
        pred_right = pred[:, 2]
        pred_bottom = pred[:, 3]

        target_left = target[:, 0]
        target_top = target[:, 1]
        target_right = target[:, 2]
        target_bottom = target[:, 3]

        target_aera = (target_left + target_right) * (target_top + target_bottom)
        pred_aera = (pred_left + pred_right) * (pred_top + pred_bottom)

        w_intersect = torch.min(pred_left, target_left) + torch.min(pred_right, target_right)
        h_intersect = torch.min(pred_bottom, target_bottom) + torch.min(pred_top, target_top)

        area_intersect = w_intersect * h_intersect
        area_union = target_aera + pred_aera - area_intersect

        ious = (area_intersect + 1.0) / (area_union + 1.0)
        losses = 1 - ious

        if weight is not None and weight.sum() > 0:
            return (losses * weight).sum() / weight.sum()
        assert losses.numel() != 0
        return losses.mean()


linear_iou = TorchIOULoss()


def torch_select_iou_loss(pred_loc, label_loc, label_cls):
    """``select_iou_loss``: pred_loc (B,4,S,S), label_loc (B,4,S,S), label_cls (B,S,S)."""
    label_cls = label_cls.reshape(-1)
    pos = label_cls.data.eq(1).nonzero().squeeze()
    pred_loc = pred_loc.permute(0, 2, 3, 1).reshape(-1, 4)
    pred_loc = torch.index_select(pred_loc, 0, pos)
    label_loc = label_loc.permute(0, 2, 3, 1).reshape(-1, 4)
    label_loc = torch.index_select(label_loc, 0, pos)
    return linear_iou(pred_loc, label_loc)


# ---------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------
def _labels(rng: np.random.Generator, shape, config: str) -> np.ndarray:
    if config == "mixed":
        lab = rng.choice(np.array([-1, 0, 1]), size=shape)
    elif config == "no_pos":
        lab = rng.choice(np.array([-1, 0]), size=shape)
    elif config == "no_neg":
        lab = rng.choice(np.array([-1, 1]), size=shape)
    elif config == "no_ignore":
        lab = rng.choice(np.array([0, 1]), size=shape)
    elif config == "all_pos":
        lab = np.ones(shape, np.int64)
    elif config == "sparse_pos":  # a few positives among negatives, like the BAN label maps
        lab = np.where(rng.random(shape) < 0.1, 1, np.where(rng.random(shape) < 0.7, 0, -1))
    else:
        raise AssertionError(config)
    # The official ``nonzero().squeeze()`` drops a selection of exactly one element (see the dedicated
    # test below); keep the random comparisons away from that quirk.
    for c in (0, 1):
        if (lab == c).sum() == 1:
            lab[lab == c] = -1
    return lab.astype(np.int64)


def _torch_value_and_grad(fn, *arrays):
    ts = [torch.tensor(np.asarray(a), dtype=torch.float32, requires_grad=True) for a in arrays]
    out = fn(*ts)
    if not torch.is_tensor(out):  # official returns the int 0 when both terms are empty
        return float(out), [np.zeros_like(np.asarray(a)) for a in arrays]
    out.backward()
    grads = [
        np.zeros_like(np.asarray(a)) if t.grad is None else t.grad.numpy()
        for a, t in zip(arrays, ts, strict=True)
    ]
    return float(out.detach()), grads


# ---------------------------------------------------------------------------------------------------
# Cross-entropy (BAN cls and RD matching)
# ---------------------------------------------------------------------------------------------------
CE_CONFIGS = ["mixed", "no_pos", "no_neg", "no_ignore", "all_pos", "sparse_pos"]


@pytest.mark.parametrize("config", CE_CONFIGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_cls_loss_matches_official(config, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (2, 25, 25, 2)).astype(np.float32)
    labels = _labels(rng, (2, 25, 25), config)

    def official(lg):  # the model output is (B,2,S,S); ModelBuilder permutes to (B,S,S,2) + log_softmax
        return torch_select_cross_entropy_loss(F.log_softmax(lg, dim=3), torch.tensor(labels))

    ref_val, (ref_grad,) = _torch_value_and_grad(official, logits)
    val, grad = jax.value_and_grad(cls_loss)(jnp.asarray(logits), jnp.asarray(labels))
    np.testing.assert_allclose(float(val), ref_val, **TOL)
    np.testing.assert_allclose(np.asarray(grad), ref_grad, **TOL)


@pytest.mark.parametrize("config", CE_CONFIGS)
def test_matching_ce_matches_official(config):
    rng = np.random.default_rng(7)
    logits = rng.normal(0.0, 2.0, (4, 64, 2)).astype(np.float32)
    labels = _labels(rng, (4, 64), config)

    def official(lg):  # MultiDetector logits viewed as (B,64,2), log_softmax over the last axis
        return torch_select_cross_entropy_loss(F.log_softmax(lg, dim=-1), torch.tensor(labels))

    ref_val, (ref_grad,) = _torch_value_and_grad(official, logits)
    val, grad = jax.value_and_grad(matching_loss)(jnp.asarray(logits), jnp.asarray(labels))
    np.testing.assert_allclose(float(val), ref_val, **TOL)
    np.testing.assert_allclose(np.asarray(grad), ref_grad, **TOL)


def test_select_cross_entropy_on_log_probs_matches_official():
    rng = np.random.default_rng(3)
    log_probs = np.log(rng.dirichlet([1.0, 1.0], size=(3, 10))).astype(np.float32)
    labels = _labels(rng, (3, 10), "mixed")
    ref_val, (ref_grad,) = _torch_value_and_grad(
        lambda lp: torch_select_cross_entropy_loss(lp, torch.tensor(labels)), log_probs
    )
    val, grad = jax.value_and_grad(select_cross_entropy)(jnp.asarray(log_probs), jnp.asarray(labels))
    np.testing.assert_allclose(float(val), ref_val, **TOL)
    np.testing.assert_allclose(np.asarray(grad), ref_grad, **TOL)


def test_select_cross_entropy_hand_computed():
    log_probs = jnp.log(jnp.array([[0.2, 0.8], [0.6, 0.4], [0.9, 0.1], [0.5, 0.5], [0.3, 0.7]]))
    labels = jnp.array([1, 1, 0, -1, 0])
    expected = 0.5 * (-(math.log(0.8) + math.log(0.4)) / 2) + 0.5 * (-(math.log(0.9) + math.log(0.3)) / 2)
    np.testing.assert_allclose(float(select_cross_entropy(log_probs, labels)), expected, rtol=1e-6)


def test_select_cross_entropy_single_element_term_is_counted():
    """Intended behaviour, unlike the official ``squeeze`` accident that drops a single selected element."""
    log_probs = np.log(np.array([[0.2, 0.8], [0.6, 0.4], [0.9, 0.1]], np.float32))
    labels = np.array([1, 0, 0])
    official = torch_select_cross_entropy_loss(torch.tensor(log_probs), torch.tensor(labels))
    official_neg_only = 0.5 * -(math.log(0.6) + math.log(0.9)) / 2
    np.testing.assert_allclose(float(official), official_neg_only, rtol=1e-6)  # the quirk: positive dropped
    ours = float(select_cross_entropy(jnp.asarray(log_probs), jnp.asarray(labels)))
    np.testing.assert_allclose(ours, 0.5 * -math.log(0.8) + official_neg_only, rtol=1e-6)


@pytest.mark.parametrize("labels", [[-1, -1, -1, -1], [0, 0, -1, 0], [1, -1, 1, 1]])
def test_select_cross_entropy_empty_terms_are_zero_without_nan(labels):
    # Extreme logits: the unselected log-probabilities are -inf-ish; they must not leak.
    logits = jnp.array([[1e4, -1e4], [-1e4, 1e4], [0.0, 0.0], [50.0, -50.0]], jnp.float32)
    labels = jnp.array(labels)
    val, grad = jax.value_and_grad(cls_loss)(logits, labels)
    assert np.isfinite(float(val))
    assert np.all(np.isfinite(np.asarray(grad)))
    if (labels == -1).all():
        assert float(val) == 0.0
        assert np.all(np.asarray(grad) == 0.0)


def test_select_cross_entropy_infinite_unselected_log_probs_do_not_leak():
    log_probs = jnp.array([[0.0, -jnp.inf], [-jnp.inf, 0.0], [jnp.log(0.5), jnp.log(0.5)]])
    labels = jnp.array([0, 1, -1])
    val, grad = jax.value_and_grad(select_cross_entropy)(log_probs, labels)
    assert float(val) == 0.0
    assert np.all(np.isfinite(np.asarray(grad)))


# ---------------------------------------------------------------------------------------------------
# Linear IoU (BAN loc)
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["mixed", "no_neg", "all_pos", "sparse_pos", "no_ignore"])
@pytest.mark.parametrize("seed", [0, 1])
def test_linear_iou_matches_official(config, seed):
    rng = np.random.default_rng(100 + seed)
    loc = rng.uniform(0.0, 120.0, (2, 25, 25, 4)).astype(np.float32)
    label_loc = rng.uniform(0.0, 120.0, (2, 25, 25, 4)).astype(np.float32)
    label_cls = _labels(rng, (2, 25, 25), config)

    def official(pred, target):  # head output and pysot label_loc are channel-first (B,4,S,S)
        return torch_select_iou_loss(
            pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2), torch.tensor(label_cls)
        )

    ref_val, ref_grads = _torch_value_and_grad(official, loc, label_loc)
    val, grads = jax.value_and_grad(linear_iou_loss, argnums=(0, 1))(
        jnp.asarray(loc), jnp.asarray(label_loc), jnp.asarray(label_cls)
    )
    np.testing.assert_allclose(float(val), ref_val, **TOL)
    for g, rg in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(np.asarray(g), rg, **TOL)


def test_linear_iou_hand_computed():
    loc = jnp.array([[[[2.0, 2.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0], [9.0, 9.0, 9.0, 9.0]]]])  # (1,1,3,4)
    label_loc = jnp.array([[[[2.0, 2.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]]]])
    label_cls = jnp.array([[[1, 1, 0]]])
    # point 0: identical boxes → loss 0; point 1: I = 2·2 = 4, U = 4 + 16 − 4 = 16 → 1 − 5/17.
    expected = (0.0 + (1.0 - 5.0 / 17.0)) / 2
    np.testing.assert_allclose(float(linear_iou_loss(loc, label_loc, label_cls)), expected, rtol=1e-6)


def test_linear_iou_no_positive_returns_zero_where_official_asserts():
    rng = np.random.default_rng(5)
    loc = rng.uniform(0.0, 50.0, (2, 5, 5, 4)).astype(np.float32)
    label_loc = rng.uniform(0.0, 50.0, (2, 5, 5, 4)).astype(np.float32)
    label_cls = _labels(rng, (2, 5, 5), "no_pos")
    with pytest.raises(AssertionError):
        torch_select_iou_loss(
            torch.tensor(loc).permute(0, 3, 1, 2),
            torch.tensor(label_loc).permute(0, 3, 1, 2),
            torch.tensor(label_cls),
        )
    val, grads = jax.value_and_grad(linear_iou_loss, argnums=(0, 1))(
        jnp.asarray(loc), jnp.asarray(label_loc), jnp.asarray(label_cls)
    )
    assert float(val) == 0.0
    for g in grads:
        assert np.all(np.asarray(g) == 0.0)


# ---------------------------------------------------------------------------------------------------
# Matching MSE (intended behaviour of the buggy official path)
# ---------------------------------------------------------------------------------------------------
def test_matching_mse_hand_computed():
    ln3 = math.log(3.0)
    logits = jnp.array([[[0.0, ln3], [0.0, ln3], [0.0, 0.0], [5.0, -5.0]]])  # probs (.25,.75), (.5,.5)
    labels = jnp.array([[1, 0, 1, -1]])
    # label 1 → target (0,1): (0.25² + 0.25²)/2; label 0 → target (1,0): (0.75² + 0.75²)/2; (.5,.5) → 0.25
    expected = (0.0625 + 0.5625 + 0.25) / 3
    np.testing.assert_allclose(float(matching_loss(logits, labels, kind="mse")), expected, rtol=1e-6)


def test_matching_mse_matches_torch_intended_and_is_zero_when_empty():
    rng = np.random.default_rng(11)
    logits = rng.normal(0.0, 2.0, (4, 64, 2)).astype(np.float32)
    labels = _labels(rng, (4, 64), "mixed")
    keep = torch.tensor(labels.reshape(-1) >= 0)

    def intended(lg):
        probs = F.softmax(lg.view(-1, 2), dim=-1)[keep]
        target = F.one_hot(torch.tensor(labels.reshape(-1))[keep], 2).float()
        return F.mse_loss(probs, target)

    ref_val, (ref_grad,) = _torch_value_and_grad(intended, logits)
    val, grad = jax.value_and_grad(lambda lg: matching_loss(lg, jnp.asarray(labels), kind="mse"))(
        jnp.asarray(logits)
    )
    np.testing.assert_allclose(float(val), ref_val, **TOL)
    np.testing.assert_allclose(np.asarray(grad), ref_grad, **TOL)

    empty = jnp.full((4, 64), -1)
    val, grad = jax.value_and_grad(lambda lg: matching_loss(lg, empty, kind="mse"))(jnp.asarray(logits))
    assert float(val) == 0.0
    assert np.all(np.asarray(grad) == 0.0)


def test_matching_loss_unknown_kind():
    with pytest.raises(ValueError, match="unknown matching loss kind"):
        matching_loss(jnp.zeros((1, 2, 2)), jnp.zeros((1, 2), jnp.int32), kind="focal")


# ---------------------------------------------------------------------------------------------------
# Total and jit
# ---------------------------------------------------------------------------------------------------
def test_total_loss_weights():
    np.testing.assert_allclose(float(total_loss(1.0, 2.0, 3.0)), 6.0)
    np.testing.assert_allclose(float(total_loss(1.0, 2.0, 3.0, weights=(0.5, 2.0, 0.0))), 4.5)


def test_everything_jits_and_matches_eager():
    rng = np.random.default_rng(21)
    cls_logits = jnp.asarray(rng.normal(size=(2, 25, 25, 2)).astype(np.float32))
    label_cls = jnp.asarray(_labels(rng, (2, 25, 25), "sparse_pos"))
    loc = jnp.asarray(rng.uniform(0, 100, (2, 25, 25, 4)).astype(np.float32))
    label_loc = jnp.asarray(rng.uniform(0, 100, (2, 25, 25, 4)).astype(np.float32))
    m_logits = jnp.asarray(rng.normal(size=(2, 64, 2)).astype(np.float32))
    m_labels = jnp.asarray(_labels(rng, (2, 64), "mixed"))

    def step(cl, lc, lo, ll, ml, mlab, kind):
        return total_loss(
            cls_loss(cl, lc), linear_iou_loss(lo, ll, lc), matching_loss(ml, mlab, kind=kind), (1.0, 1.0, 1.0)
        )

    args = (cls_logits, label_cls, loc, label_loc, m_logits, m_labels)
    for kind in ("ce", "mse"):
        eager = step(*args, kind)
        jitted = jax.jit(jax.value_and_grad(step, argnums=(0, 2, 4)), static_argnames="kind")(
            *args, kind=kind
        )
        np.testing.assert_allclose(float(jitted[0]), float(eager), rtol=1e-6)
        assert all(np.all(np.isfinite(np.asarray(g))) for g in jitted[1])
    # No positive at all under jit: still finite, loc term 0.
    no_pos = jnp.where(label_cls == 1, 0, label_cls)
    val = jax.jit(linear_iou_loss)(loc, label_loc, no_pos)
    assert float(val) == 0.0
