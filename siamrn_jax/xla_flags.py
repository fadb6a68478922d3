"""XLA flags that the entry points (``track.py``, ``python -m siamrn_jax.bench``) turn on by default.

``--xla_cpu_experimental_ynn_fusion_type=dot`` routes XLA:CPU matrix products through YNNPACK. Measured on
the 2-core development CPU: the per-frame SiamRN network 1274 -> 1034 ms, the search branch 580 -> 468 ms,
with unchanged parity (all parity tests pass with and without it). It only concerns the CPU backend.
Setting ``XLA_FLAGS`` yourself (even to an empty string) disables this default.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

DEFAULT_XLA_FLAGS = "--xla_cpu_experimental_ynn_fusion_type=dot"


def apply_default_xla_flags(environ: MutableMapping[str, str] = os.environ) -> None:
    """Sets ``XLA_FLAGS`` to the defaults unless the user set it. Call before JAX creates its backend."""
    environ.setdefault("XLA_FLAGS", DEFAULT_XLA_FLAGS)
