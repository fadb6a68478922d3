"""Frame sources for the tracker: image folders, OTB / VOT sequence folders, video files and cameras.

Every source yields [H, W, 3] uint8 BGR frames (grayscale and 4-channel images are converted, as
``cv2.imread`` does) of one size, and may carry ground truth as [T, 4] float64 (x, y, w, h) boxes
**kept in the file's own coordinates** (no toolkit shifts OTB's 1-based numbers; see
``siamrn_jax.geometry.boxes`` and ``pysot_init_box`` for how pysot initialises from them):

- ``groundtruth_rect.txt`` (OTB, UAV123, LaSOT cuts): ``x,y,w,h`` rows as read.
- ``groundtruth.txt`` (VOT): 8-value polygons converted to pysot's area-preserving axis-aligned box
  (``geometry.boxes.polygon_to_box``), 4-value rows taken as they are.
- ``NaN`` rows (target absent, UAV123) stay NaN; frames beyond the last row get NaN rows.

Errors are ``InputError`` with a one-line message naming the file and the problem.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from siamrn_jax.errors import SiamrnError
from siamrn_jax.io.annotations import boxes_from_rows, read_rows

_LOG = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
#: A numbered image name: "img0001.jpg" -> ("img", "0001", ".jpg").
NUMBERED_NAME = re.compile(r"^(\D*)(\d+)(\.\w+)$")
# Frame folders inside a sequence folder: OTB / LaSOT put frames in img/, VOT2020+ in color/.
_FRAME_SUBDIRS = ("img", "color")


class InputError(SiamrnError, ValueError):
    """An input (video, folder, frame or ground-truth file) that cannot be read as asked."""


def read_groundtruth(path: str | os.PathLike) -> np.ndarray:
    """Reads an OTB or VOT ground-truth file as [T, 4] (x, y, w, h) boxes in the file's coordinates."""
    try:
        rows = read_rows(path, (4, 8))
    except ValueError as e:
        raise InputError(str(e)) from None
    return boxes_from_rows(rows)


def _natural_key(name: str) -> list:
    # "img10.jpg" after "img9.jpg"; split parts alternate str / int, so keys always compare.
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _as_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def read_image(path: Path) -> np.ndarray:
    """One frame as [H, W, 3] uint8 BGR; ``InputError`` naming the file if it cannot be decoded."""
    try:
        data = np.fromfile(path, np.uint8)  # imdecode, unlike imread, handles non-ASCII paths
    except OSError as e:
        raise InputError(f"{path}: cannot read frame ({e.strerror})") from None
    try:
        with (
            quiet_opencv()
        ):  # OpenCV logs "[ERROR] imdecode_(''): can't read header" itself; ours names the file
            frame = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:  # a header past OpenCV's size limits raises instead of returning None
        frame = None
    if frame is None:
        raise InputError(f"{path}: unreadable or corrupt image")
    return _as_bgr(frame)


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:
        yield
        return
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        log.setLogLevel(level)


