"""``python -m siamrn_jax.export onnx`` and ``track.py --backend onnxruntime``: the tracker's init / step
converted to ONNX (our jaxpr converter) and run by onnxruntime against the JAX functions they came from.

Stage parity: every template output (state leaf) and step output (state, box, best score, cls, p_match)
of onnxruntime within 1e-4 scaled (|d| / max(1, |ref|)) of XLA, best_index equal; for the demo model
(fast) and the full-size parity model on the fixture's z / x / template box, where the kernels, support
RoIs, refined cls and match scores are also held against the official ones (slow). Trajectory: track.py
--backend onnxruntime (exporting into the cache) on the fixture frames reproduces the official boxes
(IoU >= 0.999, slow). Bad export directories are one-line errors with exit status 2.
"""

from __future__ import annotations

import json
import sys

import cv2
import jax
import numpy as np
import pytest

import siamrn_jax
from siamrn_jax import checkpoint
from siamrn_jax.checkpoint import DEMO_RESNET as DEMO
from siamrn_jax.cli import track as cli
from siamrn_jax.cli.export import main as export_main
from siamrn_jax.config import ConfigError
from siamrn_jax.convert.convert import torch_to_flax
from siamrn_jax.export import onnx as ox
from siamrn_jax.export.stablehlo import ExportError
from siamrn_jax.geometry.iou import iou
from siamrn_jax.io.results import read_boxes
from siamrn_jax.models.siamrn import SiamRN
from siamrn_jax.tracking import onnx_backend
from siamrn_jax.tracking.params import TrackerParams
from siamrn_jax.tracking.runner import Tracker, compiled
from tests.conftest import PARITY, require_parity_fixtures

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

FRAMES = PARITY / "frames"
INIT = "60,80,48,36"  # trajectory.txt line 1


def scaled(ours, ref) -> float:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, f"shape {ours.shape} != {ref.shape}"
    return float((np.abs(ours - ref) / np.maximum(1.0, np.abs(ref))).max()) if ours.size else 0.0


def run_cli(capsys, *argv) -> tuple[int, list[str], list[str]]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def frames(n: int = 12) -> list[np.ndarray]:
    require_parity_fixtures()
    return [cv2.imread(str(FRAMES / f"{i:04d}.png")) for i in range(1, n + 1)]


def stage_parity(directory, model, variables, params, init_args, x_crops) -> dict[str, float]:
    """Worst scaled difference per output of onnxruntime vs the XLA tracker functions (``compiled``), the
    step run from the same XLA state on each search crop; asserts every one <= 1e-4, best_index equal."""
    template, step, meta = onnx_backend.load(directory, threads=2)
    init, step_xla = compiled(model, params)
    v = checkpoint.inference_variables(variables)
    state = init(v, *init_args)
    leaves = [np.asarray(a) for a in jax.tree.leaves(state)]
    got = template.run(None, {i["name"]: a for i, a in zip(meta["template_inputs"], init_args, strict=True)})
    worst = {o["name"]: scaled(g, r) for o, g, r in zip(meta["template_outputs"], got, leaves, strict=True)}
    for x in x_crops:
        new, out = step_xla(v, state, x)
        ref = [*jax.tree.leaves(new), *(a for a in out if a is not None)]
        feeds = dict(zip((i["name"] for i in meta["step_inputs"]), [*leaves, x], strict=True))
        got = step.run(None, feeds)
        for o, g, r in zip(meta["step_outputs"], got, ref, strict=True):
            if o["name"] == "best_index":
                np.testing.assert_array_equal(g, r)
            worst[o["name"]] = max(worst.get(o["name"], 0.0), scaled(g, r))
        state, leaves = new, [np.asarray(a) for a in jax.tree.leaves(new)]
    bad = {k: v for k, v in worst.items() if v > 1e-4}
    assert not bad, f"onnxruntime vs XLA above 1e-4 scaled: {bad}"
    return worst


