"""The onnxruntime tracking backend: ``OnnxTracker``, the pysot-style ``Tracker`` running the tracker's
``init`` / ``step`` exported as ONNX models (``siamrn_jax.export.onnx``) with onnxruntime on the CPU.

Layout of an export directory (written by ``siamrn_jax.export.onnx.save``; see that module for the inputs
and outputs of the two models)::

    DIR/template.onnx   init(z_crop, box, center, size, image_hw) -> state leaves
    DIR/step.onnx       step(*state leaves, x_crop) -> (*next_state leaves, box, best_score, best_index,
                        cls[, p_match])
    DIR/weights.bin     the two models' weights (ONNX external data), each distinct tensor once
    DIR/export.json     format, versions, model fields, tracker parameters, preset, sizes, batch, the name,
                        shape and dtype of every input and output of both models, in order

``read_meta`` checks a directory, ``load`` opens its two sessions. ``track.py --backend onnxruntime`` and
``siamrn_jax.Tracker(bundle, backend="onnxruntime")`` run it (the export cached by
``siamrn_jax.export.onnx_cache``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from siamrn_jax.format_json import read_format_json
from siamrn_jax.tracking import tracker as core
from siamrn_jax.tracking.exported import ExportError, tracker_setup
from siamrn_jax.tracking.runner import Tracker

FORMAT = "siamrn-jax-onnx/1"
FILES = ("template.onnx", "step.onnx")
# The two models' weights, each distinct tensor once: the template model's backbone and neck are also the
# step model's (byte-identical after constant folding), so embedding them would store them twice.
WEIGHTS = "weights.bin"


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ExportError(
            "--backend onnxruntime needs the 'onnxruntime' package: pip install onnxruntime"
        ) from None
    return onnxruntime


def read_meta(directory: str | os.PathLike) -> dict[str, Any]:
    """The ``export.json`` dict of an ONNX export directory; ``ExportError`` if absent, corrupt or of
    another format, or if a model file is missing."""
    d = Path(directory)
    meta = read_format_json(
        d / "export.json", FORMAT, ExportError, f"{d}: not a siamrn-jax ONNX export (no export.json)"
    )
    for key in ("template_inputs", "template_outputs", "step_inputs", "step_outputs"):
        if not _io_entries(meta.get(key)):
            raise ExportError(f"{d / 'export.json'}: {key!r} is not a list of {{name, dtype}} entries")
    for fname in FILES:
        if not (d / fname).is_file():
            raise ExportError(f"{d / fname}: missing")
    weights = meta.get("weights")  # absent in exports that embed their weights (siamrn-jax 0.1)
    if weights is not None and not (
        isinstance(weights, dict)
        and isinstance(weights.get("file"), str)
        and isinstance(weights.get("bytes"), int)
        and "/" not in weights["file"]
    ):
        raise ExportError(f'{d / "export.json"}: \'weights\' is not {{"file": NAME, "bytes": N}}')
    if weights is not None:
        path = d / weights["file"]
        if not path.is_file():
            raise ExportError(f"{path}: missing (the models' weights)")
        if path.stat().st_size != weights["bytes"]:
            raise ExportError(f"{path}: {path.stat().st_size} bytes, export.json says {weights['bytes']}")
    return meta


def _io_entries(entries: Any) -> bool:
    """Whether ``entries`` is a list of ``{"name": str, "dtype": a NumPy dtype name, ...}``."""
    if not isinstance(entries, list):
        return False
    for e in entries:
        if not (isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("dtype"), str)):
            return False
        try:
            np.dtype(e["dtype"])
        except TypeError:
            return False
    return True


def session_options(threads: int | None = None):
    """onnxruntime ``SessionOptions``: all graph optimisations, ``threads`` intra-op threads (None: the
    onnxruntime default, one per physical core), sequential execution."""
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    if threads is not None:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    return so


def load(directory: str | os.PathLike, threads: int | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """(template, step) ``onnxruntime.InferenceSession`` (CPU) and the export.json dict; ``ExportError`` if
    the directory is unusable (the message names the file)."""
    ort = import_onnxruntime()
    d = Path(directory)
    meta = read_meta(d)
    sessions = []
    for fname, function in zip(FILES, ("template", "step"), strict=True):
        path = d / fname
        try:
            s = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 (onnxruntime raises its own untyped Fail / InvalidProtobuf)
            msg = " ".join(str(e).split())[:300]
            raise ExportError(f"{path}: not a usable ONNX model ({type(e).__name__}: {msg})") from None
        got_in = [i.name for i in s.get_inputs()]
        got_out = [o.name for o in s.get_outputs()]
        want_in = [i["name"] for i in meta[f"{function}_inputs"]]
        want_out = [o["name"] for o in meta[f"{function}_outputs"]]
        if got_in != want_in or got_out != want_out:
            raise ExportError(f"{path}: inputs/outputs differ from {d / 'export.json'}")
        if s.get_modelmeta().custom_metadata_map.get("format") != json.dumps(FORMAT):
            raise ExportError(f"{path}: not a {FORMAT} model (metadata_props)")
        sessions.append(s)
    return sessions[0], sessions[1], meta


class OnnxTracker(Tracker):
    """``runner.Tracker`` (``init(frame, box)`` / ``track(frame)``) running the exported ONNX models with
    onnxruntime on the CPU: the same host crops, then the two sessions (state kept as NumPy arrays)."""

    def __init__(self, directory: str | os.PathLike, threads: int | None = None):
        template, step, meta = load(directory, threads)
        model, self.params, treedef = tracker_setup(directory, meta, "OnnxTracker")
        self.model, self.variables = model, None
        self.meta, self.directory = meta, Path(directory)
        n = treedef.num_leaves
        if n != len(meta["template_outputs"]):
            raise ExportError(
                f"{Path(directory) / 'export.json'}: {len(meta['template_outputs'])} state leaves, this "
                f"siamrn-jax has {n}: re-export with this version"
            )
        t_in = [(i["name"], np.dtype(i["dtype"])) for i in meta["template_inputs"]]
        s_in = [(i["name"], np.dtype(i["dtype"])) for i in meta["step_inputs"]]
        self.sessions = (template, step)

        def init(_variables, *args):
            feeds = {k: np.asarray(a, dt) for (k, dt), a in zip(t_in, args, strict=True)}
            return jax.tree.unflatten(treedef, template.run(None, feeds))

        def step_fn(_variables, state, x):
            leaves = [*jax.tree.leaves(state), x]
            out = step.run(None, {k: np.asarray(a, dt) for (k, dt), a in zip(s_in, leaves, strict=True)})
            rest = list(out[n:]) + ([None] if not self.params.relation else [])
            return jax.tree.unflatten(treedef, out[:n]), core.StepOutput(*rest)

        self._init, self._step = init, step_fn
        self._state, self._avg = None, None
