"""The tracker's ``init`` / ``step`` as ONNX models (our own jaxpr -> ONNX converter), run with onnxruntime.

Layout of an export directory::

    DIR/template.onnx   init(z_crop, box, center, size, image_hw) -> state leaves
    DIR/step.onnx       step(*state leaves, x_crop) -> (*next_state leaves, box, best_score, best_index,
                        cls[, p_match])
    DIR/export.json     format, siamrn-jax version, model fields, tracker parameters, preset, sizes, batch,
                        the name, shape and dtype of every input and output of both models, in order, and
                        the converter's counts (JAX primitives met, ONNX nodes made)

The inputs and outputs are those of ``siamrn_jax.export.stablehlo`` (flat float32 / int32 arrays, batch N
fixed at export time, crops cut on the host): template inputs ``z_crop`` [N, 127, 127, 3], ``box`` [N, 4],
``center`` / ``size`` / ``image_hw`` [N, 2]; its outputs, the state leaves, are named ``state.center``,
``state.kernel[0]``, ... and are fed unchanged, by name, to the step model, whose last input is ``x_crop``
[N, 255, 255, 3]. An ONNX graph cannot reuse an input name as an output name, so the step model returns
the updated leaves as ``next_state.center``, ... (fed back as ``state.center``, ...) followed by
``box`` [N, 4], ``best_score`` [N], ``best_index`` [N] int32, ``cls`` [N, S, S, 2] and, with the relation
detector, ``p_match`` [N, S*S]. Every key of export.json is also in each model's ``metadata_props``, its
value JSON-encoded (strings too), plus ``function`` (``"template"`` or ``"step"``).

The graphs are made by ``siamrn_jax.export.jaxpr_onnx`` (our own jaxpr -> ONNX converter, opset 18,
float32).

``OnnxTracker(DIR)`` is the pysot-style ``Tracker`` on top of two onnxruntime sessions; ``cached_export``
exports into (or reuses) ``$XDG_CACHE_HOME/siamrn-jax/onnx/<key>`` (``~/.cache/...``) for ``track.py
--backend onnxruntime``, the key a digest of the weights, model fields, tracker parameters, batch, format,
siamrn-jax version and the source of the code an export is made of.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from siamrn_jax import __version__, checkpoint
from siamrn_jax.atomic import atomic_directory, atomic_output
from siamrn_jax.export.jaxpr_onnx import OPSET, convert, import_onnx
from siamrn_jax.export.stablehlo import ExportError, functions, tracker_setup
from siamrn_jax.format_json import read_format_json
from siamrn_jax.tracking import tracker as core
from siamrn_jax.tracking.params import TrackerParams
from siamrn_jax.tracking.runner import Tracker

FORMAT = "siamrn-jax-onnx/1"
NEXT = "next_"  # prefix of the step model's updated state leaves (ONNX names are single-assignment)
FILES = ("template.onnx", "step.onnx")
# The two models' weights, each distinct tensor once: the template model's backbone and neck are also the
# step model's (byte-identical after constant folding), so embedding them would store them twice.
WEIGHTS = "weights.bin"
_EXTERNAL_MIN_BYTES = 1024  # smaller tensors (scalars, shapes, biases) stay inside the models


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ExportError(
            "--backend onnxruntime needs the 'onnxruntime' package: pip install onnxruntime"
        ) from None
    return onnxruntime


# --- the tracker's two models -----------------------------------------------------------------------------


def export(model, variables, params: TrackerParams, batch: int = 1):
    """(template ModelProto, step ModelProto, description dict) of ``model`` tracking ``batch`` sequences.

    ``variables`` should be the stored arrays (``checkpoint.load(..., inference=False)``): with the CPU-only
    ``winograd`` collection some 3x3 convolutions would be exported as Winograd matrix products."""
    if jnp.dtype(model.dtype) != jnp.float32:
        model = model.clone(dtype=jnp.float32)
    variables = {k: v for k, v in variables.items() if k in ("params", "batch_stats")}
    f = functions(model, variables, params, batch)
    desc = dict(f.desc)
    state = [o["name"] for o in desc["template_outputs"]]
    n = len(state)
    step_out = [NEXT + s for s in state] + [o["name"] for o in desc["step_outputs"][n:]]
    desc["step_outputs"] = [{**o, "name": k} for o, k in zip(desc["step_outputs"], step_out, strict=True)]
    template, t_stats = convert(
        f.template_fn,
        f.template_args,
        [i["name"] for i in desc["template_inputs"]],
        state,
        "siamrn_jax_template",
        "Template step of the SiamRN tracker: crops and geometry -> tracker state (see export.json).",
    )
    step, s_stats = convert(
        f.step_fn,
        f.step_args,
        [i["name"] for i in desc["step_inputs"]],
        step_out,
        "siamrn_jax_step",
        "Per-frame step of the SiamRN tracker: state and search crop -> next state and results.",
    )
    desc["converter"] = {"template": t_stats, "step": s_stats}
    return template, step, desc


def _metadata(model, params: TrackerParams, batch: int, preset: str | None, desc: dict) -> dict:
    onnx = import_onnx()
    cls = next(o for o in desc["step_outputs"] if o["name"] == "cls")
    return {
        "format": FORMAT,
        "siamrn_jax": __version__,
        "jax": jax.__version__,
        "onnx": onnx.__version__,
        "opset": OPSET,
        "model": checkpoint.model_fields(model),
        "params": dict(vars(params)),
        "preset": preset,
        "sizes": {"exemplar": model.exemplar_size, "instance": model.instance_size, "score": cls["shape"][1]},
        "batch": batch,
        **{k: desc[k] for k in ("template_inputs", "template_outputs", "step_inputs", "step_outputs")},
        # what the converter met and made: JAX primitives (equations, folded or not) and ONNX nodes
        "converter": {
            f: {
                "primitives": st["primitives"],
                "onnx_ops": st["ops"],
                "folded_equations": st["folded_equations"],
            }
            for f, st in desc["converter"].items()
        },
    }


def save(
    directory: str | os.PathLike,
    model,
    variables,
    params: TrackerParams,
    batch: int = 1,
    preset: str | None = None,
) -> Path:
    """Exports and writes ``directory`` (atomically); returns it."""
    onnx = import_onnx()
    template, step, desc = export(model, variables, params, batch)
    meta = _metadata(model, params, batch, preset, desc)
    directory = Path(directory).absolute()
    with atomic_directory(directory) as tmp:
        with atomic_output(tmp / WEIGHTS) as f, open(f, "wb") as out:
            meta["weights"] = {"file": WEIGHTS, "bytes": _share_weights((template, step), out)}
        for fname, proto, function in ((FILES[0], template, "template"), (FILES[1], step, "step")):
            props = {k: json.dumps(v, sort_keys=True) for k, v in {**meta, "function": function}.items()}
            onnx.helper.set_model_props(proto, props)
            with atomic_output(tmp / fname) as f:
                f.write_bytes(proto.SerializeToString())
        with atomic_output(tmp / "export.json") as f:
            f.write_text(json.dumps(meta, indent=2, sort_keys=True))
    return directory


def _share_weights(protos, out) -> int:
    """Moves the initializers of ``protos`` of at least ``_EXTERNAL_MIN_BYTES`` into the open binary file
    ``out`` (ONNX external data, ``location`` = ``WEIGHTS``), each distinct tensor (type, shape, bytes)
    once, 64-byte aligned; returns the bytes written."""
    onnx = import_onnx()
    at: dict[bytes, tuple[int, int]] = {}
    for proto in protos:
        for t in proto.graph.initializer:
            if not t.raw_data or len(t.raw_data) < _EXTERNAL_MIN_BYTES:
                continue
            key = hashlib.sha256(f"{t.data_type}:{list(t.dims)}:".encode() + t.raw_data).digest()
            if key not in at:
                out.write(b"\0" * (-out.tell() % 64))
                at[key] = (out.tell(), len(t.raw_data))
                out.write(t.raw_data)
            offset, length = at[key]
            t.ClearField("raw_data")
            t.data_location = onnx.TensorProto.EXTERNAL
            del t.external_data[:]
            for k, v in (("location", WEIGHTS), ("offset", str(offset)), ("length", str(length))):
                entry = t.external_data.add()
                entry.key, entry.value = k, v
    return out.tell()


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


# --- the export cache of track.py --backend onnxruntime ----------------------------------------------------


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/siamrn-jax/onnx`` (``~/.cache/siamrn-jax/onnx`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "siamrn-jax" / "onnx"


@functools.cache
def _code_digest() -> str:
    """Digest of the code an export is made of (converter, tracker, models, ops), so that a development
    checkout never reuses an export of other code under the same version number."""
    pkg = Path(__file__).resolve().parents[1]
    h = hashlib.blake2b(digest_size=16)
    files = [pkg / "tracking" / "tracker.py", pkg / "tracking" / "params.py"]
    for sub in ("export", "models", "ops", "geometry"):
        files += sorted((pkg / sub).glob("*.py"))
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def cache_key(model, variables, params: TrackerParams, batch: int = 1) -> str:
    """Hex digest of everything an export depends on: weights, model fields, tracker parameters, batch,
    format, siamrn-jax version and code."""
    h = hashlib.blake2b(digest_size=16)
    head = {
        "format": FORMAT,
        "opset": OPSET,
        "version": __version__,
        "code": _code_digest(),
        "model": checkpoint.model_fields(model.clone(dtype=jnp.float32)),
        "params": dict(vars(params)),
        "batch": batch,
    }
    h.update(json.dumps(head, sort_keys=True).encode())
    stored = {k: variables[k] for k in ("params", "batch_stats") if k in variables}
    for path, leaf in jax.tree_util.tree_flatten_with_path(stored)[0]:
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cached_export(
    model, variables, params: TrackerParams, batch: int = 1, root: str | os.PathLike | None = None
) -> tuple[Path, bool]:
    """(the export directory of this model and params under ``root`` (``cache_root()``), whether it was
    written now): an existing valid export is reused, anything else is (re)exported atomically."""
    d = Path(root) if root is not None else cache_root()
    d = d / cache_key(model, variables, params, batch)
    try:
        read_meta(d)
        return d, False
    except ExportError:
        pass
    return save(d, model, variables, params, batch), True
