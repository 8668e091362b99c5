"""Stick geometry between frames: keyframe interpolation and "copy the previous stick".

Pure numpy, no dataset and no Qt: :class:`viewer.session.EditSession` picks the frames and writes
the results (journalled, undoable); this module only says where grip and tip go.

Between two keyframes (frames where a person set the stick), frame ``f`` at fraction ``a`` of the
way from the first to the second gets:

* **grip** = the frame's own weapon wrist + the wrist-to-grip offset interpolated between the
  keyframes (the grip follows the hand; where a wrist is missing the grip itself is interpolated);
* **angle** about the grip interpolated the shortest way round (350 deg -> 10 deg passes 0);
* **length** interpolated between the keyframes' lengths, or given per frame (the subject's
  estimate, see :meth:`viewer.session.EditSession.subject_stick_px`).
"""

from __future__ import annotations

import numpy as np

from toolkit import layout

GRIP, TIP = layout.GRIP, layout.TIP
#: Wrist keypoint of each weapon side code (``toolkit.geometry.LEFT``/``RIGHT``).
WRISTS = (layout.L_WRIST, layout.R_WRIST)


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Radians wrapped into ``[-pi, pi)``."""
    return (np.asarray(a, dtype=np.float64) + np.pi) % (2 * np.pi) - np.pi


def interpolate_stick(
    key0: np.ndarray,
    key1: np.ndarray,
    mid: np.ndarray,
    alpha: np.ndarray,
    side: int,
    length: np.ndarray | None = None,
) -> np.ndarray:
    """Grip and tip of the frames between two keyframes.

    Args:
        key0: ``(19, 2+)`` keypoints of the first keyframe (its grip and tip set).
        key1: ``(19, 2+)`` keypoints of the second keyframe.
        mid: ``(M, 19, 2+)`` keypoints of the frames in between (their wrists are used).
        alpha: ``(M,)`` position of each frame between the keyframes, in ``(0, 1)``.
        side: The weapon side (0 left, 1 right, -1 unknown: the grip is interpolated on its own).
        length: ``(M,)`` stick length in pixels per frame; NaN (or None) = interpolated.

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
    ang0, ang1 = np.arctan2(v0[1], v0[0]), np.arctan2(v1[1], v1[0])
    ang = ang0 + a[:, 0] * wrap_angle(ang1 - ang0)
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
