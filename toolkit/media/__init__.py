"""A dataset row -> its pixels, in one place (image files and video frames alike).

Every consumer that needs the picture behind an image row or an annotation (the trainer's grip
crops and visual features, the viewer, the detector re-running on a dataset, the YOLO exporter,
the image evidence of stick checks) reads it here::

    from toolkit.media import FrameReader, frame_pixels, iter_frame_pixels, iter_pixels

    rgb = frame_pixels(ds, {"video": "clip.mp4", "frame_index": 40})   # one frame, any record
    with FrameReader(ds) as frames:                 # random access, video decoders kept open
        rgb = frames[t]                             # t: a row of ds.images
    for pos, rgb in iter_frame_pixels(ds, image_rows):  # each picture decoded once, in order
        ...
    for pos, rgb in iter_pixels(ds, ann_rows):      # the same, for annotation rows
        ...

Images are read with OpenCV and returned RGB ``(H, W, 3)`` uint8; video frames come from
:class:`toolkit.media.video.VideoReader`, in frame order when iterating (sequential decoding, no
seek per frame). A row is a video frame when its image has both a ``video_id`` and a
``frame_index``. :data:`IMAGE_SUFFIXES` is the suite's one list of image file suffixes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.locate import Locator
from toolkit.media.video import VideoReader

__all__ = [
    "IMAGE_SUFFIXES",
    "FrameReader",
    "frame_pixels",
    "is_image_file",
    "iter_frame_pixels",
    "iter_pixels",
    "read_image",
    "row_pixels",
]

#: Image file suffixes (lower case, with the dot): the ones ultralytics reads. The one list.
IMAGE_SUFFIXES = frozenset(
    {
        ".avif",
        ".bmp",
        ".dng",
        ".heic",
        ".heif",
        ".jp2",
        ".jpeg",
        ".jpg",
        ".mpo",
        ".png",
        ".tif",
        ".tiff",
        ".webp",
    }
)


def is_image_file(name: str | Path) -> bool:
    """Whether ``name`` has an image suffix (:data:`IMAGE_SUFFIXES`, any case)."""
    return Path(str(name)).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path, hint: str = "") -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB.

    Args:
        path: The image file.
        hint: Appended to the error message (what the caller needs the pixels for).

    Raises:
        FileNotFoundError: The file is missing or OpenCV cannot decode it.
    """
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(
            f"Expected the image {path} to exist and be readable{', ' + hint if hint else ''}."
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _video_file(ds: Any, video_id: int, hint: str) -> Path:
    path = Path(ds.video_path(int(video_id)))
    if not path.exists():
        raise FileNotFoundError(f"Expected the video {path} to exist{', ' + hint if hint else ''}.")
    return path


class _Frames:
    """Per image row: video id and frame index (NaN for an image file) and the file name."""

    def __init__(self, ds: Any):
        images = ds.images
        self.video = images["video_id"].to_numpy(dtype=float, na_value=np.nan)
        self.index = images["frame_index"].to_numpy(dtype=float, na_value=np.nan)
        self.is_video = np.isfinite(self.video) & np.isfinite(self.index)
        self.names = images["file_name"].to_numpy(dtype=object)


class FrameReader:
    """Random access to the pixels of a dataset's image rows (image files and video frames).

    One :class:`toolkit.media.video.VideoReader` per video stays open until :meth:`close`, so
    stepping through a video decodes sequentially instead of reopening it per frame.

    Args:
        ds: A :class:`toolkit.dataset.Dataset`.
        cache_size: Decoded frames each video reader keeps (1: the caller caches).
        hint: Appended to a missing-file error (what the caller needs the pixels for).

    Shapes:
        ``reader[t]``: ``(H, W, 3)`` uint8 RGB (read-only for video frames).

    Raises:
        FileNotFoundError: (on access) An image or video file is missing or unreadable.
    """

    def __init__(self, ds: Any, cache_size: int = 1, hint: str = ""):
        self.ds = ds
        self.cache_size = cache_size
        self.hint = hint
        self._frames = _Frames(ds)
        self._readers: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self._frames.names)

    def __repr__(self) -> str:
        return f"FrameReader({len(self)} frames, {len(self._readers)} videos open)"

    def is_video(self, t: int) -> bool:
        """Whether image row ``t`` is a video frame."""
        return bool(self._frames.is_video[t])

    def __getitem__(self, t: int) -> np.ndarray:
        f = self._frames
        t = int(t)
        if not 0 <= t < len(self):
            raise IndexError(f"Expected an image row in 0..{len(self) - 1}, but got {t}.")
        if not f.is_video[t]:
            return read_image(self.ds.image_path(f.names[t]), self.hint)
        return self.video_reader(int(f.video[t]))[int(f.index[t])]

    def video_reader(self, video_id: int) -> Any:
        """The open reader of one video (opened on first use)."""
        reader = self._readers.get(video_id)
        if reader is None:
            path = _video_file(self.ds, video_id, self.hint)
            reader = self._readers[video_id] = VideoReader(path, cache_size=self.cache_size)
        return reader

    def close(self) -> None:
        """Close every open video reader."""
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def frame_pixels(ds: Any, frame: int | dict, hint: str = "") -> np.ndarray:
    """The ``(H, W, 3)`` uint8 RGB picture of one frame.

    Args:
        ds: A :class:`toolkit.dataset.Dataset`.
        frame: An image row, or a record naming a frame (``image_id``, ``file_name``,
            ``video`` + ``frame_index`` or ``ann_id``: see :meth:`toolkit.locate.Locator.frame_of`).
        hint: Appended to a missing-file error.

    Raises:
        LookupError: The record names no frame of the dataset.
        FileNotFoundError: The image or video file is missing or unreadable.
    """
    t = frame
    if isinstance(frame, dict):
        t = Locator.build(ds).frame_of(frame)
        if t is None:
            raise LookupError(
                f"Expected a record naming a frame of the dataset, but got {frame!r}."
            )
    with FrameReader(ds, hint=hint) as reader:
        return np.array(reader[int(t)])