# --- the demo model (fast) -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "demo"
    assert (
        export_main(["onnx", "--checkpoint", "demo_resnet", "--out", str(out), "--preset", "vot", "-q"]) == 0
    )
    return out


@pytest.fixture(scope="module")
def demo():
    model, variables, _ = checkpoint.load(DEMO, inference=False)
    return model, variables, TrackerParams.for_model(model, "vot")


def crops(n_search: int, seed: int = 0):
    rs = np.random.RandomState(seed)
    init_args = [
        rs.uniform(0, 255, (1, 127, 127, 3)).astype(np.float32),
        np.array([[31.5, 39.5, 95.5, 87.5]], np.float32),
        np.array([[83.5, 97.5]], np.float32),
        np.array([[48, 36]], np.float32),
        np.array([[240, 320]], np.float32),
    ]
    return init_args, [rs.uniform(0, 255, (1, 255, 255, 3)).astype(np.float32) for _ in range(n_search)]


def test_demo_stage_parity(exported, demo):
    worst = stage_parity(exported, *demo, *crops(2))
    print("\nonnxruntime vs XLA (demo), worst scaled:", {k: f"{v:.1e}" for k, v in worst.items()})


def test_demo_tracks_like_the_xla_tracker(exported, demo):
    model, variables, params = demo
    ours = Tracker(model, checkpoint.inference_variables(variables), params)
    theirs = onnx_backend.OnnxTracker(exported, threads=2)
    assert theirs.params == params and theirs.model == model
    fs = frames()
    ours.init(fs[0], [60, 80, 48, 36])
    theirs.init(fs[0], [60, 80, 48, 36])
    for f in fs[1:]:
        a, b = ours.track(f), theirs.track(f)
        np.testing.assert_allclose(b["bbox"], a["bbox"], atol=1e-3)
        np.testing.assert_allclose(b["best_score"], a["best_score"], atol=1e-5)
        np.testing.assert_allclose(b["p_match"], a["p_match"], atol=1e-5)
        assert b["cls"].shape == a["cls"].shape == (25, 25, 2)


def test_files_are_described_and_carry_their_metadata(exported):
    meta = json.loads((exported / "export.json").read_text())
    assert meta["format"] == "siamrn-jax-onnx/1" and meta["siamrn_jax"] == siamrn_jax.__version__
    assert meta["preset"] == "vot" and meta["batch"] == 1 and meta["opset"] == ox.OPSET
    assert meta["sizes"] == {"exemplar": 127, "instance": 255, "score": 25}
    assert [i["name"] for i in meta["template_inputs"]] == ["z_crop", "box", "center", "size", "image_hw"]
    state = [o["name"] for o in meta["template_outputs"]]
    assert meta["step_inputs"] == [
        *meta["template_outputs"],
        {"name": "x_crop", "shape": [1, 255, 255, 3], "dtype": "float32"},
    ]
    names = [o["name"] for o in meta["step_outputs"]]
    assert names == [ox.NEXT + s for s in state] + ["box", "best_score", "best_index", "cls", "p_match"]
    for fname, function in zip(ox.FILES, ("template", "step"), strict=True):
        model = onnx.load(str(exported / fname))
        onnx.checker.check_model(model)
        props = {p.key: p.value for p in model.metadata_props}
        assert {k: json.loads(v) for k, v in props.items()} == {**meta, "function": function}
        # Declared inputs / outputs are the export.json ones, and ONNX shape inference agrees with them.
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        for decl, io in (
            (meta[f"{function}_inputs"], inferred.graph.input),
            (meta[f"{function}_outputs"], inferred.graph.output),
        ):
            assert [(d["name"], d["shape"]) for d in decl] == [
                (t.name, [d.dim_value for d in t.type.tensor_type.shape.dim]) for t in io
            ]


