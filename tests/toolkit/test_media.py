"""``toolkit.media``: a dataset row -> its pixels (image files and video frames), the suffixes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from toolkit.dataset import Dataset
from toolkit.media import (
    IMAGE_SUFFIXES,
    FrameReader,
    frame_pixels,
    is_image_file,
    iter_frame_pixels,
    iter_pixels,
    row_pixels,
)


def _frame(i: int) -> np.ndarray:
    """A 16x24 BGR picture that differs per index (blocks survive mp4 compression)."""
    img = np.zeros((16, 24, 3), np.uint8)
    img[:, : 4 * (i % 6 + 1), 2] = 220
    img[:8, :, 1] = 30 * (i % 8)
    return img


@pytest.fixture
def media_ds(tmp_path) -> Dataset:
    """Two image files and frames 2, 5, 5 (two people), 7 of a 10-frame video."""
    for i, name in enumerate(("p/a.png", "p/b.png")):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / name), _frame(10 + i))
    vw = cv2.VideoWriter(str(tmp_path / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (24, 16))
    for i in range(10):
        vw.write(_frame(i))
    vw.release()
    images = [
        {"id": 1, "file_name": "p/b.png", "width": 24, "height": 16},
        {"id": 2, "file_name": "p/a.png", "width": 24, "height": 16},
    ]
    images += [
        {
            "id": 10 + f,
            "file_name": f"v/{f:06d}.jpg",
            "width": 24,
            "height": 16,
            "video_id": 1,
            "frame_index": f,
        }
        for f in (7, 2, 5)
    ]
    anns = [{"id": 100 + i, "image_id": im} for i, im in enumerate((1, 2, 17, 12, 15, 15))]
    videos = [{"id": 1, "file_name": "v.mp4", "fps": 10.0, "frame_count": 10}]
    ds = Dataset.from_records(
        images, anns, np.full((6, 19, 3), 2.0), videos=videos, media_root=str(tmp_path)
    )
    return ds


def _rgb(i: int) -> np.ndarray:
    return cv2.cvtColor(_frame(i), cv2.COLOR_BGR2RGB)


def test_one_suffix_list():
    assert len(IMAGE_SUFFIXES) == 13 and {".jpg", ".png", ".webp", ".tiff"} <= IMAGE_SUFFIXES
    assert is_image_file("x/Y.JPG") and is_image_file(Path("a.webp"))
    assert not is_image_file("clip.mp4") and not is_image_file("labels.txt")


def test_frame_reader_and_frame_pixels(media_ds):
    with FrameReader(media_ds) as frames:
        assert len(frames) == 5 and "5 frames" in repr(frames)
        np.testing.assert_array_equal(frames[0], _rgb(11))  # p/b.png
        assert frames.is_video(2) and not frames.is_video(1)
        for t, f in ((2, 7), (3, 2), (4, 5), (2, 7)):  # forward, back: always the right frame
            assert np.abs(frames[t].astype(int) - _rgb(f)).mean() < 12, (t, f)
        with pytest.raises(IndexError):
            frames[5]
    one = frame_pixels(media_ds, {"video": "v.mp4", "frame_index": 5})
    assert one.flags.writeable and np.abs(one.astype(int) - _rgb(5)).mean() < 12
    np.testing.assert_array_equal(frame_pixels(media_ds, {"file_name": "p/a.png"}), _rgb(10))
    np.testing.assert_array_equal(frame_pixels(media_ds, 1), _rgb(10))
    with pytest.raises(LookupError, match="naming a frame"):
        frame_pixels(media_ds, {"image_id": 99})


def test_each_picture_is_decoded_once_in_order(media_ds):
    seen = [(pos.tolist(), rgb.shape) for pos, rgb in iter_frame_pixels(media_ds)]
    # Image files in row order, then the video's frames in frame order.
    assert [p for p, _ in seen] == [[0], [1], [3], [4], [2]]
    ann = list(iter_pixels(media_ds))
    assert [p.tolist() for p, _ in ann] == [[0], [1], [3], [4, 5], [2]]  # 2 people on frame 5
    np.testing.assert_array_equal(ann[1][1], _rgb(10))
    picked = [p.tolist() for p, _ in iter_frame_pixels(media_ds, np.array([1, 4, 0, 1]))]
    assert picked == [[0, 3], [2], [1]]  # repeats share one decode
    np.testing.assert_array_equal(row_pixels(media_ds, 1), _rgb(10))
    with pytest.raises(IndexError):
        row_pixels(media_ds, 6)


def test_missing_files_are_named(media_ds, tmp_path):
    (tmp_path / "v.mp4").unlink()
    with pytest.raises(FileNotFoundError, match=r"v\.mp4.*for the test"):
        list(iter_frame_pixels(media_ds, np.array([2]), hint="for the test"))
    with FrameReader(media_ds) as frames, pytest.raises(FileNotFoundError, match="v.mp4"):
        frames[3]
    (tmp_path / "p" / "a.png").unlink()
    with pytest.raises(FileNotFoundError, match="a.png"):
        row_pixels(media_ds, 1)
    # skip_missing: what exists is still read (evidence only where there are pixels).
    left = [p.tolist() for p, _ in iter_pixels(media_ds, skip_missing=True)]
    assert left == [[0]]
