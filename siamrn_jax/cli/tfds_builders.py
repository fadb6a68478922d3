"""``python -m siamrn_jax.data.tfds_builders NAME``: a raw training dataset as TFDS records
(``siamrn_jax.data.tfds_builders``)."""

from __future__ import annotations

import argparse
import sys

from siamrn_jax.data.tfds_builders import BUILDERS, build
from siamrn_jax.data.tfds_builders import __doc__ as DOC
from siamrn_jax.errors import SiamrnError, one_line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m siamrn_jax.data.tfds_builders", description=DOC.split("\n")[0]
    )
    parser.add_argument("name", choices=sorted(BUILDERS))
    parser.add_argument("--manual-dir", required=True, help="the raw dataset as downloaded")
    parser.add_argument(
        "--data-dir", required=True, help="TFDS data dir (records go to <data-dir>/<name>/1.0.0)"
    )
    args = parser.parse_args(argv)
    try:
        out = build(args.name, args.manual_dir, args.data_dir)
    except (SiamrnError, OSError) as e:  # our own error types and the OS's; anything else is a bug
        print(one_line(e), file=sys.stderr)
        return 1
    print(out)
    return 0
