"""Random access to video frames, decoded on demand (never the whole video in memory).

The viewer, the YOLO exporter and the detector read frames through :class:`VideoReader`::

    with VideoReader("clip.mp4") as vr:
        print(len(vr), vr.fps, vr.shape)   # frames, frames per second, (n, height, width, 3)
        frame = vr[10]                      # RGB uint8 (height, width, 3), read-only

Reading frames in order is the fast path (one ``read()`` per frame). A jump forward either
decodes and drops the frames in between (``grab()``) or seeks, whichever costs less: a seek
decodes from a keyframe before the target (OpenCV's FFmpeg backend starts from one at least 16
frames before it) after flushing the decoder, so it costs a fixed amount that the reader measures
as it goes, like the cost of one frame decoded in order; a jump forward of up to
``seek cost / frame cost`` frames decodes through (:attr:`VideoReader.grab_limit`). Before the
first seek is measured the limit is :data:`GRAB_AHEAD`. A jump backwards always seeks. Both ways
give the exact frame. A small LRU cache keeps recently decoded frames, so a viewer stepping back
and forth does not decode the same frame twice.

``threads`` sets the decoder's threads: a viewer wants 1 (measured at 720p on 2 cores: a seek
took 10 ms with one thread against 22 ms with OpenCV's default of one per core, whose frame
threads must refill after every seek, and a frame in order 0.9 against 1.3 ms).

Two decoders, the same frames (:attr:`VideoReader.backend`): PyAV (``av``, when it imports) and
OpenCV's FFmpeg backend otherwise, or when PyAV cannot open the file. PyAV seeks to the keyframe
at or before the target itself, where OpenCV starts at least 16 frames earlier: a random frame of
a 720p mp4 (keyframe every 12 frames, one decoder thread, 2 shared cores) cost 5-8 ms of CPU
against 10-19 ms, a frame in order about the same (1.2-1.7 ms). Frame ``i`` is the frame whose
timestamp is ``i / fps`` after the stream's start, as OpenCV numbers them; both give identical
pixels (the same FFmpeg conversion to RGB).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from toolkit.errors import InputError

#: Forward jumps up to this many frames are decoded through instead of seeking, until the reader
#: has measured what a seek and a frame cost (a seek decodes at least this many frames anyway).
GRAB_AHEAD = 16
#: The most frames a measured :attr:`VideoReader.grab_limit` may decode through instead of a seek.
MAX_GRAB_AHEAD = 120
#: Weight of the newest measurement in the running mean costs (an exponential moving average).
COST_WEIGHT = 0.2
#: The decoders :class:`VideoReader` can use (``"auto"``: PyAV when it imports, else OpenCV).
BACKENDS = ("auto", "pyav", "opencv")


def have_pyav() -> bool:
    """Whether PyAV (``av``) imports, so that :class:`VideoReader` can decode with it."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def grab_limit(seek_s: float | None, frame_s: float | None) -> int:
    """Longest forward jump that costs less decoded through than with a seek.

    Args:
        seek_s: Seconds a seek and the read after it take (None: not measured yet).
        frame_s: Seconds one frame decoded in order takes (None: not measured yet).

    Returns:
        ``seek_s / frame_s`` frames, within ``1 .. MAX_GRAB_AHEAD``; :data:`GRAB_AHEAD` while
        either cost is unknown.
    """
    if not seek_s or not frame_s or seek_s <= 0 or frame_s <= 0:
        return GRAB_AHEAD
    return int(min(max(seek_s / frame_s, 1.0), MAX_GRAB_AHEAD))


