"""OpenCV reference trackers through ``eval baseline``: MIL (built in) and NanoTrack (the user's ONNX)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from siamrn_jax.cli.eval import main
from siamrn_jax.eval.baselines import nanotrack_files
from siamrn_jax.geometry.iou import iou
from siamrn_jax.io.results import read_boxes
from siamrn_jax.io.sources import InputError, open_input
from tests.conftest import NANOTRACK, SHARED, needs_nanotrack

NANO = NANOTRACK


def _short_sequence(tmp_path: Path, name: str, n: int) -> Path:
    """The first ``n`` frames of a shared sequence, as its own sequence folder."""
    src, dst = SHARED / "data" / "sequences" / name, tmp_path / "seqs" / name
    if not src.is_dir():
        pytest.fail(f"{src}: shared test data not found")
    (dst / "img").mkdir(parents=True)
    for p in sorted((src / "img").iterdir())[:n]:
        shutil.copy(p, dst / "img" / p.name)
    lines = (src / "groundtruth_rect.txt").read_text().splitlines()[:n]
    (dst / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    return dst


def _baseline_args(tmp_path: Path) -> list[str]:
    """``eval baseline`` on the sequence folders under ``tmp_path/seqs``, results in ``tmp_path/r``."""
    return [
        "baseline",
        "--benchmark",
        "folder",
        "--root",
        str(tmp_path / "seqs"),
        "--results",
        str(tmp_path / "r"),
    ]


@needs_nanotrack
def test_nanotrack_baseline_tracks_a_real_sequence(tmp_path):
    seq = _short_sequence(tmp_path, "Crossing", 30)
    args = _baseline_args(tmp_path)
    assert main([*args, "--tracker", "nanotrack", "--onnx", str(NANO / "v2")]) == 0
    boxes = read_boxes(tmp_path / "r" / "OpenCV-NanoTrack" / "Crossing.txt")
    gt = open_input(seq).groundtruth
    assert boxes.shape == (30, 4)
    assert float(np.mean(iou(boxes, gt))) > 0.6  # a real tracker on an easy sequence (MIL: ~0.5 here)


def test_nanotrack_onnx_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "seqs").mkdir()
    args = _baseline_args(tmp_path)
    assert main([*args, "--tracker", "nanotrack"]) == 2
    assert "needs --onnx DIR" in capsys.readouterr().err
    assert main([*args, "--tracker", "nanotrack", "--onnx", str(tmp_path / "v9")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "v9_backbone.onnx: no such NanoTrack ONNX file" in err
    (tmp_path / "bad_backbone.onnx").write_bytes(b"not onnx")
    (tmp_path / "bad_head.onnx").write_bytes(b"not onnx")
    assert main([*args, "--tracker", "nanotrack", "--onnx", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "cannot load the NanoTrack ONNX pair" in err and err.count("\n") == 1


def test_onnx_folder_must_hold_one_pair(tmp_path):
    for name in ("v2_backbone.onnx", "v2_head.onnx", "v3_backbone.onnx", "v3_head.onnx"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(InputError, match="expected one \\*backbone\\*.onnx .* pass a prefix"):
        nanotrack_files(tmp_path)
    assert nanotrack_files(tmp_path / "v3") == (tmp_path / "v3_backbone.onnx", tmp_path / "v3_head.onnx")
