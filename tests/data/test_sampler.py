"""Training samples (mixture, triplets, targets) and the grain loader."""

from __future__ import annotations

import numpy as np
import pytest

from siamrn_jax.data.loader import iterator_at, make_dataset
from siamrn_jax.data.pysot import PysotSource
from siamrn_jax.data.sampler import REPORT_KEYS, DatasetSpec, TripletSampler, split_report
from siamrn_jax.data.source import DataError
from siamrn_jax.data.synthetic import SyntheticConfig, SyntheticSource
from tests.data.pysot_tree import write_official_tree, write_tree


class _Counting:
    """A tiny TrackSource with flat images whose value encodes (track, frame)."""

    def __init__(self, name, lengths):
        self.name, self.lengths = name, list(lengths)

    def __len__(self):
        return len(self.lengths)

    def track_length(self, t):
        return self.lengths[t]

    def track_key(self, t):
        return f"{self.name}/{t}"

    def crop511(self, t, f):
        img = np.full((511, 511, 3), 0, np.uint8)
        img[..., 0], img[..., 1] = 100 * t, f
        return img, np.array([225.0, 235.0, 285.0, 275.0])


def _sampler(**kw):
    a = DatasetSpec(_Counting("A", [5, 7, 1]), num_use=30, frame_range=2)
    b = DatasetSpec(_Counting("B", [3] * 10), num_use=10, frame_range=100)
    return TripletSampler([a, b], seed=3, global_batch=4, **kw)


def test_mixture_proportions_and_passes():
    s = _sampler()
    picks = [s.pick(i) for i in range(80)]  # two passes of 40
    for p in (picks[:40], picks[40:]):
        ds = [d for d, _ in p]
        assert ds.count(0) == 30 and ds.count(1) == 10
        # Dataset A's 3 tracks are used in rounds: 10 times each per pass.
        assert sorted(t for d, t in p if d == 0) == sorted([0, 1, 2] * 10)
    assert picks[:40] != picks[40:]  # passes are shuffled independently


def test_triplet_frame_rules():
    s = _sampler()
    for i in range(300):
        d, t, ft, fs, fq = s.frames(i, np.random.default_rng(i))
        n = s.datasets[d].source.track_length(t)
        assert 0 <= ft < n and 0 <= fs < n and 0 <= fq < n
        assert abs(fs - ft) <= s.datasets[d].frame_range
        assert fq != ft or n == 1


def test_sample_is_deterministic_and_well_formed():
    source = SyntheticSource(SyntheticConfig(num_videos=20, frames=10))
    s = TripletSampler([DatasetSpec(source, -1, 100)], seed=0, global_batch=4, neg=0.5)
    a, b = s.sample(5), s.sample(5)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert a["template"].shape == (127, 127, 3) and a["search"].shape == (255, 255, 3)
    assert a["label_cls"].shape == (25, 25) and a["label_loc"].shape == (25, 25, 4)
    assert a["pos_gauss"].shape == (16, 4) and a["neg_uniform"].shape == (48, 4)
    assert sorted(a["group_order"]) == [0, 1, 2, 3]
    # The group-D coin is shared by the samples of one global batch.
    flips = [bool(s.sample(i)["flip"]) for i in range(8, 12)]
    assert len(set(flips)) == 1
    # Negative BAN pairs (search = another target) have no positive point; positive pairs do.
    kinds = {bool((s.sample(i)["label_cls"] == 1).any()) for i in range(20)}
    assert kinds == {True, False}
    # The template box is near the crop centre (shift 4 px, scale 5 %).
    c = (a["template_box"][:2] + a["template_box"][2:]) / 2
    assert np.all(np.abs(c - 63) < 8)


def test_hard_negative_index_is_used():
    class Index:
        def neighbour(self, d, t, rng):
            return (0, (t + 1) % 3, 0)

    spec = DatasetSpec(_Counting("A", [4, 4, 4]), num_use=-1, frame_range=1, hard_negatives=True)
    s = TripletSampler([spec], seed=0, global_batch=1, hnm_index=Index())
    for i in range(6):
        _, t = s.pick(i)
        out = s.sample(i)
        # The negative support crop carries 100 x track in its blue channel (+- the colour jitter).
        assert abs(float(np.median(out["neg_support"][40:80, 40:80, 0])) - 100 * ((t + 1) % 3)) < 40


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_resumes_exactly(workers):
    source = SyntheticSource(SyntheticConfig(num_videos=10, frames=8))
    s = TripletSampler([DatasetSpec(source, -1, 100)], seed=1, global_batch=2)
    ds = make_dataset(s, 6, workers=workers)
    it = iterator_at(ds, None)
    first = [next(it) for _ in range(3)]
    state = it.get_state()
    rest = [next(it) for _ in range(3)]
    resumed = iterator_at(make_dataset(s, 6, workers=workers), state)
    for a, b in zip(rest, [next(resumed) for _ in range(3)], strict=True):
        np.testing.assert_array_equal(a["search"], b["search"])
        np.testing.assert_array_equal(a["index"], b["index"])
    assert [int(b["index"][0]) for b in first + rest] == [0, 2, 4, 6, 8, 10]
    # Process 1 of 2 gets the second half of every global batch.
    other = iterator_at(make_dataset(s, 6, process_index=1, process_count=2, workers=0), None)
    b0 = next(other)
    assert b0["index"].tolist() == [1]
    np.testing.assert_array_equal(b0["search"][0], first[0]["search"][1])


