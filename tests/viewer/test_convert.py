"""The one coordinate conversion: dataset (x, y) <-> napari (t, y, x)."""

from __future__ import annotations

import numpy as np

from toolkit import layout
from viewer import convert


def test_xy_napari_round_trip_swaps_axes():
    xy = np.array([[10.0, 20.0], [3.5, -1.0]])
    tyx = convert.xy_to_napari(xy, 7)
    np.testing.assert_array_equal(tyx, [[7, 20, 10], [7, -1, 3.5]])
    np.testing.assert_array_equal(convert.napari_to_xy(tyx), xy)
    np.testing.assert_array_equal(convert.canvas_to_xy([7, 20, 10]), [10, 20])


def test_segments_are_vectors_within_their_frame():
    vec = convert.segments_to_vectors(np.array([[1.0, 2.0]]), np.array([[4.0, 6.0]]), 3)
    np.testing.assert_array_equal(vec, [[[3, 2, 1], [0, 4, 3]]])
    assert convert.segments_to_vectors(np.zeros((0, 2)), np.zeros((0, 2)), 0).shape == (0, 2, 3)


def test_stick_uses_the_wrist_nearer_the_grip_and_skips_missing():
    xy = np.full((2, 19, 2), np.nan)
    xy[0, layout.L_WRIST] = [0, 0]
    xy[0, layout.R_WRIST] = [10, 0]
    xy[0, layout.GRIP] = [11, 1]
    xy[0, layout.TIP] = [30, 30]
    xy[1, layout.GRIP] = [5, 5]  # no tip, no wrists: nothing drawn
    a, b, col = convert.stick_segments(xy)
    np.testing.assert_array_equal(a, [[10, 0], [11, 1]])
    np.testing.assert_array_equal(b, [[11, 1], [30, 30]])
    np.testing.assert_array_equal(col[1], convert.STICK_COLOR)
    a, b = convert.skeleton_segments(xy)
    assert len(a) == 0


def test_positions_from_layer_inverts_frame_points(small_dataset):
    from toolkit.dataset import Dataset

    ds = Dataset.load(small_dataset)
    ds.keypoints[1, 3] = [np.nan, np.nan, 0]
    rows = np.array([1])
    flags = np.zeros((1, 19), bool)
    flags[0, layout.TIP] = True
    fp = convert.frame_points(ds, rows, 1, flags, 10.0)
    assert len(fp.data) == 18 and 3 not in fp.features["kp"].tolist()
    tip = fp.features["kp"].to_numpy() == layout.TIP
    np.testing.assert_array_equal(fp.border_color[tip][0], convert.BORDER_FLAGGED)
    assert (fp.size > 5.4).all() and (fp.size <= 10).all()
    back = convert.positions_from_layer(fp.data, fp.features, rows)
    np.testing.assert_array_equal(np.isnan(back[0, :, 0]), np.isnan(ds.keypoints[1, :, 0]))
    np.testing.assert_allclose(
        back[0][~np.isnan(back[0, :, 0])], ds.keypoints[1, :, :2][~np.isnan(back[0, :, 0])]
    )


def test_line_vectors_bones_then_the_stick_twice_side_by_side():
    bones = (np.array([[0.0, 0.0]]), np.array([[10.0, 0.0]]))
    a, b = np.array([[10.0, 10.0], [20.0, 10.0]]), np.array([[20.0, 10.0], [20.0, 30.0]])
    colors = np.array([convert.HAND_COLOR, convert.STICK_COLOR])
    vec, col = convert.line_vectors(bones, (a, b, colors), 7, 2.0)
    assert vec.shape == (5, 2, 3) and col.shape == (5, 4)
    assert (vec[:, 0, 0] == 7).all() and (vec[:, 1, 0] == 0).all()  # in frame 7
    np.testing.assert_allclose(col[0], convert.SKELETON_LINE_COLOR)
    np.testing.assert_allclose(col[1:], np.concatenate([colors, colors]))
    # each stick line: two copies, shifted across it by +- (1.8 - 1) / 2 line widths
    shift = 0.5 * (convert.STICK_WIDTH - 1.0) * 2.0
    starts = convert.napari_to_xy(vec[1:, 0])
    np.testing.assert_allclose(starts[[0, 2]], [[10, 10 + shift], [10, 10 - shift]])
    np.testing.assert_allclose(starts[[1, 3]], [[20 - shift, 10], [20 + shift, 10]])
    np.testing.assert_allclose(vec[1:, 1, 1:], np.concatenate([b - a, b - a])[:, ::-1])
    # a zero-length stick stays where it is (no direction to shift it across)
    vec, _ = convert.line_vectors(bones, (a[:1], a[:1], colors[:1]), 0, 2.0)
    assert np.isfinite(vec).all()
    np.testing.assert_allclose(convert.napari_to_xy(vec[1:, 0]), [[10, 10], [10, 10]])
