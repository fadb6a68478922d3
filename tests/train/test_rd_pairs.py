"""The RD training-strategy switch ``train.rd_pairs``: contrastive 1:2:1 vs one-way one-shot pairs."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from siamrn_jax.config import ConfigError, load_config
from siamrn_jax.data import targets
from siamrn_jax.train import mining
from siamrn_jax.train.loop import TrainError, train
from tests.train.runs import ROOT, env, train_cmd


def _boxes():
    pos = np.arange(64, dtype=np.float32).reshape(16, 4) + 1000
    neg = np.arange(192, dtype=np.float32).reshape(48, 4)
    return pos, neg


def _sorted(a):
    return a[np.lexsort(a.T[::-1])]


@pytest.mark.parametrize("flip", [False, True])
def test_one_way_pairs(flip):
    """64 pairs, 16 positive : 48 target-vs-background, every support the template, the coin ignored."""
    pos, neg = _boxes()
    support, boxes, labels = targets.contrastive_pairs(np.random.default_rng(0), pos, neg, flip, "one_way")
    assert support.shape == labels.shape == (64,) and boxes.shape == (64, 4)
    assert np.all(support == 0)
    assert labels.sum() == 16 and (labels == 0).sum() == 48
    np.testing.assert_array_equal(_sorted(boxes[labels == 1]), _sorted(pos))
    np.testing.assert_array_equal(_sorted(boxes[labels == 0]), _sorted(neg))
    same = targets.contrastive_pairs(np.random.default_rng(0), pos, neg, not flip, "one_way")
    for a, b in zip(same, (support, boxes, labels), strict=True):
        np.testing.assert_array_equal(a, b)


def test_one_way_keeps_the_contrastive_groups_but_d():
    """Same draw, same group order: only group D (negative support) changes, to template vs negatives."""
    pos, neg = _boxes()
    rng_c, rng_o = np.random.default_rng(3), np.random.default_rng(3)
    c = targets.contrastive_pairs(rng_c, pos, neg, False, "contrastive")
    o = targets.contrastive_pairs(rng_o, pos, neg, False, "one_way")
    np.testing.assert_array_equal(c[1], o[1])  # the same boxes in the same order
    np.testing.assert_array_equal(c[2], o[2])  # the same labels
    assert (c[0] == 1).sum() == 16 and (o[0] == 1).sum() == 0
    assert rng_c.random() == rng_o.random()  # both consume the generator alike
    assert (c[2] == 1).mean() == (o[2] == 1).mean() == 0.25


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("strategy", targets.RD_PAIRS)
def test_device_pairs_match_host(flip, strategy):
    rng = np.random.default_rng(7)
    pos = rng.random((16, 4)).astype(np.float32)
    neg = rng.random((48, 4)).astype(np.float32)
    ref = targets.contrastive_pairs(np.random.default_rng(5), pos, neg, flip, strategy)
    order = jnp.asarray(np.random.default_rng(5).permutation(4))
    got = mining.contrastive_pairs(jnp.asarray(pos), jnp.asarray(neg), order, jnp.asarray(flip), strategy)
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_array_equal(np.asarray(g), r)


def test_pair_groups():
    assert targets.pair_groups("contrastive") == ((0, 1), (0, 0), (0, 0), (1, 0))
    assert targets.pair_groups("one_way") == ((0, 1), (0, 0), (0, 0), (0, 0))
    with pytest.raises(ValueError, match="train.rd_pairs='two_way'"):
        targets.pair_groups("two_way")


@pytest.mark.parametrize(
    ("section", "key", "value", "error", "message"),
    [
        ("train", "rd_pairs", "two_way", TrainError, "train.rd_pairs='two_way': expected one of contrastive"),
        ("model", "rd_heads", ("global", "lokal"), ConfigError, "model.rd_heads=('global', 'lokal')"),
        ("model", "rd_levels", (5,), ConfigError, "model.rd_levels=(5,)"),
    ],
)
def test_bad_switch_stops_training_before_the_workdir(tmp_path, section, key, value, error, message):
    cfg = load_config("smoke")
    cfg[section][key] = value
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_bad_switch_on_the_train_command_line(tmp_path):
    import subprocess

    args = train_cmd(tmp_path / "run", {"model.rd_heads": "('local','local')"})
    p = subprocess.run(args, cwd=ROOT, env=env(1), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: model config: model.rd_heads=('local', 'local'): expected a non-empty subset of "
        "('global', 'local', 'patch') in that order"
    ]
