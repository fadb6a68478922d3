"""The export cache of ``track.py --backend onnxruntime`` and ``siamrn_jax.Tracker(bundle,
backend="onnxruntime")``: ``cached_export`` exports into (or reuses) ``$XDG_CACHE_HOME/siamrn-jax/onnx/<key>``
(``~/.cache/...``), the key a digest of the weights, model fields, tracker parameters, batch, format,
siamrn-jax version and the source of the code an export is made of.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from siamrn_jax import __version__, checkpoint
from siamrn_jax.export import onnx as onnx_export
from siamrn_jax.export.jaxpr_onnx import OPSET
from siamrn_jax.tracking.exported import ExportError
from siamrn_jax.tracking.onnx_backend import FORMAT, read_meta
from siamrn_jax.tracking.params import TrackerParams


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
    files = [pkg / "tracking" / f for f in ("tracker.py", "params.py", "exported.py")]
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
    return onnx_export.save(d, model, variables, params, batch), True
