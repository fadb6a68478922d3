"""What a training dataset looks like to the sampler: a list of tracks, each a list of 511x511 crops.

The official pipeline (SPEC 8.1) trains on pysot "crop511" images: each annotated frame is cropped
SiamFC-style around its target (context 0.5, output 511, mean-colour padding) once, offline, and the
target box inside the crop is recomputed from the annotation's size alone (``pysot_bbox``). Every source in
``siamrn_jax.data`` presents itself that way, whether it reads pre-cropped files (``pysot``), crops raw
frames on the fly (TFDS builders) or renders them (``synthetic``), so the sampler and the augmentation
never care where a frame came from.

Box conventions: ``xyxy`` = (x1, y1, x2, y2) corners, ``xywh`` = (x, y, w, h) top-left + size, both in
pixels of the image they refer to (pysot continuous coordinates, no +1 on widths).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from siamrn_jax.errors import SiamrnError


class DataError(SiamrnError, ValueError):
    """A training-data file (image, annotation, index) that is missing parts, corrupt or malformed."""


CROP = 511  # side of a pysot crop511 image
EXEMPLAR = 127
CONTEXT = 0.5


@runtime_checkable
class TrackSource(Protocol):
    """A training dataset as tracks (one target followed through one video).

    Attributes:
      name: dataset name (``VID``, ``GOT10K``, ``synthetic``, ...), the key of its NUM_USE/FRAME_RANGE.
    """

    name: str

    def __len__(self) -> int:
        """Number of tracks."""

    def track_length(self, track: int) -> int:
        """Number of usable frames of ``track`` (frames with w <= 1 or h <= 1 already dropped)."""

    def track_key(self, track: int) -> str:
        """A stable, unique name of the track (``<video>/<track id>``), used by the offline HNM index."""

    def crop511(self, track: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``frame`` (0-based among the usable frames) of ``track`` as a crop511 sample.

        Returns:
          image: [511, 511, 3] uint8 BGR, the target centred at (255, 255).
          box: [4] float64 (x1, y1, x2, y2) target box in the crop, from ``pysot_bbox``.

        Raises:
          DataError: the frame's image is missing, unreadable (``OSError``: permission, I/O error) or cannot
            be decoded; the one-line message names the file (or the record, track and frame). This is the
            only error a bad frame may raise: ``TripletSampler`` skips and counts it and redraws the
            sample, so one corrupt file never stops a training run (``decode_image``, ``read_image``).
        """


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The image file ``path`` as [H, W, 3] uint8 BGR; missing, unreadable or corrupt -> ``DataError``.

    Reads the bytes first (``cv2.imread`` returns None for a missing file, a permission problem and a
    corrupt file alike), so the message says which it was; ``decode_image`` decodes them.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except OSError as e:  # permission denied, a folder, an I/O error
        raise DataError(f"{path}: cannot read image ({e.strerror or e})") from None
    return decode_image(data, str(path))


def pysot_bbox(box_xyxy, image_shape=(CROP, CROP)) -> np.ndarray:
    """Target box inside a crop511 image from the original annotation (pysot ``_get_bbox``, SPEC 8.2).

    Only the annotation's size matters: w, h are scaled by 127 / s_z with
    s_z = sqrt((w + 0.5 (w + h)) (h + 0.5 (w + h))) and centred at (W // 2, H // 2).

    Args:
      box_xyxy: [4] annotation (x1, y1, x2, y2) in original-frame pixels.
      image_shape: (H, W) of the crop image.

    Returns:
      [4] float64 (x1, y1, x2, y2) in crop pixels.
    """
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    w, h = x2 - x1, y2 - y1
    p = CONTEXT * (w + h)
    scale = EXEMPLAR / math.sqrt((w + p) * (h + p))
    w, h = w * scale, h * scale
    cx, cy = image_shape[1] // 2, image_shape[0] // 2
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float64)


def crop_like_siamfc(image: np.ndarray, box_xyxy, out_size: int = CROP, padding=None) -> np.ndarray:
    """pysot ``par_crop.py`` ``crop_like_SiamFC``: the 511 search-region crop around a target.

    The square region of side s_x = s_z * 511 / 127 (s_z as in ``pysot_bbox``) centred on the box centre is
    mapped onto [0, out_size - 1] with ``cv2.warpAffine`` (bilinear), outside pixels set to ``padding``
    (default: the frame's mean colour).

    Args:
      image: [H, W, 3] uint8 BGR frame.
      box_xyxy: [4] target (x1, y1, x2, y2) in frame pixels.
      out_size: output side (511).
      padding: BGR fill colour; ``None`` = per-channel mean of ``image``.

    Returns:
      [out_size, out_size, 3] uint8 BGR.
    """
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    p = CONTEXT * (w + h)
    s_z = math.sqrt((w + p) * (h + p))
    s_x = s_z * CROP / EXEMPLAR  # = s_z + 2 * (511 - 127) / 2 / (127 / s_z)
    if padding is None:
        padding = cv2.mean(image)[: image.shape[-1]]  # per-channel mean, several times faster than NumPy
    a = (out_size - 1) / s_x
    c = -a * (cx - s_x / 2)
    d = -a * (cy - s_x / 2)
    mapping = np.array([[a, 0, c], [0, a, d]], np.float64)
    return cv2.warpAffine(
        image,
        mapping,
        (out_size, out_size),
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=tuple(float(v) for v in padding),
    )


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Image file bytes -> [H, W, 3] uint8 BGR; ``DataError`` naming ``where`` if they do not decode.

    A JPEG cut short decodes "successfully" in libjpeg (the missing rows come out grey, with only a
    warning), so a JPEG without its end-of-image marker is refused too: silent garbage would be trained on.
    """
    if data[:2] == b"\xff\xd8" and not data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
        raise DataError(f"{where}: truncated JPEG (no end-of-image marker, {len(data)} bytes)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if len(data) else None
    except cv2.error:  # a header past OpenCV's size limits raises instead of returning None
        image = None
    if image is None:
        raise DataError(f"{where}: cannot decode the image ({len(data)} bytes)")
    return image


def usable_frames(boxes_xyxy: np.ndarray, min_size: float = 1.0) -> np.ndarray:
    """Indices of frames whose box has w > 1 and h > 1 and is finite (SiamRN drops w <= 1 or h <= 1)."""
    b = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    ok = np.all(np.isfinite(b), axis=1) & (b[:, 2] - b[:, 0] > min_size) & (b[:, 3] - b[:, 1] > min_size)
    return np.nonzero(ok)[0]
