"""Model structure, staged API and BatchNorm modes (smoke model for compute, full size via eval_shape)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from siamrn_jax import checkpoint
from siamrn_jax.config import build_model, load_config
from siamrn_jax.convert.mapping import flax_path_to_torch
from siamrn_jax.geometry.score_map import points, proposal_boxes
from siamrn_jax.models.interface import BNTrain
from siamrn_jax.models.siamrn import SiamRN
from siamrn_jax.ops.xcorr import xcorr_depthwise
from tests.conftest import PARITY


@pytest.fixture(scope="module")
def smoke():
    model = build_model(load_config("configs/siamrn_r50.py:smoke").model)
    return model, checkpoint.init_variables(model, seed=1)


def inputs(key=0, batch=1):
    k1, k2 = jax.random.split(jax.random.key(key))
    z = jax.random.uniform(k1, (batch, 127, 127, 3), minval=0, maxval=255)
    x = jax.random.uniform(k2, (batch, 255, 255, 3), minval=0, maxval=255)
    box = jnp.tile(jnp.asarray([[31.5, 39.5, 95.5, 87.5]]), (batch, 1))
    return z, box, x


def test_full_size_tree_is_the_official_state_dict():
    """Every Flax leaf maps to an official key, and together they are exactly keys.txt (541 keys)."""
    shapes = checkpoint.abstract_variables(SiamRN())
    ours = {}
    for c in ("params", "batch_stats"):
        for path, leaf in traverse_util.flatten_dict(dict(shapes[c])).items():
            key, conv = flax_path_to_torch(c, path)
            ours[key] = conv.to_torch(np.empty(leaf.shape, np.uint8)).shape
            if c == "batch_stats" and path[-1] == "mean":
                ours[key.removesuffix("running_mean") + "num_batches_tracked"] = ()
    rows = [line.split("\t") for line in (PARITY / "keys.txt").read_text().splitlines()]
    official = {k: tuple(int(d) for d in s.strip("()").split(",") if d.strip()) for k, s, _ in rows}
    assert ours == official
    n = sum(np.prod(v.shape) for v in jax.tree.leaves(shapes["params"]))
    assert n == 56_562_544  # SPEC section 1


def test_full_size_stage_shapes():
    model = SiamRN()
    z, box, x = (jax.ShapeDtypeStruct(a.shape, a.dtype) for a in inputs())
    variables = checkpoint.abstract_variables(model)
    t = jax.eval_shape(lambda v, z, b: model.apply(v, z, b, method=SiamRN.encode_template), variables, z, box)
    assert [a.shape for a in t.kernel] == [(1, 7, 7, 256)] * 3
    assert [a.shape for a in t.full] == [(1, 15, 15, 256)] * 3
    assert [a.shape for a in t.support] == [(1, 7, 7, 256)] * 3
    out = jax.eval_shape(lambda v, t, x: model.apply(v, t, x, method=SiamRN.track_forward), variables, t, x)
    assert out.cls.shape == (1, 25, 25, 2) and out.loc.shape == (1, 25, 25, 4)
    assert out.proposals.shape == (1, 625, 4) and out.rd_logits.shape == (1, 625, 2)
    assert out.p_match.shape == (1, 625) and out.cls_refined.shape == (1, 25, 25, 2)
    taps = jax.eval_shape(lambda v, x: model.apply(v, x, method=lambda m, x: m.backbone(x)), variables, x)
    assert [a.shape for a in taps] == [(1, 31, 31, 512), (1, 31, 31, 1024), (1, 31, 31, 2048)]


def test_staged_api_composes_and_refinement_reuse_is_exact(smoke):
    model, v = smoke
    z, box, x = inputs(batch=2)
    t = model.apply(v, z, box, method=SiamRN.encode_template)
    out = model.apply(v, t, x, method=SiamRN.track_forward)
    fast = model.apply(v, t, x, True, method=SiamRN.track_forward)
    np.testing.assert_allclose(fast.cls_refined, out.cls_refined, rtol=1e-6, atol=1e-6)
    # The stages by hand give the same as track_forward.
    s = model.apply(v, x, method=SiamRN.encode_search)
    head = model.apply(v, t.kernel, s, method=SiamRN.ban_head)
    np.testing.assert_allclose(head.cls, out.cls, rtol=1e-6, atol=1e-6)
    boxes = proposal_boxes(head.loc, 8, 255)
    rois = model.apply(v, s, boxes, method=SiamRN.pool_proposals)
    assert rois[0].shape == (2, 625, 7, 7, 32)
    support = tuple(a[:, None] for a in t.support)
    logits = model.apply(v, support, rois, method=SiamRN.relate)
    np.testing.assert_allclose(logits, out.rd_logits, rtol=1e-6, atol=1e-6)
    # Support terms computed once per template (tracker default) == recomputed for every proposal.
    cache = model.apply(v, support, method=SiamRN.prepare_support)
    cached = model.apply(v, t.kernel, t.support, x, cache, method=SiamRN.track_frame)
    np.testing.assert_allclose(cached.rd_logits, out.rd_logits, rtol=1e-5, atol=1e-6)
    # Explicit pairs (training layout): [N] supports against [N] proposals.
    flat = tuple(jnp.repeat(a, 625, axis=0) for a in t.support)
    pairs = model.apply(v, flat, tuple(r.reshape(-1, 7, 7, 32) for r in rois), method=SiamRN.relate)
    np.testing.assert_allclose(pairs.reshape(2, 625, 2), out.rd_logits, rtol=1e-5, atol=1e-6)
    # The refinement really changes cls (match map != 1), and a map of ones gives back the plain head.
    assert np.abs(np.asarray(out.cls_refined - out.cls)).max() > 1e-4
    ones = model.apply(v, t.kernel, s, jnp.ones((2, 25, 25)), method=SiamRN.ban_head)
    np.testing.assert_allclose(ones.cls, head.cls, rtol=1e-6, atol=1e-6)
    # Each sample of the batch is independent of the others.
    single = model.apply(v, jax.tree.map(lambda a: a[1:], t), x[1:], method=SiamRN.track_forward)
    np.testing.assert_allclose(single.cls_refined[0], out.cls_refined[1], rtol=1e-5, atol=1e-5)


def test_bn_train_modes_touch_only_their_stages(smoke):
    model, v = smoke
    z, box, _ = inputs(batch=2)
    bn = BNTrain(backbone=True, neck=True)
    _, upd = model.apply(v, z, box, bn, method=SiamRN.encode_template, mutable=["batch_stats"])
    old = traverse_util.flatten_dict(dict(v["batch_stats"]), sep="/")
    new = traverse_util.flatten_dict(dict(upd["batch_stats"]), sep="/")
    changed = {k for k in new if not np.array_equal(new[k], old[k])}
    assert any(k.startswith("backbone/layer2/") for k in changed)
    assert any(k.startswith("neck/") for k in changed)
    # conv1/bn1/layer1 stay frozen in eval mode for the whole official training.
    assert not any(k.startswith(("backbone/bn1/", "backbone/layer1/")) for k in changed)
    # Flax momentum 0.9 == PyTorch momentum 0.1: running = 0.9 running + 0.1 batch.
    k = "neck/downsample2/downsample/1/mean"
    assert not np.allclose(new[k], old[k])
    # Eval mode needs no mutable collections and changes nothing.
    model.apply(v, z, box, method=SiamRN.encode_template)


@pytest.mark.parametrize(
    "s_hw,k_hw", [((9, 8), (3, 2)), ((6, 7), (5, 6)), ((29, 29), (5, 5))], ids=["taps", "outputs", "siamrn"]
)
def test_xcorr_depthwise_matches_loop(s_hw, k_hw):
    """Both unrolled forms (over kernel taps; over output pixels when fewer) and the grouped convolution
    equal an explicit float64 loop."""
    from siamrn_jax.ops.xcorr import grouped_xcorr

    rng = np.random.default_rng(0)
    s = rng.normal(size=(2, *s_hw, 3)).astype(np.float32)
    k = rng.normal(size=(2, *k_hw, 3)).astype(np.float32)
    ho, wo = s_hw[0] - k_hw[0] + 1, s_hw[1] - k_hw[1] + 1
    ref = np.zeros((2, ho, wo, 3))
    for b in range(2):
        for u in range(ho):
            for w in range(wo):
                ref[b, u, w] = (s[b, u : u + k_hw[0], w : w + k_hw[1]] * k[b].astype(np.float64)).sum(
                    axis=(0, 1)
                )
    for f in (xcorr_depthwise, grouped_xcorr):
        np.testing.assert_allclose(np.asarray(f(jnp.asarray(s), jnp.asarray(k))), ref, rtol=1e-5, atol=1e-5)


def test_xcorr_depthwise_custom_vjp_is_jax_autodiff():
    """The hand-written gradients (two correlations, linear memory) equal JAX's transpose of the grouped
    convolution (whose kernel gradient XLA:CPU expands to a dense B*C x B*C convolution)."""
    from siamrn_jax.ops.xcorr import grouped_xcorr

    ks = jax.random.split(jax.random.key(0), 3)
    s = jax.random.normal(ks[0], (3, 11, 10, 4))
    k = jax.random.normal(ks[1], (3, 5, 3, 4))
    w = jax.random.normal(ks[2], (3, 7, 8, 4))
    ours = jax.grad(lambda s, k: jnp.sum(xcorr_depthwise(s, k) * w), argnums=(0, 1))(s, k)
    ref = jax.grad(lambda s, k: jnp.sum(grouped_xcorr(s, k) * w), argnums=(0, 1))(s, k)
    for a, b in zip(ours, ref, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    bf = jax.grad(lambda s, k: jnp.sum(xcorr_depthwise(s, k).astype(jnp.float32) * w), argnums=(0, 1))(
        s.astype(jnp.bfloat16), k.astype(jnp.bfloat16)
    )
    assert [g.dtype for g in bf] == [jnp.bfloat16, jnp.bfloat16]


def test_score_map_points_and_proposals():
    p = points(25, 8, 255)
    assert tuple(p[0, 0]) == (31.0, 31.0) and tuple(p[2, 5]) == (31.0 + 40, 31.0 + 16)
    loc = jnp.full((1, 25, 25, 4), 40.0)
    boxes = np.asarray(proposal_boxes(loc, 8, 255))
    k = 25 * 2 + 5  # row-major cell (2, 5)
    np.testing.assert_allclose(boxes[0, k], [71 - 40, 47 - 40, 71 + 40, 47 + 40])
    assert boxes.min() == 0.0 and boxes.max() == 255.0  # clipped to the crop


def test_unknown_model_config_key_is_an_error():
    with pytest.raises(ValueError, match=r"unknown keys \['chanels'\]"):
        build_model({"chanels": 8})
    with pytest.raises(ValueError, match="unknown variant 'tiny'"):
        load_config("configs/siamrn_r50.py:tiny")
