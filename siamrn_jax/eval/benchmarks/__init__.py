"""Benchmark readers, one module per family, plus the helpers they share.

Every reader is ``load(root, sequences=None, **kwargs) -> list[Sequence]``, sorted by name (pysot order),
and reached through ``siamrn_jax.eval.registry``. Readers validate as they go: a missing frame file or a
frame count that differs from the ground-truth line count raises ``InputError`` naming the folder; a
malformed annotation line names the file and the 1-based line number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.format_json import read_text
from siamrn_jax.geometry.boxes import box_to_polygon
from siamrn_jax.io.annotations import read_rows, split_fields
from siamrn_jax.io.sources import IMAGE_SUFFIXES, NUMBERED_NAME, InputError


def read_table(path: Path, widths: tuple[int, ...] = (4,)) -> np.ndarray:
    """Numeric rows of ``path`` as [T, width] float64 (NaN kept); ``InputError`` naming file and line.

    Files mixing 4- and 8-value rows (VOT) get the 4-value rows as corner polygons, see ``box_to_polygon``.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such annotation file")
    try:
        rows = read_rows(path, widths)
    except ValueError as e:
        raise InputError(str(e)) from None
    return rows_to_table(rows, widths[0])


def rows_to_table(rows: list[np.ndarray], width: int = 4) -> np.ndarray:
    """Annotation rows -> [T, width'] float64, width' the widest row.

    In a file mixing 4- and 8-value rows the 4-value rows become corner polygons (``box_to_polygon``,
    corners at x + w, as VOT's region overlap reads a rectangle); OPE then re-derives a box from them with
    pysot's +1 rule, like any polygon.
    """
    width = max((len(r) for r in rows), default=width)
    return np.array([box_to_polygon(r) if len(r) < width else r for r in rows]).reshape(-1, width)


