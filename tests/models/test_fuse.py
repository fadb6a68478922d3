"""The load-time inference form (siamrn_jax.models.fuse): BatchNorm folded into the convolution before it,
depthwise convolutions as shifted sums. The folded network must equal the stored one up to float rounding.

References: the same model applied with the stored variables (no ``fused`` collection). Tolerance on every
output the tracker reads (cls, loc, match probabilities): max |d| / max |ref| <= 2e-5 (measured 1e-7 to
3e-6: BN folding rounds each kernel once, the shifted sums add the taps in another order). Models: NanoTrack
V2 with the relation detector (SiamRN-Nano) and V3, with random weights and random BatchNorm statistics
and affine parameters (so that every fold matters) on 0-1 images, and the embedded demo SiamRN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import siamrn_jax
from siamrn_jax.models import fuse
from siamrn_jax.models.layers import FUSED, FoldedBatchNormError, batch_norm
from siamrn_jax.models.nanotrack import NanoTrack


def _inputs(model, seed: int = 0, top: float = 255.0):
    rng = np.random.default_rng(seed)
    e, s = model.exemplar_size, model.instance_size
    z = jnp.asarray(rng.uniform(0, top, (1, e, e, 3)).astype(np.float32))
    x = jnp.asarray(rng.uniform(0, top, (1, s, s, 3)).astype(np.float32))
    return z, jnp.asarray([[31.5, 39.5, 95.5, 87.5]], jnp.float32), x


def _rel(got, ref) -> float:
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def _stored_vs_fused(model, variables, top: float = 255.0):
    fused = fuse.with_fused(model, variables, always=True)
    run = jax.jit(lambda v, z, box, x: model.apply(v, z, box, x))
    args = _inputs(model, top=top)
    return run(variables, *args), run(fused, *args), fused


def _random_nanotrack(model):
    """Initial weights with random BatchNorm statistics and affine parameters (images in 0-1 keep the
    untrained network finite)."""
    variables = jax.jit(model.init)(jax.random.key(0), *_inputs(model, top=1.0))
    rng = np.random.default_rng(1)

    def bn(tree, path=()):
        if "mean" in tree:  # batch_stats leaf dict
            c = tree["mean"].shape
            return {
                "mean": rng.normal(0, 0.2, c).astype(np.float32),
                "var": rng.uniform(0.5, 2, c).astype(np.float32),
            }
        return {k: bn(v) for k, v in tree.items()}

    params = jax.tree.map(np.asarray, variables["params"])
    for path in _bn_paths(variables["batch_stats"]):
        leaf = fuse.get_at(params, path)
        leaf["scale"] = rng.uniform(0.5, 1.5, leaf["scale"].shape).astype(np.float32)
        leaf["bias"] = rng.normal(0, 0.2, leaf["bias"].shape).astype(np.float32)
    return {"params": params, "batch_stats": bn(variables["batch_stats"])}


def _bn_paths(tree, prefix=()):
    for k, v in tree.items():
        if "mean" in v:
            yield (*prefix, k)
        else:
            yield from _bn_paths(v, (*prefix, k))


def test_siamrn_nano_folds_every_batch_norm_and_matches_the_stored_form():
    model = NanoTrack("nanotrack_v2", relation=True)
    variables = _random_nanotrack(model)
    ref, got, fused = _stored_vs_fused(model, variables, top=1.0)
    pairs, _, depthwise = fuse.conv_bn_pairs(model)
    # Every BatchNorm follows a Conv except the relation detector's non-local one (after a SplitLinear).
    bns = {p for p in _bn_paths(variables["batch_stats"]) if p[1] != "non_local4"}
    assert set(pairs.values()) == bns
    assert len(depthwise) == 8 + 2 * 6  # one per backbone block, six per V2 tower
    for conv, bn in pairs.items():
        assert "kernel" in fuse.get_at(fused[FUSED], conv) and "folded" in fuse.get_at(fused[FUSED], bn)
    assert _rel(got.cls_refined, ref.cls_refined) <= 2e-5
    assert _rel(got.loc, ref.loc) <= 2e-5
    assert _rel(got.p_match, ref.p_match) <= 2e-5


@pytest.mark.slow  # 25 s on the loaded 2-core machine
def test_nanotrack_v3_matches_the_stored_form():
    model = NanoTrack("nanotrack_v3")
    ref, got, _ = _stored_vs_fused(model, _random_nanotrack(model), top=1.0)
    assert _rel(got.cls, ref.cls) <= 2e-5 and _rel(got.loc, ref.loc) <= 2e-5


def test_demo_siamrn_matches_the_stored_form_and_keeps_its_non_local_batch_norm():
    model, variables, _ = siamrn_jax.load("demo_resnet", inference=False)
    ref, got, fused = _stored_vs_fused(model, variables)
    pairs, _, depthwise = fuse.conv_bn_pairs(model)
    assert not depthwise and pairs
    assert FUSED not in fuse.with_fused(model, variables)  # ResNet models keep the stored form by default
    # The non-local blocks' BatchNorm follows a SplitLinear, not a Conv: it stays a BatchNorm.
    assert not any(any(p.startswith("non_local") for p in bn) for bn in pairs.values())
    assert _rel(got.cls_refined, ref.cls_refined) <= 2e-5
    assert _rel(got.p_match, ref.p_match) <= 2e-5


def test_fold_batch_norm_is_eval_mode_batch_norm_of_the_conv():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 6, 6, 4)).astype(np.float32)
    k = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)
    b, scale, beta = (rng.standard_normal(5).astype(np.float32) for _ in range(3))
    mean, var = rng.standard_normal(5), rng.uniform(0.1, 2.0, 5)
    conv = jax.lax.conv_general_dilated(
        x.astype(np.float64),
        k.astype(np.float64),
        (1, 1),
        "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    ref = (np.asarray(conv) + b - mean) / np.sqrt(var + 1e-5) * scale + beta
    kf, bf = fuse.fold_batch_norm(k, b, scale, beta, mean, var)
    got = jax.lax.conv_general_dilated(
        x.astype(np.float64), kf, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    np.testing.assert_allclose(np.asarray(got) + bf, ref, rtol=1e-5, atol=1e-5)


def test_a_folded_batch_norm_refuses_train_mode():
    bn = batch_norm(True, name=None)
    x = jnp.ones((1, 2, 2, 3))
    variables = bn.init(jax.random.key(0), x)
    variables = {**variables, FUSED: {"folded": jnp.zeros(())}}
    with pytest.raises(FoldedBatchNormError, match="folded"):
        bn.apply(variables, x, mutable=["batch_stats"])
    assert jnp.array_equal(batch_norm(False, name=None).apply(variables, x), x)
