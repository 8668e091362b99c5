"""Joint-angle features: the "angle features" Arnis practitioners feed to a random forest today.

:func:`angle_features` turns ``(N, 19, 3)`` keypoints (or 17-keypoint COCO data) into a fixed
table of scale-free, translation-free numbers: joint angles at the elbows, shoulders, hips and
knees, segment orientations, trunk lean, stance width, and the stick's angle to the forearm and to
the vertical, its length over the forearm's, where the tip is relative to the head and shoulders.

Conventions:

* Image coordinates, ``y`` pointing DOWN ("up" is ``(0, -1)``). Angles are in degrees.
* Missing points (NaN ``x``/``y``, or visibility ``v == 0``) make every feature that uses them NaN;
  the baselines impute. Zero-length segments also give NaN.
* The **weapon side** is the one rule, :func:`toolkit.geometry.weapon_side`: the wrist nearest
  the stick's grip (COCO ``9`` is the LEFT wrist), else the usual hand of the row's ``groups``
  entry (its subject), else unknown; no side is ever assumed. Without a grip (17-keypoint data)
  and without groups the weapon side is unknown and the weapon-relative features are NaN, unless
  the caller passes ``weapon_side``.
* Every limb feature comes twice: absolute (``*_left`` / ``*_right``) and relative to the weapon
  side (``*_weapon`` / ``*_off``). Unsigned angles and ratios are unchanged by a horizontal flip
  (with the flip's left/right swap, the weapon-relative ones stay put and the absolute left and
  right columns swap). Signed image angles (``trunk_lean``, ``stick_vertical``, ``*_lateral_left``
  ...) change sign under a flip; their ``*_weapon`` versions multiply by the side the weapon
  shoulder is on in the image, so they are flip-invariant ("toward the weapon side" is positive).
"""

from __future__ import annotations

import numpy as np

from toolkit.geometry import LEFT, RIGHT, UNKNOWN  # weapon side codes
from toolkit.layout import (
    GRIP,
    L_ANKLE,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    L_WRIST,
    NOSE,
    NUM_BODY,
    NUM_KEYPOINTS,
    R_ANKLE,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    R_WRIST,
    TIP,
)

__all__ = ["LEFT", "RIGHT", "UNKNOWN", "FEATURE_NAMES", "angle_features", "mediapipe33_to_coco17"]

#: MediaPipe Pose (33 landmarks) indices of the 17 COCO body keypoints, in COCO order.
MEDIAPIPE_TO_COCO: tuple[int, ...] = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)

_SIDE_IDX = {
    "left": {
        "shoulder": L_SHOULDER,
        "elbow": L_ELBOW,
        "wrist": L_WRIST,
        "hip": L_HIP,
        "knee": L_KNEE,
        "ankle": L_ANKLE,
    },
    "right": {
        "shoulder": R_SHOULDER,
        "elbow": R_ELBOW,
        "wrist": R_WRIST,
        "hip": R_HIP,
        "knee": R_KNEE,
        "ankle": R_ANKLE,
    },
}

#: Per-side features (suffixed ``_left``, ``_right``, ``_weapon``, ``_off``).
LIMB_FEATURES: tuple[str, ...] = (
    "elbow",  # shoulder-elbow-wrist, 180 = straight arm
    "shoulder",  # elbow-shoulder-hip: arm raised from the trunk
    "shoulder_line",  # elbow-shoulder-other shoulder: arm across the body vs out to the side
    "hip",  # shoulder-hip-knee
    "knee",  # hip-knee-ankle
    "upper_arm_vertical",  # shoulder->elbow vs image up, 0..180
    "forearm_vertical",  # elbow->wrist vs image up, 0..180
    "shin_vertical",  # knee->ankle vs image up, 0..180
    "wrist_height",  # (shoulder-mid y - wrist y) / torso: above the shoulders > 0
    "wrist_lateral",  # wrist x from the shoulder-mid / torso (signed; see module doc)
    "knee_lateral",  # knee x from the hip-mid / torso (signed)
)
_SIDES = ("left", "right", "weapon", "off")

