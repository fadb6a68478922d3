"""The pysot / SiamBAN training augmentation of crop511 images (SPEC 8.2).

A crop511 image (``siamrn_jax.data.source``) holds the target at its centre; ``augment`` cuts the
template (127) or search / query (255) crop out of it with a random shift and per-axis scale, then applies
PCA colour lighting, a random cross-shaped blur and a horizontal flip, each with its own probability.
This is ``siamban/datasets/augmentation.py`` (identical to pysot's) with NumPy's global RNG replaced by an
explicit ``np.random.Generator``, so a sample is a pure function of the generator's state.

Random draws, in this fixed order (a draw is skipped when its step is disabled or not taken):

1. ``aug.scale != 0``: scale_x, scale_y (two ``rng.random()``);
2. ``aug.shift != 0``: sx, sy (two ``rng.random()``);
3. colour decision (``rng.random()``), then, if taken, ``rng.standard_normal((3, 1))``;
4. blur decision (``rng.random()``), then, if taken, the kernel size (``rng.choice``) and its weight
   (``rng.random()``);
5. ``aug.flip != 0``: flip decision (``rng.random()``).

This is pysot's draw order (its ``Augmentation.random`` is ``np.random.random() * 2 - 1``).

Box convention: ``xyxy`` corners in pixels of the image they refer to (``siamrn_jax.geometry.boxes``).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

# PCA lighting basis of pysot (RGB rows), ``rgbVar`` in augmentation.py.
RGB_VAR = np.array(
    [
        [-0.55919361, 0.98062831, -0.41940627],
        [1.72091413, 0.19879334, -1.82968581],
        [4.64467907, 4.73710203, 4.88324118],
    ],
    np.float32,
)
BLUR_SIZES = np.arange(5, 46, 2)  # odd kernel sides 5..45


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Augmentation strengths of one crop kind (pysot ``cfg.DATASET.TEMPLATE`` / ``SEARCH``).

    Attributes:
      shift: maximal window shift in crop511 pixels, uniform in [-shift, shift] per axis.
      scale: per-axis window scale factor 1 + U(-1, 1) * scale.
      blur: probability of the random cross-shaped blur.
      flip: probability of a horizontal flip.
      color: probability of the PCA colour offset.
    """

    shift: float
    scale: float
    blur: float
    flip: float
    color: float


# SiamRN's experiment YAML (SPEC 8.2): the 0.2 search blur is the YAML value, the code default is 0.0.
TEMPLATE = Augmentation(shift=4, scale=0.05, blur=0.0, flip=0.0, color=1.0)
SEARCH = Augmentation(shift=64, scale=0.18, blur=0.2, flip=0.0, color=1.0)


def _uniform_pm1(rng: np.random.Generator) -> float:
    return rng.random() * 2.0 - 1.0


def _shift_scale_window(image_hw, size: int, aug: Augmentation, rng: np.random.Generator):
    """The crop window (x1, y1, x2, y2) in image pixels and the (scale_x, scale_y) factors."""
    im_h, im_w = image_hw
    # pysot centres the window at (shape[0] // 2, shape[1] // 2), i.e. x from the height; the same for the
    # square crop511 images it is meant for.
    cx, cy = float(im_h // 2), float(im_w // 2)
    w = h = float(size - 1)
    scale_x = scale_y = 1.0
    if aug.scale:
        scale_x = min(1.0 + _uniform_pm1(rng) * aug.scale, im_w / w)
        scale_y = min(1.0 + _uniform_pm1(rng) * aug.scale, im_h / h)
        w, h = w * scale_x, h * scale_y
    x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    if aug.shift:
        sx = _uniform_pm1(rng) * aug.shift
        sy = _uniform_pm1(rng) * aug.shift
        # Keep the window inside the image (pysot clips against im - 1, not im).
        sx = max(-x1, min(im_w - 1 - x2, sx))
        sy = max(-y1, min(im_h - 1 - y2, sy))
        x1, y1, x2, y2 = x1 + sx, y1 + sy, x2 + sx, y2 + sy
    return (x1, y1, x2, y2), (scale_x, scale_y)


def crop_window(image: np.ndarray, window_xyxy, size: int) -> np.ndarray:
    """pysot ``_crop_roi``: map the window corners onto [0, size - 1] (bilinear, black border).

    Args:
      image: [H, W, C] image.
      window_xyxy: (x1, y1, x2, y2) window in image pixels; x1 goes to output pixel 0, x2 to size - 1.
      size: output side.

    Returns:
      [size, size, C] image of ``image``'s dtype.
    """
    x1, y1, x2, y2 = (float(v) for v in window_xyxy)
    a = (size - 1) / (x2 - x1)
    b = (size - 1) / (y2 - y1)
    mapping = np.array([[a, 0.0, -a * x1], [0.0, b, -b * y1]], np.float64)
    return cv2.warpAffine(
        image,
        mapping,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0.0, 0.0, 0.0, 0.0),
    )


