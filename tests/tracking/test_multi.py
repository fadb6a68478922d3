"""Several targets in one video (``siamrn_jax.MultiTracker``): each target's trajectory and internals equal
a single-target run's, the batch recompiles once per bucket size, bad input is one error line."""

from __future__ import annotations

import numpy as np
import pytest

import siamrn_jax
from siamrn_jax.io.sources import open_input
from siamrn_jax.tracking.multi import TargetError, bucket, chunked_step
from siamrn_jax.tracking.runner import BoxError, compiled
from tests.conftest import NANOTRACK, SHARED, needs_nanotrack

GROUP = SHARED / "data" / "sequences" / "group2_2"  # 1280x720, three people walking on a beach
FRAMES = 16
# Boxes annotated by hand on the frames they start in (0-based frame index, x, y, w, h 0-based pixels):
# three people, then two bushes starting later. At frame REMOVE_AT two are removed, at ADD_AT one more
# target starts (the first person again, re-annotated).
START = {
    "white": (0, (616, 315, 31, 61)),
    "black": (1, (684, 268, 21, 59)),
    "jeans": (2, (826, 431, 34, 75)),
    "bush": (3, (572, 60, 148, 100)),
    "bushes": (4, (385, 8, 165, 85)),
}
REMOVE_AT, REMOVED = 6, ("white", "bush")
ADD_AT, ADDED = 9, ("white2", (603, 288, 24, 58))


@pytest.fixture(scope="module")
def frames():
    if not GROUP.is_dir():
        pytest.fail(f"{GROUP}: shared test data not found")
    src = open_input(GROUP)
    return [src[i] for i in range(FRAMES)]


@pytest.fixture(scope="module")
def demo():
    return siamrn_jax.load("demo_resnet")


@pytest.fixture(scope="module")
def scenario(demo, frames):
    """The multi-target run: 5 targets added one per frame, 2 removed, 1 added later. Returns (per name:
    start frame, end frame (exclusive), per-frame results), compile counts after each phase, rows seen."""
    # A params value of its own (lr), so the compiled functions start with empty caches.
    multi = siamrn_jax.MultiTracker(demo, "otb", chunk=4, lr=0.33)
    init, step = compiled(multi.model, multi.params)
    chunked = chunked_step(multi.model, multi.params, 4)  # batches of 8 rows: 2 chunks of 4
    ids, runs, counts, rows = {}, {}, {}, []
    for t, frame in enumerate(frames):
        if t > 0 and multi.ids:
            out = multi.track(frame)
            rows.append(multi.rows)
            assert set(out) == set(multi.ids)
            for i, r in out.items():
                runs[ids[i]][2].append(r)
        starting = [(n, b) for n, (s, b) in START.items() if s == t]
        if t == ADD_AT:
            starting.append(ADDED)
        for name, box in starting:
            i = multi.add(frame, box, name)
            ids[i] = name
            runs[name] = [t, FRAMES, []]
        if t == 4:
            counts["after 5 adds"] = (init._cache_size(), step._cache_size(), chunked._cache_size())
        if t == REMOVE_AT:
            for i in [i for i in multi.ids if ids[i] in REMOVED]:
                multi.remove(i)
                runs[ids[i]][1] = t + 1
            assert multi.rows == 4  # 3 live targets: shrunk from 8 rows
    counts["end"] = (init._cache_size(), step._cache_size(), chunked._cache_size())
    return runs, counts, rows, multi


def test_buckets():
    assert [bucket(n) for n in range(7)] == [0, 1, 2, 4, 4, 8, 8]
    assert [bucket(n, 3) for n in (1, 2, 3, 4, 5)] == [3, 3, 6, 6, 9]
    assert bucket(17) == 32 and bucket(16, 2) == 16