class VideoReader:
    """Frames of one video file as RGB ``uint8`` arrays, decoded on demand.

    Args:
        path: The video file (anything OpenCV's FFmpeg backend opens: mp4, avi, mov …).
        cache_size: How many decoded frames to keep (least recently used are dropped).
        threads: Decoder threads; 0: OpenCV's default (one per core). A viewer wants 1.
        adaptive: Choose between decoding through and seeking from measured costs (else a jump
            forward of up to :data:`GRAB_AHEAD` frames decodes through).
        channels: 3: RGB frames; 4: RGBA with alpha 255 (what napari uploads fastest).
        backend: ``"pyav"``, ``"opencv"``, or ``"auto"``: PyAV when it imports and opens the
            file, else OpenCV (same frames either way, PyAV seeks faster).

    Attributes:
        path: The video file.
        fps: Frames per second as the container reports it (``0.0`` when it reports none).
        width: Frame width in pixels.
        height: Frame height in pixels.
        frame_count: Number of frames (``len(reader)``).
        backend: The decoder in use: ``"pyav"`` or ``"opencv"``.
        costs: Running mean seconds of ``"seek"`` (a seek and the read after it) and ``"frame"``
            (one frame decoded in order); None until measured. CPU seconds of the calling
            thread with ``threads=1``, wall-clock seconds otherwise.

    Shapes:
        ``reader[i]``: ``(height, width, channels)`` uint8 RGB (RGBA), not writeable (copy it to
        draw on it).

    Raises:
        FileNotFoundError: The file does not exist.
        InputError: The file is not a video the decoder can decode (corrupt, truncated, empty).
        ValueError: ``channels`` is not 3 or 4, or ``backend`` not one of :data:`BACKENDS`.
        ImportError: ``backend="pyav"`` without PyAV installed.
    """

    def __init__(
        self,
        path: str | Path,
        cache_size: int = 32,
        threads: int = 0,
        adaptive: bool = True,
        channels: int = 3,
        backend: str = "auto",
    ):
        if channels not in (3, 4):
            raise ValueError(f"Expected 3 (RGB) or 4 (RGBA) channels, but got {channels}.")
        if backend not in BACKENDS:
            raise ValueError(f"Expected a backend in {BACKENDS}, but got {backend!r}.")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"Expected 'video' to be an existing file, but {self.path} does not exist."
            )
        self._cap = None  # OpenCV's VideoCapture
        self._container = None  # PyAV's container, its video stream and frame iterator
        self._stream = None
        self._frames = None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = max(1, int(cache_size))
        self.adaptive = bool(adaptive)
        self.channels = int(channels)
        # A single-threaded decoder decodes in the calling thread: its CPU time is what a seek
        # or a frame costs, whatever else runs (wall time also counts waiting for the GIL or a
        # core: measured 8 ms "per frame" in the viewer's decode-ahead thread, against 0.5-1 ms
        # of decoding). With decoder threads the work happens elsewhere: wall time.
        self._clock = time.thread_time if threads == 1 else time.perf_counter
        self._lock = threading.Lock()
        if backend == "pyav" or (backend == "auto" and have_pyav()):
            try:
                self._open("pyav", threads)
                return
            except InputError:
                if backend == "pyav":
                    raise
            # PyAV could not: OpenCV decides (and words the error as it always has).
        self._open("opencv", threads)

    def _open(self, backend: str, threads: int) -> None:
        """Open the file with ``backend`` and decode the first frame (InputError if either fails)."""
        self.backend = backend
        self._next = 0  # index the next decoded frame has
        self.costs: dict[str, float | None] = {"seek": None, "frame": None}
        self._cache.clear()
        if backend == "pyav":
            self._open_pyav(threads)
        else:
            self._open_opencv(threads)
        if self.frame_count <= 0 or self.width <= 0 or self.height <= 0:
            self.close()
            raise InputError(
                f"Expected a video with frames, but {self._decoder_name} reports "
                f"{self.frame_count} frames of {self.width}x{self.height} (corrupt or empty file).",
                self.path,
            )
        # Decode the first frame now: a file with a valid header but broken data fails here, at
        # open, with a clear message instead of later in the middle of a viewer session.
        try:
            first = self[0]
        except InputError:
            self.close()
            raise
        if first.shape[:2] != (self.height, self.width):
            self.height, self.width = first.shape[:2]
        self.costs["frame"] = None  # the first read also set the decoder up: not a typical frame

    @property
    def _decoder_name(self) -> str:
        return "PyAV" if self.backend == "pyav" else "OpenCV"

    def _open_opencv(self, threads: int) -> None:
        import cv2

        self._cv2 = cv2
        if threads > 0 and hasattr(cv2, "CAP_PROP_N_THREADS"):
            params = [cv2.CAP_PROP_N_THREADS, int(threads)]
            self._cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, params)
            if not self._cap.isOpened():  # not for FFmpeg, or a build without that parameter
                self._cap.release()
                self._cap = None
        if self._cap is None:
            self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            self._cap.release()
            self._cap = None
            raise InputError(
                "Expected a video file OpenCV can open, but it could not be opened "
                "(corrupt, truncated or not a video).",
                self.path,
            )
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))

    def _open_pyav(self, threads: int) -> None:
        import av

        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise InputError(
                f"Expected a video file PyAV can open, but it could not be opened ({exc}).",
                self.path,
            ) from exc
        streams = self._container.streams.video
        if not streams:
            self.close()
            raise InputError("Expected a video stream, but the file has none.", self.path)
        s = self._stream = streams[0]
        ctx = s.codec_context
        if threads == 1:
            ctx.thread_type = "NONE"
            ctx.thread_count = 1
        else:
            ctx.thread_type = "AUTO"
            ctx.thread_count = max(0, int(threads))  # 0: one per core
        # As OpenCV numbers them: the average frame rate, and frame i at i / fps from the start.
        rate = s.average_rate or s.base_rate or s.guessed_rate
        self.fps = float(rate) if rate else 0.0
        self._tb = float(s.time_base) if s.time_base else 0.0
        self._start = int(s.start_time or 0)
        self.width, self.height = int(ctx.width), int(ctx.height)
        count = int(s.frames or 0)
        if count <= 0 and self.fps > 0:
            if s.duration and self._tb:
                seconds = s.duration * self._tb
            else:
                seconds = (self._container.duration or 0) / 1e6
            count = int(seconds * self.fps + 0.5)
        self.frame_count = count
        if self.fps <= 0 or self._tb <= 0:
            self.close()
            raise InputError(
                "Expected a video with a frame rate and a time base, but PyAV reports none.",
                self.path,
            )

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(frames, height, width, channels)``."""
        return (self.frame_count, self.height, self.width, self.channels)

    def __len__(self) -> int:
        return self.frame_count

    @property
    def grab_limit(self) -> int:
        """Longest forward jump decoded through instead of seeking (see :func:`grab_limit`)."""
        if not self.adaptive:
            return GRAB_AHEAD
        return grab_limit(self.costs["seek"], self.costs["frame"])

    def __repr__(self) -> str:
        return (
            f"VideoReader('{self.path}', frames={self.frame_count}, fps={self.fps:g}, "
            f"size={self.width}x{self.height})"
        )

    # ------------------------------------------------------------------ access
    def __getitem__(self, index: int) -> np.ndarray:
        """Frame ``index`` (negative counts from the end) as RGB uint8, read-only.

        Raises:
            IndexError: ``index`` is outside ``0 .. len - 1``.
            InputError: The frame cannot be decoded (truncated or corrupt file).
        """
        if isinstance(index, slice):
            return np.stack([self[i] for i in range(*index.indices(len(self)))])
        i = int(index)
        if i < 0:
            i += self.frame_count
        if not 0 <= i < self.frame_count:
            raise IndexError(
                f"Expected a frame index in 0..{self.frame_count - 1}, but got {index}."
            )
        with self._lock:
            hit = self._cache.get(i)
            if hit is not None:
                self._cache.move_to_end(i)
                return hit
            frame = self._decode(i)
            self._cache[i] = frame
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return frame

    def _decode(self, i: int) -> np.ndarray:
        if self._cap is None and self._container is None:
            raise ValueError(f"{self.path}: the VideoReader is closed.")
        jump = i - self._next
        seek = self._next < 0 or jump < 0 or jump > self.grab_limit
        t0 = self._clock()
        try:
            if self.backend == "pyav":
                rgb = self._read_pyav(i, seek)
            else:
                rgb = self._read_opencv(i, seek, jump)
        except InputError:
            self._next = -1  # position unknown: the next access seeks
            raise
        self._learn("seek" if seek else "frame", self._clock() - t0, 1 if seek else jump + 1)
        rgb.flags.writeable = False
        return rgb

    def _read_opencv(self, i: int, seek: bool, jump: int) -> np.ndarray:
        """Frame ``i`` from OpenCV: after a seek, or ``jump`` frames decoded and dropped."""
        cv2 = self._cv2
        if seek:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        else:
            for _ in range(jump):  # decode and drop: exact, and cheaper than a seek
                if not self._cap.grab():
                    break
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            raise InputError(
                f"Expected frame {i} of {self.frame_count} to decode, but OpenCV "
                "could not read it (truncated or corrupt video).",
                self.path,
            )
        self._next = i + 1
        code = cv2.COLOR_BGR2RGBA if self.channels == 4 else cv2.COLOR_BGR2RGB
        return cv2.cvtColor(bgr, code)

    def _index_of(self, frame) -> int:
        """Index of a decoded PyAV frame, from its timestamp (as OpenCV numbers frames)."""
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None:  # no timestamp at all: the frame after the previous one
            return self._next
        return int((pts - self._start) * self._tb * self.fps + 0.5)

    def _seek_pyav(self, i: int, back_s: float = 0.0) -> None:
        """Seek to the keyframe at or before frame ``i`` (``back_s`` seconds earlier still)."""
        if self._frames is not None:
            self._frames.close()
        # Half a frame past frame i's time: its own keyframe, never the one after it.
        seconds = max(0.0, (i + 0.5) / self.fps - back_s)
        target = self._start + int(seconds / self._tb)
        self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        self._frames = self._container.decode(self._stream)

    def _read_pyav(self, i: int, seek: bool) -> np.ndarray:
        """Frame ``i`` from PyAV: after a seek, or decoding on from where the decoder is."""
        import av

        back = 0.0
        try:
            if seek or self._frames is None:
                self._seek_pyav(i)
            first = seek
            while True:
                frame = next(self._frames, None)
                if frame is None:
                    break
                k = self._index_of(frame)
                if first and k > i and back < 60.0:  # the keyframe found is past frame i
                    back = back * 2 if back else 1.0
                    self._seek_pyav(i, back)
                    continue
                first = False
                self._next = k + 1
                if k >= i:
                    fmt = "rgba" if self.channels == 4 else "rgb24"
                    return np.ascontiguousarray(frame.to_ndarray(format=fmt))
        except av.FFmpegError as exc:
            raise InputError(
                f"Expected frame {i} of {self.frame_count} to decode, but PyAV could not "
                f"read it (truncated or corrupt video: {exc}).",
                self.path,
            ) from exc
        self._frames = None
        raise InputError(
            f"Expected frame {i} of {self.frame_count} to decode, but the video ended before "
            "it (truncated or corrupt video).",
            self.path,
        )

    def _learn(self, kind: str, seconds: float, frames: int) -> None:
        """Fold one measurement into the running mean cost of ``kind`` (per frame for reads)."""
        value = seconds / max(frames, 1)
        old = self.costs[kind]
        self.costs[kind] = value if old is None else old + COST_WEIGHT * (value - old)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release the decoder (idempotent)."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if self._container is not None:
            if self._frames is not None:
                self._frames.close()
                self._frames = None
            self._container.close()
            self._container = None
        self._cache.clear()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()


def probe(path: str | Path) -> dict:
    """``{fps, frame_count, width, height}`` of a video (opens it, checks the first frame).

    Raises:
        FileNotFoundError: The file does not exist.
        InputError: Neither PyAV nor OpenCV can decode it.
    """
    with VideoReader(path, cache_size=1) as vr:
        return {
            "fps": vr.fps,
            "frame_count": vr.frame_count,
            "width": vr.width,
            "height": vr.height,
        }
