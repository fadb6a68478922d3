"""Synthetic validation scenes (what the demo preset is tuned on): disjoint from the held-out test scenes,
the demo scene and training, and written as OTB folders the ``folder`` benchmark reads."""

from __future__ import annotations

import dataclasses

import numpy as np

from siamrn_jax.cli.eval_synthetic import main
from siamrn_jax.data.synthetic import SyntheticConfig, render
from siamrn_jax.eval.benchmarks.otb import load_folder
from siamrn_jax.eval.synthetic import HELD_OUT, SPLITS, VALIDATION, held_out, write_scenes
from siamrn_jax.tracking.demo import DEMO_SCENE

TRAINING_SEED = SyntheticConfig().seed  # the synthetic training source (configs: data.synthetic.seed = 0)


def test_validation_scenes_are_disjoint_from_test_demo_and_training():
    # A scene is generated from the key [seed, video] alone: another seed shares no scene.
    assert VALIDATION.seed not in {HELD_OUT.seed, DEMO_SCENE.seed, TRAINING_SEED}
    assert dataclasses.replace(VALIDATION, seed=HELD_OUT.seed) == HELD_OUT  # same distribution otherwise
    assert SPLITS == {"held-out": HELD_OUT, "validation": VALIDATION}
    for v in range(2):  # and the rendered frames differ indeed
        frame, _ = render(VALIDATION, v, 0)
        assert not np.array_equal(frame, render(HELD_OUT, v, 0)[0])
        assert not np.array_equal(frame, render(DEMO_SCENE, 0, 0)[0])


def test_written_scenes_read_back_as_the_in_memory_ones(tmp_path, capsys):
    config = dataclasses.replace(VALIDATION, frames=4)
    names = write_scenes(tmp_path / "val", 2, config)
    assert names == ["syn20000_000", "syn20000_001"]
    seqs = load_folder(tmp_path / "val")
    assert [s.name for s in seqs] == names
    for seq, (frames, gt) in zip(seqs, held_out(2, config), strict=True):
        assert len(seq) == 4 and np.array_equal(seq.groundtruth, gt)  # %.17g: exact numbers
        # JPEG quality 95: close to the rendered frame, not equal.
        assert np.abs(seq.frame(0).astype(int) - frames[0]).mean() < 3
    # The command: --split validation --write DIR, nothing tracked.
    assert main(["--split", "validation", "--num", "1", "--write", str(tmp_path / "cli")]) == 0
    assert "wrote 1 validation synthetic scenes (seed 20000)" in capsys.readouterr().out
    assert [s.name for s in load_folder(tmp_path / "cli")] == ["syn20000_000"]
