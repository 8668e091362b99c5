"""Stick geometry between frames: keyframe interpolation and "copy the previous stick".

Pure numpy, no dataset and no Qt: :class:`viewer.session.EditSession` picks the frames and writes
the results (journalled, undoable); this module only says where grip and tip go.

Between two keyframes (frames where a person set the stick), frame ``f`` at fraction ``a`` of the
way from the first to the second gets:

* **grip** = the frame's weapon wrist + the wrist-to-grip offset interpolated between the
  keyframes: the grip follows the hand. The wrist is the person's wrist track smoothed over
  time (:func:`smooth_track`, a robust local quadratic fit over a few frames), because a
  detector's wrist jitters by a few pixels per frame while a hand holding a stick does not;
  where no wrist is known near a frame the grip itself is interpolated;
* **angle** about the grip along a cubic Hermite curve the shortest way round (350 deg -> 10
  deg passes 0). Its end slopes are the stick's turning speed just outside the keyframes
  (:func:`end_slope`, from the frames beside them, when they turn steadily) or, at a keyframe
  between two others, the slope through its neighbours (Catmull-Rom); without them the curve is
  the straight interpolation. The slopes may bend the curve away from the straight line by at
  most :data:`SLOPE_CAP_DEG`, so one bad frame beside a keyframe cannot swing the stick;
* **length** interpolated between the keyframes' lengths, or given per frame (the subject's
  estimate, see :meth:`viewer.session.EditSession.subject_stick_px`).

Interpolating the angle in the forearm's frame (elbow -> wrist) was measured too, and was worse on
the sample videos: a detector's elbow and wrist are noisier than the stick's own turn.
"""

from __future__ import annotations

import numpy as np

from toolkit import layout

