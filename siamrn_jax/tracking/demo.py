"""The out-of-the-box demo: a held-out synthetic scene with look-alike distractors, as an OTB folder.

``python track.py`` with no input writes this scene to ``outputs/demo/scene`` and tracks it with the
embedded demo model. The scene comes from the same generator as the demo model's training data but from
a seed the training never used (training: seed 0; held-out evaluation: 10_000 and up), with more
distractors and an occluder guaranteed, so what the video shows is generalisation, not recall.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from siamrn_jax.atomic import atomic_directory
from siamrn_jax.data.synthetic import SyntheticConfig, make_sequence
from siamrn_jax.geometry.boxes import otb_from_zero_based

DEMO_SCENE = SyntheticConfig(
    num_videos=1, frames=120, distractors=(3, 4), occlusion_prob=1.0, fast_motion_prob=0.0, seed=10_000
)


def write_scene(folder: str | os.PathLike, config: SyntheticConfig = DEMO_SCENE, video: int = 0) -> Path:
    """Renders ``video`` of ``config`` into an OTB-layout folder: ``img/0001.jpg ...`` and
    ``groundtruth_rect.txt`` (x, y, w, h per frame in OTB's 1-based coordinates, ``otb_from_zero_based``,
    so ``track.py`` and ``eval`` read it like any OTB sequence). Written to a temporary sibling and renamed
    into place, so an interrupted run never leaves half a scene."""
    folder = Path(folder)
    frames, gt = make_sequence(config, video)
    with atomic_directory(folder) as tmp:
        (tmp / "img").mkdir()
        for t, frame in enumerate(frames):
            # Quality 95: JPEG artefacts stay far below the scene's own texture contrast.
            cv2.imwrite(str(tmp / "img" / f"{t + 1:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        # %.17g: the exact float64 numbers, so the folder scores like the in-memory scene (eval.synthetic).
        np.savetxt(tmp / "groundtruth_rect.txt", otb_from_zero_based(gt), fmt="%.17g", delimiter=",")
    return folder
