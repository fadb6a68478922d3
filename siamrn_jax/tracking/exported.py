"""What a tracker running exported functions reads from an export directory (StableHLO, ONNX).

The exporters (``siamrn_jax.export``) write these directories; the trackers that run them
(``siamrn_jax.export.stablehlo.ExportedTracker``, ``siamrn_jax.tracking.onnx_backend.OnnxTracker``) read
them with this module: the error type, the flat inputs of the template function and the structure of the
tracker state they return.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from siamrn_jax import checkpoint
from siamrn_jax.config import build_model
from siamrn_jax.errors import SiamrnError
from siamrn_jax.tracking import tracker as core
from siamrn_jax.tracking.params import TrackerParams, check_fits

INIT_INPUTS = ("z_crop", "box", "center", "size", "image_hw")


class ExportError(SiamrnError, ValueError):
    """An export directory that is missing, corrupt, or of another format."""


def input_specs(model, n: int) -> dict[str, jax.ShapeDtypeStruct]:
    """Shapes of the flat inputs of the exported functions for ``n`` sequences: ``INIT_INPUTS`` and
    ``x_crop`` (float32 raw BGR crops; boxes, centres and sizes in image pixels)."""
    e, s = model.exemplar_size, model.instance_size
    f32 = jnp.float32
    return {
        "z_crop": jax.ShapeDtypeStruct((n, e, e, 3), f32),
        "box": jax.ShapeDtypeStruct((n, 4), f32),
        "center": jax.ShapeDtypeStruct((n, 2), f32),
        "size": jax.ShapeDtypeStruct((n, 2), f32),
        "image_hw": jax.ShapeDtypeStruct((n, 2), f32),
        "x_crop": jax.ShapeDtypeStruct((n, s, s, 3), f32),
    }


def state_treedef(model, params: TrackerParams, batch: int = 1):
    """The pytree structure of the ``TrackState`` of ``model`` and ``params`` (no weights needed)."""
    spec = input_specs(model, batch)
    shape = jax.eval_shape(
        functools.partial(core.init, model=model, params=params),
        checkpoint.abstract_variables(model),
        *(spec[k] for k in INIT_INPUTS),
    )
    return jax.tree.structure(shape)


def tracker_setup(
    directory: str | os.PathLike, meta: dict[str, Any], tracker: str
) -> tuple[Any, TrackerParams, Any]:
    """(model, tracker parameters, state treedef) of an export's ``export.json`` for ``tracker`` (a class
    name, for the message), which tracks one sequence; ``ExportError`` naming the file for anything else."""
    where = Path(directory) / "export.json"
    if meta.get("batch") != 1:
        raise ExportError(f"{directory}: exported for batch {meta.get('batch')!r}; {tracker} tracks one")
    fields, values = meta.get("model"), meta.get("params")
    if not isinstance(fields, dict) or not isinstance(values, dict):
        raise ExportError(f"{where}: expected 'model' and 'params' objects")
    try:
        model = build_model(fields)
        params = TrackerParams(**values)
        check_fits(model, params)
        return model, params, state_treedef(model, params)
    except SiamrnError as e:  # ConfigError, ParamsMismatchError
        raise ExportError(f"{where}: {e}") from None
    # Unknown params keys (TypeError), values the tracker's shape arithmetic rejects: a hand-edited file.
    except (TypeError, ValueError, ZeroDivisionError) as e:
        raise ExportError(f"{where}: unusable model or params ({type(e).__name__}: {e})") from None
