"""Reader for the pysot / SiamBAN pre-cropped "crop511" training format (SPEC 8.1).

Layout on disk (what ``training_dataset/*/par_crop.py`` + ``gen_json.py`` write)::

    <root>/<video>/<frame:06d>.<track>.x.jpg      511x511 crop centred on the target (context 0.5)
    <anno.json> = {video: {track: {"000000": [x1, y1, x2, y2], ...}, ...}, ...}

``video`` may contain slashes (VID: ``ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000``), ``track`` is
the JSON key (``"00"``), frame keys are 6-digit strings; the boxes are corner boxes (xyxy) in pixels of the
*original* frame, of which only the size matters (``pysot_bbox`` rebuilds the box inside the crop). Some
pysot JSON files carry extra keys next to the frames (``"frames"``), which are skipped.

Official files are large (YouTube-BB: ~200k tracks, millions of boxes), so the JSON is turned into a few
flat arrays in one vectorised pass: Python touches each frame only to collect its key and box reference,
NumPy converts, checks and sorts all boxes at once. No image is opened until ``crop511``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from siamrn_jax.data.source import DataError, pysot_bbox, read_image
from siamrn_jax.format_json import read_json

logger = logging.getLogger(__name__)


def read_pysot_json(anno: str | os.PathLike) -> dict:
    """Parses a pysot annotation JSON, with one-line ``DataError``s for a missing or corrupt file."""
    anno = Path(anno)
    try:
        data = read_json(anno, DataError)
    except FileNotFoundError:
        raise DataError(f"{anno}: annotation file not found") from None
    if not isinstance(data, dict):
        raise DataError(f"{anno}: expected a JSON object {{video: {{track: {{frame: box}}}}}}")
    return data


class _Flat:
    """The annotation's usable frames as flat arrays, in track order (videos sorted, their tracks sorted).

    Kept frame ``i`` belongs to track ``track[i]``, has frame number ``numbers[i]`` (int32) and box
    ``boxes[i]`` ([4] float32 xyxy); per track ``k`` (every track with at least one frame key, kept frames
    or not): ``track_ids[k]`` and ``track_video[k]`` (an index into ``videos``). ``frames`` counts the
    frames read, ``nonfinite`` / ``degenerate`` those dropped.

    Entries are converted every ``CHUNK`` frames and each video is removed from ``data`` once read (the
    caller's dict is consumed), so the per-frame Python objects of the parsed JSON are freed while the
    arrays grow: the peak memory stays about that of the parsed JSON.
    """

    CHUNK = 1 << 16

    def __init__(self, data: dict, anno: Path):
        self.anno = anno
        self.videos: list[str] = []
        self.track_video: list[int] = []
        self.track_ids: list[str] = []
        self.frames = self.nonfinite = self.degenerate = 0
        self._counts: list[int] = []  # frame keys per track, of the tracks not converted yet
        self._keys: list[str] = []  # frame keys and raw JSON boxes not converted yet
        self._values: list = []
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (track, numbers, boxes)
        for video in sorted(data):
            tracks = data.pop(video)
            if not isinstance(tracks, dict):
                raise DataError(f"{anno}: video {video!r}: expected {{track: {{frame: box}}}}")
            for track in sorted(tracks):
                frames = tracks[track]
                if not isinstance(frames, dict):
                    # Variants store e.g. "frames": [...] at the track level; only dict tracks hold boxes.
                    continue
                # Frame keys are ASCII digits; this skips "frames" and other extra keys.
                keys = [k for k in frames if k.isascii() and k.isdigit()]
                if not keys:
                    continue
                if not self.videos or self.videos[-1] != video:
                    self.videos.append(video)
                self.track_video.append(len(self.videos) - 1)
                self.track_ids.append(track)
                self._counts.append(len(keys))
                self._keys.extend(keys)
                self._values.extend(map(frames.__getitem__, keys))
            if len(self._keys) >= self.CHUNK:
                self._convert()
        self._convert()
        parts = [np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, 4), np.float32)]
        self.track, self.numbers, self.boxes = (
            np.concatenate([p[j] for p in [parts, *self._parts]]) for j in range(3)
        )
        del self._parts

    def _convert(self) -> None:
        """Pending entries -> arrays of their usable frames; a malformed entry -> DataError naming it."""
        if not self._keys:
            return
        keys = np.array(self._keys)
        if keys.dtype.itemsize > np.dtype("U9").itemsize:  # int32 frame numbers: at most 9 digits
            i = int(np.argmax(np.char.str_len(keys)))
            raise DataError(f"{self.anno}: {self._where(i)}: frame number {self._keys[i]!r} out of range")
        try:
            boxes = np.asarray(self._values, np.float64)
        except (TypeError, ValueError):  # ragged, nested or non-numeric somewhere: found below
            boxes = None
        if boxes is None or boxes.shape != (len(self._values), 4):
            self._raise_bad_box()
        # The checks in float64, as the JSON numbers are: w = 1.00001 must stay > 1.
        finite = np.all(np.isfinite(boxes), axis=1)
        with np.errstate(invalid="ignore"):  # inf - inf; those rows are dropped by ``finite`` anyway
            ok = finite & (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)
        first = len(self.track_ids) - len(self._counts)  # track index of the first pending track
        track = np.repeat(np.arange(first, len(self.track_ids), dtype=np.int32), self._counts)
        self._parts.append((track[ok], keys[ok].astype(np.int32), boxes[ok].astype(np.float32)))
        self.frames += len(keys)
        self.nonfinite += int(finite.size - np.count_nonzero(finite))
        self.degenerate += int(np.count_nonzero(finite) - np.count_nonzero(ok))
        self._counts, self._keys, self._values = [], [], []

    def _raise_bad_box(self) -> None:
        for i, value in enumerate(self._values):
            try:
                ok = np.asarray(value, np.float64).shape == (4,)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise DataError(f"{self.anno}: {self._where(i)}: box {value!r} is not 4 numbers")
        raise AssertionError("a box array of the wrong shape without a malformed box")

    def _where(self, i: int) -> str:
        """``video/track/frame`` of pending entry ``i``."""
        k = (
            len(self.track_ids)
            - len(self._counts)
            + int(np.searchsorted(np.cumsum(self._counts), i, "right"))
        )
        return f"{self.videos[self.track_video[k]]}/{self.track_ids[k]}/{self._keys[i]}"


class PysotSource:
    """A pysot crop511 dataset as a ``TrackSource``.

    Frames whose box is not finite (NaN / inf in the JSON) or has w <= 1 or h <= 1 are dropped and
    counted (SiamRN drops w <= 1 or h <= 1; SiamBAN <= 0), then tracks left without frames; the open logs
    the counts once. The frames of a track stay sorted by frame number. Storage is flat and compact: all
    frame numbers in one int32 array, all boxes in one float32 [N, 4] array, per-track offsets, and the
    names as byte-string arrays, so the object is small and fast to pickle into loader workers.

    Attributes:
      name: dataset name (``VID``, ``GOT10K``, ...).
      root: the crop511 folder.
      anno: the annotation JSON.
      dropped_frames: frames dropped at open (non-finite or w <= 1 or h <= 1 boxes).
      nonfinite_frames: those of them whose box was not finite.
      dropped_tracks: tracks left without frames (not counted in ``len``).

    Args:
      name: dataset name (``VID``, ``GOT10K``, ...).
      root: folder holding ``<video>/<frame:06d>.<track>.x.jpg``.
      anno: the annotation JSON.

    Raises:
      DataError: missing root folder or JSON, corrupt JSON, wrong structure, a box that is not 4 numbers.
    """

    def __init__(self, name: str, root: str | os.PathLike, anno: str | os.PathLike):
        self.name = name
        self.root = Path(root)
        self.anno = Path(anno)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: crop511 root folder not found")
        flat = _Flat(read_pysot_json(self.anno), self.anno)  # consumes the parsed dict, video by video
        self._build(flat)
        if self.dropped_frames:
            level = logging.WARNING if self.nonfinite_frames else logging.INFO
            logger.log(
                level,
                "%s: %d of %d frames dropped (%d non-finite boxes, the others w <= 1 or h <= 1), "
                "%d tracks left without frames",
                self.anno,
                self.dropped_frames,
                flat.frames,
                self.nonfinite_frames,
                self.dropped_tracks,
            )

    def _build(self, flat: _Flat) -> None:
        """The compact arrays: frames sorted by number within each track, tracks without frames dropped."""
        track, numbers, boxes = flat.track, flat.numbers, flat.boxes
        same = track[1:] == track[:-1]
        if np.any(same & (numbers[1:] < numbers[:-1])):  # gen_json writes them sorted; sort if not
            order = np.lexsort((numbers, track))
            track, numbers, boxes = track[order], numbers[order], boxes[order]
        kept = np.bincount(track, minlength=len(flat.track_ids))
        tracks = np.nonzero(kept)[0]
        self.dropped_frames = flat.nonfinite + flat.degenerate
        self.nonfinite_frames = flat.nonfinite
        self.dropped_tracks = int(len(kept) - len(tracks))
        self._frames = numbers  # [N] int32 frame numbers
        self._boxes = boxes  # [N, 4] float32 xyxy in original-frame pixels
        self._offsets = np.concatenate([[0], np.cumsum(kept[tracks])]).astype(np.int64)  # [T + 1]
        # UTF-8 byte strings: a quarter of NumPy's 4-byte unicode, one buffer when pickled.
        self._videos = np.array([v.encode() for v in flat.videos] or [b""])
        self._track_video = np.asarray(flat.track_video, np.int32)[tracks]
        self._track_ids = np.array([flat.track_ids[k].encode() for k in tracks] or [b""])

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def track_length(self, track: int) -> int:
        return int(self._offsets[track + 1] - self._offsets[track])

    def _names(self, track: int) -> tuple[str, str]:
        return self._videos[self._track_video[track]].decode(), self._track_ids[track].decode()

    def _flat_index(self, track: int, frame: int) -> int:
        n = self.track_length(track)
        if not 0 <= frame < n:
            raise IndexError(f"{self.name}: track {track} has {n} frames, no frame {frame}")
        return int(self._offsets[track]) + frame

    def track_key(self, track: int) -> str:
        video, tid = self._names(track)
        return f"{video}/{tid}"

    def track_videos(self) -> np.ndarray:
        """[T] int32 video of each track (equal for the tracks of one video; ``sampler.video_groups``)."""
        return self._track_video.copy()

    def frame_path(self, track: int, frame: int) -> Path:
        """The crop511 file of ``frame`` (0-based among usable frames) of ``track``."""
        video, tid = self._names(track)
        return self.root / video / f"{int(self._frames[self._flat_index(track, frame)]):06d}.{tid}.x.jpg"

    def box(self, track: int, frame: int) -> np.ndarray:
        """[4] float64 xyxy annotation in original-frame pixels."""
        return self._boxes[self._flat_index(track, frame)].astype(np.float64)

    def crop511(self, track: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns ([511, 511, 3] uint8 BGR crop as stored, [4] float64 xyxy target box in the crop).

        Raises:
          DataError: the crop file is missing, unreadable or corrupt (the message names the file).
        """
        image = read_image(self.frame_path(track, frame))
        return image, pysot_bbox(self._boxes[self._flat_index(track, frame)], image.shape[:2])

    def __repr__(self) -> str:
        return (
            f"PysotSource({self.name!r}, {str(self.root)!r}, tracks={len(self)}, frames={len(self._frames)}, "
            f"dropped_frames={self.dropped_frames})"
        )
