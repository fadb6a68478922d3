"""PysotSource on a tiny fake crop511 dataset written into tmp_path."""

from __future__ import annotations

import json
import logging
import pickle

import cv2
import numpy as np
import pytest

from siamrn_jax.data.pysot import PysotSource
from siamrn_jax.data.source import DataError, TrackSource, pysot_bbox


def _write_dataset(tmp_path, anno: dict) -> tuple:
    root = tmp_path / "crop511"
    for video, tracks in anno.items():
        for track, frames in tracks.items():
            if not isinstance(frames, dict):
                continue
            for key in frames:
                if not key.isdigit():
                    continue
                path = root / video / f"{int(key):06d}.{track}.x.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                # The frame number is painted into the crop so the test can check which file was read.
                img = np.full((511, 511, 3), int(key) * 20, np.uint8)
                assert cv2.imwrite(str(path), img)
    path = tmp_path / "train.json"
    path.write_text(json.dumps(anno))
    return root, path


ANNO = {
    "vid_b": {
        "00": {"000002": [10, 10, 50, 40], "000000": [0, 0, 20, 30], "000001": [5, 5, 5.5, 30]},
        "01": {"000000": [0, 0, 1, 1]},  # only a degenerate box: the track disappears
    },
    "dir/vid_a": {"00": {"000003": [1, 2, 41, 62], "frames": [3]}, "frames": [0, 1]},
}


def test_tracks_frames_and_keys(tmp_path):
    root, anno = _write_dataset(tmp_path, ANNO)
    src = PysotSource("VID", root, anno)
    assert isinstance(src, TrackSource)
    assert len(src) == 2
    keys = [src.track_key(t) for t in range(len(src))]
    assert keys == ["dir/vid_a/00", "vid_b/00"]
    assert [src.track_length(t) for t in range(len(src))] == [1, 2]
    # Frames sorted by number, the w <= 1 frame 000001 dropped.
    assert src.frame_path(1, 0).name == "000000.00.x.jpg"
    assert src.frame_path(1, 1).name == "000002.00.x.jpg"


def test_crop511(tmp_path):
    root, anno = _write_dataset(tmp_path, ANNO)
    src = PysotSource("VID", root, anno)
    image, box = src.crop511(1, 1)
    assert image.shape == (511, 511, 3) and image.dtype == np.uint8
    assert abs(int(image[255, 255, 0]) - 40) <= 2  # frame 2 painted 40
    np.testing.assert_allclose(box, pysot_bbox([10, 10, 50, 40]))
    np.testing.assert_allclose((box[:2] + box[2:]) / 2, [255, 255])


def test_pickle_round_trip(tmp_path):
    root, anno = _write_dataset(tmp_path, ANNO)
    src = pickle.loads(pickle.dumps(PysotSource("VID", root, anno)))
    assert len(src) == 2 and src.track_key(0) == "dir/vid_a/00"
    assert src.crop511(0, 0)[0].shape == (511, 511, 3)


