"""VideoReader: on-demand decoding, seeking, caching, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from toolkit.errors import InputError
from toolkit.media import video as video_mod
from toolkit.media.video import VideoReader, probe

HAVE_PYAV = video_mod.have_pyav()
#: Every decoder: the tests that take ``backend`` run once with each (PyAV's skip without it).
BACKENDS = [
    "opencv",
    pytest.param("pyav", marks=pytest.mark.skipif(not HAVE_PYAV, reason="PyAV (av) not installed")),
]


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


@pytest.mark.parametrize("backend", BACKENDS)
def test_metadata_and_rgb_frames(clip, backend):
    with VideoReader(clip, backend=backend) as vr:
        assert vr.backend == backend
        assert len(vr) == 40 and vr.fps == pytest.approx(12.0)
        assert vr.shape == (40, 48, 64, 3)
        f = vr[0]
        assert f.dtype == np.uint8 and f.shape == (48, 64, 3)
        assert f[2, 2, 0] > 150 and f[2, 2, 2] < 60  # RGB order
        assert not f.flags.writeable
        assert "frames=40" in repr(vr)
    assert probe(clip) == {"fps": 12.0, "frame_count": 40, "width": 64, "height": 48}


def test_rgba_frames_are_the_rgb_frames_with_opaque_alpha(clip):
    with (
        VideoReader(clip, backend="opencv") as rgb,
        VideoReader(clip, channels=4, threads=1, backend="opencv") as rgba,
    ):
        assert rgba.shape == (40, 48, 64, 4)
        assert rgba._cap.get(cv2.CAP_PROP_N_THREADS) == 1  # the viewer's one-thread decoder
        for i in (0, 7, 39, 3):
            f = rgba[i]
            assert f.shape == (48, 64, 4) and not f.flags.writeable and f.flags.c_contiguous
            np.testing.assert_array_equal(f[..., :3], rgb[i])
            assert (f[..., 3] == 255).all()
    with pytest.raises(ValueError, match="channels"):
        VideoReader(clip, channels=1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_access_matches_sequential_decoding(clip, backend):
    ref = _all_frames(clip)
    assert len(ref) == 40
    vr = VideoReader(clip, cache_size=4, backend=backend)
    for i in [0, 1, 2, 10, 11, 39, 5, 38, 20, 3, -1]:  # forward, jumps, backwards, negative
        np.testing.assert_array_equal(vr[i], ref[i], err_msg=f"frame {i}")
    np.testing.assert_array_equal(vr[2:5], np.stack(ref[2:5]))
    assert sum(1 for _ in vr) == 40
    vr.close()


def test_sequential_reads_do_not_seek_and_cache_hits_do_not_decode(clip, monkeypatch):
    vr = VideoReader(clip, cache_size=8, backend="opencv")
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_cache_is_bounded(clip, backend):
    vr = VideoReader(clip, cache_size=3, backend=backend)
    for i in range(10):
        vr[i]
    assert list(vr._cache) == [7, 8, 9]
    vr.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_index_errors(clip, backend):
    with VideoReader(clip, backend=backend) as vr:
        with pytest.raises(IndexError):
            vr[40]
        with pytest.raises(IndexError):
            vr[-41]


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_missing_corrupt_and_truncated_videos(tmp_path, clip, backend):
    with pytest.raises(FileNotFoundError):
        VideoReader(tmp_path / "nope.mp4", backend=backend)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 5000)
    with pytest.raises(InputError) as ei:
        VideoReader(junk, backend=backend)
    assert ei.value.path == junk
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError):
        VideoReader(empty, backend=backend)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: len(clip.read_bytes()) // 3])
    with pytest.raises(InputError) as ei:
        vr = VideoReader(cut, backend=backend)
        for i in range(len(vr)):
            vr[i]
    assert ei.value.path == cut


def test_grab_ahead_threshold_is_sane():
    assert 1 <= video_mod.GRAB_AHEAD <= video_mod.MAX_GRAB_AHEAD <= 1000


def test_grab_limit_follows_the_measured_costs():
    assert video_mod.grab_limit(None, 0.001) == video_mod.GRAB_AHEAD  # not measured yet
    assert video_mod.grab_limit(0.010, None) == video_mod.GRAB_AHEAD
    assert video_mod.grab_limit(0.010, 0.001) == 10  # a seek costs 10 frames decoded in order
    assert video_mod.grab_limit(0.0005, 0.001) == 1  # seeking cheap: still read on one frame
    assert video_mod.grab_limit(10.0, 0.001) == video_mod.MAX_GRAB_AHEAD


class _SeekSpy:
    """Stands in for a VideoCapture and records its seeks."""

    def __init__(self, cap):
        self.cap, self.seeks = cap, []

    def __getattr__(self, name):
        return getattr(self.cap, name)

    def set(self, prop, value):
        self.seeks.append(int(value))
        return self.cap.set(prop, value)


@pytest.mark.parametrize("threads", [0, 1])
def test_seek_or_decode_through_around_the_limit(clip, threads):
    """Jumps up to the limit ahead decode through, longer and backward ones seek: all exact."""
    ref = _all_frames(clip)
    vr = VideoReader(clip, cache_size=1, threads=threads, adaptive=False, backend="opencv")
    limit = vr.grab_limit
    assert limit == video_mod.GRAB_AHEAD
    spy = vr._cap = _SeekSpy(vr._cap)
    # (index, seeks expected): vr[0] was read at open, so the decoder is at 1.
    plan = [
        (1 + limit, False),  # exactly the limit ahead: decoded through
        (1 + limit + 1 + limit + 1, True),  # one past the limit: a seek
        (39, False),  # the last frame, from close enough
        (38, True),  # backward
        (0, True),  # the first frame, backward
        (39, True),  # the last frame, from far
    ]
    for i, seeks in plan:
        before = len(spy.seeks)
        np.testing.assert_array_equal(vr[i], ref[i], err_msg=f"frame {i}")
        assert (len(spy.seeks) > before) == seeks, f"frame {i}"
    vr._cap = spy.cap
    vr.close()


def test_adaptive_limit_uses_the_reader_s_own_costs(clip, monkeypatch):
    ref = _all_frames(clip)
    vr = VideoReader(clip, cache_size=1, backend="opencv")
    assert vr.costs == {"seek": None, "frame": None}  # the first read sets up: not counted
    vr[1], vr[2], vr[30], vr[3]  # in order, a jump, a seek back
    assert vr.costs["frame"] > 0 and vr.costs["seek"] > 0
    assert 1 <= vr.grab_limit <= video_mod.MAX_GRAB_AHEAD
    # Costs that make a seek worth 5 frames: a jump of 5 reads on, one of 6 seeks.
    monkeypatch.setattr(vr, "_learn", lambda *a: None)
    vr.costs = {"seek": 0.005, "frame": 0.001}
    assert vr.grab_limit == 5
    spy = vr._cap = _SeekSpy(vr._cap)
    np.testing.assert_array_equal(vr[3 + 1 + 5], ref[9])
    assert spy.seeks == []
    np.testing.assert_array_equal(vr[9 + 1 + 6], ref[16])
    assert spy.seeks == [16]
    vr._cap = spy.cap
    vr.close()


def test_after_a_failed_read_the_next_access_seeks(clip):
    ref = _all_frames(clip)
    vr = VideoReader(clip, cache_size=1, backend="opencv")
    vr[5]
    vr._next = -1  # as after a frame OpenCV could not read: position unknown
    spy = vr._cap = _SeekSpy(vr._cap)
    np.testing.assert_array_equal(vr[7], ref[7])  # a short jump, yet a seek (exact frame)
    assert spy.seeks == [7]
    vr._cap = spy.cap
    vr.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_video(realdata, backend):
    path = realdata / "tfjs-models" / "pose_1.mp4"
    with VideoReader(path, backend=backend) as vr:
        assert len(vr) == 120 and vr.shape[1:] == (576, 576, 3)
        last = vr[119]
        mid = vr[60]
        first = vr[0]
        assert last.shape == mid.shape == first.shape == (576, 576, 3)
        assert first.std() > 5  # real pixels, not a blank frame
        assert not np.array_equal(first, last)
        np.testing.assert_array_equal(vr[60], mid)


# ---------------------------------------------------------------------- the two decoders
def test_backend_choice(clip, monkeypatch):
    with VideoReader(clip) as vr:
        assert vr.backend == ("pyav" if HAVE_PYAV else "opencv")
    with pytest.raises(ValueError, match="backend"):
        VideoReader(clip, backend="gstreamer")
    monkeypatch.setattr(video_mod, "have_pyav", lambda: False)  # as without av installed
    with VideoReader(clip) as vr:
        assert vr.backend == "opencv" and vr._container is None
        np.testing.assert_array_equal(vr[7], _all_frames(clip)[7])


def _texture_video(path: Path, n: int = 90, w: int = 160, h: int = 96) -> Path:
    """A panning noise texture (every frame differs everywhere): a wrong frame cannot pass."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 1.5)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for i in range(n):
        vw.write(np.roll(texture, 3 * i, axis=1))
    vw.release()
    return path


