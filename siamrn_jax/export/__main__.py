"""``python -m siamrn_jax.export``: the export command (``siamrn_jax.cli.export``)."""

import sys

if __name__ == "__main__":
    from siamrn_jax.cli.commands import export

    sys.exit(export())
