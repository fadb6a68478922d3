"""Mixed precision (``model.dtype=bfloat16``) and backbone rematerialisation (``model.remat_backbone``).

bfloat16: the smoke model computes its convolutions and matmuls in bfloat16 (checked on the jaxpr), stays
close to float32 on the same weights, and keeps float32 what must be: parameters, BatchNorm statistics,
PrRoIPool outputs, network outputs, losses, tracker boxes and the train state. Remat: the same variable
tree, and the same loss and gradients.
"""

from __future__ import annotations

import collections
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from jax.sharding import AxisType

import siamrn_jax
from siamrn_jax import checkpoint
from siamrn_jax.config import ConfigError, build_model, load_config
from siamrn_jax.data.sampler import DatasetSpec, TripletSampler, split_report
from siamrn_jax.data.synthetic import SyntheticConfig, SyntheticSource
from siamrn_jax.models.interface import BNTrain
from siamrn_jax.models.siamrn import SiamRN
from siamrn_jax.ops import prroi_pool
from siamrn_jax.sharding import replicate, shard_batch
from siamrn_jax.tracking import tracker as core
from siamrn_jax.tracking.params import TrackerParams
from siamrn_jax.train.forward import LossConfig, train_forward
from siamrn_jax.train.optim import make_optimizer
from siamrn_jax.train.step import TrainState, make_train_step

BF16 = jnp.dtype(jnp.bfloat16)
# bf16 vs f32 on the same (calibrated random) smoke weights: measured worst error / max(1, max |f32|) is
# 6.0e-3 (loc; cls 5.7e-3, RD logits 5.3e-3); about 3x margin.
TOL = 2e-2


def _smoke_cfg():
    return load_config("configs/siamrn_r50.py:smoke").model


@pytest.fixture(scope="module")
def models():
    m32 = build_model(_smoke_cfg())
    m16 = build_model(_smoke_cfg(), "bfloat16")
    return m32, m16, checkpoint.init_variables(m32, seed=1, calibrate=3)


def _inputs(batch=1):
    k1, k2 = jax.random.split(jax.random.key(0))
    z = jax.random.uniform(k1, (batch, 127, 127, 3), minval=0, maxval=255)
    x = jax.random.uniform(k2, (batch, 255, 255, 3), minval=0, maxval=255)
    box = jnp.tile(jnp.asarray([[31.5, 39.5, 95.5, 87.5]]), (batch, 1))
    return z, box, x


def _fast_frame(model, v, z, box, x):
    """The tracker's default network path: prepared support terms, refinement on stored correlations."""
    t = model.apply(v, z, box, method=SiamRN.encode_template)
    cache = model.apply(v, tuple(s[:, None] for s in t.support), method=SiamRN.prepare_support)
    return model.apply(v, t.kernel, t.support, x, cache, True, method=SiamRN.track_frame)


def _primitive_dtypes(fn, *args) -> collections.Counter:
    """(primitive, input dtypes, output dtype) -> count, over the jaxpr of ``fn`` and its sub-jaxprs."""
    counts = collections.Counter()

    def walk(jaxpr):
        for e in jaxpr.eqns:
            if e.primitive.name in ("conv_general_dilated", "dot_general", "exp"):
                ins = tuple(str(v.aval.dtype) for v in e.invars)
                counts[(e.primitive.name, ins, str(e.outvars[0].aval.dtype))] += 1
            for p in e.params.values():
                sub = getattr(p, "jaxpr", p)
                if hasattr(sub, "eqns"):
                    walk(sub)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return counts


