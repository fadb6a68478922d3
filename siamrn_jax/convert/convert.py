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

import enum
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from flax import traverse_util

from siamrn_jax.convert.mapping import DROP, flax_path_to_torch, torch_key_to_flax
from siamrn_jax.errors import SiamrnError


class ConversionError(SiamrnError, ValueError):
    """A checkpoint does not fit the model; the message names the file and the offending keys."""


class SourceKind(enum.Enum):
    SIAMRN = "siamrn"
    SIAMBAN = "siamban"
    BACKBONE = "backbone"
    NANOTRACK = "nanotrack"


# Top-level modules each source kind provides; the rest of the model keeps its fresh initialisation.
PROVIDES = {
    SourceKind.SIAMRN: ("backbone", "neck", "head", "multi_det"),
    SourceKind.SIAMBAN: ("backbone", "neck", "head"),
    SourceKind.BACKBONE: ("backbone",),
    SourceKind.NANOTRACK: ("backbone", "head"),
}
# Flax top-level module -> PyTorch prefix where the two differ (NanoTrack's ``ban_head``: see NanoTrack).
NANOTRACK_PREFIXES = {"head": "ban_head"}


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


def detect_kind(sd: Mapping[str, np.ndarray]) -> SourceKind:
    if any(k.startswith("ban_head.") for k in sd):
        return SourceKind.NANOTRACK
    if any(k.startswith("multi_det.") for k in sd):
        return SourceKind.SIAMRN
    if any(k.startswith(("backbone.", "neck.", "head.")) for k in sd):
        return SourceKind.SIAMBAN
    return SourceKind.BACKBONE


def nanotrack_arch(sd: Mapping[str, np.ndarray]) -> str:
    """``nanotrack_v3`` when the backbone has V3's ninth block (``features.9``), else ``nanotrack_v2``."""
    return "nanotrack_v3" if any(k.startswith("backbone.features.9.") for k in sd) else "nanotrack_v2"


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
    kind = detect_kind(sd)
    ignored = []
    prefixes = NANOTRACK_PREFIXES if kind is SourceKind.NANOTRACK else {}

    def in_file(key: str) -> str:  # error messages name the keys as the file spells them
        return _rename(key, prefixes)

    if kind is SourceKind.BACKBONE:
        sd, ignored = _backbone_source(sd, target)
    if kind is SourceKind.NANOTRACK:
        ignored = sorted(k for k in sd if k.startswith("neck."))
        sd = {_rename(k, {v: f for f, v in NANOTRACK_PREFIXES.items()}): v for k, v in sd.items()}
        sd = {k: v for k, v in sd.items() if not k.startswith("neck.")}
    provides = PROVIDES[kind]
    target = {
        (c, *p): leaf
        for c in ("params", "batch_stats")
        for p, leaf in traverse_util.flatten_dict(dict(target.get(c, {}))).items()
    }
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
            f"{source}: {kind.value} checkpoint does not fit the model: " + "; ".join(p for p in parts if p)
        )
    fresh_parts = sorted({k[1] for k in target if k not in out})
    if fresh_parts:
        if init_fn is None:
            raise ConversionError(
                f"{source}: {kind.value} checkpoint lacks {fresh_parts} and no init_fn given"
            )
        fresh = {
            (c, *p): v
            for c in ("params", "batch_stats")
            for p, v in traverse_util.flatten_dict(dict(init_fn()[c])).items()
        }
        out.update({k: np.asarray(fresh[k]) for k in target if k not in out})
    variables = traverse_util.unflatten_dict(out)
    report = {
        "kind": kind.value,
        "loaded": len(out) - sum(1 for k in target if k[1] in fresh_parts),
        "fresh": fresh_parts,
        "ignored": ignored,
    }
    return variables, report


def _backbone_source(
    sd: Mapping[str, np.ndarray], target: Mapping[str, Any]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """pysot's ``resnet50.model`` keys -> ``backbone.*`` keys, and what is ignored: the ImageNet classifier
    ``fc.*`` (by key) and the stages a model with fewer levels does not build (``ResNetAtrous.used_layers``;
    as ``layer4.* (N keys)``), which pysot's loader skips the same way."""
    built = set(target.get("params", {}).get("backbone", {}))
    ignored = sorted(k for k in sd if k.startswith("fc."))
    unbuilt: dict[str, int] = {}
    for k in sd:
        stage = k.split(".")[0]
        if stage.startswith("layer") and stage not in built:
            unbuilt[stage] = unbuilt.get(stage, 0) + 1
    ignored += [f"{stage}.* ({n} keys)" for stage, n in sorted(unbuilt.items())]
    kept = {
        f"backbone.{k}": v
        for k, v in sd.items()
        if not k.startswith("fc.") and k.split(".")[0] not in unbuilt
    }
    return kept, ignored


def _rename(key: str, prefixes: Mapping[str, str]) -> str:
    head, dot, rest = key.partition(".")
    return prefixes.get(head, head) + dot + rest


def flax_to_torch(
    variables: Mapping[str, Any], with_bn_counters: bool = True, prefixes: Mapping[str, str] | None = None
) -> dict[str, np.ndarray]:
    """Flax variables -> PyTorch state dict (official key names and layouts, ``OrderedDict`` order of the
    Flax tree). ``num_batches_tracked`` is not tracked in Flax; it is written as 0 (int64) when requested
    so that ``load_state_dict(strict=True)`` accepts the result. ``prefixes`` renames top-level modules
    (``NANOTRACK_PREFIXES`` for NanoTrack)."""
    sd: dict[str, np.ndarray] = {}
    for c in ("params", "batch_stats"):
        for path, value in traverse_util.flatten_dict(dict(variables.get(c, {}))).items():
            key, leaf = flax_path_to_torch(c, path)
            key = _rename(key, prefixes or {})
            sd[key] = np.ascontiguousarray(leaf.to_torch(np.asarray(value)))
            if with_bn_counters and c == "batch_stats" and path[-1] == "mean":
                sd[key.removesuffix("running_mean") + "num_batches_tracked"] = np.zeros((), np.int64)
    return sd
