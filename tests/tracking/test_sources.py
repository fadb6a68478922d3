"""Input readers (video, image / OTB / VOT folders, camera) and pysot result files."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from siamrn_jax.atomic import atomic_output
from siamrn_jax.geometry.boxes import polygon_to_box, pysot_init_box
from siamrn_jax.io.results import OutputError, read_boxes, write_boxes
from siamrn_jax.io.sources import (
    ImageFolder,
    InputError,
    VideoSource,
    open_input,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def textured(t: int, wh=(64, 48)) -> np.ndarray:
    """A frame whose pixel (0, 0) encodes t, so order and identity can be checked after JPEG/MJPG."""
    rs = np.random.RandomState(t)
    f = np.kron(rs.randint(0, 255, (wh[1] // 8, wh[0] // 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    f[:8, :8] = 20 * t
    return f


def write_frames(folder: Path, names: list[str], wh=(64, 48)) -> list[np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    frames = [textured(t, wh) for t in range(len(names))]
    for name, f in zip(names, frames, strict=True):
        assert cv2.imwrite(str(folder / name), f)
    return frames


def require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path}: shared test data not found (tests expect ../shared beside the repo)")
    return path


# --- folders ----------------------------------------------------------------------------------------------


def test_image_folder_natural_order_and_random_access(tmp_path):
    frames = write_frames(tmp_path / "seq", ["f1.png", "f2.png", "f10.png"])
    (tmp_path / "seq" / "notes.txt").write_text("not a frame")
    src = open_input(tmp_path / "seq")
    assert isinstance(src, ImageFolder)
    assert (src.name, len(src), src.groundtruth) == ("seq", 3, None)
    assert [p.name for p in src.paths] == ["f1.png", "f2.png", "f10.png"]
    np.testing.assert_array_equal(src[2], frames[2])
    np.testing.assert_array_equal(src[-1], frames[2])
    assert all((a == b).all() for a, b in zip(src, frames, strict=True))
    with pytest.raises(IndexError):
        src[3]
    assert len(src.head(2)) == 2


def test_grayscale_and_rgba_frames_become_bgr(tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    cv2.imwrite(str(d / "1.png"), np.full((48, 64), 77, np.uint8))
    cv2.imwrite(
        str(d / "2.png"), np.dstack([np.full((48, 64, 3), 9, np.uint8), np.full((48, 64), 255, np.uint8)])
    )
    src = open_input(d)
    for f, v in zip(src, (77, 9), strict=True):
        assert f.shape == (48, 64, 3) and f.dtype == np.uint8 and (f == v).all()


def test_otb_sequence_ground_truth_is_kept_as_read(tmp_path):
    seq = tmp_path / "Walker"
    write_frames(seq / "img", [f"{i:04d}.jpg" for i in range(1, 6)])
    # Mixed separators, CRLF, a NaN row (absent target), and one frame left unannotated.
    (seq / "groundtruth_rect.txt").write_bytes(
        b"11,21,30,40\r\n12\t22\t30\t40\r\nNaN,NaN,NaN,NaN\r\n14 24 31.5 41\r\n"
    )
    src = open_input(seq)
    assert (src.name, len(src)) == ("Walker", 5)
    # No toolkit shifts OTB's 1-based numbers (EVALUATION.md section 1); neither do we.
    expected = [[11, 21, 30, 40], [12, 22, 30, 40], [np.nan] * 4, [14, 24, 31.5, 41], [np.nan] * 4]
    np.testing.assert_array_equal(src.groundtruth, expected)
    np.testing.assert_array_equal(src.head(2).groundtruth, expected[:2])
    assert open_input(seq / "img").name == "Walker"  # a bare img/ folder is named after its sequence


def test_polygon_to_box_hand_computed():
    # A square of side sqrt(200) rotated by 45 degrees around (50, 40).
    box = polygon_to_box(np.array([50, 30, 60, 40, 50, 50, 40, 40]))
    s = math.sqrt(200 * 1 / 400)  # sqrt(|p1-p2| |p2-p3| / ((x2-x1)(y2-y1)))
    w = s * 20 + 1
    np.testing.assert_allclose(box, [50 - w / 2, 40 - w / 2, w, w])
    # pysot's polygon of an (x, y, w, h) box (corners x .. x + w - 1) gives back its w and h (the "+1"),
    # centred on the polygon's centre.
    x, y, bw, bh = 10.0, 20.0, 30.0, 40.0
    poly = [x, y, x, y + bh - 1, x + bw - 1, y + bh - 1, x + bw - 1, y]
    np.testing.assert_allclose(polygon_to_box(np.array(poly)), [x - 0.5, y - 0.5, bw, bh])
    assert np.isnan(polygon_to_box(np.full(8, np.nan))).all()


def test_vot_sequence_converts_polygons_keeps_boxes(tmp_path):
    seq = tmp_path / "ball"
    write_frames(seq, [f"{i:08d}.jpg" for i in range(1, 3)])
    (seq / "groundtruth.txt").write_text("50,30,60,40,50,50,40,40\n5.5,6,7,8\n")
    src = open_input(seq)
    assert (src.name, len(src)) == ("ball", 2)
    np.testing.assert_allclose(src.groundtruth[0], polygon_to_box(np.array([50, 30, 60, 40, 50, 50, 40, 40])))
    np.testing.assert_array_equal(src.groundtruth[1], [5.5, 6, 7, 8])


def test_real_otb_sequences():
    src = open_input(require(DATA / "sequences" / "Crossing"))
    assert (src.name, len(src), src[0].shape) == ("Crossing", 120, (240, 360, 3))
    np.testing.assert_array_equal(src.groundtruth[0], [205, 151, 17, 50])  # as in the file
    toy = open_input(DATA / "sequences" / "Toy")  # tab-separated, CRLF
    np.testing.assert_array_equal(toy.groundtruth[0], [152, 102, 40, 67])
    human = open_input(DATA / "sequences" / "Human3")  # no trailing newline
    assert len(human) == len(human.groundtruth) == 199 and np.isfinite(human.groundtruth).all()
    group = open_input(DATA / "sequences" / "group2_2")  # target absent in frames 171-175
    assert np.flatnonzero(np.isnan(group.groundtruth[:, 0])).tolist() == [170, 171, 172, 173, 174]


def test_real_vot_bag():
    src = open_input(require(DATA / "vot" / "bag"))
    assert (src.name, len(src), src.groundtruth.shape) == ("bag", 196, (196, 4))
    first = np.array(
        [float(v) for v in (DATA / "vot" / "bag" / "groundtruth.txt").read_text().split("\n")[0].split(",")]
    )
    np.testing.assert_allclose(src.groundtruth[0], polygon_to_box(first))
    # pysot's init box puts the tracker's x + (w - 1) / 2 centre on the polygon's centre.
    cx, cy = first[0::2].mean(), first[1::2].mean()
    g = pysot_init_box(src.groundtruth[0])
    np.testing.assert_allclose([g[0] + (g[2] - 1) / 2, g[1] + (g[3] - 1) / 2], [cx, cy])


# --- videos -----------------------------------------------------------------------------------------------


def test_video_written_by_opencv(tmp_path):
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    frames = [textured(t) for t in range(7)]
    for f in frames:
        w.write(f)
    w.release()
    src = open_input(path)
    assert isinstance(src, VideoSource)
    assert (src.name, len(src), src.fps, src.groundtruth) == ("clip", 7, 10.0, None)
    decoded = list(src)
    assert len(decoded) == 7 and all(f.shape == (48, 64, 3) for f in decoded)
    # MJPG is lossy: the (0, 0) marker identifies the frame.
    assert [round(float(f[:8, :8].mean()) / 20) for f in decoded] == list(range(7))
    for i in (0, 3, 4, 4, 6, 1, -1):  # forward, repeated, backward, negative
        np.testing.assert_array_equal(src[i], decoded[i])
    assert len(src.head(3)) == 3 and len(list(src.head(3))) == 3


def test_real_video_bag_avi():
    src = open_input(require(DATA / "videos" / "bag.avi"))
    assert (src.name, len(src), src.fps) == ("bag", 196, 25.0)
    assert src[0].shape == (360, 480, 3)
    assert src[195].shape == (360, 480, 3)


# --- errors -----------------------------------------------------------------------------------------------


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(InputError, match="nope: no such file or folder"):
        open_input(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(InputError, match="empty: no images"):
        open_input(tmp_path / "empty")


def test_corrupt_frame_raises_when_read_naming_it(tmp_path):
    write_frames(tmp_path / "s", ["0001.jpg", "0002.jpg", "0003.jpg"])
    (tmp_path / "s" / "0002.jpg").write_bytes(b"not a jpeg at all")
    src = open_input(tmp_path / "s")  # opening does not decode every frame
    src[0]
    with pytest.raises(InputError, match=r"0002\.jpg: unreadable or corrupt image"):
        src[1]
    (tmp_path / "s" / "0003.jpg").write_bytes(b"")
    with pytest.raises(InputError, match=r"0003\.jpg: unreadable or corrupt image"):
        src[2]  # an empty file


def test_frames_of_different_sizes_name_the_frame(tmp_path):
    write_frames(tmp_path / "s", ["0001.jpg", "0002.jpg"], wh=(360, 240))
    write_frames(tmp_path / "t", ["0012.jpg"], wh=(320, 240))
    (tmp_path / "t" / "0012.jpg").rename(tmp_path / "s" / "0012.jpg")
    src = open_input(tmp_path / "s")
    msg = "frames of different sizes: 0012.jpg is 320x240, first frame 360x240"
    with pytest.raises(InputError, match=msg):
        src[2]  # frame 0 not read yet: its size is looked up
    with pytest.raises(InputError, match=msg):
        list(src)


def test_malformed_ground_truth_names_file_and_line(tmp_path):
    seq = tmp_path / "Bad"
    write_frames(seq / "img", ["0001.jpg", "0002.jpg", "0003.jpg"])
    (seq / "groundtruth_rect.txt").write_text("1,2,3,4\n1,2,3,4\n1,2,x,4\n")
    with pytest.raises(InputError, match=r"groundtruth_rect\.txt:3: expected 4 or 8 numbers, got '1,2,x,4'"):
        open_input(seq)
    (seq / "groundtruth_rect.txt").write_text("1,2,3,4\n1,2,3\n")
    with pytest.raises(InputError, match=r"groundtruth_rect\.txt:2:"):
        open_input(seq)
    (seq / "groundtruth_rect.txt").write_text("1,2,3,4\n" * 4)
    with pytest.raises(InputError, match="4 ground-truth lines for 3 frames"):
        open_input(seq)


def test_video_that_cannot_be_opened(tmp_path):
    (tmp_path / "broken.avi").write_bytes(b"\x00" * 1000)
    with pytest.raises(InputError, match="broken.avi"):
        open_input(tmp_path / "broken.avi")
    cv2.imwrite(str(tmp_path / "one.jpg"), textured(0))
    with pytest.raises(InputError, match="one.jpg: a single image"):
        open_input(tmp_path / "one.jpg")


def test_camera_that_does_not_exist():
    with pytest.raises(InputError, match="camera 97: cannot be opened"):
        open_input("97")


# --- result files -----------------------------------------------------------------------------------------


def test_results_round_trip_without_temp_files(tmp_path):
    boxes = np.array([[1.5, 2.25, 30.0, 40.125], [np.nan] * 4, [1e-6, 1234.5678901, 7, 8]])
    write_boxes(tmp_path / "r.txt", boxes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.txt"]
    lines = (tmp_path / "r.txt").read_text().splitlines()
    assert lines[0] == "1.500000,2.250000,30.000000,40.125000" and lines[1] == "nan,nan,nan,nan"
    np.testing.assert_allclose(read_boxes(tmp_path / "r.txt"), boxes, atol=5e-7)
    (tmp_path / "tabs.txt").write_text("1\t2\t3\t4\n5 6 7 8\r\n\n")
    np.testing.assert_array_equal(read_boxes(tmp_path / "tabs.txt"), [[1, 2, 3, 4], [5, 6, 7, 8]])


def test_interrupted_write_keeps_the_old_file(tmp_path):
    write_boxes(tmp_path / "r.txt", [[1, 2, 3, 4]])
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "r.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.txt"]
    np.testing.assert_array_equal(read_boxes(tmp_path / "r.txt"), [[1, 2, 3, 4]])
    with pytest.raises(OutputError, match="expected \\[T, 4\\] boxes"):
        write_boxes(tmp_path / "r.txt", [1, 2, 3, 4])
    with pytest.raises(OutputError, match="does not exist"):
        write_boxes(tmp_path / "no" / "r.txt", [[1, 2, 3, 4]])


def test_read_boxes_bad_line(tmp_path):
    (tmp_path / "r.txt").write_text("1,2,3,4\n\n5,6,7,8\n")
    with pytest.raises(ValueError, match=r"r\.txt:2: expected 4 numbers, got ''"):
        read_boxes(tmp_path / "r.txt")
