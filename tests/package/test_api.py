"""The top-level API (``import siamrn_jax``) and the README example that uses it, run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import siamrn_jax
from siamrn_jax.checkpoint import CheckpointError, ModelBundle

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- api-example[^>]*-->\n```python\n(.*?)```\n<!-- /api-example -->", text, re.S)
    assert m, "README.md: api-example block not found"
    return m.group(1)


def test_readme_example_runs_as_written(tmp_path):
    r = subprocess.run(
        [sys.executable, "-c", readme_example()], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith(siamrn_jax.__version__ + " [")


def test_import_is_cheap_and_lazy():
    r = subprocess.run(
        [sys.executable, "-c", "import sys, siamrn_jax; print('jax' in sys.modules, siamrn_jax.__version__)"],
        capture_output=True,
        text=True,
    )
    assert r.stdout.split()[0] == "False", r.stdout + r.stderr


def test_load_demo_and_track(tmp_path):
    bundle = siamrn_jax.load("demo_resnet")
    assert isinstance(bundle, ModelBundle) and "648,024 parameters" in repr(bundle)
    model, variables, meta = bundle  # unpacks like checkpoint.load always did
    assert meta["model"]["channels"] == model.channels == 32
    t = siamrn_jax.Tracker(bundle, "vot", lr=0.3)
    assert t.params.lr == 0.3 and t.params.instance_size == model.instance_size
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    t.init(frame, [40, 30, 32, 24])
    out = t.track(frame)
    assert set(out) == {"bbox", "best_score", "cls", "p_match"}
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = siamrn_jax.nope


def test_load_the_demo_model_and_track_with_its_own_preset():
    """``load("demo")`` is the embedded demo model (SiamRN-Nano's shape since issue 27); ``Tracker`` picks
    the preset its model.json names, relation detector on."""
    bundle = siamrn_jax.load("demo")
    assert bundle.model.arch == "nanotrack_v2" and "338,565 parameters" in repr(bundle)
    t = siamrn_jax.Tracker(bundle)
    assert (t.params.lr, t.params.penalty_k, t.params.relation) == (0.016, 0.728, True)
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    t.init(frame, [40, 30, 32, 24])
    out = t.track(frame)
    assert set(out) == {"bbox", "best_score", "cls", "p_match"} and np.isfinite(out["bbox"]).all()


def test_load_errors_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no model.json"):
        siamrn_jax.load(tmp_path)
    with pytest.raises(CheckpointError):
        siamrn_jax.load("no-such-model")
