"""Every bad input named by issue 12 ends in one ``error: ...`` line naming the file (or value) and the
problem, exit status 2, no traceback, and nothing half-written; or, where the issue allows it, a warning
naming the file (a video that ends early). One parametrised case per input, across the commands."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from siamrn_jax import atomic
from siamrn_jax.cli import track as cli
from siamrn_jax.cli.bench import main as bench_main
from siamrn_jax.cli.convert import main as convert_main
from siamrn_jax.cli.eval import main as eval_main
from siamrn_jax.cli.train import main as train_main
from siamrn_jax.io import sources
from tests.tracking.test_cli import otb_sequence

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "siamrn_jax" / "assets" / "demo_resnet"
SMOKE = ["--random-weights", "configs/siamrn_r50.py:smoke"]


def _video(path: Path, n: int = 12) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(n):
        w.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    w.release()
    return path


def _demo_copy(tmp: Path) -> Path:
    d = tmp / "ckpt"
    shutil.copytree(DEMO, d)
    return d


def _edit_model_json(tmp: Path, edit) -> Path:
    d = _demo_copy(tmp)
    meta = json.loads((d / "model.json").read_text())
    edit(meta["model"])
    (d / "model.json").write_text(json.dumps(meta))
    return d


def _model_json(tmp: Path, content: bytes) -> Path:
    d = _demo_copy(tmp)
    (d / "model.json").write_bytes(content)
    return d


def _truncated_tensors(tmp: Path) -> Path:
    d = _demo_copy(tmp)
    biggest = max((p for p in (d / "variables").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[:1000])
    return d


SYNTAX_ERROR = "def get_config(:\n"
NO_GET_CONFIG = "X = 1\n"


def _config(tmp: Path, text: str) -> Path:
    p = tmp / "bad_config.py"
    p.write_text(text)
    return p


def _track(tmp, *extra):
    seq = tmp / "seq"
    if not seq.exists():
        otb_sequence(seq, 3, seed=0)
    return cli.main([str(a) for a in ("--input", seq, *extra)])


def _own_process(tmp, *extra):
    """``python -m siamrn_jax.track`` in a subprocess; its stderr is replayed for the assertions."""
    seq = tmp / "seq"
    if not seq.exists():
        otb_sequence(seq, 3, seed=0)
    argv = [sys.executable, "-m", "siamrn_jax.track", "--input", str(seq), *map(str, extra)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    sys.stderr.write(r.stderr)
    return r.returncode


# (id, run(tmp_path) -> exit status, expected fragment of the error line)
CASES = [
    ("init-box-under-1px", lambda t: _track(t, "--init", "10,10,0.5,20", *SMOKE), "at least 1 px"),
    ("init-box-nan", lambda t: _track(t, "--init", "10,10,nan,20", *SMOKE), "expected 4 numbers"),
    ("init-box-outside", lambda t: _track(t, "--init", "900,10,20,20", *SMOKE), "lies outside"),
    ("missing-input", lambda t: cli.main(["--input", str(t / "nope.mp4")]), "nope.mp4"),
    ("corrupt-video", lambda t: cli.main(["--input", str(_garbage(t / "v.mp4"))]), "v.mp4"),
    (
        "model-json-unknown-field",
        lambda t: _track(t, "--checkpoint", _edit_model_json(t, lambda m: m.update(wings=2))),
        "unknown ['wings']",
    ),
    (
        "model-json-missing-field",
        lambda t: _track(t, "--checkpoint", _edit_model_json(t, lambda m: m.pop("stride"))),
        "missing ['stride']",
    ),
    # In a process of its own: orbax's failed asynchronous reads leave asyncio tasks behind in this one.
    (
        "truncated-tensors",
        lambda t: _own_process(t, "--checkpoint", _truncated_tensors(t)),
        "corrupt or truncated",
    ),
    ("not-a-checkpoint", lambda t: _track(t, "--checkpoint", t), "no model.json"),
    (
        "model-json-not-utf8",
        lambda t: _track(t, "--checkpoint", _model_json(t, b"\xff\xfe garbage")),
        "corrupt JSON",
    ),
    (
        "model-json-not-an-object",
        lambda t: _track(t, "--checkpoint", _model_json(t, b"[1, 2]")),
        "unknown format",
    ),
    (
        "config-syntax-error",
        lambda t: _track(t, "--random-weights", f"{_config(t, SYNTAX_ERROR)}:smoke"),
        "syntax error",
    ),
    (
        "config-without-get_config",
        lambda t: _track(t, "--random-weights", f"{_config(t, NO_GET_CONFIG)}:smoke"),
        "defines no get_config()",
    ),
    (
        "train-config-syntax-error",
        lambda t: train_main(["train.py", f"--config={_config(t, SYNTAX_ERROR)}", f"--workdir={t}/w"]),
        "syntax error",
    ),
    (
        "train-config-without-get_config",
        lambda t: train_main(["train.py", f"--config={_config(t, NO_GET_CONFIG)}", f"--workdir={t}/w"]),
        "defines no get_config()",
    ),
    ("convert-missing-source", lambda t: convert_main([str(t / "nope.pth"), str(t / "out")]), "nope.pth"),
    ("convert-not-a-pth", lambda t: convert_main([str(_garbage(t / "x.pth")), str(t / "out")]), "x.pth"),
    (
        "eval-unknown-benchmark",
        lambda t: eval_main(
            ["report", "--benchmark", "nope", "--root", str(t), "--results", str(t), "--trackers", "a"]
        ),
        "unknown benchmark 'nope'",
    ),
    (
        "bench-missing-sequence",
        lambda t: bench_main(["track", "--config", "smoke", "--sequence", str(t / "x")]),
        "x",
    ),
    ("synthetic-eval-not-a-checkpoint", lambda t: _synthetic(["--checkpoint", str(t)]), "no model.json"),
    (
        "synthetic-eval-bad-include",
        lambda t: _synthetic(["--include", str(_garbage(t / "r.json"))]),
        "r.json",
    ),
    (
        "synthetic-eval-missing-include",
        lambda t: _synthetic(["--include", str(t / "nope.json")]),
        "nope.json",
    ),
    ("trax-server-not-a-checkpoint", lambda t: _trax(["--checkpoint", str(t)]), "no model.json"),
    (
        "train-export-not-a-workdir",
        lambda t: _train_export([str(t), str(t / "out")]),
        "not a training workdir",
    ),
    ("memory-bad-config", lambda t: _memory(["--config", str(t / "nope.py"), "--sizes", "1"]), "nope.py"),
]


def _synthetic(argv):
    from siamrn_jax.cli.eval_synthetic import main

    return main(["--num", "1", *argv])


def _trax(argv):
    from siamrn_jax.cli.trax_server import main  # the checkpoint is read before vot-trax is imported

    return main(argv)


def _train_export(argv):
    from siamrn_jax.cli.train_export import main

    return main(argv)


def _memory(argv):
    from siamrn_jax.cli.bench_memory import main

    return main(argv)


def _garbage(path: Path) -> Path:
    path.write_bytes(b"this is not what the name says" * 10)
    return path


@pytest.mark.parametrize("run, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_line_error(tmp_path, capsys, run, fragment):
    code = run(tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err and err[-1].startswith("error: ") and fragment in err[-1], err
    assert "Traceback" not in "\n".join(err)


# --- the OS failing under every command: disk full, permission denied, read-only -------------------------

OS_FAILURES = [
    (errno.ENOSPC, "No space left on device"),
    (errno.EACCES, "Permission denied"),
    (errno.EROFS, "Read-only file system"),
]


def _failing_writes(monkeypatch, code, text):
    """Every output of the package is published by ``atomic._replace``: make the OS refuse it there."""

    def replace(src, dst):
        raise OSError(code, text, str(dst))

    monkeypatch.setattr(atomic, "_replace", replace)


def _seqs(t: Path) -> Path:
    otb_sequence(t / "seqs" / "A", 3, seed=1)
    return t / "seqs"


TRAIN = ["train.py", "--config=smoke", "--config.train.epochs=1", "--config.train.steps_per_epoch=1"]
DISK_FULL, PERMISSION, READ_ONLY = OS_FAILURES
# Every command meets the OS refusing its writes; track meets every kind of refusal.
OS_CASES = [
    (
        "track-result-disk-full",
        lambda t: _track(t, "--output", t / "r.txt", *SMOKE, "--max-frames", "2"),
        DISK_FULL,
    ),
    (
        "track-result-permission",
        lambda t: _track(t, "--output", t / "r.txt", *SMOKE, "--max-frames", "2"),
        PERMISSION,
    ),
    (
        "track-result-read-only",
        lambda t: _track(t, "--output", t / "r.txt", *SMOKE, "--max-frames", "2"),
        READ_ONLY,
    ),
    (
        "track-contact-sheet",
        lambda t: _track(t, "--contact-sheet", t / "s.png", *SMOKE, "--max-frames", "2"),
        DISK_FULL,
    ),
    (
        "eval-baseline",
        lambda t: eval_main(
            ["baseline", "--benchmark", "folder", "--root", str(_seqs(t)), "--results", str(t / "res")]
        ),
        READ_ONLY,
    ),
    ("convert-to-pth", lambda t: convert_main([str(DEMO), str(t / "out.pth")]), PERMISSION),
    (
        "convert-to-checkpoint",
        lambda t: convert_main(["--config", "smoke", str(DEMO), str(t / "ck")]),
        DISK_FULL,
    ),
    ("bench", lambda t: bench_main(["track", "--config", "smoke", "--sequence", str(t / "nope")]), None),
]


def test_train_disk_full_is_one_line(tmp_path):
    """train.py runs under absl (global flags, its own stderr handler): in a process of its own."""
    code = f"""
