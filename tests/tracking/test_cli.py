"""track.py end to end (smoke model with untrained weights), its error paths, and the visual outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from siamrn_jax.cli import track as cli
from siamrn_jax.geometry.boxes import pysot_init_box
from siamrn_jax.io.results import read_boxes
from siamrn_jax.tracking.runner import SequenceResult
from siamrn_jax.tracking.visualize import GREEN, Annotated, VideoWriter, contact_sheet, draw, sheet_indices

ROOT = Path(__file__).resolve().parents[2]
CROSSING = ROOT.parent / "shared" / "data" / "sequences" / "Crossing"
SMOKE = ["--random-weights", "configs/siamrn_r50.py:smoke"]


def run_cli(capsys, *argv) -> tuple[int, list[str], list[str]]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def otb_sequence(folder: Path, n: int, seed: int) -> np.ndarray:
    """A textured 24x32 target moving over noise, OTB layout; returns the ground truth as written (1-based
    numbers, which readers keep as read)."""
    rs = np.random.RandomState(seed)
    bg = rs.randint(0, 255, (120, 160, 3))
    tex = np.kron(rs.randint(0, 255, (6, 8, 3)), np.ones((4, 4, 1)))
    (folder / "img").mkdir(parents=True)
    boxes = []
    for t in range(n):
        f = bg.copy()
        x, y = 40 + 3 * t, 30 + 2 * t
        f[y : y + 24, x : x + 32] = tex
        cv2.imwrite(str(folder / "img" / f"{t + 1:04d}.png"), f.astype(np.uint8))
        boxes.append([x + 1, y + 1, 32, 24])
    (folder / "groundtruth_rect.txt").write_text("".join(",".join(map(str, b)) + "\n" for b in boxes))
    return np.array(boxes, np.float64)


# --- end to end -------------------------------------------------------------------------------------------


def test_crossing_first_5_frames(tmp_path, capsys):
    if not CROSSING.is_dir():
        pytest.fail(f"{CROSSING}: shared test data not found")
    out, scores, gif, sheet = (tmp_path / n for n in ("r.txt", "s.txt", "v.gif", "sheet.png"))
    code, stdout, stderr = run_cli(
        capsys, *SMOKE, "--input", CROSSING, "--max-frames", 5, "--output", out, "--scores", scores,
        "--video", gif, "--contact-sheet", sheet,
    )  # fmt: skip
    assert code == 0, stderr
    assert any("UNTRAINED" in line for line in stderr)
    boxes = read_boxes(out)
    assert boxes.shape == (5, 4) and np.isfinite(boxes).all()
    # pysot's init box from groundtruth_rect.txt's 205,151,17,50: (x + 0.5, y + 0.5, w, h).
    np.testing.assert_array_equal(boxes[0], [205.5, 151.5, 17, 50])
    s = scores.read_text().splitlines()
    assert len(s) == 5 and s[0] == "nan" and all(0 <= float(v) <= 1 for v in s[1:])
    ok, anim = cv2.imreadanimation(str(gif))
    assert ok and len(anim.frames) == 5 and anim.frames[0].shape[:2] == (240, 360)
    assert cv2.imread(str(sheet)).shape == (2 * 213, 4 * 320, 3)  # 5 frames in 4 columns; 240 * 320 / 360
    assert len(stdout) == 1 and stdout[0].startswith("Crossing: 5 frames,")
    assert "success AUC" in stdout[0] and "(OPE, pysot rules, 5 frames)" in stdout[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.txt", "s.txt", "sheet.png", "v.gif"]


def test_dtype_bfloat16_on_the_demo_model(tmp_path, capsys, monkeypatch):
    """--dtype overrides the checkpoint's model.json dtype (the demo's is float32); boxes stay float32 and
    near the float32 run's on real frames."""
    if not CROSSING.is_dir():
        pytest.fail(f"{CROSSING}: shared test data not found")
    loaded = []
    real_load = cli.checkpoint.load
    monkeypatch.setattr(
        cli.checkpoint, "load", lambda d, dtype=None: loaded.append(dtype) or real_load(d, dtype)
    )
    boxes = {}
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / f"{dtype}.txt"
        code, stdout, stderr = run_cli(
            capsys, "--input", CROSSING, "--max-frames", 5, "--output", out, "--dtype", dtype
        )
        assert code == 0, stderr
        assert stdout[0].startswith("Crossing: 5 frames,")
        boxes[dtype] = read_boxes(out)
    assert loaded == ["float32", "bfloat16"]
    assert boxes["bfloat16"].shape == (5, 4) and np.isfinite(boxes["bfloat16"]).all()
    # Measured on these frames: at most 0.34 px apart; bf16 must not have lost the target after 4 frames.
    np.testing.assert_allclose(boxes["bfloat16"], boxes["float32"], atol=2.0)
    with pytest.raises(SystemExit) as e:  # argparse's usage error
        cli.main(["--input", str(CROSSING), "--dtype", "float16"])
    assert e.value.code == 2 and "invalid choice: 'float16'" in capsys.readouterr().err


