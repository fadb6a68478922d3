"""OPE runner: pysot result files, per-frame times, resume by skipping finished sequences."""

from __future__ import annotations

import csv
import dataclasses
import logging

import numpy as np
import pytest

from siamrn_jax import checkpoint
from siamrn_jax.config import build_model, load_config
from siamrn_jax.eval.registry import load_benchmark
from siamrn_jax.eval.runner import run_ope
from siamrn_jax.geometry.boxes import pysot_init_box
from siamrn_jax.io.results import read_boxes
from siamrn_jax.models.siamrn import SiamRN
from siamrn_jax.tracking.params import OTB, VOT
from tests.eval.test_readers import DATA
from tests.tracking.test_cli import otb_sequence


def head(seq, n):
    """The first n frames of a sequence (every per-frame field cut alike)."""
    return dataclasses.replace(
        seq,
        frames=seq.frames[:n],
        groundtruth=seq.groundtruth[:n],
        absent=None if seq.absent is None else seq.absent[:n],
        tags={k: v[:n] for k, v in seq.tags.items()},
    )


@pytest.fixture(scope="module")
def smoke():
    model = build_model(load_config("configs/siamrn_r50.py:smoke").model)
    return model, checkpoint.init_variables(model, seed=4, calibrate=10)


def test_ope_writes_results_and_resumes(tmp_path, smoke):
    if not (DATA / "sequences").is_dir():
        pytest.fail(f"{DATA}: shared test data not found")
    seqs = [head(s, 4) for s in load_benchmark("folder", DATA / "sequences", ["Crossing", "Toy"])]
    model, variables = smoke
    logs = []
    done = run_ope(model, variables, OTB, seqs, tmp_path, "smoke", batch=2, log=logs.append)
    assert done == ["Crossing", "Toy"]
    for s in seqs:
        boxes = read_boxes(tmp_path / "smoke" / f"{s.name}.txt")
        assert boxes.shape == (4, 4) and np.isfinite(boxes).all()
        np.testing.assert_allclose(boxes[0], pysot_init_box(s.groundtruth[0]), atol=1e-6)
        times = (tmp_path / "smoke" / f"{s.name}_time.txt").read_text().split()
        assert len(times) == 4 and all(float(t) > 0 for t in times)
    # A second run finds both results and tracks nothing; a deleted result is redone.
    assert run_ope(model, variables, OTB, seqs, tmp_path, "smoke", log=logs.append) == []
    (tmp_path / "smoke" / "Toy.txt").unlink()
    assert run_ope(model, variables, OTB, seqs, tmp_path, "smoke", log=logs.append) == ["Toy"]
    assert sum("skipped" in line for line in logs) == 3


def test_vot_supervised_run_and_report(tmp_path, smoke, capsys):
    """Restart protocol on the real VOT 'bag' (first 30 frames): VOT codes, then the A / R / EAO report."""
    from siamrn_jax.cli.eval import cmd_report_vot
    from siamrn_jax.eval.report import vot_scores
    from siamrn_jax.eval.runner import run_vot
    from siamrn_jax.eval.vot import parse_vot_results
    from siamrn_jax.eval.vot import tags as vot_tags
    from siamrn_jax.io.results import vot_result_path

    seqs = [head(s, 30) for s in load_benchmark("vot2018", DATA / "vot")]
    assert [s.name for s in seqs] == ["bag"]
    model, variables = smoke
    assert run_vot(model, variables, OTB, seqs, tmp_path, "smoke", log=lambda m: None) == ["bag"]
    traj = parse_vot_results(vot_result_path(tmp_path, "smoke", seqs[0]).read_text())
    assert len(traj) == 30 and traj[0] == 1
    # Untrained weights fail: every failure (2) is followed by 4 skipped frames (0) and a re-init (1).
    for t, code in enumerate(traj):
        if code == 2 and t + 5 < 30:
            assert traj[t + 1 : t + 5] == [0, 0, 0, 0] and traj[t + 5] == 1
    assert run_vot(model, variables, OTB, seqs, tmp_path, "smoke", log=lambda m: None) == []  # resumes
    row, curve = vot_scores(tmp_path, "smoke", seqs, "VOT2018")
    assert int(row["failures"]) == traj.count(2) and 0.0 <= float(row["accuracy"]) <= 1.0
    assert row["EAO (VOT2018)"] == "nan"  # the VOT2018 interval [100, 356] lies beyond 30 frames
    assert len(curve) == 30 and curve[0] == 1.0
    args = type(
        "A",
        (),
        dict(
            trackers=["smoke"],
            results=tmp_path,
            out=tmp_path / "rep",
            benchmark="vot2018",
            eao_interval="VOT2016",
        ),
    )()
    (out,) = cmd_report_vot(args, seqs)
    assert "EAO (VOT2016)" in out and (tmp_path / "rep" / "eao.png").is_file()
    # Per visual attribute: one row per tag; 'all' is the overall row; the failures split over the tags
    # exactly as the failure frames carry them.
    with (tmp_path / "rep" / "tags.csv").open() as f:
        tags = list(csv.DictReader(f))
    assert [r["tag"] for r in tags] == list(vot_tags.TAG_NAMES)
    assert (tmp_path / "rep" / "eao_tags.png").is_file() and "| occlusion |" in out
    by_tag = {r["tag"]: r for r in tags}
    assert by_tag["all"]["accuracy"] == row["accuracy"] and by_tag["all"]["frames"] == "30"
    fails = [t for t, code in enumerate(traj) if code == 2]
    for tag in vot_tags.TAG_NAMES[1:-1]:
        assert float(by_tag[tag]["failures"]) == sum(bool(seqs[0].tags[tag][f]) for f in fails)