@pytest.mark.skipif(not HAVE_PYAV, reason="PyAV (av) not installed")
@pytest.mark.parametrize("channels", [3, 4])
def test_pyav_and_opencv_give_the_same_frames(tmp_path, channels):
    """Random jumps (seeks both ways, short jumps) and reading in order: identical pixels."""
    path = _texture_video(tmp_path / "texture.mp4")
    ref = _all_frames(path)
    assert len(ref) == 90
    kw = {"cache_size": 1, "threads": 1, "channels": channels}
    with (
        VideoReader(path, backend="opencv", **kw) as cv,
        VideoReader(path, backend="pyav", **kw) as av,
    ):
        assert av.backend == "pyav" and cv.backend == "opencv"
        assert (av.shape, av.fps) == (cv.shape, cv.fps) == ((90, 96, 160, channels), 30.0)
        order = [int(i) for i in np.random.default_rng(1).integers(0, 90, 40)]
        order += [89, 0, 88, 1, 45, 44, *range(50, 70)]  # ends, one back, then in order
        for i in order:
            a, b = av[i], cv[i]
            assert a.shape == b.shape and a.flags.c_contiguous and not a.flags.writeable
            np.testing.assert_array_equal(a, b, err_msg=f"frame {i}")
            np.testing.assert_array_equal(a[..., :3], ref[i], err_msg=f"frame {i}")
    with VideoReader(path, backend="pyav", cache_size=1) as av:
        frames = list(av)
    assert len(frames) == 90
    for i, frame in enumerate(frames):
        np.testing.assert_array_equal(frame, ref[i], err_msg=f"frame {i} in order")


