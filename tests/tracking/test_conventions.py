"""One coordinate convention per file kind (``siamrn_jax.geometry.boxes``): a synthetic scene written as an
OTB folder, tracked with track.py and scored with ``eval report`` gives exactly what ``eval.synthetic``
gives for the same scene in memory, and the init box both use is pysot's rule on the file's numbers."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from siamrn_jax.cli import track as cli
from siamrn_jax.cli.eval import main as eval_main
from siamrn_jax.data.synthetic import SyntheticConfig, make_sequence
from siamrn_jax.eval.ope import evaluate_sequence
from siamrn_jax.eval.synthetic import evaluate, held_out
from siamrn_jax.geometry.boxes import otb_from_zero_based, pysot_init_box
from siamrn_jax.io.results import read_boxes
from siamrn_jax.io.sources import open_input
from siamrn_jax.tracking.demo import write_scene

DEMO = Path(__file__).resolve().parents[2] / "siamrn_jax" / "assets" / "demo_resnet"
SCENE = SyntheticConfig(num_videos=1, frames=14, distractors=(1, 2), seed=10_000)


def test_scene_round_trip_write_track_eval(tmp_path, capsys):
    scene = write_scene(tmp_path / "bench" / "scene", SCENE)
    frames0, gt0 = make_sequence(SCENE, 0)
    src = open_input(scene)
    # The file holds OTB's 1-based numbers, read back exactly; held_out gives the same numbers.
    np.testing.assert_array_equal(src.groundtruth, otb_from_zero_based(gt0))
    np.testing.assert_array_equal(held_out(1, SCENE)[0][1], src.groundtruth)
    # 0-based scene box x -> OTB row x + 1 -> pysot init x + 1.5, for track.py and eval.synthetic alike.
    np.testing.assert_allclose(pysot_init_box(src.groundtruth[0]) - gt0[0], [1.5, 1.5, 0, 0])

    out = tmp_path / "results" / "demo" / "scene.txt"
    out.parent.mkdir(parents=True)
    assert cli.main(["--checkpoint", str(DEMO), "--input", str(scene), "--output", str(out)]) == 0
    assert (
        eval_main(
            [
                "report",
                "--benchmark",
                "folder",
                "--root",
                str(tmp_path / "bench"),
                "--results",
                str(tmp_path / "results"),
                "--trackers",
                "demo",
                "--out",
                str(tmp_path / "rep"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    with open(tmp_path / "rep" / "per_sequence.csv") as f:
        (row,) = list(csv.DictReader(f))
    # The same decoded frames in memory through eval.synthetic: same init rule, same scoring.
    mem = evaluate(DEMO, [(list(src), src.groundtruth)], relation=True)
    assert abs(mem.per_sequence_auc[0] - float(row["success AUC"])) < 1e-4  # the CSV keeps 4 decimals
    boxes = read_boxes(out)
    from_file = evaluate_sequence(src.groundtruth, boxes).success_auc
    assert abs(from_file - mem.per_sequence_auc[0]) < 1e-9, (from_file, mem.per_sequence_auc[0])
    np.testing.assert_allclose(boxes[0], pysot_init_box(src.groundtruth[0]))
    assert len(boxes) == len(frames0)