@pytest.mark.slow
def test_compiles_once_per_bucket_size(scenario):
    """Five targets added one by one (rows 1, 2, 4, 4, 8), two removed (back to 4 rows), one added into a
    free row: the step compiled once per bucket size (1, 2, 4; 8 as 2 chunks of 4), the template init
    once, over 15 frames."""
    _, counts, rows, _ = scenario
    assert sorted(set(rows)) == [1, 2, 4, 8] and len(rows) == FRAMES - 1
    assert counts["after 5 adds"] == (1, 3, 0)  # rows 1, 2, 4 stepped so far (8 from frame 5 on)
    assert counts["end"] == (1, 3, 1)


@pytest.mark.slow
def test_every_target_equals_a_single_target_run(demo, frames, scenario):
    """Each target against siamrn_jax.Tracker from its start frame on the same frames: boxes within 1e-3 px
    on every frame, best scores and relation-detector match probabilities within 1e-5."""
    runs, _, _, multi = scenario
    assert len(runs) == 6 and any(start > 0 for start, _, _ in runs.values())
    for name, (start, end, got) in runs.items():
        single = siamrn_jax.Tracker(demo, multi.params)
        single.init(frames[start], START[name][1] if name in START else ADDED[1])
        want = [single.track(f) for f in frames[start + 1 : end]]
        assert len(got) == len(want) == end - start - 1, name
        box = np.array([r["bbox"] for r in got])
        np.testing.assert_allclose(box, [r["bbox"] for r in want], atol=1e-3, rtol=0, err_msg=name)
        np.testing.assert_allclose(
            [r["best_score"] for r in got], [r["best_score"] for r in want], atol=1e-5, err_msg=name
        )
        np.testing.assert_allclose(
            np.stack([r["p_match"] for r in got]), np.stack([r["p_match"] for r in want]), atol=1e-5
        )
        assert np.abs(np.diff(box[:, :2], axis=0)).max() < 40, name  # tracked, not thrown around


def test_bad_input_is_our_error(demo, frames):
    multi = siamrn_jax.MultiTracker(demo)
    for box, msg in [
        ([2000, 10, 20, 20], "outside the 1280x720 frame"),
        ([10, 10, 0.5, 20], "at least 1 px"),
        ([10, 10, float("nan"), 20], "4 finite numbers"),
    ]:
        with pytest.raises(BoxError, match=msg):
            multi.add(frames[0], box, "a")
    a = multi.add(frames[0], START["white"][1], "a")
    with pytest.raises(TargetError, match="another live target has this name"):
        multi.add(frames[0], START["black"][1], "a")
    with pytest.raises(TargetError, match=r"no target with id 7 \(live ids: 0\)"):
        multi.remove(7)
    multi.remove(a)
    assert multi.ids == [] and multi.rows == 0 and multi.track(frames[1]) == {}
    with pytest.raises(TargetError, match="live ids: none"):
        multi.remove(a)


def _moving_objects(n: int, count: int = 3) -> tuple[list[np.ndarray], list[list[float]]]:
    """n 200x160 noise frames with ``count`` textured 32x24 objects moving in different directions."""
    rs = np.random.RandomState(1)
    bg = rs.randint(0, 255, (160, 200, 3))
    tex = [np.kron(rs.randint(0, 255, (6, 8, 3)), np.ones((4, 4, 1))) for _ in range(count)]
    starts = [(10, 8), (90, 30), (50, 120)][:count]
    frames = []
    for t in range(n):
        f = bg.copy()
        for k, (y, x) in enumerate(starts):
            y, x = y + (k - 1) * 2 * t, x + (2 - k) * t
            f[y : y + 24, x : x + 32] = tex[k]
        frames.append(f.astype(np.uint8))
    return frames, [[x, y, 32, 24] for y, x in starts]


