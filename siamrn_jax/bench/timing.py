"""Timing helpers: compile time of the first call, then the median/p90 of steady-state calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np


class Timing(NamedTuple):
    name: str
    compile_s: float
    median_ms: float
    p90_ms: float
    runs: int


def time_fn(name: str, fn: Callable[..., Any], *args, runs: int = 10, warmup: int = 2) -> Timing:
    """Times ``fn(*args)``: first call (trace + compile + run), ``warmup`` untimed calls, ``runs`` timed.

    Every call is synchronised with ``block_until_ready`` so the time covers the computation.
    """
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append((time.perf_counter() - t0) * 1e3)
    return Timing(name, compile_s, float(np.median(times)), float(np.percentile(times, 90)), runs)


def table(rows: list[Timing]) -> str:
    """A Markdown table of timings."""
    lines = [
        "| stage | first call (compile + run) s | median ms | p90 ms | runs |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.name} | {r.compile_s:.2f} | {r.median_ms:.1f} | {r.p90_ms:.1f} | {r.runs} |" for r in rows
    ]
    return "\n".join(lines)
