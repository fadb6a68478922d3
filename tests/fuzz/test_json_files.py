"""Every JSON file we read, fuzzed: the descriptors (``model.json``, ``addon.json``, both ``export.json``),
tracker preset files, pysot annotation and benchmark meta JSON, ``--include`` rows. Seeds are the real
files (the embedded demo checkpoint, the packaged add-on) or what our own writers produce."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from siamrn_jax import checkpoint
from siamrn_jax.convert import addon
from siamrn_jax.data.pysot import PysotSource
from siamrn_jax.eval import provenance
from siamrn_jax.eval.benchmarks import otb
from siamrn_jax.eval.synthetic import load_rows
from siamrn_jax.export import onnx, stablehlo
from siamrn_jax.tracking import onnx_backend
from siamrn_jax.tracking.params import read_preset_file
from tests.fuzz.fuzzing import FEW, SOME, Mutation, json_mutations, mutations, outcome, scratch, twin

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "siamrn_jax" / "assets" / "demo_resnet"
ADDON = ROOT / "siamrn_jax" / "assets" / "nano_rd_v2"
MODEL_JSON = json.loads((DEMO / "model.json").read_text())
ADDON_JSON = json.loads((ADDON / "addon.json").read_text())
NPZ = (ADDON / "variables.npz").read_bytes()


def _text(seed) -> bytes:
    """The seed file as ``json_mutations`` edits it."""
    return json.dumps(seed, indent=2).encode()


def check_model_json(m: Mutation) -> None:
    data = m(_text(MODEL_JSON))
    with scratch() as tmp:
        d = tmp / "ckpt"
        shutil.copytree(DEMO, d)
        (d / "model.json").write_bytes(data)
        got = outcome(lambda: checkpoint.load(d, inference=False), [d / "model.json", d])
        assert got is None or set(got.variables) == {"params", "batch_stats"}


test_model_json, test_model_json_long = twin(json_mutations(MODEL_JSON), bounded=FEW, long=SOME)(
    check_model_json
)


def check_addon_json(m: Mutation) -> None:
    data = m(_text(ADDON_JSON))
    with scratch() as tmp:
        d = tmp / "addon"
        shutil.copytree(ADDON, d)
        (d / "addon.json").write_bytes(data)
        got = outcome(lambda: addon.load(d), [d / "addon.json", d / "variables.npz", d])
        assert got is None or isinstance(got[1], dict)


test_addon_json, test_addon_json_long = twin(json_mutations(ADDON_JSON), bounded=FEW, long=SOME)(
    check_addon_json
)


def check_addon_npz(m: Mutation) -> None:
    data = m(NPZ)
    with scratch() as tmp:
        d = tmp / "addon"
        shutil.copytree(ADDON, d)
        (d / "variables.npz").write_bytes(data)
        outcome(lambda: addon.load(d), [d / "variables.npz", d])


test_addon_npz, test_addon_npz_long = twin(mutations(len(NPZ)), bounded=FEW, long=SOME)(check_addon_npz)

# What stablehlo.save / onnx.save write (their keys; values as a batch-1 smoke export has them).
EXPORT_JSON = {
    "format": stablehlo.FORMAT,
    "batch": 1,
    "model": MODEL_JSON["model"],
    "params": {
        "penalty_k": 0.07,
        "window_influence": 0.44,
        "lr": 0.44,
        "exemplar_size": 127,
        "instance_size": 255,
    },
    "template_inputs": [{"name": "z", "shape": [1, 127, 127, 3], "dtype": "float32"}],
    "template_outputs": [{"name": "s0", "shape": [1, 4], "dtype": "float32"}],
    "step_inputs": [{"name": "x", "shape": [1, 255, 255, 3], "dtype": "float32"}],
    "step_outputs": [{"name": "box", "shape": [1, 4], "dtype": "float32"}],
}
ONNX_JSON = {**EXPORT_JSON, "format": onnx.FORMAT, "weights": {"file": onnx.WEIGHTS, "bytes": 4}}


def _trivial_export() -> bytes:
    """A real (tiny) jax.export artifact: ``ExportedTracker`` deserializes both files before it reads the
    rest of export.json, and calls them only when tracking."""
    import jax
    import jax.numpy as jnp

    spec = jax.ShapeDtypeStruct((1,), jnp.float32)
    return bytes(jax.export.export(jax.jit(lambda x: x))(spec).serialize())


JAXEXPORT = _trivial_export()


def check_stablehlo_export_json(m: Mutation) -> None:
    data = m(_text(EXPORT_JSON))
    with scratch() as d:
        (d / "export.json").write_bytes(data)
        for name in ("template", "step"):
            (d / f"{name}.jaxexport").write_bytes(JAXEXPORT)
        got = outcome(lambda: stablehlo.ExportedTracker(d), [d / "export.json", d])
        assert got is None or got.params.exemplar_size == got.model.exemplar_size


test_stablehlo_export_json, test_stablehlo_export_json_long = twin(
    json_mutations(EXPORT_JSON), bounded=FEW, long=SOME
)(check_stablehlo_export_json)


def check_onnx_export_json(m: Mutation) -> None:
    data = m(_text(ONNX_JSON))
    with scratch() as d:
        (d / "export.json").write_bytes(data)
        for name in (*onnx.FILES, onnx.WEIGHTS):
            (d / name).write_bytes(b"1234")
        got = outcome(lambda: onnx_backend.read_meta(d), [d / "export.json", d])
        assert got is None or got["format"] == onnx.FORMAT


test_onnx_export_json, test_onnx_export_json_long = twin(json_mutations(ONNX_JSON))(check_onnx_export_json)

PRESET = {"base": "otb", "params": {"penalty_k": 0.1, "window_influence": 0.4, "lr": 0.35}, "trials": 30}


def check_preset_file(m: Mutation) -> None:
    data = m(_text(PRESET))
    with scratch() as d:
        path = d / "best.json"
        path.write_bytes(data)
        got = outcome(lambda: read_preset_file(path), [path])
        assert got is None or isinstance(got[1], dict)


test_preset_file, test_preset_file_long = twin(json_mutations(PRESET))(check_preset_file)

PYSOT = {
    "vid/a": {
        "00": {"000000": [10, 10, 50, 60], "000001": [12, 11, 52, 63]},
        "01": {"000003": [1, 2, 30, 40]},
    },
    "b": {"00": {"000000": [0, 0, 20, 20], "frames": [0]}},
}


def check_pysot_json(m: Mutation) -> None:
    data = m(_text(PYSOT))
    with scratch() as d:
        path = d / "train.json"
        path.write_bytes(data)
        got = outcome(lambda: PysotSource("VID", d, path), [path])
        assert got is None or len(got) >= 0


test_pysot_json, test_pysot_json_long = twin(json_mutations(PYSOT))(check_pysot_json)

OTB_META = {
    "Basketball": {
        "video_dir": "Basketball",
        "init_rect": [1, 2, 30, 40],
        "img_names": ["Basketball/img/0001.jpg", "Basketball/img/0002.jpg"],
        "gt_rect": [[1, 2, 30, 40], [2, 3, 30, 40]],
        "attr": ["IV"],
    }
}


def check_benchmark_meta_json(m: Mutation) -> None:
    data = m(_text(OTB_META))
    with scratch() as d:
        (d / "Basketball" / "img").mkdir(parents=True)
        for i in (1, 2):
            (d / "Basketball" / "img" / f"{i:04d}.jpg").write_bytes(b"")
        (d / "OTB100.json").write_bytes(data)
        got = outcome(lambda: otb.load(d, layout="json"), [d / "OTB100.json", d])
        assert got is None or all(np.asarray(s.groundtruth).ndim == 2 for s in got)


test_benchmark_meta_json, test_benchmark_meta_json_long = twin(json_mutations(OTB_META))(
    check_benchmark_meta_json
)

ROW = {"name": "a", "relation": True, "auc": 0.5, "success_50": 0.6, "precision": 0.7, "fps": 9.0}
ROWS = [{**ROW, "sequences": 1, "frames": 100, "per_sequence_auc": [0.5]}]


def check_include_rows(m: Mutation) -> None:
    data = m(_text(ROWS))
    with scratch() as d:
        path = d / "rows.json"
        path.write_bytes(data)
        outcome(lambda: load_rows(path), [path])


test_include_rows, test_include_rows_long = twin(json_mutations(ROWS))(check_include_rows)

PROVENANCE = {
    "weights": {"checkpoint_sha256": "ab"},
    "tracker_params": {"lr": 0.4},
    "protocol": "ope",
    "siamrn_jax": "0.1.0",
    "origin": "ckpt",
}


def check_provenance(m: Mutation) -> None:
    with scratch() as d:
        folder = d / "res" / "ours"
        folder.mkdir(parents=True)
        (folder / "provenance.json").write_bytes(m(_text(PROVENANCE)))
        (folder / "A.txt").write_text("1,2,3,4\n")
        outcome(lambda: provenance.claim(folder, PROVENANCE), [folder])


test_provenance, test_provenance_long = twin(json_mutations(PROVENANCE))(check_provenance)
