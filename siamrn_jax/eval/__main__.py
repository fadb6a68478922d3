"""``python -m siamrn_jax.eval``: the evaluation command (``siamrn-eval``, ``siamrn_jax.cli.eval``)."""

import sys

if __name__ == "__main__":
    from siamrn_jax.cli.commands import eval

    sys.exit(eval())
