"""``python -m siamrn_jax.eval``: tables and plots from two trackers' result folders on real sequences."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from siamrn_jax.cli.eval import main
from siamrn_jax.eval.registry import load_benchmark
from siamrn_jax.io.results import write_boxes
from tests.eval.test_readers import DATA

SEQS = ["Crossing", "Deer", "Toy"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    if not (DATA / "sequences").is_dir():
        pytest.fail(f"{DATA}: shared test data not found")
    root = tmp_path_factory.mktemp("results")
    for t in ("good", "static"):
        (root / t).mkdir()
    rng = np.random.default_rng(0)
    for s in load_benchmark("folder", DATA / "sequences", SEQS):
        gt = s.groundtruth
        write_boxes(root / "good" / f"{s.name}.txt", gt + rng.normal(0, 1.0, gt.shape) * [1, 1, 0.5, 0.5])
        bad = np.tile(gt[:1], (len(gt), 1))  # never moves from the first box
        write_boxes(root / "static" / f"{s.name}.txt", bad)
    return root


def report(results, out, *trackers):
    """``python -m siamrn_jax.eval report`` on SEQS of the shared sequences; returns the exit status."""
    args = ["report", "--benchmark", "folder", "--root", str(DATA / "sequences"), "--sequences", *SEQS]
    return main([*args, "--results", str(results), "--trackers", *trackers, "--out", str(out)])


def test_eval_cli_table_and_plots(results, tmp_path, capsys):
    out = tmp_path / "report"
    code = report(results, out, "static", "good")
    printed = capsys.readouterr()
    assert code == 0, printed.err
    lines = (out / "overall.md").read_text().splitlines()
    assert lines[0].startswith("| tracker | success AUC |")
    assert lines[2].startswith("| good |") and lines[3].startswith("| static |")  # ranked by AUC
    auc_good, auc_static = (float(line.split("|")[2]) for line in lines[2:4])
    assert auc_good > 0.6 > auc_static
    assert len((out / "per_sequence.csv").read_text().splitlines()) == 1 + 2 * len(SEQS)
    for png in ("success.png", "precision.png"):
        img = cv2.imread(str(out / png))
        assert img is not None and img.shape[0] > 300 and img.shape[1] > 400


def test_eval_cli_errors_are_one_line(results, tmp_path, capsys):
    (results / "good" / "Toy.txt").rename(results / "good" / "Toy.bak")
    try:
        code = report(results, tmp_path / "r", "good")
    finally:
        (results / "good" / "Toy.bak").rename(results / "good" / "Toy.txt")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Toy.txt: no result for sequence Toy" in err
    code = main(["report", "--benchmark", "nope", "--root", ".", "--results", ".", "--trackers", "x"])
    assert code == 2 and "unknown benchmark 'nope'" in capsys.readouterr().err
