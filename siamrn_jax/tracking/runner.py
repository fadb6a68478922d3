"""Host loops around the jitted ``init`` / ``step``: one sequence (pysot-like ``Tracker``) or many in
lockstep (``track_batch``). Crops are cut on the host; everything else runs in the two compiled functions,
which are traced once per (model, params, batch size, mesh) and then reused for every frame and sequence.

A lockstep batch can be split over local devices: with ``mesh = sharding.local_data_mesh(n)`` (1-D,
axis ``DATA_AXIS``) the batch axis of every input, of the ``TrackState`` and of the outputs is sharded
``P(DATA_AXIS)`` and the variables are replicated, so each device tracks ``N / n`` of the sequences. The
sequences are independent, so the sharded programs contain no collective (tested on the compiled HLO).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import cv2
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from siamrn_jax import checkpoint
from siamrn_jax.errors import SiamrnError
from siamrn_jax.models.interface import Architecture
from siamrn_jax.sharding import replicate, shardings
from siamrn_jax.tracking import tracker as core
from siamrn_jax.tracking.crop import context_size, subwindow
from siamrn_jax.tracking.params import TrackerParams, check_fits


class BoxError(SiamrnError, ValueError):
    """An initial box that cannot be tracked (non-finite, empty, or outside the frame)."""


class SequenceResult(NamedTuple):
    """Per-frame results of one sequence (frame 0 is the initialisation).

    Attributes:
      boxes: [T, 4] (x, y, w, h), 0-based frame pixels; row 0 is the init box.
      scores: [T] best score per frame (NaN for frame 0).
      times: [T] seconds per frame: init for frame 0, crop + step + host for the others.
    """

    boxes: np.ndarray
    scores: np.ndarray
    times: np.ndarray


def check_box(box: Sequence[float], frame_hw: tuple[int, int], source: str = "init box") -> np.ndarray:
    """Validates an (x, y, w, h) box against a frame; returns it as float64."""
    b = np.asarray(box, np.float64).reshape(-1)
    if b.shape != (4,) or not np.all(np.isfinite(b)):
        raise BoxError(f"{source}: expected 4 finite numbers x,y,w,h, got {list(np.ravel(box))}")
    if b[2] < 1 or b[3] < 1:
        raise BoxError(f"{source}: width and height must be at least 1 px, got w={b[2]:g} h={b[3]:g}")
    h, w = frame_hw
    if b[0] >= w or b[1] >= h or b[0] + b[2] <= 0 or b[1] + b[3] <= 0:
        raise BoxError(f"{source}: box {b.tolist()} lies outside the {w}x{h} frame")
    return b


class TemplateGeometry(NamedTuple):
    """Where the template is cut from the init frame (0-based frame pixels, pysot centre convention)."""

    center: np.ndarray  # [2]
    size: np.ndarray  # [2]
    s_z: float
    avg: np.ndarray  # [3]
    roi: np.ndarray  # [4] template RoI (x1, y1, x2, y2) in the template crop


def template_geometry(frame: np.ndarray, box: np.ndarray, params: TrackerParams) -> TemplateGeometry:
    """pysot init (SPEC 9.1): centre = x + (w - 1) / 2, s_z = round(sqrt((w + p)(h + p))) (Python's round:
    half to even, as the official ``round`` of a NumPy float), mean colour padding, template RoI."""
    center = np.array([box[0] + (box[2] - 1) / 2, box[1] + (box[3] - 1) / 2])
    size = box[2:4].copy()
    s_z = float(round(context_size(size, params.context_amount)))
    roi = core.template_box(size[None], np.array([s_z]), params.exemplar_size)[0]
    return TemplateGeometry(center, size, s_z, frame.mean(axis=(0, 1)), roi)


def init_args(frames: Sequence[np.ndarray], geo: Sequence[TemplateGeometry], params: TrackerParams) -> tuple:
    """Host (NumPy) inputs of the jitted ``init`` for N sequences: [N, 127, 127, 3] uint8 crops, then
    [N, 4] RoIs, [N, 2] centres, [N, 2] sizes and [N, 2] frame sizes as float32 (callers place them)."""
    z = np.stack(
        [
            _channels(subwindow(f, tuple(g.center), params.exemplar_size, g.s_z, g.avg), params)
            for f, g in zip(frames, geo, strict=True)
        ]
    )
    return (
        z,
        np.stack([g.roi for g in geo]).astype(np.float32),
        np.stack([g.center for g in geo]).astype(np.float32),
        np.stack([g.size for g in geo]).astype(np.float32),
        np.asarray([f.shape[:2] for f in frames], np.float32),
    )


class TrackerStateError(SiamrnError, RuntimeError):
    """The tracker state became non-finite (the network produced NaN/inf, e.g. untrained weights)."""


def search_crop(frame: np.ndarray, center, size, avg, params: TrackerParams, dtype=np.float32) -> np.ndarray:
    """pysot track crop: side round(s_z * 255 / 127) around the current centre, resized to 255.

    Returns [255, 255, 3] pixels in ``dtype``: float32 as pysot hands them to its network, or ``np.uint8``
    as cut (same values; the trackers here ship those, the jitted step converts them: ``tracker.pixels``).
    """
    if not (np.all(np.isfinite(center)) and np.all(np.isfinite(size))):
        raise TrackerStateError(
            f"tracker state is not finite (centre {np.asarray(center).tolist()}, size "
            f"{np.asarray(size).tolist()}): the network produced NaN/inf; are the weights trained?"
        )
    # Official order of operations: s_z * (255 / 127), then Python's round (half to even).
    s_x = context_size(size, params.context_amount) * (params.instance_size / params.exemplar_size)
    crop = subwindow(frame, (float(center[0]), float(center[1])), params.instance_size, round(s_x), avg)
    return _channels(crop, params).astype(dtype, copy=False)


def _channels(crop: np.ndarray, params: TrackerParams) -> np.ndarray:
    """The crop in the network's channel order: BGR as cut, RGB with ``params.swap_rb`` (the padding colour
    is the BGR frame mean either way, as in OpenCV's ``TrackerNano``). ``cv2.cvtColor`` swaps the channels
    ~8x faster than copying the reversed NumPy view (0.26 -> 0.03 ms for a 255 crop on the 2-core CPU)."""
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB) if params.swap_rb else crop


@functools.lru_cache(maxsize=8)
def compiled(model: Architecture, params: TrackerParams, mesh: Mesh | None = None) -> tuple[Any, Any]:
    """The jitted (init, step) pair for a model and its tracker settings (shared by all trackers).

    With ``mesh``, both take and return arrays sharded as ``shardings(mesh)`` says (variables
    replicated, everything else split along the sequence axis); without, they run on the default device.

    Raises ``ParamsMismatchError`` when ``params`` was not made for the model (``TrackerParams.for_model``).
    """
    check_fits(model, params)
    init = functools.partial(core.init, model=model, params=params)
    step = functools.partial(core.step, model=model, params=params)
    if mesh is None:
        return jax.jit(init), jax.jit(step)
    rep, data = shardings(mesh)
    # Explicit out_shardings: the state comes back with the sharding the next step expects (no resharding
    # and no recompilation between frames), whatever the partitioner would have propagated.
    return (
        jax.jit(init, in_shardings=(rep,) + (data,) * 5, out_shardings=data),
        jax.jit(step, in_shardings=(rep, data, data), out_shardings=data),
    )


@functools.lru_cache(maxsize=8)
def compiled_hyper_step(model: Architecture, params: TrackerParams, mesh: Mesh | None = None) -> Any:
    """The jitted step taking per-sequence (penalty_k, window_influence, lr) as a 4th argument ([N, 3],
    split over ``mesh`` like the crops): tuning trials (``core.step``'s ``hyper``). A separate program from
    ``compiled``'s, which has ``params``' values as constants."""
    check_fits(model, params)
    step = functools.partial(core.step, model=model, params=params)
    if mesh is None:
        return jax.jit(step)
    rep, data = shardings(mesh)
    return jax.jit(step, in_shardings=(rep, data, data, data), out_shardings=data)


def _hyper_call(hyper_step: Any, hyper: jax.Array, variables: Any, state: core.TrackState, x: jax.Array):
    return hyper_step(variables, state, x, hyper)


class Tracker:
    """One sequence at a time, with pysot's API: ``init(frame, box)`` then ``track(frame)``.

    Frames are [H, W, 3] uint8 BGR arrays; boxes are (x, y, w, h) 0-based (``siamrn_jax.geometry.boxes``).
    ``params`` must fit the model (``TrackerParams.for_model(model, preset)``).
    """

    def __init__(self, model: Architecture, variables: Any, params: TrackerParams):
        self.model, self.params = model, params
        self.variables = checkpoint.inference_variables(variables, model)
        self._init, self._step = compiled(model, params)
        self._state: core.TrackState | None = None
        self._avg = None

    @property
    def state(self) -> core.TrackState:
        """The current ``TrackState`` (batch of one sequence: every leaf has a leading axis of 1): centre and
        size in frame pixels, the BAN kernels, the relation detector's support RoI and its cached terms."""
        if self._state is None:
            raise RuntimeError("Tracker.state read before Tracker.init")
        return self._state

    @property
    def avg(self) -> np.ndarray | None:
        """The padding colour of this sequence's crops (the first frame's BGR mean, set by ``init``; None
        before): what ``search_crop`` needs to cut a search crop as ``track`` does."""
        return self._avg

    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        b = check_box(box, frame.shape[:2])
        g = template_geometry(frame, b, self.params)
        self._avg = g.avg
        self._state = self._init(self.variables, *map(jnp.asarray, init_args([frame], [g], self.params)))
        self._geometry = None  # host copy of the state's centre and size, read back with each step's outputs

    def track(self, frame: np.ndarray) -> dict[str, Any]:
        """One frame, like pysot trackers, with the tracker's internals.

        Returns:
          ``{'bbox': [x, y, w, h], 'best_score': float, 'cls': [S, S, 2] float32 logits the scores come
          from (refined by the relation detector when it is on), 'p_match': [S*S] float32 match
          probabilities of the relation detector, row-major over score-map cells}`` (S = 25 for the
          paper model); ``'p_match'`` is absent when the relation detector is off.
        """
        if self._state is None:
            raise RuntimeError("Tracker.track called before Tracker.init")
        # Whole arrays to the host, indexed there: indexing a device array dispatches one more XLA
        # computation per read (~0.1 ms each on CPU, a measurable share of a small model's frame).
        if self._geometry is None:
            self._geometry = tuple(np.asarray(a)[0] for a in (self._state.center, self._state.size))
        x = search_crop(frame, *self._geometry, self._avg, self.params, np.uint8)
        self._state, out = self._step(self.variables, self._state, x[None])
        # One read-back per frame: the outputs and the next crop's centre and size together.
        box, best, cls, p_match, center, size = jax.device_get(
            (out.box, out.best_score, out.cls, out.p_match, self._state.center, self._state.size)
        )
        self._geometry = (center[0], size[0])
        res = {"bbox": np.asarray(box[0], np.float64).tolist(), "best_score": float(best[0]), "cls": cls[0]}
        if p_match is not None:
            res["p_match"] = p_match[0]
        return res


# A 2-frame grey sequence: compiles the pair (``warm_up``) and pads lockstep batches to a multiple of the
# device count (``track_batch``). Two frames: ``track_batch`` repeats a sequence's last crop once it ends.
BLANK_FRAMES = (np.full((64, 64, 3), 128, np.uint8),) * 2
BLANK_BOX = (16.0, 16.0, 32.0, 32.0)


def warm_up(
    model: Architecture, variables: Any, params: TrackerParams, n: int = 1, mesh: Mesh | None = None
) -> None:
    """Compiles the jitted init and step for batches of ``n`` sequences (split over ``mesh``) on a
    2-frame synthetic sequence, so that timed runs exclude compilation (the pair is cached per model,
    params and mesh, ``compiled``). ``Tracker`` feeds it the same shapes and dtypes as ``track_batch``
    with ``n = 1`` and no mesh."""
    track_batch(model, variables, params, [BLANK_FRAMES] * n, [BLANK_BOX] * n, mesh)


def track_sequence(tracker: Tracker, frames: Iterable[np.ndarray], init_box: Sequence[float]) -> Iterator:
    """Runs ``tracker`` over frames; yields (frame index, frame, box, score, seconds) per frame.

    Seconds include the host crop and the device work (init is waited for, the step's box is read back);
    call ``warm_up`` first so that they exclude compilation.
    """
    for t, frame in enumerate(frames):
        t0 = time.perf_counter()
        if t == 0:
            tracker.init(frame, init_box)
            jax.block_until_ready(tracker.state)  # else init's device time is billed to frame 1
            box, score = np.asarray(init_box, np.float64), float("nan")
        else:
            out = tracker.track(frame)
            box, score = np.asarray(out["bbox"]), out["best_score"]
        yield t, frame, box, score, time.perf_counter() - t0


def run_sequence(tracker: Tracker, frames: Iterable[np.ndarray], init_box: Sequence[float]) -> SequenceResult:
    """All frames of one sequence -> ``SequenceResult``."""
    rows = [(b, s, dt) for _, _, b, s, dt in track_sequence(tracker, frames, init_box)]
    return SequenceResult(
        np.stack([r[0] for r in rows]), np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    )


def track_batch(
    model: Architecture,
    variables: Any,
    params: TrackerParams,
    sequences: Sequence[Sequence[np.ndarray]],
    init_boxes: Sequence[Sequence[float]],
    mesh: Mesh | None = None,
    hyper: np.ndarray | None = None,
) -> list[SequenceResult]:
    """Tracks N sequences in lockstep: one batched network call per frame index.

    Sequences may differ in length and frame size. A finished sequence is padded with its last crop until
    the longest one ends (its results are not recorded), so the compiled step keeps one batch shape.

    Args:
      sequences: N sequences, each a sequence (e.g. a list or a lazy reader) of uint8 BGR frames.
      init_boxes: N (x, y, w, h) boxes in the first frames.
      mesh: split the batch over this mesh's devices (``sharding.local_data_mesh``); a batch that does not
        fill them evenly is padded with blank 2-frame sequences (``BLANK_FRAMES``) whose results are dropped.
        None: the default device.
      hyper: optional [N, 3] per-sequence (penalty_k, window_influence, lr) overriding ``params``' (tuning
        trials; ``core.step``). The same sequence may appear several times with different values.

    Returns:
      N ``SequenceResult``; frame times are the batched step time (shared by the N sequences).
    """
    n = len(sequences)
    if hyper is not None:
        hyper = np.asarray(hyper, np.float32)
        if hyper.shape != (n, 3):
            raise ValueError(f"hyper: expected [{n}, 3] (penalty_k, window_influence, lr), got {hyper.shape}")
    pad = 0 if mesh is None else -n % mesh.size
    if pad:
        sequences = [*sequences, *[BLANK_FRAMES] * pad]
        init_boxes = [*init_boxes, *[BLANK_BOX] * pad]
        hyper = None if hyper is None else np.concatenate([hyper, np.repeat(hyper[-1:], pad, 0)])
    return _lockstep(model, variables, params, sequences, init_boxes, mesh, hyper)[:n]


def _lockstep(model, variables, params, sequences, init_boxes, mesh, hyper) -> list[SequenceResult]:
    """``track_batch`` for a batch that splits evenly over ``mesh`` (hyper already checked)."""
    n = len(sequences)
    init, step = compiled(model, params, mesh)
    variables = checkpoint.inference_variables(variables, model)  # no-op for variables readied before
    if mesh is None:
        place, variables_on = jnp.asarray, variables
    else:
        data = shardings(mesh)[1]
        # device_put of an array that already has this sharding is free: callers may place the
        # variables once (run_ope does) and pass them on.
        variables_on = replicate(variables, mesh)

        def place(x):
            return jax.device_put(x, data)

    lengths = [len(s) for s in sequences]
    firsts = [s[0] for s in sequences]
    boxes = [
        check_box(b, f.shape[:2], f"sequence {i}: init box")
        for i, (b, f) in enumerate(zip(init_boxes, firsts, strict=True))
    ]
    geo = [template_geometry(f, b, params) for f, b in zip(firsts, boxes, strict=True)]
    if hyper is not None:
        step = functools.partial(_hyper_call, compiled_hyper_step(model, params, mesh), place(hyper))
    t0 = time.perf_counter()
    state = init(variables_on, *(place(x) for x in init_args(firsts, geo, params)))
    jax.block_until_ready(state)
    t_init = time.perf_counter() - t0
    out_boxes = [[b] for b in boxes]
    out_scores = [[float("nan")] for _ in range(n)]
    out_times = [[t_init] for _ in range(n)]
    last_crop = [None] * n
    for t in range(1, max(lengths)):
        t0 = time.perf_counter()
        centers, sizes = np.asarray(state.center), np.asarray(state.size)
        crops = []
        for i in range(n):
            if t < lengths[i]:
                last_crop[i] = search_crop(
                    sequences[i][t], centers[i], sizes[i], geo[i].avg, params, np.uint8
                )
            crops.append(last_crop[i])
        # The box read-back below syncs every frame: no deep queue of multi-device steps builds up (the
        # CPU collective hang of JAX_STACK.md finding 5 needs one; these programs have no collective).
        state, out = step(variables_on, state, place(np.stack(crops)))
        box, score = np.asarray(out.box, np.float64), np.asarray(out.best_score)
        dt = time.perf_counter() - t0
        for i in range(n):
            if t < lengths[i]:
                out_boxes[i].append(box[i])
                out_scores[i].append(float(score[i]))
                out_times[i].append(dt)
    return [
        SequenceResult(np.stack(b), np.array(s), np.array(d))
        for b, s, d in zip(out_boxes, out_scores, out_times, strict=True)
    ]