def read_flags(path: Path, length: int, pad: bool = False) -> np.ndarray:
    """Per-frame integer labels: one per line (VOT, GOT-10k) or one comma-separated line (LaSOT).

    Args:
      path: the label file.
      length: T, the sequence length.
      pad: VOT tag files may stop early; missing trailing frames are 0 (EVALUATION.md 2.3).

    Returns:
      [T] int64 labels.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such label file")
    values = []
    for i, line in enumerate(read_text(path, InputError).splitlines(), start=1):
        for token in split_fields(line):
            # Labels are small non-negative integers (int64 holds 18 digits).
            if not (token.isascii() and token.isdigit() and len(token) <= 18):
                raise InputError(f"{path}:{i}: expected integer labels, got {line.strip()!r}")
            values.append(int(token))
    if len(values) > length or (len(values) < length and not pad):
        raise InputError(f"{path}: {len(values)} labels for {length} frames")
    return np.pad(np.array(values, np.int64), (0, length - len(values)))


def frame_pattern(frames_dir: Path) -> tuple[str, int, str]:
    """(prefix, digits, suffix) of the numbered images in ``frames_dir`` (``0001.jpg`` -> ("", 4, ".jpg"))."""
    if not frames_dir.is_dir():
        raise InputError(f"{frames_dir}: no such frames folder")
    for p in sorted(frames_dir.iterdir()):
        m = NUMBERED_NAME.match(p.name)
        if m and p.suffix.lower() in IMAGE_SUFFIXES:
            return m.group(1), len(m.group(2)), m.group(3)
    raise InputError(f"{frames_dir}: no numbered images ({', '.join(IMAGE_SUFFIXES)})")


def numbered_frames(frames_dir: Path, start: int, count: int, exact: bool = True) -> list[Path]:
    """Paths of images ``start .. start + count - 1`` (1-based file numbers) in ``frames_dir``.

    Args:
      frames_dir: the folder of images.
      start: file number of frame 0.
      count: number of frames (the ground-truth line count).
      exact: also require that the folder holds no other numbered images (no official frame range).

    Raises:
      InputError: naming the folder, for a missing frame or (``exact``) a count mismatch.
    """
    prefix, digits, suffix = frame_pattern(frames_dir)
    paths = [frames_dir / f"{prefix}{n:0{digits}d}{suffix}" for n in range(start, start + count)]
    for t, p in enumerate(paths):
        if not p.is_file():
            raise InputError(f"{frames_dir}: missing frame {p.name} (frame {t} of {count} annotated)")
    if exact:
        n_images = sum(1 for p in frames_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if n_images != count:
            raise InputError(f"{frames_dir}: {n_images} frames but {count} ground-truth lines")
    return paths


def nan_absent(gt: np.ndarray) -> np.ndarray:
    """[T] bool: rows that are entirely NaN (UAV123 marks an invisible target so)."""
    return np.isnan(gt).all(axis=1)


def select(found: dict[str, Path], sequences: Iterable[str] | None, root: Path) -> list[tuple[str, Path]]:
    """(name, folder) pairs in name order, restricted to ``sequences``; unknown names raise."""
    if sequences is None:
        return sorted(found.items())
    wanted = list(sequences)
    missing = [s for s in wanted if s not in found]
    if missing:
        raise InputError(f"{root}: no sequence(s) {', '.join(missing)} ({len(found)} found)")
    return sorted((s, found[s]) for s in set(wanted))


def load_pysot_json(root: Path, json_name: str, sequences: Iterable[str] | None = None) -> list[Sequence]:
    """Sequences from pysot's ``<root>/<json_name>`` meta file (EVALUATION.md 2.1).

    Image paths are joined to ``root`` plainly (pysot HEAD's absolute-path join resolves them against the
    working directory instead; we do not inherit that). pysot keeps LaSOT frames whose ``absent`` value is
    1, i.e. the field means "present", so ``absent = value == 0``.
    """
    path = root / json_name
    try:
        meta = json.loads(path.read_text())  # Python's json accepts UAV123's NaN literals
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read pysot meta file ({e})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path}: expected a JSON object {{sequence: record}}")
    out = []
    for name, _ in select({k: root for k in meta}, sequences, root):
        rec = meta[name]
        problem = _record_problem(rec)
        if problem:
            raise InputError(f"{path}: {name}: {problem}")
        frames = [root / p for p in rec["img_names"]]
        gt = rec["gt_rect"]
        if len(gt) != len(frames):
            raise InputError(f"{path}: {name}: {len(frames)} img_names but {len(gt)} gt_rect rows")
        for i, row in enumerate(gt):
            if len(row) not in (4, 8):
                raise InputError(f"{path}: {name}: gt_rect row {i} has {len(row)} numbers, expected 4 or 8")
        missing = next((p for p in frames if not p.is_file()), None)
        if missing is not None:
            raise InputError(f"{missing.parent}: missing frame {missing.name} ({name} in {path.name})")
        gt = np.array([box_to_polygon(r) if len(r) == 4 and max(map(len, gt)) == 8 else r for r in gt], float)
        absent = nan_absent(gt)
        if "absent" in rec:
            absent |= np.asarray(rec["absent"]) == 0
        tag_names = ("camera_motion", "illum_change", "motion_change", "size_change", "occlusion")
        tags = {k: np.asarray(rec[k], bool) for k in tag_names if k in rec}
        out.append(Sequence(name, frames, gt, absent=absent, tags=tags, attributes=list(rec.get("attr", []))))
    return out


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _record_problem(rec) -> str | None:
    """What makes one sequence record of a pysot meta file unusable (types and lengths), or None."""
    if not isinstance(rec, dict):
        return "expected an object with img_names and gt_rect"
    names, gt = rec.get("img_names"), rec.get("gt_rect")
    if not isinstance(names, list) or not all(isinstance(p, str) and p for p in names):
        return "img_names is not a list of paths"
    if not isinstance(gt, list) or not all(isinstance(r, list) and all(map(_is_number, r)) for r in gt):
        return "gt_rect is not a list of rows of numbers"
    for key in ("absent", "camera_motion", "illum_change", "motion_change", "size_change", "occlusion"):
        flags = rec.get(key, names)
        if (
            not isinstance(flags, list)
            or len(flags) != len(names)
            or (key in rec and not all(map(_is_number, flags)))
        ):
            return f"{key} is not a list of {len(names)} numbers"
    attr = rec.get("attr", [])
    if not isinstance(attr, list) or not all(isinstance(a, str) for a in attr):
        return "attr is not a list of names"
    return None
