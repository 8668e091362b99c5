"""A dataset row -> its pixels, in one place (image files and video frames alike).

Every consumer that needs the picture behind an annotation (the trainer's grip crops and visual
features, later the viewer and the image evidence of stick checks) reads it here::

    from toolkit.media import iter_pixels, row_pixels

    for pos, rgb in iter_pixels(ds, rows):      # each image / video frame decoded once
        ...                                      # pos: positions into ``rows`` showing ``rgb``
    rgb = row_pixels(ds, 12)                     # one annotation row

Images are read with OpenCV and returned RGB; video frames come from
:class:`toolkit.io.video.VideoReader` in frame order (sequential decoding, no seek per frame).
A row is a video frame when its image has both a ``video_id`` and a ``frame_index``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["iter_pixels", "read_image", "row_pixels"]


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


def _sources(ds, rows: np.ndarray):
    table = ds.frame_table().iloc[rows]
    vid = table["video_id"].to_numpy(dtype=float, na_value=np.nan)
    fidx = table["frame_index"].to_numpy(dtype=float, na_value=np.nan)
    is_video = np.isfinite(vid) & np.isfinite(fidx)
    names = table["file_name"].to_numpy(dtype=object)
    return vid, fidx, is_video, names


def iter_pixels(
    ds, rows: np.ndarray | None = None, *, progress: bool = False, hint: str = ""
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield the pixels of annotation ``rows``, each image or video frame decoded once.

    Args:
        ds: A :class:`toolkit.dataset.Dataset`.
        rows: Annotation rows (default all).
        progress: A tqdm bar on stderr.
        hint: Appended to a missing-file error (e.g. "the visual stream needs the pixels").

    Yields:
        ``(positions, rgb)``: the positions into ``rows`` whose annotation lies on this picture,
        and the picture ``(H, W, 3)`` uint8 RGB (read-only for video frames).

    Raises:
        FileNotFoundError: An image or video file is missing or unreadable.
    """
    from tqdm.auto import tqdm

    from toolkit.io.video import VideoReader

    rows = np.arange(len(ds)) if rows is None else np.asarray(rows, np.int64)
    vid, fidx, is_video, names = _sources(ds, rows)
    bar = tqdm(total=len(rows), desc="pixels", unit="row", disable=not progress, leave=False)
    img_pos = np.flatnonzero(~is_video)
    order = img_pos[np.argsort(names[img_pos], kind="stable")]
    start = 0
    try:
        while start < len(order):
            name = names[order[start]]
            stop = start
            while stop < len(order) and names[order[stop]] == name:
                stop += 1
            yield order[start:stop], read_image(ds.image_path(name), hint)
            bar.update(stop - start)
            start = stop
        for v in np.unique(vid[is_video]).astype(int):
            pos = np.flatnonzero(is_video & (vid == v))
            pos = pos[np.argsort(fidx[pos], kind="stable")]
            path = Path(ds.video_path(v))
            if not path.exists():
                raise FileNotFoundError(
                    f"Expected the video {path} to exist{', ' + hint if hint else ''}."
                )
            frames = fidx[pos].astype(int)
            with VideoReader(path) as reader:
                for f in np.unique(frames):
                    yield pos[frames == f], reader[int(f)]
            bar.update(len(pos))
    finally:
        bar.close()


def row_pixels(ds, row: int, hint: str = "") -> np.ndarray:
    """The ``(H, W, 3)`` uint8 RGB picture of one annotation row."""
    for _, rgb in iter_pixels(ds, np.array([int(row)]), hint=hint):
        return np.array(rgb)
    raise IndexError(f"Expected an annotation row in 0..{len(ds) - 1}, but got {row}.")
