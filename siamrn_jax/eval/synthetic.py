"""Held-out synthetic evaluation: OPE scores of checkpoints on generated scenes with look-alike distractors.

``python -m siamrn_jax.eval.synthetic --checkpoint A [--checkpoint B ...] [--num 50]`` tracks the first
``--num`` videos of the held-out generator (seed 10_000, never used by training, which draws from seed 0)
with each checkpoint, with the relation detector on (SiamRN) and off (the same weights scoring with the
BAN head's first pass), and prints one Markdown row per (checkpoint, RD) with OPE success AUC, success
rate at 0.5, precision at 20 px and FPS (pysot rules; frame 0 counted, as pysot does). The scenes are
scored exactly as their OTB folders (``tracking.demo.write_scene``) would be by ``track.py`` / ``eval run``:
ground truth in OTB coordinates (``otb_from_zero_based``), the tracker started from ``pysot_init_box`` of
row 0, results compared with the rows (``siamrn_jax.geometry.boxes``).

Then a paired comparison of every two rows that differ in one factor (RD on/off for one checkpoint, or
two checkpoints with the same RD setting): the AUC difference, its 95 % bootstrap interval over sequences
and how many sequences each side wins, because on 50 sequences an aggregate difference of a few points
can be one or two lost targets. ``--out FILE`` keeps the rows (with per-sequence AUCs) as JSON and
``--include FILE`` adds saved rows to the tables, so checkpoints can be scored in separate runs.

``--split validation`` takes the validation scenes instead (``VALIDATION``: seed 20_000, disjoint from the
held-out ones), and ``--write DIR`` writes the ``--num`` scenes of the split as OTB folders instead of
tracking them, e.g. to tune on (``python -m siamrn_jax.tune --benchmark folder --root DIR``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from siamrn_jax import checkpoint
from siamrn_jax.atomic import atomic_output
from siamrn_jax.data.synthetic import SyntheticConfig, make_sequence
from siamrn_jax.errors import SiamrnError
from siamrn_jax.eval.ope import aggregate, evaluate_sequence
from siamrn_jax.eval.paired import PairedDelta, paired_bootstrap
from siamrn_jax.eval.paired import markdown as paired_table
from siamrn_jax.format_json import read_json
from siamrn_jax.geometry.boxes import otb_from_zero_based, pysot_init_box
from siamrn_jax.tracking.demo import write_scene
from siamrn_jax.tracking.params import TrackerParams
from siamrn_jax.tracking.runner import Tracker, run_sequence

HELD_OUT = SyntheticConfig(num_videos=50, frames=100, seed=10_000)
# Validation scenes for tuning (``--split validation --write DIR``, then ``siamrn-tune --benchmark folder``):
# the held-out scenes' distribution from another seed. Video ``v`` of a config comes from the generator key
# ``[seed, v]``, so seed 20_000 shares no scene with the held-out test scenes or the demo scene (seed 10_000)
# nor with training (seed 0); ``tests/eval/test_synthetic_scenes.py`` checks it.
VALIDATION = dataclasses.replace(HELD_OUT, seed=20_000)
SPLITS = {"held-out": HELD_OUT, "validation": VALIDATION}


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
    per_sequence_auc: tuple[float, ...] = ()


def held_out(num: int = 50, config: SyntheticConfig = HELD_OUT) -> list[tuple[list[np.ndarray], np.ndarray]]:
    """The first ``num`` held-out sequences as (frames, [T, 4] xywh ground truth in OTB file coordinates,
    the numbers ``write_scene`` puts in ``groundtruth_rect.txt``)."""
    config = dataclasses.replace(config, num_videos=max(num, 1))
    out = []
    for v in range(num):
        frames, gt = make_sequence(config, v)
        out.append((frames, otb_from_zero_based(gt)))
    return out


def scene_name(config: SyntheticConfig, video: int) -> str:
    """The folder name of a scene written by ``write_scenes``: its generator key, e.g. ``syn20000_007``."""
    return f"syn{config.seed}_{video:03d}"


def write_scenes(folder: str | Path, num: int, config: SyntheticConfig = VALIDATION) -> list[str]:
    """Writes the first ``num`` scenes of ``config`` into ``folder`` as OTB folders (``write_scene``: the
    ``folder`` benchmark reads them, e.g. to tune on); a scene already there is kept. Returns their names
    (``scene_name``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(config, num_videos=max(num, 1))
    names = [scene_name(config, v) for v in range(num)]
    for v, name in enumerate(names):
        if not (folder / name).is_dir():
            write_scene(folder / name, config, v)
    return names


def evaluate(
    directory: str | Path,
    sequences: list[tuple[list[np.ndarray], np.ndarray]],
    relation: bool = True,
    preset: str | None = None,
    name: str | None = None,
) -> Row:
    """Tracks ``sequences`` with the checkpoint in ``directory`` and ``preset`` (None: the model's own);
    returns the aggregate scores.

    The row is named ``name``, else after the training run that made the checkpoint, else the directory.
    """
    model, variables, meta = checkpoint.load_weights(directory)
    source = meta.get("source")
    run = source.get("train") if isinstance(source, dict) else None
    params = TrackerParams.for_model(model, preset, relation=relation)
    tracker = Tracker(model, variables, params)
    frames0, gt0 = sequences[0]
    run_sequence(tracker, frames0[:3], pysot_init_box(gt0[0]))  # compile outside the timed runs
    scores, seconds, tracked = [], 0.0, 0
    for frames, gt in sequences:
        t0 = time.perf_counter()
        result = run_sequence(tracker, frames, pysot_init_box(gt[0]))
        seconds += time.perf_counter() - t0
        tracked += len(frames)
        scores.append(evaluate_sequence(gt, result.boxes))
    total = aggregate(scores)
    return Row(
        name or Path(run or directory).name,
        relation,
        total.success_auc,
        total.success_rate,
        total.precision,
        tracked / seconds,
        len(sequences),
        tracked,
        tuple(float(x.success_auc) for x in scores),
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


@dataclasses.dataclass(frozen=True)
class Paired:
    """Row ``a`` minus row ``b`` over the same sequences."""

    a: Row
    b: Row
    delta: float  # mean per-sequence AUC difference (= difference of the aggregate AUCs)
    low: float  # 95 % bootstrap interval of ``delta``
    high: float
    wins: int  # sequences where a's AUC exceeds b's by more than 0.01
    losses: int


def paired(a: Row, b: Row, resamples: int = 10_000, seed: int = 0) -> Paired:
    """Paired bootstrap of the per-sequence AUC difference ``a - b`` (``eval.paired``)."""
    if len(a.per_sequence_auc) != len(b.per_sequence_auc):
        raise ValueError(f"{a.name}/{b.name}: rows need per-sequence AUCs over the same sequences")
    return Paired(a, b, *paired_bootstrap(a.per_sequence_auc, b.per_sequence_auc, resamples, seed))


def _label(r: Row) -> str:
    return f"{r.name}, RD {'on' if r.relation else 'off'}"


def comparisons(rows: list[Row]) -> list[Paired]:
    """Every pair of rows differing in one factor: RD on - off per model; model A - model B per RD setting."""
    out = []
    for a, b in itertools.combinations(rows, 2):
        if (a.name == b.name) != (a.relation == b.relation):
            out.append(paired(*((a, b) if a.relation >= b.relation else (b, a))))
    return out


def paired_markdown(pairs: list[Paired]) -> str:
    rows = [(p.a, p.b, PairedDelta(p.delta, p.low, p.high, p.wins, p.losses)) for p in pairs]
    return paired_table([(f"{_label(a)} − {_label(b)}", d) for a, b, d in rows])


def save_rows(rows: list[Row], path: str | Path) -> None:
    """Writes ``rows`` as JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=1))


class RowsError(SiamrnError, ValueError):
    """A ``--include`` file that is not rows saved by ``--out``, or rows of another sequence count."""


def load_rows(path: str | Path) -> list[Row]:
    data = read_json(Path(path), RowsError)  # a missing file: the OSError main reports as one line
    try:
        return [Row(**{**d, "per_sequence_auc": tuple(d["per_sequence_auc"])}) for d in data]
    except (TypeError, KeyError) as e:  # the wrong fields, the wrong shape
        raise RowsError(f"{path}: not a saved evaluation ({type(e).__name__}: {e})") from None


if __name__ == "__main__":  # the command lives in siamrn_jax.cli
    import sys

    from siamrn_jax.cli.eval_synthetic import main

    sys.exit(main())
