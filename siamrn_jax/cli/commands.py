"""The installed commands (``[project.scripts]`` in pyproject.toml): ``siamrn-track``, ``siamrn-train``,
``siamrn-eval``, ``siamrn-convert``, ``siamrn-bench``, ``siamrn-tune``.

Each applies the default XLA flags (``siamrn_jax.xla_flags``) before importing anything that could start a
JAX backend, then runs the same ``main`` as ``python -m siamrn_jax.<command>``, ``track.py`` and
``train.py``; the return value is the exit status.
"""

from __future__ import annotations

import sys

from siamrn_jax.xla_flags import apply_default_xla_flags


def track() -> int:
    apply_default_xla_flags()
    from siamrn_jax.tracking.cli import main

    return main()


def train() -> int:
    apply_default_xla_flags()
    from siamrn_jax.train.cli import main

    return main(sys.argv)


def eval() -> int:  # shadows the builtin inside this module only: the command is siamrn-eval
    apply_default_xla_flags()
    from siamrn_jax.eval.__main__ import main

    return main()


def convert() -> int:
    apply_default_xla_flags()
    from siamrn_jax.convert.__main__ import main

    return main()


def bench() -> int:
    apply_default_xla_flags()
    from siamrn_jax.bench.__main__ import main

    return main()


def tune() -> int:
    apply_default_xla_flags()
    from siamrn_jax.tune.__main__ import main

    return main()
