"""Model checkpoints on disk: an orbax tree of variables plus a JSON description of the model.

Layout of a checkpoint directory::

    DIR/model.json     {"format": "siamrn-jax/1", "model": {...model fields...}, "source": {...}}
    DIR/variables/     orbax (OCDBT) tree {'params': ..., 'batch_stats': ...}

Loading is strict: the stored tree must have exactly the leaves and shapes of the model described by
``model.json``; otherwise the error lists the missing, unexpected and mis-shaped leaves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

from siamrn_jax.atomic import atomic_directory, atomic_output
from siamrn_jax.config import ConfigError, build_model, compute_dtype
from siamrn_jax.errors import SiamrnError
from siamrn_jax.format_json import read_format_json
from siamrn_jax.models import fuse
from siamrn_jax.models.interface import Architecture, BNTrain
from siamrn_jax.models.layers import FUSED, full_precision
from siamrn_jax.models.registry import DEFAULT_ARCH, field_names, model_class, spec
from siamrn_jax.ops import winograd

FORMAT = "siamrn-jax/1"


class CheckpointError(SiamrnError, ValueError):
    """A checkpoint directory is missing, corrupt, or does not fit its model."""


class ModelBundle(NamedTuple):
    """What ``load`` returns; unpacks as ``model, variables, meta = load(...)``.

    Attributes:
      model: the network described by ``model.json`` (``SiamRN``, or ``NanoTrack`` when its ``arch`` says so).
      variables: ``{'params': ..., 'batch_stats': ...}`` as NumPy arrays.
      meta: the ``model.json`` dict (``format``, ``model`` fields, ``source``: where the weights came from).
    """

    model: Architecture
    variables: dict[str, Any]
    meta: dict[str, Any]

    def __repr__(self) -> str:
        m = self.model
        n = sum(int(np.size(a)) for a in jax.tree.leaves(self.variables.get("params", {})))
        src = self.meta.get("source") or {}
        origin = src.get("train") or src.get("path") or src.get("kind") or "unknown"
        return (
            f"ModelBundle({type(m).__name__}(arch={m.arch}, levels={tuple(m.levels)}, channels={m.channels}, "
            f"relation={m.has_relation}, crops={m.exemplar_size}/{m.instance_size}, stride={m.stride}, "
            f"dtype={jnp.dtype(m.dtype).name}), {n:,} parameters, source={origin})"
        )


# SiamRN fields that only change how the network is executed, not what it computes or its variables:
# they are not written to model.json (so checkpoints stay loadable by and from versions without them), and
# a loaded model has their defaults.
EXECUTION_FIELDS = ("remat_backbone",)
# Fields written to model.json only when they differ from their architecture's default (an absent one
# means it), so that checkpoints written before a field existed still load and the paper model's
# model.json stays what it was: the ablation switches (paper Table 3; ``rd_levels`` equal to ``levels``
# counts as the default), ``default_preset`` (SiamRN's ``otb``, NanoTrack's None = its official config's;
# the embedded demo checkpoints name their own tuned ``demo`` / ``demo_resnet``) and NanoTrack's
# ``rd_width`` (None: its neck width, as every SiamRN-Nano checkpoint before the field).
OPTIONAL_FIELDS = ("rd_levels", "rd_heads", "default_preset", "rd_width")


def _is_optional_default(model, name: str, value: Any) -> bool:
    if name == "rd_levels":
        return value is None or list(value) == list(model.levels)
    default = {f.name: f.default for f in dataclasses.fields(type(model))}[name]
    return value == (list(default) if isinstance(default, tuple) else default)


def model_fields(model) -> dict[str, Any]:
    """The JSON-serialisable architecture description of ``model`` (inverse of ``build_model``), without
    the ``EXECUTION_FIELDS`` and the ``OPTIONAL_FIELDS`` at their defaults. ``dtype`` is
    included: the computation dtype the model was saved with, which ``load(..., dtype=...)`` can override.
    ``arch`` is written only by architectures that have it as a field (the paper model's model.json is
    unchanged by the registry)."""
    out = {}
    for name in sorted(field_names(type(model))):
        if name in EXECUTION_FIELDS:
            continue
        v = getattr(model, name)
        v = jnp.dtype(v).name if name == "dtype" else (list(v) if isinstance(v, tuple | list) else v)
        if name in OPTIONAL_FIELDS and _is_optional_default(model, name, v):
            continue
        out[name] = v
    return out


def abstract_variables(model: Architecture) -> dict[str, Any]:
    """``ShapeDtypeStruct`` tree of the model's variables (no allocation)."""
    s, e = model.instance_size, model.exemplar_size
    z = jnp.zeros((1, e, e, 3), jnp.float32)
    x = jnp.zeros((1, s, s, 3), jnp.float32)
    box = jnp.zeros((1, 4), jnp.float32)
    return jax.eval_shape(model.init, jax.random.key(0), z, box, x)


