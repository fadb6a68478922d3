"""Add-on checkpoints: the parts of a model trained here on top of third-party weights, without them.

SiamRN-Nano = a user's converted NanoTrack + the relation detector trained by ``train.py`` (``rd_neck``,
``multi_det``). NanoTrack's weights may not be redistributed with this repository, so the trained part
ships alone, as an add-on directory::

    DIR/addon.json      {"format": "siamrn-jax-addon/1", "model": {...model fields...},
                         "modules": ["multi_det", "rd_neck"], "recipe": "...", "source": {...}}
    DIR/variables.npz   "params/multi_det/..." / "batch_stats/rd_neck/..." float32 arrays

``python -m siamrn_jax.convert nanotrackv2.pth OUT --addon DIR`` builds the add-on's model, converts the
.pth into it strictly and takes the add-on's modules from DIR (instead of a fresh initialisation);
``python -m siamrn_jax.convert CKPT DIR --extract-addon`` writes one from a trained checkpoint.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from flax import traverse_util

from siamrn_jax import checkpoint
from siamrn_jax.atomic import atomic_directory, atomic_output
from siamrn_jax.config import ConfigError, build_model
from siamrn_jax.errors import SiamrnError
from siamrn_jax.format_json import read_format_json, read_npz
from siamrn_jax.models import registry

FORMAT = "siamrn-jax-addon/1"
EMBEDDED = Path(__file__).resolve().parents[1] / "assets"


class AddonError(SiamrnError, ValueError):
    """An add-on directory that is missing, corrupt, or does not fit its model."""


def resolve(path_or_name: str | os.PathLike) -> Path:
    """A directory, or the name of an embedded add-on (``siamrn_jax/assets/<name>``)."""
    p = Path(path_or_name)
    return p if p.exists() or os.sep in str(path_or_name) else EMBEDDED / str(path_or_name)


def extract(ckpt: str | os.PathLike, out: str | os.PathLike, recipe: str, force: bool = False) -> str:
    """Writes the modules an add-on of ``ckpt``'s architecture holds (``ArchSpec.addon_modules``: for
    SiamRN-Nano its relation detector and ``rd_neck``) as an add-on directory ``out``."""
    model, variables, meta = checkpoint.load(ckpt, inference=False)
    modules = registry.spec(model.arch).addon_modules
    if not model.has_relation or not modules:
        raise AddonError(f"{ckpt}: not a SiamRN-Nano checkpoint (no relation detector on a NanoTrack)")
    out = Path(out)
    if out.exists() and not force:
        raise AddonError(f"{out}: already exists (use --force)")
    flat = {
        "/".join((c, *k)): np.asarray(v, np.float32)
        for c in ("params", "batch_stats")
        for k, v in traverse_util.flatten_dict(dict(variables.get(c, {}))).items()
        if k[0] in modules
    }
    info = {
        "format": FORMAT,
        "model": checkpoint.model_fields(model),
        "modules": list(modules),
        "recipe": recipe,
        "source": {"checkpoint": str(ckpt), "train": (meta.get("source") or {}).get("train")},
    }
    with atomic_directory(out.absolute()) as tmp:
        buf = io.BytesIO()
        np.savez_compressed(buf, **flat)
        with atomic_output(tmp / "variables.npz") as f:
            f.write_bytes(buf.getvalue())
        with atomic_output(tmp / "addon.json") as f:
            f.write_text(json.dumps(info, indent=2, sort_keys=True))
    n = sum(a.size for a in flat.values())
    return f"{ckpt} -> {out}: {', '.join(modules)} ({len(flat)} arrays, {n:,} values)"


def load(path_or_name: str | os.PathLike) -> tuple[Any, dict[tuple[str, ...], np.ndarray], dict]:
    """(model, {(collection, *path): array}, addon.json) of an add-on; ``AddonError`` if unusable."""
    d = resolve(path_or_name)
    meta_path, arrays = d / "addon.json", d / "variables.npz"
    if not meta_path.is_file() or not arrays.is_file():
        raise AddonError(f"{d}: not an add-on directory (needs addon.json and variables.npz)")
    meta = read_format_json(meta_path, FORMAT, AddonError, f"{d}: not an add-on directory (no addon.json)")
    modules = meta.get("modules", ())
    if not isinstance(meta.get("model", {}), dict) or not (
        isinstance(modules, list) and all(isinstance(m, str) for m in modules)
    ):
        raise AddonError(f"{meta_path}: expected a 'model' object and a 'modules' list of names")
    try:
        model = build_model(meta.get("model") or {})
        abstract = checkpoint.abstract_variables(model)
    except ConfigError as e:
        raise AddonError(f"{meta_path}: {e}") from None
    except (TypeError, ValueError, ZeroDivisionError) as e:  # sizes the network's shape arithmetic rejects
        raise AddonError(f"{meta_path}: the model it describes cannot be built ({e})") from None
    flat = {tuple(k.split("/")): v for k, v in read_npz(arrays, AddonError, "unreadable").items()}
    want = {
        (c, *k): v.shape
        for c, tree in abstract.items()
        for k, v in traverse_util.flatten_dict(dict(tree)).items()
        if k[0] in modules
    }
    have = {k: v.shape for k, v in flat.items()}
    if want != have:
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        bad = sorted(k for k in set(want) & set(have) if want[k] != have[k])
        raise AddonError(
            f"{arrays}: does not fit its model: missing {['/'.join(k) for k in missing[:4]]}, "
            f"unexpected {['/'.join(k) for k in extra[:4]]}, mis-shaped {['/'.join(k) for k in bad[:4]]}"
        )
    return model, flat, meta


def merged_init(fresh: dict[str, Any], addon: dict[tuple[str, ...], np.ndarray]) -> dict[str, Any]:
    """``fresh`` variables with the add-on's arrays in place (the converter's ``init_fn``)."""
    out = {
        (c, *k): v
        for c in ("params", "batch_stats")
        for k, v in traverse_util.flatten_dict(dict(fresh.get(c, {}))).items()
    }
    out.update(addon)
    return traverse_util.unflatten_dict(out)
