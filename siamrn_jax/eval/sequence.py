"""The ``Sequence`` record every benchmark reader returns (EVALUATION.md section 2.1, "normalise to").

Conventions (``siamrn_jax.geometry.boxes``): ground truth is kept **as read** -- OTB/UAV/LaSOT/GOT-10k
boxes are 1-based MATLAB numbers and nobody shifts them; VOT polygons stay polygons. Frame ``t`` is
0-based and reads ``frames[t]``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from siamrn_jax.geometry.boxes import polygon_to_box
from siamrn_jax.io.sources import InputError, read_image


# eq=False: the record holds arrays, for which field-wise ``==`` is ambiguous; identity is what we need.
@dataclasses.dataclass(frozen=True, eq=False)
class Sequence:
    """One annotated sequence of a benchmark.

    Attributes:
      name: sequence name as the benchmark spells it (``Jogging-1``, ``bird1_2``, ``airplane-1``).
      frames: T image paths, frame ``t`` = ``frames[t]``.
      groundtruth: [T, 4] float64 (x, y, w, h) boxes or [T, 8] (x1, y1, ..., x4, y4) VOT polygons, as
        read. NaN rows: target absent (UAV123) or not annotated (GOT-10k test, where only row 0 is known).
      absent: [T] bool, True where the target is not visible (LaSOT full_occlusion | out_of_view, GOT-10k
        absence.label, all-NaN ground-truth rows). Metrics decide what to do with it.
      cover: [T] int GOT-10k visible-ratio class (0 = not visible ... 8 = fully visible), else None.
      tags: per-frame attribute name -> [T] bool (VOT ``camera_motion``, ``occlusion``, ...).
      attributes: sequence-level attribute names (OTB/UAV/LaSOT, from a pysot JSON meta file).
      image_size: (W, H) when the annotation states it (GOT-10k ``meta_info.ini``, VOT ``sequence``),
        else None; ``frame_size()`` reads frame 0 instead.
      meta: free-form strings (LaSOT ``nlp``, GOT-10k ``object_class``, ...).
    """

    name: str
    frames: list[Path]
    groundtruth: np.ndarray
    absent: np.ndarray | None = None
    cover: np.ndarray | None = None
    tags: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    attributes: list[str] = dataclasses.field(default_factory=list)
    image_size: tuple[int, int] | None = None
    meta: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        gt = np.asarray(self.groundtruth, np.float64)
        t = len(self.frames)
        if gt.ndim != 2 or gt.shape[1] not in (4, 8) or len(gt) != t:
            raise InputError(f"{self.name}: ground truth of shape {list(gt.shape)} for {t} frames")
        absent = np.zeros(t, bool) if self.absent is None else np.asarray(self.absent, bool)
        # frozen: the normalised arrays are set once here, through object.__setattr__.
        object.__setattr__(self, "groundtruth", gt)
        object.__setattr__(self, "absent", absent)
        object.__setattr__(self, "frames", [Path(p) for p in self.frames])
        per_frame = {"absent": absent, **{f"tag {k}": v for k, v in self.tags.items()}}
        if self.cover is not None:
            per_frame["cover"] = self.cover
        for key, value in per_frame.items():
            if np.shape(value) != (t,):
                raise InputError(f"{self.name}: {key} has shape {list(np.shape(value))}, expected [{t}]")

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def visible(self) -> np.ndarray:
        """[T] bool, the complement of ``absent``."""
        return ~self.absent

    @property
    def init_box(self) -> np.ndarray:
        """Frame-0 ground truth as a [4] (x, y, w, h) box as read (polygons via ``polygon_to_box``)."""
        g = self.groundtruth[0]
        return polygon_to_box(g) if g.shape[0] == 8 else g.copy()

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as [H, W, 3] uint8 BGR; ``InputError`` naming the file if missing or corrupt."""
        return read_image(self.frames[i])

    def frame_size(self) -> tuple[int, int]:
        """(W, H): ``image_size`` when known, else read from frame 0."""
        if self.image_size is not None:
            return self.image_size
        h, w = self.frame(0).shape[:2]
        return w, h
