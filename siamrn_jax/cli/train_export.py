"""``python -m siamrn_jax.train.export WORKDIR OUT``: a training run's weights as a checkpoint
(``siamrn_jax.train.export``)."""

from __future__ import annotations

import argparse
import sys

from siamrn_jax.cli.args import positive_int
from siamrn_jax.errors import SiamrnError, one_line
from siamrn_jax.train.export import __doc__ as DOC
from siamrn_jax.train.export import export


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m siamrn_jax.train.export", description=DOC.splitlines()[0])
    p.add_argument("workdir")
    p.add_argument("out")
    p.add_argument("--step", type=positive_int, help="checkpoint step (default: the latest)")
    p.add_argument("--force", action="store_true", help="overwrite OUT")
    a = p.parse_args(argv)
    try:
        out = export(a.workdir, a.out, a.step, a.force)
    except (SiamrnError, OSError) as e:  # our own error types and the OS's; anything else is a bug
        print(one_line(e), file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
