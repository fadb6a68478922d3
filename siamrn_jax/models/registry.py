"""The architecture registry: the model config's ``arch`` selects the network class.

- ``resnet50_atrous`` (default; configs without ``arch`` and every checkpoint written before the registry
  mean it): ``SiamRN``, the paper model (ResNet-50 atrous, three levels at stride 8, 25x25 score map).
- ``nanotrack_v2`` / ``nanotrack_v3``: ``NanoTrack`` (MobileNetV3-small, one level at stride 16, 16x16 /
  15x15 score maps), with ``relation=True`` SiamRN-Nano.

Every architecture exposes the same staged API and geometry attributes (``stride``, ``exemplar_size``,
``instance_size``, ``score_size``, ``template_crop``, ``levels``, ``channels``, ``has_relation``,
``default_preset``), which is all the tracker, evaluation, training, benchmarks and converter read.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from siamrn_jax.models.nanotrack import VERSIONS, NanoTrack
from siamrn_jax.models.siamrn import SiamRN

DEFAULT_ARCH = SiamRN.arch
ARCHITECTURES: dict[str, type] = {DEFAULT_ARCH: SiamRN, **dict.fromkeys(VERSIONS, NanoTrack)}


def model_class(arch: str) -> type:
    """The module class of ``arch``; ``KeyError`` naming the known ones otherwise."""
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown model arch {arch!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    return ARCHITECTURES[arch]


def field_names(cls: type) -> set[str]:
    """The config / model.json keys of ``cls`` (its dataclass fields but Flax's own)."""
    return {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}


def arch_kwargs(arch: str) -> dict[str, Any]:
    """What ``arch`` itself sets on its class (``NanoTrack`` takes it as a field; ``SiamRN`` is the arch)."""
    return {"arch": arch} if "arch" in field_names(model_class(arch)) else {}
