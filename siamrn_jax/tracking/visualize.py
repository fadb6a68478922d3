"""Annotated frames on disk: boxes drawn on frames, videos (.mp4 / .avi / .gif) and PNG contact sheets.

Frames are [H, W, 3] uint8 BGR; boxes are (x, y, w, h) 0-based (``siamrn_jax.geometry.boxes``). Every
writer goes through ``siamrn_jax.atomic.atomic_output``, so an interrupted run leaves no partial file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from siamrn_jax.atomic import OutputError, atomic_output

VIDEO_SUFFIXES = (".mp4", ".avi", ".gif")
_FOURCC = {".mp4": "mp4v", ".avi": "MJPG"}
GREEN, YELLOW, RED, WHITE = (0, 200, 0), (0, 220, 255), (0, 0, 255), (255, 255, 255)


def draw(
    frame: np.ndarray,
    box: Sequence[float] | np.ndarray,
    color: tuple[int, int, int],
    label: str | None = None,
) -> np.ndarray:
    """A copy of ``frame`` with ``box`` outlined in ``color`` (BGR) and ``label`` above it.

    A NaN box (target absent) draws nothing but the label, at the top-left corner of the frame.
    """
    out = frame.copy()
    thick = max(1, round(min(frame.shape[:2]) / 240))  # ~1 px on 320x240, 3 px on 1280x720
    b = np.asarray(box, np.float64)
    org = (2, 2)
    if np.all(np.isfinite(b)):
        x1, y1 = round(b[0]), round(b[1])
        cv2.rectangle(out, (x1, y1), (round(b[0] + b[2]), round(b[1] + b[3])), color, thick)
        org = (x1, y1)
    if label:
        _text(out, label, org, color, thick)
    return out


def _text(img: np.ndarray, text: str, org: tuple[int, int], color, thick: int, above: bool = True) -> None:
    """Text on a filled dark strip (readable on any background), kept inside the image."""
    scale = 0.4 * thick
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x = min(max(org[0], 0), max(img.shape[1] - tw - 2, 0))
    y = org[1] - base - 2 if above else org[1] + th + 2
    y = min(max(y, th + 2), img.shape[0] - base - 1)
    cv2.rectangle(img, (x, y - th - 2), (x + tw + 2, y + base), (0, 0, 0), cv2.FILLED)
    cv2.putText(img, text, (x + 1, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)


def _gif_encoder():
    """OpenCV >= 4.12 writes animated GIFs; Pillow is the fallback for older OpenCV builds."""
    if hasattr(cv2, "imwriteanimation") and cv2.haveImageWriter("x.gif"):
        return "cv2"
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return None
    return "pillow"


def check_video_path(path: str | os.PathLike) -> None:
    """Raises ``OutputError`` unless ``path`` has a suffix that ``VideoWriter`` can write here."""
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise OutputError(f"{path}: unsupported video type {suffix!r} (use {', '.join(VIDEO_SUFFIXES)})")
    if suffix == ".gif" and _gif_encoder() is None:
        raise OutputError(f"{path}: this OpenCV cannot write GIF and Pillow is not installed (use .mp4)")


class VideoWriter:
    """Context manager writing frames to a video file, atomically (the file appears on a clean exit).

    ``.mp4`` (mp4v) and ``.avi`` (MJPG) stream through ``cv2.VideoWriter``. ``.gif`` frames are kept in
    memory, downscaled to at most ``gif_max_width`` pixels wide (GIF is for quick looks: full-size
    palette frames make files of tens of MB), and encoded on exit.

    Example::

        with VideoWriter("out.mp4", fps=25) as video:
            for frame in frames:
                video.write(draw(frame, box, GREEN))
    """

    def __init__(self, path: str | os.PathLike, fps: float = 25.0, gif_max_width: int = 480):
        check_video_path(path)
        self.path, self.fps, self.gif_max_width = Path(path), float(fps), gif_max_width
        self._suffix = self.path.suffix.lower()
        self._atomic = None
        self._tmp: Path | None = None
        self._writer: cv2.VideoWriter | None = None
        self._gif: list[np.ndarray] = []
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> VideoWriter:
        self._atomic = atomic_output(self.path)
        self._tmp = self._atomic.__enter__()
        return self

    def write(self, frame: np.ndarray) -> None:
        """Appends one [H, W, 3] uint8 BGR frame (all frames must have the size of the first)."""
        size = (frame.shape[1], frame.shape[0])
        if self._size is None:
            self._size = size
        elif size != self._size:
            raise OutputError(
                f"{self.path}: frame of size {size[0]}x{size[1]}, first frame {self._size[0]}x{self._size[1]}"
            )
        if self._suffix == ".gif":
            w = min(self.gif_max_width, size[0])
            self._gif.append(
                cv2.resize(frame, (w, round(size[1] * w / size[0])), interpolation=cv2.INTER_AREA)
            )
            return
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*_FOURCC[self._suffix])
            self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, size)
            if not self._writer.isOpened():
                raise OutputError(f"{self.path}: cv2.VideoWriter cannot write {_FOURCC[self._suffix]} here")
        self._writer.write(frame)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._writer is not None:
                self._writer.release()
            if exc_type is None and self._size is None:
                raise OutputError(f"{self.path}: no frames were written")
            if exc_type is None and self._gif:
                self._write_gif()
        except BaseException as e:
            self._atomic.__exit__(type(e), e, e.__traceback__)  # removes the temporary file
            raise
        self._atomic.__exit__(exc_type, exc, tb)

    def _write_gif(self) -> None:
        duration = max(20, round(1000 / self.fps))  # ms; browsers slow down GIF frames shorter than 20 ms
        if _gif_encoder() == "cv2":
            anim = cv2.Animation()
            anim.frames, anim.durations = self._gif, [duration] * len(self._gif)
            if not cv2.imwriteanimation(str(self._tmp), anim):
                raise OutputError(f"{self.path}: cv2.imwriteanimation failed")
            return
        import PIL.Image

        images = [PIL.Image.fromarray(f[..., ::-1]) for f in self._gif]
        images[0].save(
            self._tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0
        )


class Annotated(NamedTuple):
    """One frame for a contact sheet.

    Attributes:
      index: 0-based frame index, printed as ``#index + 1`` (1-based, like the file names).
      frame: [H, W, 3] uint8 BGR.
      boxes: (box, BGR colour, label or None) triples drawn with ``draw``.
    """

    index: int
    frame: np.ndarray
    boxes: Sequence[tuple[Sequence[float], tuple[int, int, int], str | None]]


def sheet_indices(num_frames: int, count: int = 12) -> list[int]:
    """``count`` evenly spaced frame indices from first to last (all of them for short sequences)."""
    if num_frames <= count:
        return list(range(num_frames))
    return sorted({round(i * (num_frames - 1) / (count - 1)) for i in range(count)})


def contact_sheet(
    frames_with_boxes: Sequence[Annotated],
    path: str | os.PathLike,
    columns: int = 4,
    thumb_width: int = 320,
    count: int = 12,
) -> tuple[int, int]:
    """Writes a PNG grid of annotated thumbnails (row-major, no gaps), atomically.

    Args:
      frames_with_boxes: frames to show; more than ``count`` are thinned to ``count`` evenly spaced ones.
      path: the ``.png`` to write.
      columns: thumbnails per row (fewer when there are fewer frames).
      thumb_width: thumbnail width in pixels; heights follow the first frame's aspect ratio.
      count: at most this many thumbnails.

    Returns:
      (width, height) of the sheet: (columns * thumb_width, rows * thumb_height).
    """
    items = list(frames_with_boxes)
    if not items:
        raise OutputError(f"{path}: no frames for the contact sheet")
    items = [items[i] for i in sheet_indices(len(items), count)]
    h0, w0 = items[0].frame.shape[:2]
    th = round(h0 * thumb_width / w0)
    columns = min(columns, len(items))
    rows = math.ceil(len(items) / columns)
    sheet = np.zeros((rows * th, columns * thumb_width, 3), np.uint8)
    for k, item in enumerate(items):
        img = item.frame
        for box, color, label in item.boxes:
            img = draw(img, box, color, label)
        thumb = cv2.resize(img, (thumb_width, th), interpolation=cv2.INTER_AREA)
        _text(thumb, f"#{item.index + 1}", (2, 0), WHITE, 1, above=False)
        r, c = divmod(k, columns)
        sheet[r * th : (r + 1) * th, c * thumb_width : (c + 1) * thumb_width] = thumb
    ok, png = cv2.imencode(".png", sheet)
    if not ok:
        raise OutputError(f"{path}: PNG encoding failed")
    with atomic_output(path) as tmp:
        tmp.write_bytes(png.tobytes())
    return sheet.shape[1], sheet.shape[0]