def iter_frame_pixels(
    ds: Any,
    rows: np.ndarray | None = None,
    *,
    progress: bool = False,
    hint: str = "",
    skip_missing: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield the pixels of image ``rows``, each image file or video frame decoded once.

    Image files come first (in the order ``rows`` first names them), then each video's frames
    in frame order (videos by id).

    Args:
        ds: A :class:`toolkit.dataset.Dataset`.
        rows: Rows of ``ds.images`` (default all; repeats allowed).
        progress: A tqdm bar on stderr.
        hint: Appended to a missing-file error.
        skip_missing: Leave out pictures whose file is missing, unsafe or unreadable (e.g.
            evidence that is only used where the pixels exist) instead of raising.

    Yields:
        ``(positions, rgb)``: the positions into ``rows`` showing this picture, and the picture
        ``(H, W, 3)`` uint8 RGB (read-only for video frames).

    Raises:
        FileNotFoundError: An image or video file is missing or unreadable (unless
            ``skip_missing``).
    """
    from tqdm.auto import tqdm

    f = _Frames(ds)
    rows = np.arange(len(f.names)) if rows is None else np.asarray(rows, np.int64)
    bar = tqdm(total=len(rows), desc="pixels", unit="row", disable=not progress, leave=False)
    try:
        for pos, rgb in _image_groups(ds, f, rows, hint, skip_missing):
            yield pos, rgb
            bar.update(len(pos))
        for pos, rgb in _video_groups(ds, f, rows, hint, skip_missing):
            yield pos, rgb
            bar.update(len(pos))
    finally:
        bar.close()


#: What a missing, unsafe or undecodable picture raises (skipped with ``skip_missing``).
_UNREADABLE = (FileNotFoundError, ValueError, IndexError)


def _image_groups(
    ds: Any, f: _Frames, rows: np.ndarray, hint: str, skip_missing: bool
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(positions, rgb)`` per image file, in the order ``rows`` first names them."""
    img_pos = np.flatnonzero(~f.is_video[rows])
    if not len(img_pos):
        return
    names = f.names[rows[img_pos]].astype(str)
    _, first, inverse = np.unique(names, return_index=True, return_inverse=True)
    for g in np.argsort(first, kind="stable"):
        pos = img_pos[inverse == g]
        try:
            rgb = read_image(ds.image_path(names[first[g]]), hint)
        except _UNREADABLE:  # InputError (an unsafe name) is a ValueError
            if not skip_missing:
                raise
            continue
        yield pos, rgb


def _video_groups(
    ds: Any, f: _Frames, rows: np.ndarray, hint: str, skip_missing: bool
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(positions, rgb)`` per video frame: videos by id, frames in order (one decoder)."""
    is_video = f.is_video[rows]
    vid, fidx = f.video[rows], f.index[rows]
    for v in np.unique(vid[is_video]).astype(int):
        pos = np.flatnonzero(is_video & (vid == v))
        pos = pos[np.argsort(fidx[pos], kind="stable")]
        frames = fidx[pos].astype(int)
        try:
            reader = VideoReader(_video_file(ds, v, hint))
        except _UNREADABLE:
            if not skip_missing:
                raise
            continue
        with reader:
            for fi in np.unique(frames):
                try:
                    rgb = reader[int(fi)]
                except _UNREADABLE:
                    if not skip_missing:
                        raise
                    continue
                yield pos[frames == fi], rgb


def iter_pixels(
    ds: Any,
    rows: np.ndarray | None = None,
    *,
    progress: bool = False,
    hint: str = "",
    skip_missing: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield the pixels of annotation ``rows``, each image or video frame decoded once.

    Args:
        ds: A :class:`toolkit.dataset.Dataset`.
        rows: Annotation rows (default all).
        progress: A tqdm bar on stderr.
        hint: Appended to a missing-file error (e.g. "the visual stream needs the pixels").
        skip_missing: Leave out pictures that cannot be read (see :func:`iter_frame_pixels`).

    Yields:
        ``(positions, rgb)``: the positions into ``rows`` whose annotation lies on this picture,
        and the picture ``(H, W, 3)`` uint8 RGB (read-only for video frames).

    Raises:
        FileNotFoundError: An image or video file is missing or unreadable (unless
            ``skip_missing``).
    """
    rows = np.arange(len(ds)) if rows is None else np.asarray(rows, np.int64)
    frames = Locator.build(ds).ann_frame[rows]
    if (frames < 0).any():
        bad = int(rows[np.argmax(frames < 0)])
        raise LookupError(f"Expected annotation row {bad} to belong to an image of the dataset.")
    yield from iter_frame_pixels(
        ds, frames, progress=progress, hint=hint, skip_missing=skip_missing
    )


def row_pixels(ds: Any, row: int, hint: str = "") -> np.ndarray:
    """The ``(H, W, 3)`` uint8 RGB picture of one annotation row."""
    if not 0 <= int(row) < len(ds):
        raise IndexError(f"Expected an annotation row in 0..{len(ds) - 1}, but got {row}.")
    _, rgb = next(iter_pixels(ds, np.array([int(row)]), hint=hint))
    return np.array(rgb)
