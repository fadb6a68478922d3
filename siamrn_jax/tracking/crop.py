"""Host-side crops exactly as pysot's ``get_subwindow`` (NumPy + OpenCV).

A square window of side ``original_sz`` centred at ``pos`` is cut from the frame; parts outside the frame
take the per-channel mean colour (truncated to uint8, as pysot writes it into a uint8 buffer), then the
window is resized to ``model_sz`` with ``cv2.resize`` (bilinear) if the sizes differ. Unlike pysot we only
allocate the window, never a padded copy of the whole frame; the pixels are identical.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def subwindow(
    frame: np.ndarray, pos: tuple[float, float], model_sz: int, original_sz: float, avg_chans: np.ndarray
) -> np.ndarray:
    """Crops a square window.

    Args:
      frame: [H, W, 3] uint8 BGR frame.
      pos: (cx, cy) window centre in frame pixels.
      model_sz: output side (127 or 255).
      original_sz: window side in frame pixels (integer-valued: pysot passes ``round(s)``).
      avg_chans: [3] per-channel mean of the first frame (padding colour).

    Returns:
      [model_sz, model_sz, 3] uint8 BGR, as cut (pysot converts to float32 here; the jitted tracker does it
      on the device instead, same values, a quarter of the bytes to copy: ``tracker.pixels``).
    """
    sz = original_sz
    c = (original_sz + 1) / 2
    xmin = math.floor(pos[0] - c + 0.5)
    ymin = math.floor(pos[1] - c + 0.5)
    side = int(round(sz))
    h, w = frame.shape[:2]
    x0, y0 = max(xmin, 0), max(ymin, 0)
    x1, y1 = min(xmin + side, w), min(ymin + side, h)
    if xmin >= 0 and ymin >= 0 and x1 == xmin + side and y1 == ymin + side:
        patch = frame[ymin : ymin + side, xmin : xmin + side]
    else:
        patch = np.empty((side, side, frame.shape[2]), np.uint8)
        patch[...] = np.asarray(avg_chans).astype(np.uint8)  # float -> uint8 truncates, like pysot
        if x1 > x0 and y1 > y0:
            patch[y0 - ymin : y1 - ymin, x0 - xmin : x1 - xmin] = frame[y0:y1, x0:x1]
    if model_sz != side:
        patch = cv2.resize(patch, (model_sz, model_sz))
    return patch


def context_size(size: np.ndarray, context_amount: float) -> float:
    """pysot's s_z = sqrt((w + p)(h + p)), p = context_amount * (w + h) (unrounded)."""
    w_z = size[0] + context_amount * (size[0] + size[1])
    h_z = size[1] + context_amount * (size[0] + size[1])
    return float(np.sqrt(w_z * h_z))