@needs_nanotrack
@pytest.mark.slow
@pytest.mark.parametrize(
    "version, addon",
    [("v2", None), ("v3", None), ("v2", "nano_rd_v2")],
    ids=["nanotrack_v2", "nanotrack_v3", "siamrn_nano"],
)
def test_other_architectures(tmp_path, version, addon):
    """NanoTrack V2 / V3 and SiamRN-Nano (V2 + our relation-detector add-on), converted from
    ../shared/models/nanotrack: three targets, one starting at frame 2, equal their single-target runs
    (boxes 1e-3 px, scores and match probabilities 1e-5). The paper architecture is the demo model's."""
    from siamrn_jax.convert.files import to_orbax

    to_orbax(NANOTRACK / f"{version}.pth", tmp_path / "ckpt", None, 0, False, addon)
    bundle = siamrn_jax.load(tmp_path / "ckpt")
    model = bundle.model

    frames, boxes = _moving_objects(6)
    starts = [0, 0, 2]
    multi = siamrn_jax.MultiTracker(bundle)
    got = {}
    for t, frame in enumerate(frames):
        for i, r in (multi.track(frame) if t else {}).items():
            got[i].append(r)
        for k in [k for k, s in enumerate(starts) if s == t]:
            got[multi.add(frame, boxes[k])] = []
    assert sorted(got) == [0, 1, 2] and multi.rows == 4
    for k, (s, box) in enumerate(zip(starts, boxes, strict=True)):
        single = siamrn_jax.Tracker(bundle)
        single.init(frames[s], box)
        want = [single.track(f) for f in frames[s + 1 :]]
        assert set(got[k][0]) == (
            {"bbox", "best_score", "p_match"} if model.has_relation else {"bbox", "best_score"}
        )
        np.testing.assert_allclose([r["bbox"] for r in got[k]], [r["bbox"] for r in want], atol=1e-3, rtol=0)
        np.testing.assert_allclose(
            [r["best_score"] for r in got[k]], [r["best_score"] for r in want], atol=1e-5
        )
        if model.has_relation:
            np.testing.assert_allclose(
                np.stack([r["p_match"] for r in got[k]]), np.stack([r["p_match"] for r in want]), atol=1e-5
            )


def test_non_finite_target_is_dropped_and_the_others_go_on(demo, caplog):
    """A target whose state becomes non-finite (poisoned here after its first step) is dropped with a
    warning naming it; the other target's results are unchanged."""
    frames, boxes = _moving_objects(4, 2)
    clean = siamrn_jax.MultiTracker(demo)
    for b in boxes:
        clean.add(frames[0], b)
    want = [clean.track(f) for f in frames[1:]]
    multi = siamrn_jax.MultiTracker(demo)
    good, bad = multi.add(frames[0], boxes[0], "good"), multi.add(frames[0], boxes[1], "bad")
    step = multi._step  # wrapped: the network cannot be made to return NaN for one row on purpose

    def poisoned(v, state, x):
        state, out = step(v, state, x)
        return state._replace(size=state.size.at[multi.row(bad)].set(np.inf)), out

    multi._step = poisoned
    with caplog.at_level("WARNING"):
        first = multi.track(frames[1])
    assert list(first) == [good] and multi.ids == [good] and multi.rows == 1
    (msg,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert msg.startswith("target 'bad' (id 1): tracker state became non-finite") and bad in multi.dropped
    multi._step = step
    rest = [multi.track(f) for f in frames[2:]]
    for g, w in zip([first, *rest], want, strict=True):
        np.testing.assert_allclose(g[good]["bbox"], w[0]["bbox"], atol=1e-3, rtol=0)


def test_bench_multi_rows(demo):
    """``bench multi``: one row per target count, boxes laid out inside the frame, ratios against 1 target."""
    from siamrn_jax.bench.multi import bench_multi, layout, markdown

    boxes = np.array(layout((120, 160), (20, 10), 5))
    assert boxes.shape == (5, 4) and len({tuple(b) for b in boxes[:, :2]}) == 5
    assert boxes[:, :2].min() >= 0 and np.all(boxes[:, 0] + boxes[:, 2] <= 160)
    frames, _ = _moving_objects(4)
    model, variables, _ = demo
    params = siamrn_jax.Tracker(demo).params
    rows = bench_multi(model, variables, params, frames, (32, 24), (1, 3), runs=2)
    assert [(r.targets, r.rows) for r in rows] == [(1, 1), (3, 4)] and rows[0].ratio == 1.0
    assert all(r.median_ms > 0 and r.target_fps > 0 for r in rows)
    assert markdown(rows).splitlines()[3].startswith("| 3 | 4 |")