def test_batch_of_two_sequences_of_different_lengths(tmp_path, capsys):
    gt_a = otb_sequence(tmp_path / "a", 4, seed=0)
    gt_b = otb_sequence(tmp_path / "b", 6, seed=1)
    code, stdout, stderr = run_cli(
        capsys, *SMOKE, "--batch", tmp_path / "a", tmp_path / "b", "--output", tmp_path / "res"
    )
    assert code == 0, stderr
    a, b = read_boxes(tmp_path / "res" / "a.txt"), read_boxes(tmp_path / "res" / "b.txt")
    assert a.shape == (4, 4) and b.shape == (6, 4)
    np.testing.assert_array_equal(a[0], pysot_init_box(gt_a[0]))
    np.testing.assert_array_equal(b[0], pysot_init_box(gt_b[0]))
    assert [line.split(":")[0] for line in stdout] == ["a", "b", "batch of 2"]
    assert "10 frames" in stdout[2]


def test_batch_split_over_two_devices_equals_one_device(tmp_path, capsys):
    """--devices 2 in a 2-fake-device process: 3 inputs padded to 4 rows, 2 per device; the boxes equal the
    1-device run's to 1e-3 px (XLA:CPU started with several host devices rounds differently, not the
    split: tests/eval/test_sharded_eval.py), and the padding row leaves no file."""
    from tests.processes import device_env

    for name, n, seed in (("a", 4, 0), ("b", 6, 1), ("c", 5, 2)):
        otb_sequence(tmp_path / name, n, seed=seed)
    inputs = [tmp_path / x for x in "abc"]
    code, _, stderr = run_cli(capsys, *SMOKE, "--batch", *inputs, "--output", tmp_path / "one")
    assert code == 0, stderr
    argv = [*SMOKE, "--batch", *map(str, inputs), "--devices", "2", "--output", str(tmp_path / "two")]
    p = subprocess.run(
        [sys.executable, str(ROOT / "track.py"), *argv],
        cwd=ROOT, env=device_env(2), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "batch of 3 over 2 devices" in p.stdout
    assert sorted(f.name for f in (tmp_path / "two").iterdir()) == ["a.txt", "b.txt", "c.txt"]
    for x in "abc":
        one, two = read_boxes(tmp_path / "one" / f"{x}.txt"), read_boxes(tmp_path / "two" / f"{x}.txt")
        assert one.shape == two.shape
        np.testing.assert_allclose(two, one, atol=1e-3, rtol=0, err_msg=x)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--devices", "2"], "error: --devices 2: one input tracks on one device; give several inputs"),
        (["--devices", "9", "--batch"], "error: --devices 9: this process has 1 device(s)"),
    ],
)
def test_devices_errors(tmp_path, capsys, extra, message):
    otb_sequence(tmp_path / "a", 2, seed=0)
    inputs = [tmp_path / "a", tmp_path / "a"] if extra[-1] == "--batch" else ["--input", tmp_path / "a"]
    code, _, stderr = run_cli(capsys, *SMOKE, *extra, *inputs)
    assert code == 2 and stderr == [message]


def test_repeated_input_with_init_boxes(tmp_path, capsys):
    otb_sequence(tmp_path / "a", 3, seed=0)
    otb_sequence(tmp_path / "b", 2, seed=1)
    argv = [*SMOKE, "--input", tmp_path / "a", "--input", tmp_path / "b", "--output", tmp_path / "res"]
    code, _, stderr = run_cli(capsys, *argv, "--init", "10,10,30,20", "--init", "5,6,30,20")
    assert code == 0, stderr
    np.testing.assert_array_equal(read_boxes(tmp_path / "res" / "b.txt")[0], [5, 6, 30, 20])
    code, _, stderr = run_cli(capsys, *argv, "--init", "10,10,30,20")
    assert code == 2 and stderr == ["error: 1 --init boxes for 2 inputs: give one per input or none"]


def test_success_and_precision_summary():
    """The summary scores the sequence as ``eval report`` does (OPE, pysot rules): every frame counts."""
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4, [100, 100, 10, 10]], np.float64)
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 10, 10], [0, 0, 10, 10]], np.float64)
    line = cli._summary("s", SequenceResult(pred, np.zeros(4), np.full(4, 0.01)), gt)
    # Frames 0 and 1 exact (IoU 1 exceeds every threshold but 1.0), frame 2 without ground truth (a miss
    # for success, a hit for precision), frame 3 lost.
    auc, prec = 2 * 20 / 21 / 4, 3 / 4
    assert line.endswith(f"success AUC {auc:.3f}, precision@20px {prec:.3f} (OPE, pysot rules, 4 frames)")


