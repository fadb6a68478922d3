"""A small pysot crop511 dataset on disk, with bad frames on request (for the bad-data tests)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def write_tree(folder: Path, videos: int, frames: int, bad: dict[tuple[int, int], str] | None = None):
    """``folder/crop511/v<k>/<frame:06d>.00.x.jpg`` + ``folder/train.json``, one track per video.

    Each crop is a flat colour encoding (video, frame) with a brighter target box at the centre. ``bad``
    maps (video, frame) to what goes wrong with that file: ``"missing"`` (not written), ``"garbage"``
    (bytes that are not an image) or ``"truncated"`` (a JPEG cut in half, as an interrupted copy leaves it).

    Returns:
      (crop511 root, annotation path, {(video, frame): path of each bad file}).
    """
    bad = bad or {}
    root = folder / "crop511"
    anno, paths = {}, {}
    for v in range(videos):
        track = {}
        for f in range(frames):
            track[f"{f:06d}"] = [100.0 + f, 80.0, 180.0 + 2 * f, 150.0]  # xyxy in the "original" frame
            path = root / f"v{v}" / f"{f:06d}.00.x.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            img = np.full((511, 511, 3), (20 * v % 256, 30 * f % 256, 90), np.uint8)
            img[215:296, 205:306] = 230
            data = cv2.imencode(".jpg", img)[1].tobytes()
            kind = bad.get((v, f))
            if kind is not None:
                paths[(v, f)] = path
            if kind == "missing":
                continue
            if kind == "garbage":
                data = b"this is not a JPEG"
            elif kind == "truncated":
                data = data[: len(data) // 2]
            path.write_bytes(data)
        anno[f"v{v}"] = {"00": track}
    path = folder / "train.json"
    path.write_text(json.dumps(anno))
    return root, path, paths
