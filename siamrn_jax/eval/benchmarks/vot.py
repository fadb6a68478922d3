"""VOT2018 / VOT2019 short-term reader (EVALUATION.md 2.3).

Layout: ``<root>/list.txt`` (names; without it every sub-folder with a ``groundtruth.txt``),
``<root>/<seq>/color/00000001.jpg`` (older bundles: images directly in ``<seq>/``), ``groundtruth.txt``
(8-value rotated-rectangle polygons, kept as read; 4-value rows become corner polygons) and per-frame
``<tag>.tag`` (or ``.label``) files with one 0/1 per line, padded with 0 when shorter than the sequence.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from siamrn_jax.eval.benchmarks import numbered_frames, read_flags, read_table, select
from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.format_json import read_text
from siamrn_jax.io.sources import InputError

TAGS = ("camera_motion", "illum_change", "motion_change", "size_change", "occlusion")


def _sequence_file(path: Path) -> tuple[int, int] | None:
    """(W, H) from vot-toolkit's ``sequence`` key=value file, when it states them."""
    if not path.is_file():
        return None
    kv = dict(line.split("=", 1) for line in read_text(path, InputError).splitlines() if "=" in line)
    try:
        return (int(kv["width"]), int(kv["height"])) if "width" in kv and "height" in kv else None
    except ValueError:
        raise InputError(f"{path}: width/height are not integers") from None


def load(root: str | Path, sequences: Iterable[str] | None = None) -> list[Sequence]:
    """VOT sequences.

    Args:
      root: dataset root (``list.txt`` and one folder per sequence).
      sequences: names to load; None loads ``list.txt``.

    Returns:
      Sequences in name order with [T, 8] polygons (or [T, 4] if every row is a box) and ``tags`` holding
      the five VOT tags (all-zero when a file is missing, as in pysot's JSON) plus any other tag files.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such dataset folder")
    listed = root / "list.txt"
    if listed.is_file():
        names = read_text(listed, InputError).split()
    else:
        names = [p.name for p in root.iterdir() if (p / "groundtruth.txt").is_file()]
    found = {n: root / n for n in names}
    out = []
    for name, folder in select(found, sequences, root):
        if Path(name).name != name or name in (".", ".."):  # '/all', '../x': not a folder of root
            raise InputError(f"{listed}: {name!r} is not a sequence folder name")
        if not folder.is_dir():
            raise InputError(f"{listed}: lists {name!r}, but {folder} is missing")
        gt = read_table(folder / "groundtruth.txt", (4, 8))
        frames_dir = folder / "color" if (folder / "color").is_dir() else folder
        frames = numbered_frames(frames_dir, 1, len(gt))
        tag_files = {p.stem: p for p in sorted(folder.glob("*.label")) + sorted(folder.glob("*.tag"))}
        tags = {t: read_flags(tag_files[t], len(gt), pad=True) != 0 for t in tag_files}
        tags |= {t: np.zeros(len(gt), bool) for t in TAGS if t not in tags}
        out.append(Sequence(name, frames, gt, tags=tags, image_size=_sequence_file(folder / "sequence")))
    return out
