"""The committed ResNet-family demo checkpoint (siamrn_jax/assets/demo_resnet: the demo model until issue 27)
loads and tracks held-out synthetic scenes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import pytest

from siamrn_jax import checkpoint
from siamrn_jax.eval.synthetic import evaluate, held_out
from siamrn_jax.models.siamrn import PRESETS as SIAMRN_PRESETS
from siamrn_jax.models.siamrn import SiamRN
from siamrn_jax.tracking.params import PRESETS, TrackerParams

DEMO = Path(__file__).resolve().parents[2] / "siamrn_jax" / "assets" / "demo_resnet"

# Threshold: on these first 3 held-out sequences (300 frames) this model measured success AUC 0.757 with
# the relation detector on (0.584 off) with its own preset, demo_resnet (issue 27; with otb: 0.677 on,
# 0.662 off; retrained checkpoint of issue 11, OTB-file protocol); an untrained model of the same size
# scores about 0.02-0.05 (docs/evaluation.md). 0.3 is six times chance and leaves 0.2 of room for float
# differences between CPUs, which can flip a close call between look-alikes and lose one of the three
# targets (each sequence is a third of the score).
THRESHOLD = 0.3


def test_demo_checkpoint_loads_with_its_config():
    model, variables, meta = checkpoint.load(DEMO)
    assert model.channels == 32 and model.backbone_widths == (8, 16, 32, 64)
    assert meta["source"]["train"].endswith("runs/demo") and meta["source"]["step"] == 2250
    assert meta["model"]["exemplar_size"] == model.exemplar_size == 127  # every field stated
    assert sum(p.size for p in jax.tree.leaves(variables["params"])) < 2_000_000


@pytest.mark.slow
def test_demo_checkpoint_tracks_held_out_scenes():
    row = evaluate(DEMO, held_out(3), relation=True)
    assert row.auc > THRESHOLD, row


def test_checkpoint_loads_through_a_relative_path(monkeypatch):
    """Regression: orbax finds no metadata through relative paths; ``load`` must absolutise them."""
    monkeypatch.chdir(DEMO.parent)
    model, _, _ = checkpoint.load("demo_resnet")
    assert model.channels == 32


def test_demo_checkpoint_tracks_with_its_own_tuned_preset():
    """Its model.json names the ``demo_resnet`` preset (tuned for its weights on synthetic validation
    scenes); the paper model keeps ``otb`` and its model.json names none."""
    model, _, meta = checkpoint.load(DEMO)
    assert meta["model"]["default_preset"] == model.default_preset == "demo_resnet"
    params = TrackerParams.for_model(model)
    assert params == TrackerParams.for_model(model, "demo_resnet") != TrackerParams.for_model(model, "otb")
    assert {k: getattr(params, k) for k in SIAMRN_PRESETS["demo_resnet"]} == SIAMRN_PRESETS["demo_resnet"]
    assert checkpoint.model_fields(model)["default_preset"] == "demo_resnet"
    assert SiamRN().default_preset == "otb" and "default_preset" not in checkpoint.model_fields(SiamRN())
    assert PRESETS["otb"].lr == pytest.approx(0.4730770315643308)  # the official values, unchanged


def test_unknown_default_preset_in_model_json_is_a_checkpoint_error(tmp_path):
    shutil.copytree(DEMO, tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "model.json").read_text())
    meta["model"]["default_preset"] = "nope"
    (tmp_path / "ck" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(checkpoint.CheckpointError, match="default_preset='nope': not a SiamRN preset"):
        checkpoint.load(tmp_path / "ck")
