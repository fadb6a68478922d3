"""The committed demo checkpoint (siamrn_jax/assets/demo) loads and tracks held-out synthetic scenes."""

from __future__ import annotations

from pathlib import Path

import jax
import pytest

from siamrn_jax import checkpoint
from siamrn_jax.eval.synthetic import evaluate, held_out

DEMO = Path(__file__).resolve().parents[2] / "siamrn_jax" / "assets" / "demo"

# Threshold: on these first 3 held-out sequences (300 frames) the demo model measured success AUC
# 0.677 with the relation detector on (0.662 off; retrained checkpoint of issue 11, OTB-file protocol);
# an untrained model of the same size scores about
# 0.02-0.05 (docs/evaluation.md). 0.3 is six times chance and leaves 0.2 of room for float
# differences between CPUs, which can flip a close call between look-alikes and lose one of the
# three targets (each sequence is a third of the score).
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
    model, _, _ = checkpoint.load("demo")
    assert model.channels == 32
