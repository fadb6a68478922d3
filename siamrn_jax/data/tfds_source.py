"""``TrackSource`` over a dataset written by ``siamrn_jax.data.tfds_builders`` (array_record, no TensorFlow).

Each record is one track (``name``, raw ``frames`` bytes, ``boxes`` [n, 4] float32 xyxy in frame pixels,
``visible`` [n] bool). The sampler needs the number of usable frames of every track up front, so the
constructor reads the boxes of every record once. ArrayRecord cannot read one feature of a record, so this
reads (and discards) the frame bytes too: construction costs one sequential pass over the whole split on
disk (not measured at scale; for GOT-10k train, ~66 GB of JPEGs, that is disk-bound minutes). Done once per
process that constructs the source; pickled copies in loader workers carry the table, not the scan.
``crop511`` then reads one record, decodes the one sampled frame with ``cv2.imdecode`` and crops it
SiamFC-style (``crop_like_siamfc``, mean-colour padding, as pysot's ``par_crop.py``).

Cost caveat: one record per track means a crop511 call reads the whole track's bytes (a 2 500-frame LaSOT
video is ~10^8 bytes) to use one frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import tensorflow_datasets as tfds

from siamrn_jax.data.source import crop_like_siamfc, pysot_bbox, usable_frames

# Builder name -> TrackSource name (the NUM_USE / FRAME_RANGE keys of SPEC 8.1).
SOURCE_NAMES = {
    "got10k": "GOT10K",
    "lasot": "LASOT",
    "imagenet_vid": "VID",
    "imagenet_det": "DET",
    "coco": "COCO",
    "youtube_bb": "YOUTUBEBB",
}


def resolve_version_dir(directory: str | os.PathLike) -> Path:
    """``<data_dir>/<dataset>/<version>`` from itself or from ``<data_dir>/<dataset>`` (highest version)."""
    directory = Path(directory)
    if (directory / "dataset_info.json").is_file():
        return directory
    versions = []
    if directory.is_dir():
        for sub in directory.iterdir():
            parts = sub.name.split(".")
            if (sub / "dataset_info.json").is_file() and len(parts) == 3 and all(p.isdigit() for p in parts):
                versions.append((tuple(int(p) for p in parts), sub))
    if not versions:
        raise FileNotFoundError(f"{directory}: no TFDS dataset (dataset_info.json) found")
    return max(versions)[1]


class TfdsSource:
    """A track dataset built by ``tfds_builders`` as a ``TrackSource``.

    Args:
      directory: ``<data_dir>/<dataset>/<version>`` or ``<data_dir>/<dataset>``.
      split: TFDS split, slicing allowed (``"train"``, ``"train[:100]"``).
      name: TrackSource name; default from the builder name (``got10k`` -> ``GOT10K``).
      read_batch: records read per ``__getitems__`` call while scanning the boxes at construction.

    A frame is usable if its box is finite with w > 1 and h > 1 (``usable_frames``) and it is marked visible;
    tracks without usable frames are dropped. Picklable: the data source is reopened lazily after unpickling
    (in each loader worker).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        split: str = "train",
        name: str | None = None,
        read_batch: int = 64,
    ):
        self.directory = resolve_version_dir(directory)
        self.split = split
        self._ds = None
        ds = self._source()
        builder_name = self.directory.parent.name
        self.name = name or SOURCE_NAMES.get(builder_name, builder_name)
        records, keys, frames = [], [], []
        for start in range(0, len(ds), read_batch):
            idx = list(range(start, min(start + read_batch, len(ds))))
            for i, rec in zip(idx, ds.__getitems__(idx), strict=True):
                boxes = np.asarray(rec["boxes"], np.float32).reshape(-1, 4)
                visible = np.asarray(rec["visible"], bool).reshape(-1)
                key = rec["name"].decode() if isinstance(rec["name"], bytes) else str(rec["name"])
                if len(visible) != len(boxes) or len(rec["frames"]) != len(boxes):
                    raise ValueError(
                        f"{self.directory}: record {i} ({key}): {len(rec['frames'])} frames, "
                        f"{len(boxes)} boxes, {len(visible)} visibility flags"
                    )
                ok = usable_frames(boxes)
                ok = ok[visible[ok]].astype(np.int32)
                if len(ok):
                    records.append(i)
                    keys.append(key)
                    frames.append(ok)
        # Sorted by key: records come in hash order of their key, tracks should come in a stable readable one.
        order = sorted(range(len(keys)), key=keys.__getitem__)
        self._records = np.asarray([records[i] for i in order], np.int64)
        self._keys = [keys[i] for i in order]
        self._frames = [frames[i] for i in order]

    def _source(self):
        if self._ds is None:
            builder = tfds.builder_from_directory(os.fspath(self.directory))
            self._ds = builder.as_data_source(split=self.split)
        return self._ds

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_ds"] = None  # file handles do not travel; reopened on first use in the worker
        return state

    def __len__(self) -> int:
        return len(self._keys)

    def track_length(self, track: int) -> int:
        return len(self._frames[track])

    def track_key(self, track: int) -> str:
        return self._keys[track]

    def frame(self, track: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """The original frame ([H, W, 3] uint8 BGR) and its [4] float64 xyxy box in frame pixels."""
        rec = self._source()[int(self._records[track])]
        i = int(self._frames[track][frame])
        data = rec["frames"][i]
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(
                f"{self.directory}: track {self._keys[track]} frame {i}: cannot decode image bytes"
            )
        return image, np.asarray(rec["boxes"][i], np.float64)

    def crop511(self, track: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns ([511, 511, 3] uint8 BGR crop, target centred at (255, 255); [4] float64 xyxy box)."""
        image, box = self.frame(track, frame)
        return crop_like_siamfc(image, box), pysot_bbox(box)

    def __repr__(self) -> str:
        return f"TfdsSource({self.name!r}, {str(self.directory)!r}, split={self.split!r}, tracks={len(self)})"
