"""track.py with several targets in one input (several --init, --targets FILE): outputs, errors, drops."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from siamrn_jax.io.results import read_boxes
from siamrn_jax.tracking import multi
from tests.tracking.test_cli import ROOT, assert_one_error, run_cli

A, B = "8,10,30,24", "90,60,36,30"


def two_objects(folder, n: int = 6) -> list[np.ndarray]:
    """An OTB-layout folder of n 160x120 frames with two textured objects moving apart; returns their
    0-based boxes in frame 0."""
    rs = np.random.RandomState(0)
    bg = rs.randint(0, 255, (120, 160, 3))
    tex = [np.kron(rs.randint(0, 255, (6, 8, 3)), np.ones((4, 4, 1))) for _ in range(2)]
    (folder / "img").mkdir(parents=True)
    for t in range(n):
        f = bg.copy()
        f[10 + t : 34 + t, 8 + 2 * t : 40 + 2 * t] = tex[0]
        f[60 - t : 84 - t, 90 + t : 122 + t] = tex[1]
        cv2.imwrite(str(folder / "img" / f"{t + 1:04d}.png"), f.astype(np.uint8))
    return [np.array([8, 10, 32, 24.0]), np.array([90, 60, 32, 24.0])]


def test_several_inits_one_file_per_target(tmp_path, capsys):
    two_objects(tmp_path / "s")
    out, sc, sheet = tmp_path / "out", tmp_path / "sc", tmp_path / "sheet.png"
    code, stdout, stderr = run_cli(
        capsys, "--input", tmp_path / "s", "--init", A, "--init", B, "--output", out, "--scores", sc,
        "--video", tmp_path / "v.gif", "--contact-sheet", sheet,
    )  # fmt: skip
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in sc.iterdir()) == ["0.txt", "1.txt"]
    for name, box in (("0", A), ("1", B)):
        boxes = read_boxes(out / f"{name}.txt")
        assert boxes.shape == (6, 4)
        np.testing.assert_array_equal(boxes[0], [float(v) for v in box.split(",")])
        scores = np.loadtxt(sc / f"{name}.txt")
        assert np.isnan(scores[0]) and np.all((scores[1:] > 0) & (scores[1:] <= 1))
    assert stdout[0].startswith("0: frames 0-5 (0-based), 5 tracked") and stdout[1].startswith(
        "1: frames 0-5"
    )
    assert stdout[2].startswith("2 targets in s: 6 frames, 10 target-frames tracked,")
    assert "target-frames/s" in stdout[2]
    assert (tmp_path / "v.gif").stat().st_size > 0 and cv2.imread(str(sheet)) is not None


def test_targets_file_late_start_and_names(tmp_path, capsys):
    two_objects(tmp_path / "s")
    targets = tmp_path / "targets.txt"
    targets.write_text(f"# frame,x,y,w,h,name\n0,{A},first\n\n3, 93,57,36,30 , late\n")
    code, stdout, stderr = run_cli(
        capsys, "--input", tmp_path / "s", "--targets", targets, "--output", tmp_path / "out"
    )
    assert code == 0, stderr
    late = read_boxes(tmp_path / "out" / "late.txt")
    assert late.shape == (6, 4) and np.all(np.isnan(late[:3]))
    np.testing.assert_array_equal(late[3], [93, 57, 36, 30])
    assert np.all(np.isfinite(late[4:])) and np.all(np.isfinite(read_boxes(tmp_path / "out" / "first.txt")))
    assert stdout[1].startswith("late: frames 3-5 (0-based), 2 tracked")


BAD_TARGET_FILES = [
    ("0,1,2,3\n", ("t.txt:1: expected frame,x,y,w,h[,name]",)),
    ("# c\n0,8,10,30,24\nx,8,10,30,24\n", ("t.txt:3: expected frame,x,y,w,h[,name]",)),
    ("0,8,10,30,24,a/b\n", ("t.txt:1: target name 'a/b'",)),
    (
        "0,8,10,30,24,a\n1,8,10,30,24,a\n",
        ("t.txt:2: target name 'a' is also the one of line 1 (result files)",),
    ),
    ("0,8,10,30,24\n0,8,10,30,24,0\n", ("t.txt:2: target name '0' is also the one of line 1",)),
    (
        "0,8,10,30,24\n0,500,10,30,24\n",
        (
            "t.txt:2: box",
            "outside the 160x120 frame",
        ),
    ),
    (
        "0,8,10,0.5,24\n",
        (
            "t.txt:1: box",
            "at least 1 px",
        ),
    ),
    ("9,8,10,30,24\n", ("t.txt:1: starts at frame 9, but s has 6 frames (0-5)",)),
    ("# nothing\n", ("t.txt: no targets",)),
]


@pytest.mark.parametrize("text, fragments", BAD_TARGET_FILES)
def test_bad_targets_file_is_one_line(tmp_path, capsys, text, fragments):
    two_objects(tmp_path / "s", 6)
    (tmp_path / "t.txt").write_text(text)
    code, _, stderr = run_cli(capsys, "--input", tmp_path / "s", "--targets", tmp_path / "t.txt")
    assert_one_error(code, stderr, *fragments)


def test_mode_combinations(tmp_path, capsys):
    two_objects(tmp_path / "s", 2)
    s, t = tmp_path / "s", tmp_path / "t.txt"
    t.write_text(f"0,{A}\n")
    ambiguous = ["--input", s, "--input", s, "--init", A, "--init", B, "--init", A]
    for argv, fragments in [
        (ambiguous, ["3 --init boxes for 2 inputs", "ambiguous"]),
        (["--batch", s, s, "--targets", t], ["--targets", "several targets are tracked in one input, not 2"]),
        (["--input", s, "--targets", t, "--init", A], ["give the targets in one of them"]),
        (["--input", s, "--init", A, "--init", "1000,2,30,30"], ["--init 2: box", "outside the 160x120"]),
        (["--input", s, "--init", A, "--init", B, "--output", t], ["is a file"]),
    ]:
        code, _, stderr = run_cli(capsys, *argv)
        assert_one_error(code, stderr, *fragments)


def test_help_says_how_the_modes_differ(capsys):
    with pytest.raises(SystemExit):
        run_cli(capsys, "--help")
    text = capsys.readouterr().out
    assert "one input, several targets" in text and "several inputs (--batch" in text
    assert "--targets FILE" in text


class _Poisoned(multi.MultiTracker):
    """Makes the state of the target named 'bad' non-finite after its second step."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        step, self.calls = self._step, 0

        def poisoned(v, state, x):
            state, out = step(v, state, x)
            self.calls += 1
            bad = [i for i, n in self.names.items() if n == "bad"]
            if self.calls == 2 and bad:
                state = state._replace(center=state.center.at[self.row(bad[0])].set(np.nan))
            return state, out

        self._step = poisoned


