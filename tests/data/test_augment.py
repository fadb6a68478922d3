"""Tests for siamrn_jax.data.augment (pysot training augmentation, SPEC 8.2)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from siamrn_jax.data.augment import (
    RGB_VAR,
    SEARCH,
    TEMPLATE,
    Augmentation,
    augment,
    blur_kernel,
    color_offset,
)
from siamrn_jax.data.source import pysot_bbox

NONE = Augmentation(shift=0, scale=0, blur=0.0, flip=0.0, color=0.0)


def _noise_image(seed=0, shape=(511, 511, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("size", [127, 255])
def test_no_shift_no_scale_is_a_centre_crop(size):
    image = _noise_image()
    box = np.array([200.0, 210.0, 300.0, 280.0])
    crop, out = augment(image, box, size, NONE, np.random.default_rng(0))
    assert crop.shape == (size, size, 3) and crop.dtype == np.float32
    assert out.dtype == np.float64
    # Window side size - 1 centred at 255: corners 255 -+ (size - 1) / 2, one crop pixel per image pixel.
    lo = 255 - (size - 1) // 2
    np.testing.assert_array_equal(crop, image[lo : lo + size, lo : lo + size].astype(np.float32))
    np.testing.assert_allclose(out, box - lo)


def test_scaled_crop_matches_an_affine_reference():
    image = _noise_image(1)
    box = np.array([220.0, 230.0, 290.0, 280.0])
    aug = Augmentation(shift=0, scale=0.18, blur=0.0, flip=0.0, color=0.0)
    crop, out = augment(image, box, 255, aug, np.random.default_rng(3))
    r = np.random.default_rng(3)
    sx, sy = 1 + (r.random() * 2 - 1) * 0.18, 1 + (r.random() * 2 - 1) * 0.18
    assert abs(sx - 1) > 0.02 and abs(sy - 1) > 0.02  # the seed scales both axes
    x1, y1 = 255 - 127 * sx, 255 - 127 * sy
    x2, y2 = 255 + 127 * sx, 255 + 127 * sy
    src = np.float32([[x1, y1], [x2, y1], [x1, y2]])
    dst = np.float32([[0, 0], [254, 0], [0, 254]])
    ref = cv2.warpAffine(image, cv2.getAffineTransform(src, dst), (255, 255), flags=cv2.INTER_LINEAR)
    assert np.abs(crop - ref.astype(np.float32)).max() <= 1.0  # float32 vs float64 matrix rounding
    np.testing.assert_allclose(out, [(220 - x1) / sx, (230 - y1) / sy, (290 - x1) / sx, (280 - y1) / sy])


def test_shift_matches_an_affine_reference():
    image = _noise_image(4)
    aug = Augmentation(shift=64, scale=0, blur=0.0, flip=0.0, color=0.0)
    crop, out = augment(image, [200.0, 210.0, 300.0, 280.0], 255, aug, np.random.default_rng(11))
    r = np.random.default_rng(11)
    sx, sy = (r.random() * 2 - 1) * 64, (r.random() * 2 - 1) * 64
    assert abs(sx - sy) > 5  # the seed shifts the axes differently
    mapping = np.array([[1.0, 0.0, -(128 + sx)], [0.0, 1.0, -(128 + sy)]])
    ref = cv2.warpAffine(image, mapping, (255, 255), flags=cv2.INTER_LINEAR)
    assert np.abs(crop - ref.astype(np.float32)).max() <= 1.0
    np.testing.assert_allclose(out, [200 - 128 - sx, 210 - 128 - sy, 300 - 128 - sx, 280 - 128 - sy])


@pytest.mark.parametrize(("shift", "corner"), [(1000, 256), (-1000, 0)])
def test_shift_is_clipped_to_the_image(shift, corner):
    image = _noise_image(5)
    aug = Augmentation(shift=shift, scale=0, blur=0.0, flip=0.0, color=0.0)
    crop, out = augment(image, [200.0, 210.0, 300.0, 280.0], 255, aug, np.random.default_rng(5))
    r = np.random.default_rng(5)
    draws = (np.array([r.random(), r.random()]) * 2 - 1) * shift
    assert np.all(draws * np.sign(shift) > 128)  # both axes would leave the image
    # pysot keeps the window's far corner at im - 1 = 510: window [256, 510] for a positive shift.
    np.testing.assert_array_equal(
        crop, image[corner : corner + 255, corner : corner + 255].astype(np.float32)
    )
    np.testing.assert_allclose(out, np.array([200.0, 210.0, 300.0, 280.0]) - corner)


@pytest.mark.parametrize("seed", range(6))
def test_box_follows_a_bright_rectangle(seed):
    rng = np.random.default_rng(100 + seed)
    w, h = rng.uniform(30, 200), rng.uniform(30, 200)
    box = pysot_bbox([0, 0, w, h])
    image = np.full((511, 511, 3), 20, np.uint8)
    x1, y1, x2, y2 = np.round(box).astype(int)
    box = np.array([x1, y1, x2, y2], np.float64)  # snap to pixel corners, so the rectangle is exact
    image[y1:y2, x1:x2] = 230
    aug = Augmentation(shift=SEARCH.shift, scale=SEARCH.scale, blur=0.0, flip=0.0, color=0.0)
    crop, out = augment(image, box, 255, aug, rng)
    ys, xs = np.nonzero(crop[..., 0] > 125)
    # Bright pixel centres k..m cover the continuous box [k, m + 1] (pixel corners).
    found = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
    np.testing.assert_allclose(found, out, atol=1.5)
    assert np.abs(out - (box - (255 - 127))).max() > 2  # the draw did move or scale the box


def test_template_aug_moves_little():
    box = pysot_bbox([0, 0, 60, 40])
    outs = [augment(_noise_image(), box, 127, TEMPLATE, np.random.default_rng(s))[1] for s in range(20)]
    centre = np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] for b in outs])
    # centre moves by -sx / scale_x only: |sx| <= 4, scale >= 0.95
    assert np.abs(centre - 63.0).max() <= 4 / 0.95 + 1e-9
    assert np.abs(centre - 63.0).max() > 0.5


def test_color_offset_statistics():
    rng = np.random.default_rng(0)
    offsets = np.stack([color_offset(rng) for _ in range(20000)])
    assert offsets.shape == (20000, 3) and offsets.dtype == np.float32
    np.testing.assert_allclose(offsets.mean(0), 0.0, atol=0.3)
    cov_bgr = (RGB_VAR @ RGB_VAR.T)[::-1, ::-1]  # the RGB basis reversed to BGR
    np.testing.assert_allclose(np.cov(offsets.T), cov_bgr, atol=0.08 * np.abs(cov_bgr).max())


def test_color_is_subtracted_after_the_crop():
    image = np.full((511, 511, 3), 100, np.uint8)
    aug = Augmentation(shift=0, scale=0, blur=0.0, flip=0.0, color=1.0)
    crop, _ = augment(image, [200, 200, 300, 300], 127, aug, np.random.default_rng(7))
    r = np.random.default_rng(7)
    r.random()  # the colour decision
    offset = color_offset(r)
    assert np.abs(offset).max() > 0.5
    np.testing.assert_allclose(crop, np.broadcast_to(100 - offset, crop.shape), rtol=0, atol=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_blur_kernel_is_a_normalised_cross(seed):
    k = blur_kernel(np.random.default_rng(seed))
    n = k.shape[0]
    assert k.shape == (n, n) and n % 2 == 1 and 5 <= n <= 45
    np.testing.assert_allclose(k.sum(), 1.0, rtol=1e-12)
    c = n // 2
    off_cross = np.ones_like(k, bool)
    off_cross[c, :] = off_cross[:, c] = False
    assert np.all(k[off_cross] == 0)
    np.testing.assert_allclose(k[c, c], 1.0 / n)


def test_blur_keeps_a_constant_image_and_smooths_noise():
    aug = Augmentation(shift=0, scale=0, blur=1.0, flip=0.0, color=0.0)
    flat, _ = augment(
        np.full((511, 511, 3), 77, np.uint8), [200, 200, 300, 300], 255, aug, np.random.default_rng(0)
    )
    np.testing.assert_allclose(flat, 77.0, atol=1e-3)
    noise = _noise_image(2)
    blurred, _ = augment(noise, [200, 200, 300, 300], 255, aug, np.random.default_rng(0))
    sharp, _ = augment(noise, [200, 200, 300, 300], 255, NONE, np.random.default_rng(0))
    assert blurred.std() < 0.6 * sharp.std()


def test_gray_gives_equal_channels():
    crop, _ = augment(_noise_image(), [200, 200, 300, 300], 255, NONE, np.random.default_rng(0), gray=True)
    np.testing.assert_array_equal(crop[..., 0], crop[..., 1])
    np.testing.assert_array_equal(crop[..., 0], crop[..., 2])
    assert crop.std() > 10


def test_deterministic_given_the_generator_state():
    image, box = _noise_image(), [200, 200, 300, 300]
    a = augment(image, box, 255, SEARCH, np.random.default_rng(5))
    b = augment(image, box, 255, SEARCH, np.random.default_rng(5))
    c = augment(image, box, 255, SEARCH, np.random.default_rng(6))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_flip_mirrors_image_and_box():
    image, box = _noise_image(), [180, 200, 300, 290]
    flip = Augmentation(shift=64, scale=0.18, blur=0.0, flip=1.0, color=0.0)
    plain = Augmentation(shift=64, scale=0.18, blur=0.0, flip=0.0, color=0.0)
    crop_f, box_f = augment(image, box, 255, flip, np.random.default_rng(9))
    crop_p, box_p = augment(image, box, 255, plain, np.random.default_rng(9))
    np.testing.assert_array_equal(crop_f, crop_p[:, ::-1])
    np.testing.assert_allclose(box_f, [254 - box_p[2], box_p[1], 254 - box_p[0], box_p[3]])


@pytest.mark.parametrize(
    ("image", "box"),
    [
        (np.zeros((511, 511), np.uint8), [1, 2, 3, 4]),
        (np.zeros((511, 511, 4), np.uint8), [1, 2, 3, 4]),
        (np.zeros((511, 511, 3), np.uint8), [1, 2, np.nan, 4]),
        (np.zeros((511, 511, 3), np.uint8), [1, 2, 3]),
    ],
)
def test_invalid_inputs_raise(image, box):
    with pytest.raises(ValueError, match="augment"):
        augment(image, box, 255, SEARCH, np.random.default_rng(0))