def init_variables(model: Architecture, seed: int = 0, calibrate: int = 0) -> dict[str, Any]:
    """Freshly initialised variables (one jitted ``init``: about 1 s of compilation for the smoke model,
    about 13 s for the full model on 2 CPU cores).

    Args:
      model: the network.
      seed: parameter seed.
      calibrate: if > 0, that many forward passes on random 0-255 images with every BatchNorm in train
        mode move the running statistics (momentum 0.1) towards real activation statistics. Untrained
        weights with the initial statistics (mean 0, var 1) see raw 0-255 pixels and overflow
        ``exp(loc)``; calibrated ones give finite outputs, which is all smoke tests and timing need.
    """
    s, e = model.instance_size, model.exemplar_size
    z = jnp.zeros((1, e, e, 3), jnp.float32)
    x = jnp.zeros((1, s, s, 3), jnp.float32)
    box = jnp.asarray([[31.5, 39.5, 95.5, 87.5]], jnp.float32)
    variables = jax.jit(model.init)(jax.random.key(seed), z, box, x)
    if calibrate:
        bn = BNTrain(backbone=True, neck=True, head=True, relation=True)
        frozen = spec(model.arch).frozen_bn_stats

        @jax.jit
        def update(variables, key):
            kz, kx = jax.random.split(key)
            z = jax.random.uniform(kz, (2, e, e, 3), maxval=255.0)
            x = jax.random.uniform(kx, (2, s, s, 3), maxval=255.0)
            _, new = model.apply(variables, z, jnp.tile(box, (2, 1)), x, bn, mutable=["batch_stats"])
            # BatchNorms the architecture never trains (SiamRN's stem, as the official code), but random
            # weights need their statistics too.
            stats = dict(new["batch_stats"])
            extra = frozen(model, variables, z) if frozen is not None else {}
            for module, sub in extra.items():
                stats[module] = {**stats[module], **sub}
            return {**variables, "batch_stats": stats}

        for key in jax.random.split(jax.random.key(seed + 1), calibrate):
            variables = update(variables, key)
    return variables


