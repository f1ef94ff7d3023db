"""Procedural renderer of the embedded synthetic pose dataset (COCO keypoint format).

Figure model
------------
Every person is a 2D articulated stick figure in COCO's 17-keypoint layout. It is built in a
body frame where the figure faces the camera (its left side at +x), is about 1.8 units tall and
y grows downwards, with the proportions of ``COCO_UPRIGHT_POSE``:

* the pelvis is the origin; the hips sit either side of it and the legs hang from them;
* the torso rises from the pelvis and leans by a small angle; the shoulders sit either side of
  its top and the arms hang from them; shoulder and hip half widths are scaled by a *width*
  factor (1 = frontal, smaller = turned sideways);
* an arm or a leg is two segments whose directions are angles from "straight down", positive
  meaning away from the body's midline, so one set of numbers describes either side; poses come
  from presets (standing, walking, one arm raised, both arms up, star, crouching, hands on hips,
  random) with per-side jitter, so many poses are asymmetric;
* the head is a disc above the neck carrying two eyes and a nose (shifted sideways by a head
  yaw) and two ears as small bumps on its rim; these five points are the face keypoints.

The figure is then rotated (mostly upright, sometimes tilted, lying or upside down), scaled to a
sampled height relative to the image and placed mostly inside the image.

Rendering: the torso is a filled polygon, limbs are thick lines with rounded, slightly darker
joints (thickness proportional to the figure's size), the head a filled circle. Left limbs and
the left ear are warm coloured, right ones cool, with per-figure hue and brightness jitter, so a
small CNN can tell left from right. Keypoints are the joint centres and the drawn face markers.

Visibility: figures are drawn far to near (smaller figures are farther) into the RGB image and,
with the same shapes, into an instance-id map. A keypoint inside the image is visible (v=2)
when the id map there still shows its own figure, else labelled but occluded (v=1); a keypoint
outside the image is unlabelled (v=0). A crowd is a cluster of small figures behind everybody,
annotated by a single ``iscrowd`` box.
"""

from __future__ import annotations

import colorsys
import dataclasses
import hashlib
import json
import math
import os
import pathlib
import shutil
import tempfile
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from openfields.datasets.coco_person import COCO_KEYPOINTS, COCO_PERSON_SKELETON

__all__ = ['SyntheticConfig', 'dataset_key', 'render_background', 'render_image', 'write_dataset']

# Bump whenever the rendered output changes so that cached sets get a new key.
RENDER_VERSION = 1

N_KEYPOINTS = len(COCO_KEYPOINTS)
(NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR, LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW,
 RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST, LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE,
 RIGHT_ANKLE) = range(N_KEYPOINTS)

# Body-frame proportions in units of a 1.8 unit tall person (see COCO_UPRIGHT_POSE).
BODY_HEIGHT = 1.8
TORSO = 0.54          # pelvis to the middle of the shoulders
SHOULDER_HALF = 0.2
HIP_HALF = 0.12
UPPER_ARM = 0.30
FOREARM = 0.28
THIGH = 0.42
SHIN = 0.42
NECK = 0.24           # middle of the shoulders to the centre of the head
HEAD_RADIUS = 0.11
EYE_OFFSET = (0.045, -0.015)
NOSE_OFFSET = 0.03
EAR_OFFSET = 0.105

# Limb thickness and marker sizes, in body units.
ARM_WIDTH = 0.075
LEG_WIDTH = 0.09
TORSO_WIDTH = 0.16
JOINT_FACTOR = 0.62   # joint disc radius relative to the limb width
EAR_RADIUS = 0.035
EYE_RADIUS = 0.02
NOSE_RADIUS = 0.024

# Instance ids in the id map of things that are not annotated people.
CROWD_ID = 1 << 20
OCCLUDER_ID = CROWD_ID + 1

# Pose presets and how often each is drawn.
POSE_PRESETS = ('stand', 'walk', 'raise_arm', 'arms_up', 'star', 'crouch', 'akimbo', 'random')
POSE_WEIGHTS = (0.25, 0.14, 0.15, 0.06, 0.08, 0.10, 0.05, 0.17)

