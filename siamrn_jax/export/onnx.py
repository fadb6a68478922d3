"""The tracker's ``init`` / ``step`` as ONNX models (our own jaxpr -> ONNX converter).

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

``siamrn_jax.tracking.onnx_backend`` runs an export with onnxruntime (``OnnxTracker``) and reads its
directory (``read_meta``); ``siamrn_jax.export.onnx_cache`` keeps the exports ``track.py --backend
onnxruntime`` makes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp

from siamrn_jax import __version__, checkpoint
from siamrn_jax.atomic import atomic_directory, atomic_output
from siamrn_jax.export.jaxpr_onnx import OPSET, convert, import_onnx
from siamrn_jax.export.stablehlo import functions
from siamrn_jax.tracking.onnx_backend import FILES, FORMAT, WEIGHTS
from siamrn_jax.tracking.params import TrackerParams

NEXT = "next_"  # prefix of the step model's updated state leaves (ONNX names are single-assignment)
_EXTERNAL_MIN_BYTES = 1024  # smaller tensors (scalars, shapes, biases) stay inside the models


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
