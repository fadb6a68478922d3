"""Track an object in a video or image sequence: ``python track.py --help`` (``siamrn_jax.tracking.cli``)."""

import sys

from siamrn_jax.xla_flags import apply_default_xla_flags

if __name__ == "__main__":
    apply_default_xla_flags()  # before JAX starts its backend
    from siamrn_jax.tracking.cli import main

    sys.exit(main())