def test_run_no_relation_flag_turns_the_relation_detector_off():
    from siamrn_jax.cli.eval import _params, build_parser

    base = [
        "run",
        "--random-weights",
        "configs/siamrn_r50.py:smoke",
        "--benchmark",
        "folder",
        "--root",
        "x",
        "--results",
        "y",
    ]
    model = SiamRN()
    on = _params(build_parser().parse_args(base), model)
    off = _params(build_parser().parse_args([*base, "--no-relation", "--preset", "vot"]), model)
    assert on.relation and not off.relation
    assert off.replace(relation=True) == VOT


def test_results_folder_provenance(tmp_path, capsys):
    """eval run records where its results came from and refuses to resume another run's folder."""
    import json

    from siamrn_jax.cli.eval import main

    root = tmp_path / "seqs"
    otb_sequence(root / "A", 4, seed=1)
    base = ["run", "--benchmark", "folder", "--root", str(root), "--results", str(tmp_path / "res")]
    smoke = ["--random-weights", "configs/siamrn_r50.py:smoke"]
    assert main([*base, *smoke]) == 0
    rec = json.loads((tmp_path / "res" / "SiamRN" / "provenance.json").read_text())
    assert rec["weights"] == {"random_weights": "configs/siamrn_r50.py:smoke", "seed": 0}
    assert rec["tracker_params"]["lr"] == OTB.lr and rec["protocol"] == "ope" and rec["siamrn_jax"]
    assert main([*base, *smoke]) == 0  # same run: resumes (the sequence is skipped)
    assert "result exists, skipped" in capsys.readouterr().err  # logged (stderr)
    assert main([*base, *smoke, "--preset", "vot"]) == 2
    assert "results of another run (different tracker_params)" in capsys.readouterr().err
    assert main([*base, *smoke, "--seed", "3"]) == 2
    assert "different weights" in capsys.readouterr().err
    assert main([*base, *smoke, "--preset", "vot", "--overwrite"]) == 0
    rec = json.loads((tmp_path / "res" / "SiamRN" / "provenance.json").read_text())
    assert rec["tracker_params"]["lr"] == VOT.lr
    assert "result exists" not in capsys.readouterr().err  # started afresh


def test_quiet_and_verbose(tmp_path, capsys):
    from siamrn_jax.cli.eval import main

    otb_sequence(tmp_path / "seqs" / "A", 4, seed=1)
    base = ["baseline", "--benchmark", "folder", "--root", str(tmp_path / "seqs")]
    assert main([*base, "--results", str(tmp_path / "r1")]) == 0
    assert "A: 4 frames" in capsys.readouterr().err  # INFO by default
    assert main([*base, "--results", str(tmp_path / "r2"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert main([*base, "--results", str(tmp_path / "r3"), "--verbose"]) == 0
    assert logging.getLogger().level == logging.DEBUG
