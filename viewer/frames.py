"""The frames of a dataset as one lazy ``(T, H, W, 4)`` array napari can slice.

napari needs an array-like (``shape``, ``dtype``, ``ndim``, ``__getitem__``) to draw a frame
slider; :class:`FrameSource` is one that decodes a frame only when napari asks for it, with a
background thread that decodes ahead so a frame step rarely waits for the decoder:

* **A bounded cache.** Decoded frames live in one LRU cache bounded in bytes
  (:data:`DEFAULT_CACHE_MB`), never in the video's length: a 10-minute 1080p clip holds as much
  memory as a 10-second one.
* **Decode ahead in the direction of travel.** Each request tells the thread where the viewer is
  and which way it moves; once it steps the same way twice, the thread fills the next frames
  that way, more with every step, up to :data:`AHEAD` (nothing after a jump). Forward it reads
  on (one cheap sequential decode per frame); backward it decodes chunks of :data:`BACK_CHUNK`
  frames in file order (a seek to a keyframe before the chunk, then forward), each starting
  below the frames already decoded, nearest chunk first, because a video can only be decoded
  forward from a keyframe.
* **Likely jumps.** The viewer names the frames it expects a jump to (the next and previous
  flagged frames, :meth:`FrameSource.expect`); the thread decodes them when it has nothing else
  to do, with a second decoder per video, so the one that scrubs stays where the viewer is.
* **Jumps.** A frame not in the cache is decoded at once (the decoder seeks to a keyframe
  before it and decodes forward; a jump forward shorter than what the reader has measured a
  seek to cost decodes through instead, see :class:`toolkit.media.video.VideoReader`), and the
  thread then fills the frames after it. The viewer announces a jump before napari asks for the
  frame (:meth:`FrameSource.prepare`): the thread decodes it while the viewer updates its other
  layers. A request for the frame the thread is decoding (or about to) waits for it instead of
  decoding it twice.
* **The format napari uploads fastest.** Frames are C-contiguous ``uint8`` RGBA arrays of
  exactly ``(H, W, 4)`` (alpha 255): napari hands them to the GPU texture as they are (no cast,
  no copy), and an RGBA texture uploads faster than an RGB one (measured at 720p under Xvfb's
  software OpenGL: a step 2 ms faster at the median, 3 ms at p95; the decoder converts to RGBA
  directly, 0.2 ms of CPU a 720p frame against 0.1 ms for RGB). The price is a third more bytes
  a frame in the cache (``channels=3`` gives RGB). napari asks for
  ``source[t:t + 1]`` on every step: that is a view of the cached frame, not a copy.

Video frames come from :class:`toolkit.media.video.VideoReader` (one single-threaded decoder per
video, shared by the caller and the thread), image files from :func:`toolkit.media.read_image`.
Frame ``t`` is row ``t`` of ``ds.images`` (the dataset's order). Frames of different sizes are padded at the
right and bottom to the largest one, so pixel coordinates never move.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections import OrderedDict
from pathlib import Path

import numpy as np

#: Most frames one ``__getitem__`` may decode (napari asks for one; this guards accidents).
MAX_FRAMES_PER_READ = 64
#: Default bound of the decoded-frame cache in MiB: about 70 RGBA frames of 720p, 32 of 1080p
#: (as many as 192 MiB held of RGB frames: fewer cached frames meant more decoding backward).
DEFAULT_CACHE_MB = 256.0
#: Frames decoded ahead of the viewer in the direction of travel (fewer when the cache is small).
AHEAD = 24
#: The decode-ahead window grows by this many frames per step taken the same way.
JUMP_AHEAD = 4
#: Backward decoding happens in chunks of this many frames (each: one seek, then forward).
BACK_CHUNK = 16
#: How long a request waits for a frame the background thread is decoding right now (seconds).
INFLIGHT_WAIT_S = 0.25
#: Most frames :meth:`FrameSource.expect` keeps waiting for the idle thread.
EXPECT_MAX = 4
#: Threads per video decoder. One: with OpenCV's default (one per core) every seek waits for
#: the decoder's frame threads to refill, and they compete with napari's painting for the cores
#: (measured at 720p on 2 cores: a seek 10 ms instead of 22, a frame in order 0.9 instead of 1.3).
DECODER_THREADS = 1


class _Unreadable(Exception):
    """The background thread could not decode a frame (the caller will say so)."""


class FrameCache:
    """A thread-safe LRU cache of frames, bounded in bytes.

    Args:
        max_bytes: The bound; the least recently used frames are dropped beyond it (the newest
            frame is always kept, even alone over the bound).

    Attributes:
        max_bytes: The bound.
        nbytes: Bytes held now.
    """

    def __init__(self, max_bytes: float):
        self.max_bytes = int(max(1, max_bytes))
        self.nbytes = 0
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, t: int) -> bool:
        return t in self._items

    def get(self, t: int) -> np.ndarray | None:
        """Frame ``t`` (marked most recently used), or None."""
        with self._lock:
            hit = self._items.get(t)
            if hit is not None:
                self._items.move_to_end(t)
            return hit

    def put(self, t: int, frame: np.ndarray) -> None:
        """Store frame ``t`` and drop the least recently used frames beyond the bound."""
        with self._lock:
            old = self._items.pop(t, None)
            if old is not None:
                self.nbytes -= old.nbytes
            self._items[t] = frame
            self.nbytes += frame.nbytes
            while self.nbytes > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self.nbytes -= dropped.nbytes

    def clear(self) -> None:
        """Drop every frame."""
        with self._lock:
            self._items.clear()
            self.nbytes = 0


class FrameSource:
    """Lazy, read-only ``(T, H, W, C)`` uint8 RGBA (or RGB) array over a dataset's images and videos.

    Args:
        ds: The dataset (frame ``t`` = ``ds.images`` row ``t``).
        cache_mb: Bound of the decoded-frame cache in MiB.
        prefetch: Decode ahead in a background thread (off: decode only what is asked for).
        ahead: Frames to decode ahead in the direction of travel.
        channels: 4: RGBA with alpha 255 (what napari uploads fastest); 3: RGB.

    Attributes:
        shape: ``(T, H, W, C)``, ``C`` = ``channels``.
        dtype: ``uint8``.
        ndim: 4.
        cache: The decoded frames (:class:`FrameCache`).
        ahead: Frames decoded ahead (capped at half the cache).
        stats: Counters: ``hits`` (served from the cache), ``decoded`` (decoded on request),
            ``waited`` (waited for the background thread), ``prefetched`` (decoded ahead),
            ``expected`` (decoded for a likely jump).

    Shapes:
        ``source[t]``: ``(H, W, C)``; ``source[a:b]``: ``(b - a, H, W, C)``.
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(
        self,
        ds,
        cache_mb: float = DEFAULT_CACHE_MB,
        prefetch: bool = True,
        ahead: int = AHEAD,
        channels: int = 4,
    ):
        if channels not in (3, 4):
            raise ValueError(f"Expected 3 (RGB) or 4 (RGBA) channels, but got {channels}.")
        self._ds = ds
        self.channels = int(channels)
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
        # One decoder per video, shared by the caller and the thread (each VideoReader locks
        # itself): after a jump the thread reads on from where the caller's seek left the
        # decoder, instead of seeking a second decoder to the same place.
        self._readers: dict[tuple[int, str], object] = {}
        self._readers_lock = threading.Lock()
        self._warned: set = set()
        self._warn_lock = threading.Lock()
        self.cache = FrameCache(cache_mb * 2**20)
        self.stats = {
            "hits": 0,
            "decoded": 0,
            "waited": 0,
            "prefetched": 0,
            "expected": 0,
            "prepared": 0,
        }
        w = int(np.nanmax(widths)) if np.isfinite(widths).any() else 0
        h = int(np.nanmax(heights)) if np.isfinite(heights).any() else 0
        self.shape = (len(images), 1, 1, self.channels)
        if (w == 0 or h == 0) and len(images):
            h, w = self._read(0).shape[:2]
        self.shape = (len(images), max(h, 1), max(w, 1), self.channels)
        frame_bytes = self.shape[1] * self.shape[2] * self.channels
        self.ahead = int(max(0, min(ahead, self.cache.max_bytes // frame_bytes // 2)))
        self._cond = threading.Condition()
        self._hint: tuple[int, int] | None = None  # (frame, direction) for the thread
        self._last = -1
        self._direction = 1
        self._run = 0
        self._inflight = -1
        self._expected: list[int] = []
        self._urgent: int | None = None  # a frame napari is about to ask for (prepare())
        self._closed = False
        self._thread: threading.Thread | None = None
        if prefetch and self.ahead > 0 and len(images) > 1:
            # The thread holds the source only weakly between waits: a viewer closed without
            # close() still frees its frames, and the thread then ends by itself.
            self._thread = threading.Thread(
                target=_prefetch_main,
                args=(weakref.ref(self),),
                name="arnis-frame-prefetch",
                daemon=True,
            )
            self._thread.start()

    @property
    def size(self) -> int:
        """Number of elements, as numpy counts them (napari reads it)."""
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (
            f"FrameSource(frames={self.shape[0]}, size={self.shape[2]}x{self.shape[1]}, "
            f"cache={self.cache.nbytes / 2**20:.0f}/{self.cache.max_bytes / 2**20:.0f} MiB)"
        )

    # ------------------------------------------------------------------ napari's access
    def __getitem__(self, key) -> np.ndarray:
        """Frames as napari asks for them: ``source[t]``, ``source[t:t + 1]``, etc.

        One frame, however asked for, is a view of the cached array (napari asks for
        ``[t:t + 1]`` on every step; a copy of a 1080p frame is 6 MB); several are stacked.
        """
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
        if len(idx) == 1:
            stack = self.frame(idx[0])[None]
        elif len(idx):
            stack = np.stack([self.frame(i) for i in idx])
        else:
            stack = np.zeros((0, *self.shape[1:]), np.uint8)
        return stack[(slice(None), *rest)]

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as a read-only, C-contiguous ``(H, W, C)`` uint8 RGBA (or RGB) array.

        Grey where the file cannot be read.
        """
        if t < 0:
            t += self.shape[0]
        if not 0 <= t < self.shape[0]:
            raise IndexError(f"Expected a frame in 0..{self.shape[0] - 1}, but got {t}.")
        img = self.cache.get(t)
        if img is not None:
            self.stats["hits"] += 1
        else:
            img = self._wait_inflight(t)
        if img is None:
            img = self._read(t)
            self.cache.put(t, img)
            self.stats["decoded"] += 1
        self._tell(t)
        return img

    # ------------------------------------------------------------------ decoding
    def _read(self, t: int, background: bool = False, role: str = "scrub") -> np.ndarray:
        """Decode frame ``t``, padded.

        An unreadable frame is grey (with one warning) for the caller; the background thread
        gets :class:`_Unreadable` instead and leaves it to the caller. ``role`` picks the
        video decoder: ``"scrub"`` (shared with the caller) or ``"jump"`` (likely jumps).
        """
        img = self._decode(t, background, role)
        if img.ndim == 2:  # grey
            img = np.repeat(img[..., None], 3, axis=2)
        if img.shape[2] != self.channels:  # image files come as RGB
            img = img[..., :3]
            if self.channels == 4:
                img = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
        h, w = self.shape[1:3]
        if img.shape[:2] != (h, w) and (h, w) != (1, 1):
            out = np.zeros((h, w, self.channels), np.uint8)
            if self.channels == 4:
                out[..., 3] = 255  # the padding: opaque black
            hh, ww = min(h, img.shape[0]), min(w, img.shape[1])
            out[:hh, :ww] = img[:hh, :ww]
            img = out
        if not img.flags.c_contiguous:
            img = np.ascontiguousarray(img)
        img.flags.writeable = False
        return img

    def _decode(self, t: int, background: bool, role: str = "scrub") -> np.ndarray:
        try:
            if np.isfinite(self._video[t]):
                return self._reader(int(self._video[t]), role)[int(self._findex[t])]
            return self._image(t)
        except (OSError, ValueError, IndexError, KeyError) as exc:
            if background:
                raise _Unreadable(t) from exc
            self._warn_once(t, exc)
            h, w = self.shape[1:3] if self.shape[1] > 1 else (64, 64)
            return np.full((h, w, 3), 64, np.uint8)

    def _reader(self, video_id: int, role: str = "scrub"):
        with self._readers_lock:
            reader = self._readers.get((video_id, role))
            if reader is None:
                from toolkit.media.video import VideoReader

                # The reader's own cache is not needed: ours holds the decoded frames.
                reader = VideoReader(
                    self._ds.video_path(video_id),
                    cache_size=1,
                    threads=DECODER_THREADS,
                    channels=self.channels,
                )
                self._readers[(video_id, role)] = reader
            return reader

    def _image(self, t: int) -> np.ndarray:
        from toolkit.media import read_image

        return read_image(self._ds.image_path(str(self._files[t])), "to show it in the viewer")

    def _warn_once(self, t: int, exc: Exception) -> None:
        key = self._video[t] if np.isfinite(self._video[t]) else Path(str(self._files[t]))
        with self._warn_lock:
            if key in self._warned:
                return
            self._warned.add(key)
        warnings.warn(f"Frame {t}: cannot read its pixels ({exc}); showing grey.", stacklevel=4)

    # ------------------------------------------------------------------ decoding ahead
    def _tell(self, t: int) -> None:
        """Record the viewer's position and direction, and wake the thread."""
        if self._thread is None:
            return
        step = t - self._last
        if 0 < abs(step) <= self.ahead:
            direction = 1 if step > 0 else -1
            self._run = self._run + 1 if direction == self._direction else 1
            self._direction = direction
        elif step != 0:
            self._direction, self._run = 1, 0  # after a jump: read on, a little
        self._last = t
        # Decoding ahead starts once the viewer steps the same way twice (a scrub), and the
        # window grows while it goes on: after a jump nothing is decoded ahead, so a series of
        # jumps does not pay, on a busy CPU, for frames never shown (measured: on 2 cores a
        # jump took 20-30 ms longer at p95 when 4 frames were decoded after it).
        ahead = min(self.ahead, JUMP_AHEAD * self._run) if self._run >= 2 else 0
        with self._cond:
            self._hint = (t, self._direction, ahead)
            self._cond.notify_all()

    def expect(self, frames) -> None:
        """Name the frames the viewer is likely to jump to next (replacing earlier ones).

        The background thread decodes the ones not cached (at most :data:`EXPECT_MAX`, in the
        order given) when no scrub needs it, with its own decoder per video.
        """
        if self._thread is None:
            return
        n = self.shape[0]
        want = [int(f) for f in frames if 0 <= int(f) < n and int(f) not in self.cache]
        with self._cond:
            self._expected = want[:EXPECT_MAX]
            if self._expected:
                self._cond.notify_all()

    def prepare(self, t: int) -> bool:
        """Have the thread decode frame ``t`` now: the caller will ask for it shortly.

        Meanwhile the caller does other work (the viewer updates its point and line layers),
        so on two cores a jump's decoding and that work overlap; :meth:`frame` then waits for
        the thread instead of decoding ``t`` a second time.

        Returns:
            Whether the thread was asked (False: cached, being decoded, or no thread).
        """
        if not self._thread_alive() or not 0 <= t < self.shape[0] or t in self.cache:
            return False
        with self._cond:
            if self._inflight == t:
                return False
            self._urgent = int(t)
            self._cond.notify_all()
        return True

    def _thread_alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _serve_urgent(self) -> bool:
        """On the thread: decode the frame :meth:`prepare` asked for, if any."""
        with self._cond:
            f, self._urgent = self._urgent, None
            if f is None:
                return False
            if f in self.cache:
                return True
            self._inflight = f
        try:  # the scrub's decoder: the caller would have used it, and reads on from here
            self.cache.put(f, self._read(f, background=True, role="scrub"))
            self.stats["prepared"] += 1
        except _Unreadable:
            pass  # the caller decodes it, shows it grey and warns
        finally:
            with self._cond:
                self._inflight = -1
                self._cond.notify_all()
        return True

    def _wait_inflight(self, t: int) -> np.ndarray | None:
        """Frame ``t`` if the thread is decoding it or about to (waiting for it), else None."""
        if not self._thread_alive():
            return None
        with self._cond:
            if self._inflight != t and self._urgent != t:
                return None
            self._cond.wait_for(
                lambda: self._inflight != t and self._urgent != t, timeout=INFLIGHT_WAIT_S
            )
        img = self.cache.get(t)
        if img is not None:
            self.stats["waited"] += 1
        return img

    def _plan(self, t: int, direction: int, ahead: int) -> list[list[int]]:
        """Chunks of frames to decode, nearest first; each chunk in file order.

        Forward: the frames ``t + 1 .. t + ahead`` not cached (read on, no seek). Backward: the
        frames ``t - ahead .. t - 1`` not cached, in whole chunks of :data:`BACK_CHUNK` frames
        that start below the lowest cached frame (a chunk may reach further back than
        ``ahead``): each chunk costs one seek, so one step back must not plan a chunk of one
        frame (measured: a seek per step back added 9 ms of CPU per step at 720p).
        Frames of another video than ``t``'s are skipped when the plan is decoded.
        """
        n = self.shape[0]
        if direction > 0:
            frames = [f for f in range(t + 1, min(t + 1 + ahead, n)) if f not in self.cache]
            return [frames] if frames else []
        chunks = []
        size = max(1, min(BACK_CHUNK, self.ahead))
        hi = t - 1
        floor = max(t - ahead, 0)
        while hi >= floor:
            if hi in self.cache:
                hi -= 1
                continue
            lo = max(hi - size + 1, 0)
            chunks.append(list(range(lo, hi + 1)))
            hi = lo - 1
        return chunks

    def _next_hint(self, timeout: float) -> tuple[int, int, int] | None:
        """Wait up to ``timeout`` s for a request to decode ahead of.

        Returns:
            The request, or None when there was none (or the source is closed).
        """
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    self._hint is not None
                    or self._expected
                    or self._urgent is not None
                    or self._closed
                ),
                timeout=timeout,
            )
            if self._closed or self._hint is None or self._urgent is not None:
                return None
            hint, self._hint = self._hint, None
            return hint

    def _fill(self, t: int, direction: int, ahead: int) -> None:
        """Decode the plan for ``(t, direction, ahead)``; re-plan when the viewer moved away."""
        if ahead <= 0:
            return
        same_video = self._video[t]
        for chunk in self._plan(t, direction, ahead):
            for f in chunk:
                if self._closed or self._urgent is not None:
                    return
                hint = self._hint
                if hint is not None and (
                    hint[1] != direction or abs(hint[0] - t) > max(self.ahead // 2, 1)
                ):
                    return  # moved on: the loop re-plans from the new position
                if not np.array_equal(self._video[f], same_video, equal_nan=True):
                    continue  # another video's frame: not on this scrub's decoder
                if f in self.cache:  # the reader decodes through it without converting it
                    continue
                if self._decode_ahead(f, "scrub"):
                    self.stats["prefetched"] += 1

    def _fill_expected(self) -> None:
        """Decode the frames :meth:`expect` named, until a scrub asks for the thread."""
        while not self._closed:
            with self._cond:
                if self._hint is not None or self._urgent is not None or not self._expected:
                    return
                f = self._expected.pop(0)
            if f not in self.cache and self._decode_ahead(f, "jump"):
                self.stats["expected"] += 1

    def _decode_ahead(self, f: int, role: str) -> bool:
        """Decode frame ``f`` into the cache on the thread; False when it cannot be read."""
        with self._cond:
            self._inflight = f
        try:
            self.cache.put(f, self._read(f, background=True, role=role))
            return True
        except _Unreadable:
            return False  # the caller shows it grey and warns
        finally:
            with self._cond:
                self._inflight = -1
                self._cond.notify_all()

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Stop the background thread and release the video decoders."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._thread = None
        with self._readers_lock:
            for r in self._readers.values():
                r.close()
            self._readers.clear()
        self.cache.clear()


def _prefetch_main(ref: weakref.ref) -> None:
    """The decode-ahead thread: waits for requests, fills the frames ahead of them."""
    while True:
        src = ref()
        if src is None or src._closed:
            return
        if not src._serve_urgent():
            hint = src._next_hint(timeout=1.0)
            if hint is not None:
                src._fill(*hint)
            elif src._urgent is None:
                src._fill_expected()
        del src
