"""Random access to video frames, decoded on demand (never the whole video in memory).

The viewer, the YOLO exporter and the detector read frames through :class:`VideoReader`::

    with VideoReader("clip.mp4") as vr:
        print(len(vr), vr.fps, vr.shape)   # frames, frames per second, (n, height, width, 3)
        frame = vr[10]                      # RGB uint8 (height, width, 3), read-only

Reading frames in order is the fast path (one ``read()`` per frame). A short jump forward
decodes and drops the frames in between (``grab()``), which is exact and cheaper than a seek; only
a jump backwards or far ahead seeks. A small LRU cache keeps recently decoded frames, so a viewer
stepping back and forth does not decode the same frame twice.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from toolkit.errors import InputError

#: Forward jumps up to this many frames are decoded through instead of seeking.
GRAB_AHEAD = 32


class VideoReader:
    """Frames of one video file as RGB ``uint8`` arrays, decoded on demand.

    Args:
        path: The video file (anything OpenCV's FFmpeg backend opens: mp4, avi, mov …).
        cache_size: How many decoded frames to keep (least recently used are dropped).

    Attributes:
        path: The video file.
        fps: Frames per second as the container reports it (``0.0`` when it reports none).
        width: Frame width in pixels.
        height: Frame height in pixels.
        frame_count: Number of frames (``len(reader)``).

    Shapes:
        ``reader[i]``: ``(height, width, 3)`` uint8 RGB, not writeable (copy it to draw on it).

    Raises:
        FileNotFoundError: The file does not exist.
        InputError: The file is not a video OpenCV can decode (corrupt, truncated, empty).
    """

    def __init__(self, path: str | Path, cache_size: int = 32):
        import cv2

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"Expected 'video' to be an existing file, but {self.path} does not exist."
            )
        self._cv2 = cv2
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

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(frames, height, width, 3)``."""
        return (self.frame_count, self.height, self.width, 3)

    def __len__(self) -> int:
        return self.frame_count

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
        if jump < 0 or jump > GRAB_AHEAD:
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
        self._next = i + 1
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False
        return rgb

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
