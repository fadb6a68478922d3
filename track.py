"""Track an object in a video or image sequence: ``python track.py --help`` (``siamrn_jax.tracking.cli``)."""

import sys

from siamrn_jax.tracking.cli import main

if __name__ == "__main__":
    sys.exit(main())
