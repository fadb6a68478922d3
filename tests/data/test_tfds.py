"""TFDS builders on tiny fake raw datasets in tmp_path, read back through TfdsSource (no TensorFlow)."""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

from siamrn_jax.cli.tfds_builders import main as tb_main
from siamrn_jax.data import tfds_builders as tb
from siamrn_jax.data.source import DataError, TrackSource
from siamrn_jax.data.tfds_source import TfdsSource
from siamrn_jax.data.track_index import TrackIndex, index_path

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


def test_got10k_bad_input(tmp_path, caplog):
    """Faults in the raw data cost frames, not the build: a NaN box is kept in the records and dropped
    (counted) when read; a missing or non-image frame file is left out of the records and logged."""
    _got10k(tmp_path / "raw", nan=True)
    (tmp_path / "raw/train/GOT-10k_Train_000002/00000001.jpg").unlink()
    (tmp_path / "raw/train/GOT-10k_Train_000001/00000004.jpg").write_bytes(b"not an image")
    with caplog.at_level(logging.WARNING, logger="siamrn_jax.data.tfds_builders"):
        train = _build("got10k", tmp_path / "raw", tmp_path)["train"]
    assert "GOT-10k_Train_000002/00000001.jpg: image file not found" in caplog.text
    assert "GOT-10k_Train_000001/00000004.jpg: not a JPEG/PNG/BMP image" in caplog.text
    assert "2 of 12 frames left out" in caplog.text
    index = TrackIndex.load(index_path(train.directory, "train"))
    assert index.offsets.tolist() == [0, 3, 6, 10]  # 4 + 4 + 4 annotated frames, 2 left out
    assert np.isnan(index.boxes[9]).any()  # kept as annotated
    # usable: track 1 frames 0-2; track 2 frames 1 (dropped: missing), 2 (w <= 1) -> 1, 3; track 3: 0, 2
    # (1 is absent) and 3 (NaN) dropped -> 0, 2.
    assert [train.track_length(t) for t in range(3)] == [3, 2, 2]
    assert train.dropped_boxes == 2  # the w <= 1 box and the NaN box, both marked visible
    _check_crops(train)


def test_index_describes_the_records(tmp_path):
    _got10k(tmp_path / "raw")
    out = tb.build("got10k", tmp_path / "raw", tmp_path / "tfds")
    index = TrackIndex.load(index_path(out, "train"))
    files = sorted((tmp_path / "raw/train").glob("GOT-*/*.jpg"))
    assert index.keys.tolist() == [f"GOT-10k_Train_{s:06d}/00" for s in (1, 2, 3)]
    assert index.nbytes.tolist() == [f.stat().st_size for f in files]
    assert index.sizes.tolist() == [[W, H]] * 12
    assert index.visible.tolist() == [True] * 8 + [True, False, True, True]  # track 3: absence.label
    ds = tfds.builder_from_directory(str(out)).as_data_source(split="train")
    for r in range(len(ds)):  # record r is frame r - offsets[t] of track t, in track order
        t = int(np.searchsorted(index.offsets, r, side="right") - 1)
        assert (ds[r]["track"].decode(), int(ds[r]["frame"])) == (index.keys[t], r - index.offsets[t])
        assert ds[r]["image"] == files[r].read_bytes()
        np.testing.assert_array_equal(ds[r]["box"], index.boxes[r])


