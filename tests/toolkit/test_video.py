"""VideoReader: on-demand decoding, seeking, caching, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from toolkit.errors import InputError
from toolkit.media import video as video_mod
from toolkit.media.video import VideoReader, probe


def make_video(path: Path, n: int = 40, w: int = 64, h: int = 48, fps: float = 12.0) -> Path:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert vw.isOpened()
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 2] = 200  # red in BGR: the reader must hand back RGB
        cv2.putText(img, str(i), (4, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        vw.write(img)
    vw.release()
    return path


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_video(tmp_path / "clip.mp4")


def _all_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            return out
        out.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))


def test_metadata_and_rgb_frames(clip):
    with VideoReader(clip) as vr:
        assert len(vr) == 40 and vr.fps == pytest.approx(12.0)
        assert vr.shape == (40, 48, 64, 3)
        f = vr[0]
        assert f.dtype == np.uint8 and f.shape == (48, 64, 3)
        assert f[2, 2, 0] > 150 and f[2, 2, 2] < 60  # RGB order
        assert not f.flags.writeable
        assert "frames=40" in repr(vr)
    assert probe(clip) == {"fps": 12.0, "frame_count": 40, "width": 64, "height": 48}


def test_random_access_matches_sequential_decoding(clip):
    ref = _all_frames(clip)
    assert len(ref) == 40
    vr = VideoReader(clip, cache_size=4)
    for i in [0, 1, 2, 10, 11, 39, 5, 38, 20, 3, -1]:  # forward, jumps, backwards, negative
        np.testing.assert_array_equal(vr[i], ref[i], err_msg=f"frame {i}")
    np.testing.assert_array_equal(vr[2:5], np.stack(ref[2:5]))
    assert sum(1 for _ in vr) == 40
    vr.close()


def test_sequential_reads_do_not_seek_and_cache_hits_do_not_decode(clip, monkeypatch):
    vr = VideoReader(clip, cache_size=8)
    seeks = []
    real_cap = vr._cap

    class Spy:
        def __getattr__(self, name):
            return getattr(real_cap, name)

        def set(self, prop, value):
            seeks.append(value)
            return real_cap.set(prop, value)

    vr._cap = Spy()
    for i in range(1, 20):
        vr[i]
    assert seeks == []  # in order: no seek
    vr[25]  # a short jump forward decodes through
    assert seeks == []
    vr[2]  # backwards: one seek
    assert seeks == [2]
    decoded = []
    monkeypatch.setattr(vr, "_decode", lambda i: decoded.append(i))
    assert vr[25] is not None and vr[2] is not None  # both cached
    assert decoded == []
    vr._cap = real_cap
    vr.close()


def test_cache_is_bounded(clip):
    vr = VideoReader(clip, cache_size=3)
    for i in range(10):
        vr[i]
    assert list(vr._cache) == [7, 8, 9]
    vr.close()


def test_index_errors(clip):
    with VideoReader(clip) as vr:
        with pytest.raises(IndexError):
            vr[40]
        with pytest.raises(IndexError):
            vr[-41]


def test_missing_corrupt_and_truncated_videos(tmp_path, clip):
    with pytest.raises(FileNotFoundError):
        VideoReader(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 5000)
    with pytest.raises(InputError) as ei:
        VideoReader(junk)
    assert ei.value.path == junk
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError):
        VideoReader(empty)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: len(clip.read_bytes()) // 3])
    with pytest.raises(InputError) as ei:
        vr = VideoReader(cut)
        for i in range(len(vr)):
            vr[i]
    assert ei.value.path == cut


def test_grab_ahead_threshold_is_sane():
    assert 1 <= video_mod.GRAB_AHEAD <= 120


def test_real_video(realdata):
    path = realdata / "tfjs-models" / "pose_1.mp4"
    with VideoReader(path) as vr:
        assert len(vr) == 120 and vr.shape[1:] == (576, 576, 3)
        last = vr[119]
        mid = vr[60]
        first = vr[0]
        assert last.shape == mid.shape == first.shape == (576, 576, 3)
        assert first.std() > 5  # real pixels, not a blank frame
        assert not np.array_equal(first, last)
        np.testing.assert_array_equal(vr[60], mid)