#: Whole-body features.
BODY_FEATURES: tuple[str, ...] = (
    "weapon_is_left",  # 1 left, 0 right, NaN unknown
    "facing_camera",  # 1 when the left shoulder is right of the right shoulder in the image
    "trunk_lean",  # hip-mid -> shoulder-mid vs image up, signed (+ = image right)
    "trunk_lean_abs",
    "trunk_lean_weapon",  # + = toward the weapon side
    "shoulder_drop_weapon",  # (weapon shoulder y - off shoulder y) / torso: + = weapon lower
    "shoulder_width",  # |shoulders| / torso (small when side-on)
    "hip_width",
    "stance_width",  # |ankles| / torso
    "nose_lateral_weapon",  # nose x from the shoulder-mid / torso, + = toward the weapon side
)

#: Stick features (NaN without grip/tip).
STICK_FEATURES: tuple[str, ...] = (
    "stick_vertical",  # grip->tip vs image up, signed (+ = image right)
    "stick_vertical_abs",  # 0 = tip straight up, 180 = straight down
    "stick_vertical_weapon",  # signed, + = tip toward the weapon side
    "stick_forearm",  # angle between weapon forearm (elbow->wrist) and the stick, 0..180
    "stick_forearm_weapon",  # same, signed and flip-invariant
    "stick_trunk",  # angle between the stick and the trunk's up direction
    "stick_length_forearm",  # |tip - grip| / |weapon forearm|
    "stick_length_torso",  # |tip - grip| / torso
    "grip_wrist_dist",  # |grip - weapon wrist| / |weapon forearm|
    "tip_height",  # (shoulder-mid y - tip y) / torso: above the shoulders > 0
    "tip_lateral",  # tip x from the shoulder-mid / torso, signed (+ = image right)
    "tip_lateral_weapon",  # + = toward the weapon side
    "tip_nose_dist",  # |tip - nose| / torso
)

FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"{f}_{s}" for s in _SIDES for f in LIMB_FEATURES) + BODY_FEATURES + STICK_FEATURES
)

_UP = np.array([0.0, -1.0])


def _as_xy(keypoints: np.ndarray) -> np.ndarray:
    """Validate ``(N, K, C)`` keypoints; return ``(N, 19, 2)`` float64 with missing = NaN."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1] not in (NUM_BODY, NUM_KEYPOINTS) or kp.shape[2] < 2:
        raise ValueError(
            f"Expected 'keypoints' to be an (N, 19, 3) or (N, 17, 3) array, but got shape "
            f"{kp.shape}."
        )
    xy = kp[..., :2].copy()
    if kp.shape[2] >= 3:
        xy[kp[..., 2] == 0] = np.nan  # v == 0: not labelled, whatever x/y hold
    xy[~np.isfinite(xy).all(-1)] = np.nan
    if kp.shape[1] == NUM_BODY:
        pad = np.full((kp.shape[0], NUM_KEYPOINTS - NUM_BODY, 2), np.nan)
        xy = np.concatenate([xy, pad], axis=1)
    return xy


def _norm(v: np.ndarray) -> np.ndarray:
    return np.hypot(v[..., 0], v[..., 1])


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 0] + u[..., 1] * v[..., 1]


def _signed_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed angle from ``u`` to ``v`` in degrees, (-180, 180]; NaN for zero-length vectors."""
    with np.errstate(invalid="ignore"):
        ang = np.degrees(np.arctan2(_cross(u, v), _dot(u, v)))
    return np.where((_norm(u) > 0) & (_norm(v) > 0), ang, np.nan)


def _between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Unsigned angle between ``u`` and ``v`` in degrees, 0..180."""
    return np.abs(_signed_between(u, v))


def _joint(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Interior angle at ``b`` of the chain ``a-b-c`` in degrees (180 = straight)."""
    return _between(a - b, c - b)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where(den > 0, out, np.nan)


def _sign(x: np.ndarray) -> np.ndarray:
    """+1 / -1, NaN for zero or NaN."""
    return np.where(x > 0, 1.0, np.where(x < 0, -1.0, np.nan))


def _pick(cond_left: np.ndarray, left: np.ndarray, right: np.ndarray, known: np.ndarray):
    out = np.where(cond_left[:, None], left, right)
    out[~known] = np.nan
    return out


