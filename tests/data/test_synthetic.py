"""Tests for siamrn_jax.data.synthetic (procedural training / held-out tracking videos)."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest

from siamrn_jax.data import synthetic
from siamrn_jax.data.source import TrackSource, crop_like_siamfc
from siamrn_jax.data.synthetic import (
    SyntheticConfig,
    SyntheticSource,
    distractor_boxes,
    make_sequence,
    render,
    scene_info,
    target_mask,
)

CFG = SyntheticConfig(num_videos=400, frames=30)


def _mask_box(mask, level=0.5):
    """xyxy (pixel corners) of the pixels with coverage > level."""
    ys, xs = np.nonzero(mask > level)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


def test_deterministic_from_the_seed():
    a, box_a = render(CFG, 7, 12)
    synthetic.build_scene.cache_clear()  # rebuilt from the seed, not read back from the cache
    b, box_b = render(CFG, 7, 12)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(box_a, box_b)
    assert a.shape == (240, 320, 3) and a.dtype == np.uint8
    assert box_a.shape == (4,) and box_a.dtype == np.float64
    other, _ = render(CFG, 8, 12)
    assert np.abs(a.astype(int) - other).mean() > 10
    held_out, _ = render(SyntheticConfig(num_videos=400, frames=30, seed=10_000), 7, 12)
    assert np.abs(a.astype(int) - held_out).mean() > 10


def test_random_access_equals_sequential_rendering():
    frames, gt = make_sequence(CFG, 3)
    assert len(frames) == CFG.frames and gt.shape == (CFG.frames, 4)
    synthetic.build_scene.cache_clear()
    for f in (29, 0, 17, 5):
        image, box = render(CFG, 3, f)
        np.testing.assert_array_equal(image, frames[f])
        np.testing.assert_array_equal(box, gt[f])
    # Objects move: consecutive frames and boxes differ.
    assert not np.array_equal(frames[0], frames[1])
    assert np.abs(np.diff(gt[:, :2], axis=0)).sum() > 10


@pytest.mark.parametrize("video", range(8))
def test_box_is_in_the_frame_and_tight_around_the_target(video):
    w, h = CFG.frame_size
    for f in (0, 11, 29):
        _, box = render(CFG, video, f)
        x, y, bw, bh = box
        assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h
        assert 8 < bw < 0.5 * w and 8 < bh < 0.5 * h
        mask = target_mask(CFG, video, f)
        assert mask.max() > 0.99  # the target's interior is opaque
        # Pixels with any coverage span the box up to the partly covered rim pixels (pointed polygon tips
        # cover little of their pixel, hence the low threshold).
        np.testing.assert_allclose(_mask_box(mask, 0.01), [x, y, x + bw, y + bh], atol=1.1)


def test_target_is_visible_in_the_image():
    # Without occlusion, the frame inside the target's opaque core differs from the same pixels a few
    # frames later, when the target has moved away (the background stays put up to the pan).
    config = SyntheticConfig(num_videos=20, frames=30, occlusion_prob=0.0, distractors=(1, 1))
    frames, gt = make_sequence(config, 2)
    far = np.argmax(np.linalg.norm(gt[:, :2] - gt[0, :2], axis=1))
    assert np.linalg.norm(gt[far, :2] - gt[0, :2]) > gt[0, 2:].max()
    core = target_mask(config, 2, 0) > 0.99
    assert np.abs(frames[0][core].astype(int) - frames[far][core]).mean() > 5


def test_distractors_exist_and_look_alike():
    counts = []
    for video in range(12):
        for f in (0, 20):
            _, box = render(CFG, video, f)
            d = distractor_boxes(CFG, video, f)
            assert d.ndim == 2 and d.shape[1] == 4
            counts.append(len(d))
            ratio = np.sqrt(d[:, 2] * d[:, 3]) / np.sqrt(box[2] * box[3])
            # Own size factor 0.8-1.25 and own scale trajectory within scale_range (0.7-1.4: x2 at most).
            assert np.all((ratio > 0.8 / 2 / 1.11) & (ratio < 1.25 * 2 * 1.11)), ratio
    assert min(counts) >= CFG.distractors[0] and max(counts) <= CFG.distractors[1]
    assert len(set(counts)) > 1


def test_crop511_centres_the_target():
    source = SyntheticSource(CFG)
    for video, f in ((0, 3), (5, 20)):
        crop, box = source.crop511(video, f)
        assert crop.shape == (511, 511, 3) and crop.dtype == np.uint8
        np.testing.assert_allclose([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], [255, 255])
        # The target's own pixels, cropped the same way, fill that box.
        _, (x, y, w, h) = source.frame(video, f)
        mask = crop_like_siamfc(
            target_mask(CFG, video, f)[..., None].repeat(3, -1), (x, y, x + w, y + h), padding=(0, 0, 0)
        )
        mx1, my1, mx2, my2 = _mask_box(mask[..., 0])
        np.testing.assert_allclose([(mx1 + mx2) / 2, (my1 + my2) / 2], [255.5, 255.5], atol=2.0)
        np.testing.assert_allclose([mx2 - mx1, my2 - my1], [box[2] - box[0], box[3] - box[1]], atol=3.0)


def test_track_source_protocol():
    source = SyntheticSource(CFG)
    assert isinstance(source, TrackSource)
    assert source.name == "synthetic"
    assert len(source) == 400 and source.track_length(5) == 30
    assert source.track_key(42) == "synthetic/000042"
    assert len(SyntheticSource()) == 2000 and SyntheticSource().track_length(0) == 60
    image, box = source.render(4, 9)
    np.testing.assert_array_equal(image, source.frame(4, 9)[0])
    np.testing.assert_array_equal(box, render(CFG, 4, 9)[1])
    np.testing.assert_array_equal(source.distractor_boxes(4, 9), distractor_boxes(CFG, 4, 9))
    with pytest.raises(ValueError, match="synthetic"):
        source.render(400, 0)
    with pytest.raises(ValueError, match="synthetic"):
        source.render(0, 30)


def test_pickles_without_its_cache():
    source = SyntheticSource(CFG)
    expected = source.crop511(11, 4)
    payload = pickle.dumps(source)
    assert len(payload) < 1000  # only the config travels to worker processes
    clone = pickle.loads(payload)
    synthetic.build_scene.cache_clear()
    got = clone.crop511(11, 4)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_render_is_fast():
    config = SyntheticConfig()
    start = time.perf_counter()
    for video in range(10):
        render(config, video, 0)  # scene build included
    build = (time.perf_counter() - start) / 10
    start = time.perf_counter()
    for f in range(60):
        render(config, 0, f)
    per_frame = (time.perf_counter() - start) / 60
    assert build < 0.1, build
    assert per_frame < 0.02, per_frame


def test_occlusion_and_fast_motion_follow_the_config():
    infos = [scene_info(CFG, v) for v in range(200)]
    occluded = sum(i.occluded.any() for i in infos)
    fast = sum(i.jumps.any() for i in infos)
    # Binomial(200, 0.3) and ~Binomial(200, 0.2 * 0.99): mean +- 4 sigma.
    assert 60 - 26 < occluded < 60 + 26, occluded
    assert 40 - 23 < fast < 40 + 23, fast
    never = SyntheticConfig(num_videos=30, frames=30, occlusion_prob=0.0, fast_motion_prob=0.0)
    always = SyntheticConfig(num_videos=30, frames=30, occlusion_prob=1.0, fast_motion_prob=1.0)
    assert not any(scene_info(never, v).occluded.any() or scene_info(never, v).jumps.any() for v in range(30))
    assert all(scene_info(always, v).occluded.sum() >= 3 for v in range(30))
    assert sum(scene_info(always, v).jumps.any() for v in range(30)) >= 28


def test_occluder_hides_the_target():
    config = SyntheticConfig(num_videos=10, frames=30, occlusion_prob=1.0, distractors=(1, 1))
    # The occluder is drawn from the seed stream last, so the scene without it is the same otherwise.
    clear = SyntheticConfig(num_videos=10, frames=30, occlusion_prob=0.0, distractors=(1, 1))
    for video in range(3):
        occluded = np.nonzero(scene_info(config, video).occluded)[0]
        f = occluded[len(occluded) // 2]  # mid-window: the occluder is over the target's centre
        mask = target_mask(config, video, f) > 0.99
        with_occ, box = render(config, video, f)
        without, box_clear = render(clear, video, f)
        np.testing.assert_array_equal(box, box_clear)  # the box is the full extent, occluded or not
        changed = np.abs(with_occ.astype(int) - without).sum(-1) > 0
        assert changed[mask].mean() > 0.1


def test_fast_motion_jumps_are_large():
    config = SyntheticConfig(num_videos=10, frames=60, fast_motion_prob=1.0)
    steps, jump_steps = [], []
    for video in range(10):
        _, gt = make_sequence(config, video)
        info = scene_info(config, video)
        centre = gt[:, :2] + gt[:, 2:] / 2
        d = np.linalg.norm(np.diff(centre, axis=0), axis=1)
        steps.append(d[~info.jumps[1:]])
        jump_steps.append(d[info.jumps[1:]])
    assert np.median(np.concatenate(jump_steps)) > 3 * np.median(np.concatenate(steps))
