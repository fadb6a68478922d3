"""TraX requests to the server, fuzzed: any sequence of requests (out of order, unknown types, missing or
corrupt images, absent or untrackable regions) is answered request by request, ends in the client's
``quit``, or ends the session the TraX way (a ``quit`` carrying the reason) with one of our errors for
``main`` to print as one line. Never another exception, never a hang. The tracker is a stand-in that
checks boxes as ``Tracker.init`` does (``runner.check_box``); ``tests/eval/test_trax_server.py`` runs the
real one."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
from hypothesis import strategies as st

from siamrn_jax.errors import SiamrnError, one_line
from siamrn_jax.eval.trax_server import serve
from siamrn_jax.tracking.runner import check_box
from tests.fuzz.fuzzing import scratch, twin, within


class ClientGone(Exception):
    """What vot-trax's ``Server.wait`` raises (``TraxException``) when the client hangs up."""


class Image:
    def __init__(self, path):
        self._path = path

    def path(self):
        return self._path


class Region:
    def __init__(self, box):
        self.box = box

    def bounds(self):
        return tuple(self.box)


class Server:
    def __init__(self, requests):
        self.requests, self.replies, self.quits = list(requests), [], []

    def wait(self):
        if not self.requests:
            raise ClientGone("client closed the connection")
        return self.requests.pop(0)

    def status(self, objects, properties=None):
        assert not self.quits, "status after quit"
        self.replies.append((objects, properties))

    def quit(self, reason=None):
        self.quits.append(reason)


class StandInTracker:
    def __init__(self):
        self.box = None

    def init(self, frame, box):
        self.box = check_box(box, frame.shape[:2])

    def track(self, frame):
        assert self.box is not None, "track before a successful init"
        return {"bbox": list(self.box), "best_score": 0.5}


NUMBERS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-50, 200)
REGIONS = st.one_of(
    st.builds(Region, st.lists(NUMBERS, min_size=4, max_size=4)),
    st.builds(Region, st.lists(NUMBERS, max_size=6)),
    st.just("not a region"),
)
OBJECTS = st.one_of(st.none(), st.just([]), st.lists(st.tuples(REGIONS, st.just({})), min_size=1, max_size=2))
IMAGES = st.sampled_from(["good", "missing", "garbage", "empty-list", "no-color", "none"])


def trax_image(kind: str, d) -> object:
    path = {"good": d / "f.png", "missing": d / "nope.png", "garbage": d / "g.png"}.get(kind)
    return {
        "none": None,
        "empty-list": {},
        "no-color": {"depth": object()},
    }.get(kind, {"color": Image(str(path))})


REQUESTS = st.lists(
    st.tuples(st.sampled_from(["initialize", "frame", "quit", "state", None]), IMAGES, OBJECTS), max_size=8
)


def check_trax_session(script) -> None:
    with scratch() as d:
        cv2.imwrite(str(d / "f.png"), np.full((48, 64, 3), 100, np.uint8))
        (d / "g.png").write_bytes(b"\x89PNG garbage")
        requests = [SimpleNamespace(type=t, image=trax_image(i, d), objects=o) for t, i, o in script]
        server = Server(requests)
        try:
            with within():
                tracked = serve(server, StandInTracker(), lambda *b: b)
        except (SiamrnError, OSError) as e:
            (reason,) = server.quits  # the session ended with one quit carrying the reason
            assert reason == one_line(e).removeprefix("error: ") and "\n" not in reason
            return
        except ClientGone:
            assert not server.quits
            return
        assert not server.quits and tracked == sum(1 for r in server.replies if r[1] is not None)


test_trax_session, test_trax_session_long = twin(REQUESTS)(check_trax_session)
