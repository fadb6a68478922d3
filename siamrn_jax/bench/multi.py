"""``python -m siamrn_jax.bench multi``: several targets in one video, target-frames/s per target count.

For each target count N (default 1, 2, 4, 8, 16) a ``MultiTracker`` with N targets (boxes of the size of the
sequence's first ground-truth box, on a grid over the frame) tracks the sequence's frames end to end: the N
crops from the one frame, one batched step, the results to the host. Every tracker is compiled and run on
two frames first; then they are timed round-robin, one frame each per round, so that a change of machine
load hits every count alike. Rows: median and p90 ms per frame, target-frames/s, and the time per frame
relative to one target (the cost of N targets against one).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from siamrn_jax.bench.track import first_frames, model_and_variables
from siamrn_jax.tracking.multi import MultiTracker
from siamrn_jax.tracking.params import TrackerParams


class MultiTiming(NamedTuple):
    targets: int
    rows: int  # padded batch (bucket) the step ran on
    median_ms: float  # per frame, all targets
    p90_ms: float
    target_fps: float  # targets * frames / s (from the median)
    ratio: float  # median time per frame / the one-target median (NaN without a one-target row)


def layout(frame_hw: tuple[int, int], size: Sequence[float], n: int) -> list[list[float]]:
    """``n`` (x, y, w, h) boxes of ``size`` (w, h), centred on a ceil(sqrt(n))-column grid over the middle
    80 % of a frame of ``frame_hw`` (height, width)."""
    h, w = frame_hw
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = []
    for k in range(n):
        r, c = divmod(k, cols)
        cx, cy = w * (0.1 + 0.8 * (c + 0.5) / cols), h * (0.1 + 0.8 * (r + 0.5) / rows)
        out.append([cx - size[0] / 2, cy - size[1] / 2, float(size[0]), float(size[1])])
    return out


def bench_multi(
    model: Any,
    variables: Any,
    params: TrackerParams,
    frames: Sequence[np.ndarray],
    size: Sequence[float],
    counts: Sequence[int],
    runs: int,
    chunk: int | None = None,
) -> list[MultiTiming]:
    """Times ``MultiTracker.track`` for each target count (module docstring).

    Args:
      frames: at least 3 frames; frame 0 starts the targets, the others are tracked in turn.
      size: (w, h) of every target box.
      counts: target counts.
      runs: timed frames per count.
      chunk: ``MultiTracker``'s (None: its default, 4 rows per chunk on CPU; 0: one batch).
    """
    trackers = []
    for n in counts:
        m = MultiTracker(model, variables, params, chunk=chunk)
        for box in layout(frames[0].shape[:2], size, n):
            m.add(frames[0], box)
        for f in frames[1:3]:  # compiles this bucket's step, and the first calls allocate
            m.track(f)
        trackers.append(m)
    times: list[list[float]] = [[] for _ in counts]
    for j in range(runs):
        frame = frames[1 + j % (len(frames) - 1)]
        for k, m in enumerate(trackers):
            t0 = time.perf_counter()
            m.track(frame)
            times[k].append(time.perf_counter() - t0)
    medians = [float(np.median(t)) for t in times]
    one = medians[list(counts).index(1)] if 1 in counts else float("nan")
    return [
        MultiTiming(n, m.rows, med * 1e3, float(np.percentile(t, 90)) * 1e3, n / med, med / one)
        for n, m, med, t in zip(counts, trackers, medians, times, strict=True)
    ]


def markdown(rows: Sequence[MultiTiming]) -> str:
    """A Markdown table of ``bench_multi``'s rows."""
    lines = [
        "| targets | rows | median ms / frame | p90 ms | target-frames/s | time / frame vs 1 target |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ms = f"{r.median_ms:.1f} | {r.p90_ms:.1f}"
        lines.append(f"| {r.targets} | {r.rows} | {ms} | {r.target_fps:.1f} | {r.ratio:.2f}x |")
    return "\n".join(lines)


def report(
    config: str,
    checkpoint_dir: str | None,
    sequence: Path,
    runs: int,
    counts: Sequence[int],
    preset: str | None,
    chunk: int | None = None,
) -> str:
    """``bench multi``'s output: a header line (model, machine) and the table."""
    model, variables = model_and_variables(config, checkpoint_dir)
    params = TrackerParams.for_model(model, preset)
    frames, box = first_frames(sequence, min(runs, 20) + 1)
    rows = bench_multi(model, variables, params, frames, box[2:], counts, runs, chunk)
    chunk = MultiTracker(model, variables, params, chunk=chunk).chunk
    dev = jax.devices()[0]
    h, w = frames[0].shape[:2]
    header = (
        f"{checkpoint_dir or config} ({model.arch}, relation detector {'on' if params.relation else 'off'}); "
        f"{sequence.name} {w}x{h}, {runs} timed frames per count, round-robin; "
        f"{f'chunks of {chunk} rows' if chunk else 'one batch'}; jax {jax.__version__}; "
        f"{dev.platform} {dev.device_kind} ({platform.processor() or platform.machine()}); float32"
    )
    return header + "\n\n" + markdown(rows)
