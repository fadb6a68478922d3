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

import sys
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from siamrn_jax.errors import SiamrnError, one_line
from siamrn_jax.io.sources import read_image


class _Server(Protocol):
    def wait(self) -> Any: ...
    def status(self, objects: list, properties: dict | None = None) -> Any: ...
    def quit(self, reason: str | None = None) -> Any: ...


class _Tracker(Protocol):
    def init(self, frame: np.ndarray, box) -> None: ...
    def track(self, frame: np.ndarray) -> dict: ...


class TraxRequestError(SiamrnError, ValueError):
    """A TraX request the server cannot answer: out of order, of an unknown type, or without its image or
    region."""


def _image_path(image: Any) -> str:
    """The colour channel's file path of a TraX image list (a channel -> image mapping)."""
    channels = image if isinstance(image, Mapping) else {}
    channel = channels["color"] if "color" in channels else next(iter(channels.values()), None)
    path = getattr(channel, "path", None)
    path = path() if callable(path) else None
    if not isinstance(path, str) or not path:
        raise TraxRequestError("trax: request without a colour image path")
    return path


def _init_region(objects: Any) -> Any:
    """The region of the first object of an ``initialize`` request (``[(region, properties), ...]``)."""
    first = objects[0] if isinstance(objects, list | tuple) and objects else None
    region = first[0] if isinstance(first, list | tuple) and first else None
    if not callable(getattr(region, "bounds", None)):
        raise TraxRequestError("trax: initialize request without a region")
    return region


def serve(
    server: _Server,
    tracker: _Tracker,
    make_rectangle: Callable[[float, float, float, float], Any],
    read_frame: Callable[[str], np.ndarray] = lambda p: read_image(p),
) -> int:
    """Answers TraX requests until ``quit``; returns the number of frames tracked.

    ``initialize`` (first or after a failure) re-initialises ``tracker`` in place and echoes the region;
    ``frame`` tracks and replies with the box and its ``confidence``. TraX has no error reply: a request
    that cannot be answered (a ``frame`` before any ``initialize``, an unknown type, a missing or corrupt
    image, an untrackable region) ends the session the protocol's way, a ``quit`` carrying the reason, and
    the error (``TraxRequestError``, ``InputError``, ``BoxError``, ...) is raised for ``main`` to report.
    """
    tracked, initialized = 0, False
    while True:
        request = server.wait()
        kind = getattr(request, "type", None)
        if kind == "quit":
            return tracked
        try:
            if kind not in ("initialize", "frame"):
                raise TraxRequestError(f"trax: unexpected request {kind!r}")
            if kind == "frame" and not initialized:
                raise TraxRequestError("trax: frame request before initialize")
            region = _init_region(request.objects) if kind == "initialize" else None
            frame = read_frame(_image_path(request.image))
            if kind == "initialize":
                initialized = False  # a failed re-initialisation leaves no usable state
                tracker.init(frame, region.bounds())
                initialized = True
                server.status([(region, {})])
                continue
            out = tracker.track(frame)
        except (SiamrnError, OSError) as e:
            server.quit(reason=one_line(e).removeprefix("error: "))
            raise
        server.status([(make_rectangle(*out["bbox"]), {})], {"confidence": f"{out['best_score']:.6f}"})
        tracked += 1


if __name__ == "__main__":  # the command lives in siamrn_jax.cli
    import sys

    from siamrn_jax.cli.commands import trax_server

    sys.exit(trax_server())