@pytest.mark.parametrize("path", ["official", "fused"])
def test_bf16_forward_is_close_to_fp32_and_really_bf16(models, path):
    m32, m16, v = models
    z, box, x = _inputs()
    if path == "official":
        fn = lambda m, v: m.apply(v, z, box, x)  # noqa: E731
    else:
        fn = lambda m, v: _fast_frame(m, v, z, box, x)  # noqa: E731
    o32 = jax.jit(functools.partial(fn, m32))(v)
    o16 = jax.jit(functools.partial(fn, m16))(v)
    worst = 0.0
    for name in o32._fields:
        a, b = getattr(o32, name), getattr(o16, name)
        assert a.dtype == b.dtype == jnp.float32, name  # every network output is float32
        err = float(jnp.abs(a - b).max()) / max(1.0, float(jnp.abs(a).max()))
        assert err <= TOL, f"{name}: bf16 vs f32 scaled error {err:.3g} > {TOL}"
        worst = max(worst, err)
    assert worst > 1e-4  # bfloat16 really changed the arithmetic (f32 reruns agree to ~1e-7)

    ops = _primitive_dtypes(functools.partial(fn, m16), v)
    convs = {k: n for k, n in ops.items() if k[0] == "conv_general_dilated"}
    assert convs and all(k[1] == ("bfloat16", "bfloat16") for k in convs), convs
    dots = {k: n for k, n in ops.items() if k[0] == "dot_general"}
    bf16_dots = sum(n for k, n in dots.items() if k[1] == ("bfloat16", "bfloat16"))
    f32_dots = sum(n for k, n in dots.items() if k[1] == ("float32", "float32"))
    # float32 matmuls: PrRoIPool's two contractions per chunk of RoIs (3 support pools of one RoI, 3
    # proposal pools of 625 RoIs in chunks of prroi_pool.chunk_size, float32 pooling on the smoke model's
    # 31 x 31 maps) and, in the fused order, the two BN folds of each level; everything else is bfloat16.
    chunk = prroi_pool.chunk_size(7, 31, m16.channels, 4)
    pool_dots = 2 * 3 * (1 + -(-625 // chunk))
    assert f32_dots == pool_dots + (6 if path == "fused" else 0), dots
    assert bf16_dots > 3 * 12, dots  # vs the 6 pools' 2 distinct float32 contractions (chunks unrolled)
    # The non-local attention logits leave their two bfloat16 GEMMs per level (support half, proposal half)
    # as float32 (the softmax input), and every exp (softmax, loc) is float32.
    assert dots.get(("dot_general", ("bfloat16", "bfloat16"), "float32")) == 6, dots
    assert all(k[1] == ("float32",) for k in ops if k[0] == "exp"), ops


def test_float32_islands(models):
    """Parameters, BN statistics (also when bf16 batch statistics update them), PrRoIPool outputs
    (dtypes only: ``eval_shape``, nothing is compiled)."""
    _, m16, v = models
    z, box, x = _inputs(batch=2)
    f32 = {jnp.dtype(jnp.float32)}
    fresh = jax.eval_shape(m16.init, jax.random.key(0), z, box, x)
    assert {a.dtype for a in jax.tree.leaves(fresh)} == f32
    bn = BNTrain(backbone=True, neck=True, head=True, relation=True)
    _, new = jax.eval_shape(lambda v: m16.apply(v, z, box, x, bn, mutable=["batch_stats"]), v)
    assert {a.dtype for a in jax.tree.leaves(new)} == f32
    t = jax.eval_shape(lambda v: m16.apply(v, z, box, method=SiamRN.encode_template), v)
    assert {a.dtype for a in t.kernel} == {BF16}  # intermediate features are bf16...
    assert {a.dtype for a in t.support} == f32  # ...PrRoIPool outputs float32
    boxes = jnp.tile(box[:, None], (1, 5, 1))
    rois = jax.eval_shape(
        lambda v: m16.apply(
            v, m16.apply(v, x, method=SiamRN.encode_search), boxes, method=SiamRN.pool_proposals
        ),
        v,
    )
    assert {r.dtype for r in rois} == f32


def test_tracker_outputs_are_float32(models):
    _, m16, v = models
    params = TrackerParams.for_model(m16, "otb")
    z, box, x = _inputs()
    c = jnp.asarray([[100.0, 80.0]])
    state = jax.eval_shape(
        functools.partial(core.init, model=m16, params=params), v, z, box, c, c, jnp.asarray([[240.0, 320.0]])
    )
    new, out = jax.eval_shape(functools.partial(core.step, model=m16, params=params), v, state, x)
    for name in ("box", "best_score", "cls", "p_match"):
        assert getattr(out, name).dtype == jnp.float32, name
    assert new.center.dtype == new.size.dtype == jnp.float32


@pytest.fixture(scope="module")
def train_setup():
    mesh = jax.make_mesh((1,), ("data",), axis_types=(AxisType.Auto,))
    sampler = TripletSampler(
        [DatasetSpec(SyntheticSource(SyntheticConfig(num_videos=8, frames=6)), -1, 100)],
        seed=0,
        global_batch=2,
        neg=0.0,
    )
    return mesh, split_report(sampler.batch([0, 1]))[0]


def _loss_and_grads(model, variables, batch):
    """Loss, metrics and parameter gradients of one trainable-phase smoke batch (as the train step)."""

    def loss_fn(params):
        (loss, metrics), _ = model.apply(
            {"params": params, "batch_stats": variables["batch_stats"]},
            batch,
            jax.random.key(0),
            method=functools.partial(
                train_forward, backbone_trainable=True, hnm=False, loss_cfg=LossConfig()
            ),
            mutable=["batch_stats"],
        )
        return loss, metrics

    return jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(variables["params"])


@pytest.fixture(scope="module")
def grads(models, train_setup):
    """{'f32', 'f32_remat', 'bf16'}: ((loss, metrics), grads) of the same batch and weights."""
    m32, m16, v = models
    batch = jax.tree.map(jnp.asarray, train_setup[1])
    return {
        "f32": _loss_and_grads(m32, v, batch),
        "f32_remat": _loss_and_grads(m32.clone(remat_backbone=True), v, batch),
        "bf16": _loss_and_grads(m16, v, batch),
    }


def test_bf16_losses_and_gradients_are_float32_and_close(grads):
    (l32, _), g32 = grads["f32"]
    (l16, met16), g16 = grads["bf16"]
    assert l16.dtype == jnp.float32 and all(m.dtype == jnp.float32 for m in met16.values())
    assert {g.dtype for g in jax.tree.leaves(g16)} == {jnp.dtype(jnp.float32)}  # float32 master gradients
    assert np.isfinite(float(l16))
    np.testing.assert_allclose(float(l16), float(l32), rtol=2e-2)
    # Same descent direction: cosine of the flattened gradients.
    a, b = (jnp.concatenate([x.ravel() for x in jax.tree.leaves(g)]) for g in (g32, g16))
    assert float(a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b))) > 0.99


