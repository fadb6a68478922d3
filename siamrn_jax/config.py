"""Turn an experiment ``ConfigDict`` into typed library objects (the only place that reads configs)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

import jax.numpy as jnp
import ml_collections

from siamrn_jax.models.siamrn import SiamRN

PACKAGED_CONFIG = Path(__file__).resolve().parent / "configs" / "siamrn_r50.py"


def resolve_config_spec(spec: str) -> str:
    """``FILE[:variant]`` stays as it is; a bare variant name (``smoke``, ``vot``, no ``.py`` and no path
    separator) means that variant of the packaged paper config, so installed commands need no checkout."""
    path, _, variant = spec.partition(":")
    if path.endswith(".py") or "/" in path or os.sep in path or variant:
        return spec
    return f"{PACKAGED_CONFIG}:{path}"


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Load ``path/to/config.py[:variant]`` (the same syntax as ``ml_collections.config_flags``) or a bare
    variant of the packaged config (``resolve_config_spec``)."""
    path, _, variant = resolve_config_spec(spec).partition(":")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    spec_ = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module.get_config(variant) if variant else module.get_config()


def build_model(model_cfg: ml_collections.ConfigDict | dict) -> SiamRN:
    """``SiamRN`` from the ``model`` section; unknown keys are an error that names them."""
    cfg = dict(model_cfg.to_dict() if isinstance(model_cfg, ml_collections.ConfigDict) else model_cfg)
    fields = {f.name for f in dataclasses.fields(SiamRN)} - {"parent", "name"}
    unknown = sorted(set(cfg) - fields)
    if unknown:
        raise ValueError(f"model config: unknown keys {unknown} (known: {sorted(fields)})")
    if "dtype" in cfg:
        cfg["dtype"] = jnp.dtype(cfg["dtype"])
    for k in ("backbone_blocks", "backbone_widths", "levels"):
        if k in cfg:
            cfg[k] = tuple(cfg[k])
    return SiamRN(**cfg)
