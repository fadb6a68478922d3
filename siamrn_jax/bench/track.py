"""``python -m siamrn_jax.bench track``: tracker timings (template init, network-only step, end to end).

- template init: template crop -> ``TrackState`` (backbone + neck + support RoI + RD support terms);
- network-only step: one jitted ``step`` on a fixed search crop (network + post-processing, no host work);
- SiamBAN part: search branch + BAN head only (what SiamRN adds on top is the RD and the refinement);
- end-to-end step: crop on the host + step + reading the box back, on the frames of a real sequence;
- batched: the same step for N sequences in lockstep (frames/s = N / step time).
``--breakdown`` instead gives the per-frame budget of one sequence stage by stage (``breakdown_rows``):
host crop, crop to the device, each network stage, post-processing, read-back, end to end.
Each row reports the compile time (for the host-loop rows: first call minus a steady one) and the
median/p90 of the following calls.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from siamrn_jax import checkpoint
from siamrn_jax.bench.timing import Timing, table, time_fn
from siamrn_jax.geometry.boxes import pysot_init_box
from siamrn_jax.geometry.score_map import proposal_boxes
from siamrn_jax.io.sources import open_input
from siamrn_jax.tracking import tracker as core
from siamrn_jax.tracking.params import TrackerParams, own_preset
from siamrn_jax.tracking.runner import Tracker, search_crop


def _track_ms(trk, frames) -> list[float]:
    """Milliseconds of ``trk.track(frame)`` per frame, as a user calls it."""
    out = []
    for f in frames:
        t0 = time.perf_counter()
        trk.track(f)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def end_to_end(name: str, trk, frames) -> Timing:
    """``trk.track`` on each of ``frames`` as a user calls it: the median and p90 of all but the first, and
    as compile time the first one's excess over the median (seconds)."""
    e2e = _track_ms(trk, frames)
    median = float(np.median(e2e[1:]))
    return Timing(name, (e2e[0] - median) / 1e3, median, float(np.percentile(e2e[1:], 90)), len(e2e) - 1)


def template_init(name: str, trk, frame: np.ndarray, box, runs: int) -> Timing:
    """``trk.init(frame, box)`` until the state is ready: the first call's excess over the median of the
    next ``runs`` as compile time."""
    t0 = time.perf_counter()
    trk.init(frame, box)
    jax.block_until_ready(trk.state)
    first = time.perf_counter() - t0
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        trk.init(frame, box)
        jax.block_until_ready(trk.state)
        times.append((time.perf_counter() - t0) * 1e3)
    median = float(np.median(times))
    return Timing(name, first - median / 1e3, median, float(np.percentile(times, 90)), runs)


def search_input(trk, frame: np.ndarray) -> jax.Array:
    """[1, 255, 255, 3] the search crop of ``frame`` around ``trk``'s (initialised) state, on the device:
    the network-only step's input."""
    state = trk.state
    center, size = np.asarray(state.center[0]), np.asarray(state.size[0])
    return jnp.asarray(search_crop(frame, center, size, trk.avg, trk.params)[None])


def jitted_step(model, params: TrackerParams):
    """The tracker's per-frame step (network + post-processing), jitted."""
    return jax.jit(functools.partial(core.step, model=model, params=params))


def lockstep(state, x: jax.Array, n: int) -> tuple:
    """``state`` and ``x`` of one sequence repeated for ``n`` sequences in lockstep."""
    big = jax.tree.map(lambda a: jnp.concatenate([a] * n) if a is not None else None, state)
    return big, jnp.concatenate([x] * n)


