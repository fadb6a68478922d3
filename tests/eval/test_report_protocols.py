"""``eval report`` on GOT-10k (AO / SR from the toolkit's rules) and OPE on VOT polygon ground truth."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from siamrn_jax.cli.eval import main
from siamrn_jax.eval.registry import load_benchmark
from siamrn_jax.eval.report import evaluate_tracker, ope_groundtruth
from siamrn_jax.geometry.boxes import polygon_to_box
from siamrn_jax.io.results import write_boxes
from tests.eval.test_got10k_metrics import SEQS


def _got10k_tree(root):
    """EVALUATION.md 11.2's two val sequences in the GOT-10k layout (tiny black frames)."""
    import cv2

    split = root / "val"
    for name, (gt, pred, cover, res) in SEQS.items():
        d = split / name
        d.mkdir(parents=True)
        for t in range(len(gt)):
            cv2.imwrite(str(d / f"{t + 1:08d}.jpg"), np.zeros((8, 8, 3), np.uint8))
        np.savetxt(d / "groundtruth.txt", gt, fmt="%g", delimiter=",")
        (d / "cover.label").write_text("".join(f"{c}\n" for c in cover))
        (d / "meta_info.ini").write_text(f"[METAINFO]\nresolution: ({res[0]}, {res[1]})\n")
        write_boxes(root / "results" / "toy" / f"{name}.txt", pred)
    (split / "list.txt").write_text("\n".join(SEQS) + "\n")


def test_got10k_report_gives_the_toolkit_numbers(tmp_path, capsys):
    (tmp_path / "results" / "toy").mkdir(parents=True)
    _got10k_tree(tmp_path)
    args = ["report", "--benchmark", "got10k_val", "--root", str(tmp_path), "--results"]
    code = main([*args, str(tmp_path / "results"), "--trackers", "toy", "--out", str(tmp_path / "rep")])
    assert code == 0, capsys.readouterr().err
    with open(tmp_path / "rep" / "got10k.csv") as f:
        (row,) = list(csv.DictReader(f))
    # EVALUATION.md 11.2: pooled AO / SR0.5 / SR0.75 = 0.751740 / 0.818182 / 0.636364 (toolkit "overall").
    assert (row["AO"], row["SR0.5"], row["SR0.75"]) == ("0.752", "0.818", "0.636")
    assert "| toy | 0.752 | 0.818 | 0.636 |" in (tmp_path / "rep" / "overall.md").read_text()


def test_got10k_test_split_is_refused(tmp_path, capsys):
    import cv2

    d = tmp_path / "test" / "GOT-10k_Test_000001"
    d.mkdir(parents=True)
    for t in range(3):
        cv2.imwrite(str(d / f"{t + 1:08d}.jpg"), np.zeros((8, 8, 3), np.uint8))
    (d / "groundtruth.txt").write_text("1,1,4,4\n")
    (tmp_path / "test" / "list.txt").write_text("GOT-10k_Test_000001\n")
    (tmp_path / "r" / "t").mkdir(parents=True)
    write_boxes(tmp_path / "r" / "t" / "GOT-10k_Test_000001.txt", np.ones((3, 4)))
    args = ["report", "--benchmark", "got10k_test", "--root", str(tmp_path), "--results", str(tmp_path / "r")]
    assert main([*args, "--trackers", "t", "--out", str(tmp_path / "rep")]) == 2
    assert "ground truth withheld" in capsys.readouterr().err


def test_ope_on_polygon_ground_truth_uses_the_axis_aligned_rule(tmp_path):
    import cv2

    seq = tmp_path / "ball"
    (seq / "color").mkdir(parents=True)
    polys = [[10, 10, 50, 10, 50, 40, 10, 40], [98.2, 95.1, 151.7, 104.3, 146.9, 132.0, 93.4, 122.8]]
    for t in range(2):
        cv2.imwrite(str(seq / "color" / f"{t + 1:08d}.jpg"), np.zeros((240, 320, 3), np.uint8))
    (seq / "groundtruth.txt").write_text("".join(",".join(map(str, p)) + "\n" for p in polys))
    (tmp_path / "list.txt").write_text("ball\n")
    (s,) = load_benchmark("vot2018", tmp_path)
    gt = ope_groundtruth(s)
    # EVALUATION.md 11.6: (cx, cy, w, h) = (30, 25, 41, 31) and (122.55, 113.55, 50.103697, 32.079355).
    np.testing.assert_allclose(gt[0], [30 - 20.5, 25 - 15.5, 41, 31])
    np.testing.assert_allclose(gt[1, 2:], [50.103697, 32.079355], atol=1e-6)
    # A tracker that outputs exactly those boxes scores the best possible AUC (the old reading of the first
    # two corners as x, y, w, h gave a box of 50 x 10 at (10, 10), IoU 0.33 with the target).
    scores = evaluate_tracker({"ball": polygon_to_box(np.array(polys))}, [s])["ball"]
    assert scores.success_auc == pytest.approx(20 / 21)  # IoU 1 passes 20 of the 21 strict thresholds
