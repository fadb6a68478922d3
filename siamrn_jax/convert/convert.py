"""Strict conversion between official PyTorch state dicts and SiamRN Flax variables.

Accepted sources (SPEC section 10):
- a full SiamRN state dict (541 keys; optionally wrapped as ``{'state_dict': ...}``, ``module.`` prefixes);
- a SiamBAN checkpoint (no ``multi_det.*``): the relation detector is initialised fresh, and reported;
- pysot's backbone file ``resnet50.model`` (keys without ``backbone.``): only the backbone is loaded; its
  ImageNet classifier ``fc.*`` (if present), and the stages past the deepest level of a model ablated to
  fewer levels (``ResNetAtrous.used_layers``), are reported as ignored;
- a NanoTrack V2 / V3 checkpoint (HonglinChu/SiamTrackers: ``backbone.features.*``, ``ban_head.*``): the
  ``ban_head.`` prefix becomes our ``head.``; its ``neck.*`` (an AdjustLayer the official forward pass never
  calls) is reported as ignored; into SiamRN-Nano (``relation=True``) the relation detector is fresh.

Strict: every source key must be consumed and every target leaf filled (except the parts the source kind
does not have), with matching shapes; otherwise ``ConversionError`` lists the missing, unexpected and
mis-shaped keys on one line. fp16/bf16 tensors are cast to the target dtype (float32).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from flax import traverse_util

from siamrn_jax.convert.mapping import DROP, flax_path_to_torch, torch_key_to_flax
from siamrn_jax.errors import SiamrnError
from siamrn_jax.models import registry
from siamrn_jax.models.interface import TorchMapping


class ConversionError(SiamrnError, ValueError):
    """A checkpoint does not fit the model; the message names the file and the offending keys."""


def _short(items: list[str], limit: int = 8) -> str:
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return "[" + ", ".join(items[:limit]) + more + "]"


def unwrap_state_dict(obj: Any, source: str) -> dict[str, np.ndarray]:
    """``{'state_dict': sd, ...}`` or ``sd`` -> flat ``{key: array}`` without ``module.`` prefixes."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise ConversionError(f"{source}: not a state dict (expected a non-empty mapping of tensors)")
    sd = {}
    for k, v in obj.items():
        if not isinstance(v, np.ndarray):
            raise ConversionError(f"{source}: entry {k!r} is a {type(v).__name__}, not a tensor")
        sd[k.removeprefix("module.")] = v
    return sd


def default_model(sd: Mapping[str, np.ndarray]) -> Any:
    """The model a checkpoint converts into without a config: the architecture whose mapping recognises the
    state dict (NanoTrack V2/V3 by its keys), else the paper model."""
    mapping, _ = registry.torch_source(sd)
    return registry.spec(mapping.default_arch(sd)).build()


def torch_prefixes(model: Any) -> dict[str, str]:
    """Flax top-level module -> PyTorch prefix where ``model``'s official state dicts differ
    (``flax_to_torch``'s ``prefixes``)."""
    return dict(registry.spec(model.arch).torch.prefixes)


