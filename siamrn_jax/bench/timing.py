"""Timing helpers: ahead-of-time compile time, then the median/p90 of steady-state calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np


class Timing(NamedTuple):
    name: str
    compile_s: float  # trace + lower + compile (ahead of time, so it never includes a run)
    median_ms: float
    p90_ms: float
    runs: int


def time_fn(name: str, fn: Callable[..., Any], *args, runs: int = 10, warmup: int = 2) -> Timing:
    """Times a jitted ``fn(*args)``: compilation (ahead of time), then ``warmup`` untimed and ``runs`` timed
    calls of the compiled executable. Every call is synchronised with ``block_until_ready``.
    """
    jax.clear_caches()  # inputs were made by the same functions: make the compile below a real one
    t0 = time.perf_counter()
    fn = fn.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    median, p90 = time_compiled(fn, args, runs, warmup)
    return Timing(name, compile_s, median, p90, runs)


def time_compiled(
    compiled: Callable[..., Any], args: tuple, runs: int, warmup: int = 2
) -> tuple[float, float]:
    """(median, p90) ms of ``runs`` synchronised calls of a compiled executable, after ``warmup``."""
    for _ in range(warmup):
        jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times)), float(np.percentile(times, 90))


def table(rows: list[Timing]) -> str:
    """A Markdown table of timings."""
    lines = [
        "| stage | compile s | median ms | p90 ms | runs |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.name} | {r.compile_s:.2f} | {r.median_ms:.1f} | {r.p90_ms:.1f} | {r.runs} |" for r in rows
    ]
    return "\n".join(lines)
