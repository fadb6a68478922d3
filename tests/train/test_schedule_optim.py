"""Official LR schedule and optimiser (SPEC_OFFICIAL_SIAMRN.md §2, §8.6) vs a torch reproduction."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from siamrn_jax.train.optim import clip_grad_norm, guarded_update, is_update_ok, make_optimizer, param_labels
from siamrn_jax.train.schedule import epoch_lr, make_schedule

WARMUP = [0.001, 0.00138, 0.00190, 0.00263, 0.00362]


def test_epoch_lr_official_values():
    for e, v in enumerate(WARMUP):
        assert epoch_lr(e) == pytest.approx(v, rel=3e-3)
    assert epoch_lr(0) == pytest.approx(0.001, rel=1e-12)
    assert epoch_lr(5) == pytest.approx(0.005, rel=1e-12)
    assert epoch_lr(19) == pytest.approx(0.00005, rel=1e-9)
    assert epoch_lr(6) == pytest.approx(0.005 * 0.01 ** (1 / 14), rel=1e-12)
    # backbone group at 0.1x once unfrozen at epoch 10
    assert 0.1 * epoch_lr(10) == pytest.approx(9.65e-5, rel=1e-3)
    assert epoch_lr(25) == epoch_lr(19)
    # log part is np.logspace(log10(0.005), log10(0.00005), 15)
    np.testing.assert_allclose(
        [epoch_lr(e) for e in range(5, 20)], np.logspace(np.log10(5e-3), np.log10(5e-5), 15), rtol=1e-12
    )


@pytest.mark.parametrize("spe", [1, 7])
def test_step_schedule_piecewise_constant(spe):
    s = make_schedule(spe)
    for e in range(22):
        for k in (0, spe - 1):
            assert float(s(jnp.int32(e * spe + k))) == pytest.approx(epoch_lr(e), rel=1e-6)


def test_smooth_schedule_matches_at_epoch_starts_and_is_between():
    spe = 10
    step, smooth = make_schedule(spe), make_schedule(spe, smooth=True)
    for e in range(21):
        assert float(smooth(e * spe)) == float(step(e * spe))
    for e in range(19):
        lo, hi = sorted((epoch_lr(e), epoch_lr(e + 1)))
        for k in range(1, spe):
            v = float(smooth(e * spe + k))
            assert lo * (1 - 1e-6) <= v <= hi * (1 + 1e-6)
    assert float(smooth(19 * spe + 5)) == pytest.approx(epoch_lr(19), rel=1e-6)
    assert float(jax.jit(smooth)(jnp.int32(33))) == pytest.approx(float(smooth(33)), rel=1e-6)


def _tree(rng):
    def a(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    return {
        "backbone": {
            "conv1": {"kernel": a(3, 3, 2, 4)},
            "layer1": {"kernel": a(4, 4), "scale": a(4)},
            "layer2": {"kernel": a(4, 6), "bias": a(6)},
        },
        "head": {"kernel": a(6, 3), "bias": a(3)},
    }


@pytest.mark.parametrize("backbone_trainable", [True, False])
def test_matches_torch_sgd_with_clip_and_groups(backbone_trainable):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    params0 = _tree(rng)
    spe = 2
    sched = make_schedule(spe)
    flat, treedef = jax.tree_util.tree_flatten_with_path(params0)
    names = ["/".join(str(p.key) for p in path) for path, _ in flat]

    def trainable_group(name):
        if name.startswith("backbone/conv1") or name.startswith("backbone/layer1"):
            return None
        if name.startswith("backbone/"):
            return "backbone" if backbone_trainable else None
        return "rest"

    tparams = {
        n: torch.nn.Parameter(torch.tensor(np.array(v))) for n, (_, v) in zip(names, flat, strict=True)
    }
    for n, p in tparams.items():
        p.requires_grad_(trainable_group(n) is not None)
    groups = [{"params": [tparams[n] for n in names if trainable_group(n) == "rest"], "mult": 1.0}]
    if backbone_trainable:
        groups.append(
            {"params": [tparams[n] for n in names if trainable_group(n) == "backbone"], "mult": 0.1}
        )
    opt = torch.optim.SGD(groups, lr=0.005, momentum=0.9, weight_decay=1e-4)
    trainable = [p for p in tparams.values() if p.requires_grad]

    tx = make_optimizer(sched, backbone_trainable)
    params = jax.tree.map(jnp.asarray, params0)
    state = tx.init(params)
    update = jax.jit(tx.update)

    clipped = 0
    for step in range(6):
        grads_np = {}
        for n, (_, v) in zip(names, flat, strict=True):
            scale = 1e6 if trainable_group(n) is None else 3.0  # huge frozen grads must not affect the clip
            grads_np[n] = (scale * rng.standard_normal(v.shape)).astype(np.float32)
        # torch
        lr = epoch_lr(step // spe)
        for g in opt.param_groups:
            g["lr"] = lr * g["mult"]
        for n, p in tparams.items():
            p.grad = torch.tensor(grads_np[n]) if p.requires_grad else None
        norm = torch.nn.utils.clip_grad_norm_(trainable, 10.0)
        clipped += float(norm) > 10.0
        opt.step()
        # optax
        grads = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(grads_np[n]) for n in names])
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)

    assert clipped == 6
    out = jax.tree_util.tree_flatten_with_path(params)[0]
    for n, (_, v) in zip(names, out, strict=True):
        ref = tparams[n].detach().numpy()
        np.testing.assert_allclose(np.asarray(v), ref, rtol=0, atol=1e-6, err_msg=n)
        if trainable_group(n) is None:
            np.testing.assert_array_equal(np.asarray(v), params0_leaf(params0, n))
        else:
            assert not np.array_equal(np.asarray(v), params0_leaf(params0, n))


def params0_leaf(tree, name):
    for k in name.split("/"):
        tree = tree[k]
    return tree


def test_frozen_grads_do_not_enter_clip():
    rng = np.random.default_rng(1)
    params = jax.tree.map(jnp.asarray, _tree(rng))
    grads = jax.tree.map(jnp.ones_like, params)
    huge = dict(grads, backbone={k: jax.tree.map(lambda g: g * 1e9, v) for k, v in grads["backbone"].items()})
    tx = make_optimizer(0.01, backbone_trainable=False)
    u1, _ = tx.update(grads, tx.init(params), params)
    u2, _ = tx.update(huge, tx.init(params), params)
    for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(u1["backbone"]))


def test_is_update_ok_and_guarded_update():
    assert bool(is_update_ok(jnp.float32(3.0)))
    assert bool(is_update_ok(jnp.float32(1e4)))
    assert not bool(is_update_ok(jnp.float32(1.0001e4)))
    assert not bool(is_update_ok(jnp.float32(jnp.nan)))
    assert not bool(is_update_ok(jnp.float32(jnp.inf)))
    assert not bool(is_update_ok(jnp.float32(5.0), limit=1.0))
    assert is_update_ok(jnp.float32(1.0)).dtype == jnp.bool_

    rng = np.random.default_rng(2)
    params = jax.tree.map(jnp.asarray, _tree(rng))
    grads = jax.tree.map(jnp.ones_like, params)
    tx = make_optimizer(make_schedule(3), backbone_trainable=True)
    state = tx.init(params)
    step = jax.jit(lambda g, s, p, loss: guarded_update(tx, g, s, p, loss))
    p_bad, s_bad, ok = step(jax.tree.map(lambda g: g * jnp.nan, grads), state, params, jnp.float32(2e4))
    assert not bool(ok)
    for a, b in zip(jax.tree.leaves((p_bad, s_bad)), jax.tree.leaves((params, state)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    p_ok, _, ok = step(grads, state, params, jnp.float32(1.0))
    assert bool(ok)
    assert not np.array_equal(np.asarray(p_ok["head"]["kernel"]), np.asarray(params["head"]["kernel"]))


def test_start_step_offsets_schedule():
    params = {"head": {"w": jnp.zeros((2,))}}
    grads = {"head": {"w": jnp.ones((2,))}}
    sched = make_schedule(4)
    tx = make_optimizer(sched, backbone_trainable=True, start_step=40, weight_decay=0.0)
    u, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(u["head"]["w"]), -epoch_lr(10), rtol=1e-6)


def test_labels_on_smoke_siamrn_tree():
    from siamrn_jax.checkpoint import abstract_variables
    from siamrn_jax.config import build_model, load_config

    model = build_model(load_config("configs/siamrn_r50.py:smoke").model)
    params = abstract_variables(model)["params"]
    assert {"backbone", "neck", "head", "multi_det"} <= set(params)
    for trainable in (True, False):
        labels = param_labels(params, trainable)
        assert jax.tree.structure(labels) == jax.tree.structure(params)
        bb = labels["backbone"]
        for k in ("conv1", "bn1", "layer1"):
            assert set(jax.tree.leaves(bb[k])) == {"frozen"}, k
        for k in ("layer2", "layer3", "layer4"):
            assert set(jax.tree.leaves(bb[k])) == {"backbone" if trainable else "frozen"}, k
        assert set(bb) == {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4"}
        for k in set(params) - {"backbone"}:
            assert set(jax.tree.leaves(labels[k])) == {"rest"}, k
        # the optimiser inits and updates on the real tree
        tx = make_optimizer(make_schedule(10), trainable)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), params)
        st = jax.eval_shape(tx.init, zeros)
        assert jax.tree.leaves(st)


def test_stem_trainable_labels_for_from_scratch_models():
    from siamrn_jax.checkpoint import abstract_variables
    from siamrn_jax.config import build_model, load_config

    model = build_model(load_config("configs/siamrn_r50.py:smoke").model)
    params = abstract_variables(model)["params"]
    bb = param_labels(params, True, stem_trainable=True)["backbone"]
    assert set(jax.tree.leaves(bb)) == {"backbone"}
    # The stem only trains with the rest of the backbone.
    assert set(jax.tree.leaves(param_labels(params, False, stem_trainable=True)["backbone"])) == {"frozen"}


def test_clip_coefficient_is_torch_clip_grad_norm():
    """``clip_grad_norm`` multiplies by min(1, max / (norm + 1e-6)) as torch does, below the limit too
    (norm 9.9999999: coefficient 10 / (norm + 1e-6) < 1, where optax's clip would leave it)."""
    torch = pytest.importorskip("torch")
    for norm in (0.5, 10.0 - 1e-7, 10.0, 123.4):
        g = np.random.default_rng(0).standard_normal(50)
        g = g / np.linalg.norm(g) * norm
        ours = np.asarray(clip_grad_norm(10.0).update({"g": jnp.asarray(g)}, optax.EmptyState())[0]["g"])
        t = torch.nn.Parameter(torch.zeros(50, dtype=torch.float64))
        t.grad = torch.tensor(g)
        torch.nn.utils.clip_grad_norm_([t], 10.0)
        np.testing.assert_allclose(ours, t.grad.numpy(), rtol=1e-6, atol=0)


def test_epoch_phase_is_the_training_loops_rule():
    """``reference_step``'s phase (``epoch_phase``) equals what the training loop runs at each epoch's steps,
    for the paper config and for a config with other switch epochs and online HNM off."""
    from siamrn_jax.config import load_config
    from siamrn_jax.train.loop import make_plan
    from siamrn_jax.train.schedule import epoch_phase

    for changes in ({}, {"backbone_train_epoch": 2, "hnm_epoch": 5, "online_hnm": False}):
        t = load_config("vot").train
        t.update(changes)
        t.steps_per_epoch = 3
        plan = make_plan(t, devices=1)
        for epoch in range(t.epochs):
            kwargs = {k: t[k] for k in ("backbone_train_epoch", "hnm_epoch", "online_hnm")}
            want = epoch_phase(epoch, **kwargs)
            assert all(plan.phase(epoch * 3 + i) == want for i in range(3)), (changes, epoch)
    assert (
        epoch_phase(0) == (False, False)
        and epoch_phase(3) == (False, True)
        and epoch_phase(10) == (True, True)
    )
