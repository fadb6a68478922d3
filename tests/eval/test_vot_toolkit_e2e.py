"""The real VOT toolkit, end to end: vot-toolkit 0.7.4 drives our in-process TraX server
(``python -m siamrn_jax.eval.trax_server``) through the supervised (restart) experiment on a workspace
made from the shared VOT ``bag`` sequence, and its accuracy / robustness / EAO must equal ours
(``siamrn_jax.eval.vot.toolkit``) computed on the trajectory it recorded.

The toolkit cannot share this venv: it pulls ``opencv-python`` beside our ``opencv-python-headless``
(both are ``cv2``) and numba. It runs from its own interpreter, found in ``$SIAMRN_VOT_PYTHON`` (a
Python with ``vot-toolkit==0.7.4``, ``attributee==0.1.9`` — 0.1.10 fails to import on Python 3.11 —
and ``vot-trax``; never Google's ``trax``, which shares the module name). Set-up::

    python3 -m venv /tmp/votenv && /tmp/votenv/bin/pip install vot-toolkit==0.7.4 attributee==0.1.9 vot-trax
    pip install vot-trax                 # here: the TraX server's side (the [vot] extra)
    SIAMRN_VOT_PYTHON=/tmp/votenv/bin/python pytest tests/eval/test_vot_toolkit_e2e.py

(0.8.x and 0.9.0 cannot run the supervised experiment with TraX trackers on single-object sequences,
EVALUATION.md §9.4.) Without either side the test is skipped, with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from siamrn_jax import checkpoint
from siamrn_jax.config import build_model, load_config
from siamrn_jax.eval import vot
from siamrn_jax.eval.registry import load_benchmark
from siamrn_jax.eval.vot import toolkit as vot_toolkit
from tests.conftest import ROOT, SHARED

pytestmark = pytest.mark.slow

BAG = SHARED / "data" / "vot" / "bag"
STACK = """title: siamrn-jax bag check
experiments:
  baseline:
    type: supervised
    repetitions: 1
    skip_initialize: 5
    analyses:
      - type: supervised_average_ar
        sensitivity: 30
      - type: supervised_eao_score
        low: {low}
        high: {high}
"""
INTERVAL = (2, 196)


def _toolkit_python() -> str:
    py = os.environ.get("SIAMRN_VOT_PYTHON")
    if not py:
        pytest.skip(
            "SIAMRN_VOT_PYTHON is not set (a Python with vot-toolkit 0.7.4; see the module docstring)"
        )
    probe = subprocess.run(
        [py, "-c", "import vot, trax; print(vot.__version__)"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        pytest.skip(f"{py}: cannot import vot / trax ({probe.stderr.strip().splitlines()[-1:]})")
    if probe.stdout.strip() != "0.7.4":
        pytest.skip(f"{py}: vot-toolkit {probe.stdout.strip()}, the supervised experiment needs 0.7.4")
    if importlib.util.find_spec("trax") is None:
        pytest.skip("vot-trax is not installed here (pip install vot-trax: the TraX server's side)")
    return py


def _workspace(tmp: Path, ckpt: Path) -> Path:
    ws = tmp / "workspace"
    (ws / "sequences").mkdir(parents=True)
    (ws / "sequences" / "bag").symlink_to(BAG)  # legacy layout: groundtruth.txt + %08d.jpg
    (ws / "sequences" / "list.txt").write_text("bag\n")
    (ws / "stack.yaml").write_text(STACK.format(low=INTERVAL[0], high=INTERVAL[1]))
    command = f"{sys.executable} -m siamrn_jax.eval.trax_server --checkpoint {ckpt} --preset vot"
    (ws / "trackers.ini").write_text(f"[siamrn]\nlabel = siamrn\nprotocol = trax\ncommand = {command}\n")
    (ws / "config.yaml").write_text("registry:\n  - ./trackers.ini\nstack: ./stack.yaml\n")
    return ws


def test_vot_toolkit_supervised_run_matches_our_toolkit_metrics(tmp_path):
    py = _toolkit_python()
    assert BAG.is_dir(), f"{BAG}: shared VOT data not found (CI always has ../shared)"
    # An untrained smoke model fails often on bag: restarts, skipped frames and failures all exercised.
    model = build_model(load_config(str(ROOT / "configs" / "siamrn_r50.py") + ":smoke").model)
    ckpt = checkpoint.save(tmp_path / "ckpt", model, checkpoint.init_variables(model, seed=4, calibrate=10))
    ws = _workspace(tmp_path, ckpt)
    env = {**os.environ, "VOT_RESULTS_BINARY": "false", "PYTHONPATH": str(ROOT)}
    for args in (["evaluate", "siamrn"], ["analysis", "siamrn", "--format", "json"]):
        run = subprocess.run(
            [py, "-m", "vot", *args, "--workspace", str(ws)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (report,) = sorted((ws / "analysis").glob("*.json"))
    results = json.loads(report.read_text())["results"]["baseline"]["results"]
    (accuracy, robustness, _ar_point, length), (eao,) = results[0][0], results[1][0][:1]
    traj = vot.parse_vot_results((ws / "results" / "siamrn" / "baseline" / "bag" / "bag_001.txt").read_text())
    (bag,) = load_benchmark("vot2018", SHARED / "data" / "vot", ["bag"])
    gt, size = [list(bag.groundtruth)], [bag.frame_size()]
    assert len(traj) == length == 196 and traj[0] == vot.CODE_INIT
    failures = len(vot.failure_frames(traj))
    assert failures > 0  # the restart path really ran
    ours = vot_toolkit.accuracy_robustness_toolkit([[traj]], gt, size)
    print(
        f"\nvot-toolkit 0.7.4 on bag: A {accuracy:.6f}, R {robustness:.6f}, EAO {eao:.6f}, {failures} fails"
    )
    print(f"ours on its trajectory:   A {ours['accuracy']:.6f}, R {ours['robustness']:.6f}")
    assert ours["accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert ours["robustness"] == pytest.approx(robustness, abs=1e-9)
    assert (
        ours["sequence_failures"].tolist() == [failures] == [robustness * 1.0]
    )  # R = failures, one sequence
    assert vot_toolkit.eao_toolkit([[traj]], gt, size, INTERVAL) == pytest.approx(eao, abs=1e-6)
