"""HardNegativeIndex on a fake TrackSource of coloured squares in K colour families."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from siamrn_jax.data.hnm_index import (
    HardNegativeIndex,
    adaptive_avg_pool,
    backbone_apply_fn,
    embed_templates,
    template_crop,
)
from siamrn_jax.data.source import TrackSource, pysot_bbox

FAMILIES = np.array([[230, 40, 40], [40, 230, 40], [40, 40, 230]], np.float64)  # BGR


class SquaresSource:
    """Track t is a square of colour family t % 3 (jittered per track and frame) on a grey background."""

    def __init__(self, name="squares", num_tracks=12, length=5, seed=0):
        self.name = name
        rng = np.random.default_rng(seed)
        self._colour = FAMILIES[np.arange(num_tracks) % 3] + rng.uniform(-20, 20, (num_tracks, 3))
        self._length = [1 if t == 0 else length for t in range(num_tracks)]

    def __len__(self):
        return len(self._colour)

    def track_length(self, track):
        return self._length[track]

    def track_key(self, track):
        return f"video{track}/00"

    def family(self, track):
        return track % 3

    def crop511(self, track, frame):
        img = np.full((511, 511, 3), 128, np.uint8)
        colour = np.clip(self._colour[track] + 5 * frame, 0, 255)
        img[200:311, 190:321] = colour.astype(np.uint8)
        return img, pysot_bbox([0, 0, 131, 111])


def colour_apply_fn(x):
    """[N, 127, 127, 3] -> [N, 8, 8, 3] block means minus mid-grey: cosine similarity ~ colour direction."""
    return np.stack([cv2.resize(im, (8, 8), interpolation=cv2.INTER_AREA) for im in x]) - 128.0


def colour_embed(x):
    return embed_templates(colour_apply_fn, x)


def test_template_crop_and_pool():
    img = np.zeros((511, 511, 3), np.uint8)
    img[255, 255] = 255
    crop = template_crop(img)
    assert crop.shape == (127, 127, 3) and crop.dtype == np.float32
    # Centre pixel 255 maps onto crop pixel 63 (window [192, 318] -> [0, 126]).
    assert np.unravel_index(np.argmax(crop[..., 0]), (127, 127)) == (63, 63)
    f = np.arange(2 * 15 * 15 * 3, dtype=np.float32).reshape(2, 15, 15, 3)
    pooled = adaptive_avg_pool(f, 4)
    assert pooled.shape == (2, 4, 4, 3)
    # PyTorch bins for 15 -> 4: [0, 4), [3, 8), [7, 12), [11, 15).
    np.testing.assert_allclose(pooled[:, 1, 2], f[:, 3:8, 7:12].mean(axis=(1, 2)))
    emb = embed_templates(lambda x: f, np.zeros((2, 127, 127, 3), np.float32))
    assert emb.shape == (2, 48)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, rtol=1e-6)


def _build(sources, **kw):
    return HardNegativeIndex.build(sources, colour_embed, items_per_track=3, seed=0, batch_size=4, **kw)


@pytest.mark.parametrize("precompute_k", [4, None], ids=["table", "search"])
def test_neighbours_same_family_never_same_track(precompute_k):
    src = SquaresSource()
    assert isinstance(src, TrackSource)
    index = _build([src], precompute_k=precompute_k)
    assert len(index) == 1 + 11 * 3 and index.ndim == 4 * 4 * 3
    assert (index.neighbours is None) == (precompute_k is None)
    rng = np.random.default_rng(1)
    for track in range(len(src)):
        for _ in range(10):
            s, t, f = index.neighbour(0, track, rng)
            assert s == 0 and t != track
            assert src.family(t) == src.family(track)
            assert 0 <= f < src.track_length(t)
    assert index.neighbour(0, 99, rng) is None
    assert index.neighbour(1, 0, rng) is None


def test_two_sources_and_no_neighbour():
    a, b = SquaresSource("a", num_tracks=6), SquaresSource("b", num_tracks=6, seed=1)
    index = _build([a, b])
    rng = np.random.default_rng(0)
    hits = {index.neighbour(0, 1, rng)[:2] for _ in range(50)}
    assert all(t % 3 == 1 for _, t in hits) and (0, 1) not in hits  # family of track 1, either source
    lonely = _build([SquaresSource(num_tracks=1)])
    assert lonely.neighbour(0, 0, rng) is None  # its only track has no other track to offer


def test_save_load_pickle(tmp_path):
    src = SquaresSource()
    index = _build([src])
    out = index.save(tmp_path / "hnm")
    assert sorted(p.name for p in out.iterdir()) == ["index.usearch", "meta.json", "table.npz"]
    loaded = HardNegativeIndex.load(out)
    loaded.check_sources([src])
    np.testing.assert_array_equal(loaded.item_track, index.item_track)
    assert loaded._index is None  # restored lazily
    np.testing.assert_array_equal(loaded.neighbours, index.neighbours)
    assert loaded.neighbours_k == 4
    for track in range(len(src)):
        r1, r2 = np.random.default_rng(track), np.random.default_rng(track)
        assert loaded.neighbour(0, track, r1) == index.neighbour(0, track, r2)
    # Pickled after load: only the path travels; pickled in memory: the index bytes travel.
    for obj in (loaded, index):
        clone = pickle.loads(pickle.dumps(obj))
        r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
        assert clone.neighbour(0, 4, r1) == obj.neighbour(0, 4, r2)
    assert pickle.loads(pickle.dumps(loaded))._index is None
    # Without the precomputed table the index is restored (memory-mapped) on first use.
    HardNegativeIndex.build([src], colour_embed, items_per_track=3, precompute_k=None).save(
        tmp_path / "plain"
    )
    plain = pickle.loads(pickle.dumps(HardNegativeIndex.load(tmp_path / "plain")))
    s, t, _ = plain.neighbour(0, 2, np.random.default_rng(0))
    assert plain._index is not None and t % 3 == 2 and t != 2

    with pytest.raises(ValueError, match="other tracks than at build time"):
        loaded.check_sources([SquaresSource(num_tracks=5)])
    (out / "meta.json").write_text("{oops")
    with pytest.raises(ValueError, match="meta.json: corrupt JSON"):
        HardNegativeIndex.load(out)
    with pytest.raises(FileNotFoundError, match="table.npz: hard-negative index file not found"):
        HardNegativeIndex.load(tmp_path / "missing")


def test_backbone_apply_fn_smoke_model():
    from siamrn_jax import checkpoint
    from siamrn_jax.config import build_model, load_config

    model = build_model(load_config("configs/siamrn_r50.py:smoke").model)
    variables = checkpoint.init_variables(model)
    apply_fn = backbone_apply_fn(model, variables)
    x = np.random.default_rng(0).uniform(0, 255, (2, 127, 127, 3)).astype(np.float32)
    feats = apply_fn(x)
    assert feats.shape == (2, 15, 15, 4 * 64)  # layer4 of the smoke model: width 64, expansion 4
    emb = embed_templates(apply_fn, x)
    assert emb.shape == (2, 4 * 4 * 256) and np.all(np.isfinite(emb))
