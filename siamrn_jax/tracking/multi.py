"""Several targets in one video, one jitted step per frame for all of them (``MultiTracker``).

Targets are the rows of one ``TrackState`` batch (``siamrn_jax.tracking.tracker``): each frame, every live
target's search crop is cut from the one decoded frame and the compiled ``step`` of ``runner.compiled``
runs once for all of them. The batch is padded to a bucket of rows (1, 2, 4, 8, 16, ...; over a mesh,
rounded up to a multiple of its device count), so adding or removing a target recompiles only the first
time a bucket size is met in a process. On CPU, a batch of more than ``CPU_CHUNK`` rows runs as a loop over
chunks of that many rows inside the one jitted step (``chunked_step``): XLA:CPU runs big batches of this
network slower per row than small ones (2 cores, demo_resnet, 16 targets: 1233 ms per frame in one batch,
849 ms in chunks of 4; ``python -m siamrn_jax.bench multi``, docs/tracking.md). A target is initialised alone,
by the batch-1 ``init`` a single ``Tracker`` runs, and written into a free row; padding rows (free, or
left by a removed target) step on a live target's crop and their outputs are never read. Rows are
independent (the network runs in inference mode), so a target's trajectory is the one a single
``Tracker`` gives it (``tests/tracking/test_multi.py``).

Frames are [H, W, 3] uint8 BGR; boxes (x, y, w, h) 0-based (``siamrn_jax.geometry.boxes``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from siamrn_jax import checkpoint
from siamrn_jax.errors import SiamrnError
from siamrn_jax.sharding import shardings
from siamrn_jax.tracking import tracker as core
from siamrn_jax.tracking.params import TrackerParams, check_fits
from siamrn_jax.tracking.runner import (
    BLANK_BOX,
    BLANK_FRAMES,
    check_box,
    compiled,
    init_args,
    search_crop,
    template_geometry,
)

_LOG = logging.getLogger(__name__)

# Rows per chunk of the CPU step (``chunked_step``); in a one-off comparison of demo_resnet's step on the
# loaded 2-core machine, chunks of 2 and 4 ran alike, of 8 slower, one batch of 16 much slower.
CPU_CHUNK = 4


class TargetError(SiamrnError, ValueError):
    """A target id that is not tracked (``remove``), or a name another live target already has."""


def bucket(n: int, devices: int = 1) -> int:
    """Rows of the padded batch for ``n`` live targets: the next power of two >= n, rounded up to a
    multiple of ``devices`` (so the rows split evenly over a mesh); 0 for no target."""
    if n <= 0:
        return 0
    return -(-(1 << (n - 1).bit_length()) // devices) * devices


def _take_rows(state: core.TrackState, rows: jax.Array) -> core.TrackState:
    """The rows ``rows`` ([R] int) of every leaf: grows, shrinks or compacts the batch."""
    return jax.tree.map(lambda a: a[rows], state)


def _set_row(state: core.TrackState, new: core.TrackState, row: jax.Array) -> core.TrackState:
    """``state`` with row ``row`` (a traced scalar: one program per batch size) replaced by the single
    sequence of ``new`` (leading axis 1)."""
    return jax.tree.map(lambda a, b: a.at[row].set(b[0]), state, new)


@functools.lru_cache(maxsize=8)
def row_ops(mesh: Mesh | None = None) -> tuple[Any, Any]:
    """The jitted (``_take_rows``, ``_set_row``) pair; over ``mesh`` their results are sharded along the
    rows, as the step of ``compiled(model, params, mesh)`` takes them."""
    if mesh is None:
        return jax.jit(_take_rows), jax.jit(_set_row)
    _, data = shardings(mesh)
    return jax.jit(_take_rows, out_shardings=data), jax.jit(_set_row, out_shardings=data)


@functools.lru_cache(maxsize=8)
def chunked_step(model: Any, params: TrackerParams, chunk: int) -> Any:
    """The jitted step of ``compiled(model, params)`` for a multiple of ``chunk`` rows, run as a loop
    (``lax.map``) over chunks of ``chunk`` rows: the same per-row arithmetic as the batched ``core.step``
    on ``chunk`` rows, one compiled program per batch size."""
    check_fits(model, params)
    step = functools.partial(core.step, model=model, params=params)

    def run(variables, state, x):
        n = x.shape[0]

        def split(a):
            return a.reshape(n // chunk, chunk, *a.shape[1:])

        def join(a):
            return a.reshape(n, *a.shape[2:])

        new, out = jax.lax.map(lambda sx: step(variables, *sx), (jax.tree.map(split, state), split(x)))
        return jax.tree.map(join, new), jax.tree.map(join, out)

    return jax.jit(run)


@dataclasses.dataclass
class _Target:
    name: str | None
    row: int
    avg: np.ndarray  # [3] mean colour of the frame it started in (crop padding)


class MultiTracker:
    """Tracks several targets in one video with one batched step per frame.

    ``add(frame, box, name=None) -> id`` starts a target on ``frame`` (at any time, while others are being
    tracked), ``remove(id)`` drops one, ``track(frame)`` steps every live target on the next frame.

    Args:
      model, variables: the network and its variables (``siamrn_jax.load``'s bundle).
      params: tracker settings made for the model (``TrackerParams.for_model``).
      mesh: split the rows over this mesh's devices (``sharding.local_data_mesh``); None: the default device.
      on_drop: called with a one-line message when a target's state becomes non-finite and it is dropped
        (default: logged as a warning by this module's logger).
      chunk: run batches of more rows than this as a loop over chunks of it (``chunked_step``); None:
        ``CPU_CHUNK`` on CPU, else never; 0: never. Ignored with a ``mesh``.
    """

    def __init__(
        self,
        model: Any,
        variables: Any,
        params: TrackerParams,
        mesh: Mesh | None = None,
        on_drop: Callable[[str], None] | None = None,
        chunk: int | None = None,
    ):
        check_fits(model, params)
        self.model, self.params, self.mesh = model, params, mesh
        self.variables = checkpoint.inference_variables(variables, model)
        # Targets start alone: the batch-1 init on the default device, shared with the single Tracker.
        self._init = compiled(model, params)[0]
        self._step = compiled(model, params)[1] if mesh is None else compiled(model, params, mesh)[1]
        self._take, self._set = row_ops(mesh)
        self._devices = 1 if mesh is None else mesh.size
        if chunk is None:
            chunk = CPU_CHUNK if jax.default_backend() == "cpu" else 0
        self.chunk = chunk if mesh is None else 0  # over a mesh the devices split the rows instead
        self._chunked = chunked_step(model, params, self.chunk) if self.chunk else None
        if mesh is None:
            self._step_variables, self._rep, self._place = self.variables, None, jnp.asarray
        else:
            rep, data = shardings(mesh)
            self._step_variables, self._rep = jax.device_put(self.variables, rep), rep
            self._place = functools.partial(jax.device_put, device=data)
        self._on_drop = on_drop or _LOG.warning
        self._state: core.TrackState | None = None
        self._rows = 0
        self._targets: dict[int, _Target] = {}
        self._next_id = 0
        self._host: tuple[np.ndarray, np.ndarray] | None = None  # (centres, sizes) of the rows, [R, 2]
        self.dropped: dict[int, str] = {}  # id -> why, for targets dropped by ``track``

    @property
    def ids(self) -> list[int]:
        """The live targets' ids, in the order they were added."""
        return list(self._targets)

    @property
    def names(self) -> dict[int, str | None]:
        """id -> name given to ``add`` (None when none was) of the live targets."""
        return {i: t.name for i, t in self._targets.items()}

    @property
    def rows(self) -> int:
        """Rows of the padded batch the step runs on (``bucket`` of the live targets)."""
        return self._rows

    @property
    def state(self) -> core.TrackState | None:
        """The padded ``TrackState`` ([rows, ...] leaves; None with no target); ``row(id)`` is a target's."""
        return self._state

    def row(self, target_id: int) -> int:
        """The row of ``state`` a live target occupies (rows move when the batch shrinks)."""
        return self._get(target_id).row

    def label(self, target_id: int) -> str:
        """How messages name a target: ``'NAME' (id N)`` or ``id N``."""
        t = self._targets.get(target_id)
        name = t.name if t is not None else None
        return f"{name!r} (id {target_id})" if name is not None else f"id {target_id}"

    def add(self, frame: np.ndarray, box: Sequence[float], name: str | None = None) -> int:
        """Starts a target on ``frame`` (its template is cut from it); returns its id (0, 1, 2, ...).

        Raises:
          BoxError: the box is not 4 finite numbers, under 1 px, or outside the frame.
          TargetError: another live target has this ``name``.
        """
        what = f"target {name!r}" if name is not None else f"target id {self._next_id}"
        if name is not None and name in self.names.values():
            raise TargetError(f"{what}: another live target has this name")
        b = check_box(box, frame.shape[:2], f"{what}: box")
        g = template_geometry(frame, b, self.params)
        new = self._init(self.variables, *map(jnp.asarray, init_args([frame], [g], self.params)))
        if self._rep is not None:
            new = jax.device_put(new, self._rep)  # the row ops take it replicated beside the sharded rows
        used = {t.row for t in self._targets.values()}
        free = [r for r in range(self._rows) if r not in used]
        if not free:
            self._resize(bucket(len(self._targets) + 1, self._devices), new)
            free = [len(self._targets)]
        target_id, self._next_id = self._next_id, self._next_id + 1
        self._targets[target_id] = _Target(name, free[0], g.avg)
        self._state = self._set(self._state, new, np.int32(free[0]))
        self._host = None
        return target_id

    def remove(self, target_id: int) -> None:
        """Stops tracking a target; the batch shrinks to a smaller bucket when the others fit in one.

        Raises:
          TargetError: ``target_id`` is not a live target.
        """
        self._get(target_id)
        del self._targets[target_id]
        self._shrink()

    def track(self, frame: np.ndarray) -> dict[int, dict[str, Any]]:
        """One frame for every live target: all crops from ``frame``, one batched step.

        Returns:
          ``{id: {'bbox': [x, y, w, h], 'best_score': float, 'p_match': [S*S] float32}}`` for the live
          targets (``'p_match'``, the relation detector's match probabilities row-major over score-map
          cells, only when the relation detector is on); a target whose state became non-finite is left
          out, dropped (``dropped``, ``on_drop``), and the others go on.
        """
        if not self._targets:
            return {}
        centers, sizes = self._host_geometry()
        crops: list[np.ndarray | None] = [None] * self._rows
        for t in self._targets.values():
            crops[t.row] = search_crop(frame, centers[t.row], sizes[t.row], t.avg, self.params, np.uint8)
        fill = next(c for c in crops if c is not None)  # padding rows: any live crop, outputs unread
        x = np.stack([fill if c is None else c for c in crops])
        step = self._chunked if self.chunk and self._rows > self.chunk else self._step
        self._state, out = step(self._step_variables, self._state, self._place(x))
        box, score = np.asarray(out.box, np.float64), np.asarray(out.best_score)
        p_match = None if out.p_match is None else np.asarray(out.p_match)
        self._host = (np.asarray(self._state.center), np.asarray(self._state.size))
        results, bad = {}, []
        for i, t in self._targets.items():
            r = t.row
            if not (np.all(np.isfinite(self._host[0][r])) and np.all(np.isfinite(self._host[1][r]))):
                bad.append(i)
                continue
            res = {"bbox": box[r].tolist(), "best_score": float(score[r])}
            if p_match is not None:
                res["p_match"] = p_match[r]
            results[i] = res
        for i in bad:
            self._drop(i)
        return results

    # --- rows ---------------------------------------------------------------------------------------------

    def _get(self, target_id: int) -> _Target:
        t = self._targets.get(target_id)
        if t is None:
            live = ", ".join(map(str, self._targets)) or "none"
            raise TargetError(f"no target with id {target_id!r} (live ids: {live})")
        return t

    def _host_geometry(self) -> tuple[np.ndarray, np.ndarray]:
        """[R, 2] centres and sizes of the rows on the host (read back once per change of the state)."""
        if self._host is None:
            self._host = (np.asarray(self._state.center), np.asarray(self._state.size))
        return self._host

    def _resize(self, rows: int, new: core.TrackState | None = None) -> None:
        """Rebuilds the batch with ``rows`` rows: live targets first (in id order), then padding copies of
        the first live row (of ``new`` when there is no state yet)."""
        live = list(self._targets.values())
        if self._state is None:
            self._state, self._rows = self._take(new, np.zeros(rows, np.int32)), rows
            return
        keep = [t.row for t in live] or [0]
        idx = np.array([*keep, *[keep[0]] * (rows - len(keep))], np.int32)[:rows]
        self._state = self._take(self._state, idx)
        for k, t in enumerate(live):
            t.row = k
        self._rows, self._host = rows, None

    def _shrink(self) -> None:
        want = bucket(len(self._targets), self._devices)
        if want == 0:
            self._state, self._rows, self._host = None, 0, None
        elif want < self._rows:
            self._resize(want)

    def _drop(self, target_id: int) -> None:
        t = self._targets[target_id]
        c, s = self._host[0][t.row].tolist(), self._host[1][t.row].tolist()
        msg = (
            f"target {self.label(target_id)}: tracker state became non-finite (centre {c}, size {s}: the "
            "network produced NaN/inf); dropped, the other targets go on"
        )
        del self._targets[target_id]
        self.dropped[target_id] = msg
        self._on_drop(msg)
        self._shrink()


def warm_up(
    model: Any, variables: Any, params: TrackerParams, counts: Sequence[int], mesh: Mesh | None = None
) -> None:
    """Compiles what a ``MultiTracker`` runs for ``counts`` live targets (the step at each of their
    buckets, the row operations) on a blank 2-frame sequence, so that timed runs exclude compilation."""
    m = MultiTracker(model, variables, params, mesh)
    devices = 1 if mesh is None else mesh.size
    for n in sorted({bucket(c, devices) for c in counts if c > 0}):
        while m.rows < n:
            m.add(BLANK_FRAMES[0], BLANK_BOX)
        m.track(BLANK_FRAMES[1])