def color_offset(rng: np.random.Generator) -> np.ndarray:
    """One PCA lighting offset, [3] float32 in BGR order (subtracted from the image)."""
    offset = RGB_VAR @ rng.standard_normal((3, 1)).astype(np.float32)
    return offset[::-1].reshape(3)  # the basis is RGB, the images BGR


def blur_kernel(rng: np.random.Generator) -> np.ndarray:
    """pysot's random blur kernel: [k, k] float64, k odd in 5..45, non-zero on the centre row and column.

    The centre column holds wx / k and the centre row (1 - wx) / k, accumulated (pysot's ``+=``) so the
    centre pixel has 1 / k and the kernel sums to 1: blurring keeps a constant image unchanged.
    """
    k = int(rng.choice(BLUR_SIZES))
    kernel = np.zeros((k, k), np.float64)
    c = k // 2
    wx = rng.random()
    kernel[:, c] += wx / k
    kernel[c, :] += (1.0 - wx) / k
    return kernel


def augment(
    image: np.ndarray,
    box_xyxy,
    size: int,
    aug: Augmentation,
    rng: np.random.Generator,
    gray: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """pysot ``Augmentation.__call__``: gray -> shift/scale crop -> colour -> blur -> flip.

    Args:
      image: [H, W, 3] uint8 BGR crop511 image (H = W = 511 in training), target near its centre.
      box_xyxy: [4] target (x1, y1, x2, y2) in ``image`` pixels (``pysot_bbox``).
      size: output side (127 template, 255 search / query).
      aug: augmentation strengths (``TEMPLATE``, ``SEARCH``).
      rng: the only source of randomness; draws in the order of the module docstring.
      gray: convert to gray (BGR -> GRAY -> BGR) before cropping.

    Returns:
      crop: [size, size, 3] float32 BGR, 0-255 scale but not clipped (the colour offset may leave it).
      box: [4] float64 (x1, y1, x2, y2) target box in crop pixels.

    Raises:
      ValueError: ``image`` is not [H, W, 3] or ``box_xyxy`` is not 4 finite numbers.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 2:
        raise ValueError(f"augment: image must be [H, W, 3] with H, W >= 2, got shape {image.shape}")
    box = np.asarray(box_xyxy, np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        raise ValueError(f"augment: box must be 4 finite numbers (x1, y1, x2, y2), got {box_xyxy!r}")

    if gray:
        image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)

    window, (scale_x, scale_y) = _shift_scale_window(image.shape[:2], size, aug, rng)
    # pysot moves the box by the window's corner, then divides by the scale factors (not by the exact
    # window-to-crop ratio (size - 1) / window side, which differs when the scale was capped).
    box = (box - np.array([window[0], window[1], window[0], window[1]])) / np.array(
        [scale_x, scale_y, scale_x, scale_y]
    )
    # The warp runs on the uint8 image, like pysot (its output is rounded to integers).
    crop = crop_window(image, window, size).astype(np.float32)

    if rng.random() < aug.color:
        crop = crop - color_offset(rng)
    if rng.random() < aug.blur:
        # pysot blurs the float image whenever the colour step ran (always at COLOR = 1.0).
        crop = cv2.filter2D(crop, -1, blur_kernel(rng))
    if aug.flip and rng.random() < aug.flip:
        crop = np.ascontiguousarray(crop[:, ::-1])
        box = np.array([size - 1 - box[2], box[1], size - 1 - box[0], box[3]], np.float64)
    return crop, box
