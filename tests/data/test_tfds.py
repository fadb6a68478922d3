"""TFDS builders on tiny fake raw datasets in tmp_path, read back through TfdsSource (no TensorFlow)."""

from __future__ import annotations

import json
import pickle
import sys

import cv2
import numpy as np
import pytest

from siamrn_jax.data import tfds_builders as tb
from siamrn_jax.data.source import TrackSource
from siamrn_jax.data.tfds_source import TfdsSource

H, W = 60, 80


def _jpg(path, box_xyxy=None, colour=(0, 200, 0)):
    """A grey frame with the target box painted ``colour``: the crop centre must land on that colour."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((H, W, 3), 90, np.uint8)
    if box_xyxy is not None and np.all(np.isfinite(box_xyxy)):
        x1, y1, x2, y2 = (round(v) for v in box_xyxy)
        img[y1:y2, x1:x2] = colour
    assert cv2.imwrite(str(path), img)


def _build(name, manual, tmp_path) -> dict[str, TfdsSource]:
    out = tb.build(name, manual, tmp_path / "tfds")
    splits = [p.name.split("-")[1].split(".")[0] for p in out.glob("*.array_record-*")]
    return {s: TfdsSource(out, split=s) for s in sorted(splits)}


def _check_crops(src: TfdsSource):
    assert isinstance(src, TrackSource)
    for t in range(len(src)):
        for f in range(src.track_length(t)):
            image, box = src.crop511(t, f)
            assert image.shape == (511, 511, 3) and image.dtype == np.uint8
            np.testing.assert_allclose((box[:2] + box[2:]) / 2, [255, 255])
            # The target (painted green) is at the crop centre.
            assert image[255, 255, 1] > 150 and image[255, 255, 0] < 60, (src.track_key(t), f)


def _got10k(root, nan=False):
    for s in range(3):
        seq = root / "train" / f"GOT-10k_Train_{s + 1:06d}"
        lines = []
        for f in range(4):
            box = (10 + 2 * f, 12, 20 + s, 16)
            if s == 1 and f == 2:
                box = (5, 5, 1, 10)  # w <= 1: dropped
            if nan and s == 2 and f == 3:
                box = (5, 5, float("nan"), 10)
            x, y, w, h = box
            _jpg(seq / f"{f + 1:08d}.jpg", (x, y, x + w, y + h))
            lines.append(",".join(f"{v:g}" for v in box))
        (seq / "groundtruth.txt").write_text("\n".join(lines) + "\n")
        if s == 2:
            (seq / "absence.label").write_text("0\n1\n0\n0\n")
    seq = root / "val" / "GOT-10k_Val_000001"
    for f in range(3):
        _jpg(seq / f"{f + 1:08d}.jpg", (30, 20, 50, 40))
    (seq / "groundtruth.txt").write_text("30,20,20,20\n" * 3)
    (root / "train" / "list.txt").write_text("GOT-10k_Train_000001\n")


def test_got10k(tmp_path):
    _got10k(tmp_path / "raw")
    srcs = _build("got10k", tmp_path / "raw", tmp_path)
    train, val = srcs["train"], srcs["val"]
    assert train.name == "GOT10K"
    assert [train.track_key(t) for t in range(3)] == [f"GOT-10k_Train_{s:06d}/00" for s in (1, 2, 3)]
    assert [train.track_length(t) for t in range(3)] == [4, 3, 3]
    assert len(val) == 1 and val.track_length(0) == 3
    _check_crops(train)
    _check_crops(val)


def test_got10k_bad_input(tmp_path):
    _got10k(tmp_path / "raw", nan=True)
    with pytest.raises(ValueError, match=r"GOT-10k_Train_000003/groundtruth.txt: line 4: .* not finite"):
        tb.build("got10k", tmp_path / "raw", tmp_path / "tfds")
    _got10k(tmp_path / "raw2")
    (tmp_path / "raw2/train/GOT-10k_Train_000002/00000003.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"GOT-10k_Train_000002/00000003.jpg: image file not found"):
        tb.build("got10k", tmp_path / "raw2", tmp_path / "tfds2")


def test_lasot(tmp_path):
    root = tmp_path / "raw"
    for cls in ("cat", "dog"):
        for n in (1, 2):
            seq = root / cls / f"{cls}-{n}"
            boxes = [(5 + f, 10, 30, 20) for f in range(5)]
            for f, (x, y, w, h) in enumerate(boxes):
                _jpg(seq / "img" / f"{f + 1:08d}.jpg", (x, y, x + w, y + h))
            (seq / "groundtruth.txt").write_text("".join(f"{x},{y},{w},{h}\n" for x, y, w, h in boxes))
            (seq / "full_occlusion.txt").write_text("0,1,0,0,0" if n == 1 else "0,0,0,0,0")
            (seq / "out_of_view.txt").write_text("0,0,0,0,1")
    (root / "testing_set.txt").write_text("dog-2\n")
    srcs = _build("lasot", root, tmp_path)
    train, test = srcs["train"], srcs["test"]
    assert train.name == "LASOT"
    assert [train.track_key(t) for t in range(len(train))] == ["cat/cat-1/00", "cat/cat-2/00", "dog/dog-1/00"]
    assert [train.track_length(t) for t in range(len(train))] == [3, 4, 3]
    assert [test.track_key(0)] == ["dog/dog-2/00"] and len(test) == 1
    _check_crops(train)


def _vid_xml(path, objects):
    objs = "".join(
        f"<object><trackid>{tid}</trackid><name>n0</name><bndbox><xmax>{x2}</xmax><xmin>{x1}</xmin>"
        f"<ymax>{y2}</ymax><ymin>{y1}</ymin></bndbox><occluded>0</occluded></object>"
        for tid, (x1, y1, x2, y2) in objects
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><size><width>{W}</width><height>{H}</height></size>{objs}</annotation>")


def test_imagenet_vid(tmp_path):
    base = tmp_path / "raw" / "ILSVRC2015"
    snippets = ["ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000", "ILSVRC2015_VID_train_0001/snip_b"]
    for s, snip in enumerate(snippets):
        for f in range(4):
            objects = [(0, (10 + f, 10, 30 + f, 30))]
            if s == 0 and f in (1, 2):
                objects.append((1, (45, 30, 70, 50)))
            if s == 1 and f == 3:
                objects = []  # target left the frame
            stem = f"{f:06d}"
            _vid_xml(base / "Annotations/VID/train" / snip / f"{stem}.xml", objects)
            path = base / "Data/VID/train" / snip / f"{stem}.JPEG"
            path.parent.mkdir(parents=True, exist_ok=True)
            img = np.full((H, W, 3), 90, np.uint8)
            for _, (x1, y1, x2, y2) in objects:
                img[y1:y2, x1:x2] = (0, 200, 0)
            assert cv2.imwrite(str(path.with_suffix(".jpg")), img)
            path.with_suffix(".jpg").rename(path)
    src = _build("imagenet_vid", tmp_path / "raw", tmp_path)["train"]
    assert src.name == "VID"
    keys = [src.track_key(t) for t in range(len(src))]
    assert keys == [f"{snippets[0]}/0", f"{snippets[0]}/1", f"{snippets[1]}/0"]
    assert [src.track_length(t) for t in range(len(src))] == [4, 2, 3]
    _check_crops(src)


def test_imagenet_det(tmp_path):
    base = tmp_path / "raw"  # the manual dir may also be the ILSVRC2015 folder itself
    images = {"n01/n01_1": [(5, 5, 30, 40), (40, 10, 75, 50)], "n01/n01_2": [(20, 20, 60, 50)], "n02_3": []}
    for stem, boxes in images.items():
        objects = [(None, b) for b in boxes]
        xml = "".join(
            f"<object><name>n</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>"
            f"<ymax>{y2}</ymax></bndbox></object>"
            for _, (x1, y1, x2, y2) in objects
        )
        path = base / "Annotations/DET/train" / f"{stem}.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"<annotation>{xml}</annotation>")
        img = np.full((H, W, 3), 90, np.uint8)
        for x1, y1, x2, y2 in boxes:
            img[y1:y2, x1:x2] = (0, 200, 0)
        (base / "Data/DET/train" / stem).parent.mkdir(parents=True, exist_ok=True)
        ok, data = cv2.imencode(".jpg", img)
        (base / "Data/DET/train" / f"{stem}.JPEG").write_bytes(data.tobytes())
    src = _build("imagenet_det", base, tmp_path)["train"]
    assert src.name == "DET"
    assert [src.track_key(t) for t in range(len(src))] == ["n01/n01_1/00", "n01/n01_1/01", "n01/n01_2/00"]
    assert all(src.track_length(t) == 1 for t in range(len(src)))
    _check_crops(src)


def test_coco(tmp_path):
    root = tmp_path / "raw"
    anns = [
        {"id": 7, "image_id": 1, "bbox": [5, 5, 20, 30], "iscrowd": 0},
        {"id": 8, "image_id": 1, "bbox": [40, 10, 30, 40], "iscrowd": 0},
        {"id": 9, "image_id": 2, "bbox": [0, 0, 80, 60], "iscrowd": 1},
        {"id": 10, "image_id": 2, "bbox": [20, 20, 0.5, 10], "iscrowd": 0},  # w <= 1: dropped at read
        {"id": 11, "image_id": 2, "bbox": [30, 15, 25, 30], "iscrowd": 0},
    ]
    images = [{"id": 1, "file_name": "000000000001.jpg"}, {"id": 2, "file_name": "000000000002.jpg"}]
    for im in images:
        path = root / "train2017" / im["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        img = np.full((H, W, 3), 90, np.uint8)
        for a in anns:
            x, y, w, h = a["bbox"]
            if a["image_id"] == im["id"] and not a["iscrowd"]:
                img[round(y) : round(y + h), round(x) : round(x + w)] = (0, 200, 0)
        assert cv2.imwrite(str(path), img)
    (root / "annotations").mkdir()
    (root / "annotations/instances_train2017.json").write_text(
        json.dumps({"images": images, "annotations": anns})
    )
    src = _build("coco", root, tmp_path)["train"]
    assert src.name == "COCO"
    assert [src.track_key(t) for t in range(len(src))] == [
        "000000000001/7",
        "000000000001/8",
        "000000000002/11",
    ]
    _check_crops(src)

    (root / "annotations/instances_train2017.json").write_text("{not json")
    with pytest.raises(ValueError, match="instances_train2017.json: corrupt JSON"):
        tb.build("coco", root, tmp_path / "tfds2")


def test_youtube_bb(tmp_path):
    root = tmp_path / "raw"
    rows = ["youtube_id,timestamp_ms,class_id,class_name,object_id,object_presence,xmin,xmax,ymin,ymax"]
    for ts in (2000, 0, 1000):  # out of order on purpose
        rows.append(f"vidA,{ts},0,person,0,present,0.125,0.5,0.25,0.75")
        rows.append(f"vidA,{ts},3,dog,0,{'absent' if ts == 1000 else 'present'},0.5,0.875,0.5,0.875")
        rows.append(f"gone,{ts},0,person,0,present,0.1,0.5,0.1,0.5")  # no frames folder: skipped
    root.mkdir()
    (root / tb.YoutubeBb.CSV).write_text("\n".join(rows) + "\n")
    for ts in (0, 1000, 2000):
        img = np.full((H, W, 3), 90, np.uint8)
        img[15:45, 10:40] = (0, 200, 0)
        if ts != 1000:
            img[30:52, 40:70] = (0, 200, 0)
        path = root / "frames/vidA" / f"{ts}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), img)
    src = _build("youtube_bb", root, tmp_path)["train"]
    assert src.name == "YOUTUBEBB"
    assert [src.track_key(t) for t in range(len(src))] == ["vidA/0_0", "vidA/3_0"]
    assert [src.track_length(t) for t in range(len(src))] == [3, 2]
    image, box = src.frame(0, 0)
    np.testing.assert_allclose(box, [10, 15, 40, 45])
    _check_crops(src)


def test_source_pickle_and_cli(tmp_path, capsys):
    _got10k(tmp_path / "raw")
    assert (
        tb.main(["got10k", "--manual-dir", str(tmp_path / "raw"), "--data-dir", str(tmp_path / "tfds")]) == 0
    )
    out = capsys.readouterr().out.strip().splitlines()[-1]
    src = TfdsSource(out)
    src.crop511(0, 0)  # opens the data source, which must not travel
    clone = pickle.loads(pickle.dumps(src))
    assert clone._ds is None and len(clone) == 3
    np.testing.assert_array_equal(clone.crop511(1, 2)[0], src.crop511(1, 2)[0])
    assert "tensorflow" not in sys.modules

    assert (
        tb.main(["got10k", "--manual-dir", str(tmp_path / "nothing"), "--data-dir", str(tmp_path / "t")]) == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nothing: manual directory not found" in err and "\n" not in err
    with pytest.raises(FileNotFoundError, match="nowhere: no TFDS dataset"):
        TfdsSource(tmp_path / "nowhere")