def save(
    directory: str | os.PathLike,
    model: Architecture,
    variables: Any,
    source: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes ``variables`` of ``model`` to ``directory`` (created; refuses to overwrite unless asked).

    The tree is written to a temporary sibling directory and renamed into place, so an interrupted save
    never leaves a half-written checkpoint under the final name.
    """
    directory = Path(directory).absolute()
    if directory.exists() and not overwrite:
        raise CheckpointError(f"{directory}: already exists (use overwrite=True / --force)")
    with atomic_directory(directory) as tmp:
        host = jax.tree.map(
            np.asarray, {k: variables[k] for k in ("params", "batch_stats") if k in variables}
        )
        # Host NumPy arrays written by this process alone: in a multi-process run (the end of training)
        # orbax would otherwise wait at barriers for processes that never call save.
        me = jax.process_index()
        solo = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})
        ckptr = ocp.StandardCheckpointer(multiprocessing_options=solo)
        ckptr.save(tmp / "variables", host)
        ckptr.wait_until_finished()
        meta = {"format": FORMAT, "model": model_fields(model), "source": source or {}}
        with atomic_output(tmp / "model.json") as f:
            f.write_text(json.dumps(meta, indent=2, sort_keys=True))
    return directory


def load(directory: str | os.PathLike, dtype: Any = None, *, inference: bool = True) -> ModelBundle:
    """Reads a checkpoint written by ``save``.

    Args:
      directory: the checkpoint directory.
      dtype: computation dtype of the returned model (``"float32"``, ``"bfloat16"``, or ``"float64"`` under
        ``jax_enable_x64``), overriding ``model.json``'s; None keeps it. The variables are the stored float32
        arrays, except for float64, where they are cast to float64 so the model computes in float64 end
        to end (exact comparisons with the official code run in float64).
      inference: ready the variables for running the model (``inference_variables``): device arrays, plus
        on CPU the Winograd-transformed kernels. False: the stored arrays exactly, as NumPy (conversion,
        export, anything that writes or compares the weights).

    Returns:
      ``ModelBundle`` (model, variables, the ``model.json`` dict as stored).

    Raises:
      CheckpointError: not a checkpoint, corrupt, or its variables do not fit its ``model.json``.
      ConfigError: ``dtype`` is not a computation dtype.
    """
    directory = Path(directory).absolute()  # orbax reads no metadata through relative paths
    meta_path = directory / "model.json"
    missing = f"{directory}: not a siamrn-jax checkpoint (no model.json)"
    meta = read_format_json(meta_path, FORMAT, CheckpointError, missing)
    section = _model_section(meta_path, meta)
    override = None if dtype is None else compute_dtype(dtype)  # ConfigError: the caller's bad value
    try:
        model = build_model(section, override)
    except ConfigError as e:  # model.json itself is bad, e.g. a dtype edited by hand
        raise CheckpointError(f"{meta_path}: {e}") from None
    try:
        target = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), abstract_variables(model))
    except (TypeError, ValueError, ZeroDivisionError) as e:  # sizes its shape arithmetic rejects
        raise CheckpointError(f"{meta_path}: the model it describes cannot be built ({e})") from None
    ckptr = ocp.StandardCheckpointer()
    try:
        with _quiet_abandoned_reads():
            item = ckptr.metadata(directory / "variables").item_metadata
    except (FileNotFoundError, ValueError) as e:
        raise CheckpointError(f"{directory / 'variables'}: unreadable orbax tree ({e})") from None
    if item is None:  # orbax logs a damaged _METADATA / manifest.ocdbt and returns no tree
        raise CheckpointError(f"{directory / 'variables'}: unreadable orbax tree (its metadata is corrupt)")
    stored = item.tree
    _check_tree(directory, stored, target)
    try:
        with _quiet_abandoned_reads():
            variables = ckptr.restore(directory / "variables", target)
    except ValueError as e:  # tensorstore reports missing / truncated / corrupt chunks as ValueError
        msg = " ".join(str(e).split())[:300]
        raise CheckpointError(f"{directory / 'variables'}: corrupt or truncated tensors ({msg})") from None
    if model.dtype == jnp.float64:
        variables = jax.tree.map(lambda a: np.asarray(a, np.float64), variables)
    return ModelBundle(model, inference_variables(variables, model) if inference else variables, meta)


def inference_variables(variables: dict[str, Any], model: Any = None) -> dict[str, Any]:
    """Stored variables (NumPy or device arrays) made ready for inference, once per load: on the default
    device, so jitted calls stop copying ~100 MB of NumPy weights in on every call (measured 70-80 ms
    per template init or SiamBAN pass on the 2-core development CPU), and on CPU with the ``winograd``
    collection (``siamrn_jax.ops.winograd``: the 3x3 layers as Winograd products, 1.2-1.5x faster there)
    and, given the ``model``, the ``fused`` one (``siamrn_jax.models.fuse``: BatchNorm folded into the
    convolution before it, depthwise layers as shifted multiply-adds; NanoTrack V2's frame several times
    faster there). The ``params`` / ``batch_stats`` values are unchanged."""
    if jax.default_backend() == "cpu":
        # Only float32 / float64 models run the fused form (``layers.full_precision``).
        if model is not None and FUSED not in variables and full_precision(model.dtype):
            variables = fuse.with_fused(model, variables)
        if winograd.COLLECTION not in variables:
            variables = winograd.with_winograd(variables)
    return jax.device_put(variables)


def _closed_loop_error(e: BaseException | None) -> bool:
    return isinstance(e, RuntimeError) and str(e) == "Event loop is closed"


def _unretrieved_failed_read(record: logging.LogRecord) -> bool:
    """asyncio's report of a failed read nobody awaited (a logging filter: False drops the record)."""
    text = str(record.msg)
    return not (text.startswith("Future exception was never retrieved") or text.startswith("Task exception"))


@contextlib.contextmanager
def _quiet_abandoned_reads() -> Iterator[None]:
    """Around ``restore``. When one tensor read fails, orbax raises and closes its asyncio loop while its
    other reads are still in flight on tensorstore threads; as they finish they try to report into the
    closed loop and Python prints "RuntimeError: Event loop is closed" tracebacks (through
    ``sys.unraisablehook``, or ``sys.excepthook`` from the C++ callbacks), and asyncio's logger reports
    the reads that failed too but were never awaited ("Future/Task exception was never retrieved": the
    same corruption as the error we report). They come before and after our one-line error (measured: 3
    of 14 runs on a truncated checkpoint printed some while the hooks were installed only after the
    failure), so the filters are in place for the whole restore: dropped are exactly those reports,
    anything else still reaches the previous hooks. A successful restore puts the previous hooks back;
    after a failure they stay, as the abandoned reads outlive this call."""
    unraisable, excepthook = sys.unraisablehook, sys.excepthook
    asyncio_log = logging.getLogger("asyncio")

    def quiet_unraisable(u):
        if not (
            _closed_loop_error(u.exc_value) or _closed_loop_error(getattr(u.exc_value, "__cause__", None))
        ):
            unraisable(u)

    def quiet_excepthook(kind, value, tb):
        if not _closed_loop_error(value):
            excepthook(kind, value, tb)

    sys.unraisablehook, sys.excepthook = quiet_unraisable, quiet_excepthook
    asyncio_log.addFilter(_unretrieved_failed_read)
    yield
    sys.unraisablehook, sys.excepthook = unraisable, excepthook
    asyncio_log.removeFilter(_unretrieved_failed_read)


def _model_section(meta_path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """``meta['model']`` when it names exactly the fields of its architecture (no default silently filled
    in; no ``arch`` means the paper model, as in every checkpoint written before the registry)."""
    got = meta.get("model")
    if not isinstance(got, dict):
        raise CheckpointError(f"{meta_path}: no 'model' section")
    try:
        cls = model_class(got.get("arch", DEFAULT_ARCH))
    except KeyError as e:
        raise CheckpointError(f"{meta_path}: {e.args[0]}") from None
    fields = field_names(cls) - set(EXECUTION_FIELDS)
    missing, unknown = sorted(fields - set(got) - set(OPTIONAL_FIELDS)), sorted(set(got) - fields)
    if missing or unknown:
        raise CheckpointError(f"{meta_path}: model fields missing {missing}, unknown {unknown}")
    return got


def _check_tree(directory: Path, stored: Any, target: Any) -> None:
    have = {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(dict(stored), sep="/").items()}
    want = {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(dict(target), sep="/").items()}
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    misshaped = sorted(
        f"{k}: {have[k]} stored, {want[k]} expected" for k in set(want) & set(have) if have[k] != want[k]
    )
    if missing or unexpected or misshaped:
        raise CheckpointError(
            f"{directory}: variables do not fit the model in model.json: missing {missing[:8]}, "
            f"unexpected {unexpected[:8]}, mis-shaped {misshaped[:8]}"
        )


# --- one weight loader for every command ----------------------------------------------------------------

# Embedded checkpoints by name (``--checkpoint demo``, ``siamrn_jax.load("demo")``): the demo model
# (SiamRN-Nano's shape, trained from scratch; ``python track.py``'s default) and the earlier demo model of
# the paper's ResNet family (the trained SiamRN that the paper-architecture guides measure).
DEMO = Path(__file__).resolve().parent / "assets" / "demo"
DEMO_RESNET = Path(__file__).resolve().parent / "assets" / "demo_resnet"
NAMED = {"demo": DEMO, "demo_resnet": DEMO_RESNET}
# ``random:CONFIG`` (CONFIG as ``config.load_config`` takes it): untrained weights of that config's model.
RANDOM = "random:"
# Untrained weights: BatchNorm calibration passes (``init_variables(calibrate=...)``), the one rule of every
# command. Fewer left the demo-sized models' boxes non-finite on some seeds; more only cost start-up time.
CALIBRATION_PASSES = 10


class WeightSpec(NamedTuple):
    """What a ``load_weights`` spec names.

    Attributes:
      kind: ``"checkpoint"`` (a directory or an embedded name), ``"addon"`` (an add-on directory or an
        embedded add-on's name: the add-on's modules trained, the rest untrained) or ``"random"``.
      where: the checkpoint / add-on directory (absolute), or the config spec of random weights.
    """

    kind: str
    where: str


def resolve_spec(spec: str | os.PathLike) -> WeightSpec:
    """Classifies a ``load_weights`` spec without reading any weights. A path that exists wins over an
    embedded name of the same spelling."""
    text = os.fspath(spec)
    if text.startswith(RANDOM):
        return WeightSpec("random", text[len(RANDOM) :])
    path = Path(text)
    if not path.exists() and text in NAMED:
        path = NAMED[text]
    embedded_addon = DEMO.parent / text
    if not path.exists() and os.sep not in text and (embedded_addon / "addon.json").is_file():
        path = embedded_addon
    if (path / "addon.json").is_file() and not (path / "model.json").exists():
        return WeightSpec("addon", str(path.absolute()))
    return WeightSpec("checkpoint", str(path.absolute()))


def untrained(bundle: ModelBundle) -> bool:
    """Whether ``load_weights`` made (some of) the bundle's weights up: random weights, or an add-on's
    model with only the add-on's modules trained."""
    return (bundle.meta.get("source") or {}).get("kind") in ("random", "addon")


def load_weights(
    spec: str | os.PathLike, dtype: Any = None, seed: int = 0, *, inference: bool = True
) -> ModelBundle:
    """The weights a command runs: a checkpoint directory, an embedded checkpoint's name (``"demo"``), an
    add-on (directory or embedded name such as ``"nano_rd_v2"``: its model with its modules from the add-on
    and the rest untrained), or ``"random:CONFIG"`` (untrained weights of a config's model).

    Untrained weights are initialised with ``seed`` in float32 (so ``dtype`` changes the arithmetic, not
    the weights) and BatchNorm-calibrated with ``CALIBRATION_PASSES`` passes; ``untrained(bundle)`` tells
    them apart. ``meta['source']`` says where the weights came from (``kind`` ``random`` / ``addon``
    with ``config`` or ``addon`` and ``seed``; a checkpoint's ``model.json`` as stored).

    Args:
      spec: see above.
      dtype: computation dtype (``"float32"``, ``"bfloat16"``), overriding the checkpoint's or config's.
      seed: seed of untrained weights (checkpoints ignore it).
      inference: variables readied for running (``inference_variables``); False: the stored (or freshly
        initialised) arrays.

    Raises:
      CheckpointError: not a checkpoint, corrupt, or its variables do not fit its ``model.json``.
      ConfigError: a bad ``random:`` config or ``dtype``.
      AddonError: an unusable add-on.
    """
    kind, where = resolve_spec(spec)
    if kind == "checkpoint":
        kw = {} if inference else {"inference": False}  # (the default call unchanged: tests wrap ``load``)
        return load(where, dtype=dtype, **kw)
    if kind == "random":
        if not where:
            raise ConfigError(f"{spec}: expected random:CONFIG, e.g. random:configs/siamrn_r50.py:smoke")
        from siamrn_jax.config import load_config

        model = build_model(load_config(where).model, None if dtype is None else compute_dtype(dtype))
        variables = calibrated_variables(model.clone(dtype=jnp.float32), seed)
        source = {"kind": "random", "config": where, "seed": seed}
    else:
        model, variables, source = _addon_weights(where, dtype, seed)
    meta = {"format": FORMAT, "model": model_fields(model), "source": source}
    return ModelBundle(model, inference_variables(variables, model) if inference else variables, meta)


@functools.lru_cache(maxsize=2)
def calibrated_variables(model: Any, seed: int) -> dict[str, Any]:
    """``init_variables(model, seed, calibrate=CALIBRATION_PASSES)``, cached: commands and tests that
    build the same untrained model again initialise (and compile) it once."""
    return init_variables(model, seed, calibrate=CALIBRATION_PASSES)


def _addon_weights(directory: str, dtype: Any, seed: int) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(model, variables, source) of an add-on: its model, its modules' arrays over calibrated untrained
    weights of the rest."""
    # The add-on format lives with the converter that writes and reads it (``convert.addon`` builds on
    # this module, hence the import here).
    from siamrn_jax.convert import addon

    model, arrays, meta = addon.load(directory)
    if dtype is not None:
        model = model.clone(dtype=compute_dtype(dtype))
    fresh = calibrated_variables(model.clone(dtype=jnp.float32), seed)
    source = {"kind": "addon", "addon": directory, "modules": meta["modules"], "seed": seed}
    return model, addon.merged_init(fresh, arrays), source
