"""Vectorised geometry: weapon hand, body scale, stick and forearm measures, NaN handling."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit import geometry as geo
from toolkit import layout


def _pose(grip=(60.0, 100.0), tip=(60.0, 20.0)) -> np.ndarray:
    """One upright pose: shoulders at y=100, hips at y=200 (torso 100 px), arms down."""
    kp = np.full((19, 3), np.nan)
    kp[:, 2] = 0
    pts = {
        layout.L_SHOULDER: (120, 100), layout.R_SHOULDER: (80, 100),
        layout.L_HIP: (115, 200), layout.R_HIP: (85, 200),
        layout.L_ELBOW: (130, 150), layout.R_ELBOW: (70, 150),
        layout.L_WRIST: (135, 190), layout.R_WRIST: (65, 110),
        layout.GRIP: grip, layout.TIP: tip,
    }  # fmt: skip
    for i, (x, y) in pts.items():
        kp[i] = (x, y, 2)
    return kp


def test_weapon_side_is_the_wrist_nearest_the_grip_not_a_fixed_side():
    right = _pose(grip=(64, 104))
    left = _pose(grip=(136, 195), tip=(150, 120))
    kp = np.stack([right, left])
    assert geo.weapon_side(kp).tolist() == [geo.RIGHT, geo.LEFT]
    assert geo.weapon_wrist_index(kp).tolist() == [layout.R_WRIST, layout.L_WRIST]
    assert geo.weapon_elbow_index(kp).tolist() == [layout.R_ELBOW, layout.L_ELBOW]


def test_weapon_side_without_a_grip_is_the_subjects_usual_hand_else_unknown():
    """The one rule: the wrist nearest the grip; else the subject's majority; else unknown
    (never a silent right-hand default, and never a guess from the tip alone).
    """
    left = _pose(grip=(136, 195), tip=(150, 120))
    no_grip = _pose(grip=(np.nan, np.nan), tip=(134, 192))
    no_grip[layout.GRIP, 2] = 0
    kp = np.stack([left, left, no_grip, no_grip])
    assert geo.weapon_side(kp).tolist() == [geo.LEFT, geo.LEFT, geo.UNKNOWN, geo.UNKNOWN]
    subjects = np.array(["s1", "s1", "s1", "s2"], dtype=object)
    assert geo.weapon_side(kp, groups=subjects).tolist() == [geo.LEFT] * 3 + [geo.UNKNOWN]
    assert geo.weapon_wrist_index(kp[[2]]).tolist() == [-1]


def test_body_scale_is_mean_shoulder_hip_distance_robust_to_missing_points():
    kp = np.stack([_pose()] * 3)
    kp[1, layout.L_HIP] = (np.nan, np.nan, 0)  # one side only
    kp[2, [layout.L_HIP, layout.R_SHOULDER], 2] = 0  # cross-side fallback
    s = geo.body_scale(kp)
    left, right = np.hypot(5, 100), np.hypot(5, 100)
    assert s[0] == pytest.approx((left + right) / 2)
    assert s[1] == pytest.approx(right)
    # Shoulder midpoint (120,100), hip midpoint (85,200).
    assert s[2] == pytest.approx(np.hypot(35, 100))
    empty = np.full((1, 19, 3), np.nan)
    empty[..., 2] = 0
    assert np.isnan(geo.body_scale(empty)[0])


def test_missing_points_are_nan_even_if_coordinates_are_left_in_place():
    kp = _pose()[None].copy()
    kp[0, layout.TIP, 2] = 0  # v = 0 but x/y still set: must not count
    assert np.isnan(geo.stick_length(kp)[0])
    assert np.isnan(geo.stick_angle(kp)[0])


def test_stick_vector_length_and_angle():
    kp = _pose(grip=(60, 100), tip=(60, 20))[None]
    assert geo.stick_vector(kp)[0].tolist() == [0, -80]
    assert geo.stick_length(kp)[0] == pytest.approx(80)
    assert geo.stick_angle(kp)[0] == pytest.approx(-90)  # image y is down: "up" is -90


def test_forearm_vector_and_angle_between():
    kp = _pose()[None]
    fore = geo.forearm_vector(kp)  # right arm: wrist (65,110) - elbow (70,150)
    assert fore[0].tolist() == [-5, -40]
    a = geo.angle_between(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert a[0] == pytest.approx(90)  # clockwise on screen
    assert geo.angle_between(np.array([[1.0, 0.0]]), np.array([[-1.0, 0.0]]))[0] == 180
    assert np.isnan(geo.angle_between(np.zeros((1, 2)), np.ones((1, 2)))[0])


def test_bone_lengths_joint_angles_and_wrap():
    kp = _pose()[None]
    bones = geo.bone_lengths(
        kp, ((layout.L_SHOULDER, layout.L_HIP), (layout.L_SHOULDER, layout.NOSE))
    )
    assert bones[0, 0] == pytest.approx(np.hypot(5, 100))
    assert np.isnan(bones[0, 1])
    ang = geo.joint_angle(kp, layout.L_SHOULDER, layout.L_ELBOW, layout.L_WRIST)
    u, v = np.array([-10, -50]), np.array([5, 40])
    expect = np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))
    assert ang[0] == pytest.approx(expect)
    assert geo.wrap_degrees(np.array([190.0, -190.0, 180.0])).tolist() == [-170, 170, 180]
    r = geo.rotate(np.array([[1.0, 0.0]]), np.array([90.0]))
    assert r[0] == pytest.approx([0, 1])


def test_normalise_pose_centres_on_hips_and_divides_by_torso():
    kp = _pose()[None]
    z = geo.normalise_pose(kp)
    assert z[0, layout.L_HIP] == pytest.approx([15 / np.hypot(5, 100), 0])
    assert np.isnan(z[0, layout.NOSE]).all()


def test_vectorised_over_many_rows_matches_row_by_row():
    rng = np.random.default_rng(0)
    kp = np.stack([_pose(grip=(60 + d, 100), tip=(60, 20 + d)) for d in rng.uniform(0, 30, 50)])
    one = np.array([geo.stick_length(k[None])[0] for k in kp])
    assert np.allclose(geo.stick_length(kp), one)
    assert geo.weapon_side(kp).shape == (50,)


def test_in_place_column_math_is_bit_for_bit_the_plain_expressions():
    """``dot_xy``, ``angle_between_xy``, ``unit`` and ``Points.dist`` reuse their temporaries;
    the values (signed zeros, NaN, infinities included) are those of the plain expressions.
    """
    rng = np.random.default_rng(1)
    n = 4000
    cols = [rng.normal(0, 50, n) for _ in range(4)]
    for c in cols:
        c[rng.random(n) < 0.05] = np.nan
        c[rng.random(n) < 0.02] = 0.0
        c[rng.random(n) < 0.02] = -0.0
        c[rng.random(n) < 0.01] = np.inf
    ux, uy, vx, vy = cols

    def bits(a):
        return np.asarray(a, np.float64).view(np.int64)

    with np.errstate(invalid="ignore"):
        plain_dot = ux * vx + uy * vy + 0.0
        plain_ang = np.degrees(np.arctan2(ux * vy - uy * vx, plain_dot))
        plain_ang = np.where(~geo.positive_norm(ux, uy) | ~geo.positive_norm(vx, vy), np.nan,
                             plain_ang)  # fmt: skip
        assert np.array_equal(bits(geo.dot_xy(ux, uy, vx, vy)), bits(plain_dot))
        assert np.array_equal(bits(geo.angle_between_xy(ux, uy, vx, vy)), bits(plain_ang))
        v = np.stack([ux, uy], 1)
        n_v = geo.norm(v)[:, None]
        plain_unit = np.where(n_v > 0, v / n_v, np.nan)
        assert np.array_equal(bits(geo.unit(v)), bits(plain_unit))
    kp = np.zeros((n, layout.NUM_KEYPOINTS, 3))
    kp[:, 9, :2] = np.stack([ux, uy], 1)
    kp[:, 17, :2] = np.stack([vx, vy], 1)
    kp[..., 2] = 2
    xy = geo._xy(kp)
    dx, dy = xy[:, 9, 0] - xy[:, 17, 0], xy[:, 9, 1] - xy[:, 17, 1]
    assert np.array_equal(bits(geo.Points(kp).dist(9, 17)), bits(geo.hypot(dx, dy)))
    assert np.array_equal(bits(geo.norm(np.stack([dx, dy], 1))), bits(geo.hypot(dx, dy)))
    # Mixed inputs (a scalar, float32) take the plain path.
    assert geo.dot_xy(1.0, 2.0, 3.0, 4.0) == 11.0
    with np.errstate(invalid="ignore"):  # inf * 0 in the inputs, on purpose
        f32 = geo.dot_xy(ux.astype(np.float32), uy, vx, vy)
        assert np.array_equal(bits(f32), bits(ux.astype(np.float32) * vx + uy * vy + 0.0))


def test_hypot_is_numpys_to_an_ulp_and_exactly_where_a_side_is_not_finite():
    """The fast length (``sqrt(x*x + y*y)``) keeps ``np.hypot``'s answers where they matter:
    an infinite side is ``inf`` even beside a NaN, a NaN side is NaN, a square that overflows
    falls back to ``np.hypot``; finite values agree to 2 ulp, in any order or sign.
    """
    rng = np.random.default_rng(3)
    x, y = rng.normal(0, 300, (2, 5000))
    x[rng.random(5000) < 0.05] = np.nan
    y[rng.random(5000) < 0.02] = -np.inf
    x[rng.random(5000) < 0.02] = np.inf
    x[:3], y[:3] = (1e200, -3e250, 0.0), (2e200, 1.0, np.nan)
    x0, y0 = x.copy(), y.copy()
    ours, ref = geo.hypot(x, y), np.hypot(x, y)
    assert np.array_equal(x, x0, equal_nan=True) and np.array_equal(y, y0, equal_nan=True)
    assert np.array_equal(np.isnan(ours), np.isnan(ref))
    assert np.array_equal(np.isinf(ours), np.isinf(ref))
    fin = np.isfinite(ref)
    assert np.all(np.abs(ours[fin] - ref[fin]) <= 2 * np.spacing(ref[fin]))
    assert ours[0] == ref[0] and ours[1] == ref[1]  # overflowing squares: np.hypot's values
    assert np.array_equal(ours, geo.hypot(-y, x), equal_nan=True)
    assert geo.hypot(3.0, 4.0) == 5.0 and geo.hypot(np.zeros(0), np.zeros(0)).shape == (0,)


@pytest.mark.parametrize("n", [1, 2, 300])
def test_mask_raw_gives_the_columns_of_xy_and_leaves_the_keypoints_alone(n):
    rng = np.random.default_rng(n)
    kp = rng.uniform(-10, 500, (n, layout.NUM_KEYPOINTS, 3))
    kp[..., 2] = rng.choice([0.0, 1.0, 2.0, -1.0, np.nan], (n, layout.NUM_KEYPOINTS))
    kp[rng.random((n, layout.NUM_KEYPOINTS)) < 0.1, :2] = np.nan
    kp[0, layout.TIP] = (40.0, 50.0, 0.0)  # coordinates left behind a missing tip
    before = kp.copy()
    want = {k: geo._xy(kp)[:, k] for k in range(layout.NUM_KEYPOINTS)}
    # Every keypoint read in one pass, and one keypoint read on its own (for one row, a view of
    # ``kp``: masked into new columns, never in place).
    for pts in (geo.Points(kp), geo.Points(kp, keys=[0, 1])):
        pts.raw(0)
        pts.raw(layout.TIP)
        pts.xy(1)  # read before: kept
        pts.mask_raw()
        for k in (0, 1, layout.TIP):
            x, y = pts.xy(k)
            assert np.array_equal(np.stack([x, y], 1), want[k], equal_nan=True)
        assert np.array_equal(pts.raw(layout.TIP), before[:, layout.TIP].T, equal_nan=True)
    assert np.array_equal(kp, before, equal_nan=True)


def test_usual_side_is_the_groups_majority_and_unknown_on_a_tie():
    side = np.array([1, 1, 0, 0, 1, geo.UNKNOWN, 0, 1])
    groups = np.array(["a", "a", "a", "b", "b", "b", None, "c"], dtype=object)
    out = geo.usual_side(side, groups)
    # a: 2 right, 1 left; b: a tie; no group: unknown; c: its one row.
    assert out.tolist() == [1, 1, 1, geo.UNKNOWN, geo.UNKNOWN, geo.UNKNOWN, geo.UNKNOWN, 1]
    # Integer group codes (the stick code's subject|video groups; -1: no group) alike.
    codes = np.array([0, 0, 0, 1, 1, 1, -1, 2])
    assert geo.usual_side(side, codes).tolist() == out.tolist()
