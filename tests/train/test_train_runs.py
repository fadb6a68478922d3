"""End-to-end training runs through ``train.py`` (smoke config, synthetic data, fake CPU devices)."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import numpy as np
import pytest

from siamrn_jax import checkpoint as model_ckpt
from siamrn_jax.train.loop import read_metrics
from tests.processes import run_group
from tests.train.runs import ROOT, env, run_train, train_cmd

pytestmark = pytest.mark.multidevice


def _params(workdir):
    _, variables, _ = model_ckpt.load(workdir / "model")
    return variables


def _max_diff(a, b):
    import jax

    return max(
        float(np.max(np.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.mark.heavy  # ~4 min on 2 cores: two cold train.py compiles (8 devices; batch 8 in 8 BN groups)
def test_one_device_equals_eight_devices(tmp_path):
    """8 devices x batch 1 (per-device BN) == 1 device x batch 8 split into 8 BN groups. Hardest phase:
    backbone trainable and online HNM from step 0. Tolerance 1e-5 on parameters of magnitude <= ~1
    (float32 reassociation of the cross-device mean; measured ~6e-8)."""
    # Two steps: the second starts from parameters, BN statistics and optimizer state the first updated.
    hard = {"train.backbone_train_epoch": 0, "train.hnm_epoch": 0, "train.steps_per_epoch": 2}
    run_train(tmp_path / "d8", {**hard, "train.batch_per_device": 1}, devices=8)
    run_train(tmp_path / "d1", {**hard, "train.batch_per_device": 8, "train.bn_groups": 8}, devices=1)
    m8, m1 = read_metrics(tmp_path / "d8"), read_metrics(tmp_path / "d1")
    assert [r["step"] for r in m8] == [1, 2]
    np.testing.assert_allclose([r["loss"] for r in m8], [r["loss"] for r in m1], rtol=1e-5)
    p8, p1 = _params(tmp_path / "d8"), _params(tmp_path / "d1")
    assert _max_diff(p8["params"], p1["params"]) < 1e-5
    assert _max_diff(p8["batch_stats"], p1["batch_stats"]) < 1e-4
    init = model_ckpt.init_variables(model_ckpt.load(tmp_path / "d8" / "model")[0], seed=123456)
    assert _max_diff(p8["params"], init["params"]) > 1e-4  # the runs did train


def _wait_for_step(path, step, proc, log, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, f"train.py exited early: {log.read_text()[-3000:]}"
        if path.is_file():
            rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            if rows and rows[-1]["step"] >= step:
                return
        time.sleep(0.2)
    raise AssertionError(f"no step {step} after {timeout} s")


def test_sigkill_resume_equals_uninterrupted(tmp_path):
    """SIGKILL mid-run (after the HNM switch, before the unfreeze), restart: the metrics sequence of the
    resumed run equals the uninterrupted run's exactly (same compiled programs, bit-identical state)."""
    # 3 epochs x 2 steps: plain (1-2), HNM (3-4), backbone trainable (5-6); checkpoints at 2, 4, 6.
    run = {
        "train.epochs": 3,
        "train.steps_per_epoch": 2,
        "train.hnm_epoch": 1,
        "train.backbone_train_epoch": 2,
        "train.batch_per_device": 2,
    }
    run_train(tmp_path / "ref", run)
    ref = read_metrics(tmp_path / "ref")
    assert [r["step"] for r in ref] == list(range(1, 7))

    work = tmp_path / "killed"
    log = open(tmp_path / "killed.log", "w")  # noqa: SIM115 (closed in the finally)
    proc = subprocess.Popen(train_cmd(work, run), env=env(1), cwd=ROOT, stdout=log, stderr=log, text=True)
    try:
        # Killed in the HNM phase (steps 5-6 need the backbone phase's compile first, seconds away).
        _wait_for_step(work / "metrics.jsonl", 3, proc, tmp_path / "killed.log")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    before = read_metrics(work)
    assert 3 <= before[-1]["step"] < 6, "the kill came too late to test anything"
    p = run_train(work, run)
    got = read_metrics(work)
    assert [r["step"] for r in got] == list(range(1, 7))
    keys = ["loss", "cls", "loc", "match", "match_acc", "grad_norm", "lr"]
    for a, b in zip(ref, got, strict=True):
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}, (a, b)
    assert _max_diff(_params(tmp_path / "ref"), _params(work)) == 0.0
    assert p.returncode == 0


@pytest.mark.heavy  # ~2.5 min on 2 cores: three train.py processes
def test_two_processes_jax_distributed(tmp_path):
    """2 processes x 1 device on localhost (jax.distributed, gloo) train together and end with the same
    parameters as one process with 2 devices."""
    run = {"train.hnm_epoch": 0, "train.steps_per_epoch": 2}
    run_train(tmp_path / "single", run, devices=2)
    work = tmp_path / "multi"
    outs = run_group([train_cmd(work, run), train_cmd(work, run)], timeout=600)
    for rc, out, err in outs:
        assert rc == 0, f"{out[-2000:]}\n{err[-5000:]}"
    assert "2 device(s)" in outs[0][1]
    np.testing.assert_allclose(
        [r["loss"] for r in read_metrics(work)],
        [r["loss"] for r in read_metrics(tmp_path / "single")],
        rtol=1e-5,
    )
    assert _max_diff(_params(work)["params"], _params(tmp_path / "single")["params"]) < 1e-5
