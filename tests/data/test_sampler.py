"""Training samples (mixture, triplets, targets) and the grain loader."""

from __future__ import annotations

import numpy as np
import pytest

from siamrn_jax.data.loader import iterator_at, make_dataset
from siamrn_jax.data.sampler import DatasetSpec, TripletSampler
from siamrn_jax.data.synthetic import SyntheticConfig, SyntheticSource


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
