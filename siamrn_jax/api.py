"""The top-level API: ``siamrn_jax.load``, ``siamrn_jax.Tracker`` and ``siamrn_jax.MultiTracker``.

import siamrn_jax

bundle = siamrn_jax.load("demo")              # or a checkpoint directory; dtype="bfloat16": mixed precision
tracker = siamrn_jax.Tracker(bundle)           # the model's own preset ("demo"), or a name / TrackerParams
tracker.init(frame, (x, y, w, h))              # [H, W, 3] uint8 BGR, 0-based box
out = tracker.track(next_frame)                # {'bbox', 'best_score', 'cls', 'p_match'}

multi = siamrn_jax.MultiTracker(bundle)        # several targets, one batched step per frame
a = multi.add(frame, (x, y, w, h), name="a")   # at any frame; -> id
out = multi.track(next_frame)                  # {id: {'bbox', 'best_score', 'p_match'}}
"""

from __future__ import annotations

import os
from typing import Any

from siamrn_jax import checkpoint
from siamrn_jax.checkpoint import ModelBundle
from siamrn_jax.config import ConfigError
from siamrn_jax.sharding import local_data_mesh
from siamrn_jax.tracking import multi, runner
from siamrn_jax.tracking.params import TrackerParams
from siamrn_jax.xla_flags import apply_default_xla_flags

DEMO = checkpoint.DEMO
NAMED = checkpoint.NAMED  # embedded checkpoints by name
BACKENDS = ("xla", "onnxruntime")


def load(
    path_or_name: str | os.PathLike, dtype: str | Any | None = None, *, inference: bool = True
) -> ModelBundle:
    """A checkpoint directory (``checkpoint.save``, ``python -m siamrn_jax.convert``, ``train.py``'s
    ``WORKDIR/model``), or the name of an embedded one (``"demo"``), as a ``ModelBundle``
    (``checkpoint.load_weights``: also ``"random:CONFIG"`` or an add-on, for untrained weights).

    Args:
      path_or_name: the directory or an embedded name.
      dtype: computation dtype, ``"float32"`` or ``"bfloat16"`` (mixed precision: float32 parameters,
        BatchNorm, softmax and outputs), overriding the one in ``model.json``; None keeps it. The weights
        are the same float32 arrays either way, e.g. ``load("demo", dtype="bfloat16")``.
      inference: variables readied for running (device arrays; on CPU also the Winograd kernels and, for
        NanoTrack, the folded / depthwise form, see ``checkpoint.inference_variables``); False: the stored
        NumPy arrays only.

    Like the command-line entry points, the first ``load`` in a process whose JAX backend has not started
    yet sets the default XLA flags (``siamrn_jax.xla_flags``: XLA:CPU matrix products through YNNPACK,
    measured 3.3x faster for demo_resnet's frame, 1.3x for SiamRN-Nano) unless ``XLA_FLAGS`` is set;
    once a backend runs, the variable changes nothing.

    Raises:
      CheckpointError: not a checkpoint, corrupt, or its variables do not fit its ``model.json``.
      ConfigError: ``dtype`` is neither float32 nor bfloat16.
    """
    apply_default_xla_flags()  # before the checkpoint's arrays start the backend
    return checkpoint.load_weights(path_or_name, dtype, inference=inference)


class Tracker(runner.Tracker):
    """pysot-style tracker on a loaded model: ``init(frame, box)`` then ``track(frame)``.

    Args:
      bundle: ``load(...)``'s ``ModelBundle`` (or any (model, variables, ...) sequence).
      preset: tracker hyper-parameters: a name of ``PRESETS`` (default: the model's own, ``"otb"`` for the
        paper model, ``"demo"`` for the embedded demo model, the official config's for converted
        NanoTrack), or a
        ``TrackerParams`` whose crop sides are replaced by the model's.
      backend: ``"xla"`` (default), or ``"onnxruntime"``: the tracker exported to ONNX once (cached under
        ``$XDG_CACHE_HOME/siamrn-jax/onnx``) and run by onnxruntime on the CPU (needs ``onnxruntime``).
      **overrides: ``TrackerParams`` fields to change (``lr=0.4``, ``relation=False``, ...).

    See ``siamrn_jax.tracking.runner.Tracker`` for ``init``, ``track`` (its returned dict) and ``state``.
    """

    def __init__(
        self,
        bundle: ModelBundle | Any,
        preset: str | TrackerParams | None = None,
        *,
        backend: str = "xla",
        **overrides,
    ):
        model, variables = bundle[0], bundle[1]
        params = TrackerParams.for_model(model, preset, **overrides)
        if backend == "xla":
            super().__init__(model, variables, params)
        elif backend == "onnxruntime":
            # The model exported once (cached, as ``track.py --backend onnxruntime``) from the stored
            # weights; ``OnnxTracker`` only replaces the state set up here, ``init`` / ``track`` are shared.
            from siamrn_jax.export.onnx_cache import cached_export
            from siamrn_jax.tracking.onnx_backend import OnnxTracker

            stored = {k: variables[k] for k in ("params", "batch_stats") if k in variables}
            directory, _ = cached_export(model, stored, params)
            OnnxTracker.__init__(self, directory)
        else:
            raise ConfigError(f"backend={backend!r}: expected one of {BACKENDS}")


class MultiTracker(multi.MultiTracker):
    """Several targets in one video on a loaded model: ``add(frame, box, name=None) -> id`` at any frame,
    ``remove(id)``, ``track(frame) -> {id: {'bbox', 'best_score', 'p_match'}}``, ``ids``.

    Args:
      bundle, preset, **overrides: as for ``Tracker``.
      devices: split the targets' rows over this many local devices (None or 1: the default device).
      on_drop: called with a message when a target's state becomes non-finite and it is dropped
        (default: a logged warning).
      chunk: rows per chunk of big batches (default: 4 on CPU, none elsewhere; ``multi.chunked_step``).

    See ``siamrn_jax.tracking.multi.MultiTracker`` (one jitted step per frame, rows padded to buckets).
    """

    def __init__(
        self,
        bundle: ModelBundle | Any,
        preset: str | TrackerParams | None = None,
        *,
        devices: int | None = None,
        on_drop: Any = None,
        chunk: int | None = None,
        **overrides,
    ):
        model, variables = bundle[0], bundle[1]
        mesh = None if devices in (None, 1) else local_data_mesh(devices)
        params = TrackerParams.for_model(model, preset, **overrides)
        super().__init__(model, variables, params, mesh, on_drop, chunk)
