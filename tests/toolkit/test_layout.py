"""The 19-point layout: names, flip map, skeleton, and its mirror in the dataset schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from toolkit import layout


def test_names_are_coco17_then_stick():
    assert len(layout.KEYPOINT_NAMES) == 19 == layout.NUM_KEYPOINTS
    assert layout.KEYPOINT_NAMES[:17] == layout.COCO_KEYPOINTS
    assert layout.KEYPOINT_NAMES[layout.GRIP] == "stick_grip"
    assert layout.KEYPOINT_NAMES[layout.TIP] == "stick_tip"
    assert layout.KEYPOINT_NAMES[layout.L_WRIST] == "left_wrist"
    assert layout.KEYPOINT_NAMES[layout.R_WRIST] == "right_wrist"
    assert len(set(layout.KEYPOINT_NAMES)) == 19


def test_flip_map_is_an_involution_swapping_left_and_right():
    flip = np.array(layout.FLIP_IDX)
    assert sorted(flip.tolist()) == list(range(19))
    np.testing.assert_array_equal(flip[flip], np.arange(19))
    assert flip[layout.GRIP] == layout.GRIP and flip[layout.TIP] == layout.TIP
    assert flip[0] == 0
    for i, name in enumerate(layout.KEYPOINT_NAMES):
        other = layout.KEYPOINT_NAMES[flip[i]]
        if name.startswith("left_"):
            assert other == "right_" + name.removeprefix("left_")
        elif name.startswith("right_"):
            assert other == "left_" + name.removeprefix("right_")
        else:
            assert other == name


def test_skeleton_indices_valid_and_stick_connected():
    for a, b in layout.SKELETON:
        assert 0 <= a < 19 and 0 <= b < 19 and a != b
    assert (layout.GRIP, layout.TIP) in layout.SKELETON
    assert {(layout.L_WRIST, layout.GRIP), (layout.R_WRIST, layout.GRIP)} <= set(layout.SKELETON)
    assert len(set(layout.SKELETON)) == len(layout.SKELETON)
    cat = layout.ARNIS.coco_category()
    assert cat["skeleton"] == [[a + 1, b + 1] for a, b in layout.SKELETON]
    assert min(min(e) for e in cat["skeleton"]) >= 1


def test_sigmas_and_sources():
    assert layout.OKS_SIGMAS.shape == (19,) and (layout.OKS_SIGMAS > 0).all()
    assert layout.SOURCES == ("imported", "corrected", "human", "predicted", "interpolated")
    assert [layout.IMPORTED, layout.CORRECTED, layout.HUMAN, layout.PREDICTED] == [0, 1, 2, 3]
    assert layout.INTERPOLATED == 4


def test_schema_mirrors_the_layout():
    root = Path(__file__).resolve().parents[2]
    schema = json.loads((root / "schemas" / "dataset.schema.json").read_text())
    names = schema["properties"]["categories"]["items"]["properties"]["keypoints"]["const"]
    assert tuple(names) == layout.KEYPOINT_NAMES
    kp = schema["definitions"]["keypoints19"]
    assert kp["minItems"] == kp["maxItems"] == 3 * layout.NUM_KEYPOINTS
    skel = schema["properties"]["categories"]["items"]["properties"]["skeleton"]["items"]
    assert skel["items"]["maximum"] == layout.NUM_KEYPOINTS