def first_frames(sequence: Path, n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The first ``n`` frames of a sequence folder and pysot's init box from its ground truth (the rule of
    ``track.py`` and ``eval run``)."""
    src = open_input(sequence).head(n)
    return list(src), pysot_init_box(src.groundtruth[0])


def model_and_variables(config: str, checkpoint_dir: str | None) -> tuple:
    """(model, variables ready for inference) of a checkpoint, else random weights of ``config``."""
    model, variables, _ = checkpoint.load_weights(checkpoint_dir or checkpoint.RANDOM + config)
    return model, jax.block_until_ready(variables)  # the load-time transforms run asynchronously


def bench_track(config: str, checkpoint_dir: str | None, sequence: Path, runs: int, batch: int, preset: str):
    model, variables = model_and_variables(config, checkpoint_dir)
    params = TrackerParams.for_model(model, preset)
    frames, box = first_frames(sequence, runs + 3)
    trk = Tracker(model, variables, params)
    rows = [template_init("template init (crop + jitted init)", trk, frames[0], box, runs)]
    state, x = trk.state, search_input(trk, frames[1])
    step = jitted_step(model, params)
    rows.append(time_fn("network-only step, batch 1", step, variables, state, x, runs=runs))
    siamban = jax.jit(
        lambda v, k, x: model.apply(v, k, model.apply(v, x, method="encode_search"), method="ban_head")
    )
    rows.append(
        time_fn(
            "SiamBAN part only (search branch + BAN head)", siamban, variables, state.kernel, x, runs=runs
        )
    )
    rows.append(
        end_to_end(f"end-to-end step on {sequence.name} (crop + step + box to host)", trk, frames[1:])
    )
    if batch > 1:
        big, xb = lockstep(state, x, batch)
        tb = time_fn(f"network-only step, batch {batch}", step, variables, big, xb, runs=max(2, runs // 2))
        rows.append(tb)
    fps = 1e3 / rows[1].median_ms
    dev = jax.devices()[0]
    out = [
        f"{checkpoint_dir or config}; preset {preset}; jax {jax.__version__}; "
        f"{dev.platform} {dev.device_kind}; float32",
        "",
        table(rows),
        "",
        f"batch-1 network-only: {fps:.2f} FPS",
    ]
    if batch > 1:
        out.append(f"batch {batch}: {batch * 1e3 / rows[-1].median_ms:.2f} frames/s")
    return "\n".join(out)


def _host_median(fn, runs: int) -> tuple[float, float]:
    """(median, p90) ms of ``runs`` calls of a host function (after one untimed call)."""
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times)), float(np.percentile(times, 90))


def _host_row(name: str, fn, runs: int) -> Timing:
    return Timing(name, 0.0, *_host_median(fn, runs), runs)


def breakdown_rows(model, variables, params: TrackerParams, frames, box, runs: int) -> list[Timing]:
    """Per-frame budget of the single-sequence tracker (``Tracker.track``), stage by stage: the search crop
    on the host, the uint8 crop to the device, each network stage as its own jitted call (the fused step
    is faster than their sum: XLA fuses across stages), post-processing (the whole jitted step minus the
    network alone), the outputs back to the host, and ``Tracker.track`` end to end on the frames."""
    trk = Tracker(model, variables, params)
    trk.init(frames[0], box)
    v, state = trk.variables, trk.state
    center, size = np.asarray(state.center)[0], np.asarray(state.size)[0]
    crop = search_crop(frames[1], center, size, trk.avg, params, np.uint8)
    rows = [
        _host_row(
            "search crop on the host (uint8)",
            lambda: search_crop(frames[1], center, size, trk.avg, params, np.uint8),
            runs,
        )
    ]
    rows.append(
        _host_row("uint8 crop to the device", lambda: jax.block_until_ready(jnp.asarray(crop[None])), runs)
    )
    x_u8 = jnp.asarray(crop[None])  # what Tracker.track hands the jitted step
    x = core.pixels(x_u8)  # what the network stages read

    def stage(method):
        return jax.jit(lambda v, *a: model.apply(v, *a, method=method))

    search = stage("encode_search")(v, x)
    rows.append(time_fn("network: search branch", stage("encode_search"), v, x, runs=runs))
    rows.append(time_fn("network: BAN head", stage("ban_head"), v, state.kernel, search, runs=runs))
    step = jitted_step(model, params)
    if params.relation:
        head = stage("ban_head")(v, state.kernel, search)
        boxes = proposal_boxes(head.loc, model.stride, model.instance_size)
        rois = stage("pool_proposals")(v, search, boxes)
        relate = jax.jit(lambda v, c, r: model.apply(v, None, r, cache=c, method="relate"))
        refine = stage("refine")
        n = boxes.shape[1]
        rows.append(
            time_fn(
                f"network: PrRoIPool of {n} proposals", stage("pool_proposals"), v, search, boxes, runs=runs
            )
        )
        rows.append(
            time_fn(
                f"network: relation detector, {n} proposals", relate, v, state.support_cache, rois, runs=runs
            )
        )
        rows.append(
            time_fn(
                "network: refined cls", refine, v, head.cls_corr, jnp.full(head.cls.shape[:3], 0.5), runs=runs
            )
        )
        network = jax.jit(
            lambda v, s, x: model.apply(
                v, s.kernel, s.support, x, s.support_cache, params.reuse_corr, method="track_frame"
            )
        )
    else:
        network = jax.jit(lambda v, s, x: model.apply(v, s.kernel, x, method=core.first_pass))
    net = time_fn("network: whole (one jitted call)", network, v, state, x, runs=runs)
    whole = time_fn("jitted step (network + post-processing)", step, v, state, x_u8, runs=runs)
    post = Timing(
        "post-processing (step minus network)",
        0.0,
        max(whole.median_ms - net.median_ms, 0.0),
        float("nan"),
        runs,
    )
    rows += [net, post, whole]
    _, out = step(v, state, x)
    jax.block_until_ready(out)
    rows.append(
        _host_row("outputs to the host (box, score, cls, p_match)", lambda: jax.device_get(out), runs)
    )
    e2e = end_to_end("Tracker.track end to end (crop + step + read-back)", trk, frames[1:])
    rows.append(e2e._replace(compile_s=0.0))
    return rows


def bench_breakdown(
    config: str, checkpoint_dir: str | None, sequence: Path, runs: int, preset: str | None
) -> str:
    """``bench track --breakdown``: ``breakdown_rows`` as a Markdown table (``--checkpoint`` may be an
    embedded name such as ``demo``)."""
    model, variables, _ = checkpoint.load_weights(checkpoint_dir or checkpoint.RANDOM + config)
    jax.block_until_ready(variables)
    params = TrackerParams.for_model(model, preset)
    frames, box = first_frames(sequence, runs + 3)
    rows = breakdown_rows(model, variables, params, frames, box, runs)
    dev = jax.devices()[0]
    name = preset if isinstance(preset, str) else (own_preset(model) if preset is None else "from file")
    dev = f"{dev.platform} {dev.device_kind}"
    head = f"{checkpoint_dir or config}; preset {name}; jax {jax.__version__}; {dev}; float32, batch 1"
    return head + "\n\n" + table(rows)
