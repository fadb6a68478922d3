"""XLA flags that the entry points (``track.py``, ``siamrn-*`` commands, ``python -m siamrn_jax.*``) turn on
by default, when the installed jaxlib knows them.

``--xla_cpu_experimental_ynn_fusion_type=dot`` routes XLA:CPU matrix products through YNNPACK. Measured on
the 2-core development CPU: the per-frame SiamRN network 1274 -> 1034 ms, the search branch 580 -> 468 ms,
with unchanged parity (all parity tests pass with and without it). It only concerns the CPU backend.
Setting ``XLA_FLAGS`` yourself (even to an empty string) disables this default.

XLA aborts the process at backend start on a flag it does not know, and experimental flags come and go
between jaxlib releases. So a default flag is applied only if its name is compiled into the installed
jaxlib (its shared libraries hold every flag name as a string; searching them takes ~30 ms): a newer
jaxlib without the flag starts normally, just without it.
"""

from __future__ import annotations

import importlib.util
import logging
import mmap
import os
from collections.abc import MutableMapping
from pathlib import Path

DEFAULT_XLA_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=dot",)

log = logging.getLogger(__name__)


def _jaxlib_dir() -> Path | None:
    spec = importlib.util.find_spec("jaxlib")
    return Path(spec.origin).parent if spec and spec.origin else None


def flag_known(flag: str, jaxlib_dir: Path | None = None) -> bool:
    """Whether the flag's name (``--name=value`` -> ``name``) is compiled into jaxlib's shared libraries."""
    name = flag.lstrip("-").split("=", 1)[0].encode()
    root = jaxlib_dir if jaxlib_dir is not None else _jaxlib_dir()
    if root is None:
        return False
    for lib in sorted(root.glob("*.so*")):
        try:
            with open(lib, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                if m.find(name) >= 0:
                    return True
        except (OSError, ValueError):  # unreadable or empty file: cannot hold the flag
            continue
    return False


def apply_default_xla_flags(environ: MutableMapping[str, str] = os.environ, known=flag_known) -> str | None:
    """Sets ``XLA_FLAGS`` to the default flags this jaxlib knows, unless the user set it. Call before JAX
    creates its backend. Returns the value set (None when ``XLA_FLAGS`` was already set)."""
    if "XLA_FLAGS" in environ:
        return None
    use = [f for f in DEFAULT_XLA_FLAGS if known(f)]
    for f in DEFAULT_XLA_FLAGS:
        if f not in use:
            log.info("jaxlib does not know %s; running without it", f)
    environ["XLA_FLAGS"] = " ".join(use)
    return environ["XLA_FLAGS"]
