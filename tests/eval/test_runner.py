"""OPE runner: pysot result files, per-frame times, resume by skipping finished sequences."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from siamrn_jax import checkpoint
from siamrn_jax.config import build_model, load_config
from siamrn_jax.eval.registry import load_benchmark
from siamrn_jax.eval.runner import run_ope
from siamrn_jax.geometry.boxes import pysot_init_box
from siamrn_jax.tracking.params import OTB
from siamrn_jax.tracking.results_io import read_boxes
from tests.eval.test_readers import DATA


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
