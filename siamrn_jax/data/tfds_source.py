"""``TrackSource`` over a dataset written by ``siamrn_jax.data.tfds_builders`` (array_record, no TensorFlow).

Format 2.0.0: one record per annotated frame (``track``, ``frame``, ``image`` bytes, ``box`` xyxy in
frame pixels, ``visible``), the frames of a track one contiguous record range, and beside the records
``track_index.<split>.npz`` (``siamrn_jax.data.track_index``). Opening reads the index only; ``crop511``
reads the one record it needs (array_record random access, no read-ahead), decodes that frame with
``cv2.imdecode`` and crops it SiamFC-style (``crop_like_siamfc``, mean-colour padding, as pysot's
``par_crop.py``). A dataset built in the old one-record-per-track format (1.0.0) is refused with a
message to rebuild it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from siamrn_jax.data.source import DataError, crop_like_siamfc, decode_image, pysot_bbox, usable_frames
from siamrn_jax.data.track_index import FORMAT, TrackIndex, index_path

_LOG = logging.getLogger(__name__)

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


def _check_format(directory: Path, split: str) -> Path:
    """The split's index file; ``DataError`` for an old-format, foreign or incomplete dataset."""
    info_file = directory / "dataset_info.json"
    try:
        info = json.loads(info_file.read_text())
    except (OSError, ValueError) as e:  # ValueError: not JSON, or not UTF-8 text
        raise DataError(f"{info_file}: cannot read ({e})") from None
    entries = info.get("splits", []) if isinstance(info, dict) else None
    if not isinstance(entries, list) or not all(isinstance(s, dict) for s in entries):
        raise DataError(f"{info_file}: not a TFDS dataset_info.json (no list of splits)")
    version, name = str(info.get("version", "?")), str(info.get("name", directory.parent.name))
    if version != FORMAT:
        raise DataError(
            f"{directory}: {name} {version} is the old one-record-per-track format (reads a whole track per "
            f"sample); rebuild it: python -m siamrn_jax.data.tfds_builders {name} --manual-dir RAW "
            f"--data-dir {directory.parent.parent} (format {FORMAT})"
        )
    splits = [s.get("name") for s in entries]
    if split not in splits:
        raise DataError(f"{directory}: no split {split!r} (has {', '.join(map(str, splits)) or 'none'})")
    path = index_path(directory, split)
    if not path.is_file():
        raise DataError(
            f"{path}: missing (incomplete dataset): rebuild it with siamrn_jax.data.tfds_builders"
        )
    return path


class TfdsSource:
    """A track dataset built by ``tfds_builders`` as a ``TrackSource``.

    Args:
      directory: ``<data_dir>/<dataset>/<version>`` or ``<data_dir>/<dataset>``.
      split: TFDS split name (``"train"``, ``"val"``).
      name: TrackSource name; default from the builder name (``got10k`` -> ``GOT10K``).

    A frame is usable if it is marked visible and its box is finite with w > 1 and h > 1
    (``usable_frames``); visible frames with a non-finite or degenerate box are dropped and counted
    (``dropped_boxes``, logged at open); tracks without usable frames are dropped. Picklable: the arrays
    do not travel (the index is re-read, and the records reopened, in each loader worker).
    """

    def __init__(self, directory: str | os.PathLike, split: str = "train", name: str | None = None):
        self.directory = resolve_version_dir(directory)
        self.split = split
        self.name = name or SOURCE_NAMES.get(self.directory.parent.name, self.directory.parent.name)
        self._index_file = _check_format(self.directory, split)
        self._ds = None
        self._load()
        if self.dropped_boxes:
            _LOG.info(
                "%s: %d visible frames dropped (non-finite or w, h <= 1 box)",
                self._index_file,
                self.dropped_boxes,
            )

    def _load(self) -> None:
        index = TrackIndex.load(self._index_file)
        visible = np.zeros(index.num_records, bool)
        good = usable_frames(index.boxes)
        visible[good] = True
        self.dropped_boxes = int(np.sum(index.visible & ~visible))
        usable = visible & index.visible
        track_of = np.repeat(np.arange(len(index)), np.diff(index.offsets))
        counts = np.bincount(track_of[usable], minlength=len(index))
        keep = counts > 0
        self._keys = index.keys[keep]
        self._starts = np.concatenate([[0], np.cumsum(counts[keep])]).astype(np.int64)
        self._records = np.nonzero(usable)[0].astype(np.int64)  # record ids of usable frames, track order
        self._boxes = index.boxes[self._records]
        self._nbytes = index.nbytes[self._records]

    def _source(self):
        if self._ds is None:
            builder = tfds.builder_from_directory(os.fspath(self.directory))
            self._ds = builder.as_data_source(split=self.split)
        return self._ds

    def __getstate__(self):
        # Only where the data is travels to loader workers; they re-read the index (fast) and reopen files.
        keep = ("directory", "split", "name", "_index_file", "dropped_boxes")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state):
        self.__dict__.update(state, _ds=None)
        self._load()

    def __len__(self) -> int:
        return len(self._keys)

    def track_length(self, track: int) -> int:
        return int(self._starts[track + 1] - self._starts[track])

    def track_key(self, track: int) -> str:
        return str(self._keys[track])

    def track_videos(self) -> np.ndarray:
        """[T] video of each track, from the keys' ``<video>`` part (``<video>/<track id>``, as the builders
        write them; ``sampler.video_groups``)."""
        return np.unique([str(k).rsplit("/", 1)[0] for k in self._keys], return_inverse=True)[1]

    def frame_nbytes(self, track: int, frame: int) -> int:
        """Size of the stored image file of ``frame`` of ``track`` (from the index)."""
        return int(self._nbytes[self._starts[track] + frame])

    def frame(self, track: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """The original frame ([H, W, 3] uint8 BGR) and its [4] float64 xyxy box in frame pixels.

        Raises:
          DataError: naming the dataset, record, track and frame, for image bytes that do not decode.
        """
        if not 0 <= frame < self.track_length(track):
            raise IndexError(f"{self.track_key(track)}: frame {frame} of {self.track_length(track)}")
        k = int(self._starts[track] + frame)
        record = int(self._records[k])
        rec = self._source()[record]
        where = (
            f"{self.directory}: {self.split} record {record} ({self.track_key(track)} frame {rec['frame']})"
        )
        return decode_image(rec["image"], where), self._boxes[k].astype(np.float64)

    def crop511(self, track: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns ([511, 511, 3] uint8 BGR crop, target centred at (255, 255); [4] float64 xyxy box)."""
        image, box = self.frame(track, frame)
        return crop_like_siamfc(image, box), pysot_bbox(box)

    def verify_order(self, tracks: int = 16) -> None:
        """Checks, on up to ``tracks`` tracks spread over the split, that the index's record ranges hold
        those tracks' frames (the records are in track order); ``DataError`` otherwise."""
        for t in np.unique(np.linspace(0, len(self) - 1, min(tracks, len(self))).astype(int)):
            for k in (self._starts[t], self._starts[t + 1] - 1):
                rec = self._source()[int(self._records[k])]
                key = rec["track"].decode() if isinstance(rec["track"], bytes) else str(rec["track"])
                if key != self.track_key(t):
                    raise DataError(
                        f"{self.directory}: record {int(self._records[k])} holds track {key}, the index "
                        f"says {self.track_key(t)}: records and index disagree, rebuild the dataset"
                    )

    def __repr__(self) -> str:
        return f"TfdsSource({self.name!r}, {str(self.directory)!r}, split={self.split!r}, tracks={len(self)})"
