"""The cases the fuzzers found, kept as plain tests (issue 29): each was a traceback or a message that did
not name its file before the fix named in its docstring."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from siamrn_jax import checkpoint
from siamrn_jax.convert import addon
from siamrn_jax.eval.benchmarks import otb
from siamrn_jax.export import onnx
from siamrn_jax.tracking.params import PresetFileError, read_preset_file
from siamrn_jax.tracking.sources import InputError
from tests.fuzz.test_checkpoint_dir import _run
from tests.tracking.test_cli import otb_sequence

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "siamrn_jax" / "assets" / "demo"
ADDON = ROOT / "siamrn_jax" / "assets" / "nano_rd_v2"


def _demo(tmp: Path) -> Path:
    d = tmp / "ckpt"
    shutil.copytree(DEMO, d)
    return d


def test_checkpoint_with_damaged_orbax_metadata(tmp_path):
    """orbax returns no item metadata (None) for a cut-short _METADATA or root manifest, or a missing
    metadata data file: was AttributeError 'NoneType' object has no attribute 'tree'. In a worker process
    (orbax's failed reads leave asyncio callbacks behind)."""
    cases = [
        ["variables/_METADATA", "cut", 40],
        ["variables/manifest.ocdbt", "cut", 40],
        ["variables/d", "delete", 0],
    ]
    for r in _run(tmp_path, cases):
        assert r["outcome"] == "error" and "variables: unreadable orbax tree" in r["message"], r


def test_track_with_cut_metadata_is_one_error_line(tmp_path):
    """The issue's case end to end: ``track.py --checkpoint DIR`` with ``_METADATA`` cut short."""
    d = _demo(tmp_path)
    meta = d / "variables" / "_METADATA"
    meta.write_bytes(meta.read_bytes()[:100])
    otb_sequence(tmp_path / "seq", 3, seed=0)
    argv = [
        sys.executable,
        str(ROOT / "track.py"),
        "--input",
        str(tmp_path / "seq"),
        "--checkpoint",
        str(d),
    ]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == [lines[-1]] and str(d / "variables") in lines[-1], lines
    assert all(line.startswith("warning: ") for line in lines[:-1]), lines


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda m: m.update(channels=None), "channels = None is not a positive integer"),
        (lambda m: m.update(levels="abc"), "levels = 'abc'"),
        (lambda m: m.update(exemplar_size=1), "cannot be built"),
    ],
    ids=["null-int", "string-levels", "crop-too-small"],
)
def test_model_json_with_wrong_field_types(tmp_path, edit, fragment):
    """A model field of the wrong kind or a size the network cannot take reached the shape arithmetic:
    was TypeError 'Shapes must be 1D sequences of concrete values of integer type'."""
    d = _demo(tmp_path)
    meta = json.loads((d / "model.json").read_text())
    edit(meta["model"])
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(checkpoint.CheckpointError, match="model.json") as e:
        checkpoint.load(d, inference=False)
    assert fragment in str(e.value)


@pytest.mark.parametrize(
    "edit",
    [lambda m: m["model"].update(exemplar_size=None), lambda m: m.update(modules=5)],
    ids=["null", "modules"],
)
def test_addon_json_with_wrong_types(tmp_path, edit):
    """Was TypeError from the shape arithmetic / ``k in 5``."""
    d = tmp_path / "addon"
    shutil.copytree(ADDON, d)
    meta = json.loads((d / "addon.json").read_text())
    edit(meta)
    (d / "addon.json").write_text(json.dumps(meta))
    with pytest.raises(addon.AddonError, match="addon.json"):
        addon.load(d)


def test_preset_file_with_a_list_as_base(tmp_path):
    """Was TypeError: unhashable type: 'list' (``base in PRESETS``)."""
    p = tmp_path / "best.json"
    p.write_text(json.dumps({"base": [], "params": {}}))
    with pytest.raises(PresetFileError, match="best.json: unknown base preset"):
        read_preset_file(p)


@pytest.mark.parametrize(
    "meta",
    [
        [1, 2],
        {"A": None},
        {"A": {"img_names": ["A/img/0001.jpg"], "gt_rect": [[{}, 1, 1, 2]]}},
        {"A": {"img_names": ["A/img/0001.jpg"], "gt_rect": None}},
        {"A": {"img_names": ["A/img/0001.jpg"], "gt_rect": [[1, 1, 1, 2]], "absent": [1, 1]}},
    ],
    ids=["list", "null-record", "dict-in-row", "null-gt", "absent-length"],
)
def test_pysot_benchmark_meta_with_wrong_structure(tmp_path, meta):
    """Was TypeError / KeyError / a broadcast ValueError from NumPy in ``load_pysot_json``."""
    (tmp_path / "A" / "img").mkdir(parents=True)
    (tmp_path / "A" / "img" / "0001.jpg").write_bytes(b"")
    (tmp_path / "OTB100.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="OTB100.json"):
        otb.load(tmp_path, layout="json")


def test_onnx_export_json_with_bad_weights_entry(tmp_path):
    """Was TypeError (``weights["file"]`` of a list)."""
    for name in (*onnx.FILES, onnx.WEIGHTS):
        (tmp_path / name).write_bytes(b"1234")
    (tmp_path / "export.json").write_text(json.dumps({"format": onnx.FORMAT, "weights": [1]}))
    with pytest.raises(onnx.ExportError, match="export.json: 'weights'"):
        onnx.read_meta(tmp_path)