def test_bf16_train_step_keeps_float32_state(models, train_setup):
    """The full train step (hard-negative mining on, backbone trainable) of a bf16 model."""
    _, m16, v = models
    mesh, host_batch = train_setup
    tx = make_optimizer(0.005, True)
    step = make_train_step(m16, tx, mesh, backbone_trainable=True, hnm=True)
    state = replicate(TrainState.create(jax.tree.map(np.asarray, v), tx, 0), mesh)
    state, metrics = step(state, shard_batch(host_batch, mesh))
    assert bool(metrics["ok"]) and np.isfinite(float(metrics["loss"]))
    assert metrics["loss"].dtype == jnp.float32
    for tree in (state.params, state.batch_stats, state.opt_state):
        floats = {a.dtype for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.floating)}
        assert floats == {jnp.dtype(jnp.float32)}
    moved = [
        float(jnp.abs(a - b).max())
        for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(v["params"]), strict=True)
    ]
    assert max(moved) > 0


def _count_remat(jaxpr) -> int:
    n = 0
    for e in jaxpr.eqns:
        n += e.primitive.name in ("checkpoint", "remat2")  # jax.checkpoint's primitive, by version
        for p in e.params.values():
            sub = getattr(p, "jaxpr", p)
            if hasattr(sub, "eqns"):
                n += _count_remat(sub)
    return n


