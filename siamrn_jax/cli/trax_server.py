"""``python -m siamrn_jax.eval.trax_server``: the TraX server the VOT toolkit starts
(``siamrn_jax.eval.trax_server``)."""

from __future__ import annotations

import argparse
import sys

from siamrn_jax.cli.args import add_preset
from siamrn_jax.errors import SiamrnError, one_line
from siamrn_jax.eval.trax_server import __doc__ as DOC
from siamrn_jax.eval.trax_server import serve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m siamrn_jax.eval.trax_server", description=DOC.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint directory, or 'demo'")
    add_preset(p, default="vot")
    a = p.parse_args(argv)
    from siamrn_jax import checkpoint
    from siamrn_jax.tracking.params import TrackerParams
    from siamrn_jax.tracking.runner import Tracker

    try:
        model, variables, _ = checkpoint.load_weights(a.checkpoint)
        tracker = Tracker(model, variables, TrackerParams.for_model(model, a.preset))
    except (SiamrnError, OSError) as e:  # before the TraX handshake: the toolkit shows our stderr
        print(one_line(e), file=sys.stderr)
        return 2
    import trax  # vot-trax (the [vot] extra); only this entry point needs it

    # Not ``with trax.Server(...)``: its exit prints the traceback of any exception and quits a second time.
    server = trax.Server([trax.Region.RECTANGLE], [trax.Image.PATH], ["color"], tracker_name="siamrn-jax")
    try:
        serve(server, tracker, trax.Rectangle.create)
    except trax.TraxException as e:  # the client broke the protocol or hung up: libtrax ended the session
        print(f"error: trax: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except (SiamrnError, OSError) as e:  # serve has sent the client a quit with this reason
        print(one_line(e), file=sys.stderr)
        return 2
    server.quit()
    return 0
