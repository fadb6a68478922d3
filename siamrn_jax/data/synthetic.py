"""A procedural tracking dataset: textured scenes with look-alike distractors, rendered on demand.

It needs no download, so it is the embedded default training set (``SyntheticSource``) and, with another
seed, a source of held-out demo / evaluation sequences (``make_sequence``). Training uses ``seed=0``;
held-out evaluation scenes use seeds from 10_000 on, which share no video with training.

A video is a static, panning background (several octaves of smooth colour noise, stripes and clutter
shapes), one target (an ellipse, rounded rectangle, polygon or smooth blob with a stripe, checker, ring or
noise texture and sometimes an outline) and 1-4 distractors that reuse the target's shape and texture with a
small colour and size change, so only subtle cues tell them apart. Objects follow damped random-walk
velocities that bounce off the frame borders; distractors are pulled towards the target so they pass near
and over it. Per video, by chance: fast motion (sudden jumps of the target), and an occluder that crosses
the target during a window of frames. The size of every object follows a smooth trajectory within
``SyntheticConfig.scale_range`` and the illumination a slow global gain.

Everything about video ``v`` comes from ``np.random.default_rng([config.seed, v])``: the scene (textures,
trajectories of all frames) is built once, cheaply, and cached (``build_scene``, a small module-level LRU, so
the source object itself is just its config and pickles for grain worker processes); ``render`` then
draws one requested frame.

Boxes: ``xywh`` = (x, y, w, h), 0-based pixel corners (pixel (i, j) covers [j, j + 1] x [i, i + 1]), the
target's full extent even where it is occluded (``siamrn_jax.geometry.boxes``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import cv2
import numpy as np

from siamrn_jax.data.source import crop_like_siamfc, pysot_bbox

PAN = 24  # background margin in pixels: the camera pans within it
SHAPES = ("ellipse", "rounded_rect", "polygon", "blob")
TEXTURES = ("stripes", "checker", "rings", "noise")


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """What the synthetic videos look like (frozen, hashable: the key of the scene cache).

    Attributes:
      frame_size: (W, H) of a frame in pixels.
      num_videos: number of videos (= tracks).
      frames: frames per video.
      object_size: range of an object's base size sqrt(w h) in pixels, before the scale trajectory.
      scale_range: (min, max) factor of the size trajectory over a video.
      distractors: (min, max) number of distractors per video, inclusive.
      occlusion_prob: probability that an occluder crosses the target in a video.
      fast_motion_prob: probability that the target makes sudden jumps in a video.
      seed: 0 for training; 10_000 and up for held-out evaluation scenes.
    """

    frame_size: tuple[int, int] = (320, 240)
    num_videos: int = 2000
    frames: int = 60
    object_size: tuple[float, float] = (22.0, 50.0)
    scale_range: tuple[float, float] = (0.7, 1.4)
    distractors: tuple[int, int] = (1, 4)
    occlusion_prob: float = 0.3
    fast_motion_prob: float = 0.2
    seed: int = 0


class SceneInfo(NamedTuple):
    """Per-video facts, for analysis and tests.

    Attributes:
      occluded: [T] bool, the occluder overlaps the target's box in that frame.
      jumps: [T] bool, the target jumped (fast motion) into that frame.
    """

    occluded: np.ndarray
    jumps: np.ndarray


class _Layer(NamedTuple):
    """One drawn object: a premultiplied sprite and its box per frame."""

    sprites: tuple[np.ndarray, ...]  # [h, w, 4] float32 (B*a, G*a, R*a, a), full and half resolution
    boxes: np.ndarray  # [T, 4] float64 xywh in frame pixels; w = 0 where not drawn


class Scene(NamedTuple):
    """One synthetic video, built once (``build_scene``): its background, layers and per-frame motion."""

    background: np.ndarray  # [H + 2 PAN, W + 2 PAN, 3] uint8 BGR
    pan: np.ndarray  # [T, 2] int (x, y) offset of the frame inside the background
    gain: np.ndarray  # [T] float32 global illumination factor
    below: tuple[_Layer, ...]  # distractors drawn under the target
    target: _Layer
    above: tuple[_Layer, ...]  # distractors in front of the target, then the occluder
    distractor_boxes: np.ndarray  # [T, N, 4] xywh
    info: SceneInfo


# ---------------------------------------------------------------------------------------------------------
# Textures and shapes


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """[h, w] float32 smooth noise, about N(0, 1), with ~``cells`` features along the longer side."""
    ch = max(2, round(cells * h / max(h, w)))
    cw = max(2, round(cells * w / max(h, w)))
    small = rng.standard_normal((ch, cw)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _random_color(rng: np.random.Generator) -> np.ndarray:
    """[3] float32 BGR colour; sampled in HSV so colours are as often vivid as dull."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(40, 255), rng.uniform(50, 255)]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates normalised to [-1, 1] over the sprite's extent: ([1, w], [h, 1])."""
    u = ((np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1)[None, :]
    v = ((np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1)[:, None]
    return u, v


def _pattern(rng: np.random.Generator, kind: str, h: int, w: int) -> np.ndarray:
    """[h, w] float32 in [0, 1]: where the second colour of a texture shows."""
    u, v = _coords(h, w)
    u, v = u * (w / max(h, w)), v * (h / max(h, w))  # isotropic pixel units
    angle = rng.uniform(0, np.pi)
    freq = rng.uniform(1.5, 4.5)
    if kind == "stripes":
        t = np.sin(np.pi * freq * (u * np.cos(angle) + v * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
        return np.clip(t * 2.5 + 0.5, 0, 1)
    if kind == "checker":
        a = u * np.cos(angle) + v * np.sin(angle)
        b = -u * np.sin(angle) + v * np.cos(angle)
        t = np.sin(np.pi * freq * a) * np.sin(np.pi * freq * b)
        return np.clip(t * 4 + 0.5, 0, 1)
    if kind == "rings":
        cu, cv = rng.uniform(-0.3, 0.3, 2)
        t = np.sin(np.pi * freq * np.sqrt((u - cu) ** 2 + (v - cv) ** 2) + rng.uniform(0, 2 * np.pi))
        return np.clip(t * 2.5 + 0.5, 0, 1)
    t = _smooth_noise(rng, h, w, int(rng.integers(3, 7)))
    return np.clip(t * 0.6 + 0.5, 0, 1)


def _shape_alpha(rng: np.random.Generator, kind: str, h: int, w: int) -> np.ndarray:
    """[h, w] float32 anti-aliased coverage of a shape that touches all four sides of the sprite."""
    if kind in ("ellipse", "rounded_rect"):
        u, v = _coords(h, w)
        p = 2.0 if kind == "ellipse" else rng.uniform(4, 10)
        r = (np.abs(u) ** p + np.abs(v) ** p) ** (1 / p)
        # (1 - r) in normalised units times the half-size is ~ the distance to the edge in pixels.
        return np.clip((1 - r) * (min(h, w) / 2) + 0.5, 0, 1).astype(np.float32)
    if kind == "polygon":
        n = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n)) if n > 4 else np.linspace(0, 2 * np.pi, n + 1)[:-1]
        angles = angles + rng.uniform(0, 2 * np.pi)
        radii = rng.uniform(0.7, 1.0, n)
    else:
        angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        radii = 1 + sum(
            rng.uniform(0, 0.2) * np.cos(k * angles + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4)
        )
    x, y = radii * np.cos(angles), radii * np.sin(angles)
    # Stretch the outline to span the sprite exactly, so the sprite's extent is the object's box; draw 4x
    # supersampled and area-average for anti-aliased edges.
    ss = 4
    x = (x - x.min()) / (x.max() - x.min()) * w * ss - 0.5
    y = (y - y.min()) / (y.max() - y.min()) * h * ss - 0.5
    big = np.zeros((h * ss, w * ss), np.uint8)
    cv2.fillPoly(big, [np.round(np.stack([x, y], 1) * 16).astype(np.int32)], 255, cv2.LINE_8, shift=4)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def _premultiply(color: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, ...]:
    """Premultiplied [h, w, 4] sprite and its half-resolution copy (drawn when the object is small)."""
    full = np.concatenate([np.clip(color, 0, 255) * alpha[..., None], alpha[..., None]], -1).astype(
        np.float32
    )
    h, w = alpha.shape
    half = cv2.resize(full, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return full, half


def _object_appearance(rng: np.random.Generator, h: int, w: int):
    """Colour [h, w, 3] float32 and coverage [h, w] of a random textured object."""
    alpha = _shape_alpha(rng, SHAPES[int(rng.integers(len(SHAPES)))], h, w)
    pattern = _pattern(rng, TEXTURES[int(rng.integers(len(TEXTURES)))], h, w)
    c1, c2 = _random_color(rng), _random_color(rng)
    color = c1 + (c2 - c1) * pattern[..., None]
    # Soft shading gives a 3-D look and a lit / shadowed side.
    u, v = _coords(h, w)
    theta = rng.uniform(0, 2 * np.pi)
    color = color * (1 + rng.uniform(0, 0.25) * (u * np.cos(theta) + v * np.sin(theta)))[..., None]
    if rng.random() < 0.5:
        width = max(1, round(min(h, w) * rng.uniform(0.04, 0.1)))
        inner = cv2.erode(alpha, np.ones((3, 3), np.uint8), iterations=width)
        rim = np.clip(alpha - inner, 0, 1)[..., None]
        color = color * (1 - rim) + _random_color(rng) * 0.4 * rim
    return color, alpha


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """[h, w, 3] uint8 BGR cluttered background."""
    # The colour fields are smooth: mix them at quarter resolution and upsample (5x faster).
    qh, qw = h // 4, w // 4
    palette = np.stack([_random_color(rng) for _ in range(3)])
    a = sum(_smooth_noise(rng, qh, qw, c) * s for c, s in ((3, 1.0), (7, 0.5), (16, 0.3), (40, 0.15)))
    b = _smooth_noise(rng, qh, qw, 4)
    a, b = (np.clip(t * 0.35 + 0.5, 0, 1)[..., None] for t in (a, b))
    image = palette[0] * (1 - a) + palette[1] * a
    image = image * (1 - 0.5 * b) + palette[2] * 0.5 * b
    if rng.random() < 0.4:
        stripes = _pattern(rng, "stripes", qh, qw)[..., None]
        image = image * (1 - 0.25 * stripes) + _random_color(rng) * 0.25 * stripes
    image = cv2.resize(image.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    image = np.clip(image, 0, 255).astype(np.uint8)
    # Clutter: opaque blobs and boxes of random colour, some object-sized, so that edges and colour
    # contrast alone do not give the target away.
    for _ in range(int(rng.integers(6, 16))):
        color = tuple(float(c) for c in _random_color(rng))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        ax, ay = int(rng.integers(4, 40)), int(rng.integers(4, 40))
        if rng.random() < 0.5:
            cv2.ellipse(image, (cx, cy), (ax, ay), float(rng.uniform(0, 180)), 0, 360, color, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(image, (cx - ax, cy - ay), (cx + ax, cy + ay), color, -1, cv2.LINE_AA)
    image = cv2.GaussianBlur(image, (3, 3), 0)
    # A few static textured objects unlike the target: texture alone does not give it away either.
    for _ in range(int(rng.integers(1, 4))):
        ow, oh = (int(v) for v in rng.integers(12, 48, 2))
        color, alpha = _object_appearance(rng, oh, ow)
        x, y = int(rng.integers(0, w - ow)), int(rng.integers(0, h - oh))
        roi = image[y : y + oh, x : x + ow].astype(np.float32)
        a = alpha[..., None]
        image[y : y + oh, x : x + ow] = np.clip(roi * (1 - a) + color * a, 0, 255).astype(np.uint8)
    return image


# ---------------------------------------------------------------------------------------------------------
# Trajectories


def _size_trajectory(rng: np.random.Generator, t: int, lo: float, hi: float) -> np.ndarray:
    """[t] smooth size factors in [lo, hi]: a random sinusoid plus trend in log space."""
    a, b = math.log(lo), math.log(hi)
    phase = np.arange(t) / max(t - 1, 1)
    centre = rng.uniform(a, b)
    log_s = (
        centre
        + rng.uniform(-1, 1) * (b - a) * 0.5 * phase
        + rng.uniform(0, 0.5)
        * (b - a)
        * np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * phase + rng.uniform(0, 6.3))
    )
    return np.exp(np.clip(log_s, a, b))


def _walk(
    rng: np.random.Generator,
    half_sizes: np.ndarray,
    frame_wh: tuple[int, int],
    inside: bool,
    speed: float,
    jump_prob: float = 0.0,
    attract: float = 0.0,
    towards: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Centres [T, 2] of a damped random walk that bounces off the frame borders, and [T] jump flags.

    Args:
      half_sizes: [T, 2] half width / height per frame; ``inside`` keeps the whole object in the frame,
        otherwise only its centre.
      speed: std of the per-frame velocity change in pixels.
      jump_prob: per-frame probability of a sudden jump of 0.7-2 object sizes (fast motion).
      attract: pull of the velocity towards ``towards`` [T, 2] (distractors approach the target).
    """
    t = len(half_sizes)
    lo = half_sizes if inside else np.zeros_like(half_sizes)
    hi = np.array(frame_wh, np.float64) - lo
    start = rng.uniform(lo[0], hi[0])
    vel0 = rng.standard_normal(2) * speed * 2
    noise = rng.standard_normal((t, 2)) * speed
    jump_draw = rng.random(t)
    jump_dir = rng.uniform(0, 2 * np.pi, t)
    jump_len = rng.uniform(0.7, 2.0, t) * 2 * half_sizes.mean(1)
    jumps = (jump_draw < jump_prob) & (np.arange(t) > 0)
    kick = np.where(
        jumps[:, None], jump_len[:, None] * np.stack([np.cos(jump_dir), np.sin(jump_dir)], 1), 0.0
    )
    centres = np.empty((t, 2))
    # The two axes are independent: plain Python floats per axis are ~10x faster than small arrays.
    for k in range(2):
        pos, vel = float(start[k]), float(vel0[k])
        lo_k, hi_k, noise_k, kick_k = (
            lo[:, k].tolist(),
            hi[:, k].tolist(),
            noise[:, k].tolist(),
            kick[:, k].tolist(),
        )
        to_k = towards[:, k].tolist() if towards is not None else None
        for i in range(t):
            if i:
                vel = 0.9 * vel + noise_k[i]
                if to_k is not None:
                    vel += attract * (to_k[i] - pos)
                pos += vel + kick_k[i]
                # Reflect off the borders (twice covers a jump past both sides of a narrow range).
                for _ in range(2):
                    if pos < lo_k[i]:
                        pos, vel = 2 * lo_k[i] - pos, -vel
                    elif pos > hi_k[i]:
                        pos, vel = 2 * hi_k[i] - pos, -vel
                pos = min(max(pos, lo_k[i]), hi_k[i])
            centres[i, k] = pos
    return centres, jumps


def _boxes(centres: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """[T, 4] xywh from centres [T, 2] and sizes [T, 2]."""
    return np.concatenate([centres - sizes / 2, sizes], 1)


def _overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[T] bool: xywh boxes a [T, 4] and b [T, 4] intersect (empty boxes never do)."""
    ix = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    iy = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    return (ix > 0) & (iy > 0) & (a[:, 2] > 0) & (b[:, 2] > 0)


# ---------------------------------------------------------------------------------------------------------
# Scene


def _occluder(
    rng: np.random.Generator, side: float, target_sizes: np.ndarray, target_centres: np.ndarray
) -> _Layer:
    """A bar or blob that crosses the target, centred on it mid-way through a window of frames.

    ``side``: the target's base side; ``target_sizes`` / ``target_centres``: [T, 2] per frame.
    """
    t = len(target_centres)
    length = int(rng.integers(8, 21))
    start = int(rng.integers(1, max(2, t - length)))
    bar = rng.random() < 0.6
    along = rng.uniform(1.5, 3.0) if bar else rng.uniform(0.6, 1.1)
    across = rng.uniform(0.3, 0.6) if bar else rng.uniform(0.6, 1.1)
    vertical = rng.random() < 0.5
    size = side * (np.array([across, along]) if vertical else np.array([along, across]))
    sw, sh = (max(2, int(math.ceil(v))) for v in size)
    o_color, o_alpha = _object_appearance(rng, sh, sw)
    if bar:
        o_alpha = np.ones_like(o_alpha)
    direction = np.array([1.0, 0.0]) if vertical else np.array([0.0, 1.0])
    direction = direction * rng.choice([-1.0, 1.0])
    reach = (size + target_sizes.max(0)) / 2 + 4  # off the target at both ends of the window
    frames = np.arange(t)
    progress = np.clip((frames - start) / (length - 1), 0, 1)[:, None] * 2 - 1
    centres = target_centres + direction * reach * progress
    visible = (frames >= start) & (frames < start + length)
    boxes = _boxes(centres, np.where(visible[:, None], size[None], 0.0))
    return _Layer(_premultiply(o_color, o_alpha), boxes)


@functools.lru_cache(maxsize=16)
def build_scene(config: SyntheticConfig, video: int) -> Scene:
    """All of video ``video``: textures and every frame's boxes (a few ms; cached per process)."""
    rng = np.random.default_rng([config.seed, video])
    w, h = config.frame_size
    t = config.frames
    lo_s, hi_s = config.scale_range

    background = _background(rng, h + 2 * PAN, w + 2 * PAN)
    pan_phase = np.arange(t)[:, None] * rng.uniform(0.02, 0.1, 2) + rng.uniform(0, 2 * np.pi, 2)
    pan = np.round(PAN + PAN * rng.uniform(0, 0.9, 2) * np.sin(pan_phase)).astype(np.int64)
    gain_amp = rng.uniform(0.0, 0.15)
    gain = (1 + gain_amp * np.sin(np.arange(t) * rng.uniform(0.05, 0.2) + rng.uniform(0, 6.3))).astype(
        np.float32
    )

    # Target: base size and aspect, its sprite drawn at the largest size it reaches (drawing only ever
    # shrinks it, or enlarges it a little for distractors).
    side = rng.uniform(*config.object_size)
    aspect = math.exp(rng.uniform(-0.9, 0.9))
    base = np.array([side * math.sqrt(aspect), side / math.sqrt(aspect)])
    base = np.minimum(base, 0.45 * np.array([w, h]) / hi_s)
    sw, sh = (int(math.ceil(v * hi_s)) for v in base)
    color, alpha = _object_appearance(rng, sh, sw)
    target_sprites = _premultiply(color, alpha)
    target_sizes = base[None] * _size_trajectory(rng, t, lo_s, hi_s)[:, None]
    fast = rng.random() < config.fast_motion_prob
    speed = rng.uniform(0.3, 1.5)
    target_centres, jumps = _walk(
        rng, target_sizes / 2, (w, h), inside=True, speed=speed, jump_prob=0.15 if fast else 0.0
    )
    target_boxes = _boxes(target_centres, target_sizes)

    below, above, d_boxes = [], [], []
    for _ in range(int(rng.integers(config.distractors[0], config.distractors[1] + 1))):
        # A look-alike: the target's sprite with a per-channel colour gain and offset and its own size.
        gain_c = rng.normal(1.0, 0.08, 3).astype(np.float32)
        offset_c = rng.normal(0.0, 10.0, 3).astype(np.float32)
        sprites = _premultiply(color * gain_c + offset_c, alpha)
        factor = rng.uniform(0.8, 1.25) * np.exp(rng.uniform(-0.1, 0.1, 2))
        sizes = base[None] * factor[None] * _size_trajectory(rng, t, lo_s, hi_s)[:, None]
        attract = rng.uniform(0.002, 0.015) if rng.random() < 0.6 else 0.0
        speed = rng.uniform(0.3, 1.5)
        centres, _ = _walk(rng, sizes / 2, (w, h), False, speed, attract=attract, towards=target_centres)
        boxes = _boxes(centres, sizes)
        d_boxes.append(boxes)
        (above if rng.random() < 0.3 else below).append(_Layer(sprites, boxes))

    occluded = np.zeros(t, bool)
    if rng.random() < config.occlusion_prob:
        occluder = _occluder(rng, side, target_sizes, target_centres)
        above.append(occluder)
        occluded = _overlaps(occluder.boxes, target_boxes)

    distractor_boxes = np.stack(d_boxes, 1) if d_boxes else np.zeros((t, 0, 4))
    return Scene(
        background,
        pan,
        gain,
        tuple(below),
        _Layer(target_sprites, target_boxes),
        tuple(above),
        distractor_boxes,
        SceneInfo(occluded, jumps),
    )


def _draw(canvas: np.ndarray, layer: _Layer, frame: int, coverage_only: bool = False) -> None:
    """Composite ``layer`` at ``frame`` onto ``canvas`` [H, W, C] float32 in place (premultiplied "over").

    With ``coverage_only`` the canvas is [H, W, 1] and receives the layer's coverage (alpha).
    """
    x, y, bw, bh = layer.boxes[frame]
    if bw <= 0 or bh <= 0:
        return
    full = layer.sprites[0]
    # Shrinking by more than ~2 aliases the textures: use the half-resolution sprite then.
    sprite = layer.sprites[1] if bw < 0.55 * full.shape[1] and bh < 0.55 * full.shape[0] else full
    sh, sw = sprite.shape[:2]
    h, w = canvas.shape[:2]
    x0, y0 = max(0, math.floor(x) - 1), max(0, math.floor(y) - 1)
    x1, y1 = min(w, math.ceil(x + bw) + 1), min(h, math.ceil(y + bh) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    kx, ky = bw / sw, bh / sh
    # Sprite pixel centre u + 0.5 lands on x + (u + 0.5) kx; frame pixel i has its centre at i + 0.5.
    mapping = np.array([[kx, 0, x + 0.5 * kx - 0.5 - x0], [0, ky, y + 0.5 * ky - 0.5 - y0]], np.float64)
    patch = cv2.warpAffine(
        sprite, mapping, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    a = patch[..., 3:]
    roi = canvas[y0:y1, x0:x1]
    if coverage_only:
        roi *= 1 - a
        roi += a
    else:
        roi *= 1 - a
        roi += patch[..., :3]


def render(config: SyntheticConfig, video: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """One frame of one video.

    Args:
      config: dataset description.
      video: video index in [0, config.num_videos).
      frame: frame index in [0, config.frames).

    Returns:
      image: [H, W, 3] uint8 BGR.
      box: [4] float64 target (x, y, w, h), its full extent even when occluded.
    """
    if not (0 <= video < config.num_videos and 0 <= frame < config.frames):
        raise ValueError(
            f"synthetic: no frame {frame} of video {video} ({config.num_videos}x{config.frames})"
        )
    scene = build_scene(config, video)
    w, h = config.frame_size
    px, py = scene.pan[frame]
    canvas = scene.background[py : py + h, px : px + w].astype(np.float32)
    for layer in (*scene.below, scene.target, *scene.above):
        _draw(canvas, layer, frame)
    canvas *= scene.gain[frame]
    image = cv2.convertScaleAbs(canvas)  # rounds and saturates to uint8
    return image, scene.target.boxes[frame].copy()


def target_mask(config: SyntheticConfig, video: int, frame: int) -> np.ndarray:
    """[H, W] float32 coverage of the target alone (unoccluded) in ``frame``, in [0, 1]."""
    scene = build_scene(config, video)
    w, h = config.frame_size
    canvas = np.zeros((h, w, 1), np.float32)
    _draw(canvas, scene.target, frame, coverage_only=True)
    return canvas[..., 0]


def scene_info(config: SyntheticConfig, video: int) -> SceneInfo:
    """Which frames of ``video`` are occluded or reached by a jump."""
    return build_scene(config, video).info


def distractor_boxes(config: SyntheticConfig, video: int, frame: int) -> np.ndarray:
    """[N, 4] float64 xywh of the distractors in ``frame`` (N in ``config.distractors``)."""
    return build_scene(config, video).distractor_boxes[frame].copy()


def make_sequence(config: SyntheticConfig, video: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Every frame of ``video``, for evaluation.

    Returns:
      frames: T arrays [H, W, 3] uint8 BGR.
      gt: [T, 4] float64 target boxes (x, y, w, h).
    """
    frames, boxes = zip(*(render(config, video, f) for f in range(config.frames)), strict=True)
    return list(frames), np.stack(boxes)


class SyntheticSource:
    """The synthetic videos as a ``TrackSource``: one track per video, every frame usable.

    Holds nothing but its config (scenes come from the module cache), so it pickles cheaply for grain
    worker processes.
    """

    name = "synthetic"

    def __init__(self, config: SyntheticConfig | None = None):
        self.config = config if config is not None else SyntheticConfig()

    def __len__(self) -> int:
        return self.config.num_videos

    def track_length(self, track: int) -> int:
        return self.config.frames

    def track_key(self, track: int) -> str:
        return f"synthetic/{track:06d}"

    def render(self, video: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """[H, W, 3] uint8 BGR frame and [4] float64 xywh target box (``render``)."""
        return render(self.config, video, frame)

    def frame(self, track: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """The full frame of ``track`` and its xywh target box (the same as ``render``)."""
        return render(self.config, track, frame)

    def distractor_boxes(self, track: int, frame: int) -> np.ndarray:
        """[N, 4] float64 xywh distractor boxes."""
        return distractor_boxes(self.config, track, frame)

    def crop511(self, track: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """[511, 511, 3] uint8 BGR SiamFC crop around the target, and its pysot box (xyxy, centred at 255)."""
        image, (x, y, w, h) = render(self.config, track, frame)
        box_xyxy = (x, y, x + w, y + h)
        return crop_like_siamfc(image, box_xyxy), pysot_bbox(box_xyxy)
