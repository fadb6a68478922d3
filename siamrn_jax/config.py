"""Turn an experiment ``ConfigDict`` into typed library objects (the only place that reads configs)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from siamrn_jax.errors import SiamrnError
from siamrn_jax.models.registry import DEFAULT_ARCH, field_names, spec


class ConfigError(SiamrnError, ValueError):
    """A config file that cannot be loaded (missing, syntax error, no ``get_config``, raises), or a model
    section with unknown keys."""


PACKAGED_CONFIG = Path(__file__).resolve().parent / "configs" / "siamrn_r50.py"


def resolve_config_spec(spec: str) -> str:
    """Where ``FILE[:variant]`` points, so that installed commands need no checkout.

    A bare variant name (``smoke``, ``vot``: no ``.py``, no path separator) means that variant of the
    packaged paper config; ``configs/<name>.py[:variant]`` that does not exist relative to the working
    directory (a command run away from a checkout, as the README's and docs/ examples are written) means the
    packaged ``siamrn_jax/configs/<name>.py``, of which the checkout's file is an alias. Anything else is
    as given.
    """
    path, _, variant = spec.partition(":")
    packaged = PACKAGED_CONFIG.parent / Path(path).name
    if Path(path).parent == Path("configs") and not Path(path).is_file() and packaged.is_file():
        return f"{packaged}:{variant}" if variant else str(packaged)
    if path.endswith(".py") or "/" in path or os.sep in path or variant:
        return spec
    return f"{PACKAGED_CONFIG}:{path}"


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Load ``path/to/config.py[:variant]`` (the same syntax as ``ml_collections.config_flags``) or a bare
    variant of the packaged config (``resolve_config_spec``)."""
    path, _, variant = resolve_config_spec(spec).partition(":")
    if not Path(path).is_file():
        raise ConfigError(f"{path}: config file not found")
    spec_ = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec_)
    try:
        spec_.loader.exec_module(module)
    except SyntaxError as e:
        raise ConfigError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:  # noqa: BLE001 (a config file is user input: whatever it raises is the message)
        raise ConfigError(f"{path}: {type(e).__name__}: {e}") from None
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError(f"{path}: defines no get_config() function")
    try:
        return module.get_config(variant) if variant else module.get_config()
    except Exception as e:  # noqa: BLE001 (as above: e.g. an unknown variant)
        raise ConfigError(f"{path}: get_config({variant!r}): {e}") from None


# Computation dtypes a command offers (``--dtype``); parameters are float32 in both.
COMPUTE_DTYPES = ("float32", "bfloat16")
# ... and what a model can be built in: float64 (under ``jax_enable_x64``) is for exact comparisons with the
# official code run in float64 (parity and training-step tests), with the variables cast to float64 too.
MODEL_DTYPES = (*COMPUTE_DTYPES, "float64")


def compute_dtype(name: Any) -> jnp.dtype:
    """``"float32"`` / ``"bfloat16"`` / ``"float64"`` (or the dtype objects) -> the ``jnp.dtype``;
    ``ConfigError`` for anything else (float16 would overflow on raw 0-255 pixels times unnormalised
    weights), and for float64 while ``jax_enable_x64`` is off (JAX would silently compute in float32)."""
    try:
        dtype = jnp.dtype(name)
    except (TypeError, ValueError):  # ValueError: a dict or list read as a structured dtype
        dtype = None
    if dtype is None or dtype.name not in MODEL_DTYPES:
        raise ConfigError(f"model dtype {name!r}: expected one of {', '.join(MODEL_DTYPES)}")
    if dtype.name == "float64" and not jax.config.jax_enable_x64:
        raise ConfigError("model dtype 'float64' needs 64-bit JAX (JAX_ENABLE_X64=1 or jax_enable_x64)")
    return dtype


