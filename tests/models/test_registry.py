"""The architecture registry and SiamRN-Nano, on random weights (no third-party files needed).

The paper model is the default and unchanged (model.json without ``arch``); ``arch`` selects NanoTrack;
SiamRN-Nano (``relation=True``) runs the whole tracker and trains only its relation detector.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from siamrn_jax import checkpoint
from siamrn_jax.config import ConfigError, build_model, load_config
from siamrn_jax.models.nanotrack import NanoTrack, feature_side
from siamrn_jax.models.siamrn import SiamRN
from siamrn_jax.tracking.params import TrackerParams
from siamrn_jax.tracking.runner import Tracker
from siamrn_jax.train.loop import train
from siamrn_jax.train.optim import param_labels

PAPER_FIELDS = {
    "backbone_blocks",
    "backbone_widths",
    "stem_width",
    "channels",
    "levels",
    "template_crop",
    "roi_size",
    "stride",
    "exemplar_size",
    "instance_size",
    "dtype",
}


def test_paper_model_is_the_default_and_its_model_json_unchanged():
    assert type(build_model({})) is SiamRN
    assert set(checkpoint.model_fields(SiamRN())) == PAPER_FIELDS  # no "arch": old checkpoints load
    m = build_model({"arch": "nanotrack_v3", "relation": True})
    assert isinstance(m, NanoTrack) and m.arch == "nanotrack_v3" and m.relation
    assert checkpoint.model_fields(m)["arch"] == "nanotrack_v3"
    with pytest.raises(ConfigError, match="unknown model arch 'mobilenet'.*known: nanotrack_v2"):
        build_model({"arch": "mobilenet"})
    with pytest.raises(ConfigError, match=r"unknown keys \['levels'\] for nanotrack_v2"):
        build_model({"arch": "nanotrack_v2", "levels": [4]})


@pytest.mark.parametrize("arch, side, score", [("nanotrack_v2", 16, 16), ("nanotrack_v3", 16, 15)])
def test_geometry_comes_from_the_model(arch, side, score):
    m = NanoTrack(arch)
    assert (feature_side(127), feature_side(255)) == (8, side)
    assert (m.stride, m.score_size, m.template_crop, m.levels) == (16, score, 8, (4,))
    assert SiamRN().score_size == 25
    p = TrackerParams.for_model(m)
    assert (p.penalty_k, p.relation) == ((0.150, False) if arch.endswith("v2") else (0.138, False))
    assert TrackerParams.for_model(m.clone(relation=True)).relation


@pytest.fixture(scope="module")
def nano_rn():
    model = NanoTrack("nanotrack_v2", relation=True)
    return model, checkpoint.init_variables(model, seed=3, calibrate=2)


def test_refinement_from_stored_correlations_equals_rerunning_the_head(nano_rn):
    model, v = nano_rn
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.uniform(0, 255, (2, 127, 127, 3)), jnp.float32)
    x = jnp.asarray(rng.uniform(0, 255, (2, 255, 255, 3)), jnp.float32)
    t = model.apply(
        v, z, jnp.tile(jnp.asarray([[40.0, 30.0, 90.0, 100.0]]), (2, 1)), method="encode_template"
    )
    assert t.support[0].shape == (2, 7, 7, model.rd_channels)
    full = model.apply(v, t, x, method="track_forward")
    fast = model.apply(v, t.kernel, t.support, x, None, True, method="track_frame")
    assert full.p_match.shape == (2, 256) and full.proposals.shape == (2, 256, 4)
    np.testing.assert_allclose(fast.cls_refined, full.cls_refined, rtol=1e-5, atol=1e-5)
    # The match map M multiplies the head's cls correlation C: refine(C, M) = refine(C * M, 1), and a
    # map of ones gives the unrefined head (random C of unit scale: random weights barely see the real C).
    s = model.apply(v, x, method="encode_search")
    head = model.apply(v, t.kernel, s, method="ban_head")
    np.testing.assert_allclose(
        model.apply(v, head.cls_corr, jnp.ones((2, 16, 16)), method="refine"), head.cls, rtol=1e-6, atol=1e-6
    )
    c = jnp.asarray(rng.normal(size=(2, 16, 16, 64)), jnp.float32)
    m = jnp.asarray(rng.uniform(size=(2, 16, 16)), jnp.float32)
    refined = model.apply(v, (c,), m, method="refine")
    np.testing.assert_allclose(
        refined, model.apply(v, (c * m[..., None],), jnp.ones_like(m), method="refine"), rtol=1e-5, atol=1e-6
    )
    # (random towers are insensitive: 4e-4 here, float noise is about 1e-7)
    assert np.abs(refined - model.apply(v, (c,), jnp.ones_like(m), method="refine")).max() > 1e-5


def test_siamrn_nano_tracks_and_its_checkpoint_round_trips(nano_rn, tmp_path):
    model, v = nano_rn
    checkpoint.save(tmp_path / "ck", model, v)
    back = checkpoint.load(tmp_path / "ck", inference=False)  # the stored arrays, no load-time forms
    assert back.model == model
    for a, b in zip(jax.tree.leaves(v), jax.tree.leaves(back.variables), strict=True):
        np.testing.assert_array_equal(a, b)
    frames = [np.random.default_rng(i).integers(0, 255, (120, 160, 3), np.uint8) for i in range(3)]
    t = Tracker(model, v, TrackerParams.for_model(model))
    t.init(frames[0], (50, 40, 30, 40))
    for f in frames[1:]:
        out = t.track(f)
        assert np.all(np.isfinite(out["bbox"])) and out["p_match"].shape == (256,)
        assert out["cls"].shape == (16, 16, 2)


def test_rd_width_sets_the_relation_detector_width_and_is_stored_only_when_set(nano_rn, tmp_path):
    """SiamRN-Nano's configs set ``rd_width`` 32; a model without it keeps the official neck's 64 and its
    model.json has no such key (checkpoints written before the field load as they were)."""
    model = build_model(load_config("configs/nanotrack.py:v2_rn").model)
    assert (model.rd_width, model.rd_channels) == (32, 32)
    assert (nano_rn[0].rd_width, nano_rn[0].rd_channels) == (None, 64)
    shapes = checkpoint.abstract_variables(model)["params"]
    assert shapes["rd_neck"]["downsample"]["0"]["kernel"].shape == (1, 1, 48, 32)
    assert shapes["multi_det"]["non_local4"]["theta"]["kernel"].shape == (1, 1, 64, 32)
    assert checkpoint.model_fields(model)["rd_width"] == 32
    assert "rd_width" not in checkpoint.model_fields(nano_rn[0])
    v = checkpoint.init_variables(model, seed=1)
    checkpoint.save(tmp_path / "ck", model, v)
    assert checkpoint.load(tmp_path / "ck", inference=False).model == model
    for bad in (0, "32", True):
        with pytest.raises(ConfigError, match=r"rd_width = .* is not a positive integer"):
            build_model({"arch": "nanotrack_v2", "relation": True, "rd_width": bad})


def test_train_updates_only_the_relation_detector(tmp_path):
    """configs/nanotrack.py:v2_rn for 2 steps from a checkpoint: the NanoTrack part (parameters and BN
    statistics) stays bit-identical, the relation detector and its adjust layer move."""
    cfg = load_config("configs/nanotrack.py:v2_rn")
    model = build_model(cfg.model)  # the config's relation detector width (rd_width 32)
    v = checkpoint.init_variables(model, seed=3, calibrate=2)
    checkpoint.save(tmp_path / "init", model, v)
    with cfg.unlocked():
        cfg.train.init_checkpoint = str(tmp_path / "init")
        cfg.train.batch_per_device = 2
        cfg.train.epochs = 1
        cfg.train.steps_per_epoch = 2
        cfg.train.warmup_epochs = 0
        cfg.train.log_every = 1
        cfg.data.workers = 0
        cfg.data.synthetic.num_videos = 20
        cfg.data.synthetic.frames = 20
    labels = traverse_util.flatten_dict(param_labels(v["params"], True, frozen=tuple(cfg.train.frozen)))
    assert {k[0]: lab for k, lab in labels.items()} == {
        "backbone": "frozen",
        "head": "frozen",
        "rd_neck": "rest",
        "multi_det": "rest",
    }
    train(cfg, tmp_path / "run", progress=False)
    _, after, _ = checkpoint.load(tmp_path / "run" / "model")
    for col in ("params", "batch_stats"):
        old, new = traverse_util.flatten_dict(v[col]), traverse_util.flatten_dict(after[col])
        for k in old:
            same = np.array_equal(old[k], new[k])
            assert same == (k[0] in ("backbone", "head")), (col, k)


def test_broken_addons_are_one_line_errors(tmp_path):
    from siamrn_jax.convert.addon import AddonError, load

    with pytest.raises(AddonError, match="not an add-on directory"):
        load(tmp_path)
    (tmp_path / "addon.json").write_text("{")
    (tmp_path / "variables.npz").write_bytes(b"")
    with pytest.raises(AddonError, match="corrupt JSON"):
        load(tmp_path)
    (tmp_path / "addon.json").write_text(
        '{"format": "siamrn-jax-addon/1", "modules": ["multi_det"], '
        '"model": {"arch": "nanotrack_v2", "relation": true}}'
    )
    with pytest.raises(AddonError, match="variables.npz: unreadable"):
        load(tmp_path)
    np.savez(tmp_path / "variables.npz", **{"params/multi_det/matching_weight": np.ones(2)})
    with pytest.raises(AddonError, match="does not fit its model: missing"):
        load(tmp_path)


def test_the_embedded_addon_fits_siamrn_nano_v2():
    from siamrn_jax.convert.addon import load
    from siamrn_jax.models.nanotrack import ADDON_MODULES as RELATION_MODULES

    model, arrays, meta = load("nano_rd_v2")
    recipe = build_model(load_config("configs/nanotrack.py:v2_rn").model)  # the config it was trained with
    assert model == recipe and meta["modules"] == list(RELATION_MODULES)
    assert {k[1] for k in arrays} == set(RELATION_MODULES) and "configs/nanotrack.py:v2_rn" in meta["recipe"]
    assert all(np.all(np.isfinite(a)) for a in arrays.values())
