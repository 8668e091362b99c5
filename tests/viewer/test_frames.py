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
    assert src.shape == (3, 40, 30, 4) and src.dtype == np.uint8 and src.ndim == 4
    a = src[0]  # RGBA, opaque; the padding opaque black
    assert a.shape == (40, 30, 4) and (a[:20, :, :3] == 200).all() and (a[20:, :, :3] == 0).all()
    assert (a[..., 3] == 255).all()
    assert src[1:2].shape == (1, 40, 30, 4)
    assert src[(slice(1, 2), slice(None), slice(0, 5))].shape == (1, 40, 5, 4)
    rgb = FrameSource(ds, channels=3)  # RGB on request: the same pixels
    assert rgb.shape == (3, 40, 30, 3)
    np.testing.assert_array_equal(rgb[0], a[..., :3])
    with pytest.raises(ValueError, match="channels"):
        FrameSource(ds, channels=2)
    with pytest.warns(UserWarning, match="cannot read"):
        assert (src[2][:10, :10, :3] == 64).all()  # missing file: grey, not a crash
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
    frame_mb = 32 * 48 * 4 / 2**20
    src = FrameSource(ds, cache_mb=6 * frame_mb, ahead=2)
    assert src.shape == (40, 32, 48, 4) and src.ahead == 2
    for t in (0, 1, 2, 30, 5, 39, 38, 37):
        f = src[t]
        assert f.shape == (32, 48, 4) and f.dtype == np.uint8 and (f[..., 3] == 255).all()
        assert f.flags.c_contiguous and not f.flags.writeable  # napari uploads it as it is
        assert abs(int(f[..., :3].mean()) - (t * 7) % 250) <= 6  # mp4 is lossy
    assert len(src.cache) <= 6 and src.cache.nbytes <= 6 * 32 * 48 * 4  # never the whole video
    one = src[37:38]  # how napari asks on each step: a view of the cached frame, no copy
    assert one.shape == (1, 32, 48, 4) and np.shares_memory(one, src.frame(37))
    assert src[36:38].shape == (2, 32, 48, 4)
    src.close()
    assert src._thread is None and len(src.cache) == 0


def _clip_dataset(tmp_path, n: int) -> Dataset:
    """An ``n``-frame clip (no annotations) whose images carry no size: it comes from the video."""
    _write_video(tmp_path / "clip.mp4", n)
    images = [
        {"id": i, "file_name": f"clip/{i:06d}.jpg", "video_id": 1, "frame_index": i}
        for i in range(n)
    ]
    return Dataset.from_records(
        images,
        [],
        np.zeros((0, 19, 3)),
        media_root=str(tmp_path),
        videos=[{"id": 1, "file_name": "clip.mp4", "fps": 10.0, "frame_count": n}],
    )


def test_decodes_ahead_in_the_direction_of_travel(tmp_path):
    import time

    src = FrameSource(_clip_dataset(tmp_path, 60), ahead=8)
    assert src.shape == (60, 32, 48, 4)  # size from the video when the images have none
    src[10]  # a jump: nothing decoded ahead yet
    time.sleep(0.2)
    assert 11 not in src.cache
    for t in (11, 12):  # stepping on (a scrub): the window opens and grows to ``ahead``
        src[t]
    _wait(lambda: all(f in src.cache for f in range(13, 21)))
    assert 21 not in src.cache
    for t in (13, 14, 15):
        src[t]
    assert src.stats["hits"] >= 3
    src[40]  # a jump: decoded at once
    src[39]  # then backward: the frames before it fill, in chunks decoded forward
    src[38]
    _wait(lambda: all(f in src.cache for f in range(30, 38)))
    for t in range(38, 30, -1):
        f = src[t]
        assert abs(int(f[..., :3].mean()) - (t * 7) % 250) <= 6
    src.close()
    time.sleep(0.05)


