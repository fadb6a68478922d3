"""``python -m siamrn_jax.convert``: the conversion command (``siamrn-convert``,
``siamrn_jax.cli.convert``)."""

import sys

if __name__ == "__main__":
    from siamrn_jax.cli.commands import convert

    sys.exit(convert())
