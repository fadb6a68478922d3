"""Benchmark readers on tiny fake trees (one per layout) and on the real data in /work/shared/data."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from siamrn_jax.eval.registry import available, load_benchmark
from siamrn_jax.io.sources import InputError

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real sequences; CI always has ../shared beside the repository, so their absence is a failure."""
    if not (DATA / "sequences").is_dir():
        pytest.fail(f"{DATA}: shared test data not found")
    return DATA


def _frames(folder: Path, numbers, digits: int, ext: str = ".jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    img = np.full((8, 10, 3), 128, np.uint8)
    for n in numbers:
        cv2.imwrite(str(folder / f"{n:0{digits}d}{ext}"), img)


def _boxes(n: int, start: int = 0) -> list[str]:
    return [f"{10 + i},{20 + i},30,40" for i in range(start, start + n)]


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def test_registry_names():
    names = {"otb100", "uav123", "lasot", "got10k_val", "got10k_test", "vot2018", "vot2019", "folder"}
    assert set(available()) >= names
    with pytest.raises(KeyError, match="unknown benchmark"):
        load_benchmark("otb", "/nowhere")


def test_otb_raw_special_cases(tmp_path):
    _frames(tmp_path / "Car" / "img", range(1, 6), 4)
    _write(
        tmp_path / "Car" / "groundtruth_rect.txt", ["1\t2\t3\t4", "1 2 3 4", "1,2,3,4", "1,2, 3,4", "5,6,7,8"]
    )
    _frames(tmp_path / "Jogging" / "img", range(1, 4), 4)
    _write(tmp_path / "Jogging" / "groundtruth_rect.1.txt", _boxes(3))
    _write(tmp_path / "Jogging" / "groundtruth_rect.2.txt", _boxes(3, 5))
    _frames(tmp_path / "Human4" / "img", range(1, 3), 4)
    (tmp_path / "Human4" / "groundtruth_rect.1.txt").write_text("")
    _write(tmp_path / "Human4" / "groundtruth_rect.2.txt", _boxes(2))
    _frames(tmp_path / "David" / "img", range(290, 780), 4)  # official range 300..770
    _write(tmp_path / "David" / "groundtruth_rect.txt", _boxes(471))
    _frames(tmp_path / "Tiger1" / "img", range(1, 355), 4)  # initOmit = 5
    _write(tmp_path / "Tiger1" / "groundtruth_rect.txt", _boxes(354))
    _frames(tmp_path / "Board" / "img", range(1, 3), 5)  # 5-digit names
    _write(tmp_path / "Board" / "groundtruth_rect.txt", _boxes(2))
    seqs = {s.name: s for s in load_benchmark("otb100", tmp_path)}
    assert sorted(seqs) == ["Board", "Car", "David", "Human4-2", "Jogging-1", "Jogging-2", "Tiger1"]
    assert seqs["Car"].groundtruth[4].tolist() == [5, 6, 7, 8]
    assert seqs["Jogging-2"].groundtruth[0].tolist() == [15, 25, 30, 40]
    assert len(seqs["David"]) == 471 and seqs["David"].frames[0].name == "0300.jpg"
    assert seqs["David"].frames[-1].name == "0770.jpg"
    tiger = seqs["Tiger1"]
    assert len(tiger) == 349 and tiger.frames[0].name == "0006.jpg" and tiger.groundtruth[0, 0] == 15
    assert seqs["Board"].frames[1].name == "00002.jpg"
    assert seqs["Car"].frame(0).shape == (8, 10, 3)
    only = load_benchmark("otb100", tmp_path, ["Jogging-1"])
    assert [s.name for s in only] == ["Jogging-1"]


def test_otb_pysot_json(tmp_path):
    _frames(tmp_path / "Basket" / "img", range(1, 4), 4)
    meta = {
        "Basket": {
            "video_dir": "Basket",
            "init_rect": [1, 2, 3, 4],
            "img_names": [f"Basket/img/{i:04d}.jpg" for i in range(1, 4)],
            "gt_rect": [[1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6]],
            "attr": ["IV", "OCC"],
        }
    }
    (tmp_path / "OTB100.json").write_text(json.dumps(meta))
    (s,) = load_benchmark("otb100", tmp_path)
    assert s.name == "Basket" and s.attributes == ["IV", "OCC"] and s.groundtruth.shape == (3, 4)
    assert s.frames[2] == tmp_path / "Basket" / "img" / "0003.jpg"  # joined to the root, not the CWD
    meta["Basket"]["img_names"][1] = "Basket/img/0009.jpg"
    (tmp_path / "OTB100.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="0009.jpg"):
        load_benchmark("otb100", tmp_path)


def test_uav_sub_sequence_and_nan_rows(tmp_path):
    _frames(tmp_path / "data_seq" / "UAV123" / "truck4", range(1, 1262), 6)
    _frames(tmp_path / "data_seq" / "UAV123" / "boat1", range(1, 4), 6)
    _write(tmp_path / "anno" / "UAV123" / "truck4_2.txt", _boxes(684) + ["NaN,NaN,NaN,NaN"])
    _write(tmp_path / "anno" / "UAV123" / "boat1.txt", _boxes(3))
    seqs = {s.name: s for s in load_benchmark("uav123", tmp_path)}
    t = seqs["truck4_2"]
    assert len(t) == 685 and t.frames[0].name == "000577.jpg" and t.frames[-1].name == "001261.jpg"
    assert t.absent.tolist() == [False] * 684 + [True] and np.isnan(t.groundtruth[-1]).all()
    assert len(seqs["boat1"]) == 3


def test_lasot_flags_and_split(tmp_path):
    seq = tmp_path / "airplane" / "airplane-1"
    _frames(seq / "img", range(1, 6), 8)
    _write(seq / "groundtruth.txt", _boxes(5))
    _write(seq / "full_occlusion.txt", ["0,0,1,0,0"])
    _write(seq / "out_of_view.txt", ["0,0,0,0,1"])
    _write(seq / "nlp.txt", ["white airplane landing"])
    (s,) = load_benchmark("lasot", tmp_path, ["airplane-1"])
    assert s.absent.tolist() == [False, False, True, False, True]
    assert s.meta["nlp"] == "white airplane landing"
    with pytest.raises(InputError, match="airplane-9"):  # the default test split wants all 280
        load_benchmark("lasot", tmp_path)
    _write(seq / "out_of_view.txt", ["0,0,0,0"])
    with pytest.raises(InputError, match="out_of_view.txt: 4 labels for 5 frames"):
        load_benchmark("lasot", tmp_path, ["airplane-1"])


def test_got10k_val_and_test(tmp_path):
    val = tmp_path / "val" / "GOT-10k_Val_000001"
    _frames(val, range(1, 5), 8)
    _write(val / "groundtruth.txt", _boxes(4))
    _write(val / "absence.label", ["0", "1", "0", "0"])
    _write(val / "cover.label", ["8", "0", "3", "8"])
    _write(val / "meta_info.ini", ["[METAINFO]", "object_class: tiger", "resolution: (1920, 1080)"])
    _write(tmp_path / "val" / "list.txt", ["GOT-10k_Val_000001"])
    test = tmp_path / "test" / "GOT-10k_Test_000001"
    _frames(test, range(1, 4), 8)
    _write(test / "groundtruth.txt", _boxes(1))
    _write(tmp_path / "test" / "list.txt", ["GOT-10k_Test_000001"])
    (v,) = load_benchmark("got10k_val", tmp_path)
    assert v.absent.tolist() == [False, True, False, False] and v.cover.tolist() == [8, 0, 3, 8]
    assert v.image_size == (1920, 1080) and v.meta["object_class"] == "tiger"
    (t,) = load_benchmark("got10k_test", tmp_path)
    assert len(t) == 3 and t.groundtruth[0].tolist() == [10, 20, 30, 40] and np.isnan(t.groundtruth[1:]).all()


def test_vot_list_polygons_tags(tmp_path):
    seq = tmp_path / "ball"
    _frames(seq / "color", range(1, 4), 8)
    _write(seq / "groundtruth.txt", ["1,1,5,1,5,5,1,5", "2,2,6,2,6,6,2,6", "1,1,4,4"])
    _write(seq / "occlusion.tag", ["0", "1"])  # shorter than the sequence: padded with 0
    _write(tmp_path / "list.txt", ["ball"])
    (s,) = load_benchmark("vot2019", tmp_path)
    assert s.groundtruth.shape == (3, 8)
    assert s.groundtruth[2].tolist() == [1, 1, 5, 1, 5, 5, 1, 5]  # the 4-value row as corners
    assert s.tags["occlusion"].tolist() == [False, True, False]
    assert s.tags["camera_motion"].tolist() == [False] * 3


def test_missing_frame_names_folder(tmp_path):
    _frames(tmp_path / "Car" / "img", [1, 2, 4], 4)
    _write(tmp_path / "Car" / "groundtruth_rect.txt", _boxes(4))
    with pytest.raises(InputError, match=r"Car/img: missing frame 0003.jpg"):
        load_benchmark("folder", tmp_path)


def test_count_mismatch_names_folder(tmp_path):
    _frames(tmp_path / "Car" / "img", range(1, 5), 4)
    _write(tmp_path / "Car" / "groundtruth_rect.txt", _boxes(3))
    with pytest.raises(InputError, match=r"Car/img: 4 frames but 3 ground-truth lines"):
        load_benchmark("otb100", tmp_path)


def test_malformed_line_names_file_and_line(tmp_path):
    _frames(tmp_path / "Car" / "img", range(1, 4), 4)
    _write(tmp_path / "Car" / "groundtruth_rect.txt", ["1,2,3,4", "1,2,x,4", "1,2,3,4"])
    with pytest.raises(InputError, match=r"groundtruth_rect.txt:2: expected 4"):
        load_benchmark("folder", tmp_path)


def test_corrupt_frame_names_file(tmp_path):
    _frames(tmp_path / "Car" / "img", range(1, 3), 4)
    _write(tmp_path / "Car" / "groundtruth_rect.txt", _boxes(2))
    (tmp_path / "Car" / "img" / "0002.jpg").write_bytes(b"not a jpeg")
    (s,) = load_benchmark("folder", tmp_path)
    with pytest.raises(InputError, match="0002.jpg"):
        s.frame(1)


@pytest.mark.usefixtures("shared_data")
def test_real_folder_sequences():
    seqs = {s.name: s for s in load_benchmark("folder", DATA / "sequences")}
    assert len(seqs) == 14
    assert len(seqs["Crossing"]) == 120 and len(seqs["Deer"]) == 71
    assert seqs["Crossing"].groundtruth.shape == (120, 4)
    plane = seqs["airplane-1"]
    assert len(plane) == 150 and not plane.absent.any() and plane.meta["nlp"]
    group = seqs["group2_2"]
    assert np.flatnonzero(group.absent).tolist() == [170, 171, 172, 173, 174]  # frames 171-175, 1-based
    assert np.isnan(group.groundtruth[170:175]).all() and not np.isnan(group.groundtruth[175:]).any()
    assert seqs["Deer"].frame(0).shape == (400, 704, 3)


@pytest.mark.usefixtures("shared_data")
def test_real_vot_bag():
    (bag,) = load_benchmark("vot2018", DATA / "vot", ["bag"])
    assert len(bag) == 196 and bag.groundtruth.shape == (196, 8)
    assert set(bag.tags) >= {"camera_motion", "illum_change", "motion_change", "size_change", "occlusion"}
    assert all(v.shape == (196,) for v in bag.tags.values())
    assert not bag.tags["camera_motion"][157:].any()  # the file has 157 lines: padded with 0
