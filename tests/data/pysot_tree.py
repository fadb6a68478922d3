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


# The tree of the official-data fixture (tests/fixtures/official_data, tools/official_data): video ->
# track -> frame numbers. It covers a video with two tracks, frame numbers with gaps, a one-frame track
# and a degenerate box (w <= 1, dropped by both readers).
OFFICIAL_TREE = {
    "synth/vid000": {"00": [0, 1, 2, 3, 4, 5]},
    "synth/vid001": {"00": [0, 1, 2, 3, 4], "01": [0, 2, 4, 6]},
    "synth/vid002": {"00": [7]},
    "synth/vid003": {"00": [0, 1, 2, 3, 4, 5]},
}
OFFICIAL_DEGENERATE = ("synth/vid003", "00", 3)


def write_official_tree(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """The crop511 tree of the official-data fixture, a pure function of ``seed`` (NumPy and PNG only).

    Pixels come from ``np.random.default_rng`` integers combined in integer arithmetic (no resampling, no
    float rounding) and are stored losslessly as PNG bytes under pysot's ``.jpg`` names (both readers
    decode by content), so the same tree comes out wherever it is written; the fixture holds the SHA-256
    of every image to prove it. Boxes are float64 with all their digits (``train.json``).

    Returns:
      (crop511 root, annotation path).
    """
    rng = np.random.default_rng([seed, 0x0FF1])
    root = folder / "crop511"
    anno = {}
    for video, tracks in OFFICIAL_TREE.items():
        anno[video] = {}
        for track, frames in tracks.items():
            w0, h0 = rng.uniform(30, 180, 2)
            boxes = {}
            for f in frames:
                w, h = w0 * rng.uniform(0.9, 1.1), h0 * rng.uniform(0.9, 1.1)
                if (video, track, f) == OFFICIAL_DEGENERATE:
                    w = 0.75
                x1, y1 = rng.uniform(0, 600, 2)
                boxes[f"{f:06d}"] = [float(x1), float(y1), float(x1 + w), float(y1 + h)]
                coarse = rng.integers(0, 256, (64, 64, 3), dtype=np.int32)
                noise = rng.integers(0, 256, (511, 511, 3), dtype=np.int32)
                img = (3 * np.kron(coarse, np.ones((8, 8, 1), np.int32))[:511, :511] + 2 * noise) // 5
                side = 127 * np.array([w, h]) / np.sqrt((w + 0.5 * (w + h)) * (h + 0.5 * (w + h)))
                x0, y0 = (255 - side / 2).astype(int)
                x1i, y1i = (255 + side / 2).astype(int)
                img[y0:y1i, x0:x1i] = (img[y0:y1i, x0:x1i] + 3 * rng.integers(0, 256, 3)) // 4
                path = root / video / f"{f:06d}.{track}.x.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(cv2.imencode(".png", img.astype(np.uint8))[1].tobytes())
            anno[video][track] = boxes
    path = folder / "train.json"
    path.write_text(json.dumps(anno))
    return root, path