# Base hues (degrees) of the limbs: left warm (red arm, orange leg), right cool (blue arm,
# cyan leg). Greens and purples are left for backgrounds and distractors.
LIMB_HUES = {'left_arm': 5.0, 'left_leg': 35.0, 'right_arm': 225.0, 'right_leg': 185.0}

SKIN_TONES = ((255, 220, 185), (235, 190, 150), (200, 150, 110), (160, 110, 75), (110, 75, 50))


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of one synthetic set; heights are fractions of the image height."""

    seed: int = 0
    n_images: int = 64
    width: int = 193
    height: int = 193
    min_people: int = 1
    max_people: int = 4
    min_height_fraction: float = 0.35
    max_height_fraction: float = 0.9
    crowd_probability: float = 0.1
    occlusion_probability: float = 0.3
    inside_probability: float = 0.8  # the rest may be cut off by the image border
    max_rotation: float | None = None  # degrees: uniform in +-max_rotation; None: the mix of _sample_rotation

    def __post_init__(self):
        if self.n_images < 0 or self.width < 16 or self.height < 16:
            raise ValueError(f'bad image count or size in {self}')
        if not 0 <= self.min_people <= self.max_people:
            raise ValueError(f'need 0 <= min_people <= max_people in {self}')
        if not 0 < self.min_height_fraction <= self.max_height_fraction:
            raise ValueError(f'need 0 < min_height_fraction <= max_height_fraction in {self}')
        for name in ('crowd_probability', 'occlusion_probability', 'inside_probability'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'{name} must be within [0, 1] in {self}')
        if self.max_rotation is not None and not 0.0 <= self.max_rotation <= 180.0:
            raise ValueError(f'max_rotation must be within [0, 180] degrees in {self}')


@dataclass
class _Figure:
    """One posed figure in image coordinates, ready to draw."""

    keypoints: np.ndarray    # (17, 2) pixels
    head: np.ndarray         # (2,) centre of the head, pixels
    scale: float             # pixels per body unit
    palette: dict
    extent: np.ndarray       # (4,) x0, y0, x1, y1 of everything drawn, pixels


def dataset_key(config: SyntheticConfig) -> str:
    """A short stable hash of the config (and renderer version) to name cache folders."""
    payload = json.dumps({'version': RENDER_VERSION, **dataclasses.asdict(config)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------- poses ---

def _direction(angle: float, side: float) -> np.ndarray:
    """Unit vector `angle` degrees away from straight down, towards `side` (+1 left, -1 right)."""
    a = math.radians(angle)
    return np.array([side * math.sin(a), math.cos(a)])


def _rotation(angle: float) -> np.ndarray:
    """2x2 matrix rotating by `angle` degrees."""
    a = math.radians(angle)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def _sample_limbs(rng: np.random.Generator, preset: str) -> dict:
    """Arm and leg angles (degrees from straight down, outwards positive) of one preset.

    Returns for each side ('left', 'right') a tuple
    (upper arm, forearm, thigh, shin, thigh length factor, shin length factor).
    """
    u = rng.uniform
    sides = {}
    raised = 'left' if rng.random() < 0.5 else 'right'
    swing = u(15, 35)
    for side in ('left', 'right'):
        arm, bend = u(0, 30), u(-10, 35)           # relaxed arms
        thigh, knee = u(0, 12), u(-8, 8)           # straight legs
        thigh_len, shin_len = 1.0, 1.0
        if preset == 'walk':
            # seen from the side: legs apart, arms swinging across the midline
            arm, bend = -u(0.5, 1.0) * swing, u(0, 40)
            thigh = swing * u(0.6, 1.2)
            knee = -u(0, 30) if side == raised else u(-5, 5)
        elif preset == 'raise_arm' and side == raised:
            arm, bend = u(110, 175), u(-35, 35)
        elif preset == 'arms_up':
            arm, bend = u(120, 175), u(-30, 30)
        elif preset == 'star':
            arm, bend = u(60, 120), u(-20, 20)
            thigh = u(18, 40)
        elif preset == 'crouch':
            # the thighs point at the camera, so they look short
            arm, bend = u(10, 60), u(30, 100)
            thigh, thigh_len = u(25, 65), u(0.35, 0.7)
            knee = -thigh + u(-20, 10)
        elif preset == 'akimbo':
            arm, bend = u(30, 55), -u(95, 130)
        elif preset == 'random':
            arm, bend = u(-40, 180), u(-120, 150)
            thigh, knee = u(-20, 70), u(-90, 90)
            thigh_len, shin_len = u(0.6, 1.0), u(0.7, 1.0)
        jitter = rng.normal(0.0, 5.0, size=2)
        sides[side] = (arm + jitter[0], arm + bend, thigh + jitter[1], thigh + knee,
                       thigh_len, shin_len)
    return sides


def _sample_body(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (17, 2) and head centre of a random pose in the body frame (pelvis at 0)."""
    preset = POSE_PRESETS[rng.choice(len(POSE_PRESETS), p=POSE_WEIGHTS)]
    limbs = _sample_limbs(rng, preset)
    width = rng.uniform(0.3, 0.6) if preset == 'walk' else rng.uniform(0.6, 1.0)
    lean = rng.uniform(-30, 30) if preset == 'random' else rng.uniform(-12, 12)
    head_tilt = rng.uniform(-20, 20)
    head_yaw = rng.uniform(-1, 1) * (1.0 - width)  # turned bodies turn their heads too

    kps = np.zeros((N_KEYPOINTS, 2))
    upper = _rotation(lean)  # the upper body leans about the pelvis
    for side, sign in (('left', 1.0), ('right', -1.0)):
        arm, forearm, thigh, shin, thigh_len, shin_len = limbs[side]
        hip, knee, ankle = (LEFT_HIP, LEFT_KNEE, LEFT_ANKLE) if sign > 0 else (
            RIGHT_HIP, RIGHT_KNEE, RIGHT_ANKLE)
        kps[hip] = (sign * HIP_HALF * width, 0.0)
        kps[knee] = kps[hip] + THIGH * thigh_len * _direction(thigh, sign)
        kps[ankle] = kps[knee] + SHIN * shin_len * _direction(shin, sign)

        shoulder, elbow, wrist = (LEFT_SHOULDER, LEFT_ELBOW, LEFT_WRIST) if sign > 0 else (
            RIGHT_SHOULDER, RIGHT_ELBOW, RIGHT_WRIST)
        s = np.array([sign * SHOULDER_HALF * width, -TORSO])
        e = s + UPPER_ARM * _direction(arm, sign)
        w = e + FOREARM * _direction(forearm, sign)
        kps[shoulder], kps[elbow], kps[wrist] = s @ upper.T, e @ upper.T, w @ upper.T

    neck_turn = upper @ _rotation(head_tilt)
    head = (np.array([0.0, -TORSO]) @ upper.T) + np.array([0.0, -NECK]) @ neck_turn.T
    ear_half = EAR_OFFSET * (0.7 + 0.3 * width)
    face = np.array([
        [head_yaw * 0.5 * HEAD_RADIUS, NOSE_OFFSET],
        [EYE_OFFSET[0] * (0.6 + 0.4 * width) + head_yaw * 0.5 * HEAD_RADIUS, EYE_OFFSET[1]],
        [-EYE_OFFSET[0] * (0.6 + 0.4 * width) + head_yaw * 0.5 * HEAD_RADIUS, EYE_OFFSET[1]],
        [ear_half, 0.0],
        [-ear_half, 0.0],
    ])
    kps[NOSE:RIGHT_EAR + 1] = head + face @ neck_turn.T
    return kps, head


