"""Tracker core: trajectory parity with the official tracker, exact speed-ups, batching, no retracing."""

from __future__ import annotations

import cv2
import jax.numpy as jnp
import numpy as np
import pytest

from siamrn_jax import checkpoint
from siamrn_jax.config import build_model, load_config
from siamrn_jax.convert.convert import torch_to_flax
from siamrn_jax.geometry.iou import iou
from siamrn_jax.models.siamrn import SiamRN
from siamrn_jax.tracking import tracker as core
from siamrn_jax.tracking.crop import subwindow
from siamrn_jax.tracking.params import OTB, VOT, ParamsMismatchError, TrackerParams
from siamrn_jax.tracking.runner import BoxError, Tracker, compiled, run_sequence, search_crop, track_batch
from siamrn_jax.tracking.tracker import post_process
from tests.conftest import require_parity_fixtures


def centres(b):
    return b[:, :2] + b[:, 2:] / 2


def synthetic_sequence(n, hw=(240, 320), seed=0, start=(60, 80)):
    """A textured 36x48 target moving over a textured background (like the parity frames)."""
    rs = np.random.RandomState(seed)
    bg = rs.uniform(0, 255, (*hw, 3))
    tex = np.kron(rs.uniform(0, 255, (9, 12, 3)), np.ones((4, 4, 1)))
    frames = []
    for t in range(n):
        f = bg.copy()
        y, x = start[0] + 3 * t, start[1] + 5 * t
        f[y : y + 36, x : x + 48] = tex
        frames.append(f.astype(np.uint8))
    return frames, [start[1], start[0], 48, 36]


@pytest.fixture(scope="module")
def smoke():
    model = build_model(load_config("configs/siamrn_r50.py:smoke").model)
    return model, checkpoint.init_variables(model, seed=2, calibrate=10)


@pytest.mark.parity
@pytest.mark.slow
@pytest.mark.parametrize("fast", [False, True], ids=["official", "precompute+reuse"])
def test_trajectory_parity(parity_sd, parity_expected, fast):
    """Official SiamBANMultiTracker on fixtures/parity/frames: IoU >= 0.999, centre error <= 0.05 px."""
    model = SiamRN()
    variables, _ = torch_to_flax(parity_sd, checkpoint.abstract_variables(model))
    frames = [cv2.imread(str(require_parity_fixtures() / "frames" / f"{i:04d}.png")) for i in range(1, 13)]
    params = TrackerParams.for_model(model, "vot", precompute_support=fast, reuse_corr=fast)
    r = run_sequence(Tracker(model, variables, params), frames, [60, 80, 48, 36])
    ref = parity_expected["track_boxes"]
    ious = iou(r.boxes, ref)
    err = np.abs(centres(r.boxes) - centres(ref)).max(axis=1)
    print(
        f"\ntrajectory parity ({'fast' if fast else 'official'}): min IoU {ious.min():.6f}, "
        f"max centre err {err.max():.2e} px, max score err "
        f"{np.nanmax(np.abs(r.scores - parity_expected['track_best_score'])):.2e}"
    )
    assert ious.min() >= 0.999
    assert err.max() <= 0.05
    np.testing.assert_allclose(r.scores[1:], parity_expected["track_best_score"][1:], atol=1e-4)


def test_speedups_change_outputs_by_less_than_1e5(smoke):
    """Precomputed RD support terms and reused correlations vs the official recomputation."""
    model, v = smoke
    frames, box = synthetic_sequence(6)
    runs = [
        run_sequence(Tracker(model, v, OTB.replace(precompute_support=f, reuse_corr=f)), frames, box)
        for f in (False, True)
    ]
    assert np.abs(runs[0].boxes - runs[1].boxes).max() < 1e-4  # pixels, after 5 updates
    assert np.nanmax(np.abs(runs[0].scores - runs[1].scores)) < 1e-5


def test_no_retrace_after_first_frame(smoke):
    model, v = smoke
    params = OTB.replace(lr=0.31)  # a params value of its own, so its compiled functions start empty
    frames, box = synthetic_sequence(8)
    init, step = compiled(model, params)
    run_sequence(Tracker(model, v, params), frames, box)
    frames2, box2 = synthetic_sequence(5, hw=(200, 300), seed=1, start=(30, 40))
    run_sequence(Tracker(model, v, params), frames2, box2)  # another sequence, other frame size
    assert init._cache_size() == 1 and step._cache_size() == 1


def test_batched_equals_single(smoke):
    model, v = smoke
    seqs = [synthetic_sequence(6, seed=0), synthetic_sequence(4, hw=(200, 300), seed=1, start=(30, 40))]
    seqs.append(synthetic_sequence(5, seed=3, start=(100, 150)))
    batched = track_batch(model, v, OTB, [s for s, _ in seqs], [b for _, b in seqs])
    for (frames, box), res in zip(seqs, batched, strict=True):
        single = run_sequence(Tracker(model, v, OTB), frames, box)
        assert res.boxes.shape == single.boxes.shape == (len(frames), 4)
        np.testing.assert_allclose(res.boxes, single.boxes, atol=1e-3)
        np.testing.assert_allclose(res.scores[1:], single.scores[1:], atol=1e-5)


