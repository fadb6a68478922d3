"""Benchmark name -> reader, an explicit registry with lazy imports (STYLE.md section 8, rule 12).

No substring dispatch: a name is either listed here or an error. Readers are imported only when used, so
listing or loading one benchmark never imports the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from siamrn_jax.eval.sequence import Sequence

# name -> (module, function, kwargs); every function is load(root, sequences=None, **kwargs).
BENCHMARKS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "otb100": ("siamrn_jax.eval.benchmarks.otb", "load", {}),
    "uav123": ("siamrn_jax.eval.benchmarks.uav", "load", {"subset": "UAV123"}),
    "uav20l": ("siamrn_jax.eval.benchmarks.uav", "load", {"subset": "UAV20L"}),
    "lasot": ("siamrn_jax.eval.benchmarks.lasot", "load", {"split": "test"}),
    "got10k_val": ("siamrn_jax.eval.benchmarks.got10k", "load", {"split": "val"}),
    "got10k_test": ("siamrn_jax.eval.benchmarks.got10k", "load", {"split": "test"}),
    "vot2018": ("siamrn_jax.eval.benchmarks.vot", "load", {}),
    "vot2019": ("siamrn_jax.eval.benchmarks.vot", "load", {}),
    "folder": ("siamrn_jax.eval.benchmarks.otb", "load_folder", {}),
}


def available() -> list[str]:
    """Registered benchmark names."""
    return sorted(BENCHMARKS)


def load_benchmark(name: str, root: str | Path, sequences: Iterable[str] | None = None) -> list[Sequence]:
    """Reads benchmark ``name`` from ``root``.

    Args:
      name: a key of ``BENCHMARKS`` (``available()``).
      root: the dataset root in the layout EVALUATION.md section 2 describes for that benchmark.
      sequences: sequence names to load (all of them when None); an unknown name raises.

    Returns:
      ``Sequence`` records in name order.

    Raises:
      KeyError: unknown benchmark name.
      InputError: a missing or malformed file (the message names it).
    """
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(available())}")
    module, function, kwargs = BENCHMARKS[name]
    reader = getattr(importlib.import_module(module), function)
    return reader(Path(root), sequences, **kwargs)
