"""The committed demo checkpoint (siamrn_jax/assets/demo: SiamRN-Nano's architecture trained from scratch on
the synthetic source, issue 27) loads as its recipe builds it, tracks held-out synthetic scenes, and tracks
with its own tuned preset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import pytest

from siamrn_jax import checkpoint
from siamrn_jax.config import build_model, load_config
from siamrn_jax.eval.synthetic import evaluate, held_out
from siamrn_jax.models.nanotrack import PRESETS as NANO_PRESETS
from siamrn_jax.models.nanotrack import NanoTrack
from siamrn_jax.tracking.params import PRESETS, TrackerParams

DEMO = Path(__file__).resolve().parents[2] / "siamrn_jax" / "assets" / "demo"

# Threshold: on these first 3 held-out sequences (300 frames) the demo model measured success AUC 0.496 with
# the relation detector on (0.507 off) with its own preset, demo (0.474 / 0.478 with nanotrack_v2), per
# scene 0.780, 0.492, 0.216; an untrained model scores about 0.02-0.05 (docs/evaluation.md). 0.2 is four
# times chance and still holds if float differences between CPUs flip a close call between look-alikes
# and lose the best of the three targets (each sequence is a third of the score).
THRESHOLD = 0.2


def test_demo_checkpoint_is_its_recipes_model():
    model, variables, meta = checkpoint.load(DEMO)
    recipe = build_model(load_config("configs/nanotrack.py:demo").model)
    assert model == recipe.clone(default_preset="demo")
    assert isinstance(model, NanoTrack) and model.relation and model.rd_channels == 16
    assert meta["source"]["train"] == "runs/demo_nano" and meta["source"]["step"] == 2250
    leaves = jax.tree.leaves(variables["params"])
    assert sum(p.size for p in leaves) < 2_000_000


@pytest.mark.slow
def test_demo_checkpoint_tracks_held_out_scenes():
    row = evaluate(DEMO, held_out(3), relation=True)
    assert row.auc > THRESHOLD, row


def test_demo_checkpoint_tracks_with_its_own_tuned_preset():
    """model.json names the ``demo`` preset (tuned for these weights on synthetic validation scenes);
    NanoTrack converted from the official weights keeps its official config's, named as its arch."""
    model, _, meta = checkpoint.load(DEMO)
    assert meta["model"]["default_preset"] == model.default_preset == "demo"
    params = TrackerParams.for_model(model)
    assert params == TrackerParams.for_model(model, "demo") != TrackerParams.for_model(model, "nanotrack_v2")
    assert {k: getattr(params, k) for k in NANO_PRESETS["demo"]} == NANO_PRESETS["demo"]
    assert params.relation  # the relation detector refines the score map
    plain = NanoTrack(relation=True)
    assert plain.default_preset is None and "default_preset" not in checkpoint.model_fields(plain)
    assert TrackerParams.for_model(plain) == TrackerParams.for_model(plain, "nanotrack_v2")
    assert PRESETS["nanotrack_v2"].lr == pytest.approx(0.385)  # the official values, unchanged


@pytest.mark.parametrize(
    "value, message",
    [("nope", "default_preset='nope': not a NanoTrack preset"), (3, "default_preset = 3 is not a name")],
)
def test_bad_default_preset_in_model_json_is_a_checkpoint_error(tmp_path, value, message):
    shutil.copytree(DEMO, tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "model.json").read_text())
    meta["model"]["default_preset"] = value
    (tmp_path / "ck" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.load(tmp_path / "ck")