def _sample_rotation(rng: np.random.Generator) -> float:
    """Global rotation in degrees: mostly upright, sometimes tilted, lying or upside down."""
    r = rng.random()
    sign = 1.0 if rng.random() < 0.5 else -1.0
    if r < 0.7:
        return float(np.clip(rng.normal(0.0, 7.0), -20, 20))
    if r < 0.9:
        return sign * rng.uniform(15, 60)
    return sign * rng.uniform(60, 180)


# -------------------------------------------------------------------------------- colours ---

def _hsv(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    """An RGB tuple from a hue in degrees and saturation, value in [0, 1]."""
    r, g, b = colorsys.hsv_to_rgb((hue % 360.0) / 360.0, saturation, value)
    return int(r * 255), int(g * 255), int(b * 255)


def _darker(colour: tuple[int, int, int], factor: float = 0.7) -> tuple[int, int, int]:
    """The colour scaled towards black."""
    return tuple(int(c * factor) for c in colour)


def _sample_palette(rng: np.random.Generator) -> dict:
    """Per-figure colours: warm left limbs, cool right limbs, neutral torso, skin head."""
    hue_shift = rng.uniform(-12, 12)
    palette = {}
    for key, hue in LIMB_HUES.items():
        colour = _hsv(hue + hue_shift + rng.uniform(-4, 4), rng.uniform(0.6, 0.95),
                      rng.uniform(0.6, 1.0))
        palette[key] = colour
        palette[key + '_joint'] = _darker(colour)
    # clothing: any hue but desaturated, so it never reads as a left or right limb
    palette['torso'] = _hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.3), rng.uniform(0.25, 0.9))
    skin = np.array(SKIN_TONES[rng.integers(len(SKIN_TONES))], dtype=float)
    palette['skin'] = tuple(int(c) for c in np.clip(skin * rng.uniform(0.85, 1.1), 0, 255))
    palette['left_ear'] = palette['left_arm']
    palette['right_ear'] = palette['right_arm']
    palette['left_eye'] = (70, 20, 10)
    palette['right_eye'] = (10, 20, 70)
    palette['nose'] = (150, 40, 40)
    return palette