def _side(xy: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """The one weapon-hand rule (:func:`toolkit.geometry.weapon_side`) on ``(N, 19, 2)`` xy."""
    from toolkit.geometry import weapon_side

    return weapon_side(xy, groups).astype(np.int8)


def angle_features(
    keypoints: np.ndarray,
    *,
    weapon_side: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Angle features per frame (the users' current approach), fully vectorised.

    Args:
        keypoints: ``(N, 19, 3)`` ``x, y, v`` (pixels or any unit: every feature is scale-free),
            missing = NaN ``x``/``y`` or ``v == 0``. ``(N, 17, 3)`` COCO data works too (stick
            features NaN).
        weapon_side: Optional ``(N,)`` override (0 left, 1 right, -1 unknown), e.g. known
            handedness for 17-keypoint data. Default: the one rule,
            :func:`toolkit.geometry.weapon_side` (the wrist nearest the grip, else the usual
            hand of the row's group).
        groups: Optional ``(N,)`` subject (or track) per row for that rule.

    Returns:
        ``(X, names)``: ``X`` float64 ``(N, F)`` with NaN where a feature's points are missing, and
        the ``F`` feature names (:data:`FEATURE_NAMES`).

    Shapes:
        keypoints ``(N, K, C)`` with ``K`` in {17, 19}, ``C >= 2`` → ``X`` ``(N, F)``.
    """
    xy = _as_xy(keypoints)
    n = xy.shape[0]
    if weapon_side is None:
        side = _side(xy, groups)
    else:
        side = np.asarray(weapon_side).astype(np.int8).reshape(-1)
        if side.shape != (n,) or not np.isin(side, (LEFT, RIGHT, UNKNOWN)).all():
            raise ValueError(
                f"Expected 'weapon_side' to be an ({n},) array of 0/1/-1, but got "
                f"{np.asarray(weapon_side).shape}."
            )
    known = side != UNKNOWN
    is_left = side == LEFT

    pts = {s: {k: xy[:, i] for k, i in idx.items()} for s, idx in _SIDE_IDX.items()}
    pts["weapon"] = {k: _pick(is_left, pts["left"][k], pts["right"][k], known) for k in pts["left"]}
    pts["off"] = {k: _pick(is_left, pts["right"][k], pts["left"][k], known) for k in pts["left"]}
    other = {"left": "right", "right": "left", "weapon": "off", "off": "weapon"}

    sh_mid = (xy[:, L_SHOULDER] + xy[:, R_SHOULDER]) / 2
    hip_mid = (xy[:, L_HIP] + xy[:, R_HIP]) / 2
    trunk = sh_mid - hip_mid
    torso = _norm(trunk)
    up = np.broadcast_to(_UP, trunk.shape)

    # Which way "toward the weapon side" points in the image: +1 when the weapon shoulder is
    # right of the other one (hips when a shoulder is missing). Flipping the image negates both
    # this and every signed image quantity, so their product is flip-invariant.
    lat = _sign(pts["weapon"]["shoulder"][:, 0] - pts["off"]["shoulder"][:, 0])
    lat_hip = _sign(pts["weapon"]["hip"][:, 0] - pts["off"]["hip"][:, 0])
    lat = np.where(np.isnan(lat), lat_hip, lat)
    lat_sign = {"left": 1.0, "right": 1.0, "weapon": lat, "off": lat}

    feats: dict[str, np.ndarray] = {}
    for s in _SIDES:
        p = pts[s]
        o = pts[other[s]]
        feats[f"elbow_{s}"] = _joint(p["shoulder"], p["elbow"], p["wrist"])
        feats[f"shoulder_{s}"] = _joint(p["elbow"], p["shoulder"], p["hip"])
        feats[f"shoulder_line_{s}"] = _joint(p["elbow"], p["shoulder"], o["shoulder"])
        feats[f"hip_{s}"] = _joint(p["shoulder"], p["hip"], p["knee"])
        feats[f"knee_{s}"] = _joint(p["hip"], p["knee"], p["ankle"])
        feats[f"upper_arm_vertical_{s}"] = _between(p["elbow"] - p["shoulder"], up)
        feats[f"forearm_vertical_{s}"] = _between(p["wrist"] - p["elbow"], up)
        feats[f"shin_vertical_{s}"] = _between(p["ankle"] - p["knee"], up)
        feats[f"wrist_height_{s}"] = _ratio(sh_mid[:, 1] - p["wrist"][:, 1], torso)
        feats[f"wrist_lateral_{s}"] = lat_sign[s] * _ratio(p["wrist"][:, 0] - sh_mid[:, 0], torso)
        feats[f"knee_lateral_{s}"] = lat_sign[s] * _ratio(p["knee"][:, 0] - hip_mid[:, 0], torso)

    w, off = pts["weapon"], pts["off"]
    lean = _signed_between(up, trunk)
    feats["weapon_is_left"] = np.where(known, is_left.astype(np.float64), np.nan)
    feats["facing_camera"] = (_sign(xy[:, L_SHOULDER, 0] - xy[:, R_SHOULDER, 0]) + 1) / 2
    feats["trunk_lean"] = lean
    feats["trunk_lean_abs"] = np.abs(lean)
    feats["trunk_lean_weapon"] = lat * lean
    feats["shoulder_drop_weapon"] = _ratio(w["shoulder"][:, 1] - off["shoulder"][:, 1], torso)
    feats["shoulder_width"] = _ratio(_norm(xy[:, L_SHOULDER] - xy[:, R_SHOULDER]), torso)
    feats["hip_width"] = _ratio(_norm(xy[:, L_HIP] - xy[:, R_HIP]), torso)
    feats["stance_width"] = _ratio(_norm(xy[:, L_ANKLE] - xy[:, R_ANKLE]), torso)
    feats["nose_lateral_weapon"] = lat * _ratio(xy[:, NOSE, 0] - sh_mid[:, 0], torso)

    stick = xy[:, TIP] - xy[:, GRIP]
    forearm = w["wrist"] - w["elbow"]
    stick_len = _norm(stick)
    forearm_len = _norm(forearm)
    sv = _signed_between(up, stick)
    feats["stick_vertical"] = sv
    feats["stick_vertical_abs"] = np.abs(sv)
    feats["stick_vertical_weapon"] = lat * sv
    sf = _signed_between(forearm, stick)
    feats["stick_forearm"] = np.abs(sf)
    feats["stick_forearm_weapon"] = lat * sf
    feats["stick_trunk"] = _between(trunk, stick)
    feats["stick_length_forearm"] = _ratio(stick_len, forearm_len)
    feats["stick_length_torso"] = _ratio(stick_len, torso)
    feats["grip_wrist_dist"] = _ratio(_norm(xy[:, GRIP] - w["wrist"]), forearm_len)
    feats["tip_height"] = _ratio(sh_mid[:, 1] - xy[:, TIP, 1], torso)
    tip_lat = _ratio(xy[:, TIP, 0] - sh_mid[:, 0], torso)
    feats["tip_lateral"] = tip_lat
    feats["tip_lateral_weapon"] = lat * tip_lat
    feats["tip_nose_dist"] = _ratio(_norm(xy[:, TIP] - xy[:, NOSE]), torso)

    names = list(FEATURE_NAMES)
    X = np.stack([feats[k] for k in names], axis=1) if n else np.zeros((0, len(names)))
    return X.astype(np.float64, copy=False), names


def mediapipe33_to_coco17(landmarks: np.ndarray) -> np.ndarray:
    """MediaPipe Pose's 33 landmarks → the 19-point layout (COCO-17 body, stick missing).

    Keeps ``x, y`` (MediaPipe's ``z`` or visibility column is dropped); present points get
    ``v = 2``, missing ones (non-finite) ``x = y = NaN, v = 0``, and so do grip and tip.

    Args:
        landmarks: ``(N, 33, C)`` with ``C >= 2``: image or world landmarks (world ones are metres,
            hip-centred, ``y`` down, which the scale-free angle features accept as they are).

    Returns:
        ``(N, 19, 3)`` float64 ``x, y, v``.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 3 or lm.shape[1] != 33 or lm.shape[2] < 2:
        raise ValueError(
            f"Expected 'landmarks' to be an (N, 33, 3) array of MediaPipe pose landmarks, but "
            f"got shape {lm.shape}."
        )
    out = np.full((lm.shape[0], NUM_KEYPOINTS, 3), np.nan)
    out[..., 2] = 0.0
    body = lm[:, MEDIAPIPE_TO_COCO, :2]
    ok = np.isfinite(body).all(-1)
    out[:, :NUM_BODY, :2] = np.where(ok[..., None], body, np.nan)
    out[:, :NUM_BODY, 2] = np.where(ok, 2.0, 0.0)
    return out