def test_the_two_models_share_one_copy_of_their_weights(exported):
    """Every large initializer lives in weights.bin, each distinct tensor once: the template model's
    backbone and neck are the step model's too (measured on the demo: 1.85 of its 1.90 MB)."""
    onnx = pytest.importorskip("onnx")
    spans = {}
    for fname in ox.FILES:
        model = onnx.load(str(exported / fname), load_external_data=False)
        spans[fname] = {
            tuple(int(e.value) for e in t.external_data if e.key in ("offset", "length"))
            for t in model.graph.initializer
            if t.data_location == onnx.TensorProto.EXTERNAL
        }
        assert not [t.name for t in model.graph.initializer if len(t.raw_data) >= ox._EXTERNAL_MIN_BYTES]
    template, step = spans.values()
    shared = sum(n for _, n in template & step)
    assert shared >= 0.9 * sum(n for _, n in template)
    distinct = sum(n for _, n in template | step)
    size = (exported / ox.WEIGHTS).stat().st_size
    assert distinct <= size < distinct + 64 * len(template | step)  # each tensor once (+ alignment)
    meta = json.loads((exported / "export.json").read_text())
    assert meta["weights"] == {"file": ox.WEIGHTS, "bytes": size}


def test_track_cli_exports_once_into_the_cache(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    base = ["--input", FRAMES, "--init", INIT, "--max-frames", 5, "--preset", "vot"]
    code, out, err = run_cli(capsys, *base, "--backend", "onnxruntime", "--output", tmp_path / "ort.txt")
    assert code == 0, err
    assert out[0].startswith(f"onnxruntime: {tmp_path / 'cache' / 'siamrn-jax' / 'onnx'}")
    assert out[0].endswith("(exported now)")
    (directory,) = (tmp_path / "cache" / "siamrn-jax" / "onnx").iterdir()
    assert sorted(p.name for p in directory.iterdir()) == [
        "export.json",
        "step.onnx",
        "template.onnx",
        ox.WEIGHTS,
    ]
    monkeypatch.setattr(ox, "save", lambda *a, **k: pytest.fail("exported again"))
    code, out, err = run_cli(capsys, *base, "--backend", "onnxruntime", "--output", tmp_path / "ort2.txt")
    assert code == 0 and out[0] == f"onnxruntime: {directory} (cached export)", err
    code, _, err = run_cli(capsys, *base, "--output", tmp_path / "xla.txt")  # --backend xla, the default
    assert code == 0, err
    ort_boxes, xla_boxes = read_boxes(tmp_path / "ort.txt"), read_boxes(tmp_path / "xla.txt")
    np.testing.assert_array_equal(read_boxes(tmp_path / "ort2.txt"), ort_boxes)
    np.testing.assert_allclose(ort_boxes, xla_boxes, atol=1e-3)
    # --onnx DIR tracks with a given export; two inputs are tracked one after the other.
    (tmp_path / "again").symlink_to(FRAMES)
    two = ["--batch", FRAMES, tmp_path / "again", "--init", INIT, "--init", INIT, "--max-frames", 5]
    code, out, err = run_cli(capsys, "--onnx", directory, *two, "--output", tmp_path / "res")
    assert code == 0, err
    for name in ("frames", "again"):
        np.testing.assert_array_equal(read_boxes(tmp_path / "res" / f"{name}.txt"), ort_boxes)


def test_bad_onnx_directories_are_one_line_errors(tmp_path, exported, capsys):
    def fails(expected: str, *argv):
        code, _, err = run_cli(capsys, "--input", FRAMES, "--init", INIT, "--max-frames", 2, *argv)
        assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err

    fails(f"{tmp_path / 'nope'}: not a siamrn-jax ONNX export (no export.json)", "--onnx", tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "export.json").write_text((exported / "export.json").read_text())
    (bad / "template.onnx").write_bytes((exported / "template.onnx").read_bytes())
    fails(f"{bad / 'step.onnx'}: missing", "--onnx", bad)
    (bad / "step.onnx").write_bytes((exported / "step.onnx").read_bytes())
    fails(f"{bad / ox.WEIGHTS}: missing (the models' weights)", "--onnx", bad)
    (bad / ox.WEIGHTS).write_bytes((exported / ox.WEIGHTS).read_bytes()[:-100])  # truncated
    fails(f"{bad / ox.WEIGHTS}: ", "--onnx", bad)
    (bad / ox.WEIGHTS).write_bytes((exported / ox.WEIGHTS).read_bytes())
    (bad / "step.onnx").write_bytes(b"\x08\x07 not a protobuf")
    fails(f"{bad / 'step.onnx'}: not a usable ONNX model", "--onnx", bad)
    (bad / "step.onnx").write_bytes((exported / "template.onnx").read_bytes())  # the wrong model
    fails(f"{bad / 'step.onnx'}: inputs/outputs differ from {bad / 'export.json'}", "--onnx", bad)
    (bad / "export.json").write_text("{")
    fails(f"{bad / 'export.json'}: corrupt JSON", "--onnx", bad)
    (bad / "export.json").write_text(json.dumps({"format": "siamrn-jax-stablehlo/1"}))
    fails("unknown format 'siamrn-jax-stablehlo/1'", "--onnx", bad)
    fails("carries its own weights: drop --checkpoint", "--onnx", exported, "--checkpoint", DEMO)
    fails("runs with --backend onnxruntime, not xla", "--onnx", exported, "--backend", "xla")
    fails("was exported with other tracker parameters", "--onnx", exported, "--preset", "otb")
    assert export_main(["onnx", "--checkpoint", "demo_resnet", "--out", str(exported)]) == 2
    assert capsys.readouterr().err == f"error: {exported}: already exists (use --force)\n"
    assert export_main(["onnx", "--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "not a siamrn-jax checkpoint (no model.json)" in capsys.readouterr().err


def test_missing_onnxruntime_is_a_one_line_error(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    code, _, err = run_cli(capsys, "--input", FRAMES, "--init", INIT, "--backend", "onnxruntime")
    assert code == 2 and err == [
        "error: --backend onnxruntime needs the 'onnxruntime' package: pip install onnxruntime"
    ]
    with pytest.raises(ExportError, match="needs the 'onnxruntime' package"):
        onnx_backend.OnnxTracker(DEMO)


# --- the full-size model on the parity fixtures (slow) ---------------------------------------------------


@pytest.fixture(scope="module")
def parity_model(parity_sd):
    model = SiamRN()
    variables, _ = torch_to_flax(parity_sd, checkpoint.abstract_variables(model))
    return model, variables


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, parity_model):
    """track.py --backend onnxruntime on the fixture frames (the model exported into an empty cache)."""
    d = tmp_path_factory.mktemp("parity_onnx")
    checkpoint.save(d / "ckpt", *parity_model)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(d / "cache"))
        argv = [
            "--checkpoint",
            d / "ckpt",
            "--backend",
            "onnxruntime",
            "--preset",
            "vot",
            "--input",
            FRAMES,
            "--init",
            INIT,
            "--output",
            d / "boxes.txt",
            "--scores",
            d / "scores.txt",
            "-q",
        ]
        assert cli.main([str(a) for a in argv]) == 0
    (directory,) = (d / "cache" / "siamrn-jax" / "onnx").iterdir()
    return directory, read_boxes(d / "boxes.txt"), np.loadtxt(d / "scores.txt")


@pytest.mark.slow
@pytest.mark.parity
def test_trajectory_through_track_py_onnxruntime(tracked, parity_expected):
    _, boxes, scores = tracked
    ref = read_boxes(PARITY / "trajectory.txt")
    assert boxes.shape == ref.shape == (12, 4)
    ious = iou(boxes, ref)
    centre = np.abs((boxes[:, :2] + boxes[:, 2:] / 2) - (ref[:, :2] + ref[:, 2:] / 2)).max()
    score_err = np.nanmax(np.abs(scores - parity_expected["track_best_score"]))
    print(
        f"\ntrack.py --backend onnxruntime vs official: min IoU {ious.min():.6f}, max centre err "
        f"{centre:.2e} px, max best-score err {score_err:.2e}"
    )
    assert ious.min() >= 0.999
    np.testing.assert_allclose(scores[1:], parity_expected["track_best_score"][1:], atol=1e-4)


@pytest.mark.slow
@pytest.mark.parity
def test_full_size_stage_parity_on_the_fixture(tracked, parity_model, parity_expected):
    """The fixture's template crop, template box and search crop through both runtimes; the ONNX outputs
    are also held against the official kernels, support RoIs, refined cls and match scores."""
    directory, _, _ = tracked
    model, variables = parity_model
    params = TrackerParams.for_model(model, "vot")
    e = parity_expected
    init_args = [
        np.ascontiguousarray(e["z"].transpose(0, 2, 3, 1)),
        e["template_box"][None].astype(np.float32),
        np.array([[83.5, 97.5]], np.float32),
        np.array([[48, 36]], np.float32),
        np.array([[240, 320]], np.float32),
    ]
    x = np.ascontiguousarray(e["x"].transpose(0, 2, 3, 1))
    worst = stage_parity(directory, model, variables, params, init_args, [x])
    template, step, meta = onnx_backend.load(directory, threads=2)
    state = template.run(
        None, dict(zip((i["name"] for i in meta["template_inputs"]), init_args, strict=True))
    )
    names = [o["name"] for o in meta["template_outputs"]]
    out = dict(
        zip(
            (o["name"] for o in meta["step_outputs"]),
            step.run(None, dict(zip((i["name"] for i in meta["step_inputs"]), [*state, x], strict=True))),
            strict=True,
        )
    )
    official = {}
    for i, lvl in enumerate((2, 3, 4)):
        official[f"kernel l{lvl}"] = scaled(
            state[names.index(f"state.kernel[{i}]")], e[f"z_neck_crop_l{lvl}"].transpose(0, 2, 3, 1)
        )
        official[f"support l{lvl}"] = scaled(
            state[names.index(f"state.support[{i}]")], e[f"support_roi_l{lvl}"].transpose(0, 2, 3, 1)
        )
    official["cls_refined"] = scaled(out["cls"], e["cls_refined"].transpose(0, 2, 3, 1))
    official["p_match"] = scaled(out["p_match"][0], e["p_match"])
    print(
        "\nonnxruntime vs XLA (full size), worst scaled:",
        {k: f"{v:.1e}" for k, v in worst.items() if not k.startswith(ox.NEXT)},
    )
    print("onnxruntime vs official, scaled:", {k: f"{v:.1e}" for k, v in official.items()})
    assert max(official.values()) <= 1e-4, official


def test_api_tracker_backend_onnxruntime_tracks_like_xla(tmp_path, monkeypatch):
    """``siamrn_jax.Tracker(bundle, backend="onnxruntime")``: the cached export of the loaded model, tracked
    by onnxruntime like the XLA tracker (tolerances of ``test_demo_tracks_like_the_xla_tracker``)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bundle = siamrn_jax.load("demo_resnet")
    ours = siamrn_jax.Tracker(bundle, "vot")
    theirs = siamrn_jax.Tracker(bundle, "vot", backend="onnxruntime")
    assert theirs.variables is None and len(theirs.sessions) == 2 and theirs.params == ours.params
    assert len(list((tmp_path / "cache" / "siamrn-jax" / "onnx").iterdir())) == 1
    fs = frames()[:4]
    ours.init(fs[0], [60, 80, 48, 36])
    theirs.init(fs[0], [60, 80, 48, 36])
    for f in fs[1:]:
        a, b = ours.track(f), theirs.track(f)
        np.testing.assert_allclose(b["bbox"], a["bbox"], atol=1e-3)
        np.testing.assert_allclose(b["p_match"], a["p_match"], atol=1e-5)


def test_api_tracker_rejects_an_unknown_backend():
    with pytest.raises(ConfigError, match="backend='tflite'"):
        siamrn_jax.Tracker(siamrn_jax.load("demo_resnet"), backend="tflite")
