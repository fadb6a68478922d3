"""Paired comparison of two trackers over the same sequences: mean per-sequence AUC difference, its 95 %
bootstrap interval (sequences drawn with replacement) and the counts of clear wins and losses.

The unit is the sequence, as in the demo ablation (``eval.synthetic``) and ``eval report --paired``: two
trackers on the same sequences are not independent samples, so only the paired difference says whether
one is better.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class PairedDelta(NamedTuple):
    delta: float  # mean of a - b (= difference of the mean AUCs)
    low: float  # 95 % bootstrap interval of delta
    high: float
    wins: int  # sequences where a beats b by more than ``margin``
    losses: int


def paired_bootstrap(a, b, resamples: int = 10_000, seed: int = 0, margin: float = 0.01) -> PairedDelta:
    """a, b: [N] per-sequence scores of two trackers on the same N sequences (same order)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.size == 0 or x.shape != y.shape:
        raise ValueError(
            f"paired_bootstrap: need equal, non-empty score vectors, got {x.shape} and {y.shape}"
        )
    d = x - y
    idx = np.random.default_rng(seed).integers(0, d.size, size=(resamples, d.size))
    low, high = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
    return PairedDelta(
        float(d.mean()), float(low), float(high), int((d > margin).sum()), int((d < -margin).sum())
    )


def markdown(rows: list[tuple[str, PairedDelta]]) -> str:
    """``(label, PairedDelta)`` rows as a Markdown table."""
    out = "| comparison | Δ success AUC | 95 % bootstrap interval | sequences better / worse (±0.01) |\n"
    out += "|---|---:|---|---:|\n"
    for label, p in rows:
        out += f"| {label} | {p.delta:+.3f} | [{p.low:+.3f}, {p.high:+.3f}] | {p.wins} / {p.losses} |\n"
    return out
