"""``toolkit.locate``: every way a record names a frame, onto dataset rows and back."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.dataset import Dataset
from toolkit.locate import Locator, frame_fields


def small() -> Dataset:
    """Two photos (the first with two people, the second with none) and three video frames."""
    images = [
        {"id": 7, "file_name": "a.jpg", "width": 8, "height": 8},
        {"id": 8, "file_name": "b.jpg", "width": 8, "height": 8},
    ]
    images += [
        {
            "id": 20 + f,
            "file_name": f"clip/{f:06d}.jpg",
            "width": 8,
            "height": 8,
            "video_id": 3,
            "frame_index": f,
        }
        for f in (4, 5, 9)
    ]
    anns = [
        {"id": 100, "image_id": 7},
        {"id": 101, "image_id": 7},
        {"id": 102, "image_id": 25},
        {"id": 103, "image_id": 29},
        {"id": 104, "image_id": 24},
    ]
    kp = np.full((len(anns), 19, 3), 2.0)
    videos = [{"id": 3, "file_name": "clips/clip.mp4", "fps": 10.0, "frame_count": 10}]
    return Dataset.from_records(images, anns, kp, videos=videos)


@pytest.mark.parametrize(
    "rec, frame",
    [
        ({"image_id": 8}, 1),
        ({"file_name": "a.jpg"}, 0),
        ({"video": 3, "frame_index": 5}, 3),
        ({"video": "clips/clip.mp4", "frame_index": 9}, 4),
        ({"video": "clip.mp4", "frame_index": 4}, 2),
        ({"video": "clip", "frame_index": 4.0}, 2),
        ({"video": "elsewhere/clip.mp4", "frame_index": 5}, 3),  # by stem
        ({"ann_id": 103}, 4),
        ({"image_id": 999, "file_name": "b.jpg"}, 1),  # falls through to the next way
        ({"image_id": 999}, None),
        ({"video": "clip", "frame_index": 6}, None),
        ({"video": "clip", "frame_index": float("nan")}, None),
        ({"ann_id": True}, None),  # a bool is not an id
        ("not a record", None),
    ],
)
def test_frame_of_every_naming(rec, frame):
    assert Locator.build(small()).frame_of(rec) == frame


def test_annotation_rows():
    loc = Locator.build(small())
    assert loc.ann_frame.tolist() == [0, 0, 3, 4, 2]
    assert loc.first_ann.tolist() == [0, -1, 4, 2, 3]
    assert loc.ann_row(102) == 2 and loc.ann_row(999) is None and loc.ann_row("102") is None
    assert loc.ann_rows(np.array([104, 5, 100])).tolist() == [4, -1, 0]
    # ann_id wins (an unknown one names nothing), else the frame's first annotation.
    assert loc.ann_row_of({"ann_id": 101, "image_id": 25}) == 1
    assert loc.ann_row_of({"ann_id": 999, "image_id": 7}) is None
    assert loc.ann_row_of({"image_id": 7}) == 0
    assert loc.ann_row_of({"video": "clip", "frame_index": 9}) == 3
    assert loc.ann_row_of({"file_name": "b.jpg"}) is None  # a frame without people
    assert loc.ann_row_of(None) is None


def test_frame_fields_round_trip():
    ds = small()
    loc = Locator.build(ds)
    fields = frame_fields(ds, np.arange(len(ds)))
    assert fields[2] == {
        "file_name": "clip/000005.jpg",
        "image_id": 25,
        "ann_id": 102,
        "video": "clips/clip.mp4",
        "frame_index": 5,
    }
    assert fields[0]["video"] is None and fields[0]["frame_index"] is None
    for row, f in enumerate(fields):  # every naming leads back to the same row
        assert loc.ann_row_of(f) == row
        for key in ("image_id", "file_name"):
            assert loc.frame_of({key: f[key]}) == loc.ann_frame[row]
        if f["video"] is not None:
            by_video = {"video": f["video"], "frame_index": f["frame_index"]}
            assert loc.frame_of(by_video) == loc.ann_frame[row]
    per_image = frame_fields(ds, np.array([1, 4]), per="image")
    assert [f["image_id"] for f in per_image] == [8, 29] and per_image[0]["ann_id"] is None
    with pytest.raises(ValueError, match="'per'"):
        frame_fields(ds, np.array([0]), per="video")
