"""``python -m siamrn_jax.track``: the tracker command (``siamrn-track``, ``track.py``)."""

import sys

if __name__ == "__main__":
    from siamrn_jax.cli.commands import track

    sys.exit(track())