import errno, sys
from siamrn_jax import atomic
def refuse(src, dst):
    raise OSError(errno.ENOSPC, "No space left on device", str(dst))
atomic._replace = refuse
from siamrn_jax.cli.commands import train
sys.argv = {[*TRAIN, f"--workdir={tmp_path}/w", "--progress=false"]!r}
sys.exit(train())
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr[-2000:]
    assert err[-1].startswith(f"error: {tmp_path}/w/") and err[-1].endswith("No space left on device"), err
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("run, failure", [c[1:] for c in OS_CASES], ids=[c[0] for c in OS_CASES])
def test_os_errors_are_one_line(tmp_path, capsys, monkeypatch, run, failure):
    if failure is None:  # bench writes nothing: its OSError is the missing input
        status = run(tmp_path)
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and err[-1].startswith(f"error: {tmp_path / 'nope'}"), err
        return
    code, text = failure
    _failing_writes(monkeypatch, code, text)
    status = run(tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, err
    assert err[-1].startswith("error: ") and text in err[-1] and "Traceback" not in "\n".join(err), err
    assert str(tmp_path) in err[-1]  # names where it happened
    leftovers = [p.name for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert not leftovers, leftovers  # no temporary file left behind


# --- numbers the parsers reject ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "main, argv, fragment",
    [
        (cli.main, ["--input", "x", "--max-frames", "-3"], "must be at least 1"),
        (cli.main, ["--input", "x", "--max-frames", "0"], "must be at least 1"),
        (cli.main, ["--input", "x", "--seed", "-1"], "must be at least 0"),
        (
            eval_main,
            ["run", "--benchmark", "folder", "--root", "x", "--results", "y", *SMOKE, "--batch", "0"],
            "must be at least 1",
        ),
        (bench_main, ["track", "--runs", "0"], "must be at least 1"),
        (bench_main, ["track", "--batch", "two"], "expected an integer"),
        (_memory, ["--sizes", "1,x"], "expected an integer"),
        (bench_main, ["track", "--preset", "nosuch"], "neither a preset"),
    ],
    ids=[
        "max-frames-negative",
        "max-frames-zero",
        "seed-negative",
        "eval-batch-0",
        "bench-runs-0",
        "bench-batch-text",
        "memory-sizes-text",
        "bench-preset-unknown",
    ],
)
def test_invalid_numbers_rejected_by_the_parser(capsys, main, argv, fragment):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and fragment in capsys.readouterr().err


# --- streams that end early or give nothing -----------------------------------------------------------------


def test_video_that_ends_early_is_a_warning_naming_the_file(tmp_path, caplog):
    path = _video(tmp_path / "v.avi", 12)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])  # cut mid-stream: the header still says 12 frames
    src = sources.open_input(path)
    with caplog.at_level("WARNING"):
        frames = list(src)
    assert 0 < len(frames) < 12
    (msg,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert str(path) in msg and f"after {len(frames)} of 12 frames" in msg


def test_camera_that_opens_but_gives_no_frames(monkeypatch, capsys):
    class DeadCamera:
        def __init__(self, *a):
            pass

        def isOpened(self):
            return True

        def read(self):
            return False, None

        def release(self):
            pass

    monkeypatch.setattr(sources.cv2, "VideoCapture", DeadCamera)
    code = cli.main(["--input", "0", "--init", "1,1,5,5", *SMOKE])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1] == "error: camera0: the camera opened but gave no frames", err
