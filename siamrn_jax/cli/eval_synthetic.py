"""``python -m siamrn_jax.eval.synthetic``: checkpoints on the held-out synthetic scenes
(``siamrn_jax.eval.synthetic``)."""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from siamrn_jax.cli.args import add_preset, positive_int
from siamrn_jax.data.synthetic import distractor_boxes
from siamrn_jax.errors import SiamrnError, one_line
from siamrn_jax.eval.synthetic import (
    SPLITS,
    RowsError,
    comparisons,
    evaluate,
    held_out,
    load_rows,
    markdown,
    paired_markdown,
    save_rows,
    write_scenes,
)
from siamrn_jax.eval.synthetic import __doc__ as DOC


def main(argv: list[str] | None = None) -> int:
    from siamrn_jax.xla_flags import apply_default_xla_flags

    apply_default_xla_flags()
    p = argparse.ArgumentParser(prog="python -m siamrn_jax.eval.synthetic", description=DOC.splitlines()[0])
    p.add_argument(
        "--checkpoint", action="append", default=[], help="checkpoint directory, or 'demo' (repeatable)"
    )
    p.add_argument("--num", type=positive_int, default=50, help="scenes of the split (default 50)")
    p.add_argument(
        "--split",
        choices=sorted(SPLITS),
        default="held-out",
        help="held-out (test, seed 10000; default) or validation (seed 20000: tune on these) scenes",
    )
    p.add_argument(
        "--write", metavar="DIR", help="write the --num scenes as OTB folders into DIR instead of tracking"
    )
    add_preset(p)
    p.add_argument("--relation", choices=["both", "on", "off"], default="both")
    p.add_argument("--out", help="also write the rows (with per-sequence AUCs) to this JSON file")
    p.add_argument(
        "--include", action="append", default=[], help="rows saved by an earlier --out (repeatable)"
    )
    a = p.parse_args(argv)
    try:
        return _run(a)
    except (SiamrnError, OSError) as e:  # our own error types and the OS's; anything else is a bug
        print(one_line(e), file=sys.stderr)
        return 2


def _run(a: argparse.Namespace) -> int:
    config = SPLITS[a.split]
    if a.write:
        names = write_scenes(a.write, a.num, config)
        print(f"wrote {len(names)} {a.split} synthetic scenes (seed {config.seed}) to {a.write}")
        return 0
    included = [(f, r) for f in a.include for r in load_rows(f)]
    for f, r in included:
        if r.sequences != a.num:
            raise RowsError(f"{f}: row {r.name} covers {r.sequences} sequences, this run {a.num}")
    included = [r for _, r in included]
    sequences = held_out(a.num, config)
    n_dis = np.mean(
        [len(distractor_boxes(dataclasses.replace(config, num_videos=a.num), v, 0)) for v in range(a.num)]
    )
    print(
        f"{a.num} {a.split} synthetic sequences (seed {config.seed}, {config.frames} frames, "
        f"{n_dis:.1f} distractors on average)\n"
    )
    modes = {"both": (True, False), "on": (True,), "off": (False,)}[a.relation]
    rows = [evaluate(c, sequences, rd, a.preset) for c in a.checkpoint for rd in modes]
    if a.out:
        save_rows(rows, a.out)
    rows = included + rows
    print(markdown(rows))
    pairs = comparisons(rows)
    if pairs:
        print(paired_markdown(pairs))
    return 0
