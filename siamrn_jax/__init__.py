"""siamrn-jax: the SiamRN tracker (CVPR 2021) in JAX/Flax.

Top level (loaded on first use, so ``import siamrn_jax`` stays cheap and starts no JAX backend):

- ``siamrn_jax.__version__``;
- ``siamrn_jax.load(path_or_name)``: a checkpoint directory or ``"demo"`` -> ``ModelBundle``
  (model, variables, meta);
- ``siamrn_jax.Tracker(bundle, preset="otb")``: pysot-like ``init(frame, box)`` / ``track(frame)``;
- ``siamrn_jax.MultiTracker(bundle)``: several targets in one video, ``add(frame, box)`` at any frame,
  ``remove(id)``, ``track(frame)``: one batched step per frame for all of them.

Deeper: ``siamrn_jax.models.siamrn.SiamRN`` (the staged network), ``siamrn_jax.checkpoint``,
``siamrn_jax.tracking.runner`` (``Tracker``, ``track_batch``), ``siamrn_jax.tracking.tracker`` (the pure
jitted ``init`` / ``step``). Commands: ``siamrn-track``, ``siamrn-train``, ``siamrn-eval``,
``siamrn-convert``, ``siamrn-bench`` (``siamrn_jax.cli.commands``). Conventions:
``siamrn_jax.geometry.boxes``.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

try:
    __version__ = metadata.version("siamrn-jax")
except metadata.PackageNotFoundError:  # a checkout used without installing it
    __version__ = "0+unknown"

__all__ = ["MultiTracker", "Tracker", "__version__", "load"]


def __getattr__(name: str) -> Any:
    if name in ("load", "Tracker", "MultiTracker", "ModelBundle"):
        from siamrn_jax import api

        return getattr(api, name)
    raise AttributeError(f"module 'siamrn_jax' has no attribute {name!r}")