# Frames 1 and 3 of video 2 are bad (a garbage file, a missing one), frame 0 of video 4 is a truncated JPEG.
BAD = {(2, 1): "garbage", (2, 3): "missing", (4, 0): "truncated"}


def _pysot_sampler(root, anno):
    spec = DatasetSpec(PysotSource("VID", root, anno), num_use=-1, frame_range=100)
    return TripletSampler([spec], seed=5, global_batch=4, neg=0.3)


def test_bad_frames_are_skipped_deterministically(tmp_path):
    """Samples that meet a bad frame are redrawn from [seed, index, attempt]: the same sample every time;
    samples that met none are exactly those of the clean data; every failed draw is counted and reported."""
    clean = _pysot_sampler(*write_tree(tmp_path / "clean", 6, 4)[:2])
    root, anno, bad_paths = write_tree(tmp_path / "bad", 6, 4, BAD)
    s = _pysot_sampler(root, anno)
    messages, redrawn = [], 0
    for i in range(40):
        a, b = s.sample(i), s.sample(i)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
        ref = clean.sample(i)
        errors = [m for m in str(a["bad_read_errors"]).split("\n") if m]
        assert a["bad_reads"].dtype == np.int32 and int(a["bad_reads"]) == len(errors)
        if not errors:
            for k in ref:
                np.testing.assert_array_equal(a[k], ref[k])
        else:
            redrawn += 1
            assert not np.array_equal(a["search"], ref["search"])
        messages += errors
    assert redrawn >= 3
    # Each kind of bad file was met and named.
    for kind, path in zip(BAD.values(), bad_paths.values(), strict=True):
        reason = {"missing": "image file not found", "garbage": "cannot decode"}.get(kind, "")
        assert any(m.startswith(f"{path}: {reason}") for m in messages), (kind, messages)
    # The batch carries the reports (fixed-width unicode, [B]); split_report takes them out for the step.
    batch = s.batch(range(40))
    assert batch["bad_read_errors"].shape == (40,) and batch["bad_read_errors"].dtype.kind == "U"
    rest, bad, reported = split_report(batch)
    assert set(rest).isdisjoint(REPORT_KEYS) and bad == len(messages) and reported == messages


def test_data_that_is_all_bad_is_an_error():
    class Broken(_Counting):
        def crop511(self, t, f):
            raise DataError(f"{self.name}/{t}/{f}: cannot decode image")

    s = TripletSampler([DatasetSpec(Broken("A", [3, 3]), -1, 10)], seed=0, global_batch=1)
    with pytest.raises(DataError, match=r"^sample 7: 16 draws in a row met bad data; last: A/\d/\d: cannot"):
        s.sample(7)


def test_picks_are_videos_then_a_random_track(tmp_path):
    """pysot's SubDataset picks videos (NUM_USE -1 = one per video) and then a random track of the video,
    for the triple, a negative pair's search and a random negative support alike: a two-track video weighs
    as much as a one-track video (official_tree: 4 videos, vid001 with tracks 00 and 01)."""
    root, anno = write_official_tree(tmp_path)
    source = PysotSource("VID", root, anno)
    spec = DatasetSpec(source, -1, 2)
    order, offsets = spec.videos
    keys = [
        [source.track_key(int(t)) for t in order[a:b]] for a, b in zip(offsets[:-1], offsets[1:], strict=True)
    ]
    assert keys == [
        ["synth/vid000/00"],
        ["synth/vid001/00", "synth/vid001/01"],
        ["synth/vid002/00"],
        ["synth/vid003/00"],
    ]
    s = TripletSampler([spec], seed=0, global_batch=1, neg=0.0)
    assert spec.picks == 4 and sorted(s.pick(i)[1] for i in range(4)) == [0, 1, 2, 3]
    n = 4000
    triple = np.bincount([s.frames(i, np.random.default_rng(i))[1] for i in range(n)], minlength=5)
    support = np.bincount([s.draw(i, np.random.default_rng(i)).support[1] for i in range(n)], minlength=5)
    expected = n * np.array([1 / 4, 1 / 8, 1 / 8, 1 / 4, 1 / 4])  # tracks in source order
    for counts in (triple, support):
        assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), counts  # 5 binomial sd
