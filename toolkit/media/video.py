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

    Attributes:
        path: The video file.
        fps: Frames per second as the container reports it (``0.0`` when it reports none).
        width: Frame width in pixels.
        height: Frame height in pixels.
        frame_count: Number of frames (``len(reader)``).
        costs: Running mean seconds of ``"seek"`` (a seek and the read after it) and ``"frame"``
            (one frame decoded in order); None until measured. CPU seconds of the calling
            thread with ``threads=1``, wall-clock seconds otherwise.

    Shapes:
        ``reader[i]``: ``(height, width, channels)`` uint8 RGB (RGBA), not writeable (copy it to
        draw on it).

    Raises:
        FileNotFoundError: The file does not exist.
        InputError: The file is not a video OpenCV can decode (corrupt, truncated, empty).
    """

    def __init__(
        self,
        path: str | Path,
        cache_size: int = 32,
        threads: int = 0,
        adaptive: bool = True,
        channels: int = 3,
    ):
        import cv2

        if channels not in (3, 4):
            raise ValueError(f"Expected 3 (RGB) or 4 (RGBA) channels, but got {channels}.")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"Expected 'video' to be an existing file, but {self.path} does not exist."
            )
        self._cv2 = cv2
        self._cap = None
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
            raise InputError(
                "Expected a video file OpenCV can open, but it could not be opened "
                "(corrupt, truncated or not a video).",
                self.path,
            )
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = max(1, int(cache_size))
        self._next = 0  # index the next read() returns
        self.adaptive = bool(adaptive)
        self.channels = int(channels)
        # A single-threaded decoder decodes in the calling thread: its CPU time is what a seek
        # or a frame costs, whatever else runs (wall time also counts waiting for the GIL or a
        # core: measured 8 ms "per frame" in the viewer's decode-ahead thread, against 0.5-1 ms
        # of decoding). With decoder threads the work happens elsewhere: wall time.
        self._clock = time.thread_time if threads == 1 else time.perf_counter
        self.costs: dict[str, float | None] = {"seek": None, "frame": None}
        self._lock = threading.Lock()
        if self.frame_count <= 0 or self.width <= 0 or self.height <= 0:
            self.close()
            raise InputError(
                f"Expected a video with frames, but OpenCV reports {self.frame_count} frames of "
                f"{self.width}x{self.height} (corrupt or empty file).",
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
        cv2 = self._cv2
        if self._cap is None:
            raise ValueError(f"{self.path}: the VideoReader is closed.")
        jump = i - self._next
        seek = self._next < 0 or jump < 0 or jump > self.grab_limit
        t0 = self._clock()
        if seek:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        else:
            for _ in range(jump):  # decode and drop: exact, and cheaper than a seek
                if not self._cap.grab():
                    break
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            self._next = -1  # position unknown: the next access seeks
            raise InputError(
                f"Expected frame {i} of {self.frame_count} to decode, but OpenCV "
                "could not read it (truncated or corrupt video).",
                self.path,
            )
        self._learn("seek" if seek else "frame", self._clock() - t0, 1 if seek else jump + 1)
        self._next = i + 1
        code = cv2.COLOR_BGR2RGBA if self.channels == 4 else cv2.COLOR_BGR2RGB
        rgb = cv2.cvtColor(bgr, code)
        rgb.flags.writeable = False
        return rgb

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
        self._cache.clear()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()


def probe(path: str | Path) -> dict:
    """``{fps, frame_count, width, height}`` of a video (opens it, checks the first frame).

    Raises:
        FileNotFoundError: The file does not exist.
        InputError: OpenCV cannot decode it.
    """
    with VideoReader(path, cache_size=1) as vr:
        return {
            "fps": vr.fps,
            "frame_count": vr.frame_count,
            "width": vr.width,
            "height": vr.height,
        }
