"""The frames of a dataset as one lazy ``(T, H, W, 3)`` array napari can slice.

napari needs an array-like (``shape``, ``dtype``, ``ndim``, ``__getitem__``) to draw a frame
slider; :class:`FrameSource` is one that decodes a frame only when napari asks for it. Video
frames come from :class:`toolkit.io.video.VideoReader` (decoded on demand, small LRU cache),
image files from OpenCV with a small LRU cache of their own. Nothing ever holds the whole video.

Frame ``t`` is row ``t`` of ``ds.images`` (the dataset's order). Frames of different sizes are
padded at the right and bottom to the largest one, so pixel coordinates never move.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

#: Most frames one ``__getitem__`` may decode (napari asks for one; this guards accidents).
MAX_FRAMES_PER_READ = 64


class FrameSource:
    """Lazy, read-only ``(T, H, W, 3)`` uint8 RGB array over a dataset's images and videos.

    Args:
        ds: The dataset (frame ``t`` = ``ds.images`` row ``t``).
        cache_size: Decoded frames kept per video reader and for image files.

    Attributes:
        shape: ``(T, H, W, 3)``.
        dtype: ``uint8``.
        ndim: 4.

    Shapes:
        ``source[t]``: ``(H, W, 3)``; ``source[a:b]``: ``(b - a, H, W, 3)``.
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, ds, cache_size: int = 32):
        self._ds = ds
        self._cache_size = max(1, int(cache_size))
        images = ds.images
        self._files = images["file_name"].to_numpy(dtype=object)
        self._video = images["video_id"].to_numpy(dtype=np.float64, na_value=np.nan)
        self._findex = images["frame_index"].to_numpy(dtype=np.float64, na_value=np.nan)
        widths = images["width"].to_numpy(dtype=np.float64, na_value=np.nan)
        heights = images["height"].to_numpy(dtype=np.float64, na_value=np.nan)
        vids = {v["id"]: v for v in ds.videos}
        for t in np.flatnonzero(~np.isfinite(widths) & np.isfinite(self._video)):
            v = vids.get(int(self._video[t]), {})
            widths[t], heights[t] = v.get("width", np.nan), v.get("height", np.nan)
        w = int(np.nanmax(widths)) if np.isfinite(widths).any() else 0
        h = int(np.nanmax(heights)) if np.isfinite(heights).any() else 0
        if (w == 0 or h == 0) and len(images):
            h, w = self._decode(0).shape[:2]
        self.shape = (len(images), max(h, 1), max(w, 1), 3)
        self._readers: dict[int, object] = {}
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._warned: set = set()

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"FrameSource(frames={self.shape[0]}, size={self.shape[2]}x{self.shape[1]})"

    # ------------------------------------------------------------------ napari's access
    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if key and key[0] is Ellipsis:
            key = (slice(None),) + (Ellipsis,) + key[1:]
        first, rest = (key[0], key[1:]) if key else (slice(None), ())
        if isinstance(first, int | np.integer):
            return self.frame(int(first))[rest] if rest else self.frame(int(first))
        if isinstance(first, slice):
            idx = range(*first.indices(self.shape[0]))
        else:
            idx = np.arange(self.shape[0])[np.asarray(first)].tolist()
        if len(idx) > MAX_FRAMES_PER_READ:
            raise ValueError(
                f"Expected at most {MAX_FRAMES_PER_READ} frames per read, but "
                f"{len(idx)} were asked for (the video is decoded on demand)."
            )
        stack = (
            np.stack([self.frame(i) for i in idx])
            if len(idx)
            else np.zeros((0, *self.shape[1:]), np.uint8)
        )
        return stack[(slice(None), *rest)]

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` padded to ``(H, W, 3)`` (grey where the file cannot be read)."""
        if t < 0:
            t += self.shape[0]
        if not 0 <= t < self.shape[0]:
            raise IndexError(f"Expected a frame in 0..{self.shape[0] - 1}, but got {t}.")
        img = self._decode(t)
        h, w = self.shape[1:3]
        if img.shape[:2] == (h, w):
            return img
        out = np.zeros((h, w, 3), np.uint8)
        hh, ww = min(h, img.shape[0]), min(w, img.shape[1])
        out[:hh, :ww] = img[:hh, :ww]
        return out

    # ------------------------------------------------------------------ decoding
    def _decode(self, t: int) -> np.ndarray:
        try:
            if np.isfinite(self._video[t]):
                return self._reader(int(self._video[t]))[int(self._findex[t])]
            return self._image(t)
        except (OSError, ValueError, IndexError, KeyError) as exc:
            self._warn_once(t, exc)
            h, w = self.shape[1:3] if hasattr(self, "shape") else (64, 64)
            return np.full((h, w, 3), 64, np.uint8)

    def _reader(self, video_id: int):
        reader = self._readers.get(video_id)
        if reader is None:
            from toolkit.io.video import VideoReader

            reader = VideoReader(self._ds.video_path(video_id), cache_size=self._cache_size)
            self._readers[video_id] = reader
        return reader

    def _image(self, t: int) -> np.ndarray:
        with self._lock:
            hit = self._cache.get(t)
            if hit is not None:
                self._cache.move_to_end(t)
                return hit
        import cv2

        path = self._ds.image_path(str(self._files[t]))
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"{path}: not found or not an image OpenCV can read.")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False
        with self._lock:
            self._cache[t] = rgb
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return rgb

    def _warn_once(self, t: int, exc: Exception) -> None:
        key = self._video[t] if np.isfinite(self._video[t]) else Path(str(self._files[t]))
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"Frame {t}: cannot read its pixels ({exc}); showing grey.", stacklevel=3)

    def close(self) -> None:
        """Release the video decoders."""
        for r in self._readers.values():
            r.close()
        self._readers.clear()
        self._cache.clear()