def test_bad_init_boxes_are_clear_errors(smoke):
    model, v = smoke
    frames, _ = synthetic_sequence(1)
    t = Tracker(model, v, OTB)
    for box, msg in [
        ([1, 2, 3], "expected 4 finite numbers"),
        ([1, 2, float("nan"), 4], "expected 4 finite numbers"),
        ([10, 10, 0, 5], "must be at least 1 px"),
        ([10, 10, 0.5, 5], "must be at least 1 px"),
        ([400, 10, 20, 20], "outside the 320x240 frame"),
    ]:
        with pytest.raises(BoxError, match=msg):
            t.init(frames[0], box)
    with pytest.raises(RuntimeError, match="before Tracker.init"):
        Tracker(model, v, OTB).track(frames[0])


def test_subwindow_matches_pysot_padding():
    """Out-of-frame pixels take the truncated mean colour; in-frame pixels are copied."""
    frame = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    avg = np.array([10.7, 20.2, 30.9])
    # c = (11 + 1) / 2 = 6: x_min = floor(2 - 6 + 0.5) = -4, y_min = floor(3 - 6 + 0.5) = -3.
    crop = subwindow(frame, (2.0, 3.0), 11, 11, avg)
    assert crop.shape == (11, 11, 3) and crop.dtype == np.uint8  # as cut; the jitted step converts
    np.testing.assert_array_equal(crop[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(crop[3:, 4:], frame[0:8, 0:7])
    # x_min = floor(15 - 5.5 + 0.5) = 10, y_min = 5: inside the frame, then cv2 bilinear resize.
    resized = subwindow(frame, (15.0, 10.0), 5, 10, avg)
    np.testing.assert_array_equal(resized, cv2.resize(frame[5:15, 10:20], (5, 5)))


def test_uint8_crops_read_as_the_float_crops():
    """The trackers ship uint8 crops and convert them in the jitted step (``tracker.pixels``): the
    network reads exactly the float32 pixels pysot's crop gives; ``search_crop``'s default stays float32."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    args = (frame, np.array([50.3, 40.8]), np.array([30.0, 22.0]), frame.mean(axis=(0, 1)), OTB)
    u8, f32 = search_crop(*args, np.uint8), search_crop(*args)
    assert u8.dtype == np.uint8 and f32.dtype == np.float32
    read = np.asarray(core.pixels(jnp.asarray(u8)))
    assert read.dtype == np.float32
    np.testing.assert_array_equal(read, f32)
    np.testing.assert_array_equal(np.asarray(core.pixels(jnp.asarray(f32))), f32)


def test_params_take_the_crop_sides_from_the_model(smoke):
    model, v = smoke
    p = TrackerParams.for_model(model, "vot", lr=0.2)
    assert (p.exemplar_size, p.instance_size) == (model.exemplar_size, model.instance_size)
    assert p.replace(lr=VOT.lr) == VOT.replace(exemplar_size=p.exemplar_size, instance_size=p.instance_size)
    with pytest.raises(ValueError, match="come from the model"):
        TrackerParams.for_model(model, "vot", instance_size=303)
    with pytest.raises(ValueError, match="unknown tracker preset"):
        TrackerParams.for_model(model, "lasot")
    wrong = VOT.replace(instance_size=model.instance_size + 32)
    for call in (lambda: Tracker(model, v, wrong), lambda: compiled(model, wrong)):
        with pytest.raises(ParamsMismatchError, match="TrackerParams.for_model"):
            call()


def test_track_returns_the_internals(smoke):
    model, v = smoke
    frames, box = synthetic_sequence(3)
    s = model_score_size(model)
    for relation in (True, False):
        t = Tracker(model, v, TrackerParams.for_model(model, "otb", relation=relation))
        t.init(frames[0], box)
        assert t.state.center.shape == (1, 2) and len(t.state.support) == len(model.levels)
        out = t.track(frames[1])
        assert out["cls"].shape == (s, s, 2) and out["cls"].dtype == np.float32
        assert ("p_match" in out) == relation
        if relation:
            assert out["p_match"].shape == (s * s,) and np.all((out["p_match"] >= 0) & (out["p_match"] <= 1))
        # best_score is the foreground probability of one cell of that very cls map.
        logits = out["cls"].astype(np.float64)
        fg = 1.0 / (1.0 + np.exp(logits[..., 0] - logits[..., 1]))
        assert np.abs(fg - out["best_score"]).min() < 1e-6
    with pytest.raises(RuntimeError, match="before Tracker.init"):
        _ = Tracker(model, v, OTB).state


def model_score_size(model):
    return (model.instance_size - model.exemplar_size) // model.stride + 1 + 8


def test_size_clip_follows_pysot_on_frames_narrower_than_10px():
    """pysot's _bbox_clip is max(10, min(w, W)): 10 even when the frame is narrower (jnp.clip gives W)."""
    score = jnp.zeros(625).at[312].set(1.0)
    loc = jnp.full((25, 25, 4), 2.0)
    center, size, box, _, _ = post_process(
        score, loc, jnp.array([3.0, 3.0]), jnp.array([6.0, 6.0]), jnp.array([8.0, 8.0]), VOT, 8
    )
    np.testing.assert_array_equal(np.asarray(size), [10.0, 10.0])
    np.testing.assert_allclose(
        np.asarray(box), [np.asarray(center)[0] - 5, np.asarray(center)[1] - 5, 10, 10]
    )
