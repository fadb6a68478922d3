"""The architecture registry: the model config's ``arch`` selects an ``interface.ArchSpec``.

- ``resnet50_atrous`` (default; configs without ``arch`` and every checkpoint written before the registry
  mean it): ``SiamRN``, the paper model (ResNet-50 atrous, three levels at stride 8, 25x25 score map).
- ``nanotrack_v2`` / ``nanotrack_v3``: ``NanoTrack`` (MobileNetV3-small, one level at stride 16, 16x16 /
  15x15 score maps), with ``relation=True`` SiamRN-Nano.

Every architecture is a module satisfying ``interface.Architecture`` (the staged API and geometry
attributes), which is all the tracker, evaluation, training, benchmarks and exporters read of it. Its
registration (written beside its model) also carries its config builder, its tracker presets and its
``.pth`` mapping, which the config, tracking parameters, checkpoint and converter look up here. Adding an
architecture: ``docs/adding_an_architecture.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from siamrn_jax.models import nanotrack, siamrn
from siamrn_jax.models.interface import ArchSpec, TorchMapping

# Registration order: the default first (the converter's fallback for state dicts no other one detects).
SPECS: tuple[ArchSpec, ...] = (siamrn.ARCH, *nanotrack.ARCHS)
DEFAULT_ARCH = SPECS[0].name
ARCHITECTURES: dict[str, type] = {s.name: s.model_class for s in SPECS}
_BY_NAME = {s.name: s for s in SPECS}


def spec(arch: str) -> ArchSpec:
    """The registration of ``arch``; ``KeyError`` naming the known ones otherwise."""
    if arch not in _BY_NAME:
        raise KeyError(f"unknown model arch {arch!r} (known: {', '.join(sorted(_BY_NAME))})")
    return _BY_NAME[arch]


def model_class(arch: str) -> type:
    """The module class of ``arch``; ``KeyError`` naming the known ones otherwise."""
    return spec(arch).model_class


def field_names(cls: type) -> set[str]:
    """The config / model.json keys of ``cls`` (its dataclass fields but Flax's own)."""
    return {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}


def presets() -> dict[str, Mapping[str, Any]]:
    """Every architecture's tracker presets, name -> ``TrackerParams`` field values."""
    out: dict[str, Mapping[str, Any]] = {}
    for s in SPECS:
        for name, values in s.presets.items():
            if name in out:
                raise ValueError(f"tracker preset {name!r} registered twice (again by {s.name})")
            out[name] = values
    return out


def torch_mappings() -> tuple[TorchMapping, ...]:
    """The distinct ``.pth`` mappings, in detection order: every other architecture's first, the default's
    (whose ``detect`` takes any state dict) last."""
    out: list[TorchMapping] = []
    for s in (*SPECS[1:], SPECS[0]):
        if all(s.torch is not m for m in out):
            out.append(s.torch)
    return tuple(out)


def torch_source(sd: Mapping[str, Any]) -> tuple[TorchMapping, str]:
    """(the mapping, the source kind) of an official state dict, by its keys."""
    *others, default = torch_mappings()
    for m in others:
        kind = m.detect(sd)
        if kind is not None:
            return m, kind
    return default, default.detect(sd)