def build_model(model_cfg: ml_collections.ConfigDict | dict, dtype: Any = None):
    """The network of the ``model`` section: ``arch`` (default ``resnet50_atrous``) picks the architecture
    from ``siamrn_jax.models.registry``, whose builder takes the other keys, its fields; unknown keys are an
    error naming them.

    Args:
      model_cfg: the config's ``model`` section, or a checkpoint's ``model.json`` ``model`` dict.
      dtype: computation dtype overriding the section's ``dtype`` (``MODEL_DTYPES``); None keeps it. The
        parameters do not depend on it, so any checkpoint runs in any (a float64 model wants float64
        variables to compute in float64 end to end: ``checkpoint.load(..., dtype="float64")`` casts them).
    """
    cfg = dict(model_cfg.to_dict() if isinstance(model_cfg, ml_collections.ConfigDict) else model_cfg)
    arch = cfg.pop("arch", DEFAULT_ARCH)
    try:
        arch_spec = spec(arch)
    except KeyError as e:
        raise ConfigError(f"model config: {e.args[0]}") from None
    cls = arch_spec.model_class
    fields = field_names(cls) - {"arch"}
    unknown = sorted(set(cfg) - fields)
    if unknown:
        raise ConfigError(f"model config: unknown keys {unknown} for {arch} (known: {sorted(fields)})")
    wrong = field_type_problem(cls, cfg)
    if wrong:
        raise ConfigError(f"model config: {wrong}")
    if dtype is not None:
        cfg["dtype"] = dtype
    if "dtype" in cfg:
        cfg["dtype"] = compute_dtype(cfg["dtype"])
    for k in sequence_fields(cls) & set(cfg):
        if isinstance(cfg[k], str):  # rd_heads="local": one head
            cfg[k] = (cfg[k],)
        elif cfg[k] is not None:
            cfg[k] = tuple(cfg[k])
    model = arch_spec.build(**cfg)
    # The architecture's own consistency rules (SiamRN's ablation switches), as one-line config errors
    # before anything is traced.
    check = getattr(cls, "config_problem", None)
    problem = check(model) if check is not None else None
    if problem:
        raise ConfigError(f"model config: {problem}")
    return model


def sequence_fields(cls: type) -> set[str]:
    """The fields of ``cls`` that hold a sequence (tuple default; ``*levels`` may also be None)."""
    return {
        f.name
        for f in dataclasses.fields(cls)
        if isinstance(f.default, tuple) or (f.default is None and f.name.endswith("levels"))
    }


def field_type_problem(cls: type, cfg: dict[str, Any]) -> str | None:
    """The first value of ``cfg`` of another kind than its field's default in ``cls`` (a flag, a positive
    integer, a sequence of positive integers / of names, a name), or None. Files (model.json, addon.json,
    export.json) are checked here, before a wrong type reaches the network's shape arithmetic."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    # None-default fields (NanoTrack's ``rd_width``, ``default_preset``): the default says nothing of the
    # kind, the annotation does (a string: the model modules use postponed annotations).
    optional = {f.name: f.type for f in dataclasses.fields(cls) if f.default is None}
    for k, v in cfg.items():
        d = defaults.get(k)
        if optional.get(k) == "int | None":
            if not (v is None or _positive_int(v)):
                return f"{k} = {v!r} is not a positive integer"
            continue
        if optional.get(k) == "str | None":
            if not (v is None or isinstance(v, str)):
                return f"{k} = {v!r} is not a name"
            continue
        if isinstance(d, bool):
            ok = isinstance(v, bool)
        elif isinstance(d, int):
            ok = _positive_int(v)
        elif isinstance(d, str):
            ok = isinstance(v, str)
        elif isinstance(d, tuple) or (d is None and k.endswith("levels")):
            names = bool(d) and isinstance(d[0], str)
            item = (lambda x: isinstance(x, str)) if names else _positive_int
            ok = (
                (d is None and v is None)
                or (names and isinstance(v, str))
                or (isinstance(v, list | tuple) and all(item(x) for x in v))
            )
        else:
            continue
        if not ok:
            return f"{k} = {v!r} is not {_KIND.get(type(d), 'a valid value')}"
    return None


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


_KIND = {bool: "true/false", int: "a positive integer", str: "a name", tuple: "a list"}
