"""Dataset <-> napari layers: the one module that converts coordinates.

The dataset stores a keypoint as ``x, y`` pixels (COCO order: column first). napari orders the
axes of every layer like a numpy array, slowest first: ``(t, y, x)``, where ``t`` is the frame
slider (the row of ``ds.images``). So going to napari the columns are swapped and the frame is
prepended; coming back ``t`` is dropped and the columns are swapped again. Every such swap in the
viewer happens here, nowhere else, so a mirrored or transposed skeleton can only come from this
file.

Besides the coordinates, this module turns one frame of the dataset into what the layers draw:
the Points layer's data, its ``features`` table (the one per-point metadata API we use) and
per-point styles, and the skeleton and stick segments as napari vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from toolkit import geometry, layout

# ---------------------------------------------------------------------- colours
#: Face colour per keypoint (RGBA 0..1): left side cool, right side warm, the grip cyan and the
#: tip magenta. No keypoint is yellow, so the stick line stays recognisable.
# fmt: off
KEYPOINT_COLORS = np.array([
    (1.00, 1.00, 1.00),                          # nose
    (0.35, 0.65, 1.00), (1.00, 0.45, 0.45),      # eyes     L, R
    (0.25, 0.50, 0.95), (0.95, 0.35, 0.35),      # ears     L, R
    (0.20, 0.80, 0.60), (1.00, 0.55, 0.25),      # shoulders
    (0.15, 0.70, 0.85), (0.95, 0.40, 0.60),      # elbows
    (0.30, 0.40, 1.00), (1.00, 0.25, 0.25),      # wrists
    (0.45, 0.85, 0.45), (0.90, 0.50, 0.80),      # hips
    (0.35, 0.75, 0.35), (0.80, 0.40, 0.90),      # knees
    (0.25, 0.60, 0.30), (0.65, 0.30, 0.85),      # ankles
    (0.00, 0.90, 1.00),                          # stick_grip
    (1.00, 0.15, 0.90),                          # stick_tip
])
# fmt: on
KEYPOINT_COLORS = np.concatenate([KEYPOINT_COLORS, np.ones((layout.NUM_KEYPOINTS, 1))], axis=1)
#: The stick (grip -> tip) line: saturated yellow, unlike any keypoint.
STICK_COLOR = np.array([1.0, 0.85, 0.0, 1.0])
#: The stick line while it is interpolated between keyframes (until accepted): violet.
STICK_INTERPOLATED_COLOR = np.array([0.75, 0.45, 1.0, 1.0])
#: The weapon hand's wrist -> grip line.
HAND_COLOR = np.array([1.0, 0.55, 0.0, 1.0])
SKELETON_COLOR = np.array([0.80, 0.90, 1.0, 1.0])
#: The bones are drawn this opaque (the stick fully), through their colour's alpha: bones and
#: stick share one layer.
SKELETON_OPACITY = 0.75
SKELETON_LINE_COLOR = np.array([*SKELETON_COLOR[:3], SKELETON_OPACITY])
#: The stick lines' width in bone widths (drawn as two bone-wide lines side by side).
STICK_WIDTH = 1.8
#: Grip and tip indices.
STICK_POINTS = np.array([layout.GRIP, layout.TIP])
#: Point border by state: flagged by a finding, awaiting review of an automatic correction,
#: set by a person, anything else.
BORDER_FLAGGED = np.array([1.0, 0.10, 0.10, 1.0])
BORDER_CORRECTED = np.array([1.0, 0.60, 0.0, 1.0])
BORDER_HUMAN = np.array([0.10, 1.0, 0.40, 1.0])
BORDER_INTERPOLATED = np.array([0.75, 0.45, 1.0, 1.0])
BORDER_PLAIN = np.array([0.0, 0.0, 0.0, 1.0])


# ---------------------------------------------------------------------- coordinates
def xy_to_napari(xy: np.ndarray, t: int | np.ndarray) -> np.ndarray:
    """``(M, 2)`` dataset ``x, y`` -> ``(M, 3)`` napari ``t, y, x``."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    out = np.empty((len(xy), 3))
    out[:, 0] = t
    out[:, 1] = xy[:, 1]  # row (y) before column (x): napari's axis order
    out[:, 2] = xy[:, 0]
    return out


def napari_to_xy(tyx: np.ndarray) -> np.ndarray:
    """``(M, 3)`` napari ``t, y, x`` (or ``(M, 2)`` ``y, x``) -> ``(M, 2)`` dataset ``x, y``."""
    tyx = np.asarray(tyx, dtype=np.float64)
    return np.stack([tyx[:, -1], tyx[:, -2]], axis=1)