# ------------------------------------------------------------------------------- figures ---

def _pose_figure(rng: np.random.Generator, height_px: float, centre, rotation: float | None = None,
                 max_rotation: float | None = None):
    """Samples a pose and returns it posed around `centre` (pixels) at the given height.

    `centre` is a callable mapping the figure's extent relative to its origin
    (x0, y0, x1, y1) to the pixel position of that origin.
    """
    body, head = _sample_body(rng)
    if rotation is not None:
        angle = rotation
    else:
        angle = _sample_rotation(rng) if max_rotation is None else rng.uniform(-max_rotation, max_rotation)
    scale = height_px / BODY_HEIGHT
    rot = _rotation(angle) * scale
    body, head = body @ rot.T, head @ rot.T
    margin = max(HEAD_RADIUS, LEG_WIDTH * (0.5 + JOINT_FACTOR)) * scale
    points = np.vstack([body, head[None]])
    extent = np.concatenate([points.min(axis=0) - margin, points.max(axis=0) + margin])
    origin = np.asarray(centre(extent), dtype=float)
    return _Figure(keypoints=body + origin, head=head + origin, scale=scale,
                   palette=_sample_palette(rng), extent=extent + np.tile(origin, 2))


def _placement(rng: np.random.Generator, config: SyntheticConfig):
    """A callable placing a figure's extent mostly inside the image, sometimes cut off."""
    inside = rng.random() < config.inside_probability
    u = rng.uniform(size=2)

    def centre(extent):
        size = np.array([config.width - 1, config.height - 1], dtype=float)
        low, high = -extent[:2], size - extent[2:]
        if not inside:
            # the extent's centre anywhere in the image: parts may leave the image
            mid = (extent[:2] + extent[2:]) / 2.0
            low, high = -mid, size - mid
        fits = high >= low
        return np.where(fits, low + u * (high - low), (low + high) / 2.0)
    return centre


