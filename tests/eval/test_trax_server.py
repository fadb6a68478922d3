"""The in-process TraX loop: re-initialisation without recompiling, replies per request."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np

from siamrn_jax import checkpoint
from siamrn_jax.config import build_model, load_config
from siamrn_jax.eval.trax_server import serve
from siamrn_jax.tracking.params import VOT
from siamrn_jax.tracking.runner import Tracker, compiled
from tests.tracking.test_tracker import synthetic_sequence


class FakeImage:
    def __init__(self, path):
        self._path = path

    def path(self):
        return self._path


class FakeRegion:
    def __init__(self, box):
        self.box = box

    def bounds(self):
        return tuple(self.box)


class FakeServer:
    """Plays the toolkit's side: a scripted list of requests; records the replies."""

    def __init__(self, requests):
        self.requests, self.replies = list(requests), []

    def wait(self):
        return self.requests.pop(0)

    def status(self, objects, properties=None):
        self.replies.append((objects, properties))


def test_reinitialise_in_process_without_recompiling(tmp_path):
    frames, box = synthetic_sequence(8)
    paths = []
    for i, f in enumerate(frames):
        paths.append(str(tmp_path / f"{i:08d}.png"))
        cv2.imwrite(paths[-1], f)

    def req(kind, i, region=None):
        return SimpleNamespace(
            type=kind,
            image={"color": FakeImage(paths[i])},
            objects=None if region is None else [(region, {})],
        )

    region = FakeRegion(box)
    # init, 3 frames, a re-init (as after a failure, 5 frames later), 2 frames, quit
    script = [
        req("initialize", 0, region),
        *(req("frame", i) for i in (1, 2, 3)),
        req("initialize", 5, FakeRegion([75, 95, 48, 36])),
        req("frame", 6),
        req("frame", 7),
        SimpleNamespace(type="quit"),
    ]
    server = FakeServer(script)
    model = build_model(load_config("configs/siamrn_r50.py:smoke").model)
    params = VOT.replace(lr=0.44)  # its own compiled functions, counted below
    tracker = Tracker(model, checkpoint.init_variables(model, seed=5, calibrate=10), params)
    assert serve(server, tracker, lambda *b: b) == 5
    assert len(server.replies) == 7
    assert server.replies[0][0][0][0] is region  # initialize is acknowledged with the region itself
    boxes = [r[0][0][0] for r in server.replies if r[1] is not None]
    assert len(boxes) == 5 and all(np.isfinite(b).all() and len(b) == 4 for b in boxes)
    assert all(0.0 <= float(r[1]["confidence"]) <= 1.0 for r in server.replies if r[1] is not None)
    init, step = compiled(model, params)
    assert init._cache_size() == 1 and step._cache_size() == 1  # two initialisations, one compilation
