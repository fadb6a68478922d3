"""Tracker parameters from a JSON file (``--preset FILE.json``, the format a tuning run's best.json has):
read strictly, applied over the base preset by ``TrackerParams.for_model``, accepted by ``track.py`` and
``eval run``; a bad file is one ``error:`` line with exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from siamrn_jax.cli.track import main as track_main
from siamrn_jax.config import build_model
from siamrn_jax.tracking.params import PRESETS, PresetFileError, TrackerParams, read_preset_file
from tests.conftest import ROOT, SHARED

TOY = SHARED / "data" / "sequences" / "Toy"
DEMO = ROOT / "siamrn_jax" / "assets" / "demo_resnet"


def _write(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def test_file_values_override_the_base_preset_and_sizes_stay_the_models(tmp_path):
    f = _write(tmp_path / "best.json", {"base": "vot", "params": {"lr": 0.5, "relation": False}, "trial": 3})
    model = build_model({})
    got = TrackerParams.for_model(model, f)
    assert got == PRESETS["vot"].replace(lr=0.5, relation=False)
    assert (got.exemplar_size, got.instance_size) == (model.exemplar_size, model.instance_size)
    # no base: the model's own preset (otb for the paper model); call-site overrides still win
    g = _write(tmp_path / "b2.json", {"params": {"penalty_k": 0.2}})
    assert TrackerParams.for_model(model, g, lr=0.1) == PRESETS["otb"].replace(penalty_k=0.2, lr=0.1)
    assert read_preset_file(g) == (None, {"penalty_k": 0.2})


@pytest.mark.parametrize(
    "content,message",
    [
        ("{not json", "not a JSON file"),
        ("[1, 2]", "expected a JSON object with a 'params' object"),
        ('{"params": {"exemplar_size": 100}}', "unknown tracker parameters ['exemplar_size']"),
        ('{"params": {"lr": "x"}}', "lr = 'x' is not a finite number"),
        ('{"params": {"lr": NaN}}', "lr = nan is not a finite number"),
        ('{"params": {"relation": 1}}', "relation = 1 is not a true/false flag"),
        ('{"base": "nope", "params": {}}', "unknown base preset 'nope'"),
    ],
)
def test_bad_files_are_named_errors(tmp_path, content, message):
    f = tmp_path / "p.json"
    f.write_text(content)
    with pytest.raises(PresetFileError, match=f"^{f}: ") as e:
        read_preset_file(f)
    assert message in str(e.value)
    with pytest.raises(PresetFileError):
        read_preset_file(tmp_path / "missing.json")


@pytest.mark.slow
def test_track_py_tracks_with_the_file_and_reports_a_bad_one(tmp_path, capsys):
    """lr = 0 freezes the box size: every tracked box keeps the initial width and height."""
    f = _write(tmp_path / "frozen.json", {"params": {"lr": 0.0}})
    out = tmp_path / "boxes.txt"
    argv = ["--checkpoint", str(DEMO), "--input", str(TOY), "--max-frames", "6", "--output", str(out)]
    assert track_main([*argv, "--preset", f]) == 0
    boxes = np.loadtxt(out, delimiter=",")
    assert len(boxes) == 6 and np.allclose(boxes[:, 2:], boxes[0, 2:])
    capsys.readouterr()
    bad = _write(tmp_path / "bad.json", {"params": {"lr": None}})
    assert track_main([*argv, "--preset", bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {bad}: lr = None is not a finite number"]


def test_eval_run_accepts_a_preset_file(tmp_path):
    from siamrn_jax.cli.eval import _params, build_parser

    f = _write(
        tmp_path / "best.json", {"base": "vot", "params": {"window_influence": 0.3, "relation": False}}
    )
    base = ["run", "--random-weights", "configs/siamrn_r50.py:smoke", "--benchmark", "folder", "--root", "x"]
    args = build_parser().parse_args([*base, "--results", "y", "--preset", f])
    model = build_model({})
    assert _params(args, model) == TrackerParams.for_model(model, "vot", window_influence=0.3, relation=False)
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([*base, "--results", "y", "--preset", str(tmp_path / "none.json")])
    assert e.value.code == 2
