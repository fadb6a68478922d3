"""Tracker hyper-parameters: a frozen (hashable, jit-static) dataclass and the official presets.

The crop sides belong to the model (``SiamRN.exemplar_size`` / ``instance_size``): build the parameters a
tracker runs with through ``TrackerParams.for_model(model, preset)``. Every tracker entry point checks the
pair (``check_fits``), so a model can never run with another model's crop geometry.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Protocol

from siamrn_jax.errors import SiamrnError
from siamrn_jax.models import registry


@dataclasses.dataclass(frozen=True)
class TrackerParams:
    """SiamRN tracker settings (official ``cfg.TRACK``, SPEC section 9.3).

    Attributes:
      penalty_k: scale/aspect change penalty strength.
      window_influence: weight of the cosine window in the final score.
      lr: size update rate (multiplied by penalty * score of the chosen cell).
      exemplar_size: template crop side (127); set from the model by ``for_model``.
      instance_size: search crop side (255); set from the model by ``for_model``.
      context_amount: context added around the target when cropping (0.5).
      min_size: lower clip of the box width and height in pixels (10, pysot ``_bbox_clip``).
      precompute_support: compute the template halves of the relation detector once per sequence instead
        of once per proposal (exact up to float rounding).
      reuse_corr: apply the refinement to the first head pass's correlations instead of rerunning the head
        (exact up to float rounding).
      relation: score with the relation detector + refinement module (SiamRN). False scores with the
        first head pass alone, i.e. runs the same weights as a SiamBAN tracker (ablations).
      swap_rb: feed the network RGB crops instead of BGR ones. The official Python trackers (pysot,
        SiamRN, NanoTrack) feed BGR; OpenCV's C++ port of NanoTrack (``TrackerNano``, swapRB = true)
        feeds RGB, which the ``nanotrack_v2_rgb`` preset reproduces.
    """

    penalty_k: float = 0.14
    window_influence: float = 0.45
    lr: float = 0.30
    exemplar_size: int = 127
    instance_size: int = 255
    context_amount: float = 0.5
    min_size: float = 10.0
    precompute_support: bool = True
    reuse_corr: bool = True
    relation: bool = True
    swap_rb: bool = False

    def replace(self, **kw) -> TrackerParams:
        unknown = set(kw) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"TrackerParams: unknown fields {sorted(unknown)}")
        return dataclasses.replace(self, **kw)

    @classmethod
    def for_model(
        cls, model: _Geometry, preset: str | TrackerParams | None = None, **overrides
    ) -> TrackerParams:
        """The parameters ``model`` tracks with: ``preset`` (a name of ``PRESETS``, an object, or None for
        the model's own, ``own_preset(model)``: ``otb`` for the paper model, ``demo`` / ``demo_resnet`` for
        the embedded demo models, the official config's values for NanoTrack) with the crop sides taken
        from the model, then ``overrides`` (any field but the sizes). A model without a relation detector
        (NanoTrack) always gets ``relation=False``."""
        if preset is None:
            preset = own_preset(model)
        if isinstance(preset, os.PathLike) or (isinstance(preset, str) and is_preset_file(preset)):
            base, values = read_preset_file(preset)
            return cls.for_model(model, base, **{**values, **overrides})
        if isinstance(preset, str):
            if preset not in PRESETS:
                raise ValueError(f"unknown tracker preset {preset!r} (known: {sorted(PRESETS)})")
            preset = PRESETS[preset]
        sizes = {"exemplar_size", "instance_size"} & set(overrides)
        if sizes:
            raise ValueError(f"TrackerParams.for_model: {sorted(sizes)} come from the model, not overrides")
        if not getattr(model, "has_relation", True):
            overrides["relation"] = False
        return preset.replace(
            exemplar_size=model.exemplar_size, instance_size=model.instance_size, **overrides
        )


def own_preset(model: Any) -> str:
    """The preset ``model`` tracks with when none is given: its ``default_preset``, or (None) the one
    named as its architecture (NanoTrack's official config values)."""
    return getattr(model, "default_preset", "otb") or model.arch


class PresetFileError(SiamrnError, ValueError):
    """A tracker-parameter JSON file that is unreadable, corrupt or holds unknown or invalid values."""


# Fields a preset file may set: everything but the crop sides, which belong to the model.
_FILE_FIELDS = {
    f.name: f.type
    for f in dataclasses.fields(TrackerParams)
    if f.name not in ("exemplar_size", "instance_size")
}


def is_preset_file(value: str) -> bool:
    """Whether a ``--preset`` value names a JSON file rather than a ``PRESETS`` entry."""
    return value not in PRESETS and (value.endswith(".json") or Path(value).is_file())


def read_preset_file(path: str | os.PathLike) -> tuple[str | None, dict[str, Any]]:
    """(base preset name or None = the model's, field values) from a tracker-parameter JSON file.

    Format (what ``python -m siamrn_jax.tune`` writes as ``best.json``)::

        {"base": "otb", "params": {"penalty_k": 0.1, "window_influence": 0.4, "lr": 0.35}, ...}

    ``params`` may set any ``TrackerParams`` field but the crop sides; other top-level keys (the study's
    record) are ignored. Numbers must be finite; flags must be true / false.
    """
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise PresetFileError(f"{path}: cannot read tracker parameters ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PresetFileError(f"{path}: not a JSON file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
        raise PresetFileError(f"{path}: expected a JSON object with a 'params' object")
    base = data.get("base")
    if base is not None and (not isinstance(base, str) or base not in PRESETS):
        raise PresetFileError(f"{path}: unknown base preset {base!r} (known: {sorted(PRESETS)})")
    values = data["params"]
    unknown = sorted(set(values) - set(_FILE_FIELDS))
    if unknown:
        raise PresetFileError(f"{path}: unknown tracker parameters {unknown} (known: {sorted(_FILE_FIELDS)})")
    for k, v in values.items():
        flag = _FILE_FIELDS[k] in ("bool", bool)
        ok = isinstance(v, bool) if flag else (isinstance(v, int | float) and not isinstance(v, bool))
        if not ok or (not flag and not math.isfinite(v)):
            raise PresetFileError(
                f"{path}: {k} = {v!r} is not a {'true/false flag' if flag else 'finite number'}"
            )
    return base, values


class _Geometry(Protocol):
    exemplar_size: int
    instance_size: int


class ParamsMismatchError(SiamrnError, ValueError):
    """Tracker parameters whose crop sides are not the model's."""


def check_fits(model: _Geometry, params: TrackerParams) -> None:
    """Raises ``ParamsMismatchError`` unless ``params`` has ``model``'s crop sides."""
    have = (params.exemplar_size, params.instance_size)
    want = (model.exemplar_size, model.instance_size)
    if have != want:
        raise ParamsMismatchError(
            f"tracker parameters are for {have[0]}/{have[1]} crops, the model uses {want[0]}/{want[1]}: "
            "build them with TrackerParams.for_model(model, preset)"
        )


# Every architecture's presets, registered beside its model (``siamrn_jax.models.siamrn.PRESETS``: the
# official SiamBAN VOT / OTB configs and the embedded demo model's tuned ``demo``;
# ``siamrn_jax.models.nanotrack.PRESETS``: NanoTrack's own TRACK sections and OpenCV's RGB variant); any model
# may track with any of them.
PRESETS = {name: TrackerParams(**values) for name, values in registry.presets().items()}
VOT, OTB = PRESETS["vot"], PRESETS["otb"]
NANOTRACK_V2, NANOTRACK_V3 = PRESETS["nanotrack_v2"], PRESETS["nanotrack_v3"]