def segments_to_vectors(a_xy: np.ndarray, b_xy: np.ndarray, t: int) -> np.ndarray:
    """Segments ``a -> b`` (``(E, 2)`` x, y each) -> napari vectors ``(E, 2, 3)``.

    A napari vector is ``[position, projection]``, both ``t, y, x``; the projection's ``t`` is 0
    so the segment stays in its frame.
    """
    a = xy_to_napari(a_xy, t)
    b = xy_to_napari(b_xy, t)
    b[:, 0] = 0.0
    b[:, 1:] -= a[:, 1:]
    return np.stack([a, b], axis=1) if len(a) else np.zeros((0, 2, 3))


def line_vectors(
    bones: tuple[np.ndarray, np.ndarray],
    stick: tuple[np.ndarray, np.ndarray, np.ndarray],
    t: int,
    width: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Bones and stick lines as one layer's napari vectors and their colours.

    A Vectors layer draws every line equally wide; the stick, :data:`STICK_WIDTH` bones wide,
    is drawn as two bone-wide lines side by side (each moved a little off the segment, across
    it), after the bones so that it stays on top.

    Args:
        bones: ``(a, b)`` bone endpoints (:func:`skeleton_segments`).
        stick: ``(a, b, colours)`` of the stick lines (:func:`stick_segments`).
        t: The frame.
        width: A bone line's width in pixels.

    Returns:
        ``(E, 2, 3)`` vectors and ``(E, 4)`` colours: the bones first
        (:data:`SKELETON_LINE_COLOR`), then each stick line twice.
    """
    a, b, colors = stick
    d = np.asarray(b, np.float64) - a
    length = np.hypot(d[:, 0], d[:, 1])[:, None] if len(d) else np.zeros((0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        normal = np.where(length > 0, np.stack([-d[:, 1], d[:, 0]], 1) / length, 0.0)
    off = normal * (0.5 * (STICK_WIDTH - 1.0) * width)
    vectors = np.concatenate(
        [
            segments_to_vectors(*bones, t),
            segments_to_vectors(a + off, b + off, t),
            segments_to_vectors(a - off, b - off, t),
        ]
    )
    bone_colors = np.tile(SKELETON_LINE_COLOR, (len(bones[0]), 1))
    return vectors, np.concatenate([bone_colors, colors, colors]).reshape(-1, 4)


def canvas_to_xy(world: np.ndarray) -> np.ndarray:
    """A napari world position (``t, y, x``; the cursor) -> dataset ``x, y``."""
    w = np.asarray(world, dtype=np.float64)
    return np.array([w[-1], w[-2]])


# ---------------------------------------------------------------------- one frame
@dataclass
class FramePoints:
    """What the Points layer shows for one frame.

    Attributes:
        data: ``(M, 3)`` napari ``t, y, x`` of the frame's labelled keypoints.
        columns: The features table's columns as arrays: ``ann_row``, ``ann_id``, ``kp``,
            ``keypoint``, ``label`` (text drawn beside grip and tip), ``confidence``, ``source``,
            ``flagged`` (a frame step compares them with the layer's table without building one).
        face_color: ``(M, 4)`` RGBA by keypoint.
        border_color: ``(M, 4)`` RGBA by state (flagged, corrected, human, plain).
        border_width: ``(M,)`` relative border widths (wide when flagged).
        size: ``(M,)`` diameters in pixels, larger when the model was more confident.
    """

    data: np.ndarray
    columns: dict[str, np.ndarray]
    face_color: np.ndarray
    border_color: np.ndarray
    border_width: np.ndarray
    size: np.ndarray

    @property
    def features(self) -> pd.DataFrame:
        """The features table: one row per point, :attr:`columns` in order."""
        return pd.DataFrame(self.columns)


def frame_points(
    ds, rows: np.ndarray, t: int, flags: np.ndarray, base_size: float, xy: np.ndarray | None = None
) -> FramePoints:
    """The labelled keypoints of annotation ``rows`` (all in frame ``t``) as layer content.

    Args:
        ds: The dataset.
        rows: ``(A,)`` annotation rows of the frame.
        t: The frame.
        flags: ``(A, 19)`` bool, points flagged by a finding.
        base_size: Point diameter in pixels at confidence 1 (or unknown confidence).
        xy: ``(A, 19, 2)`` positions to use instead of ``ds.keypoints`` (a drag in progress).

    Shapes:
        Output arrays have one row per labelled point ``M <= 19 * A``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    kp = ds.keypoints[rows]
    pos = kp[..., :2] if xy is None else xy
    present = (kp[..., 2] > 0) & np.isfinite(pos).all(-1)
    a_idx, k_idx = np.nonzero(present)
    ann_rows = rows[a_idx]
    conf = ds.scores[ann_rows, k_idx].astype(np.float64)
    src = ds.source[ann_rows, k_idx]
    flagged = np.asarray(flags, bool)[a_idx, k_idx] if len(a_idx) else np.zeros(0, bool)
    names = np.asarray(layout.KEYPOINT_NAMES, dtype=object)
    label = np.where(k_idx == layout.GRIP, "grip", np.where(k_idx == layout.TIP, "tip", ""))
    columns = {
        "ann_row": ann_rows,
        "ann_id": ds.annotations["id"].to_numpy(dtype=np.int64)[ann_rows],
        "kp": k_idx.astype(np.int64),
        "keypoint": names[k_idx] if len(k_idx) else np.array([], dtype=object),
        "label": label.astype(object),
        "confidence": conf,
        "source": np.asarray(layout.SOURCES, dtype=object)[src]
        if len(src)
        else np.array([], dtype=object),
        "flagged": flagged,
    }
    border = np.tile(BORDER_PLAIN, (len(k_idx), 1))
    border[src == layout.HUMAN] = BORDER_HUMAN
    border[src == layout.CORRECTED] = BORDER_CORRECTED
    border[src == layout.INTERPOLATED] = BORDER_INTERPOLATED
    border[flagged] = BORDER_FLAGGED
    width = np.where(flagged, 0.35, np.where(src == layout.IMPORTED, 0.1, 0.25))
    width = np.where(src == layout.INTERPOLATED, 0.4, width)  # stands out until accepted
    c = np.where(np.isfinite(conf), np.clip(conf, 0.0, 1.0), 1.0)
    size = base_size * (0.55 + 0.45 * c)  # confidence 0 -> 55 % of the full size
    return FramePoints(
        data=xy_to_napari(pos[a_idx, k_idx], t),
        columns=columns,
        face_color=KEYPOINT_COLORS[k_idx],
        border_color=border,
        border_width=width,
        size=size,
    )


def positions_from_layer(data: np.ndarray, features: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """Layer points back into ``(A, 19, 2)`` dataset ``x, y`` (NaN where not shown).

    Args:
        data: The Points layer's ``(M, 3)`` data.
        features: Its features table (``ann_row``, ``kp`` per point).
        rows: ``(A,)`` annotation rows, in the order of the output's first axis.
    """
    out = np.full((len(rows), layout.NUM_KEYPOINTS, 2), np.nan)
    if not len(data):
        return out
    where = pd.Index(np.asarray(rows, np.int64)).get_indexer(
        features["ann_row"].to_numpy(dtype=np.int64)
    )
    ok = where >= 0
    out[where[ok], features["kp"].to_numpy(dtype=np.int64)[ok]] = napari_to_xy(data)[ok]
    return out


def skeleton_segments(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body bones of ``(A, 19, 2)`` positions: ``(a, b)`` endpoint arrays ``(E, 2)`` each."""
    edges = np.asarray(layout.COCO_SKELETON)
    a = xy[:, edges[:, 0]].reshape(-1, 2)
    b = xy[:, edges[:, 1]].reshape(-1, 2)
    ok = np.isfinite(a).all(1) & np.isfinite(b).all(1)
    return a[ok], b[ok]


def stick_segments(
    xy: np.ndarray, groups: np.ndarray | None = None, interpolated: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stick lines of ``(A, 19, 2)`` positions: weapon wrist -> grip and grip -> tip.

    The weapon hand is :func:`toolkit.geometry.weapon_side` (the wrist nearest the grip; only
    its line is drawn; none when the side is unknown).

    Args:
        xy: ``(A, 19, 2)`` positions.
        groups: ``(A,)`` person (subject or track) per row, for the usual-hand rule.
        interpolated: ``(A,)`` bool, sticks interpolated between keyframes (drawn violet).

    Returns:
        ``a``, ``b`` ``(E, 2)`` endpoints and ``(E, 4)`` colours.
    """
    grip, tip = xy[:, layout.GRIP], xy[:, layout.TIP]
    n = len(xy)
    side = geometry.weapon_side(xy, groups=groups) if n else np.zeros(0, np.int64)
    wrist = np.where(side >= 0, layout.L_WRIST + side, layout.L_WRIST)
    hand = xy[np.arange(n), wrist] if n else np.zeros((0, 2))
    hand = np.where((side >= 0)[:, None], hand, np.nan)
    a = np.concatenate([hand, grip])
    b = np.concatenate([grip, tip])
    stick_col = np.tile(STICK_COLOR, (n, 1))
    if interpolated is not None and n:
        stick_col[np.asarray(interpolated, bool)] = STICK_INTERPOLATED_COLOR
    col = np.concatenate([np.tile(HAND_COLOR, (n, 1)), stick_col])
    ok = np.isfinite(a).all(1) & np.isfinite(b).all(1)
    return a[ok], b[ok], col[ok]
