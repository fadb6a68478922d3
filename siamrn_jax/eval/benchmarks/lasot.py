"""LaSOT reader (EVALUATION.md 2.4, Appendix A).

Layout: ``<root>/<class>/<class>-<id>/img/00000001.jpg`` with ``groundtruth.txt`` (``x,y,w,h``, 1-based,
kept as read), ``full_occlusion.txt`` and ``out_of_view.txt`` (one line of comma-separated 0/1 flags) and
``nlp.txt``. The flat root pysot's JSON expects (``<root>/<class>-<id>/``) is accepted too.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from siamrn_jax.eval.benchmarks import nan_absent, numbered_frames, read_flags, read_table, select
from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.format_json import read_text
from siamrn_jax.io.sources import InputError

# Appendix A: 4 sequences per class (got10k's lasot.json and SiamBAN's testing_set.txt agree).
_TEST_IDS = """
airplane 1,9,13,15; basketball 1,6,7,11; bear 2,4,6,17; bicycle 2,7,9,18; bird 2,3,15,17; boat 3,4,12,17;
book 3,10,11,19; bottle 1,12,14,18; bus 2,5,17,19; car 2,6,9,17; cat 1,3,18,20; cattle 2,7,12,13;
spider 14,16,18,20; coin 3,6,7,18; crab 3,6,12,18; surfboard 4,5,8,12; cup 1,4,7,17; deer 4,8,10,14;
dog 1,7,15,19; guitar 3,8,10,16; person 1,5,10,12; pig 2,10,13,18; rubicCube 1,6,14,19; swing 10,14,17,20;
drone 2,7,13,15; pool 3,7,12,15; rabbit 10,13,17,19; racing 10,15,16,20; robot 1,5,8,19; sepia 6,8,13,16;
sheep 3,5,7,9; skateboard 3,8,16,19; tank 6,9,14,16; tiger 4,6,12,18; train 1,7,11,20; truck 3,6,7,16;
turtle 5,8,9,16; umbrella 2,9,17,19; yoyo 7,15,17,19; zebra 10,14,16,17; elephant 1,12,16,18;
goldfish 3,7,8,10; hat 1,2,5,18; kite 4,6,10,15; motorcycle 1,3,9,18; mouse 1,8,9,17; flag 2,3,5,9;
frog 3,4,9,20; gametarget 1,2,7,13; hand 2,3,9,16; helmet 5,11,13,19; licenseplate 6,12,13,15;
electricfan 1,10,18,20; chameleon 3,6,11,20; crocodile 3,4,10,14; gecko 1,5,16,19; fox 2,3,5,20;
giraffe 2,10,13,15; gorilla 4,6,9,13; hippo 1,7,9,20; horse 1,4,12,15; kangaroo 2,5,11,14;
leopard 1,7,16,20; lion 1,5,12,20; lizard 1,3,6,13; microphone 2,6,14,16; monkey 3,4,9,17;
shark 2,3,5,6; squirrel 8,11,13,19; volleyball 1,13,18,19
"""
TEST_SET = tuple(
    sorted(
        f"{cls}-{i}" for entry in _TEST_IDS.split(";") for cls, ids in [entry.split()] for i in ids.split(",")
    )
)
# The official toolkit (and pysot) keep only the first 2,260 frames of monkey-17.
_TRUNCATE = {"monkey-17": 2260}


def lasot_extras(folder: Path, length: int) -> tuple[np.ndarray, dict[str, str]]:
    """([T] absent = full_occlusion | out_of_view, {"nlp": sentence}) from whichever files exist."""
    absent = np.zeros(length, bool)
    for name in ("full_occlusion.txt", "out_of_view.txt"):
        if (folder / name).is_file():
            absent |= read_flags(folder / name, length) != 0
    nlp = folder / "nlp.txt"
    return absent, ({"nlp": read_text(nlp, InputError).strip()} if nlp.is_file() else {})


def _find(root: Path) -> dict[str, Path]:
    found = {}
    for d in root.iterdir():
        if (d / "groundtruth.txt").is_file():  # flat root
            found[d.name] = d
        elif d.is_dir():
            found.update({s.name: s for s in d.iterdir() if (s / "groundtruth.txt").is_file()})
    return found


def load(root: str | Path, sequences: Iterable[str] | None = None, split: str = "test") -> list[Sequence]:
    """LaSOT sequences.

    Args:
      root: dataset root (official class folders or flat).
      sequences: names to load (``airplane-1``); None loads the whole split.
      split: "test" (the 280 of Appendix A; all must be present) or "all" (every sequence found).

    Returns:
      Sequences in name order: ground truth [T, 4] as read, ``absent`` from the occlusion flags.
    """
    root = Path(root)
    if split not in ("test", "all"):
        raise ValueError(f"split must be 'test' or 'all', got {split!r}")
    if not root.is_dir():
        raise InputError(f"{root}: no such dataset folder")
    found = _find(root)
    if sequences is None and split == "test":
        sequences = TEST_SET
    out = []
    for name, folder in select(found, sequences, root):
        gt = read_table(folder / "groundtruth.txt")
        n = min(len(gt), _TRUNCATE.get(name, len(gt)))
        gt = gt[:n]
        frames = numbered_frames(folder / "img", 1, n, exact=name not in _TRUNCATE)
        absent, meta = lasot_extras(folder, n) if name not in _TRUNCATE else _truncated_extras(folder, n)
        out.append(Sequence(name, frames, gt, absent=absent | nan_absent(gt), meta=meta))
    return out


def _truncated_extras(folder: Path, n: int) -> tuple[np.ndarray, dict[str, str]]:
    # The flag files cover the full, untruncated sequence; read them at their own length and cut.
    absent = np.zeros(n, bool)
    for name in ("full_occlusion.txt", "out_of_view.txt"):
        path = folder / name
        if path.is_file():
            length = len([t for t in read_text(path, InputError).replace("\n", ",").split(",") if t.strip()])
            absent |= read_flags(path, max(length, n), pad=True)[:n] != 0
    nlp = folder / "nlp.txt"
    return absent, ({"nlp": read_text(nlp, InputError).strip()} if nlp.is_file() else {})
