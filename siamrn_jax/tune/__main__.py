"""``python -m siamrn_jax.tune``: the tuning command (``siamrn-tune``, ``siamrn_jax.cli.tune``)."""

import sys

if __name__ == "__main__":
    from siamrn_jax.cli.commands import tune

    sys.exit(tune())