def _figure_shapes(fig: _Figure) -> list:
    """Drawing primitives of a figure, back to front: (kind, geometry, palette key)."""
    k, s = fig.keypoints, fig.scale
    arm_w = max(2, int(round(ARM_WIDTH * s)))
    leg_w = max(2, int(round(LEG_WIDTH * s)))
    neck = (k[LEFT_SHOULDER] + k[RIGHT_SHOULDER]) / 2.0
    pelvis = (k[LEFT_HIP] + k[RIGHT_HIP]) / 2.0
    shapes = [
        ('polygon', [k[LEFT_SHOULDER], k[RIGHT_SHOULDER], k[RIGHT_HIP], k[LEFT_HIP]], 'torso'),
        ('line', (neck, pelvis, max(2, int(round(TORSO_WIDTH * s)))), 'torso'),
    ]
    limbs = (('left_leg', (LEFT_HIP, LEFT_KNEE, LEFT_ANKLE), leg_w),
             ('right_leg', (RIGHT_HIP, RIGHT_KNEE, RIGHT_ANKLE), leg_w),
             ('left_arm', (LEFT_SHOULDER, LEFT_ELBOW, LEFT_WRIST), arm_w),
             ('right_arm', (RIGHT_SHOULDER, RIGHT_ELBOW, RIGHT_WRIST), arm_w))
    for key, (a, b, c), width in limbs:
        shapes.append(('line', (k[a], k[b], width), key))
        shapes.append(('line', (k[b], k[c], width), key))
        for joint in (a, b, c):
            shapes.append(('disc', (k[joint], JOINT_FACTOR * width), key + '_joint'))
    shapes += [
        ('line', (neck, fig.head, arm_w), 'skin'),
        ('disc', (k[LEFT_EAR], max(1.0, EAR_RADIUS * s)), 'left_ear'),
        ('disc', (k[RIGHT_EAR], max(1.0, EAR_RADIUS * s)), 'right_ear'),
        ('disc', (fig.head, HEAD_RADIUS * s), 'skin'),
        ('disc', (k[LEFT_EYE], max(0.8, EYE_RADIUS * s)), 'left_eye'),
        ('disc', (k[RIGHT_EYE], max(0.8, EYE_RADIUS * s)), 'right_eye'),
        ('disc', (k[NOSE], max(0.8, NOSE_RADIUS * s)), 'nose'),
    ]
    return shapes


def _paint(draw: ImageDraw.ImageDraw, shapes: list, colour_of) -> None:
    """Draws primitives with the fill `colour_of(palette key)`."""
    for kind, geometry, key in shapes:
        fill = colour_of(key)
        if kind == 'line':
            p0, p1, width = geometry
            draw.line([tuple(p0.tolist()), tuple(p1.tolist())], fill=fill, width=width)
        elif kind == 'disc':
            (x, y), r = geometry
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
        else:
            draw.polygon([tuple(p.tolist()) for p in geometry], fill=fill)


def _inside(xy: np.ndarray, config: SyntheticConfig) -> np.ndarray:
    """Boolean mask of points within the image's pixel centres."""
    return ((xy[:, 0] >= 0) & (xy[:, 0] <= config.width - 1)
            & (xy[:, 1] >= 0) & (xy[:, 1] <= config.height - 1))


# ----------------------------------------------------------------------------- background ---

def render_background(rng: np.random.Generator, config: SyntheticConfig) -> Image.Image:
    """A smooth random gradient with low-amplitude noise and a few distractor shapes.

    `render_image` calls this first with the same generator, so the same seed reproduces the
    background of an image without its figures.
    """
    w, h = config.width, config.height
    colours = np.array([_hsv(rng.uniform(0, 360), rng.uniform(0.05, 0.6), rng.uniform(0.3, 0.95))
                        for _ in range(2)], dtype=np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    t = xs * math.cos(angle) / w + ys * math.sin(angle) / h
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    pixels = colours[0] + t[..., None] * (colours[1] - colours[0])
    image = Image.fromarray(pixels.astype(np.uint8), 'RGB')

    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(1, 5)):
        sw, sh = rng.uniform(0.06, 0.35, size=2) * (w, h)
        x, y = rng.uniform(-0.1, 1.0) * w, rng.uniform(-0.1, 1.0) * h
        fill = _hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.8), rng.uniform(0.2, 1.0))
        box = [x, y, x + sw, y + sh]
        if rng.random() < 0.5:
            draw.rectangle(box, fill=fill)
        else:
            draw.ellipse(box, fill=fill)

    noise = rng.normal(0.0, rng.uniform(2.0, 6.0), size=(h, w, 3))
    return Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8), 'RGB')


# ---------------------------------------------------------------------------------- image ---