class FrameSource(abc.ABC):
    """Frames of one sequence.

    Attributes:
      name: sequence name (folder name, or the video's file stem).
      groundtruth: [T, 4] float64 (x, y, w, h) boxes in the file's own coordinates (benchmark files:
        1-based, as read; ``siamrn_jax.geometry.boxes``), NaN rows where the target is absent or
        unannotated; None when the input has no annotation.
      fps: the video's frame rate when known, else None.
    """

    name: str
    groundtruth: np.ndarray | None = None
    fps: float | None = None

    @property
    @abc.abstractmethod
    def num_frames(self) -> int | None:
        """Frame count; None for a live camera."""

    def __len__(self) -> int:
        n = self.num_frames
        if n is None:
            raise TypeError(f"{self.name}: a live camera has no frame count")
        return n

    @abc.abstractmethod
    def __getitem__(self, i: int) -> np.ndarray:
        """Frame ``i`` as [H, W, 3] uint8 BGR."""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[np.ndarray]:
        """All frames in order."""

    @abc.abstractmethod
    def head(self, n: int) -> FrameSource:
        """The first ``n`` frames (and ground-truth rows) as a new source."""

    def _index(self, i: int) -> int:
        n = len(self)
        if not isinstance(i, int | np.integer):
            raise TypeError(f"{self.name}: frame index must be an integer, got {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"{self.name}: frame {i} out of range ({n} frames)")
        return int(i) % n


class ImageFolder(FrameSource):
    """Frames from image files (random access; each read decodes the file)."""

    def __init__(self, paths: list[Path], name: str, groundtruth: np.ndarray | None = None):
        self.paths, self.name, self.groundtruth = paths, name, groundtruth
        self._first_wh: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        i = self._index(i)
        frame = read_image(self.paths[i])
        wh = (frame.shape[1], frame.shape[0])
        if self._first_wh is None:
            self._first_wh = wh if i == 0 else self[0].shape[1::-1]
        if wh != self._first_wh:
            raise InputError(
                f"{self.paths[i].parent}: frames of different sizes: {self.paths[i].name} is "
                f"{wh[0]}x{wh[1]}, first frame {self._first_wh[0]}x{self._first_wh[1]}"
            )
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    def head(self, n: int) -> ImageFolder:
        gt = None if self.groundtruth is None else self.groundtruth[:n]
        return ImageFolder(self.paths[:n], self.name, gt)


class VideoSource(FrameSource):
    """Frames of a video file, decoded with ``cv2.VideoCapture``.

    The length is the container's frame count (cheap but, for some containers, approximate): iteration
    stops at the last decodable frame. Indexing is efficient for increasing indices (it decodes forward
    from the last frame read); a backward index reopens the file and decodes from the start.
    """

    def __init__(self, path: str | os.PathLike, limit: int | None = None):
        self.path = Path(path)
        self.name = self.path.stem
        cap = self._open()
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.fps = cap.get(cv2.CAP_PROP_FPS) or None
        if count <= 0:  # streams without a frame count in the header: count by demuxing once
            count = 0
            while cap.grab():
                count += 1
            cap.release()
            cap = self._open()
        if count == 0 or not cap.grab():
            raise InputError(f"{self.path}: no decodable video frames")
        cap.release()
        self._count = count if limit is None else min(count, limit)
        self._cap: cv2.VideoCapture | None = None
        self._next = 0  # index of the frame the open capture decodes next
        self._last: tuple[int, np.ndarray] | None = None

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise InputError(f"{self.path}: cannot be opened as a video (cv2.VideoCapture failed)")
        return cap

    @property
    def num_frames(self) -> int:
        return self._count

    def __getitem__(self, i: int) -> np.ndarray:
        i = self._index(i)
        if self._last is not None and self._last[0] == i:
            return self._last[1].copy()
        if self._cap is None or i < self._next:
            self._cap, self._next = self._open(), 0
        while self._next < i and self._cap.grab():
            self._next += 1
        ok, frame = self._cap.read()
        if self._next < i or not ok:
            raise InputError(f"{self.path}: frame {i} cannot be decoded (the container reports {len(self)})")
        self._next += 1
        self._last = (i, _as_bgr(frame))
        return self._last[1].copy()

    def __iter__(self) -> Iterator[np.ndarray]:
        cap = self._open()
        try:
            for t in range(len(self)):
                ok, frame = cap.read()
                if not ok:
                    # Container frame counts can be approximate, and files get truncated: say so, never
                    # end silently (the results then have t rows for an expected len(self)).
                    _LOG.warning(
                        "%s: video ended after %d of %d frames (truncated, corrupt, or the container's "
                        "frame count is approximate)",
                        self.path,
                        t,
                        len(self),
                    )
                    return
                yield _as_bgr(frame)
        finally:
            cap.release()

    def head(self, n: int) -> VideoSource:
        return VideoSource(self.path, min(n, self._count))


class CameraSource(FrameSource):
    """A live camera (``cv2.VideoCapture(index)``): iteration only, no length, no random access."""

    def __init__(self, index: int, limit: int | None = None):
        self.index, self.limit, self.name = index, limit, f"camera{index}"
        with quiet_opencv():  # a missing camera logs one warning per backend tried; our error says it all
            cap = cv2.VideoCapture(index)
            ok = cap.isOpened()
            cap.release()
        if not ok:
            raise InputError(f"camera {index}: cannot be opened (cv2.VideoCapture({index}) failed)")

    @property
    def num_frames(self) -> None:
        return None

    def __getitem__(self, i: int) -> np.ndarray:
        raise TypeError(f"{self.name}: a live camera has no random access")

    def __iter__(self) -> Iterator[np.ndarray]:
        cap = cv2.VideoCapture(self.index)
        try:
            t = 0
            while self.limit is None or t < self.limit:
                ok, frame = cap.read()
                if not ok:
                    if t == 0:
                        raise InputError(f"{self.name}: the camera opened but gave no frames")
                    return
                t += 1
                yield _as_bgr(frame)
        finally:
            cap.release()

    def head(self, n: int) -> CameraSource:
        return CameraSource(self.index, n if self.limit is None else min(n, self.limit))


GROUNDTRUTH_FILES = ("groundtruth_rect.txt", "groundtruth.txt")  # OTB layout first, then VOT


@dataclasses.dataclass(frozen=True)
class SequenceFolder:
    """What one sequence folder holds, read by the one rule every command shares.

    Attributes:
      name: the sequence name (the folder's; a bare ``img/`` or ``color/`` folder takes its parent's).
      frames_dir: where the frames are (``img/``, ``color/`` or the folder itself).
      frames: the image files (.jpg/.jpeg/.png/.bmp, hidden files skipped) in natural name order, so
        ``2.jpg`` comes before ``10.jpg`` and ``0001.jpg`` .. ``0100.jpg`` in number order.
      groundtruth_file: ``groundtruth_rect.txt`` or ``groundtruth.txt`` beside them, or None.
      rows: that file's rows as read (4-value boxes or 8-value VOT polygons, NaN kept), [] without one.
    """

    name: str
    frames_dir: Path
    frames: list[Path]
    groundtruth_file: Path | None
    rows: list[np.ndarray]


def read_sequence_folder(folder: str | os.PathLike, strict: bool = False) -> SequenceFolder:
    """Reads a sequence folder (OTB, VOT, LaSOT / UAV123 cuts, or a plain folder of frames).

    Args:
      folder: the sequence folder.
      strict: the evaluation rule: a ground-truth file is required and must have exactly one row per
        frame. Otherwise (tracking) the file is optional and may annotate only a prefix of the frames
        (OTB Diving), never more frames than there are.

    Raises:
      InputError: naming the folder or file: no such folder, no images, malformed line (file:line), or a
        row count the mode does not allow.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    frames_dir = next((folder / d for d in _FRAME_SUBDIRS if (folder / d).is_dir()), folder)
    try:
        names = [p for p in frames_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    except OSError as e:
        raise InputError(f"{frames_dir}: cannot list frames ({e.strerror})") from None
    frames = sorted((p for p in names if not p.name.startswith(".")), key=lambda p: _natural_key(p.name))
    if not frames:
        raise InputError(f"{frames_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    gap = _first_gap(frames)
    if gap is not None:
        span = f"{frames[0].name} .. {frames[-1].name}"
        msg = f"{frames_dir}: missing frame {gap} in the numbered sequence {span}"
        if strict:  # the ground truth would be misaligned from there on
            raise InputError(msg)
        _LOG.warning("%s; frames after it are read in order, one per ground-truth line", msg)
    gt_file = next((folder / n for n in GROUNDTRUTH_FILES if (folder / n).is_file()), None)
    rows = []
    if gt_file is not None:
        try:
            rows = read_rows(gt_file, (4, 8))
        except ValueError as e:  # read_rows' own malformed-line error, already "file:line: ..."
            raise InputError(str(e)) from None
    if strict and gt_file is None:
        raise InputError(f"{folder}: no {' or '.join(GROUNDTRUTH_FILES)}")
    if len(rows) > len(frames) or (strict and len(rows) != len(frames)):
        raise InputError(
            f"{gt_file}: {len(rows)} ground-truth lines for {len(frames)} frames in {frames_dir}"
        )
    name = folder.parent.name if folder.name in _FRAME_SUBDIRS else folder.name
    return SequenceFolder(name or str(folder), frames_dir, frames, gt_file, rows)


def _first_gap(frames: list[Path]) -> str | None:
    """The first missing name when all frames are one numbered series (``0001.jpg`` ..), else None."""
    parts = [NUMBERED_NAME.match(p.name) for p in frames]
    if not all(parts) or len({(m.group(1), m.group(3)) for m in parts}) != 1:
        return None  # mixed names: no numbering to check
    widths = {len(m.group(2)) for m in parts}
    width = widths.pop() if len(widths) == 1 else 0  # zero-padded series, or plain 1, 2, .. 10
    numbers = [int(m.group(2)) for m in parts]
    for expected, n in zip(range(numbers[0], numbers[0] + len(numbers)), numbers, strict=True):
        if n != expected:
            return f"{parts[0].group(1)}{expected:0{width}d}{parts[0].group(3)}"
    return None


def _open_folder(folder: Path) -> ImageFolder:
    seq = read_sequence_folder(folder)
    gt = None
    if seq.groundtruth_file is not None:
        gt = np.full((len(seq.frames), 4), np.nan)  # unannotated trailing frames are scored as absent
        gt[: len(seq.rows)] = boxes_from_rows(seq.rows)
    return ImageFolder(seq.frames, seq.name, gt)


def open_input(spec: str | os.PathLike) -> FrameSource:
    """Opens a video file, an image / OTB / VOT folder, or a camera given by its index ("0").

    Folder layouts: frames in ``img/`` (OTB), ``color/`` (VOT2020+) or the folder itself (VOT, plain
    folders), natural name order (``2.jpg`` before ``10.jpg``), .jpg/.jpeg/.png/.bmp; ground truth from
    ``groundtruth_rect.txt`` or ``groundtruth.txt`` beside them (conventions in the module docstring).

    Raises:
      InputError: missing path, folder without images, video that cannot be opened, malformed ground
        truth (file and line). Unreadable frames and frames of a different size raise when read.
    """
    path = Path(spec)
    if not path.exists():
        if str(spec).isdigit():
            return CameraSource(int(str(spec)))
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        return _open_folder(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise InputError(f"{path}: a single image; pass the folder of frames or a video")
    return VideoSource(path)
