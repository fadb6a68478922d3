"""Held-out synthetic evaluation: OPE scores of checkpoints on generated scenes with look-alike distractors.

``python -m siamrn_jax.eval.synthetic --checkpoint A [--checkpoint B ...] [--num 50]`` tracks the first
``--num`` videos of the held-out generator (seed 10_000, never used by training, which draws from seed 0)
with each checkpoint, with the relation detector on (SiamRN) and off (the same weights scoring with the
BAN head's first pass), and prints one Markdown row per (checkpoint, RD) with OPE success AUC, success
rate at 0.5, precision at 20 px and FPS (pysot rules; frame 0 counted, as pysot does). Every tracked
sequence starts from the ground-truth box of frame 0 (0-based pixels, no +0.5 shift: the generator's boxes
are exact continuous coordinates).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from siamrn_jax import checkpoint
from siamrn_jax.data.synthetic import SyntheticConfig, distractor_boxes, make_sequence
from siamrn_jax.eval.ope import aggregate, evaluate_sequence
from siamrn_jax.tracking.params import PRESETS
from siamrn_jax.tracking.runner import Tracker, run_sequence

HELD_OUT = SyntheticConfig(num_videos=50, frames=100, seed=10_000)


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    relation: bool
    auc: float
    success_50: float
    precision: float
    fps: float
    sequences: int
    frames: int


def held_out(num: int = 50, config: SyntheticConfig = HELD_OUT) -> list[tuple[list[np.ndarray], np.ndarray]]:
    """The first ``num`` held-out sequences as (frames, [T, 4] xywh ground truth)."""
    config = dataclasses.replace(config, num_videos=max(num, 1))
    return [make_sequence(config, v) for v in range(num)]


def evaluate(
    directory: str | Path,
    sequences: list[tuple[list[np.ndarray], np.ndarray]],
    relation: bool = True,
    preset: str = "otb",
    name: str | None = None,
) -> Row:
    """Tracks ``sequences`` with the checkpoint in ``directory``; returns the aggregate scores."""
    model, variables, _ = checkpoint.load(directory)
    params = PRESETS[preset].replace(instance_size=model.instance_size, relation=relation)
    tracker = Tracker(model, variables, params)
    frames0, gt0 = sequences[0]
    run_sequence(tracker, frames0[:3], gt0[0])  # compile outside the timed runs
    scores, seconds, tracked = [], 0.0, 0
    for frames, gt in sequences:
        t0 = time.perf_counter()
        result = run_sequence(tracker, frames, gt[0])
        seconds += time.perf_counter() - t0
        tracked += len(frames)
        scores.append(evaluate_sequence(gt, result.boxes))
    total = aggregate(scores)
    return Row(
        name or Path(directory).name,
        relation,
        total.success_auc,
        total.success_rate,
        total.precision,
        tracked / seconds,
        len(sequences),
        tracked,
    )


def markdown(rows: list[Row]) -> str:
    out = "| model | relation detector | success AUC | success@0.5 | precision@20px | FPS | sequences |\n"
    out += "|---|---|---:|---:|---:|---:|---:|\n"
    for r in rows:
        rd = "on (SiamRN)" if r.relation else "off (BAN head only)"
        out += (
            f"| {r.name} | {rd} | {r.auc:.3f} | {r.success_50:.3f} | {r.precision:.3f} | {r.fps:.1f} | "
            f"{r.sequences} |\n"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    from siamrn_jax.xla_flags import apply_default_xla_flags

    apply_default_xla_flags()
    p = argparse.ArgumentParser(
        prog="python -m siamrn_jax.eval.synthetic", description=__doc__.splitlines()[0]
    )
    p.add_argument("--checkpoint", action="append", required=True, help="checkpoint directory (repeatable)")
    p.add_argument("--num", type=int, default=50, help="held-out sequences (default 50)")
    p.add_argument("--preset", default="otb", choices=sorted(PRESETS))
    p.add_argument("--relation", choices=["both", "on", "off"], default="both")
    a = p.parse_args(argv)
    sequences = held_out(a.num)
    n_dis = np.mean(
        [len(distractor_boxes(dataclasses.replace(HELD_OUT, num_videos=a.num), v, 0)) for v in range(a.num)]
    )
    print(
        f"{a.num} held-out synthetic sequences (seed {HELD_OUT.seed}, {HELD_OUT.frames} frames, "
        f"{n_dis:.1f} distractors on average)\n"
    )
    modes = {"both": (True, False), "on": (True,), "off": (False,)}[a.relation]
    rows = [evaluate(c, sequences, rd, a.preset) for c in a.checkpoint for rd in modes]
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
