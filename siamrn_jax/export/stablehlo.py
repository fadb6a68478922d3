"""The tracker's ``init`` / ``step`` as serialized ``jax.export`` (StableHLO) artifacts.

Layout of an export directory::

    DIR/template.jaxexport   init(z_crop, box, center, size, image_hw) -> state leaves
    DIR/step.jaxexport       step(*state leaves, x_crop) -> (*state leaves, box, best_score, best_index, cls
                             [, p_match])
    DIR/export.json          format, siamrn-jax version, model fields, tracker parameters, batch, and
                             the name, shape and dtype of every input and output, in order

Inputs and outputs are flat tuples of arrays (no pytree registrations needed to deserialize): any JAX
program can ``jax.export.deserialize`` the files and ``.call`` them; the state leaves it gets from the
template function go back into the step function unchanged. The weights are constants inside the
artifacts, the batch size N is fixed at export time, crops are float32 raw BGR (the host cuts them as
``siamrn_jax.tracking.runner`` does: template 127, search 255 around the state's centre). Shapes:
z_crop [N, 127, 127, 3], box [N, 4] (x1, y1, x2, y2 template RoI), center / size / image_hw [N, 2],
x_crop [N, 255, 255, 3]; outputs as ``siamrn_jax.tracking.tracker.StepOutput``.

``ExportedTracker(DIR)`` is the pysot-style ``Tracker`` on top of the two artifacts.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from siamrn_jax import __version__, checkpoint
from siamrn_jax.atomic import atomic_directory, atomic_output
from siamrn_jax.format_json import read_format_json
from siamrn_jax.tracking import tracker as core
from siamrn_jax.tracking.exported import INIT_INPUTS, ExportError, input_specs, tracker_setup
from siamrn_jax.tracking.params import TrackerParams
from siamrn_jax.tracking.runner import Tracker

FORMAT = "siamrn-jax-stablehlo/1"


def _describe(names, leaves) -> list[dict[str, Any]]:
    return [
        {"name": k, "shape": list(a.shape), "dtype": jnp.dtype(a.dtype).name}
        for k, a in zip(names, leaves, strict=True)
    ]


def _state_names(state) -> list[str]:
    return ["state" + jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]


class Functions(NamedTuple):
    """The tracker's two functions with flat array I/O, their example arguments and I/O description."""

    template_fn: Any  # template_fn(*INIT_INPUTS) -> state leaves
    step_fn: (
        Any  # step_fn(*state leaves, x_crop) -> (*state leaves, box, best_score, best_index, cls[, p_match])
    )
    template_args: tuple  # ShapeDtypeStructs
    step_args: tuple
    desc: dict[str, Any]  # template_inputs / template_outputs / step_inputs / step_outputs


def functions(model, variables, params: TrackerParams, batch: int = 1) -> Functions:
    """``init`` / ``step`` of ``model`` tracking ``batch`` sequences, weights closed over, as functions of
    flat arrays (shared by the StableHLO and ONNX exporters)."""
    spec = input_specs(model, batch)
    init = functools.partial(core.init, model=model, params=params)
    step = functools.partial(core.step, model=model, params=params)
    state_shape = jax.eval_shape(init, variables, *(spec[k] for k in INIT_INPUTS))
    state_leaves, treedef = jax.tree.flatten(state_shape)

    def template_fn(*args):
        return tuple(jax.tree.leaves(init(variables, *args)))

    def step_fn(*args):
        state = jax.tree.unflatten(treedef, args[:-1])
        new, out = step(variables, state, args[-1])
        return (*jax.tree.leaves(new), *(x for x in out if x is not None))

    template_args = tuple(spec[k] for k in INIT_INPUTS)
    step_args = (*state_leaves, spec["x_crop"])
    state_names = _state_names(state_shape)
    out_names = [k for k in core.StepOutput._fields if not (k == "p_match" and not params.relation)]
    step_outs = jax.eval_shape(step_fn, *step_args)
    desc = {
        "template_inputs": _describe(INIT_INPUTS, template_args),
        "template_outputs": _describe(state_names, state_leaves),
        "step_inputs": _describe([*state_names, "x_crop"], step_args),
        "step_outputs": _describe([*state_names, *out_names], step_outs),
    }
    return Functions(template_fn, step_fn, template_args, step_args, desc)


def export(model, variables, params: TrackerParams, batch: int = 1):
    """(template Exported, step Exported, description dict) of ``model`` tracking ``batch`` sequences."""
    f = functions(model, variables, params, batch)
    template = jax.export.export(jax.jit(f.template_fn))(*f.template_args)
    stepped = jax.export.export(jax.jit(f.step_fn))(*f.step_args)
    return template, stepped, f.desc


def save(directory: str | os.PathLike, model, variables, params: TrackerParams, batch: int = 1) -> Path:
    """Exports and writes ``directory`` (atomically); returns it."""
    template, stepped, desc = export(model, variables, params, batch)
    meta = {
        "format": FORMAT,
        "siamrn_jax": __version__,
        "jax": jax.__version__,
        "model": checkpoint.model_fields(model),
        "params": {k: v for k, v in vars(params).items()},
        "batch": batch,
        **desc,
    }
    directory = Path(directory).absolute()
    with atomic_directory(directory) as tmp:
        for name, exp in (("template", template), ("step", stepped)):
            with atomic_output(tmp / f"{name}.jaxexport") as f:
                f.write_bytes(bytes(exp.serialize()))
        with atomic_output(tmp / "export.json") as f:
            f.write_text(json.dumps(meta, indent=2, sort_keys=True))
    return directory


def load(directory: str | os.PathLike) -> tuple[Any, Any, dict[str, Any]]:
    """(template, step) ``jax.export.Exported`` and the ``export.json`` dict; ``ExportError`` if unusable."""
    d = Path(directory)
    missing = f"{d}: not a siamrn-jax StableHLO export (no export.json)"
    meta = read_format_json(d / "export.json", FORMAT, ExportError, missing)
    out = []
    for name in ("template", "step"):
        path = d / f"{name}.jaxexport"
        try:
            out.append(jax.export.deserialize(bytearray(path.read_bytes())))
        except FileNotFoundError:
            raise ExportError(f"{path}: missing") from None
        except Exception as e:  # noqa: BLE001 (flatbuffer / StableHLO parse errors have no common type)
            raise ExportError(f"{path}: not a jax.export artifact ({type(e).__name__}: {e})") from None
    return out[0], out[1], meta


class ExportedTracker(Tracker):
    """``runner.Tracker`` (``init(frame, box)`` / ``track(frame)``) running the exported artifacts instead
    of compiling the model: the same host crops, the deserialized functions on the device."""

    def __init__(self, directory: str | os.PathLike):
        template, stepped, meta = load(directory)
        model, self.params, treedef = tracker_setup(directory, meta, "ExportedTracker")
        self.model, self.variables = model, None
        n_state = treedef.num_leaves

        # The artifacts take float32 crops (``input_specs``); the trackers cut uint8 ones.
        def init(_variables, z, *args):
            return jax.tree.unflatten(treedef, template.call(np.asarray(z, np.float32), *args))

        def step(_variables, state, x):
            out = stepped.call(*jax.tree.leaves(state), np.asarray(x, np.float32))
            rest = list(out[n_state:]) + ([None] if not self.params.relation else [])
            return jax.tree.unflatten(treedef, out[:n_state]), core.StepOutput(*rest)

        self._init, self._step = init, step
        self._state, self._avg = None, None
