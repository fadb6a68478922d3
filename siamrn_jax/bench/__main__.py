"""``python -m siamrn_jax.bench``: the benchmark command (``siamrn-bench``, ``siamrn_jax.cli.bench``)."""

import sys

if __name__ == "__main__":
    from siamrn_jax.cli.commands import bench

    sys.exit(bench())
