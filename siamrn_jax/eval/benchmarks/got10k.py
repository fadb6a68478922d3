"""GOT-10k reader (EVALUATION.md 2.6).

Layout: ``<root>/<split>/list.txt`` and ``<root>/<split>/<seq>/00000001.jpg ...`` with ``groundtruth.txt``
(``x,y,w,h``; the test split has only the first-frame box), ``absence.label`` (1 = absent),
``cover.label`` (visible-ratio class, 0 = not visible) and ``meta_info.ini`` (``key: value`` lines).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from siamrn_jax.eval.benchmarks import frame_pattern, numbered_frames, read_flags, read_table, select
from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.format_json import read_text
from siamrn_jax.io.sources import IMAGE_SUFFIXES, InputError


def _meta_info(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    lines = read_text(path, InputError).splitlines()
    pairs = (line.split(":", 1) for line in lines if ":" in line and not line.startswith("["))
    return {k.strip(): v.strip() for k, v in pairs}


def _image_size(meta: dict[str, str], path: Path) -> tuple[int, int] | None:
    if "resolution" not in meta:
        return None
    try:  # the toolkit evaluates "(W, H)" with a literal parser too
        w, h = ast.literal_eval(meta["resolution"])
        return int(w), int(h)
    except (ValueError, SyntaxError, TypeError, OverflowError, RecursionError):  # OverflowError: int(inf)
        raise InputError(f"{path}: resolution {meta['resolution']!r} is not '(W, H)'") from None


def load(root: str | Path, sequences: Iterable[str] | None = None, split: str = "val") -> list[Sequence]:
    """GOT-10k sequences of one split.

    Args:
      root: dataset root holding ``<split>/`` (or the split folder itself).
      sequences: names to load (``GOT-10k_Val_000001``); None loads ``list.txt`` (or every folder).
      split: "val", "test" or "train".

    Returns:
      Sequences in name order. Ground truth [T, 4] as read; test sequences get NaN rows after row 0 (their
      ground truth is withheld). ``absent`` / ``cover`` from the label files when present.
    """
    root = Path(root)
    split_dir = root / split if (root / split).is_dir() else root
    if not split_dir.is_dir():
        raise InputError(f"{split_dir}: no such split folder")
    listed = split_dir / "list.txt"
    names = (
        read_text(listed, InputError).split() if listed.is_file() else [p.name for p in split_dir.iterdir()]
    )
    found = {n: split_dir / n for n in names if (split_dir / n / "groundtruth.txt").is_file()}
    if listed.is_file() and len(found) != len(names):
        missing = next(n for n in names if n not in found)
        raise InputError(f"{split_dir / missing}: listed in list.txt but has no groundtruth.txt")
    out = []
    for name, folder in select(found, sequences, split_dir):
        gt = read_table(folder / "groundtruth.txt")
        if len(gt) == 1:  # test split: only the initial box; the length comes from the images
            frame_pattern(folder)
            n = sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            gt = np.concatenate([gt, np.full((n - 1, 4), np.nan)])
        frames = numbered_frames(folder, 1, len(gt))
        absent = cover = None
        if (folder / "absence.label").is_file():
            absent = read_flags(folder / "absence.label", len(gt)) != 0
        if (folder / "cover.label").is_file():
            cover = read_flags(folder / "cover.label", len(gt))
        meta = _meta_info(folder / "meta_info.ini")
        size = _image_size(meta, folder / "meta_info.ini")
        out.append(Sequence(name, frames, gt, absent=absent, cover=cover, image_size=size, meta=meta))
    return out
