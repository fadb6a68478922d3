"""``checkpoint.load_weights``: the one weight loader of every command (checkpoint directory, embedded name,
add-on, ``random:CONFIG``), its BatchNorm-calibration rule, and ``--checkpoint demo`` on track and eval."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from flax import traverse_util

from siamrn_jax import checkpoint
from siamrn_jax.config import ConfigError, build_model, load_config
from siamrn_jax.convert.addon import AddonError
from siamrn_jax.errors import SiamrnError
from siamrn_jax.eval.provenance import checkpoint_digest
from tests.tracking.test_cli import otb_sequence

SMOKE = "configs/siamrn_r50.py:smoke"


def _flat(variables) -> dict:
    return {
        k: np.asarray(v)
        for c in ("params", "batch_stats")
        for k, v in traverse_util.flatten_dict(dict(variables[c]), sep="/").items()
        for k in [f"{c}/{k}"]
    }


def _assert_same(a, b) -> None:
    fa, fb = _flat(a), _flat(b)
    assert sorted(fa) == sorted(fb)
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


def test_random_weights_are_the_calibrated_init():
    """random:CONFIG = float32 init with the seed, then CALIBRATION_PASSES BatchNorm passes; --dtype changes
    the model's arithmetic, not the weights."""
    got = checkpoint.load_weights(f"random:{SMOKE}", seed=3, inference=False)
    model = build_model(load_config(SMOKE).model)
    want = checkpoint.init_variables(model, 3, calibrate=checkpoint.CALIBRATION_PASSES)
    _assert_same(got.variables, want)
    assert got.model == model and checkpoint.untrained(got)
    assert got.meta["source"] == {"kind": "random", "config": SMOKE, "seed": 3}
    # calibrated: the running means moved away from their initial zeros
    means = [v for k, v in _flat(got.variables).items() if k.startswith("batch_stats") and k.endswith("mean")]
    assert means and all(np.abs(m).max() > 0 for m in means)
    bf16 = checkpoint.load_weights(f"random:{SMOKE}", dtype="bfloat16", seed=3, inference=False)
    assert bf16.model.dtype == jax.numpy.bfloat16
    _assert_same(bf16.variables, want)


def test_checkpoint_directory_and_embedded_name(tmp_path, monkeypatch):
    """A directory loads as ``checkpoint.load`` does; 'demo' is the embedded demo checkpoint; a folder
    named like an embedded checkpoint wins over it."""
    model = build_model(load_config(SMOKE).model)
    variables = checkpoint.init_variables(model, 1)
    checkpoint.save(tmp_path / "ck", model, variables, source={"test": 1})
    got = checkpoint.load_weights(tmp_path / "ck", inference=False)
    ref = checkpoint.load(tmp_path / "ck", inference=False)
    assert got.model == ref.model and got.meta == ref.meta and not checkpoint.untrained(got)
    _assert_same(got.variables, ref.variables)
    assert checkpoint.resolve_spec("demo") == ("checkpoint", str(checkpoint.DEMO))
    demo = checkpoint.load_weights("demo", inference=False)
    assert demo.meta == json.loads((checkpoint.DEMO / "model.json").read_text())
    checkpoint.save(tmp_path / "demo", model, variables)
    monkeypatch.chdir(tmp_path)
    assert checkpoint.resolve_spec("demo") == ("checkpoint", str(tmp_path / "demo"))


@pytest.mark.slow  # calibrating NanoTrack's untrained weights: ~30 s on 2 busy cores
def test_embedded_addon():
    """'nano_rd_v2' (the embedded add-on): its model, its modules' arrays as stored, the rest untrained and
    calibrated by the same rule."""
    from siamrn_jax.convert import addon

    kind, where = checkpoint.resolve_spec("nano_rd_v2")
    assert kind == "addon" and where == str(addon.EMBEDDED / "nano_rd_v2")
    got = checkpoint.load_weights("nano_rd_v2", seed=2, inference=False)
    model, arrays, meta = addon.load("nano_rd_v2")
    assert got.model == model and checkpoint.untrained(got)
    assert got.meta["source"]["kind"] == "addon" and got.meta["source"]["modules"] == meta["modules"]
    flat = _flat(got.variables)
    for key, value in arrays.items():
        np.testing.assert_array_equal(flat["/".join(key)], value)
    # the one rule (test_random_weights_are_the_calibrated_init checks it against init_variables); cached
    fresh = checkpoint.calibrated_variables(model, 2)
    rest = {k: v for k, v in _flat(fresh).items() if k.split("/")[1] not in meta["modules"]}
    for k, v in rest.items():
        np.testing.assert_array_equal(flat[k], v, err_msg=k)


def test_bad_specs_are_our_errors(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="not a siamrn-jax checkpoint"):
        checkpoint.load_weights(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="expected random:CONFIG"):
        checkpoint.load_weights("random:")
    with pytest.raises(ConfigError, match="config file not found"):
        checkpoint.load_weights(f"random:{tmp_path / 'nope.py'}")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "addon.json").write_text("{")
    with pytest.raises(AddonError):
        checkpoint.load_weights(tmp_path / "bad")
    for e in (checkpoint.CheckpointError, ConfigError, AddonError):
        assert issubclass(e, SiamrnError)


def test_track_and_eval_accept_checkpoint_demo(tmp_path, capsys):
    """``--checkpoint demo`` on track and ``eval run`` (a 3-frame sequence, the embedded demo model)."""
    from siamrn_jax.cli.eval import main as eval_main
    from siamrn_jax.cli.track import main as track_main
    from siamrn_jax.io.results import read_boxes

    otb_sequence(tmp_path / "seqs" / "A", 3, seed=1)
    out = tmp_path / "a.txt"
    seq = str(tmp_path / "seqs" / "A")
    assert track_main(["--checkpoint", "demo", "--input", seq, "--output", str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    assert "UNTRAINED" not in stderr and stdout.startswith("A: 3 frames")
    boxes = read_boxes(out)
    assert boxes.shape == (3, 4) and np.isfinite(boxes).all()
    res = tmp_path / "res"
    argv = ["run", "--checkpoint", "demo", "--benchmark", "folder", "--root", str(tmp_path / "seqs")]
    assert eval_main([*argv, "--results", str(res)]) == 0, capsys.readouterr().err
    # The same weights and tracker (eval tracks in a lockstep batch of one: float32 rounding apart).
    np.testing.assert_allclose(read_boxes(res / "SiamRN" / "A.txt"), boxes, atol=1e-2)
    rec = json.loads((res / "SiamRN" / "provenance.json").read_text())
    assert rec["weights"] == {"checkpoint_sha256": checkpoint_digest(checkpoint.DEMO)}
