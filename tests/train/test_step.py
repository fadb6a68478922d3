"""The train step on one device: update skipping and the 'sum' gradient reduction."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.sharding import AxisType

from siamrn_jax.checkpoint import init_variables
from siamrn_jax.config import build_model, load_config
from siamrn_jax.data.sampler import DatasetSpec, TripletSampler, split_report
from siamrn_jax.data.synthetic import SyntheticConfig, SyntheticSource
from siamrn_jax.sharding import replicate, shard_batch
from siamrn_jax.train.optim import make_optimizer
from siamrn_jax.train.step import TrainState, make_train_step
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def setup():
    model = build_model(load_config(f"{ROOT}/configs/siamrn_r50.py:smoke").model)
    variables = init_variables(model, seed=0)
    mesh = jax.make_mesh((1,), ("data",), axis_types=(AxisType.Auto,))
    sampler = TripletSampler(
        [DatasetSpec(SyntheticSource(SyntheticConfig(num_videos=8, frames=6)), -1, 100)],
        seed=0,
        global_batch=2,
        neg=0.0,
    )
    batch = shard_batch(split_report(sampler.batch([0, 1]))[0], mesh)
    return model, variables, mesh, batch


def _state(variables, tx, mesh):
    return replicate(TrainState.create(jax.tree.map(np.asarray, variables), tx, 0), mesh)


def test_huge_loss_skips_the_update(setup):
    model, variables, mesh, batch = setup
    tx = make_optimizer(0.005, False)
    step = make_train_step(model, tx, mesh, backbone_trainable=False, hnm=False, loss_limit=1e-3)
    state, m = step(_state(variables, tx, mesh), batch)
    assert float(m["loss"]) > 1e-3 and not bool(m["ok"])
    assert int(state.skipped) == 1 and int(state.step) == 1
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(variables["params"]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert all(float(np.abs(x).max()) == 0 for x in jax.tree.leaves(state.opt_state) if np.ndim(x) > 0)


def test_sum_reduction_sums_group_gradients(setup):
    """'sum' (official multi-GPU all-reduce) gives exactly G x the 'mean' gradient for G BN groups."""
    model, variables, mesh, batch = setup
    tx = make_optimizer(0.005, False)
    out = {}
    for reduction in ("mean", "sum"):
        step = make_train_step(
            model, tx, mesh, backbone_trainable=False, hnm=False, reduction=reduction, bn_groups=2
        )
        _, m = step(_state(variables, tx, mesh), batch)
        out[reduction] = m
    np.testing.assert_allclose(float(out["sum"]["grad_norm"]), 2 * float(out["mean"]["grad_norm"]), rtol=1e-5)
    np.testing.assert_allclose(float(out["sum"]["loss"]), float(out["mean"]["loss"]), rtol=1e-6)


def test_loc_bias_init_sets_only_the_loc_outputs(setup):
    from flax import traverse_util

    from siamrn_jax.train.loop import set_loc_bias

    _, variables, _, _ = setup
    before = traverse_util.flatten_dict(variables["params"], sep="/")
    after = traverse_util.flatten_dict(set_loc_bias(variables, 3.0)["params"], sep="/")
    changed = sorted(k for k in before if not np.array_equal(np.asarray(before[k]), np.asarray(after[k])))
    assert changed == [f"head/box{lvl}/loc/head/3/bias" for lvl in (2, 3, 4)]
    assert all(np.all(np.asarray(after[k]) == 3.0) for k in changed)
    assert set_loc_bias(variables, 0.0) is variables


def test_loc_bias_init_on_nanotrack_sets_its_bbox_pred_bias_and_other_heads_are_an_error():
    """NanoTrack's loc = exp(``head/bbox_pred/0``): a from-scratch run (the demo model) starts its boxes at
    exp(value) px there and nowhere else; a head with neither SiamRN's nor NanoTrack's loc layer fails with
    a one-line error instead of silently training from the plain init."""
    from flax import traverse_util

    from siamrn_jax import checkpoint
    from siamrn_jax.models.nanotrack import NanoTrack
    from siamrn_jax.train.loop import TrainError, set_loc_bias

    variables = checkpoint.abstract_variables(NanoTrack(relation=True, rd_width=8))
    variables = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), variables)
    after = traverse_util.flatten_dict(set_loc_bias(variables, 3.0)["params"], sep="/")
    changed = sorted(k for k, v in after.items() if np.any(np.asarray(v) != 0))
    assert changed == ["head/bbox_pred/0/bias"] and np.all(after["head/bbox_pred/0/bias"] == 3.0)
    other = {"params": {"head": {"cls_pred": {"0": {"bias": np.zeros(2, np.float32)}}}}}
    with pytest.raises(
        TrainError, match=r"train.loc_bias_init=3.0: the model's head has no loc output layer"
    ):
        set_loc_bias(other, 3.0)
    assert set_loc_bias(other, 0.0) is other