def torch_to_flax(
    sd: Mapping[str, np.ndarray],
    target: Mapping[str, Any],
    init_fn: Callable[[], Mapping[str, Any]] | None = None,
    source: str = "<state dict>",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Converts a PyTorch state dict into Flax variables shaped like ``fresh``.

    Args:
      sd: PyTorch state dict (NumPy arrays), as returned by ``unwrap_state_dict``.
      target: the model's variables ``{'params': ..., 'batch_stats': ...}`` as arrays or
        ``ShapeDtypeStruct`` (only shapes and dtypes are read).
      init_fn: returns freshly initialised variables; called only when the source lacks parts of the
        model (SiamBAN, backbone-only), which are then taken from it.
      source: file name used in error messages.

    Returns:
      (variables as nested dicts of NumPy arrays, report dict with ``kind``, ``loaded``, ``fresh``,
      ``ignored`` entries).

    Raises:
      ConversionError: on any missing, unexpected or mis-shaped key.
    """
    mapping, kind = registry.torch_source(sd)
    prefixes = mapping.prefixes

    def in_file(key: str) -> str:  # error messages name the keys as the file spells them
        return _rename(key, prefixes)

    sd, ignored = _model_keys(mapping, kind, sd, target)
    provides = mapping.provides[kind]
    target = _flat(target)
    out, unexpected, misshaped, misshaped_targets = _convert_leaves(sd, target, in_file)
    missing = [
        in_file(flax_path_to_torch(k[0], k[1:])[0])
        for k in target
        if k not in out and k not in misshaped_targets and k[1] in provides
    ]
    if missing or unexpected or misshaped:
        parts = [
            f"{len(missing)} missing {_short(missing)}" if missing else "",
            f"{len(unexpected)} unexpected {_short(unexpected)}" if unexpected else "",
            f"{len(misshaped)} mis-shaped {_short(misshaped)}" if misshaped else "",
        ]
        raise ConversionError(
            f"{source}: {kind} checkpoint does not fit the model: " + "; ".join(p for p in parts if p)
        )
    fresh_parts = sorted({k[1] for k in target if k not in out})
    if fresh_parts:
        if init_fn is None:
            raise ConversionError(f"{source}: {kind} checkpoint lacks {fresh_parts} and no init_fn given")
        fresh = _flat(init_fn())
        out.update({k: np.asarray(fresh[k]) for k in target if k not in out})
    variables = traverse_util.unflatten_dict(out)
    report = {
        "kind": kind,
        "loaded": len(out) - sum(1 for k in target if k[1] in fresh_parts),
        "fresh": fresh_parts,
        "ignored": ignored,
    }
    return variables, report


def _flat(variables: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    """``{(collection, *path): leaf}`` of the ``params`` and ``batch_stats`` collections."""
    return {
        (c, *p): leaf
        for c in ("params", "batch_stats")
        for p, leaf in traverse_util.flatten_dict(dict(variables.get(c, {}))).items()
    }


def _convert_leaves(sd: Mapping[str, np.ndarray], target: Mapping[tuple[str, ...], Any], in_file: Callable):
    """(converted leaves by flat Flax path, unexpected keys, mis-shaped keys with their shapes, the flat
    paths of the mis-shaped ones) of a state dict with the model's keys against the flat ``target``."""
    out: dict[tuple[str, ...], np.ndarray] = {}
    unexpected, misshaped, misshaped_targets = [], [], set()
    for key, value in sd.items():
        mapped = torch_key_to_flax(key)
        if mapped is not None and mapped[2] is DROP:
            continue
        if mapped is None or (mapped[0], *mapped[1]) not in target:
            unexpected.append(in_file(key))
            continue
        collection, path, leaf = mapped
        tgt = target[(collection, *path)]
        converted = leaf.to_flax(value)
        if tuple(converted.shape) != tuple(tgt.shape):
            expected = leaf.to_torch(np.empty(tgt.shape, np.uint8)).shape
            misshaped.append(f"{in_file(key)}: {tuple(value.shape)} in file, model expects {tuple(expected)}")
            misshaped_targets.add((collection, *path))
            continue
        out[(collection, *path)] = np.asarray(converted, dtype=tgt.dtype)
    return out, unexpected, misshaped, misshaped_targets


def _model_keys(
    mapping: TorchMapping, kind: str, sd: Mapping[str, np.ndarray], target: Mapping[str, Any]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The state dict with the model's keys (the mapping's ``adapt``, prefixes renamed back, the modules
    the forward pass never uses dropped) and what was ignored."""
    sd, ignored = mapping.adapt(kind, sd, target) if mapping.adapt is not None else (dict(sd), [])
    unused = tuple(f"{m}." for m in mapping.unused)
    ignored = sorted([*ignored, *(k for k in sd if k.startswith(unused))]) if unused else ignored
    sd = {_rename(k, {v: f for f, v in mapping.prefixes.items()}): v for k, v in sd.items()}
    return {k: v for k, v in sd.items() if not k.startswith(unused)}, ignored


def _rename(key: str, prefixes: Mapping[str, str]) -> str:
    head, dot, rest = key.partition(".")
    return prefixes.get(head, head) + dot + rest


def flax_to_torch(
    variables: Mapping[str, Any], with_bn_counters: bool = True, prefixes: Mapping[str, str] | None = None
) -> dict[str, np.ndarray]:
    """Flax variables -> PyTorch state dict (official key names and layouts, ``OrderedDict`` order of the
    Flax tree). ``num_batches_tracked`` is not tracked in Flax; it is written as 0 (int64) when requested
    so that ``load_state_dict(strict=True)`` accepts the result. ``prefixes`` renames top-level modules
    (``torch_prefixes(model)``)."""
    sd: dict[str, np.ndarray] = {}
    for c in ("params", "batch_stats"):
        for path, value in traverse_util.flatten_dict(dict(variables.get(c, {}))).items():
            key, leaf = flax_path_to_torch(c, path)
            key = _rename(key, prefixes or {})
            sd[key] = np.ascontiguousarray(leaf.to_torch(np.asarray(value)))
            if with_bn_counters and c == "batch_stats" and path[-1] == "mean":
                sd[key.removesuffix("running_mean") + "num_batches_tracked"] = np.zeros((), np.int64)
    return sd
