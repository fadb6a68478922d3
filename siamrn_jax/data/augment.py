"""The pysot / SiamBAN training augmentation of crop511 images (SPEC 8.2).

A crop511 image (``siamrn_jax.data.source``) holds the target at its centre; ``augment`` cuts the
template (127) or search / query (255) crop out of it with a random shift and per-axis scale, then applies
PCA colour lighting, a random cross-shaped blur and a horizontal flip, each with its own probability.
This is ``siamban/datasets/augmentation.py`` (identical to pysot's) with NumPy's global RNG replaced by an
explicit ``np.random.Generator``, so a sample is a pure function of the generator's state.

Random draws (``draw_augment``, all made before the crop; ``apply_augment`` applies given draws), in this
fixed order (a draw is skipped when its step is disabled or not taken):

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


@dataclasses.dataclass(frozen=True)
class AugmentDraws:
    """The random choices of one ``augment`` call (pysot ``Augmentation.__call__``), made before the crop.

    The strengths (shift in pixels, scale spread) come from the ``Augmentation`` the draws are applied
    with; the draws decide everything else, so a step whose draw is present runs even where that
    ``Augmentation`` has probability 0 (this is how recorded pysot choices are replayed).

    Attributes:
      scale: (u_x, u_y) in [-1, 1): scale factors 1 + u * ``aug.scale`` (capped); None = no scale draw.
      shift: (u_x, u_y) in [-1, 1): shifts u * ``aug.shift`` (clipped to the image); None = no shift draw.
      color: the 3 standard normals of the PCA lighting offset; None = no colour step.
      blur: (kernel side, wx) of the cross-shaped blur kernel (``cross_kernel``); None = no blur.
      flip: horizontal flip.
    """

    scale: tuple[float, float] | None = None
    shift: tuple[float, float] | None = None
    color: tuple[float, float, float] | None = None
    blur: tuple[int, float] | None = None
    flip: bool = False


def _uniform_pm1(rng: np.random.Generator) -> float:
    return rng.random() * 2.0 - 1.0


def draw_augment(aug: Augmentation, rng: np.random.Generator) -> AugmentDraws:
    """The draws of one ``augment`` call, in the order of the module docstring."""
    scale = (_uniform_pm1(rng), _uniform_pm1(rng)) if aug.scale else None
    shift = (_uniform_pm1(rng), _uniform_pm1(rng)) if aug.shift else None
    color = None
    if rng.random() < aug.color:
        color = tuple(float(v) for v in rng.standard_normal((3, 1)).reshape(3))
    blur = None
    if rng.random() < aug.blur:
        blur = (int(rng.choice(BLUR_SIZES)), float(rng.random()))
    flip = bool(aug.flip) and bool(rng.random() < aug.flip)
    return AugmentDraws(scale=scale, shift=shift, color=color, blur=blur, flip=flip)


def _shift_scale_window(image_hw, size: int, aug: Augmentation, draws: AugmentDraws):
    """The crop window (x1, y1, x2, y2) in image pixels and the (scale_x, scale_y) factors."""
    im_h, im_w = image_hw
    # pysot centres the window at (shape[0] // 2, shape[1] // 2), i.e. x from the height; the same for the
    # square crop511 images it is meant for.
    cx, cy = float(im_h // 2), float(im_w // 2)
    w = h = float(size - 1)
    scale_x = scale_y = 1.0
    if draws.scale is not None:
        scale_x = min(1.0 + draws.scale[0] * aug.scale, im_w / w)
        scale_y = min(1.0 + draws.scale[1] * aug.scale, im_h / h)
        w, h = w * scale_x, h * scale_y
    x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    if draws.shift is not None:
        sx = draws.shift[0] * aug.shift
        sy = draws.shift[1] * aug.shift
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


def pca_offset(normal) -> np.ndarray:
    """The PCA lighting offset of 3 standard normals, [3] float64 in BGR order (subtracted from the image).

    ``np.dot`` of the float32 basis with float64 normals, as pysot computes it, so the offset is the same
    to the bit.
    """
    offset = np.dot(RGB_VAR, np.asarray(normal, np.float64).reshape(3, 1))
    return offset[::-1].reshape(3)  # the basis is RGB, the images BGR


def color_offset(rng: np.random.Generator) -> np.ndarray:
    """One random PCA lighting offset, [3] float32 in BGR order (``pca_offset`` of one draw)."""
    return pca_offset(rng.standard_normal((3, 1))).astype(np.float32)


def cross_kernel(k: int, wx: float) -> np.ndarray:
    """pysot's blur kernel: [k, k] float64, non-zero on the centre row and column.

    The centre column holds wx / k and the centre row (1 - wx) / k, accumulated (pysot's ``+=``) so the
    centre pixel has 1 / k and the kernel sums to 1: blurring keeps a constant image unchanged. The
    products are pysot's (``1 / k * wx``), so the kernel is the same to the bit.
    """
    kernel = np.zeros((k, k), np.float64)
    c = k // 2
    kernel[:, c] += 1.0 / k * wx
    kernel[c, :] += 1.0 / k * (1.0 - wx)
    return kernel


def blur_kernel(rng: np.random.Generator) -> np.ndarray:
    """A random ``cross_kernel``: k odd in 5..45 (``rng.choice``), wx ~ U(0, 1) (``rng.random``)."""
    k = int(rng.choice(BLUR_SIZES))
    return cross_kernel(k, rng.random())


def augment(
    image: np.ndarray,
    box_xyxy,
    size: int,
    aug: Augmentation,
    rng: np.random.Generator,
    gray: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """pysot ``Augmentation.__call__``: gray -> shift/scale crop -> colour -> blur -> flip.

    ``apply_augment`` of ``draw_augment(aug, rng)``; see there.

    Raises:
      ValueError: ``image`` is not [H, W, 3] or ``box_xyxy`` is not 4 finite numbers.
    """
    return apply_augment(image, box_xyxy, size, aug, draw_augment(aug, rng), gray)


def apply_augment(
    image: np.ndarray,
    box_xyxy,
    size: int,
    aug: Augmentation,
    draws: AugmentDraws,
    gray: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """pysot ``Augmentation.__call__`` with its random choices given: gray -> shift/scale crop -> colour
    -> blur -> flip, in pysot's arithmetic (equal to the bit, ``tests/data/test_official_data.py``).

    Args:
      image: [H, W, 3] uint8 BGR crop511 image (H = W = 511 in training), target near its centre.
      box_xyxy: [4] target (x1, y1, x2, y2) in ``image`` pixels (``pysot_bbox``).
      size: output side (127 template, 255 search / query).
      aug: augmentation strengths (``TEMPLATE``, ``SEARCH``): shift and scale spread.
      draws: the random choices (``draw_augment``).
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

    window, (scale_x, scale_y) = _shift_scale_window(image.shape[:2], size, aug, draws)
    # pysot moves the box by the window's corner, then divides by the scale factors (not by the exact
    # window-to-crop ratio (size - 1) / window side, which differs when the scale was capped).
    box = (box - np.array([window[0], window[1], window[0], window[1]])) / np.array(
        [scale_x, scale_y, scale_x, scale_y]
    )
    # The warp runs on the uint8 image, like pysot (its output is rounded to integers).
    crop = crop_window(image, window, size)
    # pysot's dtypes: uint8 - float64 offset -> float64; the blur filters whatever it gets (uint8 when the
    # colour step did not run: rounded and saturated); one cast to float32 at the end.
    if draws.color is not None:
        crop = crop - pca_offset(draws.color)
    if draws.blur is not None:
        crop = cv2.filter2D(crop, -1, cross_kernel(*draws.blur))
    if draws.flip:
        crop = crop[:, ::-1]
        box = np.array([size - 1 - box[2], box[1], size - 1 - box[0], box[3]], np.float64)
    return np.ascontiguousarray(crop, np.float32), box
