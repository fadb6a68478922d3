"""Real JPEGs through training: the shared real sequences as a GOT-10k tree, built with the TFDS builder,
mixed with the synthetic source, trained through ``train.py`` (issue 13, item 5)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from siamrn_jax.bench.data import got10k_tree_from_sequences
from siamrn_jax.config import load_config
from siamrn_jax.data import tfds_builders
from siamrn_jax.data.mixture import build_datasets
from siamrn_jax.data.sampler import TripletSampler
from siamrn_jax.data.tfds_source import TfdsSource
from siamrn_jax.io.sources import open_input
from tests.train.runs import ROOT, run_train

SEQUENCES = ROOT.parent / "shared" / "data" / "sequences"


@pytest.fixture(scope="module")
def real_tfds(tmp_path_factory) -> Path:
    if not SEQUENCES.is_dir():
        pytest.fail(f"{SEQUENCES}: shared test data not found")
    tmp = tmp_path_factory.mktemp("real")
    names = got10k_tree_from_sequences(SEQUENCES, tmp / "raw")
    assert len(names) == 14
    tfds_builders.build("got10k", tmp / "raw", tmp / "tfds")
    return tmp / "tfds"


def test_real_tree_matches_the_sequences(real_tfds):
    src = TfdsSource(real_tfds / "got10k")
    assert len(src) == 14
    for t in range(len(src)):
        name = src.track_key(t).split("/")[0]
        seq = open_input(SEQUENCES / name)
        gt = seq.groundtruth
        usable = np.isfinite(gt).all(axis=1) & (gt[:, 2] > 1) & (gt[:, 3] > 1)
        assert src.track_length(t) == usable.sum(), name  # Human3: 199 frames, 198 annotated
        image, box = src.frame(t, 0)
        first = int(np.argmax(usable))
        np.testing.assert_array_equal(image, seq[first])  # the JPEG's own bytes, decoded alike
        x, y, w, h = gt[first]
        np.testing.assert_allclose(box, [x, y, x + w, y + h], rtol=1e-6)


def _mixture(real_tfds: Path) -> dict:
    return {
        "data.use": "('synthetic','GOT10K')",
        "data.root": str(real_tfds),
        "data.GOT10K.kind": "tfds",
        "data.GOT10K.dir": "got10k",
        "data.GOT10K.num_use": 40,  # as many picks per pass as the 40 synthetic videos
    }


def test_mixture_run_trains_on_real_frames(real_tfds, tmp_path):
    overrides = {**_mixture(real_tfds), "train.steps_per_epoch": 6}
    run_train(tmp_path / "run", overrides)
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert all(math.isfinite(r["loss"]) for r in rows)
    # The run's samples: deterministic picks, so count how many came from the real frames.
    cfg = load_config(f"{ROOT}/configs/siamrn_r50.py:smoke")
    cfg.data.synthetic.num_videos = 40  # as tests.train.runs.TINY
    cfg.data.use, cfg.data.root = ("synthetic", "GOT10K"), str(real_tfds)
    cfg.data.GOT10K.update({"kind": "tfds", "dir": "got10k", "num_use": 40})
    sampler = TripletSampler(build_datasets(cfg.data), seed=cfg.train.seed, global_batch=1)
    real = sum(sampler.pick(i)[0] == 1 for i in range(6))
    assert real >= 1, "no real frame was sampled in the run"
