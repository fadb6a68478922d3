"""Track an object in a video or image sequence: ``python track.py --help`` (= ``siamrn-track``)."""

import sys

if __name__ == "__main__":
    from siamrn_jax.cli.commands import track

    sys.exit(track())
