"""Training on data with bad frames: skipped and counted, exact resume, too much of it is an error."""

from __future__ import annotations

import subprocess

import jax
import numpy as np
import pytest

from siamrn_jax import checkpoint as model_ckpt
from siamrn_jax.train.loop import DataCounters, TrainError, check_bad_fraction, read_metrics
from tests.data.pysot_tree import write_tree
from tests.train.runs import ROOT, env, run_train, train_cmd

# A quarter of the frames bad (one per video: garbage, missing, truncated in turn). With the smoke seed
# each of the 4 samples of a tiny run meets one (the checkpoint at step 2 holds a non-zero count), and 16
# failed draws in a row (a sampler DataError) stay far out of reach.
BAD = {(v, (v + 1) % 4): ("garbage", "missing", "truncated")[v % 3] for v in range(10)}


def _pysot_run(tmp_path) -> dict:
    """Config overrides of a tiny run on a pysot tree with bad frames written under ``tmp_path/data/vid``."""
    write_tree(tmp_path / "data" / "vid", 10, 4, BAD)
    return {
        "data.use": "('VID',)",
        "data.root": str(tmp_path / "data"),
        "data.VID.num_use": -1,
        "data.VID.hard_negatives": False,
    }


def _bad_reads(workdir) -> list[int]:
    return [r["bad_reads"] for r in read_metrics(workdir)]


def test_bad_frames_are_counted_and_a_stopped_run_resumes_exactly(tmp_path):
    """The run goes on over bad frames (default max_bad_fraction: too few draws to judge), logs each with
    its file, reports the cumulative count; stopped at step 2 and resumed, it ends exactly as the
    uninterrupted run: same metrics (bad reads included), same parameters, same summary."""
    run = _pysot_run(tmp_path)
    ref = run_train(tmp_path / "ref", run)
    counts = _bad_reads(tmp_path / "ref")
    assert len(counts) == 4 and counts == sorted(counts) and 0 < counts[1] < counts[-1]
    assert f"bad reads {counts[-1]}," in ref.stdout
    assert ref.stderr.count("bad training data skipped: ") == counts[-1]
    assert str(tmp_path / "data" / "vid" / "crop511") in ref.stderr

    work = tmp_path / "stopped"
    run_train(work, run, extra=["--stop_after=2"])
    assert [r["step"] for r in read_metrics(work)] == [1, 2]
    resumed = run_train(work, run)
    got, want = read_metrics(work), read_metrics(tmp_path / "ref")
    keys = ["step", "loss", "cls", "loc", "match", "grad_norm", "bad_reads"]
    assert [{k: r[k] for k in keys} for r in got] == [{k: r[k] for k in keys} for r in want]
    assert f"bad reads {counts[-1]}," in resumed.stdout
    _, a, _ = model_ckpt.load(tmp_path / "ref" / "model")
    _, b, _ = model_ckpt.load(work / "model")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_too_much_bad_data_stops_the_run_with_one_line(tmp_path):
    """max_bad_fraction=0: the first bad read is too many; the CLI prints the TrainError on one line."""
    run = {**_pysot_run(tmp_path), "data.max_bad_fraction": 0.0}
    p = subprocess.run(
        train_cmd(tmp_path / "work", run), env=env(1), cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 2, p.stderr[-3000:]
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("error: training data: ") and "> data.max_bad_fraction=0)" in line, line
    assert "; last: " + str(tmp_path / "data" / "vid" / "crop511") in line, line


def test_bad_fraction_rule():
    """Judged from 10 / max_bad_fraction draws on; above the fraction is an error; 0 tolerates none."""
    check_bad_fraction(DataCounters(samples=10, bad_reads=5), 0.01)  # 15 draws: too early to judge
    check_bad_fraction(DataCounters(samples=990, bad_reads=10), 0.01)  # exactly 1 %
    with pytest.raises(
        TrainError, match=r"11 of 1000 sample draws met bad data \(1\.10% > .*=0\.01\); last: x"
    ):
        check_bad_fraction(DataCounters(samples=989, bad_reads=11, last_error="x"), 0.01)
    with pytest.raises(TrainError, match=r"1 of 2 sample draws"):
        check_bad_fraction(DataCounters(samples=1, bad_reads=1), 0.0)
    check_bad_fraction(DataCounters(samples=0, bad_reads=10**6), 1.0)
    check_bad_fraction(DataCounters(samples=10**6), 0.0)
