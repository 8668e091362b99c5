"""Synthetic Arnis samples: 3D stick figures holding a rigid stick, rendered and labelled.

The generator builds subjects of varied proportions (height, limb ratios; some left-handed), each
holding a rigid stick of fixed real length (:data:`STICK_LENGTH`, 71 cm, about 2.5-3 forearm
lengths). A pose is a small vector of stance parameters (foot placement, pelvis height, torso
lean/twist, weapon-hand target, stick direction, ...) turned into 19 3D keypoints by two-bone
inverse kinematics, so bone and stick lengths are exact whatever the noise. A scaled orthographic
camera (random yaw, pitch, roll, scale, translation) projects it to 2D; OpenCV renders it (thick
limbs, a thin dark-brown stick drawn on top so an image line detector can find it).

There are 12 stances = 4 footwork families (:data:`FAMILIES`: forward, back, horse, cat, told
apart by the legs) x 3 weapon chambers (:data:`CHAMBERS`: high, middle, low, told apart by the
weapon arm and stick direction), named ``<family>_<chamber>`` (``forward_high``).

Labels carry realistic stick errors at known rates (:data:`ERROR_RATES`, about 30 % of images, an
exact quota shuffled over the set), plus Gaussian jitter of :data:`LABEL_JITTER_PX` on every point;
the clean, jitter-free truth and the error kind are written beside them in ``truth.csv``.

Library use::

    from toolkit import synth
    root = synth.generate(Path("out/arnis"), per_class=3, subjects=8, videos=4, seed=0)
    truth = synth.load_truth(root)                  # DataFrame, one row per image / video frame
    kp = synth.truth_array(truth)                   # (N, 19, 3) clean keypoints in pixels
    ds = toolkit.io.read(root / "data.yaml", labels=root / "labels.csv").dataset
    clean, kinds = synth.truth_keypoints(ds, root)  # aligned to ds rows: (N, 19, 3), (N,)

API:

* :func:`generate` ``(out, per_class=3, subjects=8, videos=4, frames_per_video=120, seed=0,
  image_size=320, randomise=False) -> Path``: write a sample set into ``out`` (created; existing
  files in it are overwritten). Deterministic given the arguments. ``randomise=True`` is the
  domain-randomised mode below (``toolkit samples --randomise``).
* :func:`load_truth` ``(sample_root) -> DataFrame``: ``truth.csv``; :func:`truth_array` turns it
  into ``(N, 19, 3)``.
* :func:`truth_keypoints` ``(ds, sample_root, strict=True) -> (keypoints, error_kind)``: the clean
  ``(N, 19, 3)`` truth (NaN x/y where missing, as in :class:`~toolkit.dataset.Dataset`) and the
  ``(N,)`` error kinds, aligned to the annotation rows of a dataset imported from the samples.
  Images match on ``file_name`` (relative to ``images/``); video frames on the virtual
  ``<stem>/<frame_index:06d>.jpg`` (or on the video's stem + ``frame_index``).
* :func:`truth_index` ``(ds, sample_root, strict=True) -> (N,)``: the ``truth.csv`` row of each
  annotation row, to read any other truth column per annotation (``error_magnitude``,
  ``stick_ratio``, ``foreshortened``, ``body_noise``, ...).
* Lower level, for tests and experiments: :func:`make_subjects`, :func:`stance_params`,
  :func:`pose_3d` (3D keypoints), :func:`sample_image` (a :class:`Scene`: 3D pose, camera, clean
  and labelled 2D points), :func:`apply_error`, :func:`render`, :func:`taxonomy`; for the
  randomised mode :func:`random_style`, :func:`random_background`, :func:`random_colours` and
  :func:`detector_noise`.

Layout written (``samples/arnis`` is such a set)::

    data.yaml                  ultralytics pose dataset (kpt_shape [19, 3], flip_idx, kpt_names)
    taxonomy.json              12 stances with family and chamber (schemas/taxonomy.schema.json)
    labels.csv                 file,stance,subject  (file relative to images/)
    images/<stance>/<subject>_<nnn>.jpg
    labels/<stance>/<subject>_<nnn>.txt       19 kpts, flags written as 2.000000, errors injected
    videos/<stem>.mp4                          <stem> = <subject>_drill, 15 fps, mp4v
    videos/<stem>_labels/<stem>_<frame>.txt    ultralytics save_txt style, frames from 1, conf
    videos/<stem>_stances.csv                  file,stance,subject; file = <stem>/<frame:06d>.jpg
    truth.csv                  file_name, video, frame_index, stance, subject, handedness,
                               error_kind, foreshortened, x0, y0, v0, ..., x18, y18, v18
                               [, error_magnitude, randomised, body_noise, stick_ratio]
                               (the last four only in randomised mode; :func:`load_truth`
                               adds them to any set: NaN, 0, NaN, NaN)

``error_kind`` is one of :data:`ERROR_KINDS` (``none`` for clean labels); video frames with no
detection (no label file) have ``no_detection``. ``foreshortened`` is 1 when the clean projected
stick is shorter than :data:`FORESHORTENED_RATIO` of its length parallel to the image plane (the
stick points toward or away from the camera: legitimately short, not an error).

Error kinds (images), applied to the labelled stick only:

* ``too_short`` / ``too_long``: tip moved along the stick to 0.35-0.65 / 1.4-1.9 of its length;
* ``wrong_angle``: tip rotated about the grip by 30-70 degrees;
* ``grip_off``: grip moved 0.6-1.2 forearm lengths away from the hand;
* ``swap``: grip and tip exchanged;
* ``tip_missing``: tip written as ``0 0 0``.

Videos: each clip is one subject moving smoothly through 3-4 stances (interpolated stance
parameters, fixed camera). Its errors persist: drift episodes of 5-20 frames (``wrong_angle``,
``too_short``, ``too_long`` or ``grip_off`` whose size drifts gradually, always past the kind's
threshold) and isolated one-frame spikes (``swap``, ``tip_missing``, ``wrong_angle``,
``too_long``); a few frames have no detection. Label confidences drop in error frames, but not to
zero, as a real detector's do.

Domain-randomised mode (``generate(..., randomise=True)``, ``toolkit samples --randomise``), so
that QA methods cannot fit this one renderer. Every image (every clip, in video) draws from its
own random stream:

* background (:func:`random_background`): a two-colour gradient, vertical or diagonal, colours
  from the full range; noise at three scales (blobs, mottling, texture), sometimes stripes;
  3-17 clutter shapes: filled or outlined rectangles and circles, and lines of random colour and
  thickness, about a third of them dark and thin like a stick, a quarter light;
* clothing, shoes and skin from the full range (:func:`random_colours`; dark clothing too, so
  the stick is not always the darkest thing);
* the stick (:func:`random_style`): colour from :data:`STICK_COLOURS` (dark wood, light wood,
  metallic grey, black) with N(0, 12) jitter per channel, 1-10 px thick in the written image
  (:data:`RANDOM_STICK_PX`, whatever the image size); drawn in depth order in four pieces, so
  the body hides the parts behind it, and the weapon fist is drawn over its grip end;
* sensor grain (sigma 1-9 grey levels), Gaussian blur (sigma 0-2 px) and, for stills, JPEG
  quality 40-95;
* image size from :data:`RANDOM_IMAGE_SIZES` (square; ``image_size`` is ignored), videos only
  up to :data:`RANDOM_VIDEO_MAX_SIZE`; camera yaw 0-80 deg to either side, pitch -10..35 deg,
  roll N(0, 4 deg); framing fill 0.4-0.9; subjects 1.45-1.95 m with every proportion within
  +-12 % (:data:`RANDOM_PROPORTION_SPREAD`), the stick 2.3-3.4 forearm lengths;
* detector-like noise on the 17 body points of the labels (:func:`detector_noise`): per image
  (per clip) a wrist sigma ``body_noise = U(0, 1) ** 1.5 * 0.15`` torso sizes (torso size = the
  subject's 3D torso length in pixels), elbows 0.7 of it, knees and ankles about 0.4, shoulders
  and hips 0.2, face 0.12; wrists and elbows also jump 0.3-0.6 torso sizes with probability
  ``body_noise``. Every label file (stills too) writes confidences as the third value, falling
  with each point's displacement (the YOLO reader keeps them as scores; ``v = 1`` under 0.5).
  The stick points get only the jitter (1.5 px per 320 px of image) and their errors;
* stick errors at :data:`RANDOM_ERROR_RATES` (38 % of the stills, exact quota) with sizes from
  :data:`RANDOM_ERROR_RANGES`: ``too_short`` x0.45-0.85, ``too_long`` x1.2-1.9,
  ``wrong_angle`` 12-70 deg, ``grip_off`` 0.3-1.5 forearm lengths, plus ``swap`` and
  ``tip_missing``. Videos: drift episodes as above but from the mild end of those ranges
  (x0.85, x1.2, 12 deg, 0.3 forearms) to a peak inside them, and spikes of any size in them.

Its ``truth.csv`` adds, after today's columns: ``error_magnitude`` (the injected size: factor,
degrees or forearm lengths; empty/NaN for ``none``, ``swap``, ``tip_missing``,
``no_detection``), ``randomised`` (1), ``body_noise`` (the wrist noise sigma in torso sizes)
and ``stick_ratio`` (clean projected stick length / its real length at the camera scale:
1 = parallel to the image; ``foreshortened`` is ``stick_ratio < 0.6``).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit import geometry, layout

FAMILIES: tuple[str, ...] = ("forward", "back", "horse", "cat")
CHAMBERS: tuple[str, ...] = ("high", "middle", "low")
STANCES: tuple[str, ...] = tuple(f"{f}_{c}" for f in FAMILIES for c in CHAMBERS)

#: Real stick length in metres (a baston is about 71 cm).
STICK_LENGTH = 0.71
#: Per-kind probability that an image's labels carry that stick error (sum: 0.30).
ERROR_RATES: dict[str, float] = {
    "too_short": 0.06,
    "too_long": 0.05,
    "wrong_angle": 0.06,
    "grip_off": 0.05,
    "swap": 0.04,
    "tip_missing": 0.04,
}
ERROR_KINDS: tuple[str, ...] = ("none", *ERROR_RATES)
#: Standard deviation (pixels) of the Gaussian jitter added to every labelled point.
LABEL_JITTER_PX = 1.5
#: A stick whose projection is shorter than this fraction of ``length * scale`` is foreshortened.
FORESHORTENED_RATIO = 0.6
VIDEO_FPS = 15
LEFT_HANDED: frozenset[int] = frozenset({2, 6})  # s03 and s07
_VIDEO_SUBJECT_ORDER = (0, 2, 5, 6, 1, 3, 4, 7)

# Domain-randomised mode (``generate(..., randomise=True)``, ``toolkit samples --randomise``).
#: Randomised mode: per-kind label error rates (sum 0.38, an exact quota over the images).
RANDOM_ERROR_RATES: dict[str, float] = {
    "too_short": 0.07,
    "too_long": 0.07,
    "wrong_angle": 0.07,
    "grip_off": 0.07,
    "swap": 0.05,
    "tip_missing": 0.05,
}
#: Randomised mode: error size ranges, uniform: length factor (too_short, too_long), degrees
#: (wrong_angle), forearm lengths (grip_off). Video drift episodes stay inside them too.
RANDOM_ERROR_RANGES: dict[str, tuple[float, float]] = {
    "too_short": (0.45, 0.85),
    "too_long": (1.2, 1.9),
    "wrong_angle": (12.0, 70.0),
    "grip_off": (0.3, 1.5),
}
#: Randomised mode: image sizes (square); videos use those up to :data:`RANDOM_VIDEO_MAX_SIZE`.
RANDOM_IMAGE_SIZES: tuple[int, ...] = (320, 480, 640, 960, 1280)
RANDOM_VIDEO_MAX_SIZE = 640
#: Randomised mode: base stick colours (BGR), each jittered by N(0, 12) per channel.
STICK_COLOURS: dict[str, tuple[int, int, int]] = {
    "dark_wood": (28, 48, 78),
    "light_wood": (120, 175, 215),
    "metallic_grey": (160, 160, 155),
    "black": (18, 18, 18),
}
#: Randomised mode: stick thickness range in pixels of the written image.
RANDOM_STICK_PX: tuple[int, int] = (1, 10)
#: Randomised mode: relative spread of every body proportion (+-12 %).
RANDOM_PROPORTION_SPREAD = 0.12
#: Randomised mode: the largest wrist noise sigma, in torso sizes (see :func:`detector_noise`).
RANDOM_BODY_NOISE = 0.15
#: Randomised mode: body keypoint noise relative to the wrists' (wrists and elbows worst).
BODY_NOISE_WEIGHT: np.ndarray = np.array(
    [0.12, 0.12, 0.12, 0.12, 0.12,  # face
     0.2, 0.2, 0.7, 0.7, 1.0, 1.0,  # shoulders, elbows, wrists
     0.2, 0.2, 0.4, 0.4, 0.45, 0.45]  # hips, knees, ankles
)  # fmt: skip
#: Columns ``truth.csv`` gets after :data:`TRUTH_COLUMNS` in randomised mode.
RANDOM_TRUTH_COLUMNS: tuple[str, ...] = (
    "error_magnitude",
    "randomised",
    "body_noise",
    "stick_ratio",
)

_FAMILY_TEXT = {
    "forward": "long front stance, front knee bent, rear leg straight",
    "back": "weight on the bent rear leg, front leg extended",
    "horse": "feet wide apart sideways, both knees bent, hips low",
    "cat": "short stance, bent rear leg, front foot light on its toes",
}
_CHAMBER_TEXT = {
    "high": "weapon hand above the head, stick cocked back over the shoulder",
    "middle": "weapon hand at chest height in front, stick across the body",
    "low": "weapon hand by the hip, stick pointing down and forward",
}


# ---------------------------------------------------------------------------------- subjects
@dataclass(frozen=True)
class Subject:
    """One synthetic practitioner: proportions (metres), handedness and clothing colours.

    Attributes:
        name: ``s01`` .. ``sNN``.
        handedness: ``"right"`` or ``"left"`` (the weapon hand).
        height: Standing height.
        upper_arm, forearm, hand: Shoulder-elbow, elbow-wrist, wrist-grip lengths.
        thigh, shin: Hip-knee and knee-ankle lengths.
        torso: Hip centre to shoulder centre.
        shoulder_width, hip_width: Distances between the two shoulder / hip keypoints.
        stick_length: The stick's real length (:data:`STICK_LENGTH`).
        shirt, pants, skin: BGR colours.
    """

    name: str
    handedness: str
    height: float
    upper_arm: float
    forearm: float
    hand: float
    thigh: float
    shin: float
    torso: float
    shoulder_width: float
    hip_width: float
    stick_length: float
    shirt: tuple[int, int, int]
    pants: tuple[int, int, int]
    skin: tuple[int, int, int]

    @property
    def arm(self) -> float:
        """Shoulder to wrist (metres)."""
        return self.upper_arm + self.forearm

    @property
    def leg(self) -> float:
        """Hip to ankle (metres)."""
        return self.thigh + self.shin


# Mid-to-light clothing (grey level >= 135, >= 115 when shaded) so the stick is the darkest thing.
_SHIRTS = ((215, 160, 90), (80, 170, 230), (120, 200, 120), (205, 205, 205), (110, 110, 225),
           (200, 140, 200), (90, 200, 200), (220, 180, 140))  # fmt: skip
_PANTS = ((170, 140, 120), (140, 150, 165), (165, 165, 165), (160, 130, 175), (130, 160, 130))
_SKINS = ((150, 180, 220), (120, 160, 205), (100, 135, 180), (160, 195, 235))


def make_subjects(n: int = 8, seed: int = 0, randomise: bool = False) -> list[Subject]:
    """``n`` subjects of varied height and limb ratios.

    Indices in :data:`LEFT_HANDED` are left-handed (at least two when ``n >= 7``; for smaller
    sets the last one is left-handed).

    With ``randomise`` (its own random stream): heights 1.45-1.95 m, every proportion within
    :data:`RANDOM_PROPORTION_SPREAD` (+-12 %), the stick 2.3-3.4 forearm lengths, and clothing
    and skin colours drawn from the full range (see :func:`random_colours`).
    """
    if n < 1:
        raise ValueError(f"Expected 'subjects' to be at least 1, but got {n}.")
    left = {i for i in LEFT_HANDED if i < n} or ({n - 1} if n > 1 else set())
    if randomise:
        return [_random_subject(i, seed, i in left) for i in range(n)]
    heights = np.linspace(1.56, 1.88, n) if n > 1 else np.array([1.72])
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, 0, i])
        h = float(heights[(i * 5) % n] + rng.normal(0, 0.015))

        def r(x: float, spread: float = 0.06, rng=rng, h=h) -> float:
            return float(x * h * rng.uniform(1 - spread, 1 + spread))

        forearm = float(np.clip(r(0.150, 0.05), STICK_LENGTH / 3.0, STICK_LENGTH / 2.5))
        out.append(Subject(
            name=f"s{i + 1:02d}", handedness="left" if i in left else "right", height=h,
            upper_arm=r(0.172), forearm=forearm, hand=r(0.042, 0.1), thigh=r(0.245, 0.05),
            shin=r(0.246, 0.05), torso=r(0.29, 0.05), shoulder_width=r(0.225, 0.08),
            hip_width=r(0.105, 0.1), stick_length=STICK_LENGTH,
            shirt=_SHIRTS[i % len(_SHIRTS)], pants=_PANTS[(i * 3) % len(_PANTS)],
            skin=_SKINS[(i * 7) % len(_SKINS)],
        ))  # fmt: skip
    return out


def _random_subject(i: int, seed: int, left: bool) -> Subject:
    """One subject of :func:`make_subjects` ``(randomise=True)``."""
    rng = np.random.default_rng([seed, 10, i])
    h = float(rng.uniform(1.45, 1.95))
    spread = RANDOM_PROPORTION_SPREAD

    def r(x: float) -> float:
        return float(x * h * rng.uniform(1 - spread, 1 + spread))

    forearm = float(np.clip(r(0.150), STICK_LENGTH / 3.4, STICK_LENGTH / 2.3))
    shirt, pants, skin = random_colours(rng)
    return Subject(
        name=f"s{i + 1:02d}", handedness="left" if left else "right", height=h,
        upper_arm=r(0.172), forearm=forearm, hand=r(0.042), thigh=r(0.245), shin=r(0.246),
        torso=r(0.29), shoulder_width=r(0.225), hip_width=r(0.105), stick_length=STICK_LENGTH,
        shirt=shirt, pants=pants, skin=skin,
    )  # fmt: skip


def random_colours(
    rng: np.random.Generator,
) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
    """Shirt, trousers and skin (BGR) from the full range.

    Clothing is uniform in 0..255 per channel (dark clothing too, so the stick is not always the
    darkest thing), skin anywhere from very dark to very light brown with a little hue jitter.
    """
    shirt, pants = (tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(2))
    t = rng.uniform(0, 1)
    base = np.array([40.0, 55.0, 80.0]) * (1 - t) + np.array([185.0, 210.0, 240.0]) * t
    skin = tuple(int(v) for v in np.clip(base + rng.normal(0, 10, 3), 0, 255))
    return shirt, pants, skin  # type: ignore[return-value]


# ---------------------------------------------------------------------------------- stances
# Stance parameters, for a RIGHT-handed subject (weapon hand right; left-handed poses are
# mirrored). Body frame: +X = the person's left, +Y up, +Z the way they face. Feet are in leg
# lengths relative to the ground point under the pelvis; hand targets in arm lengths relative to
# the shoulder, in the torso frame as (out, up, forward) where "out" points away from the body on
# that arm's side; directions need not be unit length.
_PARAM_SIZES: dict[str, int] = {
    "pelvis_h": 1, "foot_r": 3, "foot_l": 3, "pole_r": 3, "pole_l": 3, "lean": 1, "twist": 1,
    "hip_yaw": 1, "whand": 3, "wpole": 3, "stick": 3, "ohand": 3, "opole": 3, "head": 2,
}  # fmt: skip
_FAMILY_PARAMS: dict[str, dict[str, list[float]]] = {
    "forward": {"pelvis_h": [0.80], "foot_r": [-0.16, 0, 0.42], "foot_l": [0.14, 0, -0.55],
                "pole_r": [0, 0, 1], "pole_l": [0, 0, 1], "lean": [0.12], "twist": [0.35],
                "hip_yaw": [0.25]},
    "back": {"pelvis_h": [0.78], "foot_r": [-0.12, 0, 0.55], "foot_l": [0.16, 0, -0.20],
             "pole_r": [0, 0, 1], "pole_l": [0.3, 0, 1], "lean": [-0.08], "twist": [0.15],
             "hip_yaw": [0.2]},
    "horse": {"pelvis_h": [0.70], "foot_r": [-0.56, 0, 0.02], "foot_l": [0.56, 0, -0.02],
              "pole_r": [-0.8, 0, 0.6], "pole_l": [0.8, 0, 0.6], "lean": [0.0], "twist": [0.1],
              "hip_yaw": [0.0]},
    "cat": {"pelvis_h": [0.80], "foot_r": [-0.08, 0.08, 0.30], "foot_l": [0.12, 0, -0.12],
            "pole_r": [0, 0.2, 1], "pole_l": [0.2, 0, 1], "lean": [-0.03], "twist": [0.2],
            "hip_yaw": [0.15]},
}  # fmt: skip
_CHAMBER_PARAMS: dict[str, dict[str, list[float]]] = {
    "high": {"whand": [0.30, 0.68, 0.15], "wpole": [1, 0.4, -0.2], "stick": [-0.25, 0.70, -0.65]},
    "middle": {"whand": [0.08, -0.30, 0.75], "wpole": [1, -1, 0], "stick": [-0.70, 0.15, 0.65]},
    "low": {"whand": [0.30, -0.72, 0.25], "wpole": [0.5, 0, -1], "stick": [0.25, -0.70, 0.65]},
}
_COMMON_PARAMS: dict[str, list[float]] = {
    "ohand": [-0.05, -0.45, 0.55],
    "opole": [1, -1, -0.3],
    "head": [0.0, 0.0],
}
#: Standard deviation of the per-sample noise on each stance parameter (within-class variation).
_PARAM_NOISE: dict[str, float] = {
    "pelvis_h": 0.022, "foot_r": 0.035, "foot_l": 0.035, "pole_r": 0.15, "pole_l": 0.15,
    "lean": 0.05, "twist": 0.10, "hip_yaw": 0.08, "whand": 0.13, "wpole": 0.3, "stick": 0.22,
    "ohand": 0.09, "opole": 0.2, "head": 0.12,
}  # fmt: skip


def stance_params(stance: str) -> np.ndarray:
    """The mean parameter vector of a stance (see :data:`_PARAM_SIZES` for the slots)."""
    family, chamber = stance.split("_")
    merged = {**_COMMON_PARAMS, **_FAMILY_PARAMS[family], **_CHAMBER_PARAMS[chamber]}
    return np.concatenate([np.asarray(merged[k], float) for k in _PARAM_SIZES])


def _noise_sigma() -> np.ndarray:
    return np.concatenate([np.full(n, _PARAM_NOISE[k]) for k, n in _PARAM_SIZES.items()])


def _split(vec: np.ndarray) -> dict[str, np.ndarray]:
    out, i = {}, 0
    for k, n in _PARAM_SIZES.items():
        out[k] = vec[i : i + n]
        i += n
    return out


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _two_bone(
    root: np.ndarray, target: np.ndarray, a: float, b: float, pole: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Middle joint and end of a two-bone chain reaching for ``target``, bending toward ``pole``.

    Bone lengths are exact: an unreachable target is clamped along the root-target line.
    """
    d = target - root
    u = _unit(d)
    dist = float(np.clip(np.linalg.norm(d), abs(a - b) + 1e-3, (a + b) * 0.999))
    cos_a = (a * a + dist * dist - b * b) / (2 * a * dist)
    v = pole - float(pole @ u) * u
    if np.linalg.norm(v) < 1e-6:
        v = np.cross(u, [1.0, 0.0, 0.0])
    v = _unit(v)
    joint = root + a * (cos_a * u + math.sqrt(max(0.0, 1 - cos_a * cos_a)) * v)
    return joint, root + dist * u


