"""Reader for the pysot / SiamBAN pre-cropped "crop511" training format (SPEC 8.1).

Layout on disk (what ``training_dataset/*/par_crop.py`` + ``gen_json.py`` write)::

    <root>/<video>/<frame:06d>.<track>.x.jpg      511x511 crop centred on the target (context 0.5)
    <anno.json> = {video: {track: {"000000": [x1, y1, x2, y2], ...}, ...}, ...}

``video`` may contain slashes (VID: ``ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000``), ``track`` is
the JSON key (``"00"``), frame keys are 6-digit strings; the boxes are corner boxes (xyxy) in pixels of the
*original* frame, of which only the size matters (``pysot_bbox`` rebuilds the box inside the crop). Some
pysot JSON files carry extra keys next to the frames (``"frames"``), which are skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from siamrn_jax.data.source import pysot_bbox


def _box(path: Path, where: str, value) -> np.ndarray:
    """One annotation box as [4] float64 xyxy, or a one-line error naming the file and the entry."""
    try:
        box = np.asarray(value, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {where}: box {value!r} is not 4 numbers") from None
    if box.shape != (4,):
        raise ValueError(f"{path}: {where}: box {value!r} is not 4 numbers")
    if not np.all(np.isfinite(box)):
        raise ValueError(f"{path}: {where}: box {value!r} is not finite")
    return box


def read_pysot_json(anno: str | os.PathLike) -> dict:
    """Parses a pysot annotation JSON, with one-line errors for a missing or corrupt file."""
    anno = Path(anno)
    try:
        text = anno.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{anno}: annotation file not found") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{anno}: corrupt JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{anno}: expected a JSON object {{video: {{track: {{frame: box}}}}}}")
    return data


class PysotSource:
    """A pysot crop511 dataset as a ``TrackSource``.

    Frames whose box has w <= 1 or h <= 1 are dropped (SiamRN; SiamBAN drops <= 0), then tracks left
    without frames. The frames of a track stay sorted by frame number. The JSON is parsed once and kept as
    compact arrays (a track = an int32 array of frame numbers and a float32 [n, 4] array of boxes), so the
    object is cheap to build for ~10^4 videos and cheap to pickle into loader workers.

    Args:
      name: dataset name (``VID``, ``GOT10K``, ...).
      root: folder holding ``<video>/<frame:06d>.<track>.x.jpg``.
      anno: the annotation JSON.
    """

    def __init__(self, name: str, root: str | os.PathLike, anno: str | os.PathLike):
        self.name = name
        self.root = Path(root)
        anno = Path(anno)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: crop511 root folder not found")
        data = read_pysot_json(anno)
        self._keys: list[tuple[str, str]] = []  # (video, track)
        self._frames: list[np.ndarray] = []  # [n] int32 frame numbers, sorted
        self._boxes: list[np.ndarray] = []  # [n, 4] float32 xyxy in original-frame pixels
        for video in sorted(data):
            tracks = data[video]
            if not isinstance(tracks, dict):
                raise ValueError(f"{anno}: video {video!r}: expected {{track: {{frame: box}}}}")
            for track in sorted(tracks):
                frames = tracks[track]
                if not isinstance(frames, dict):
                    # Variants store e.g. "frames": [...] at the track level; only dict tracks hold boxes.
                    continue
                numbers, boxes = [], []
                for key, value in frames.items():
                    if not key.isdigit():
                        continue
                    box = _box(anno, f"{video}/{track}/{key}", value)
                    if box[2] - box[0] > 1 and box[3] - box[1] > 1:
                        numbers.append(int(key))
                        boxes.append(box)
                if not numbers:
                    continue
                order = np.argsort(numbers, kind="stable")
                self._keys.append((video, track))
                self._frames.append(np.asarray(numbers, np.int32)[order])
                self._boxes.append(np.asarray(boxes, np.float32)[order])

    def __len__(self) -> int:
        return len(self._keys)

    def track_length(self, track: int) -> int:
        return len(self._frames[track])

    def track_key(self, track: int) -> str:
        video, tid = self._keys[track]
        return f"{video}/{tid}"

    def frame_path(self, track: int, frame: int) -> Path:
        """The crop511 file of ``frame`` (0-based among usable frames) of ``track``."""
        video, tid = self._keys[track]
        return self.root / video / f"{int(self._frames[track][frame]):06d}.{tid}.x.jpg"

    def box(self, track: int, frame: int) -> np.ndarray:
        """[4] float64 xyxy annotation in original-frame pixels."""
        return self._boxes[track][frame].astype(np.float64)

    def crop511(self, track: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns ([511, 511, 3] uint8 BGR crop as stored, [4] float64 xyxy target box in the crop)."""
        path = self.frame_path(track, frame)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: crop511 image not found")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path}: cannot decode image (corrupt or not a JPEG)")
        return image, pysot_bbox(self._boxes[track][frame], image.shape[:2])

    def __repr__(self) -> str:
        frames = sum(len(f) for f in self._frames)
        return f"PysotSource({self.name!r}, {str(self.root)!r}, tracks={len(self)}, frames={frames})"