# --- error paths: one line on stderr, exit status 2 --------------------------------------------------------


def assert_one_error(code: int, stderr: list[str], *fragments: str) -> None:
    assert code == 2
    assert len(stderr) == 1 and stderr[0].startswith("error: "), stderr
    for f in fragments:
        assert f in stderr[0]


def test_missing_input(tmp_path, capsys):
    assert_one_error(
        *run_cli(capsys, *SMOKE, "--input", tmp_path / "nope")[::2], "nope: no such file or folder"
    )


def test_no_input_runs_the_demo_scene(tmp_path, capsys, monkeypatch):
    """No input: the held-out synthetic scene is written and tracked, outputs under outputs/demo."""
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run_cli(capsys, *SMOKE, "--max-frames", 4)
    assert code == 0, stderr
    assert stdout[0].startswith("demo: a held-out synthetic scene (generator seed 10000")
    assert "success AUC" in stdout[1] and "FPS" in stdout[1]
    demo = tmp_path / "outputs" / "demo"
    assert len(list((demo / "scene" / "img").glob("*.jpg"))) == 120
    assert read_boxes(demo / "boxes.txt").shape == (4, 4)
    assert (demo / "demo.mp4").stat().st_size > 0 and cv2.imread(str(demo / "demo.png")) is not None


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "1,2,3,nan"])
def test_bad_init(capsys, text):
    code, _, stderr = run_cli(capsys, *SMOKE, "--input", CROSSING, "--init", text)
    assert_one_error(code, stderr, f"--init {text!r}: expected 4 numbers x,y,w,h")


def test_init_box_outside_the_frame(capsys):
    code, _, stderr = run_cli(capsys, *SMOKE, "--input", CROSSING, "--init", "400,10,20,20")
    assert_one_error(code, stderr, "Crossing: init box", "outside the 360x240 frame")


def test_no_checkpoint(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "DEMO_CHECKPOINT", tmp_path / "assets" / "demo_resnet")
    code, _, stderr = run_cli(capsys, "--input", CROSSING)
    assert_one_error(code, stderr, "no checkpoint", "--checkpoint DIR", "python -m siamrn_jax.convert")
    code, _, stderr = run_cli(capsys, "--checkpoint", tmp_path, "--input", CROSSING)
    assert_one_error(code, stderr, "not a siamrn-jax checkpoint (no model.json)")