GRIP, TIP = layout.GRIP, layout.TIP
#: Wrist keypoint of each weapon side code (``toolkit.geometry.LEFT``/``RIGHT``).
WRISTS = (layout.L_WRIST, layout.R_WRIST)
#: Width (standard deviation, frames) of the time window the wrist track is smoothed over.
WRIST_SIGMA = 2.5
#: Frames beside a keyframe (outside the range) whose stick sets the end slope.
SLOPE_FRAMES = 5
#: An end slope is used only when those frames turn steadily: their median angle residual
#: about the fitted slope stays under this (degrees); else the end is straight.
SLOPE_RESIDUAL_DEG = 6.0
#: The end slopes bend the angle curve away from the straight chord by at most this much
#: (degrees of turn over the whole range, per end).
SLOPE_CAP_DEG = 30.0


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Radians wrapped into ``[-pi, pi)``."""
    return (np.asarray(a, dtype=np.float64) + np.pi) % (2 * np.pi) - np.pi


def stick_angle(kp: np.ndarray) -> np.ndarray:
    """The grip -> tip direction in radians (image axes), NaN where a point is missing.

    Shapes:
        ``kp``: ``(..., 19, C)``, ``C >= 2``; out ``(...)``.
    """
    kp = np.asarray(kp, dtype=np.float64)
    v = kp[..., TIP, :2] - kp[..., GRIP, :2]
    return np.arctan2(v[..., 1], v[..., 0])


def smooth_track(
    times: np.ndarray, xy: np.ndarray, at: np.ndarray, sigma: float = WRIST_SIGMA
) -> np.ndarray:
    """A point's track over time, smoothed: a robust local quadratic fit at each of ``at``.

    Each output is the value at ``at[i]`` of a quadratic in time fitted to the finite samples
    with Gaussian weights (width ``sigma``), reweighted twice (Tukey's biweight) so a sample
    that jumps away from its neighbours barely counts.

    Args:
        times: ``(S,)`` sample times (frames).
        xy: ``(S, 2)`` samples; NaN rows are ignored.
        at: ``(M,)`` times to evaluate at.
        sigma: Window width in frames.

    Returns:
        ``(M, 2)``; NaN where fewer than 4 samples lie within ``3 * sigma``.
    """
    times = np.asarray(times, dtype=np.float64)
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    ok = np.isfinite(xy).all(1) & np.isfinite(times)
    times, xy = times[ok], xy[ok]
    at = np.asarray(at, dtype=np.float64).reshape(-1)
    out = np.full((len(at), 2), np.nan)
    for i, t in enumerate(at):
        d = times - t
        near = np.abs(d) <= 3 * sigma
        if near.sum() < 4 or not np.isfinite(t):
            continue
        d, y = d[near], xy[near]
        w0 = np.exp(-0.5 * (d / sigma) ** 2)
        x = np.stack([np.ones_like(d), d, d * d], 1)
        w = w0
        for _ in range(3):
            sw = np.sqrt(w)[:, None]
            beta = np.linalg.lstsq(x * sw, y * sw, rcond=None)[0]
            res = np.linalg.norm(y - x @ beta, axis=1)
            scale = 4.685 * 1.4826 * float(np.median(res)) + 1e-9
            u = np.minimum(res / scale, 1.0)
            w = w0 * (1 - u * u) ** 2
        out[i] = beta[0]
    return out


def end_slope(
    times: np.ndarray,
    angles: np.ndarray,
    t0: float,
    angle0: float,
    residual_deg: float = SLOPE_RESIDUAL_DEG,
) -> float | None:
    """How fast the stick turns next to a keyframe, from the frames beside it.

    Args:
        times: ``(S,)`` times of the frames beside the keyframe (one side of it).
        angles: ``(S,)`` their stick angles (radians; NaN ignored).
        t0: The keyframe's time.
        angle0: The keyframe's stick angle.
        residual_deg: Steadiness required (see :data:`SLOPE_RESIDUAL_DEG`).

    Returns:
        Radians per frame (the median of the slopes from the keyframe to each frame, robust to
        a bad frame), or None when there are fewer than 2 frames or they do not turn steadily.
    """
    times = np.asarray(times, dtype=np.float64)
    v = wrap_angle(np.asarray(angles, dtype=np.float64) - angle0)
    ok = np.isfinite(v) & np.isfinite(times) & (times != t0)
    if ok.sum() < 2:
        return None
    dt, v = times[ok] - t0, v[ok]
    slope = float(np.median(v / dt))
    if float(np.median(np.abs(v - slope * dt))) > np.radians(residual_deg):
        return None
    return slope


def hermite_angle(
    angle0: float, turn: float, m0: float, m1: float, alpha: np.ndarray
) -> np.ndarray:
    """The angle along a cubic Hermite curve from ``angle0`` turning by ``turn``.

    Args:
        angle0: The angle at ``alpha = 0``.
        turn: The (wrapped) turn to ``alpha = 1``.
        m0: The slope at ``alpha = 0`` in radians per whole range (``turn`` = straight).
        m1: The slope at ``alpha = 1``.
        alpha: ``(M,)`` positions in ``[0, 1]``.
    """
    x = np.asarray(alpha, dtype=np.float64)
    h10 = x**3 - 2 * x**2 + x
    h01 = -2 * x**3 + 3 * x**2
    h11 = x**3 - x**2
    return angle0 + h10 * m0 + h01 * turn + h11 * m1


def bent_slope(slope: float | None, span: float, turn: float) -> float:
    """An end slope in radians per range, for :func:`hermite_angle`.

    ``slope`` (radians per frame) times the range's ``span`` (frames), kept within
    :data:`SLOPE_CAP_DEG` of the straight chord ``turn``; the chord itself when ``slope`` is
    None.
    """
    if slope is None or not np.isfinite(slope):
        return float(turn)
    cap = np.radians(SLOPE_CAP_DEG)
    return float(turn + np.clip(slope * span - turn, -cap, cap))


def key_slopes(
    key_times: np.ndarray,
    key_angles: np.ndarray,
    before: tuple[np.ndarray, np.ndarray],
    after: tuple[np.ndarray, np.ndarray],
) -> list[float | None]:
    """The stick's turning speed (radians per frame) at each keyframe, in time order.

    The first keyframe's from the frames before it, the last one's from the frames after it
    (:func:`end_slope`, :data:`SLOPE_FRAMES` at most); a keyframe between two others gets the
    slope through its neighbours (Catmull-Rom).

    Args:
        key_times: ``(K,)`` keyframe times, increasing.
        key_angles: ``(K,)`` their stick angles.
        before: ``(times, angles)`` of the frames before the first keyframe.
        after: ``(times, angles)`` of the frames after the last keyframe.
    """
    k = len(key_times)
    out: list[float | None] = [None] * k
    if not k:
        return out
    out[0] = end_slope(*_nearest(before, key_times[0]), key_times[0], key_angles[0])
    out[-1] = end_slope(*_nearest(after, key_times[-1]), key_times[-1], key_angles[-1])
    for i in range(1, k - 1):
        span = key_times[i + 1] - key_times[i - 1]
        turn = wrap_angle(key_angles[i + 1] - key_angles[i - 1])
        out[i] = float(turn / span) if span > 0 and np.isfinite(turn) else None
    return out


def _nearest(frames: tuple[np.ndarray, np.ndarray], t0: float) -> tuple[np.ndarray, np.ndarray]:
    """The :data:`SLOPE_FRAMES` frames nearest ``t0`` in time."""
    times, angles = (np.asarray(x, dtype=np.float64) for x in frames)
    order = np.argsort(np.abs(times - t0), kind="stable")[:SLOPE_FRAMES]
    return times[order], angles[order]


def interpolate_stick(
    key0: np.ndarray,
    key1: np.ndarray,
    mid: np.ndarray,
    alpha: np.ndarray,
    side: int,
    length: np.ndarray | None = None,
    slopes: tuple[float, float] | None = None,
) -> np.ndarray:
    """Grip and tip of the frames between two keyframes.

    Args:
        key0: ``(19, 2+)`` keypoints of the first keyframe (its grip and tip set).
        key1: ``(19, 2+)`` keypoints of the second keyframe.
        mid: ``(M, 19, 2+)`` keypoints of the frames in between (their wrists are used; pass
            smoothed wrists, see :func:`smooth_track`).
        alpha: ``(M,)`` position of each frame between the keyframes, in ``(0, 1)``.
        side: The weapon side (0 left, 1 right, -1 unknown: the grip is interpolated on its own).
        length: ``(M,)`` stick length in pixels per frame; NaN (or None) = interpolated.
        slopes: The angle's slopes at the two keyframes in radians per whole range (see
            :func:`bent_slope`); None: the straight interpolation.

    Returns:
        ``(M, 2, 2)`` grip and tip ``x, y`` per frame.

    Shapes:
        ``key0``, ``key1``: ``(19, C)``; ``mid``: ``(M, 19, C)``, ``C >= 2``; out ``(M, 2, 2)``.
    """
    key0 = np.asarray(key0, dtype=np.float64)[:, :2]
    key1 = np.asarray(key1, dtype=np.float64)[:, :2]
    mid = np.asarray(mid, dtype=np.float64)[..., :2].reshape(-1, layout.NUM_KEYPOINTS, 2)
    a = np.asarray(alpha, dtype=np.float64).reshape(-1, 1)
    g0, g1 = key0[GRIP], key1[GRIP]
    grip = g0 + a * (g1 - g0)
    if side in (0, 1):
        w = WRISTS[side]
        off = (g0 - key0[w]) + a * ((g1 - key1[w]) - (g0 - key0[w]))
        follow = mid[:, w] + off
        ok = np.isfinite(follow).all(1)
        grip[ok] = follow[ok]
    v0, v1 = key0[TIP] - g0, key1[TIP] - g1
    ang0 = float(np.arctan2(v0[1], v0[0]))
    turn = float(wrap_angle(np.arctan2(v1[1], v1[0]) - ang0))
    m0, m1 = slopes if slopes is not None else (turn, turn)
    ang = hermite_angle(ang0, turn, m0, m1, a[:, 0])
    l0, l1 = float(np.hypot(*v0)), float(np.hypot(*v1))
    ln = l0 + a[:, 0] * (l1 - l0)
    if length is not None:
        given = np.asarray(length, dtype=np.float64).reshape(-1)
        ln = np.where(np.isfinite(given) & (given > 0), given, ln)
    tip = grip + ln[:, None] * np.stack([np.cos(ang), np.sin(ang)], 1)
    return np.stack([grip, tip], 1)


def carry_stick(prev: np.ndarray, cur: np.ndarray, side: int) -> np.ndarray:
    """The previous frame's stick carried onto this frame by the weapon wrist.

    The grip keeps its offset from the weapon wrist and the tip its offset from the grip (same
    angle and length); without that wrist in both frames the stick is copied as it was.

    Args:
        prev: ``(19, 2+)`` keypoints of the previous frame (grip and tip set).
        cur: ``(19, 2+)`` keypoints of this frame.
        side: The weapon side (0 left, 1 right, -1 unknown).

    Returns:
        ``(2, 2)`` grip and tip ``x, y``.
    """
    prev = np.asarray(prev, dtype=np.float64)[:, :2]
    cur = np.asarray(cur, dtype=np.float64)[:, :2]
    shift = np.zeros(2)
    if side in (0, 1):
        w = WRISTS[side]
        d = cur[w] - prev[w]
        if np.isfinite(d).all():
            shift = d
    return np.stack([prev[GRIP] + shift, prev[TIP] + shift])