def test_non_finite_target_is_dropped_with_a_warning(tmp_path, capsys, monkeypatch):
    two_objects(tmp_path / "s")
    monkeypatch.setattr(multi, "MultiTracker", _Poisoned)
    (tmp_path / "t.txt").write_text(f"0,{A},good\n0,{B},bad\n")
    code, stdout, stderr = run_cli(
        capsys, "--input", tmp_path / "s", "--targets", tmp_path / "t.txt", "--output", tmp_path / "out"
    )
    assert code == 0, stderr
    assert len(stderr) == 1 and stderr[0].startswith("warning: s: target 'bad' (id 1): tracker state became")
    assert "dropped, the other targets go on" in stderr[0]
    bad, good = read_boxes(tmp_path / "out" / "bad.txt"), read_boxes(tmp_path / "out" / "good.txt")
    assert np.all(np.isfinite(bad[:2])) and np.all(np.isnan(bad[2:])) and np.all(np.isfinite(good))
    assert "dropped at frame 2" in stdout[1]


@pytest.mark.slow
def test_targets_split_over_two_devices_equal_one_device(tmp_path, capsys):
    """--devices 2 in a 2-fake-device process: 3 targets in 4 rows, 2 per device; each target's boxes equal
    the 1-device run's to 1e-3 px."""
    from tests.processes import device_env

    two_objects(tmp_path / "s")
    argv = ["--input", str(tmp_path / "s"), "--init", A, "--init", B, "--init", "60,40,30,30"]
    code, _, stderr = run_cli(capsys, *argv, "--output", tmp_path / "one")
    assert code == 0, stderr
    p = subprocess.run(
        [sys.executable, str(ROOT / "track.py"), *argv, "--devices", "2", "--output", str(tmp_path / "two")],
        cwd=ROOT, env=device_env(2), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "3 targets in s over 2 devices" in p.stdout
    for x in "012":
        one, two = read_boxes(tmp_path / "one" / f"{x}.txt"), read_boxes(tmp_path / "two" / f"{x}.txt")
        assert one.shape == two.shape == (6, 4)
        np.testing.assert_allclose(two, one, atol=1e-3, rtol=0, err_msg=x)