@pytest.mark.skipif(not HAVE_PYAV, reason="PyAV (av) not installed")
def test_pyav_reads_on_or_seeks_like_opencv(tmp_path, monkeypatch):
    """In order and short jumps decode on; long, backward and after-failure ones seek."""
    path = _texture_video(tmp_path / "texture.mp4")
    ref = _all_frames(path)
    vr = VideoReader(path, cache_size=1, threads=1, adaptive=False, backend="pyav")
    seeks = []
    real = vr._seek_pyav

    def spy(i, back_s=0.0):
        seeks.append(i)
        real(i, back_s)

    monkeypatch.setattr(vr, "_seek_pyav", spy)
    limit = vr.grab_limit
    plan = [(1, False), (2, False), (3 + limit, False), (4 + 2 * limit + 1, True), (10, True)]
    for i, seek in plan:
        before = len(seeks)
        np.testing.assert_array_equal(vr[i], ref[i], err_msg=f"frame {i}")
        assert (len(seeks) > before) == seek, f"frame {i}"
    vr._next = -1  # as after a failed read: position unknown
    np.testing.assert_array_equal(vr[11], ref[11])
    assert seeks[-1] == 11
    assert vr.costs["seek"] > 0 and vr.costs["frame"] > 0
    vr.close()
    with pytest.raises(ValueError, match="closed"):
        vr._decode(3)