def _rchar() -> int:
    """Bytes this process has read through read(2)/pread(2) so far, page-cache hits included."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").is_file(), reason="needs Linux /proc/self/io")
def test_one_sample_reads_one_frame(tmp_path):
    """A long track: reading one frame costs about that frame's bytes, not the track's."""
    seq = tmp_path / "raw/train/GOT-10k_Train_000001"
    seq.mkdir(parents=True)
    rs = np.random.RandomState(0)
    for f in range(60):  # noisy frames: ~20 KB each, 1.2 MB the track
        assert cv2.imwrite(str(seq / f"{f + 1:08d}.jpg"), rs.randint(0, 255, (120, 160, 3)).astype(np.uint8))
    (seq / "groundtruth.txt").write_text("40,30,60,50\n" * 60)
    src = TfdsSource(tb.build("got10k", tmp_path / "raw", tmp_path / "tfds"))
    src.frame(0, 0)  # opens the shards
    for f in (7, 31, 52, 3):
        before = _rchar()
        src.frame(0, f)
        read = _rchar() - before
        assert read <= 3 * src.frame_nbytes(0, f), (f, read, src.frame_nbytes(0, f))
    assert sum(src.frame_nbytes(0, f) for f in range(60)) > 40 * src.frame_nbytes(0, 7)


def test_old_format_is_refused_with_rebuild_advice(tmp_path):
    old = tmp_path / "tfds/got10k/1.0.0"
    old.mkdir(parents=True)
    (old / "dataset_info.json").write_text(json.dumps({"name": "got10k", "version": "1.0.0"}))
    with pytest.raises(DataError, match=r"old one-record-per-track format .* rebuild it: python -m "):
        TfdsSource(tmp_path / "tfds/got10k")
    _got10k(tmp_path / "raw")
    out = tb.build("got10k", tmp_path / "raw", tmp_path / "tfds2")
    with pytest.raises(DataError, match="no split 'test' \\(has train, val\\)"):
        TfdsSource(out, split="test")
    index_path(out, "val").unlink()
    with pytest.raises(DataError, match=r"track_index.val.npz: missing \(incomplete dataset\)"):
        TfdsSource(out, split="val")
    index_path(out, "train").write_bytes(b"PK garbage")
    with pytest.raises(DataError, match=r"track_index.train.npz: corrupt track index"):
        TfdsSource(out, split="train")


def _corrupt_jpegs(good: bytes) -> dict[str, bytes]:
    dht = good.find(b"\xff\xc4")
    bogus = bytearray(good)
    bogus[dht + 5 : dht + 21] = b"\xff" * 16  # impossible Huffman code counts: the header still parses
    return {"truncated": good[: len(good) // 2], "bad huffman table": bytes(bogus)}


@pytest.mark.parametrize("kind", ["truncated", "bad huffman table"])
def test_undecodable_frame_is_a_data_error_naming_it(tmp_path, kind):
    _got10k(tmp_path / "raw")
    path = tmp_path / "raw/train/GOT-10k_Train_000001/00000002.jpg"
    noise = np.random.RandomState(0).randint(0, 255, (H, W, 3)).astype(np.uint8)
    good = cv2.imencode(".jpg", noise)[1].tobytes()  # half of it is scan data: the header survives the cut
    path.write_bytes(_corrupt_jpegs(good)[kind])
    src = _build("got10k", tmp_path / "raw", tmp_path)["train"]
    src.crop511(0, 0)
    where = r"train record 1 \(GOT-10k_Train_000001/00 frame 1\)"
    with pytest.raises(DataError, match=where + ": (truncated JPEG|cannot decode)"):
        src.crop511(0, 1)


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
    # The sampler picks images (pysot's videos), then an object of the image: n01_1 holds two tracks.
    assert src.track_videos().tolist() == [0, 0, 1]
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
        tb_main(["got10k", "--manual-dir", str(tmp_path / "raw"), "--data-dir", str(tmp_path / "tfds")]) == 0
    )
    out = capsys.readouterr().out.strip().splitlines()[-1]
    src = TfdsSource(out)
    src.crop511(0, 0)  # opens the data source, which must not travel
    clone = pickle.loads(pickle.dumps(src))
    assert clone._ds is None and len(clone) == 3
    np.testing.assert_array_equal(clone.crop511(1, 2)[0], src.crop511(1, 2)[0])
    # Reading never imports TensorFlow; checked in a fresh interpreter (in this one another test on the
    # same pytest worker may have imported it: the in-process check failed with test order alone).
    code = (
        "import sys; from siamrn_jax.data.tfds_source import TfdsSource; "
        f"TfdsSource({out!r}).crop511(1, 2); assert 'tensorflow' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

    assert (
        tb_main(["got10k", "--manual-dir", str(tmp_path / "nothing"), "--data-dir", str(tmp_path / "t")]) == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nothing: manual directory not found" in err and "\n" not in err
    with pytest.raises(FileNotFoundError, match="nowhere: no TFDS dataset"):
        TfdsSource(tmp_path / "nowhere")


def test_bench_data_command_end_to_end(tmp_path, capsys):
    """``python -m siamrn_jax.bench data`` on a tiny tree: every row of the scale table is produced."""
    from siamrn_jax.cli.bench import main as bench_main

    _got10k(tmp_path / "raw")  # its sequence folders serve as the pool of real frames
    args = ["data", "--workdir", str(tmp_path / "w"), "--tracks", "6", "--frames", "3", "--pool", "6"]
    args += ["--frames-from", str(tmp_path / "raw/train"), "--samples", "5", "--batches", "1", "--steps", "0"]
    assert bench_main([*args, "--workers", "0"]) == 0
    table = capsys.readouterr().out
    for row in ("build", "open TfdsSource", "source memory", "bytes read per sample", "crop511 samples/s"):
        assert f"| {row}" in table, row
    assert "| dataset | 6 tracks, 18 frames" in table