def _sample_people(rng: np.random.Generator, config: SyntheticConfig) -> list[_Figure]:
    """The people of one image, far to near, without those entirely outside the image."""
    n = rng.integers(config.min_people, config.max_people + 1)
    people = []
    for _ in range(n):
        fraction = math.exp(rng.uniform(math.log(config.min_height_fraction),
                                        math.log(config.max_height_fraction)))
        fig = _pose_figure(rng, fraction * config.height, _placement(rng, config),
                           max_rotation=config.max_rotation)
        if _inside(fig.keypoints, config).any():
            people.append(fig)
    # smaller figures are farther away: a depth cue consistent with the occlusions
    people.sort(key=lambda f: f.scale)
    return people


def _sample_crowd(rng: np.random.Generator, config: SyntheticConfig) -> list[_Figure]:
    """A cluster of small upright figures in one region of the image, back row first."""
    w, h = config.width, config.height
    rw, rh = rng.uniform(0.3, 0.55) * w, rng.uniform(0.15, 0.3) * h
    x0, y0 = rng.uniform(0, w - rw), rng.uniform(0, h - rh)
    crowd = []
    for _ in range(rng.integers(5, 11)):
        height_px = rng.uniform(0.1, 0.2) * h
        u = rng.uniform(size=2)

        def centre(extent, u=u):
            # the figure's extent inside the region
            low = np.array([x0, y0]) - extent[:2]
            high = np.array([x0 + rw, y0 + rh]) - extent[2:]
            return np.where(high >= low, low + u * (high - low), (low + high) / 2.0)
        crowd.append(_pose_figure(rng, height_px, centre, rotation=rng.normal(0.0, 5.0)))
    crowd.sort(key=lambda f: f.extent[3])
    return crowd


def _add_occluder(rng: np.random.Generator, fig: _Figure, config: SyntheticConfig):
    """A plain rectangle over part of a figure: (box, colour)."""
    inside = np.flatnonzero(_inside(fig.keypoints, config))
    anchor = fig.keypoints[rng.choice(inside)]
    size = (fig.extent[2:] - fig.extent[:2]) * rng.uniform(0.2, 0.5, size=2)
    size = np.maximum(size, 0.08 * np.array([config.width, config.height]))
    corner = anchor - size * rng.uniform(0.2, 0.8, size=2)
    colour = _hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.7), rng.uniform(0.2, 0.95))
    return [*corner.tolist(), *(corner + size).tolist()], colour


def _bbox(extent: np.ndarray, config: SyntheticConfig) -> list[float]:
    """Integer x, y, w, h of an extent clipped to the image, rounded outwards."""
    x0, y0 = max(0, math.floor(extent[0])), max(0, math.floor(extent[1]))
    x1, y1 = min(config.width, math.ceil(extent[2])), min(config.height, math.ceil(extent[3]))
    return [x0, y0, max(0, x1 - x0), max(0, y1 - y0)]


def _person_annotation(fig, ids, ident, area, config, image_id) -> dict:
    """COCO annotation of one drawn figure; `ids` is the final instance-id map."""
    keypoints = []
    for x, y in np.round(fig.keypoints, 2).tolist():
        if 0 <= x <= config.width - 1 and 0 <= y <= config.height - 1:
            v = 2 if ids[int(round(y)), int(round(x))] == ident else 1
            keypoints += [x, y, v]
        else:
            keypoints += [0, 0, 0]
    return {
        'image_id': image_id, 'category_id': 1, 'iscrowd': 0,
        'keypoints': keypoints, 'num_keypoints': sum(v > 0 for v in keypoints[2::3]),
        'bbox': _bbox(fig.extent, config), 'area': float(area),
    }


def _crowd_annotation(crowd, config, image_id) -> dict:
    """A single COCO crowd annotation covering the cluster."""
    extent = np.concatenate([np.min([f.extent[:2] for f in crowd], axis=0),
                             np.max([f.extent[2:] for f in crowd], axis=0)])
    bbox = _bbox(extent, config)
    return {
        'image_id': image_id, 'category_id': 1, 'iscrowd': 1,
        'keypoints': [0] * (3 * N_KEYPOINTS), 'num_keypoints': 0,
        'bbox': bbox, 'area': float(bbox[2] * bbox[3]),
    }


