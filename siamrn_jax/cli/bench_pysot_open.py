"""``python -m siamrn_jax.bench.pysot_open``: the pysot annotation-JSON open benchmark
(``siamrn_jax.bench.pysot_open``)."""

from __future__ import annotations

import argparse
import sys

from siamrn_jax.bench.pysot_open import HEADER, measure
from siamrn_jax.bench.pysot_open import __doc__ as DOC
from siamrn_jax.cli.args import positive_int
from siamrn_jax.errors import one_line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=DOC.split("\n\n")[0])
    p.add_argument("--videos", type=positive_int, default=10_000, help="videos in the JSON (default 10000)")
    p.add_argument("--frames", type=positive_int, default=40, help="annotated frames per track (default 40)")
    p.add_argument("--tracks", type=positive_int, default=1, help="tracks per video (default 1)")
    p.add_argument("--header", action="store_true", help="print the Markdown table header first")
    a = p.parse_args(argv)
    try:
        m = measure(a.videos, a.tracks, a.frames)
    except OSError as e:  # the temporary tree (disk full, no temporary folder)
        print(one_line(e), file=sys.stderr)
        return 2
    if a.header:
        print(HEADER)
    print(
        f"| {a.videos} | {a.videos * a.tracks} | {a.videos * a.tracks * a.frames} | {m['json_mb']:.1f} "
        f"| {m['open_s']:.2f} | {m['peak_mb']:.0f} | {m['kept_mb']:.0f} | {m['pickle_mb']:.2f} "
        f"| {m['unpickle_ms']:.1f} |"
    )
    return 0
