"""The installed commands (``[project.scripts]`` in pyproject.toml: ``siamrn-track``, ``siamrn-train``,
``siamrn-eval``, ``siamrn-convert``, ``siamrn-bench``, ``siamrn-tune``) and the ``python -m siamrn_jax.X``
entry points (each package's ``__main__.py``, ``track.py``, ``train.py``).

Each applies the default XLA flags (``siamrn_jax.xla_flags``) before importing anything that could start a
JAX backend, then runs the command's ``main`` (``siamrn_jax.cli.<command>``); the return value is the exit
status.
"""

from __future__ import annotations

import importlib
import sys

from siamrn_jax.xla_flags import apply_default_xla_flags


def _main(module: str, argv: list[str] | None = None) -> int:
    apply_default_xla_flags()
    main = importlib.import_module(f"siamrn_jax.cli.{module}").main
    return main() if argv is None else main(argv)


def track() -> int:
    return _main("track")


def train() -> int:
    return _main("train", sys.argv)  # absl-style flags: the program name comes first


def eval() -> int:  # shadows the builtin inside this module only: the command is siamrn-eval
    return _main("eval")


def convert() -> int:
    return _main("convert")


def bench() -> int:
    return _main("bench")


def tune() -> int:
    return _main("tune")


def export() -> int:
    return _main("export")


def ablate() -> int:
    return _main("ablate")


def trax_server() -> int:
    return _main("trax_server")