def test_remat_keeps_the_variable_tree_loss_and_grads(models, grads):
    m32, _, v = models
    remat = build_model({**_smoke_cfg().to_dict(), "remat_backbone": True})
    assert remat.remat_backbone and not m32.remat_backbone
    z, box, x = _inputs()

    def paths(model):
        shapes = jax.eval_shape(model.init, jax.random.key(0), z, box, x)
        return {k: (a.shape, a.dtype) for k, a in traverse_util.flatten_dict(shapes, sep="/").items()}

    assert paths(remat) == paths(m32)
    (l0, _), g0 = grads["f32"]
    (l1, _), g1 = grads["f32_remat"]
    np.testing.assert_allclose(float(l1), float(l0), rtol=1e-6)
    flat0, flat1 = traverse_util.flatten_dict(g0, sep="/"), traverse_util.flatten_dict(g1, sep="/")
    assert flat0.keys() == flat1.keys()
    for k in flat0:
        scale = max(1.0, float(jnp.abs(flat0[k]).max()))
        np.testing.assert_allclose(flat1[k], flat0[k], rtol=1e-6, atol=1e-6 * scale, err_msg=k)

    # layer2-4 (one block each in the smoke model) are under remat, the stem and layer1 are not.
    def count(m):
        return _count_remat(
            jax.make_jaxpr(lambda v: m.apply(v, x, method=lambda m, x: m.backbone(x)))(v).jaxpr
        )

    assert (count(remat), count(m32)) == (3, 0)


def test_checkpoints_stay_float32_and_load_in_either_dtype(models, tmp_path):
    m32, m16, v = models
    remat16 = m16.clone(remat_backbone=True)
    checkpoint.save(tmp_path / "bf16", remat16, v)
    meta = json.loads((tmp_path / "bf16" / "model.json").read_text())
    assert meta["model"]["dtype"] == "bfloat16" and "remat_backbone" not in meta["model"]
    loaded = checkpoint.load(tmp_path / "bf16")
    assert loaded.model.dtype == BF16 and not loaded.model.remat_backbone
    as32 = checkpoint.load(tmp_path / "bf16", dtype="float32")
    assert as32.model.dtype == jnp.float32
    want = traverse_util.flatten_dict(v, sep="/")
    for bundle in (loaded, as32):
        got = traverse_util.flatten_dict(bundle.variables, sep="/")
        assert got.keys() == want.keys() and {a.dtype for a in got.values()} == {np.dtype(np.float32)}
        assert all(np.array_equal(got[k], np.asarray(want[k])) for k in want)
    with pytest.raises(ConfigError, match="float16"):
        checkpoint.load(tmp_path / "bf16", dtype="float16")


def test_bf16_run_starts_from_a_float32_init_checkpoint(models, tmp_path):
    """train.init_checkpoint (e.g. a converted official checkpoint, model.json dtype float32) fits a
    model.dtype=bfloat16 config: the dtype is not architecture."""
    from siamrn_jax.train.loop import init_train_variables

    m32, m16, v = models
    checkpoint.save(tmp_path / "f32", m32, v)
    cfg = load_config("configs/siamrn_r50.py:smoke")
    cfg.unlock()
    cfg.train.init_checkpoint = str(tmp_path / "f32")
    cfg.model.dtype = "bfloat16"
    got = init_train_variables(cfg, build_model(cfg.model))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(v), strict=True):
        assert a.dtype == np.float32 and np.array_equal(a, np.asarray(b))


def test_api_load_dtype_override_keeps_the_demo_weights():
    m32, v32, meta = siamrn_jax.load("demo_resnet")
    m16, v16, meta16 = siamrn_jax.load("demo_resnet", dtype="bfloat16")
    assert m32.dtype == jnp.float32 and m16.dtype == BF16 and meta16 == meta
    assert m16.clone(dtype=jnp.float32) == m32
    for a, b in zip(jax.tree.leaves(v32), jax.tree.leaves(v16), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_build_model_dtypes():
    assert build_model(_smoke_cfg(), jnp.bfloat16).dtype == BF16
    assert build_model({**_smoke_cfg().to_dict(), "dtype": "bfloat16"}).dtype == BF16
    for bad in ("float16", "int8", "nonsense"):
        with pytest.raises(ConfigError, match="expected one of float32, bfloat16"):
            build_model(_smoke_cfg(), bad)
