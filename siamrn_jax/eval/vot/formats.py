"""VOT result files (EVALUATION.md §2.7): one line per frame, a code or the region's values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from siamrn_jax.eval.vot.region import code_value
from siamrn_jax.io.annotations import split_fields


def format_vot_results(results: Sequence[Any]) -> str:
    """VOT result-file text (§2.7): one line per frame, ``1``/``2``/``0`` or the values printed ``%.4f``
    after a float32 cast (pysot ``vot_float2str``), comma-separated, each line ending in ``\\n``."""
    lines = []
    for r in results:
        c = code_value(r)
        if c is not None:
            lines.append(f"{c:d}")
        else:
            lines.append(",".join(f"{float(np.float32(v)):.4f}" for v in np.asarray(r).reshape(-1)))
    return "".join(line + "\n" for line in lines)


def parse_vot_results(text: str) -> list[int | list[float]]:
    """Inverse of :func:`format_vot_results`: codes become ``int``, other lines lists of floats.

    Blank lines are skipped; values may be separated by commas, tabs or spaces.
    """
    out: list[int | list[float]] = []
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        parts = split_fields(s)
        if len(parts) == 1:
            out.append(int(float(parts[0])))
        else:
            out.append([float(p) for p in parts])
    return out
