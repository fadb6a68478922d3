"""``python -m siamrn_jax.bench track``: tracker timings (template init, network-only step, end to end).

- template init: template crop -> ``TrackState`` (backbone + neck + support RoI + RD support terms);
- network-only step: one jitted ``step`` on a fixed search crop (network + post-processing, no host work);
- SiamBAN part: search branch + BAN head only (what SiamRN adds on top is the RD and the refinement);
- end-to-end step: crop on the host + step + reading the box back, on the frames of a real sequence;
- batched: the same step for N sequences in lockstep (frames/s = N / step time).
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
from siamrn_jax.config import build_model, load_config
from siamrn_jax.geometry.boxes import pysot_init_box
from siamrn_jax.tracking import tracker as core
from siamrn_jax.tracking.params import TrackerParams
from siamrn_jax.tracking.runner import Tracker, search_crop
from siamrn_jax.tracking.sources import open_input


def first_frames(sequence: Path, n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The first ``n`` frames of a sequence folder and pysot's init box from its ground truth (the rule of
    ``track.py`` and ``eval run``)."""
    src = open_input(sequence).head(n)
    return list(src), pysot_init_box(src.groundtruth[0])


def model_and_variables(config: str, checkpoint_dir: str | None) -> tuple:
    """(model, variables ready for inference) of a checkpoint, else random weights of ``config``."""
    if checkpoint_dir:
        model, variables, _ = checkpoint.load(checkpoint_dir)
        return model, jax.block_until_ready(variables)  # the load-time transforms run asynchronously
    model = build_model(load_config(config).model)
    return model, jax.block_until_ready(
        checkpoint.inference_variables(checkpoint.init_variables(model, calibrate=2))
    )


def bench_track(config: str, checkpoint_dir: str | None, sequence: Path, runs: int, batch: int, preset: str):
    model, variables = model_and_variables(config, checkpoint_dir)
    params = TrackerParams.for_model(model, preset)
    frames, box = first_frames(sequence, runs + 3)
    trk = Tracker(model, variables, params)
    rows: list[Timing] = []

    t0 = time.perf_counter()
    trk.init(frames[0], box)
    jax.block_until_ready(trk.state)
    first_init = time.perf_counter() - t0
    init_times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        trk.init(frames[0], box)
        jax.block_until_ready(trk.state)
        init_times.append((time.perf_counter() - t0) * 1e3)
    rows.append(
        Timing(
            "template init (crop + jitted init)",
            first_init - float(np.median(init_times)) / 1e3,  # first call minus a steady one
            float(np.median(init_times)),
            float(np.percentile(init_times, 90)),
            runs,
        )
    )

    state = trk.state
    x = jnp.asarray(
        search_crop(frames[1], np.asarray(state.center[0]), np.asarray(state.size[0]), trk._avg, params)[None]
    )
    step = jax.jit(functools.partial(core.step, model=model, params=params))
    rows.append(time_fn("network-only step, batch 1", step, variables, state, x, runs=runs))
    siamban = jax.jit(
        lambda v, k, x: model.apply(v, k, model.apply(v, x, method="encode_search"), method="ban_head")
    )
    rows.append(
        time_fn(
            "SiamBAN part only (search branch + BAN head)", siamban, variables, state.kernel, x, runs=runs
        )
    )

    e2e = []
    for f in frames[1:]:
        t0 = time.perf_counter()
        trk.track(f)
        e2e.append((time.perf_counter() - t0) * 1e3)
    rows.append(
        Timing(
            f"end-to-end step on {sequence.name} (crop + step + box to host)",
            (e2e[0] - float(np.median(e2e[1:]))) / 1e3,
            float(np.median(e2e[1:])),
            float(np.percentile(e2e[1:], 90)),
            len(e2e) - 1,
        )
    )

    if batch > 1:
        big = jax.tree.map(lambda a: jnp.concatenate([a] * batch) if a is not None else None, state)
        xb = jnp.concatenate([x] * batch)
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
