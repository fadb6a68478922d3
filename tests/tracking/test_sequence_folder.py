"""The one sequence-folder reader: ``siamrn-track`` (lenient) and ``eval --benchmark folder`` (strict)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from siamrn_jax.eval.registry import load_benchmark
from siamrn_jax.geometry.boxes import polygon_to_box
from siamrn_jax.io.sources import InputError, open_input, read_sequence_folder

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _frames(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        assert cv2.imwrite(str(folder / name), np.full((8, 10, 3), 128, np.uint8))


def _gt(path: Path, rows: list[str]) -> None:
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize(
    "names",
    [
        [f"{i:04d}.jpg" for i in range(1, 5)],  # OTB
        [f"{i:08d}.jpg" for i in range(1, 5)],  # GOT-10k / VOT
        ["img8.png", "img9.png", "img10.png", "img11.png"],  # unpadded: natural, not string, order
        ["frame_0.bmp", "frame_1.bmp", "frame_2.bmp", "frame_3.bmp"],  # numbered from 0
    ],
)
def test_track_and_eval_read_the_same_frames_and_boxes(tmp_path, names):
    seq = tmp_path / "root" / "Car"
    _frames(seq / "img", names)
    _gt(seq / "groundtruth_rect.txt", ["1,2,3,4", "2,3,4,5", "3,4,5,6", "4,5,6,7"])
    tracked = open_input(seq)
    (evaluated,) = load_benchmark("folder", tmp_path / "root")
    assert [p.name for p in tracked.paths] == [p.name for p in evaluated.frames]
    assert [p.name for p in tracked.paths] == names
    np.testing.assert_array_equal(tracked.groundtruth, evaluated.groundtruth)
    assert tracked.name == evaluated.name == "Car"


def test_vot_polygons_kept_by_eval_converted_by_track(tmp_path):
    seq = tmp_path / "root" / "bag"
    _frames(seq / "color", [f"{i:08d}.jpg" for i in range(1, 3)])
    _gt(seq / "groundtruth.txt", ["1,1,9,2,8,7,0,6", "2,2,6,2,6,4,2,4"])
    tracked = open_input(seq)
    (evaluated,) = load_benchmark("folder", tmp_path / "root")
    np.testing.assert_array_equal(evaluated.groundtruth[1], [2, 2, 6, 2, 6, 4, 2, 4])
    np.testing.assert_array_equal(tracked.groundtruth, polygon_to_box(evaluated.groundtruth))
    np.testing.assert_array_equal(tracked.groundtruth[1], [1.5, 1.5, 5, 3])  # pysot's +1 rule


def test_short_ground_truth_is_nan_padded_for_tracking_refused_for_eval(tmp_path):
    seq = tmp_path / "root" / "Diving"
    _frames(seq / "img", [f"{i:04d}.jpg" for i in range(1, 5)])
    _gt(seq / "groundtruth_rect.txt", ["1,2,3,4", "2,3,4,5"])
    gt = open_input(seq).groundtruth
    assert gt.shape == (4, 4) and np.isnan(gt[2:]).all() and not np.isnan(gt[:2]).any()
    with pytest.raises(InputError, match=r"Diving/groundtruth_rect\.txt: 2 ground-truth lines for 4 frames"):
        load_benchmark("folder", tmp_path / "root")


def test_long_ground_truth_is_refused_by_both(tmp_path):
    seq = tmp_path / "root" / "Car"
    _frames(seq / "img", ["0001.jpg"])
    _gt(seq / "groundtruth_rect.txt", ["1,2,3,4", "2,3,4,5"])
    for read in (lambda: open_input(seq), lambda: load_benchmark("folder", tmp_path / "root")):
        with pytest.raises(InputError, match="2 ground-truth lines for 1 frames"):
            read()


def test_gap_in_a_numbered_series_is_an_error_for_eval_a_warning_for_tracking(tmp_path, caplog):
    seq = tmp_path / "root" / "Car"
    _frames(seq / "img", ["0001.jpg", "0002.jpg", "0004.jpg"])
    _gt(seq / "groundtruth_rect.txt", ["1,2,3,4"] * 3)
    with pytest.raises(InputError, match=r"Car/img: missing frame 0003\.jpg in the numbered sequence"):
        read_sequence_folder(seq, strict=True)
    with caplog.at_level(logging.WARNING, logger="siamrn_jax.io.sources"):
        assert len(open_input(seq)) == 3
    assert "missing frame 0003.jpg" in caplog.text


def test_strict_mode_needs_ground_truth(tmp_path):
    _frames(tmp_path / "Car", ["1.jpg"])
    assert read_sequence_folder(tmp_path / "Car").groundtruth_file is None
    with pytest.raises(InputError, match=r"Car: no groundtruth_rect\.txt or groundtruth\.txt"):
        read_sequence_folder(tmp_path / "Car", strict=True)


def test_hidden_and_non_image_files_are_skipped(tmp_path):
    _frames(tmp_path / "Car", ["1.jpg", "2.jpg", "._1.jpg"])
    (tmp_path / "Car" / "notes.txt").write_text("x")
    assert [p.name for p in read_sequence_folder(tmp_path / "Car").frames] == ["1.jpg", "2.jpg"]


def test_real_sequences_read_alike_by_track_and_eval():
    if not (DATA / "sequences").is_dir():
        pytest.fail(f"{DATA}: shared test data not found")
    evaluated = {s.name: s for s in load_benchmark("folder", DATA / "sequences")}
    assert len(evaluated) == 14
    for name, s in evaluated.items():
        tracked = open_input(DATA / "sequences" / name)
        assert tracked.paths == s.frames, name
        gt = s.groundtruth if s.groundtruth.shape[1] == 4 else polygon_to_box(s.groundtruth)
        np.testing.assert_array_equal(tracked.groundtruth, gt, err_msg=name)
