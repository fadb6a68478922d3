"""OTB100 reader (raw folders or pysot's ``OTB100.json``) and the generic ``folder`` reader.

Raw layout (EVALUATION.md 2.2): ``<root>/<Seq>/img/NNNN.jpg`` and ``<root>/<Seq>/groundtruth_rect.txt``,
one ``x,y,w,h`` box per line (commas, tabs or spaces), kept as read (1-based MATLAB coordinates).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from siamrn_jax.eval.benchmarks import (
    load_pysot_json,
    nan_absent,
    numbered_frames,
    read_table,
    rows_to_table,
    select,
)
from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.io.sources import GROUNDTRUTH_FILES, InputError, read_sequence_folder

# Official frame ranges that are not "all images from 1" (start, end, initOmit): file numbers of the first
# and last annotated image; initOmit drops the first frames *and* ground-truth rows (Tiger1: 354 -> 349).
OTB_RANGES = {
    "David": (300, 770, 0),
    "Diving": (1, 215, 0),
    "Football1": (1, 74, 0),
    "Freeman3": (1, 460, 0),
    "Freeman4": (1, 283, 0),
    "BlurCar1": (247, 988, 0),
    "BlurCar3": (3, 359, 0),
    "BlurCar4": (18, 397, 0),
    "Tiger1": (1, 354, 5),
}
_TARGET_FILE = re.compile(r"^groundtruth_rect\.(\d+)\.txt$")
_DASHED = re.compile(r"^(.+)-(\d+)$")


def _targets(folder: Path) -> dict[str, Path]:
    """Sequence name -> ground-truth file for one OTB folder.

    ``groundtruth_rect.txt`` names the folder's only target. Two-target folders (Jogging, Skating2) have
    ``groundtruth_rect.1.txt`` / ``.2.txt`` -> ``Jogging-1`` / ``Jogging-2``; empty files are skipped, which
    leaves Human4 as ``Human4-2``. A folder already named ``Jogging-1`` (pysot's copies) takes only its
    own numbered file.
    """
    if (folder / "groundtruth_rect.txt").is_file():
        return {folder.name: folder / "groundtruth_rect.txt"}
    files = {m.group(1): p for p in folder.iterdir() if (m := _TARGET_FILE.match(p.name))}
    dashed = _DASHED.match(folder.name)
    if dashed and dashed.group(2) in files:
        return {folder.name: files[dashed.group(2)]}
    return {f"{folder.name}-{k}": p for k, p in files.items() if p.stat().st_size > 0}


def _base_name(name: str) -> str:
    m = _DASHED.match(name)
    return m.group(1) if m else name


def load(
    root: str | Path, sequences: Iterable[str] | None = None, layout: str = "auto", ranges: bool = True
) -> list[Sequence]:
    """OTB100 sequences.

    Args:
      root: dataset root holding the sequence folders (and, optionally, ``OTB100.json``).
      sequences: names to load (``Jogging-1`` style); None loads all.
      layout: "raw" (folders), "json" (pysot's ``OTB100.json``, which also gives the sequence attributes)
        or "auto" (json when the file exists).
      ranges: apply ``OTB_RANGES``; without them every folder must have one image per ground-truth line.

    Returns:
      Sequences in name order, ground truth [T, 4] as read.
    """
    root = Path(root)
    if layout not in ("auto", "raw", "json"):
        raise ValueError(f"layout must be 'auto', 'raw' or 'json', got {layout!r}")
    if layout == "json" or (layout == "auto" and (root / "OTB100.json").is_file()):
        return load_pysot_json(root, "OTB100.json", sequences)
    if not root.is_dir():
        raise InputError(f"{root}: no such dataset folder")
    found = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / "img").is_dir()):
        found.update({name: gt for name, gt in _targets(folder).items()})
    out = []
    for name, gt_path in select(found, sequences, root):
        gt = read_table(gt_path)
        start, end, omit = OTB_RANGES.get(_base_name(name), (1, None, 0)) if ranges else (1, None, 0)
        if end is not None and end - start + 1 != len(gt):
            raise InputError(f"{gt_path}: {len(gt)} lines for the official range {start}..{end}")
        frames = numbered_frames(gt_path.parent / "img", start, len(gt), exact=end is None)
        gt, frames = gt[omit:], frames[omit:]
        out.append(Sequence(name, frames, gt, absent=nan_absent(gt)))
    return out


def load_folder(root: str | Path, sequences: Iterable[str] | None = None) -> list[Sequence]:
    """Any folder of sequence folders, each read by ``read_sequence_folder`` in its strict mode.

    The same rule as ``siamrn-track`` on one such folder (frames in ``img/``, ``color/`` or the folder,
    natural name order, ``groundtruth_rect.txt`` or ``groundtruth.txt``), with no official ranges: each
    folder needs exactly one ground-truth line per frame. VOT polygons are kept (scored as polygons by the
    VOT protocols, converted by pysot's rule by OPE). LaSOT cuts keep their ``full_occlusion.txt`` /
    ``out_of_view.txt`` flags and ``nlp.txt``; all-NaN rows (UAV123 cuts) are marked absent.
    """
    from siamrn_jax.eval.benchmarks.lasot import lasot_extras  # lasot imports nothing from here

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    found = {p.name: p for p in sorted(root.iterdir()) if any((p / n).is_file() for n in GROUNDTRUTH_FILES)}
    out = []
    for name, folder in select(found, sequences, root):
        seq = read_sequence_folder(folder, strict=True)
        gt = rows_to_table(seq.rows)
        absent, meta = lasot_extras(folder, len(gt))
        out.append(Sequence(name, seq.frames, gt, absent=absent | nan_absent(gt), meta=meta))
    return out