#: Extra 3D points returned by :func:`pose_3d` for drawing: head centre, left toe, right toe.
HEAD, L_TOE, R_TOE = range(3)


def pose_3d(subject: Subject, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """19 3D keypoints (metres, body frame) for a stance parameter vector.

    Returns:
        ``(kp, extra)``: ``kp`` ``(19, 3)`` in layout order; ``extra`` ``(3, 3)`` drawing helpers
        (head centre, left toe, right toe).
    """
    p = _split(np.asarray(params, float))
    sj = subject
    hs = sj.height / 1.75
    lg = sj.leg
    kp = np.zeros((layout.NUM_KEYPOINTS, 3))
    # Legs: ankles on the ground (y = 0); hips on the (yawed) pelvis.
    pelvis = np.array([0.0, float(p["pelvis_h"][0]) * lg, 0.0])
    r_hip_yaw = _rot_y(float(p["hip_yaw"][0]))
    hips = {
        side: pelvis + r_hip_yaw @ np.array([sgn * sj.hip_width / 2, 0, 0])
        for side, sgn in (("l", 1.0), ("r", -1.0))
    }
    idx = {
        "l": (layout.L_HIP, layout.L_KNEE, layout.L_ANKLE),
        "r": (layout.R_HIP, layout.R_KNEE, layout.R_ANKLE),
    }
    for side in ("l", "r"):
        foot = np.array([0.0, 0.0, 0.0]) + p[f"foot_{side}"] * lg
        knee, ankle = _two_bone(hips[side], foot, sj.thigh, sj.shin, _unit(p[f"pole_{side}"]))
        hi, ki, ai = idx[side]
        kp[hi], kp[ki], kp[ai] = hips[side], knee, ankle
    # Torso: lean forward about X, then twist about Y (positive brings the right shoulder forward).
    r_t = _rot_y(float(p["twist"][0]) + float(p["hip_yaw"][0]) * 0.5) @ _rot_x(float(p["lean"][0]))
    neck = pelvis + r_t @ np.array([0, sj.torso, 0])
    kp[layout.L_SHOULDER] = neck + r_t @ np.array([sj.shoulder_width / 2, 0, 0])
    kp[layout.R_SHOULDER] = neck + r_t @ np.array([-sj.shoulder_width / 2, 0, 0])
    # Head.
    r_h = r_t @ _rot_y(float(p["head"][0]) * 0.5) @ _rot_x(float(p["head"][1]) * 0.3)
    head = neck + r_t @ np.array([0, 0.105 * hs, 0.01 * hs])
    face = {
        layout.NOSE: (0, -0.01, 0.095),
        layout.L_EYE: (0.032, 0.025, 0.075),
        layout.R_EYE: (-0.032, 0.025, 0.075),
        layout.L_EAR: (0.075, 0.0, -0.005),
        layout.R_EAR: (-0.075, 0.0, -0.005),
    }
    for k, off in face.items():
        kp[k] = head + r_h @ (np.asarray(off) * hs)

    def arm_frame(out_sign: float, v: np.ndarray) -> np.ndarray:
        return r_t @ np.array([out_sign * v[0], v[1], v[2]])

    # Weapon arm (right, out = -X) and off-hand arm (left, out = +X).
    for sh, el, wr, hand_key, pole_key, out_sign in (
        (layout.R_SHOULDER, layout.R_ELBOW, layout.R_WRIST, "whand", "wpole", -1.0),
        (layout.L_SHOULDER, layout.L_ELBOW, layout.L_WRIST, "ohand", "opole", 1.0),
    ):
        target = kp[sh] + arm_frame(out_sign, p[hand_key]) * sj.arm
        elbow, wrist = _two_bone(
            kp[sh], target, sj.upper_arm, sj.forearm, _unit(arm_frame(out_sign, p[pole_key]))
        )
        kp[el], kp[wr] = elbow, wrist
    grip = kp[layout.R_WRIST] + sj.hand * _unit(kp[layout.R_WRIST] - kp[layout.R_ELBOW])
    kp[layout.GRIP] = grip
    kp[layout.TIP] = grip + sj.stick_length * _unit(arm_frame(-1.0, p["stick"]))
    extra = np.stack(
        [
            head,
            kp[layout.L_ANKLE] + r_hip_yaw @ np.array([0.02, -0.03, 0.15]) * hs,
            kp[layout.R_ANKLE] + r_hip_yaw @ np.array([-0.02, -0.03, 0.15]) * hs,
        ]
    )
    if sj.handedness == "left":
        kp[:, 0] *= -1
        kp = kp[list(layout.FLIP_IDX)]
        extra[:, 0] *= -1
        extra = extra[[HEAD, R_TOE, L_TOE]]
    return kp, extra


# ---------------------------------------------------------------------------------- camera
@dataclass(frozen=True)
class Camera:
    """Scaled orthographic camera: ``u = s * x_cam + tx``, ``v = -s * y_cam + ty``.

    Attributes:
        yaw, pitch, roll: Radians (pitch > 0 looks down on the subject).
        scale: Pixels per metre.
        tx, ty: Pixel translation.
    """

    yaw: float
    pitch: float
    roll: float
    scale: float = 1.0
    tx: float = 0.0
    ty: float = 0.0

    def rotation(self) -> np.ndarray:
        """The ``(3, 3)`` body-to-camera rotation (roll, pitch, yaw)."""
        return _rot_z(self.roll) @ _rot_x(self.pitch) @ _rot_y(self.yaw)

    def project_metric(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(..., 3)`` body-frame points -> ``(..., 2)`` image-plane metres (y down) and depth.

        A larger depth is nearer the camera.
        """
        cam = pts @ self.rotation().T
        return np.stack([cam[..., 0], -cam[..., 1]], -1), cam[..., 2]

    def to_pixels(self, metric: np.ndarray) -> np.ndarray:
        """Image-plane metres -> pixels (``scale`` per metre, then the offset)."""
        return metric * self.scale + np.array([self.tx, self.ty])


def random_camera(rng: np.random.Generator, wide: bool = False) -> Camera:
    """Yaw = +-30 deg (random side) + U(-40, 40) deg; pitch U(3, 20) deg; roll N(0, 2) deg.

    With ``wide`` (randomised mode): yaw U(0, 80) deg to either side, pitch U(-10, 35) deg
    (negative looks up), roll N(0, 4) deg.
    """
    if wide:
        return Camera(
            yaw=float(rng.choice([-1.0, 1.0])) * math.radians(rng.uniform(0, 80)),
            pitch=math.radians(rng.uniform(-10, 35)),
            roll=math.radians(rng.normal(0, 4)),
        )
    yaw = rng.choice([-1.0, 1.0]) * math.radians(30) + math.radians(rng.uniform(-40, 40))
    return Camera(
        yaw=yaw, pitch=math.radians(rng.uniform(3, 20)), roll=math.radians(rng.normal(0, 2))
    )


def fit_camera(
    cam: Camera,
    metric: np.ndarray,
    rng: np.random.Generator,
    size: int,
    fill: tuple[float, float] = (0.55, 0.86),
    margin: float = 12.0,
    keep_scale: bool = False,
) -> Camera:
    """Random scale and translation that keep every point of ``metric`` ``(M, 2)`` in frame.

    With ``keep_scale`` only the translation is redrawn, unless the points need a smaller scale.
    """
    lo, hi = metric.min(0), metric.max(0)
    extent = float(max((hi - lo).max(), 1e-6))
    s = min(rng.uniform(*fill) * size, size - 2 * margin) / extent
    if keep_scale:
        s = min(cam.scale, (size - 2 * margin) / extent)
    room = size - 2 * margin - (hi - lo) * s
    t = margin + rng.uniform(0, 1, 2) * np.maximum(room, 0) - lo * s
    return Camera(cam.yaw, cam.pitch, cam.roll, s, float(t[0]), float(t[1]))


# ---------------------------------------------------------------------------------- errors
def _rotate2(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def apply_error(
    xy: np.ndarray,
    kind: str,
    magnitude: float,
    forearm: float,
    sign: float = 1.0,
    spread: float = 0.0,
) -> np.ndarray:
    """The labelled 2D points for one error (metric or pixel units alike).

    Args:
        xy: ``(19, 2)`` clean points.
        kind: One of :data:`ERROR_KINDS`.
        magnitude: Length factor (too_short/too_long), degrees (wrong_angle), or forearm
            lengths (grip_off); ignored by the others.
        forearm: The forearm length in the units of ``xy``.
        sign: Rotation direction (wrong_angle, grip_off).
        spread: Angle (radians, within +-60 deg) between the grip's displacement and the
            wrist-to-grip direction (grip_off).

    Returns:
        ``(19, 2)`` points; a missing tip is NaN.
    """
    out = xy.copy()
    g, t = xy[layout.GRIP], xy[layout.TIP]
    if kind in ("too_short", "too_long"):
        out[layout.TIP] = g + (t - g) * magnitude
    elif kind == "wrong_angle":
        out[layout.TIP] = g + _rotate2(t - g, sign * math.radians(magnitude))
    elif kind == "grip_off":
        wrist = xy[int(geometry.weapon_wrist_index(xy[None])[0])]
        u = g - wrist
        if np.linalg.norm(u) < 1e-9:
            u = t - g
        out[layout.GRIP] = g + _rotate2(_unit(u), sign * spread) * magnitude * forearm
    elif kind == "swap":
        out[layout.GRIP], out[layout.TIP] = t, g
    elif kind == "tip_missing":
        out[layout.TIP] = np.nan
    elif kind != "none":
        raise ValueError(f"Expected an error kind in {list(ERROR_KINDS)}, but got {kind!r}.")
    return out


def _draw_error(
    kind: str, rng: np.random.Generator, randomise: bool = False
) -> tuple[float, float, float]:
    """(magnitude, sign, spread) for an image error.

    With ``randomise`` the magnitudes come from :data:`RANDOM_ERROR_RANGES`.
    """
    if randomise:
        mag = {k: rng.uniform(*r) for k, r in RANDOM_ERROR_RANGES.items()}.get(kind, 0.0)
    else:
        mag = {
            "too_short": rng.uniform(0.35, 0.65),
            "too_long": rng.uniform(1.4, 1.9),
            "wrong_angle": rng.uniform(30, 70),
            "grip_off": rng.uniform(0.6, 1.2),
        }.get(kind, 0.0)
    return float(mag), float(rng.choice([-1.0, 1.0])), float(rng.uniform(0, math.radians(60)))


def error_quota(n: int, seed: int, rates: dict[str, float] | None = None) -> np.ndarray:
    """Error kinds for ``n`` images: round(rate * n) of each kind (largest remainder), shuffled.

    ``rates`` defaults to :data:`ERROR_RATES` (:data:`RANDOM_ERROR_RATES` in randomised mode).
    """
    rates = ERROR_RATES if rates is None else rates
    kinds = list(rates)
    raw = np.array([rates[k] * n for k in kinds])
    counts = np.floor(raw).astype(int)
    rest = round(sum(raw)) - counts.sum()
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    out = np.array(["none"] * n, dtype=object)
    out[: counts.sum()] = np.repeat(kinds, counts)
    np.random.default_rng([seed, 3]).shuffle(out)
    return out


# ---------------------------------------------------------------------------------- render
def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A light two-colour vertical gradient with a slight horizontal tilt, ``float32``."""
    top = rng.uniform(170, 235, 3)
    bottom = rng.uniform(140, 205, 3)
    ramp = np.linspace(0, 1, size)[:, None, None]
    img = top * (1 - ramp) + bottom * ramp + np.zeros((1, size, 1))
    img = img + np.linspace(-8, 8, size)[None, :, None] * rng.uniform(-1, 1)
    return img.astype(np.float32)


@dataclass(frozen=True)
class Style:
    """The look of one randomised image or video clip (see :func:`random_style`).

    Attributes:
        stick_kind: Key of :data:`STICK_COLOURS`.
        stick_color: BGR, the base colour with jitter.
        stick_px: Stick thickness in pixels (:data:`RANDOM_STICK_PX`).
        shoes: BGR colour of the feet.
        grain: Sigma of the per-pixel sensor noise (grey levels).
        blur_sigma: Gaussian blur over the whole image, in pixels (0 = none).
        jpeg_quality: JPEG quality of a still image (videos are mp4v only).
        body_noise: Wrist noise sigma of the labels in torso sizes (:func:`detector_noise`).
    """

    stick_kind: str
    stick_color: tuple[int, int, int]
    stick_px: int
    shoes: tuple[int, int, int]
    grain: float
    blur_sigma: float
    jpeg_quality: int
    body_noise: float


def random_style(rng: np.random.Generator) -> Style:
    """A random rendering style.

    Stick colour and thickness, blur (sigma U(0, 2)), JPEG quality (40-95), sensor grain and the
    label noise level (wrist sigma ``U(0, 1) ** 1.5 *`` :data:`RANDOM_BODY_NOISE`).
    """
    kind = str(rng.choice(list(STICK_COLOURS)))
    colour = np.clip(np.asarray(STICK_COLOURS[kind], float) + rng.normal(0, 12, 3), 0, 255)
    return Style(
        stick_kind=kind,
        stick_color=tuple(int(v) for v in colour),  # type: ignore[arg-type]
        stick_px=int(rng.integers(RANDOM_STICK_PX[0], RANDOM_STICK_PX[1] + 1)),
        shoes=tuple(int(v) for v in rng.integers(0, 256, 3)),  # type: ignore[arg-type]
        grain=float(rng.uniform(1, 9)),
        blur_sigma=float(rng.uniform(0, 2)),
        jpeg_quality=int(rng.integers(40, 96)),
        body_noise=float(rng.uniform(0, 1) ** 1.5 * RANDOM_BODY_NOISE),
    )


def random_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A cluttered ``(size, size, 3)`` ``uint8`` background for the randomised mode.

    A two-colour gradient (vertical or at a random diagonal; colours from the full range),
    multi-scale noise (coarse blobs to fine texture, grey or coloured), sometimes stripes, then
    3-17 clutter shapes: filled or outlined rectangles and circles, and lines of random colour
    and thickness, about a third of them dark and thin like a stick, some light.
    """
    import cv2

    # The smooth layers are built at (at most) 320 px and scaled up once: cheap at 1280 px.
    base = min(size, 320)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = math.pi / 2 if rng.random() < 0.4 else rng.uniform(0, math.pi)
    yy, xx = np.mgrid[0:base, 0:base].astype(np.float32) / np.float32(base - 1)
    ramp = xx * math.cos(angle) + yy * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    img = (c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]).astype(np.float32)
    for cells in (4, 16, 64):  # multi-scale noise: blobs, mottling, texture
        amp = np.float32(rng.uniform(0, 30))
        chans = 3 if rng.random() < 0.5 else 1
        field = rng.standard_normal((cells, cells, chans)).astype(np.float32)
        up = cv2.resize(field, (base, base), interpolation=cv2.INTER_CUBIC)
        img += amp * up.reshape(base, base, -1)
    if rng.random() < 0.3:  # stripes / woven texture, 6-48 periods across the image
        a = rng.uniform(0, math.pi)
        cycles = rng.uniform(6, 48)
        wave = np.sin(2 * math.pi * cycles * (xx * math.cos(a) + yy * math.sin(a)))
        img += np.float32(rng.uniform(4, 20)) * wave[..., None]
    if base != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    img = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))
    for _ in range(int(rng.integers(3, 18))):
        what = rng.choice(["line", "line", "rect", "circle"])
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        p = rng.uniform(-0.1, 1.1, 2) * size
        if what == "line":
            kind = rng.random()
            if kind < 0.35:  # dark and thin, like a stick
                colour = tuple(int(v) for v in rng.integers(0, 70, 3))
                width = int(rng.integers(1, 7))
            elif kind < 0.6:  # light
                colour = tuple(int(v) for v in rng.integers(170, 256, 3))
                width = int(rng.integers(1, 12))
            else:
                width = int(rng.integers(1, 16))
            q = p + rng.uniform(0.1, 0.7) * size * np.array(
                [math.cos(t := rng.uniform(0, 2 * math.pi)), math.sin(t)]
            )
            cv2.line(img, _ipt(p), _ipt(q), colour, width, cv2.LINE_AA)
        elif what == "rect":
            q = p + rng.uniform(0.03, 0.4, 2) * size
            width = -1 if rng.random() < 0.6 else int(rng.integers(1, 8))
            cv2.rectangle(img, _ipt(p), _ipt(q), colour, width, cv2.LINE_AA)
        else:
            width = -1 if rng.random() < 0.6 else int(rng.integers(1, 8))
            radius = int(rng.uniform(0.02, 0.2) * size)
            cv2.circle(img, _ipt(p), radius, colour, width, cv2.LINE_AA)
    return img


def _ipt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


_NOISE_PAD = 48


@functools.lru_cache(maxsize=4)
def _noise_bank(size: int) -> np.ndarray:
    """A few fields of Gaussian sensor noise (sigma 4); each render takes a shifted window."""
    rng = np.random.default_rng(20240601)
    shape = (4, size + _NOISE_PAD, size + _NOISE_PAD, 3)
    return rng.standard_normal(shape, dtype=np.float32) * 4.0


@functools.lru_cache(maxsize=1)
def _grain_bank() -> np.ndarray:
    """One unit Gaussian field big enough for any randomised image (about 20 MB, built once)."""
    n = max(RANDOM_IMAGE_SIZES) + _NOISE_PAD
    return np.random.default_rng(20261202).standard_normal((n, n, 3), dtype=np.float32)


def _grain(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random ``(size, size, 3)`` window of :func:`_grain_bank`, randomly flipped."""
    bank = _grain_bank()
    oy, ox = rng.integers(0, bank.shape[0] - size + 1, 2)
    win = bank[oy : oy + size, ox : ox + size]
    if rng.random() < 0.5:
        win = win[::-1]
    return win if rng.random() < 0.5 else win[:, ::-1]


def _noise(rng: np.random.Generator, size: int) -> np.ndarray:
    bank = _noise_bank(size)
    i, oy, ox = rng.integers(len(bank)), *rng.integers(0, _NOISE_PAD, 2)
    return bank[i, oy : oy + size, ox : ox + size]


def render(
    pts: np.ndarray,
    depth: np.ndarray,
    extra: np.ndarray,
    extra_depth: np.ndarray,
    subject: Subject,
    scale: float,
    background: np.ndarray,
    rng: np.random.Generator,
    stick_color: tuple[int, int, int] = (28, 48, 78),
    style: Style | None = None,
) -> np.ndarray:
    """Draw a stick figure with its stick; returns a ``uint8`` BGR image.

    Args:
        pts: ``(19, 2)`` clean pixel coordinates.
        depth: ``(19,)`` camera depth of ``pts`` (larger = nearer).
        extra: Head centre and toes (pixels) from :func:`pose_3d`.
        extra_depth: Their depths.
        subject: Who is drawn (colours, height, handedness).
        scale: Pixels per metre (sets limb thickness).
        background: ``(H, W, 3)`` float background (a noise layer is added here).
        rng: The random stream (noise, grain).
        stick_color: The stick's BGR colour without a ``style``.
        style: Randomised mode (:func:`random_style`): the stick takes the style's colour and
            thickness and is drawn in depth order in four pieces (so the body hides the parts
            behind it) with the fist over its grip end; then sensor grain and blur. ``None``:
            the stick is drawn last, on top of everything, in ``stick_color``.
    """
    import cv2

    if style is None:
        img = np.clip(background + _noise(rng, background.shape[0]), 0, 255).astype(np.uint8)
    else:
        img = np.ascontiguousarray(np.clip(background, 0, 255).astype(np.uint8))
    items = _body_items(pts, depth, extra, extra_depth, subject, scale, style)
    items.sort(key=lambda it: it[0])
    for _, what, a in items:
        _paint(img, what, a, pts, depth, subject, style)
    if style is not None:
        noisy = img.astype(np.float32)
        noisy += _grain(rng, img.shape[0]) * np.float32(style.grain)
        if style.blur_sigma > 0.1:
            noisy = cv2.GaussianBlur(noisy, (0, 0), style.blur_sigma)
        return np.clip(noisy, 0, 255, out=noisy).astype(np.uint8)
    # The stick last: it is what the suite is about, and a line detector must find it.
    stick_w = max(2, int(round(0.022 * scale)))
    cv2.line(
        img, _ip(pts[layout.GRIP]), _ip(pts[layout.TIP]), stick_color, stick_w, cv2.LINE_AA, _SH
    )
    return img


#: Fixed-point shift for sub-pixel drawing with OpenCV.
_SH = 16
_F = float(1 << _SH)


def _ip(p: np.ndarray) -> tuple[int, int]:
    """A point in OpenCV's fixed-point coordinates (:data:`_SH` fractional bits)."""
    return int(round(p[0] * _F)), int(round(p[1] * _F))


def _body_items(
    pts: np.ndarray,
    depth: np.ndarray,
    extra: np.ndarray,
    extra_depth: np.ndarray,
    subject: Subject,
    scale: float,
    style: Style | None,
) -> list[tuple[float, str, tuple]]:
    """What to draw as ``(depth key, kind, arguments)``.

    Limbs, feet, torso, neck, head, hands and (with a ``style``) the stick in four pieces.
    """
    limb = max(3, int(round(0.06 * scale)))
    arm = max(3, int(round(0.05 * scale)))
    k = layout
    items: list[tuple[float, str, tuple]] = []

    def col(c: tuple[int, int, int], far: bool) -> tuple[int, ...]:
        m = 0.85 if far else 1.0
        return tuple(int(v * m) for v in c)

    # Which side is nearer the camera decides the shading of paired limbs.
    left_far = depth[k.L_SHOULDER] + depth[k.L_HIP] < depth[k.R_SHOULDER] + depth[k.R_HIP]
    for a, b, c, w, side in (
        (k.L_HIP, k.L_KNEE, subject.pants, limb, "l"), (k.L_KNEE, k.L_ANKLE, subject.pants, limb, "l"),
        (k.R_HIP, k.R_KNEE, subject.pants, limb, "r"), (k.R_KNEE, k.R_ANKLE, subject.pants, limb, "r"),
        (k.L_SHOULDER, k.L_ELBOW, subject.shirt, arm, "l"),
        (k.L_ELBOW, k.L_WRIST, subject.skin, arm, "l"),
        (k.R_SHOULDER, k.R_ELBOW, subject.shirt, arm, "r"),
        (k.R_ELBOW, k.R_WRIST, subject.skin, arm, "r"),
    ):  # fmt: skip
        far = left_far if side == "l" else not left_far
        items.append((float(depth[a] + depth[b]) / 2, "line", (pts[a], pts[b], col(c, far), w)))
    for ankle, toe in ((k.L_ANKLE, L_TOE), (k.R_ANKLE, R_TOE)):
        far = left_far if ankle == k.L_ANKLE else not left_far
        shoes = (120, 130, 140) if style is None else style.shoes
        items.append(
            (
                float(depth[ankle] + extra_depth[toe]) / 2 - 1e-3,
                "line",
                (pts[ankle], extra[toe], col(shoes, far), max(3, limb - 1)),
            )
        )
    torso = pts[[k.L_SHOULDER, k.R_SHOULDER, k.R_HIP, k.L_HIP]]
    items.append((float(depth[[5, 6, 11, 12]].mean()), "poly", (torso, subject.shirt)))
    neck = (pts[k.L_SHOULDER] + pts[k.R_SHOULDER]) / 2
    items.append(
        (float(depth[[5, 6]].mean()) - 0.01, "line", (neck, extra[HEAD], subject.skin, arm))
    )
    head_r = 0.105 * subject.height / 1.75 * scale
    items.append((float(extra_depth[HEAD]), "head", (extra[HEAD], head_r)))
    items.extend(_hand_items(pts, depth, subject, arm, style))
    return items


def _hand_items(
    pts: np.ndarray, depth: np.ndarray, subject: Subject, arm: int, style: Style | None
) -> list[tuple[float, str, tuple]]:
    """Both hands, the weapon hand's fist round the grip, and (styled) the stick's pieces."""
    k = layout
    weapon = k.L_WRIST if subject.handedness == "left" else k.R_WRIST
    items: list[tuple[float, str, tuple]] = []
    for wr in (k.L_WRIST, k.R_WRIST):
        items.append((float(depth[wr]) + 1e-3, "circle", (pts[wr], arm * 0.75, subject.skin)))
    # The weapon hand is a fist closed round the grip.
    fist_depth = float(depth[weapon] + depth[k.GRIP]) / 2 + 2e-3
    items.append((fist_depth, "line", (pts[weapon], pts[k.GRIP], subject.skin, int(arm * 1.3))))
    if style is not None:
        g, t, dg, dt = pts[k.GRIP], pts[k.TIP], float(depth[k.GRIP]), float(depth[k.TIP])
        for j in range(4):
            key = dg + (dt - dg) * (j + 0.5) / 4
            if j == 0:  # the fist closes over the grip end
                key = min(key, fist_depth - 1e-4)
            items.append((key, "stick", (g + (t - g) * j / 4, g + (t - g) * (j + 1) / 4)))
    return items


def _paint(
    img: np.ndarray,
    what: str,
    a: tuple,
    pts: np.ndarray,
    depth: np.ndarray,
    subject: Subject,
    style: Style | None,
) -> None:
    """Draw one item of :func:`_body_items` onto ``img`` (in place)."""
    import cv2

    sh, f = _SH, _F
    if what == "line":
        cv2.line(img, _ip(a[0]), _ip(a[1]), a[2], a[3], cv2.LINE_AA, sh)
        for end in a[:2]:
            cv2.circle(img, _ip(end), int(a[3] * f / 2), a[2], -1, cv2.LINE_AA, sh)
    elif what == "poly":
        cv2.fillPoly(img, [np.round(a[0] * f).astype(np.int32)], a[1], cv2.LINE_AA, sh)
    elif what == "circle":
        cv2.circle(img, _ip(a[0]), int(a[1] * f), a[2], -1, cv2.LINE_AA, sh)
    elif what == "stick":
        cv2.line(img, _ip(a[0]), _ip(a[1]), style.stick_color, style.stick_px, cv2.LINE_AA, sh)
    else:  # head with a hint of a face toward the nose
        cv2.circle(img, _ip(a[0]), int(a[1] * f), subject.skin, -1, cv2.LINE_AA, sh)
        face = tuple(int(v * 0.85) for v in subject.skin)
        for e in (layout.L_EYE, layout.R_EYE):
            if depth[e] > depth[layout.NOSE] - 0.2:
                cv2.circle(img, _ip(pts[e]), int(1.5 * f), face, -1, cv2.LINE_AA, sh)


# ---------------------------------------------------------------------------------- scenes
@dataclass
class Scene:
    """One rendered sample before it is written.

    Attributes:
        kp3d: ``(19, 3)`` body-frame metres.
        truth: ``(19, 3)`` clean pixels ``x, y, v``.
        label: ``(19, 3)`` labelled pixels (errors + jitter; a missing point is NaN, v 0).
        camera: The fitted :class:`Camera` (``scale`` = pixels per metre).
        error_kind: One of :data:`ERROR_KINDS` (or ``no_detection`` for video frames).
        foreshortened: Whether the clean projected stick is foreshortened.
        depth: ``(19,)`` camera depth (metres, larger = nearer).
        extra_px, extra_depth: Drawing helpers (head centre, toes).
        error_magnitude: The injected error's size (factor, degrees or forearm lengths, as
            :func:`apply_error` takes it); NaN for none, swap and tip_missing.
        stick_ratio: Clean projected stick length / (real length * ``camera.scale``).
    """

    kp3d: np.ndarray
    truth: np.ndarray
    label: np.ndarray
    camera: Camera
    error_kind: str
    foreshortened: bool
    depth: np.ndarray
    extra_px: np.ndarray
    extra_depth: np.ndarray
    error_magnitude: float = math.nan
    stick_ratio: float = math.nan


def _visibility(depth: np.ndarray, head_depth: float) -> np.ndarray:
    """2 everywhere except an ear hidden behind the head (1)."""
    v = np.full(layout.NUM_KEYPOINTS, 2.0)
    for ear in (layout.L_EAR, layout.R_EAR):
        if depth[ear] < head_depth - 0.035:
            v[ear] = 1.0
    return v


def is_foreshortened(truth_xy: np.ndarray, subject: Subject, scale: float) -> bool:
    """Clean projected stick shorter than :data:`FORESHORTENED_RATIO` of ``length * scale``."""
    proj = float(np.linalg.norm(truth_xy[layout.TIP] - truth_xy[layout.GRIP]))
    return proj < FORESHORTENED_RATIO * subject.stick_length * scale


def sample_image(
    subject: Subject,
    stance: str,
    error_kind: str,
    rng: np.random.Generator,
    size: int = 320,
    randomise: bool = False,
) -> Scene:
    """Pose, camera, error and jitter for one still image (not yet rendered).

    With ``randomise``: the wide camera (:func:`random_camera`), framing fill 0.4-0.9, error
    sizes from :data:`RANDOM_ERROR_RANGES` and jitter scaled to the image size (the detector-like
    body noise is added later, by :func:`detector_noise`).
    """
    params = stance_params(stance) + rng.normal(0, 1, stance_params(stance).shape) * _noise_sigma()
    kp3d, extra3d = pose_3d(subject, params)
    cam = random_camera(rng, wide=randomise)
    metric, depth = cam.project_metric(kp3d)
    extra_m, extra_depth = cam.project_metric(extra3d)
    # The drawn head is a disc around its centre: keep it in frame too.
    r = 0.105 * subject.height / 1.75
    fit_pts = np.concatenate([metric, extra_m, extra_m[HEAD] + [[r, r], [-r, -r]]])
    if randomise:
        cam = fit_camera(cam, fit_pts, rng, size, fill=(0.4, 0.9), margin=size * 0.04)
    else:
        cam = fit_camera(cam, fit_pts, rng, size)
    # Framing follows the clean figure only (so it says nothing about the error); an error
    # whose points would leave the frame is redrawn, and only if that keeps failing is the
    # figure re-framed around the erroneous points too.
    for _ in range(25):
        mag, sign, spread = _draw_error(error_kind, rng, randomise)
        label_m = apply_error(metric, error_kind, mag, subject.forearm, sign, spread)
        px = cam.to_pixels(label_m[np.isfinite(label_m).all(1)])
        if np.all((px >= 1) & (px <= size - 2)):
            break
    else:
        fit_pts = np.concatenate([fit_pts, label_m[np.isfinite(label_m).all(1)]])
        cam = fit_camera(cam, fit_pts, rng, size, margin=2.0, keep_scale=True)
    scene = _finish_scene(
        kp3d,
        metric,
        depth,
        extra_m,
        extra_depth,
        label_m,
        cam,
        error_kind,
        subject,
        rng,
        size,
        jitter=LABEL_JITTER_PX * size / 320 if randomise else LABEL_JITTER_PX,
    )
    scene.error_magnitude = mag if error_kind in RANDOM_ERROR_RANGES else math.nan
    return scene


def _finish_scene(
    kp3d,
    metric,
    depth,
    extra_m,
    extra_depth,
    label_m,
    cam,
    error_kind,
    subject,
    rng,
    size,
    jitter: float = LABEL_JITTER_PX,
) -> Scene:
    truth_xy = cam.to_pixels(metric)
    vis = _visibility(depth, float(extra_depth[HEAD]))
    truth = np.concatenate([truth_xy, vis[:, None]], 1)
    lab_xy = cam.to_pixels(label_m) + rng.normal(0, jitter, metric.shape)
    lab_xy = np.clip(lab_xy, 0, size - 1)
    label = np.concatenate([lab_xy, vis[:, None]], 1)
    missing = ~np.isfinite(label[:, :2]).all(1)
    label[missing] = [np.nan, np.nan, 0]
    return Scene(
        kp3d,
        truth,
        label,
        cam,
        error_kind,
        is_foreshortened(truth_xy, subject, cam.scale),
        depth,
        cam.to_pixels(extra_m),
        extra_depth,
        stick_ratio=float(
            np.linalg.norm(truth_xy[layout.TIP] - truth_xy[layout.GRIP])
            / (subject.stick_length * cam.scale)
        ),
    )


def detector_noise(
    label: np.ndarray,
    level: float,
    torso_px: float,
    error_kind: str,
    rng: np.random.Generator,
    size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Detector-like noise on the body points of a label, and confidences for all 19 points.

    Each body keypoint moves by a Gaussian of sigma ``level * BODY_NOISE_WEIGHT[k] * torso_px``
    (``level`` is the wrist sigma in torso sizes; elbows get 0.7 of it, the rest less); each
    wrist and elbow also jumps 0.3-0.6 torso sizes with probability ``level``. A body point's
    confidence falls with its actual displacement ``d``: ``0.97 - 2.2 d / torso_px`` + N(0,
    0.03), clipped to 0.02-0.99 (under 0.5 the YOLO reader makes it ``v = 1``); hidden ears
    get 0.6 of theirs. The stick points keep their position; their confidences drop (not to
    zero) when they carry an error, as a detector's do.

    Args:
        label: ``(19, 3)`` labelled pixels (NaN where missing).
        level: Wrist noise sigma in torso sizes (0 .. :data:`RANDOM_BODY_NOISE`).
        torso_px: Torso size in pixels (the subject's 3D torso length times the camera scale).
        error_kind: The label's stick error (lowers the stick confidences).
        rng: Random source.
        size: Image size (points are clipped into it).

    Returns:
        ``(label, conf)``: the noisy ``(19, 3)`` label and ``(19,)`` confidences.
    """
    out = label.copy()
    nb = layout.NUM_BODY
    sigma = level * BODY_NOISE_WEIGHT * torso_px
    d = rng.normal(0, 1, (nb, 2)) * sigma[:, None]
    jump = rng.random(nb) < level
    jump &= np.isin(np.arange(nb), [layout.L_WRIST, layout.R_WRIST, layout.L_ELBOW, layout.R_ELBOW])
    theta = rng.uniform(0, 2 * math.pi, nb)
    far = rng.uniform(0.3, 0.6, nb) * torso_px
    d[jump] += np.stack([np.cos(theta), np.sin(theta)], 1)[jump] * far[jump, None]
    out[:nb, :2] = np.clip(out[:nb, :2] + d, 0, size - 1)
    moved = np.linalg.norm(out[:nb, :2] - label[:nb, :2], axis=1)
    conf = np.empty(layout.NUM_KEYPOINTS)
    conf[:nb] = 0.97 - 2.2 * moved / max(torso_px, 1e-6) + rng.normal(0, 0.03, nb)
    conf[nb:] = np.array([0.88, 0.82]) + rng.normal(0, 0.035, 2)
    if error_kind in ("wrong_angle", "too_short", "too_long", "swap"):
        conf[layout.TIP] = rng.uniform(0.35, 0.8)
    if error_kind in ("grip_off", "swap"):
        conf[layout.GRIP] = rng.uniform(0.35, 0.8)
    conf = np.clip(conf, 0.02, 0.99)
    conf[label[:, 2] == 1] *= 0.6
    return out, conf


# ---------------------------------------------------------------------------------- writing
def _yolo_line(label: np.ndarray, size: int, conf: np.ndarray | None = None) -> str:
    """One YOLO pose line: class 0, box from the present points, 19 x y v/conf triplets."""
    present = np.isfinite(label[:, :2]).all(1)
    pts = label[present, :2]
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.06 * (hi - lo) + 4
    lo, hi = np.clip(lo - pad, 0, size), np.clip(hi + pad, 0, size)
    box = np.concatenate([(lo + hi) / 2, hi - lo]) / size
    xyv = np.zeros((layout.NUM_KEYPOINTS, 3))
    xyv[present, :2] = label[present, :2] / size
    if conf is None:
        xyv[present, 2] = label[present, 2]
        return "0 " + " ".join(f"{v:.6f}" for v in np.concatenate([box, xyv.ravel()]))
    xyv[present, 2] = conf[present]
    return "0 " + " ".join(f"{v:g}" for v in np.round(np.concatenate([box, xyv.ravel()]), 6))


def _truth_row(
    file_name: str,
    video: str,
    frame: int | str,
    stance: str,
    subject: Subject,
    scene_truth: np.ndarray,
    error_kind: str,
    foreshortened: bool,
    extra: list | None = None,
) -> list:
    """One ``truth.csv`` row.

    ``extra`` (randomised mode) holds the :data:`RANDOM_TRUTH_COLUMNS` values, appended at the
    end.
    """
    row = [
        file_name,
        video,
        frame,
        stance,
        subject.name,
        subject.handedness,
        error_kind,
        int(foreshortened),
    ]
    return row + np.round(scene_truth, 3).ravel().tolist() + (extra or [])


TRUTH_COLUMNS: tuple[str, ...] = (
    "file_name",
    "video",
    "frame_index",
    "stance",
    "subject",
    "handedness",
    "error_kind",
    "foreshortened",
    *[f"{a}{i}" for i in range(layout.NUM_KEYPOINTS) for a in "xyv"],
)


def _encode_jpg(img: np.ndarray, quality: int = 85) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG image.")
    return buf.tobytes()


def taxonomy() -> dict:
    """The sample taxonomy document (validates against ``schemas/taxonomy.schema.json``)."""
    return {
        "version": 1,
        "families": list(FAMILIES),
        "chambers": list(CHAMBERS),
        "stances": [
            {
                "name": f"{f}_{c}",
                "family": f,
                "chamber": c,
                "description": f"{_FAMILY_TEXT[f]}; {_CHAMBER_TEXT[c]}",
            }
            for f in FAMILIES
            for c in CHAMBERS
        ],
    }


def data_yaml() -> str:
    """The ultralytics ``data.yaml`` text (``path`` empty: resolves to the yaml's folder)."""
    names = "\n".join(f"    - {n}" for n in layout.KEYPOINT_NAMES)
    return (
        "# Synthetic Arnis sample set (toolkit.synth); regenerate: python -m samples.generate\n"
        "path:\n"
        "train: images\n"
        "val: images\n"
        f"kpt_shape: [{layout.NUM_KEYPOINTS}, 3]\n"
        f"flip_idx: [{', '.join(str(i) for i in layout.FLIP_IDX)}]\n"
        "names:\n"
        "  0: person\n"
        "kpt_names:\n"
        "  0:\n"
        f"{names}\n"
    )


def generate(
    out: Path,
    per_class: int = 3,
    subjects: int = 8,
    videos: int = 4,
    frames_per_video: int = 120,
    seed: int = 0,
    image_size: int = 320,
    randomise: bool = False,
) -> Path:
    """Write a synthetic sample set into ``out`` (see the module docstring for the layout).

    Args:
        out: Target directory (created; files already there are overwritten, others kept). The
            CLI and ``python -m samples.generate`` wrap this in a staged directory.
        per_class: Images per subject and stance.
        subjects: Number of subjects ``s01``...
        videos: Number of video clips.
        frames_per_video: Frames per clip (at :data:`VIDEO_FPS`).
        seed: Everything is deterministic given the arguments.
        image_size: Width = height of images and videos, in pixels (ignored with
            ``randomise``: each image draws its size from :data:`RANDOM_IMAGE_SIZES`).
        randomise: Domain-randomised mode (see the module docstring): backgrounds, clothing,
            stick look, image size, camera, proportions, detector-like body noise and the wider
            error ranges all vary per image (per clip in video); ``truth.csv`` gets the
            :data:`RANDOM_TRUTH_COLUMNS`. ``False`` writes exactly what it always has.

    Returns:
        ``out``.
    """
    import cv2

    for name, val, lo in (
        ("per_class", per_class, 0),
        ("subjects", subjects, 1),
        ("videos", videos, 0),
        ("frames_per_video", frames_per_video, 10),
        ("image_size", image_size, 64),
    ):
        if int(val) < lo:
            raise ValueError(f"Expected '{name}' to be at least {lo}, but got {val}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    subs = make_subjects(subjects, seed, randomise=randomise)
    (out / "taxonomy.json").write_text(json.dumps(taxonomy(), indent=2) + "\n", "utf-8")
    (out / "data.yaml").write_text(data_yaml(), "utf-8")

    truth_rows: list[list] = []
    csv_rows: list[str] = ["file,stance,subject"]
    jobs = [
        (si, ti, n)
        for ti in range(len(STANCES))
        for si in range(subjects)
        for n in range(per_class)
    ]
    kinds = error_quota(len(jobs), seed, RANDOM_ERROR_RATES if randomise else None)
    for stance in STANCES:
        (out / "images" / stance).mkdir(parents=True, exist_ok=True)
        (out / "labels" / stance).mkdir(parents=True, exist_ok=True)
    for (si, ti, n), kind in zip(jobs, kinds, strict=True):
        sj, stance = subs[si], STANCES[ti]
        if randomise:
            rel = f"{stance}/{sj.name}_{n:03d}"
            row = _write_random_image(out, rel, sj, stance, str(kind), seed, (si, ti, n))
            csv_rows.append(f"{rel}.jpg,{stance},{sj.name}")
            truth_rows.append(row)
            continue
        rng = np.random.default_rng([seed, 1, si, ti, n])
        scene = sample_image(sj, stance, kind, rng, image_size)
        img = render(
            scene.truth[:, :2],
            scene.depth,
            scene.extra_px,
            scene.extra_depth,
            sj,
            scene.camera.scale,
            _background(rng, image_size),
            rng,
        )
        rel = f"{stance}/{sj.name}_{n:03d}"
        (out / "images" / f"{rel}.jpg").write_bytes(_encode_jpg(img))
        (out / "labels" / f"{rel}.txt").write_text(_yolo_line(scene.label, image_size) + "\n")
        csv_rows.append(f"{rel}.jpg,{stance},{sj.name}")
        truth_rows.append(
            _truth_row(f"{rel}.jpg", "", "", stance, sj, scene.truth, kind, scene.foreshortened)
        )
    (out / "labels.csv").write_text("\n".join(csv_rows) + "\n", "utf-8")

    if videos:
        (out / "videos").mkdir(exist_ok=True)
    for vi in range(videos):
        order = [i for i in _VIDEO_SUBJECT_ORDER if i < subjects] + list(range(8, subjects))
        sj = subs[order[vi % len(order)]]
        truth_rows += _write_video(
            out / "videos", vi, sj, frames_per_video, seed, image_size, cv2, randomise
        )

    columns = list(TRUTH_COLUMNS) + (list(RANDOM_TRUTH_COLUMNS) if randomise else [])
    truth = pd.DataFrame(truth_rows, columns=columns)
    truth.to_csv(out / "truth.csv", index=False, float_format="%.3f")
    return out


def _write_random_image(
    out: Path, rel: str, sj: Subject, stance: str, kind: str, seed: int, key: tuple[int, ...]
) -> list:
    """Render and write one randomised still image and its label; returns its truth row."""
    rng = np.random.default_rng([seed, 11, *key])
    size = int(rng.choice(RANDOM_IMAGE_SIZES))
    shirt, pants, skin = random_colours(rng)
    sj = replace(sj, shirt=shirt, pants=pants, skin=skin)
    style = random_style(rng)
    scene = sample_image(sj, stance, kind, rng, size, randomise=True)
    background = random_background(rng, size)
    img = render(
        scene.truth[:, :2],
        scene.depth,
        scene.extra_px,
        scene.extra_depth,
        sj,
        scene.camera.scale,
        background,
        rng,
        style=style,
    )
    label, conf = detector_noise(
        scene.label, style.body_noise, sj.torso * scene.camera.scale, kind, rng, size
    )
    (out / "images" / f"{rel}.jpg").write_bytes(_encode_jpg(img, style.jpeg_quality))
    (out / "labels" / f"{rel}.txt").write_text(_yolo_line(label, size, conf) + "\n")
    extra = [scene.error_magnitude, 1, style.body_noise, scene.stick_ratio]
    return _truth_row(
        f"{rel}.jpg", "", "", stance, sj, scene.truth, kind, scene.foreshortened, extra
    )


# ---------------------------------------------------------------------------------- videos
def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def video_schedule(
    frames: int, rng: np.random.Generator
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Stances visited and, per frame, the segment index and blend toward the next stance.

    Returns:
        ``(stances, seg, blend)``: ``seg[f]`` indexes ``stances``; ``blend[f]`` in 0..1 is the
        progress of the transition from ``stances[seg]`` to ``stances[seg + 1]`` (0 while held).
    """
    k = int(rng.integers(3, 5))
    first = int(rng.integers(len(STANCES)))
    stances = [STANCES[first]]
    while len(stances) < k:
        cand = STANCES[int(rng.integers(len(STANCES)))]
        if cand != stances[-1]:
            stances.append(cand)
    trans = max(4, min(14, frames // (3 * k)))
    while k > 1 and frames - trans * (k - 1) < 2 * k:  # very short clips visit fewer stances
        k -= 1
        stances = stances[:k]
    hold_total = frames - trans * (k - 1)
    w = rng.uniform(0.7, 1.3, k)
    holds = np.floor(w / w.sum() * hold_total).astype(int)
    holds[-1] += hold_total - holds.sum()
    seg = np.zeros(frames, int)
    blend = np.zeros(frames)
    f = 0
    for i in range(k):
        seg[f : f + holds[i]] = i
        f += holds[i]
        if i < k - 1:
            seg[f : f + trans] = i
            blend[f : f + trans] = (np.arange(trans) + 1) / (trans + 1)
            f += trans
    return stances, seg, blend


def _video_errors(
    frames: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame error kind, drift envelope (0..1) and no-detection mask for one clip."""
    kind = np.array(["none"] * frames, dtype=object)
    env = np.zeros(frames)
    used = np.zeros(frames, bool)
    n_drift = round(frames / 40)  # one 5-20 frame drift episode per ~40 frames
    for _ in range(n_drift * 10):
        if n_drift == 0:
            break
        length = int(rng.integers(5, min(21, max(6, frames // 4 + 1))))
        start = int(rng.integers(2, max(3, frames - length - 2)))
        if used[max(0, start - 3) : start + length + 3].any() or start + length > frames:
            continue
        kind[start : start + length] = rng.choice(
            ["wrong_angle", "too_short", "too_long", "grip_off"]
        )
        env[start : start + length] = np.sin(np.pi * (np.arange(length) + 0.5) / length)
        used[start : start + length] = True
        n_drift -= 1
    free = np.flatnonzero(~used)
    n_spike = max(1, round(frames / 30))
    spikes = rng.choice(free, size=min(n_spike, len(free)), replace=False)
    kind[spikes] = rng.choice(["swap", "tip_missing", "wrong_angle", "too_long"], len(spikes))
    used[spikes] = True
    free = np.flatnonzero(~used)
    nodet = np.zeros(frames, bool)
    nodet[rng.choice(free, size=min(max(1, frames // 40), len(free)), replace=False)] = True
    return kind, env, nodet


def _drift_magnitude(kind: str, env: float, peak: float, randomise: bool = False) -> float:
    """Error size for a drift frame: just past the threshold at the ends, ``peak`` mid-way.

    In randomised mode the ends start at the mild end of :data:`RANDOM_ERROR_RANGES`.
    """
    if randomise:
        start = {"wrong_angle": 12.0, "too_short": 0.85, "too_long": 1.2, "grip_off": 0.3}[kind]
    else:
        start = {"wrong_angle": 30.0, "too_short": 0.65, "too_long": 1.4, "grip_off": 0.6}[kind]
    return start + (peak - start) * env


def _write_video(
    vdir: Path,
    vi: int,
    sj: Subject,
    frames: int,
    seed: int,
    size: int,
    cv2,
    randomise: bool = False,
) -> list[list]:
    style: Style | None = None
    if randomise:
        rng = np.random.default_rng([seed, 12, vi])
        size = int(rng.choice([s for s in RANDOM_IMAGE_SIZES if s <= RANDOM_VIDEO_MAX_SIZE]))
        shirt, pants, skin = random_colours(rng)
        sj = replace(sj, shirt=shirt, pants=pants, skin=skin)
        style = random_style(rng)
    else:
        rng = np.random.default_rng([seed, 2, vi])
    stem = f"{sj.name}_drill"
    stances, seg, blend = video_schedule(frames, rng)
    sigma = _noise_sigma()
    visits = [stance_params(s) + rng.normal(0, 1, sigma.shape) * sigma * 0.7 for s in stances]
    t = np.arange(frames) / VIDEO_FPS
    sway = (
        sum(
            np.sin(2 * np.pi * rng.uniform(0.15, 0.6) * t[:, None] + rng.uniform(0, 6.3))
            for _ in range(2)
        )
        * sigma
        * 0.25
    )
    nxt = np.minimum(seg + 1, len(stances) - 1)
    b = _smoothstep(blend)[:, None]
    params = (
        np.stack([visits[s] for s in seg]) * (1 - b) + np.stack([visits[s] for s in nxt]) * b + sway
    )
    poses = [pose_3d(sj, p) for p in params]
    kp3d = np.stack([p[0] for p in poses])
    extra3d = np.stack([p[1] for p in poses])
    cam = random_camera(rng, wide=randomise)
    metric, depth = cam.project_metric(kp3d)
    extra_m, extra_depth = cam.project_metric(extra3d)
    r = 0.105 * sj.height / 1.75
    fit = np.concatenate(
        [metric.reshape(-1, 2), extra_m.reshape(-1, 2), extra_m[:, HEAD] + r, extra_m[:, HEAD] - r]
    )
    if randomise:
        cam = fit_camera(cam, fit, rng, size, fill=(0.5, 0.85), margin=size * 0.045)
    else:
        cam = fit_camera(cam, fit, rng, size, fill=(0.6, 0.8), margin=14.0)
    kind, env, nodet = _video_errors(frames, rng)
    # Each drift episode has its own peak, direction and spread.
    peaks = np.zeros(frames)
    signs = np.ones(frames)
    spreads = np.zeros(frames)
    prev = np.concatenate([np.array(["none"], dtype=object), kind[:-1]])
    starts = np.flatnonzero((kind != "none") & (prev != kind))
    for s in starts:
        e = s
        while e < frames and kind[e] == kind[s]:
            e += 1
        k = kind[s]
        if randomise and k in RANDOM_ERROR_RANGES and e - s == 1:  # a spike: any size
            peaks[s:e] = rng.uniform(*RANDOM_ERROR_RANGES[k])
        elif randomise:  # a drift episode: peaks from moderate to the range's far end
            peaks[s:e] = {
                "wrong_angle": rng.uniform(25, 70),
                "too_short": rng.uniform(0.45, 0.7),
                "too_long": rng.uniform(1.4, 1.9),
                "grip_off": rng.uniform(0.6, 1.5),
            }.get(k, 0.0)
        else:
            peaks[s:e] = {
                "wrong_angle": rng.uniform(45, 75),
                "too_short": rng.uniform(0.3, 0.45),
                "too_long": rng.uniform(1.6, 2.0),
                "grip_off": rng.uniform(0.9, 1.4),
                "swap": 0,
                "tip_missing": 0,
            }[k]
        signs[s:e] = rng.choice([-1.0, 1.0])
        spreads[s:e] = rng.uniform(0, math.radians(60))
    background = random_background(rng, size) if randomise else _background(rng, size)
    writer = cv2.VideoWriter(
        str(vdir / f"{stem}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (size, size)
    )
    if not writer.isOpened():
        raise RuntimeError("OpenCV could not open an mp4v VideoWriter.")
    ldir = vdir / f"{stem}_labels"
    ldir.mkdir(parents=True, exist_ok=True)
    rows: list[list] = []
    stance_rows = ["file,stance,subject"]
    conf_base = np.r_[np.full(layout.NUM_BODY, 0.93), 0.88, 0.82]
    try:
        for f in range(frames):
            k = str(kind[f])
            drift = env[f] > 0
            if randomise:
                mag = (
                    _drift_magnitude(k, env[f], peaks[f], True)
                    if drift
                    else float(peaks[f])  # spikes: their own size (0 for swap/tip_missing)
                )
            else:
                mag = (
                    _drift_magnitude(k, env[f], peaks[f])
                    if drift
                    else {"wrong_angle": 40.0, "too_long": 1.6}.get(k, 0.0)
                )
            label_m = apply_error(metric[f], k, mag, sj.forearm, signs[f], spreads[f])
            scene = _finish_scene(
                kp3d[f],
                metric[f],
                depth[f],
                extra_m[f],
                extra_depth[f],
                label_m,
                cam,
                k,
                sj,
                rng,
                size,
                jitter=LABEL_JITTER_PX * size / 320 if randomise else LABEL_JITTER_PX,
            )
            img = render(
                scene.truth[:, :2],
                scene.depth,
                scene.extra_px,
                scene.extra_depth,
                sj,
                cam.scale,
                background,
                rng,
                style=style,
            )
            writer.write(img)
            label_stance = stances[seg[f] + (1 if blend[f] >= 0.5 else 0)]
            virtual = f"{stem}/{f:06d}.jpg"
            stance_rows.append(f"{virtual},{label_stance},{sj.name}")
            extra = None
            if style is not None:
                sized = k in RANDOM_ERROR_RANGES and not nodet[f]
                extra = [mag if sized else math.nan, 1, style.body_noise, scene.stick_ratio]
            rows.append(
                _truth_row(
                    virtual,
                    stem,
                    f,
                    label_stance,
                    sj,
                    scene.truth,
                    "no_detection" if nodet[f] else k,
                    scene.foreshortened,
                    extra,
                )
            )
            if nodet[f]:
                continue
            if style is not None:
                label, conf = detector_noise(
                    scene.label, style.body_noise, sj.torso * cam.scale, k, rng, size
                )
                (ldir / f"{stem}_{f + 1}.txt").write_text(_yolo_line(label, size, conf) + "\n")
                continue
            conf = np.clip(conf_base + rng.normal(0, 0.035, layout.NUM_KEYPOINTS), 0.3, 0.99)
            conf[scene.truth[:, 2] < 2] *= 0.6
            if k in ("wrong_angle", "too_short", "too_long", "swap"):
                conf[layout.TIP] = rng.uniform(0.35, 0.8)
            if k in ("grip_off", "swap"):
                conf[layout.GRIP] = rng.uniform(0.35, 0.8)
            (ldir / f"{stem}_{f + 1}.txt").write_text(_yolo_line(scene.label, size, conf) + "\n")
    finally:
        writer.release()
    (vdir / f"{stem}_stances.csv").write_text("\n".join(stance_rows) + "\n", "utf-8")
    return rows


# ---------------------------------------------------------------------------------- truth
def load_truth(sample_root: str | Path) -> pd.DataFrame:
    """``truth.csv`` of a sample set as a DataFrame.

    ``video`` is an empty string for still images, ``frame_index`` nullable Int64. Use
    :func:`truth_array` for the ``(N, 19, 3)`` points.
    """
    path = Path(sample_root) / "truth.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"No truth.csv in {sample_root}: is it a sample set made by "
            "`toolkit samples` / `python -m samples.generate`?"
        )
    df = pd.read_csv(
        path,
        dtype={
            "file_name": str,
            "video": str,
            "stance": str,
            "subject": str,
            "handedness": str,
            "error_kind": str,
        },
        keep_default_na=False,
        na_values={"frame_index": [""]},
    )
    df["frame_index"] = df["frame_index"].astype("Int64")
    df["foreshortened"] = df["foreshortened"].astype(int)
    # Sets written without --randomise have no randomised-mode columns: give them the
    # "unknown / not randomised" values so every set reads the same way.
    for col in RANDOM_TRUTH_COLUMNS:
        if col not in df:
            df[col] = 0 if col == "randomised" else np.nan
        if col == "randomised":
            df[col] = df[col].astype(int)
        else:
            df[col] = pd.to_numeric(df[col].replace("", np.nan), errors="coerce")
    return df


def truth_array(truth: pd.DataFrame) -> np.ndarray:
    """``(N, 19, 3)`` clean keypoints (pixels) from a :func:`load_truth` frame.

    NaN x/y where ``v == 0`` (the Dataset convention).
    """
    cols = [f"{a}{i}" for i in range(layout.NUM_KEYPOINTS) for a in "xyv"]
    kp = truth[cols].to_numpy(np.float64).reshape(-1, layout.NUM_KEYPOINTS, 3)
    kp[kp[..., 2] <= 0, :2] = np.nan
    return kp


def truth_keypoints(
    ds, sample_root: str | Path, strict: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Clean truth and error kind aligned to the annotation rows of ``ds``.

    Args:
        ds: A :class:`~toolkit.dataset.Dataset` imported from a sample set.
        sample_root: The sample set directory (holding ``truth.csv``).
        strict: Raise when a row has no truth; otherwise it gets NaN points and ``"unknown"``.

    Returns:
        ``(keypoints, error_kind)``: ``(N, 19, 3)`` float64 (NaN x/y for missing points) and
        ``(N,)`` object array of :data:`ERROR_KINDS` values, row ``i`` ↔ ``ds.keypoints[i]``.
    """
    truth = load_truth(sample_root)
    rows = truth_index(ds, sample_root, strict, truth=truth)
    kp = np.full((len(rows), layout.NUM_KEYPOINTS, 3), np.nan)
    kp[..., 2] = 0
    kinds = np.array(["unknown"] * len(rows), dtype=object)
    ok = rows >= 0
    kp[ok] = truth_array(truth)[rows[ok]]
    kinds[ok] = truth["error_kind"].to_numpy(object)[rows[ok]]
    return kp, kinds


def truth_index(
    ds, sample_root: str | Path, strict: bool = True, truth: pd.DataFrame | None = None
) -> np.ndarray:
    """``(N,)`` row of ``truth.csv`` for each annotation row of ``ds`` (-1 where none).

    Use it to read any truth column per annotation, e.g. ``error_magnitude``, ``stick_ratio``
    or ``foreshortened``: ``load_truth(root)["stick_ratio"].to_numpy()[truth_index(ds, root)]``
    (mind the -1 rows with ``strict=False``). Matching as in :func:`truth_keypoints`.

    Args:
        ds: A :class:`~toolkit.dataset.Dataset` imported from a sample set.
        sample_root: The sample set directory (holding ``truth.csv``).
        strict: Raise ``ValueError`` when a row has no truth.
        truth: The :func:`load_truth` table, if already loaded.
    """
    if truth is None:
        truth = load_truth(sample_root)
    index = {name: i for i, name in enumerate(truth["file_name"].tolist())}
    table = ds.frame_table()
    stems = {v["id"]: Path(v["file_name"]).stem for v in ds.videos}
    names = table["file_name"].astype(object).tolist()
    vids = table["video_id"].tolist()
    frames = table["frame_index"].tolist()
    rows = np.full(len(table), -1)
    for i, name in enumerate(names):
        row = _lookup(index, name)
        if (
            row < 0
            and vids[i] is not pd.NA
            and vids[i] is not None
            and vids[i] in stems
            and frames[i] is not pd.NA
            and frames[i] is not None
        ):
            row = index.get(f"{stems[vids[i]]}/{int(frames[i]):06d}.jpg", -1)
        rows[i] = row
    bad = np.flatnonzero(rows < 0)
    if len(bad) and strict:
        raise ValueError(
            f"Expected every dataset row to have truth in {sample_root}/truth.csv, "
            f"but {len(bad)} do not (first: {names[bad[0]]!r})."
        )
    return rows


def _lookup(index: dict[str, int], name) -> int:
    """Exact name, else the same name with leading folders stripped (``images/x/y.jpg``)."""
    if not isinstance(name, str):
        return -1
    parts = name.split("/")
    for i in range(len(parts)):
        row = index.get("/".join(parts[i:]))
        if row is not None:
            return row
    return -1


# ---------------------------------------------------------------------- 2D stick figures
def stick_figures(
    n: int,
    seed: int = 0,
    *,
    torso: float = 100.0,
    stick: float = 1.4,
    foreshortened: float = 0.15,
    n_stances: int = 3,
    center: tuple[float, float] = (400.0, 460.0),
    stance_angles: tuple[float, ...] = (10.0, 60.0, -100.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clean upright 2D poses holding a stick, fast enough for a million rows.

    No camera and no rendering: a vectorised builder for tests and speed benchmarks where
    :func:`generate`'s 3D subjects would be overkill. About 70% hold the stick in the right hand.
    The stick leaves the grip at ``stance_angles[stance]`` degrees (± 6) from the forearm, with
    length ``stick`` torso sizes, shortened to 35-80% in a ``foreshortened`` share of the rows.

    Returns:
        ``kp (n, 19, 3)`` (all points visible), ``stance (n,)`` indices into ``stance_angles``,
        ``short (n,)`` bool (the foreshortened rows).
    """
    rng = np.random.default_rng(seed)
    kp = np.zeros((n, layout.NUM_KEYPOINTS, 3))
    kp[..., 2] = 2
    cx, cy = center
    c = np.stack([rng.uniform(cx - 70, cx + 70, n), rng.uniform(cy - 20, cy + 20, n)], 1)
    t = torso * rng.uniform(0.9, 1.1, n)
    z = np.zeros(n)

    def put(i: int, p: np.ndarray) -> None:
        kp[:, i, :2] = p

    put(layout.L_HIP, c + np.stack([0.22 * t, z], 1))
    put(layout.R_HIP, c - np.stack([0.22 * t, z], 1))
    sh = c - np.stack([z, t], 1)
    put(layout.L_SHOULDER, sh + np.stack([0.35 * t, z], 1))
    put(layout.R_SHOULDER, sh - np.stack([0.35 * t, z], 1))
    put(layout.NOSE, sh - np.stack([z, 0.4 * t], 1))
    for i, d in (
        (layout.L_EYE, 0.06),
        (layout.R_EYE, -0.06),
        (layout.L_EAR, 0.12),
        (layout.R_EAR, -0.12),
    ):
        put(i, sh + np.stack([d * t, -0.44 * t], 1))
    for k, h, a, d in (
        (layout.L_KNEE, layout.L_HIP, layout.L_ANKLE, 1),
        (layout.R_KNEE, layout.R_HIP, layout.R_ANKLE, -1),
    ):
        put(k, kp[:, h, :2] + np.stack([0.05 * d * t, 0.9 * t], 1))
        put(a, kp[:, k, :2] + np.stack([z, 0.85 * t], 1))
    for s, (sho, elb, wri) in enumerate(
        (
            (layout.L_SHOULDER, layout.L_ELBOW, layout.L_WRIST),
            (layout.R_SHOULDER, layout.R_ELBOW, layout.R_WRIST),
        )
    ):
        a1 = np.radians(rng.uniform(-150, -30, n) + 180 * s)
        el = kp[:, sho, :2] + 0.55 * t[:, None] * np.stack([np.cos(a1), np.sin(a1)], 1)
        a2 = a1 + np.radians(rng.uniform(-60, 60, n))
        put(elb, el)
        put(wri, el + 0.5 * t[:, None] * np.stack([np.cos(a2), np.sin(a2)], 1))
    stance = rng.integers(0, n_stances, n)
    side = np.where(rng.random(n) < 0.7, 1, 0)  # 1 = right hand
    rows = np.arange(n)
    w = kp[rows, layout.L_WRIST + side, :2]
    e = kp[rows, layout.L_ELBOW + side, :2]
    u = (w - e) / np.linalg.norm(w - e, axis=1, keepdims=True)
    grip = w + 0.08 * t[:, None] * u
    ang = np.arctan2(u[:, 1], u[:, 0]) + np.radians(
        np.asarray(stance_angles, dtype=float)[stance] + rng.normal(0, 6, n)
    )
    short = rng.random(n) < foreshortened
    f = np.where(short, rng.uniform(0.35, 0.8, n), rng.uniform(0.95, 1.0, n))
    put(layout.GRIP, grip)
    put(layout.TIP, grip + (stick * t * f)[:, None] * np.stack([np.cos(ang), np.sin(ang)], 1))
    return kp, stance, short