def test_backward_plan_decodes_whole_chunks_below_the_cached_frames(tmp_path):
    """Stepping back by one frame never plans a chunk of one frame (each chunk is a seek)."""
    from viewer.frames import BACK_CHUNK

    src = FrameSource(_clip_dataset(tmp_path, 100), prefetch=False, ahead=24)
    size = min(BACK_CHUNK, src.ahead)
    first = src._plan(60, -1, 24)  # nothing cached: chunks down from 59, nearest first
    assert first == [list(range(60 - size, 60)), list(range(60 - 2 * size, 60 - size))]
    for f in range(60 - 24, 80):  # what a backward scrub from 80 has decoded by frame 60
        src.cache.put(f, src.frame(f))
    assert src._plan(60, -1, 24) == []
    assert src._plan(59, -1, 24) == [list(range(36 - size, 36))]  # not [35] alone
    assert src._plan(5, -1, 24) == [[0, 1, 2, 3, 4]]  # a chunk never reaches below frame 0
    assert src._plan(40, 1, 8) == []  # forward: what is not cached, in order
    assert src._plan(78, 1, 8) == [[80, 81, 82, 83, 84, 85, 86]]
    src.close()


def _wait(cond, timeout=10.0):
    import time

    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "the background decoder did not fill the frames"
        time.sleep(0.01)


def test_frame_cache_is_bounded_in_bytes():
    from viewer.frames import FrameCache

    cache = FrameCache(max_bytes=3 * 100)
    for t in range(5):
        cache.put(t, np.zeros(100, np.uint8))
    assert len(cache) == 3 and cache.nbytes == 300 and 0 not in cache and 4 in cache
    assert cache.get(2) is not None  # now the most recently used
    cache.put(5, np.zeros(100, np.uint8))
    assert 2 in cache and 3 not in cache
    cache.put(9, np.zeros(1000, np.uint8))  # bigger than the bound: kept alone
    assert len(cache) == 1 and cache.get(9) is not None


def test_expected_jumps_are_decoded_when_idle(tmp_path):
    import time

    _write_video(tmp_path / "clip.mp4", 60)
    images = [
        {"id": i, "file_name": f"clip/{i:06d}.jpg", "video_id": 1, "frame_index": i}
        for i in range(60)
    ]
    ds = Dataset.from_records(
        images,
        [],
        np.zeros((0, 19, 3)),
        videos=[{"id": 1, "file_name": "clip.mp4", "fps": 30, "frame_count": 60}],
        media_root=str(tmp_path),
    )
    src = FrameSource(ds)
    src[5]  # the viewer is on frame 5; N would jump to 40, Shift-N to 2
    src.expect([40, 2, 5, 99])  # 5 is cached, 99 is not a frame
    deadline = time.monotonic() + 10
    while not (40 in src.cache and 2 in src.cache) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert 40 in src.cache and 2 in src.cache and src.stats["expected"] == 2
    decoded = src.stats["decoded"]
    f = src[40]  # the jump: served from the cache
    assert src.stats["decoded"] == decoded and abs(int(f[..., :3].mean()) - (40 * 7) % 250) <= 6
    src.close()


def test_a_prepared_jump_is_decoded_by_the_thread_and_not_twice(tmp_path):
    src = FrameSource(_clip_dataset(tmp_path, 60))
    src[3]
    assert src.prepare(47)  # napari will ask for 47 shortly: the thread decodes it meanwhile
    f = src[47]  # waits for the thread's decode (or finds it cached)
    assert abs(int(f[..., :3].mean()) - (47 * 7) % 250) <= 6
    assert src.stats["prepared"] == 1 and src.stats["decoded"] == 1  # only frame 3 here
    assert not src.prepare(47)  # cached: nothing to do
    assert not src.prepare(60) and not src.prepare(-1)  # not frames
    src.close()
    (tmp_path / "b").mkdir()
    quiet = FrameSource(_clip_dataset(tmp_path / "b", 10), prefetch=False)
    assert not quiet.prepare(4)  # no thread: the caller decodes
    assert abs(int(quiet[4][..., :3].mean()) - 28) <= 6 and quiet.stats["decoded"] == 1
    quiet.close()
