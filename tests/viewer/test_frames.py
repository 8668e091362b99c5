"""Frames decoded on demand: image folders (padded to one size) and videos."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.dataset import Dataset
from viewer.frames import MAX_FRAMES_PER_READ, FrameSource


def _write_video(path, n, w=48, h=32, fps=10.0):
    import cv2

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for i in range(n):
        vw.write(np.full((h, w, 3), (i * 7) % 250, np.uint8))
    vw.release()


def test_images_of_two_sizes_are_padded(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.full((20, 30, 3), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.full((40, 10, 3), 100, np.uint8))
    images = [
        {"id": 1, "file_name": "a.png", "width": 30, "height": 20},
        {"id": 2, "file_name": "b.png", "width": 10, "height": 40},
        {"id": 3, "file_name": "gone.png", "width": 10, "height": 10},
    ]
    ds = Dataset.from_records(images, [], np.zeros((0, 19, 3)), media_root=str(tmp_path))
    src = FrameSource(ds)
    assert src.shape == (3, 40, 30, 3) and src.dtype == np.uint8 and src.ndim == 4
    a = src[0]
    assert a.shape == (40, 30, 3) and (a[:20] == 200).all() and (a[20:] == 0).all()
    assert src[1:2].shape == (1, 40, 30, 3)
    assert src[(slice(1, 2), slice(None), slice(0, 5))].shape == (1, 40, 5, 3)
    with pytest.warns(UserWarning, match="cannot read"):
        assert (src[2][:10, :10] == 64).all()  # missing file: grey, not a crash
    many = [
        {"id": i, "file_name": "a.png", "width": 30, "height": 20}
        for i in range(MAX_FRAMES_PER_READ + 1)
    ]
    big = FrameSource(
        Dataset.from_records(many, [], np.zeros((0, 19, 3)), media_root=str(tmp_path))
    )
    assert big[:MAX_FRAMES_PER_READ].shape[0] == MAX_FRAMES_PER_READ
    with pytest.raises(ValueError, match="at most"):
        big[:]  # a whole-video read is refused, never decoded


def test_video_frames_decode_on_demand(tmp_path):
    _write_video(tmp_path / "clip.mp4", 40)
    images = [
        {
            "id": i,
            "file_name": f"clip/{i:06d}.jpg",
            "width": 48,
            "height": 32,
            "video_id": 1,
            "frame_index": i,
        }
        for i in range(40)
    ]
    ds = Dataset.from_records(
        images,
        [],
        np.zeros((0, 19, 3)),
        media_root=str(tmp_path),
        videos=[
            {
                "id": 1,
                "file_name": "clip.mp4",
                "fps": 10.0,
                "frame_count": 40,
                "width": 48,
                "height": 32,
            }
        ],
    )
    src = FrameSource(ds, cache_size=4)
    assert src.shape == (40, 32, 48, 3)
    for t in (0, 1, 2, 30, 5, 39):
        f = src[t]
        assert f.shape == (32, 48, 3)
        assert abs(int(f.mean()) - (t * 7) % 250) <= 6  # mp4 is lossy
    reader = next(iter(src._readers.values()))
    assert len(reader._cache) <= 4  # never the whole video
    src.close()
