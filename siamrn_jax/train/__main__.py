"""``python -m siamrn_jax.train``: the training command (``siamrn-train``, ``train.py``)."""

import sys

if __name__ == "__main__":  # grain worker processes re-import the main module: keep everything in the guard
    from siamrn_jax.cli.commands import train

    sys.exit(train())