def test_no_initial_box(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    otb_sequence(tmp_path / "s", 2, seed=0)
    (tmp_path / "s" / "groundtruth_rect.txt").unlink()
    code, _, stderr = run_cli(capsys, *SMOKE, "--input", tmp_path / "s")
    assert_one_error(code, stderr, "no initial box: pass --init x,y,w,h")


def test_bad_output_arguments(tmp_path, capsys):
    base = [*SMOKE, "--input", CROSSING]
    code, _, stderr = run_cli(capsys, *base, "--video", tmp_path / "v.webm")
    assert_one_error(code, stderr, "unsupported video type '.webm'")
    (tmp_path / "f").write_text("a file")
    code, _, stderr = run_cli(capsys, *base, "--output", tmp_path / "f" / "r.txt")
    assert_one_error(code, stderr, "is a file, not a folder")
    code, _, stderr = run_cli(capsys, *base, "--input", CROSSING, "--video", tmp_path / "v.mp4")
    assert_one_error(code, stderr, "--video and --contact-sheet take one input, not a batch")


def test_corrupt_frame_during_tracking_leaves_no_final_output(tmp_path, capsys):
    otb_sequence(tmp_path / "s", 4, seed=0)
    (tmp_path / "s" / "img" / "0003.png").write_bytes(b"garbage")
    out = tmp_path / "r.txt"
    code, _, stderr = run_cli(
        capsys, *SMOKE, "--input", tmp_path / "s", "--output", out, "--video", tmp_path / "v.mp4"
    )
    assert code == 2 and "Traceback" not in "\n".join(stderr)
    assert stderr[-1].startswith("error: ") and stderr[-1].endswith("0003.png: unreadable or corrupt image")
    # No result file and no video under their names, no temp files; the two finished frames are kept in
    # r.txt.partial (results are written as tracking goes).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.txt.partial", "s"]
    assert len(read_boxes(tmp_path / "r.txt.partial")) == 2


def test_frames_of_different_sizes_during_tracking(tmp_path, capsys):
    otb_sequence(tmp_path / "s", 3, seed=0)
    cv2.imwrite(str(tmp_path / "s" / "img" / "0002.png"), np.zeros((100, 160, 3), np.uint8))
    code, _, stderr = run_cli(capsys, *SMOKE, "--input", tmp_path / "s")
    assert code == 2
    assert stderr[-1].endswith("frames of different sizes: 0002.png is 160x100, first frame 160x120")


def test_track_py_process(tmp_path):
    """The script itself: usage text, and a user error without traceback."""
    r = subprocess.run([sys.executable, "track.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("usage: track.py")
    r = subprocess.run(
        [sys.executable, "track.py", "--input", str(tmp_path / "x")], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 2 and r.stderr.splitlines() == [f"error: {tmp_path / 'x'}: no such file or folder"]


# --- visual outputs -----------------------------------------------------------------------------------------


def frames(n: int, wh=(160, 120)) -> list[np.ndarray]:
    return [np.full((wh[1], wh[0], 3), (10 * t) % 200, np.uint8) for t in range(n)]


def test_draw_returns_an_annotated_copy():
    f = frames(1)[0]
    out = draw(f, [20.4, 30, 50, 40], GREEN, "#1 0.93")
    assert (f == 0).all() and out is not f
    assert tuple(out[50, 20]) == GREEN and tuple(out[30, 45]) == GREEN  # left and top edges
    assert (draw(f, [np.nan] * 4, GREEN, "lost") != 0).any()  # label only


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".gif"])
def test_video_writer(tmp_path, suffix):
    path = tmp_path / f"v{suffix}"
    with VideoWriter(path, fps=10) as video:
        for f in frames(6):
            video.write(draw(f, [20, 30, 50, 40], GREEN))
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    if suffix == ".gif":
        ok, anim = cv2.imreadanimation(str(path))
        assert ok and len(anim.frames) == 6 and anim.frames[0].shape[:2] == (120, 160)
    else:
        cap = cv2.VideoCapture(str(path))
        n = 0
        while cap.read()[0]:
            n += 1
        assert n == 6 and cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 160


def test_video_writer_interrupted_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), VideoWriter(tmp_path / "v.mp4") as video:
        video.write(frames(1)[0])
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


def test_contact_sheet_grid(tmp_path):
    items = [Annotated(t, f, [([20, 30, 50, 40], GREEN, f"#{t + 1}")]) for t, f in enumerate(frames(30))]
    size = contact_sheet(items, tmp_path / "s.png", columns=4, thumb_width=80)
    assert size == (4 * 80, 3 * 60)  # 12 thumbnails, 160x120 -> 80x60
    assert cv2.imread(str(tmp_path / "s.png")).shape == (180, 320, 3)
    assert contact_sheet(items[:3], tmp_path / "t.png", columns=4, thumb_width=80) == (240, 60)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.png", "t.png"]
    assert sheet_indices(120, 12)[0] == 0 and sheet_indices(120, 12)[-1] == 119
    assert len(sheet_indices(120, 12)) == 12 and sheet_indices(5, 12) == [0, 1, 2, 3, 4]


def test_progressive_output_keeps_finished_lines_on_a_crash(tmp_path):
    from siamrn_jax.io.results import progressive_output

    path = tmp_path / "r.txt"
    with pytest.raises(RuntimeError, match="crash"), progressive_output(path) as out:
        out.write_line("1,2,3,4")
        out.write_line("5,6,7,8")
        assert (tmp_path / "r.txt.partial").read_text() == "1,2,3,4\n5,6,7,8\n"  # on disk as it goes
        raise RuntimeError("crash")
    assert not path.exists() and (tmp_path / "r.txt.partial").read_text() == "1,2,3,4\n5,6,7,8\n"
    with progressive_output(path) as out:
        out.write_line("9,9,9,9")
    assert path.read_text() == "9,9,9,9\n" and not (tmp_path / "r.txt.partial").exists()


def test_track_writes_results_as_it_goes(tmp_path, capsys, monkeypatch):
    """A crash at frame 4 leaves frames 0-3 in <output>.partial and no result file."""
    gt = otb_sequence(tmp_path / "seq", 6, seed=5)
    out = tmp_path / "r.txt"
    real = cli.track_sequence

    def crashing(tracker, src, init):
        for item in real(tracker, src, init):
            if item[0] == 4:
                raise OSError(28, "No space left on device")
            yield item

    monkeypatch.setattr(cli, "track_sequence", crashing)
    code, _, err = run_cli(capsys, "--input", tmp_path / "seq", "--output", out, *SMOKE)
    assert code == 2 and "No space left on device" in err[-1]
    assert not out.exists()
    rows = read_boxes(tmp_path / "r.txt.partial")
    assert len(rows) == 4
    np.testing.assert_allclose(rows[0], pysot_init_box(gt[0]), atol=1e-6)
