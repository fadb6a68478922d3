"""PysotSource on a tiny fake crop511 dataset written into tmp_path."""

from __future__ import annotations

import json
import pickle

import cv2
import numpy as np
import pytest

from siamrn_jax.data.pysot import PysotSource
from siamrn_jax.data.source import TrackSource, pysot_bbox


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


def test_missing_and_corrupt_image(tmp_path):
    root, anno = _write_dataset(tmp_path, ANNO)
    src = PysotSource("VID", root, anno)
    src.frame_path(1, 0).unlink()
    with pytest.raises(FileNotFoundError, match=r"000000\.00\.x\.jpg: crop511 image not found"):
        src.crop511(1, 0)
    src.frame_path(1, 1).write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"000002\.00\.x\.jpg: cannot decode"):
        src.crop511(1, 1)


def test_bad_annotations(tmp_path):
    root, anno = _write_dataset(tmp_path, ANNO)
    with pytest.raises(FileNotFoundError, match="nope.json: annotation file not found"):
        PysotSource("VID", root, tmp_path / "nope.json")
    anno.write_text('{"a": {')
    with pytest.raises(ValueError, match="train.json: corrupt JSON"):
        PysotSource("VID", root, anno)
    anno.write_text('{"v": {"00": {"000000": [0, 0, NaN, 5]}}}')
    with pytest.raises(ValueError, match=r"train.json: v/00/000000: box .* not finite"):
        PysotSource("VID", root, anno)
    anno.write_text('{"v": {"00": {"000000": [0, 0, 5]}}}')
    with pytest.raises(ValueError, match=r"train.json: v/00/000000: box .* not 4 numbers"):
        PysotSource("VID", root, anno)
    with pytest.raises(FileNotFoundError, match="missing: crop511 root folder not found"):
        PysotSource("VID", tmp_path / "missing", anno)
