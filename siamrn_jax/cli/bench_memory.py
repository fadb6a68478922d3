"""``python -m siamrn_jax.bench.memory``: compiled memory of the full-size train and tracking steps
(``siamrn_jax.bench.memory``)."""

from __future__ import annotations

import argparse
import sys

from siamrn_jax.bench.memory import __doc__ as DOC
from siamrn_jax.bench.memory import tracking_rows, train_rows
from siamrn_jax.cli.args import positive_int, positive_ints
from siamrn_jax.errors import SiamrnError, one_line
from siamrn_jax.xla_flags import apply_default_xla_flags


def main(argv: list[str] | None = None) -> int:
    apply_default_xla_flags()  # as siamrn-train and siamrn-bench run (no computation has run yet)
    p = argparse.ArgumentParser(prog="python -m siamrn_jax.bench.memory", description=DOC.splitlines()[0])
    p.add_argument("--config", default="vot", help="config file[:variant] or a bare variant (default vot)")
    p.add_argument("--batch", type=positive_int, default=28, help="per-device training batch")
    p.add_argument(
        "--sizes",
        type=positive_ints,
        default=(1, 32, 512),
        help="tracking: sequences in lockstep, comma-separated (default 1,32,512)",
    )
    p.add_argument("--no-residuals", action="store_true", help="skip the saved-activation count")
    a = p.parse_args(argv)
    try:
        print("\n".join(tracking_rows(a.config, a.sizes)), end="\n\n", flush=True)
        print("\n".join(train_rows(a.config, a.batch, not a.no_residuals)))
    except (SiamrnError, OSError) as e:  # a bad --config; anything else is a bug
        print(one_line(e), file=sys.stderr)
        return 2
    return 0
