"""An in-process TraX server, so the VOT toolkit can drive siamrn-jax without restarting it.

The customary ``vot.py`` helper announces ``vot=python``, which makes the toolkit start a new tracker
process for every (re-)initialisation; for a JAX tracker that means compiling again after every failure.
This loop accepts ``initialize`` at any time and re-initialises the same, already compiled tracker
(EVALUATION.md section 9). Register it in the workspace's ``trackers.ini``::

    [SiamRN-JAX]
    label = SiamRN-JAX
    protocol = trax
    command = python -m siamrn_jax.eval.trax_server --checkpoint /abs/path/to/ckpt --preset vot

(vot-toolkit 0.7.4 works end to end; 0.8.x/0.9.0's supervised experiment is broken for TraX trackers,
EVALUATION.md section 9.4.) The tracker declares rectangles, so the toolkit sends polygon ground truth as
its plain bounding box (section 9.1); results therefore differ slightly from our pysot-style VOT runner.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from siamrn_jax.cli_args import add_preset
from siamrn_jax.tracking.sources import read_image


class _Server(Protocol):
    def wait(self) -> Any: ...
    def status(self, objects: list, properties: dict | None = None) -> Any: ...


class _Tracker(Protocol):
    def init(self, frame: np.ndarray, box) -> None: ...
    def track(self, frame: np.ndarray) -> dict: ...


def _image_path(image: Any) -> str:
    """The colour channel's file path of a TraX image list (a channel -> image mapping)."""
    channel = image["color"] if "color" in image else next(iter(image.values()))
    return channel.path()


def serve(
    server: _Server,
    tracker: _Tracker,
    make_rectangle: Callable[[float, float, float, float], Any],
    read_frame: Callable[[str], np.ndarray] = lambda p: read_image(p),
) -> int:
    """Answers TraX requests until ``quit``; returns the number of frames tracked.

    ``initialize`` (first or after a failure) re-initialises ``tracker`` in place and echoes the region;
    ``frame`` tracks and replies with the box and its ``confidence``.
    """
    tracked = 0
    while True:
        request = server.wait()
        if request.type == "quit":
            return tracked
        frame = read_frame(_image_path(request.image))
        if request.type == "initialize":
            region = request.objects[0][0]
            tracker.init(frame, region.bounds())
            server.status([(region, {})])
        else:
            out = tracker.track(frame)
            server.status([(make_rectangle(*out["bbox"]), {})], {"confidence": f"{out['best_score']:.6f}"})
            tracked += 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m siamrn_jax.eval.trax_server", description=__doc__.splitlines()[0]
    )
    p.add_argument("--checkpoint", required=True)
    add_preset(p, default="vot")
    a = p.parse_args(argv)
    from siamrn_jax import checkpoint
    from siamrn_jax.errors import SiamrnError, one_line
    from siamrn_jax.tracking.params import TrackerParams
    from siamrn_jax.tracking.runner import Tracker

    try:
        model, variables, _ = checkpoint.load(a.checkpoint)
        tracker = Tracker(model, variables, TrackerParams.for_model(model, a.preset))
    except (SiamrnError, OSError) as e:  # before the TraX handshake: the toolkit shows our stderr
        print(one_line(e), file=sys.stderr)
        return 2
    import trax  # vot-trax (the [vot] extra); only this entry point needs it

    with trax.Server(
        [trax.Region.RECTANGLE], [trax.Image.PATH], ["color"], tracker_name="siamrn-jax"
    ) as server:
        serve(server, tracker, trax.Rectangle.create)
    return 0


if __name__ == "__main__":
    from siamrn_jax.xla_flags import apply_default_xla_flags

    apply_default_xla_flags()
    sys.exit(main())