def test_missing_unreadable_and_corrupt_images_are_data_errors(tmp_path):
    root, anno = _write_dataset(tmp_path, ANNO)
    src = PysotSource("VID", root, anno)
    src.frame_path(1, 0).unlink()
    with pytest.raises(DataError, match=r"000000\.00\.x\.jpg: image file not found$"):
        src.crop511(1, 0)
    path = src.frame_path(1, 1)
    path.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"000002\.00\.x\.jpg: cannot decode"):
        src.crop511(1, 1)
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"000002\.00\.x\.jpg: cannot decode"):
        src.crop511(1, 1)
    jpeg = cv2.imencode(".jpg", np.full((511, 511, 3), 7, np.uint8))[1].tobytes()
    path.write_bytes(jpeg[: len(jpeg) // 2])  # a copy cut short
    with pytest.raises(DataError, match=r"000002\.00\.x\.jpg: "):
        src.crop511(1, 1)
    path.unlink()
    path.mkdir()  # reading fails with an OSError that is not FileNotFoundError (as permission denied does)
    with pytest.raises(DataError, match=r"000002\.00\.x\.jpg: cannot read image \(Is a directory\)"):
        src.crop511(1, 1)


def test_bad_annotations(tmp_path):
    root, anno = _write_dataset(tmp_path, ANNO)
    with pytest.raises(DataError, match="nope.json: annotation file not found"):
        PysotSource("VID", root, tmp_path / "nope.json")
    anno.write_text('{"a": {')
    with pytest.raises(DataError, match="train.json: corrupt JSON"):
        PysotSource("VID", root, anno)
    anno.write_text("[1, 2]")
    with pytest.raises(DataError, match="train.json: expected a JSON object"):
        PysotSource("VID", root, anno)
    anno.write_text('{"v": [1]}')
    with pytest.raises(DataError, match=r"train.json: video 'v': expected \{track"):
        PysotSource("VID", root, anno)
    for box in ([0, 0, 5], [0, 0, "a", 5], [[0, 0], [5, 5]], None, "0005"):
        good = {"000000": [0, 0, 9, 9]}
        anno.write_text(json.dumps({"u": {"00": good}, "v": {"00": {**good, "000001": box}}}))
        with pytest.raises(DataError, match=r"train.json: v/00/000001: box .* not 4 numbers$"):
            PysotSource("VID", root, anno)
    anno.write_text('{"v": {"00": {"0000000001": [0, 0, 9, 9]}}}')
    with pytest.raises(DataError, match=r"train.json: v/00/0000000001: frame number .* out of range"):
        PysotSource("VID", root, anno)
    with pytest.raises(DataError, match="missing: crop511 root folder not found"):
        PysotSource("VID", tmp_path / "missing", anno)


def test_nonfinite_and_degenerate_boxes_are_dropped_and_counted(tmp_path, caplog):
    root = tmp_path / "crop511"
    root.mkdir()
    anno = tmp_path / "train.json"
    # NaN / Infinity are what Python's json writes for non-finite floats.
    anno.write_text(
        '{"v": {"00": {"000000": [0, 0, 9, 9], "000001": [0, 0, NaN, 9], "000002": [0, 0, 1, 9],'
        ' "000003": [0, 0, 9, 1.0], "000004": [0, 0, 9, 1.001], "000005": [-Infinity, 0, 9, 9]},'
        ' "01": {"000000": [0, 0, NaN, NaN]}}}'
    )
    with caplog.at_level(logging.INFO, logger="siamrn_jax.data.pysot"):
        src = PysotSource("VID", root, anno)
    assert len(src) == 1 and src.track_length(0) == 2  # frames 0 and 4 (h = 1.001 > 1)
    assert [src.frame_path(0, f).name for f in range(2)] == ["000000.00.x.jpg", "000004.00.x.jpg"]
    assert (src.dropped_frames, src.nonfinite_frames, src.dropped_tracks) == (5, 3, 1)
    (record,) = caplog.records  # logged once, as a warning since some boxes were not finite
    assert record.levelno == logging.WARNING
    assert str(anno) in record.getMessage() and "5 of 7 frames dropped (3 non-finite" in record.getMessage()


def test_unsorted_frames_are_sorted_and_track_order_is_sorted(tmp_path):
    root = tmp_path / "crop511"
    root.mkdir()
    anno = tmp_path / "train.json"
    anno.write_text(
        json.dumps(
            {
                "b": {"01": {"000007": [0, 0, 9, 9], "000002": [0, 0, 8, 8]}, "00": {"000001": [0, 0, 5, 5]}},
                "a": {"00": {"000003": [0, 0, 7, 7], "000001": [0, 0, 6, 6], "000002": [0, 0, 2, 2]}},
            }
        )
    )
    src = PysotSource("VID", root, anno)
    assert [src.track_key(t) for t in range(len(src))] == ["a/00", "b/00", "b/01"]
    assert [src.frame_path(0, f).name[:6] for f in range(3)] == ["000001", "000002", "000003"]
    assert [src.frame_path(2, f).name[:6] for f in range(2)] == ["000002", "000007"]
    np.testing.assert_array_equal(src.box(2, 0), [0, 0, 8, 8])
    with pytest.raises(IndexError):
        src.box(1, 1)


def test_large_annotation_opens_lazily(tmp_path):
    """2000 videos x 40 frames (a fifth of GOT-10k): the open reads the JSON only (the crop511 folder
    is empty, so touching any image would fail), and the source pickles small."""
    root = tmp_path / "crop511"
    root.mkdir()
    anno = tmp_path / "train.json"
    rng = np.random.default_rng(0)
    boxes = np.round(
        np.concatenate([rng.uniform(0, 500, (2000, 40, 2)), rng.uniform(600, 900, (2000, 40, 2))], -1), 2
    )
    data = {
        f"GOT-10k_Train_{v:06d}": {"00": {f"{f:06d}": boxes[v, f].tolist() for f in range(40)}}
        for v in range(2000)
    }
    anno.write_text(json.dumps(data))
    src = PysotSource("GOT10K", root, anno)  # would raise DataError if it read any image
    assert len(src) == 2000 and {src.track_length(t) for t in range(len(src))} == {40}
    assert src.track_key(1999) == "GOT-10k_Train_001999/00"
    np.testing.assert_allclose(src.box(7, 39), boxes[7, 39], rtol=1e-6)
    assert src.frame_path(7, 39) == root / "GOT-10k_Train_000007" / "000039.00.x.jpg"
    # Flat arrays: ~20 bytes per frame (float32 box + int32 number), not Python objects per track.
    assert len(pickle.dumps(src)) < 2000 * 40 * 24