def render_image(rng: np.random.Generator, config: SyntheticConfig, image_id: int):
    """Renders one image; returns the RGB image and its COCO annotation dicts (without `id`).

    Person `area` is the figure's silhouette in the image in pixels, including occluded parts.
    """
    image = render_background(rng, config)
    ids = Image.new('I', image.size, 0)
    draw, draw_ids = ImageDraw.Draw(image), ImageDraw.Draw(ids)

    crowd = _sample_crowd(rng, config) if rng.random() < config.crowd_probability else []
    people = _sample_people(rng, config)
    occluder = None
    if people and rng.random() < config.occlusion_probability:
        occluder = _add_occluder(rng, people[rng.integers(len(people))], config)

    for fig in crowd:
        shapes = _figure_shapes(fig)
        _paint(draw, shapes, fig.palette.__getitem__)
        _paint(draw_ids, shapes, lambda _key: CROWD_ID)
    areas = []
    for ident, fig in enumerate(people, start=1):
        shapes = _figure_shapes(fig)
        _paint(draw, shapes, fig.palette.__getitem__)
        _paint(draw_ids, shapes, lambda _key, i=ident: i)
        # ids are unique, so right after drawing, the figure owns exactly its silhouette
        areas.append(np.count_nonzero(np.asarray(ids) == ident))
    if occluder is not None:
        box, colour = occluder
        draw.rectangle(box, fill=colour)
        draw_ids.rectangle(box, fill=OCCLUDER_ID)

    final_ids = np.asarray(ids)
    annotations = [_person_annotation(fig, final_ids, ident, area, config, image_id)
                   for ident, (fig, area) in enumerate(zip(people, areas), start=1)]
    if crowd:
        annotations.append(_crowd_annotation(crowd, config, image_id))
    return image, annotations


# -------------------------------------------------------------------------------- dataset ---

def _split_rngs(config: SyntheticConfig, split: str) -> list[np.random.Generator]:
    """One independent generator per image, seeded from (seed, split)."""
    root = np.random.SeedSequence([config.seed, zlib.crc32(split.encode())])
    return [np.random.default_rng(child) for child in root.spawn(config.n_images)]


def _render_into(folder: pathlib.Path, config: SyntheticConfig, split: str) -> None:
    """Renders the whole set into `folder` (images/ and annotations.json)."""
    (folder / 'images').mkdir(parents=True)
    images, annotations = [], []
    for image_id, rng in enumerate(_split_rngs(config, split), start=1):
        image, anns = render_image(rng, config, image_id)
        file_name = f'{image_id:06d}.png'
        image.save(folder / 'images' / file_name, format='PNG')
        images.append({'id': image_id, 'file_name': file_name,
                       'width': config.width, 'height': config.height})
        for ann in anns:
            annotations.append({'id': len(annotations) + 1, **ann})
    dataset = {
        'info': {'description': f'openfields synthetic poses, split {split}',
                 'version': str(RENDER_VERSION), 'config': dataclasses.asdict(config)},
        'images': images,
        'annotations': annotations,
        'categories': [{
            'id': 1, 'name': 'person', 'supercategory': 'person',
            'keypoints': list(COCO_KEYPOINTS),
            'skeleton': [list(pair) for pair in COCO_PERSON_SKELETON],
        }],
    }
    (folder / 'annotations.json').write_text(json.dumps(dataset, separators=(',', ':')))


def write_dataset(root: pathlib.Path, config: SyntheticConfig, split: str) -> pathlib.Path:
    """Writes `root/<split>/{images/*.png, annotations.json}`; returns the annotations path.

    An existing set is reused untouched. Otherwise the set is rendered into a temporary sibling
    folder that is renamed into place, so readers never see a partial set; when another process
    won the race, its set is kept and this one discarded.
    """
    root = pathlib.Path(root)
    target = root / split
    annotations = target / 'annotations.json'
    if annotations.exists():
        return annotations
    if target.exists():
        raise FileExistsError(f'{target} exists but holds no annotations.json; remove it')
    root.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'.{split}.', suffix='.tmp', dir=root))
    try:
        _render_into(tmp / 'set', config, split)
        try:
            os.rename(tmp / 'set', target)
        except OSError:
            # a concurrent writer renamed its complete set first: keep that one
            if not annotations.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return annotations
