"""Stick geometry between frames: interpolation about the grip, copy by the weapon wrist."""

from __future__ import annotations

import numpy as np

from toolkit import layout
from viewer.interpolate import (
    SLOPE_CAP_DEG,
    bent_slope,
    carry_stick,
    end_slope,
    hermite_angle,
    interpolate_stick,
    key_slopes,
    smooth_track,
    wrap_angle,
)


def _pose(wrist_xy, grip_xy, tip_xy, side=1) -> np.ndarray:
    kp = np.full((layout.NUM_KEYPOINTS, 3), np.nan)
    kp[:, 2] = 0
    w = layout.R_WRIST if side == 1 else layout.L_WRIST
    kp[w] = [*wrist_xy, 2]
    kp[layout.GRIP] = [*grip_xy, 2]
    kp[layout.TIP] = [*tip_xy, 2]
    return kp


def test_angle_goes_the_short_way_round_about_the_grip():
    # 350 deg -> 10 deg: half way is 0 deg (pointing +x), not 180.
    a0, a1 = np.radians(350), np.radians(10)
    k0 = _pose((0, 0), (10, 0), (10 + 20 * np.cos(a0), 20 * np.sin(a0)))
    k1 = _pose((0, 0), (10, 0), (10 + 30 * np.cos(a1), 30 * np.sin(a1)))
    mid = np.stack([_pose((0, 0), (0, 0), (0, 0))])
    out = interpolate_stick(k0, k1, mid, np.array([0.5]), side=1)
    np.testing.assert_allclose(out[0, 0], [10, 0], atol=1e-9)  # grip: wrist + offset
    np.testing.assert_allclose(out[0, 1], [10 + 25, 0], atol=1e-9)  # length 20 -> 30: 25
    np.testing.assert_allclose(wrap_angle(np.radians([190, -190])), np.radians([-170, 170]))


def test_grip_follows_the_weapon_wrist_of_each_frame():
    k0 = _pose((0, 0), (2, 1), (2, 41), side=0)  # left hand
    k1 = _pose((10, 0), (14, 1), (54, 1), side=0)
    mids = np.stack([_pose((100, 50), (0, 0), (0, 0), side=0), _pose((7, 7), (0, 0), (0, 0), 0)])
    mids[1, layout.L_WRIST] = np.nan  # no wrist here: the grip itself is interpolated
    out = interpolate_stick(k0, k1, mids, np.array([0.5, 0.5]), side=0)
    np.testing.assert_allclose(out[0, 0], [100 + 3, 50 + 1])  # offsets (2, 1) and (4, 1)
    np.testing.assert_allclose(out[1, 0], [8, 1])
    # angle 90 -> 0 deg: 45 deg half way, length 40 both ends
    d = out[0, 1] - out[0, 0]
    np.testing.assert_allclose(d, 40 * np.array([np.cos(np.pi / 4), np.sin(np.pi / 4)]))
    given = interpolate_stick(k0, k1, mids[:1], np.array([0.5]), side=0, length=np.array([10.0]))
    assert abs(np.linalg.norm(given[0, 1] - given[0, 0]) - 10) < 1e-9
    unknown = interpolate_stick(k0, k1, mids[:1], np.array([0.25]), side=-1)
    np.testing.assert_allclose(unknown[0, 0], [2 + 0.25 * 12, 1])


def test_carry_stick_moves_with_the_wrist():
    prev = _pose((10, 10), (13, 8), (40, -20))
    cur = _pose((15, 12), (0, 0), (0, 0))
    np.testing.assert_allclose(carry_stick(prev, cur, 1), [[18, 10], [45, -18]])
    cur[layout.R_WRIST] = np.nan
    np.testing.assert_allclose(carry_stick(prev, cur, 1), [[13, 8], [40, -20]])


def test_smooth_track_follows_a_curve_and_ignores_a_jump():
    t = np.arange(30.0)
    truth = np.stack([t * 2.0, 0.05 * (t - 15) ** 2], 1)  # a quadratic path
    rng = np.random.default_rng(0)
    noisy = truth + rng.normal(0, 1.0, truth.shape)
    noisy[10] += [40, -40]  # one detector jump
    noisy[20] = np.nan  # one missing wrist
    at = np.array([10.0, 20.0, 25.0])
    out = smooth_track(t, noisy, at)
    err = np.linalg.norm(out - truth[[10, 20, 25]], axis=1)
    assert (err < 1.5).all(), err  # the jump (57 px) and the gap are smoothed over
    assert np.isnan(smooth_track(t[:3], noisy[:3], np.array([1.0]))).all()  # too few samples


def test_end_slope_is_robust_and_refuses_unsteady_frames():
    times = np.array([-1.0, -2, -3, -4, -5])
    steady = np.radians(10) + np.radians(2) * times  # 2 deg per frame, keyframe at 10 deg
    steady[2] = np.radians(170)  # one flipped stick
    assert np.isclose(end_slope(times, steady, 0.0, np.radians(10)), np.radians(2))
    wild = np.radians([40, -35, 60, -50, 80])
    assert end_slope(times, wild, 0.0, 0.0) is None
    assert end_slope(times[:1], steady[:1], 0.0, 0.0) is None
    # Catmull-Rom at an inner keyframe: the slope through its neighbours
    sl = key_slopes(
        np.array([0.0, 10, 20]),
        np.radians([0.0, 30, 40]),
        (np.zeros(0), np.zeros(0)),
        (np.zeros(0), np.zeros(0)),
    )
    assert sl[0] is None and sl[2] is None and np.isclose(sl[1], np.radians(40) / 20)


def test_hermite_angle_is_straight_by_default_and_bends_within_the_cap():
    x = np.linspace(0, 1, 11)
    turn = np.radians(20)
    np.testing.assert_allclose(hermite_angle(0.0, turn, turn, turn, x), turn * x, atol=1e-12)
    assert bent_slope(None, 10, turn) == turn
    cap = np.radians(SLOPE_CAP_DEG)
    assert np.isclose(bent_slope(1.0, 10, turn), turn + cap)  # 10 rad over the range: capped
    # a stick that turns out and back (0 -> 0 overall) follows the end slopes
    m = np.radians(15)
    mid = hermite_angle(0.0, 0.0, m, -m, np.array([0.5]))
    assert mid[0] > 0
    k0 = _pose((0, 0), (0, 0), (10, 0))
    k1 = _pose((0, 0), (0, 0), (10, 0))
    mids = np.stack([_pose((0, 0), (0, 0), (0, 0))])
    out = interpolate_stick(k0, k1, mids, np.array([0.5]), side=1, slopes=(m, -m))
    assert np.isclose(np.arctan2(*(out[0, 1] - out[0, 0])[::-1]), mid[0])
