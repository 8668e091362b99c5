"""Angle features: names, invariances, missing points, weapon side, MediaPipe conversion."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.geometry import weapon_side
from toolkit.layout import FLIP_IDX, GRIP, L_ELBOW, L_WRIST, R_WRIST, TIP
from trainer.features import (
    FEATURE_NAMES,
    LEFT,
    MEDIAPIPE_TO_COCO,
    RIGHT,
    UNKNOWN,
    angle_features,
    mediapipe33_to_coco17,
)

# A person facing the camera (their right is on the image's left), stick raised in the RIGHT
# hand (index 10), image coordinates with y down.
BASE = np.array(
    [
        [100, 40], [105, 35], [95, 35], [110, 38], [90, 38],  # nose, eyes, ears
        [120, 70], [80, 70],  # shoulders L, R
        [130, 100], [60, 90],  # elbows
        [135, 130], [50, 60],  # wrists
        [112, 140], [88, 140],  # hips
        [115, 180], [80, 182],  # knees
        [118, 220], [72, 221],  # ankles
        [48, 55], [75, 5],  # grip (at the right wrist), tip
    ],
    dtype=np.float64,
)  # fmt: skip

# Under a horizontal flip with the left/right swap these change sign...
SIGNED_IMAGE = {"trunk_lean", "stick_vertical", "tip_lateral"}
# ...these absolute-side ones change sign AND swap sides...
SIGNED_SIDED = {"wrist_lateral", "knee_lateral"}


def poses(n: int = 40, seed: int = 0) -> np.ndarray:
    """``n`` jittered copies of BASE as (n, 19, 3) with v = 2."""
    rng = np.random.default_rng(seed)
    xy = BASE[None] + rng.normal(0, 6, size=(n, 19, 2))
    return np.concatenate([xy, np.full((n, 19, 1), 2.0)], axis=-1)


def col(X: np.ndarray, name: str) -> np.ndarray:
    return X[:, FEATURE_NAMES.index(name)]


def test_names_and_shape():
    X, names = angle_features(poses(7))
    assert X.shape == (7, len(FEATURE_NAMES)) and X.dtype == np.float64
    assert names == list(FEATURE_NAMES) and len(set(names)) == len(names)
    for expected_name in (
        "elbow_left",
        "elbow_weapon",
        "knee_right",
        "shoulder_off",
        "trunk_lean",
        "stick_forearm",
        "stick_vertical",
        "stick_length_forearm",
        "weapon_is_left",
    ):
        assert expected_name in names
    assert np.isfinite(X).all()  # a complete pose has every feature
    X0, _ = angle_features(np.zeros((0, 19, 3)))
    assert X0.shape == (0, len(FEATURE_NAMES))


def test_known_values_on_a_simple_pose():
    kp = poses(1)
    kp[0, :, :2] = BASE
    X, _ = angle_features(kp)
    # Right arm: shoulder (80,70), elbow (60,90), wrist (50,60).
    u, v = np.array([20.0, -20.0]), np.array([-10.0, -30.0])
    elbow = np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))
    assert col(X, "elbow_right")[0] == pytest.approx(elbow)
    assert col(X, "elbow_weapon")[0] == pytest.approx(elbow)
    assert col(X, "weapon_is_left")[0] == 0.0
    stick, forearm = BASE[TIP] - BASE[GRIP], BASE[R_WRIST] - np.array([60.0, 90.0])
    assert col(X, "stick_length_forearm")[0] == pytest.approx(
        np.linalg.norm(stick) / np.linalg.norm(forearm)
    )
    # Tip up and to the image right of the grip: positive signed angle from vertical.
    expected_sv = np.degrees(np.arctan2(stick[0], -stick[1]))
    assert col(X, "stick_vertical")[0] == pytest.approx(expected_sv)
    assert 0 < expected_sv < 90
    assert col(X, "tip_height")[0] > 0  # tip above the shoulders


def test_translation_and_scale_invariance():
    kp = poses()
    X, _ = angle_features(kp)
    moved = kp.copy()
    moved[..., :2] = moved[..., :2] * 3.7 + np.array([250.0, -80.0])
    X2, _ = angle_features(moved)
    np.testing.assert_allclose(X2, X, rtol=1e-9, atol=1e-9)
    shrunk = kp.copy()
    shrunk[..., :2] *= 0.01  # metres-like units
    np.testing.assert_allclose(angle_features(shrunk)[0], X, rtol=1e-9, atol=1e-9)


def test_horizontal_flip_with_side_swap():
    kp = poses()
    X, names = angle_features(kp)
    flipped = kp[:, list(FLIP_IDX)].copy()
    flipped[..., 0] = 320.0 - flipped[..., 0]
    Xf, _ = angle_features(flipped)
    assert (col(X, "weapon_is_left") == 0).all() and (col(Xf, "weapon_is_left") == 1).all()
    checked = 0
    for j, name in enumerate(names):
        base = name.rsplit("_", 1)[0]
        if name.endswith(("_weapon", "_off")):
            want = X[:, j]  # weapon-relative, signed or not: unchanged
        elif name.endswith(("_left", "_right")) and name != "weapon_is_left":
            other = (
                name.replace("_left", "_TMP").replace("_right", "_left").replace("_TMP", "_right")
            )
            want = col(X, other) * (-1 if base in SIGNED_SIDED else 1)
        elif name == "weapon_is_left":
            want = 1 - X[:, j]
        elif name in SIGNED_IMAGE:
            want = -X[:, j]
        else:
            want = X[:, j]
        np.testing.assert_allclose(Xf[:, j], want, atol=1e-9, err_msg=name)
        checked += 1
    assert checked == len(FEATURE_NAMES)
    # The signed image angles really do change: they are not all zero.
    assert np.abs(col(X, "stick_vertical")).min() > 1


def test_missing_points_give_nan_only_where_used():
    kp = poses(5)
    kp[0, L_ELBOW, :2] = np.nan
    kp[0, L_ELBOW, 2] = 0
    kp[1, L_ELBOW, 2] = 0  # v == 0 with stale coordinates: missing too
    X, _ = angle_features(kp)
    for name in ("elbow_left", "shoulder_left", "shoulder_line_left", "forearm_vertical_left"):
        assert np.isnan(col(X, name)[:2]).all(), name
        assert np.isfinite(col(X, name)[2:]).all(), name
    # Weapon is the right hand: the weapon-side features do not need the left elbow.
    for name in ("elbow_right", "elbow_weapon", "stick_forearm", "knee_left", "trunk_lean"):
        assert np.isfinite(col(X, name)).all(), name
    assert np.isnan(col(X, "elbow_off")[:2]).all()


def test_seventeen_keypoints_leave_stick_and_weapon_features_nan():
    kp = poses(6)
    X19, names = angle_features(kp)
    X17, names17 = angle_features(kp[:, :17])
    assert names17 == names and X17.shape == X19.shape
    for j, name in enumerate(names):
        if name.startswith(("stick_", "tip_", "grip_")) or name.endswith(("_weapon", "_off")):
            assert np.isnan(X17[:, j]).all(), name
        elif name == "weapon_is_left":
            assert np.isnan(X17[:, j]).all()
        else:  # absolute body features do not depend on the stick
            np.testing.assert_allclose(X17[:, j], X19[:, j], err_msg=name)
    # Stick points missing in 19-keypoint data: the same as 17-keypoint data.
    nostick = kp.copy()
    nostick[:, 17:, :2] = np.nan
    nostick[:, 17:, 2] = 0
    np.testing.assert_array_equal(np.isnan(angle_features(nostick)[0]), np.isnan(X17))
    # Known handedness can be supplied for 17-keypoint data.
    X17w, _ = angle_features(kp[:, :17], weapon_side=np.full(6, RIGHT))
    np.testing.assert_allclose(col(X17w, "elbow_weapon"), col(X19, "elbow_weapon"))


def test_left_handed_pose_picks_left_wrist():
    kp = poses(4)
    # Move the grip to the LEFT wrist (COCO index 9), stick pointing down-left.
    kp[:, GRIP, :2] = kp[:, L_WRIST, :2] + 3
    kp[:, TIP, :2] = kp[:, L_WRIST, :2] + np.array([40.0, 60.0])
    assert (weapon_side(kp) == LEFT).all()
    X, _ = angle_features(kp)
    assert (col(X, "weapon_is_left") == 1).all()
    np.testing.assert_allclose(col(X, "elbow_weapon"), col(X, "elbow_left"))
    np.testing.assert_allclose(col(X, "elbow_off"), col(X, "elbow_right"))
    np.testing.assert_allclose(col(X, "knee_weapon"), col(X, "knee_left"))
    # Right-handed original for contrast.
    assert (weapon_side(poses(4)) == RIGHT).all()


def test_weapon_side_unknown_cases_and_the_subjects_usual_hand():
    kp = poses(3)
    kp[0, GRIP, :2] = np.nan  # no grip
    kp[1, [L_WRIST, R_WRIST], :2] = np.nan  # no wrists
    assert (weapon_side(kp[:2]) == UNKNOWN).all()
    X, _ = angle_features(kp[:2])
    assert np.isnan(col(X, "weapon_is_left")).all() and np.isnan(col(X, "elbow_weapon")).all()
    # The features use the one rule: a frame without a grip takes its subject's usual hand.
    X, _ = angle_features(kp, groups=np.array(["s1", "s1", "s1"]))
    assert (col(X, "weapon_is_left") == 0).all()
    only_left = poses(1)
    only_left[0, R_WRIST, :2] = np.nan  # the one visible wrist holds the grip
    assert weapon_side(only_left)[0] == LEFT


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="Expected 'keypoints'"):
        angle_features(np.zeros((3, 18, 3)))
    with pytest.raises(ValueError, match="Expected 'weapon_side'"):
        angle_features(poses(2), weapon_side=np.array([0, 5]))
    with pytest.raises(ValueError, match="Expected 'landmarks'"):
        mediapipe33_to_coco17(np.zeros((2, 17, 3)))


def test_mediapipe33_to_coco17():
    n = 3
    lm = np.zeros((n, 33, 3))
    lm[..., 0] = np.arange(33)  # x = MediaPipe index
    lm[..., 1] = -np.arange(33)
    lm[..., 2] = 99.0  # z, dropped
    lm[1, 15] = np.nan  # MediaPipe left wrist missing in frame 1
    kp = mediapipe33_to_coco17(lm)
    assert kp.shape == (n, 19, 3)
    np.testing.assert_array_equal(kp[0, :17, 0], MEDIAPIPE_TO_COCO)
    np.testing.assert_array_equal(kp[0, :17, 1], -np.array(MEDIAPIPE_TO_COCO))
    assert kp[0, L_WRIST, 0] == 15 and kp[0, R_WRIST, 0] == 16  # COCO 9 = left = MediaPipe 15
    assert (kp[:, :17, 2][~np.isnan(kp[:, :17, 0])] == 2).all()
    assert np.isnan(kp[1, L_WRIST, :2]).all() and kp[1, L_WRIST, 2] == 0
    assert np.isnan(kp[:, 17:, :2]).all() and (kp[:, 17:, 2] == 0).all()


def test_realdata_turoarnis_features(realdata):
    import pandas as pd

    path = realdata / "turoarnis" / "arnis_poses_coordinates.csv"
    if not path.exists():
        pytest.skip("turoarnis CSV absent")
    df = pd.read_csv(path)
    assert len(df) == 1182
    dedup = df.drop_duplicates()
    assert len(dedup) == 590
    lm = dedup.drop(columns="class").to_numpy(np.float64).reshape(-1, 33, 3)
    X, names = angle_features(mediapipe33_to_coco17(lm))
    assert X.shape == (590, len(FEATURE_NAMES))
    for name in ("elbow_left", "knee_right", "trunk_lean", "stance_width", "facing_camera"):
        assert np.isfinite(col(X, name)).all(), name
    assert np.isnan(col(X, "stick_forearm")).all()  # no stick in MediaPipe data
    # Elbow angles of real people lie in a plausible range.
    assert 20 < np.median(col(X, "elbow_right")) < 180
