"""Where a record points: the one home of "record -> frame / annotation row" (and back).

The suite's files name frames in several ways: a finding of ``validation.json``, a review-queue
item or a trainer's out-of-fold row carries an ``image_id``, a ``file_name``, a ``video`` (id,
file name or stem) with a ``frame_index``, or an ``ann_id``. :class:`Locator` maps each of them
onto the dataset's rows; :func:`frame_fields` goes the other way (rows -> the fields a record
names them by)::

    from toolkit.locate import Locator, frame_fields

    loc = Locator.build(ds)
    t = loc.frame_of({"video": "clip.mp4", "frame_index": 40})   # image row (viewer frame)
    r = loc.ann_row_of({"image_id": 7})                           # its first annotation row
    rows = loc.ann_rows(df["ann_id"].to_numpy())                  # vectorised, -1 = unknown
    fields = frame_fields(ds, rows)                               # rows -> file_name, video ...

A *frame* is a row of ``ds.images`` (an image file or a video frame); an *annotation row* is a
row of ``ds.annotations`` (and of ``ds.keypoints``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Locator", "frame_fields"]


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _is_na(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


@dataclass
class Locator:
    """Lookups from the ways records name a frame onto a dataset's rows.

    Attributes:
        by_image_id: image id -> frame (row of ``ds.images``).
        by_file_name: image ``file_name`` -> frame.
        by_video_frame: ``(video key, frame_index)`` -> frame, where the video key is the
            video's id, its ``file_name``, its name or its stem (all are accepted).
        ann_frame: ``(N,)`` frame of each annotation row (-1 when its image is missing).
        ann_ids: ``(N,)`` annotation ids.
        first_ann: ``(n_frames,)`` first annotation row of each frame (-1: none).
    """

    by_image_id: dict[int, int]
    by_file_name: dict[str, int]
    by_video_frame: dict[tuple[Any, int], int]
    ann_frame: np.ndarray
    ann_ids: np.ndarray
    first_ann: np.ndarray
    _ann_index: pd.Index = field(repr=False, default_factory=lambda: pd.Index([]))

    @classmethod
    def build(cls, ds: Any) -> Locator:
        """The lookups of ``ds`` (a :class:`toolkit.dataset.Dataset`), built once."""
        images = ds.images
        ids = images["id"].to_numpy(dtype=np.int64)
        frames = range(len(ids))
        by_id = dict(zip(reversed(ids.tolist()), reversed(frames), strict=True))
        by_name = dict(zip(reversed(images["file_name"].tolist()), reversed(frames), strict=True))
        ann_ids = ds.annotations["id"].to_numpy(dtype=np.int64)
        img_ids = ds.annotations["image_id"].to_numpy(dtype=np.int64)
        ann_frame = pd.Index(ids).get_indexer(img_ids).astype(np.int64)
        first_ann = np.full(len(ids), -1, np.int64)
        has = ann_frame >= 0
        # Reversed assignment: the first annotation row of each frame is written last and wins.
        first_ann[ann_frame[has][::-1]] = np.flatnonzero(has)[::-1]
        return cls(
            by_id,
            by_name,
            _video_frames(ds),
            ann_frame,
            ann_ids,
            first_ann,
            pd.Index(ann_ids),
        )

    def frame_of(self, rec: Any) -> int | None:
        """The frame a record names, or None when it names none of the dataset's frames.

        Tried in order: ``image_id``, ``file_name``, ``video`` + ``frame_index``, ``ann_id``.
        """
        if not isinstance(rec, dict):
            return None
        iid = rec.get("image_id")
        if _is_int(iid) and int(iid) in self.by_image_id:
            return self.by_image_id[int(iid)]
        fn = rec.get("file_name")
        if isinstance(fn, str) and fn in self.by_file_name:
            return self.by_file_name[fn]
        t = self.video_frame(rec.get("video"), rec.get("frame_index"))
        if t is not None:
            return t
        row = self.ann_row(rec.get("ann_id"))
        if row is None or self.ann_frame[row] < 0:
            return None
        return int(self.ann_frame[row])

    def video_frame(self, video: Any, frame_index: Any) -> int | None:
        """The frame of ``video`` (id, file name, name or stem) at ``frame_index``, or None."""
        if video is None or not isinstance(frame_index, int | float | np.integer):
            return None
        if not np.isfinite(frame_index):
            return None
        t = self.by_video_frame.get((video, int(frame_index)))
        if t is None and isinstance(video, str):
            t = self.by_video_frame.get((PurePosixPath(video).stem, int(frame_index)))
        return t

    def ann_row(self, ann_id: Any) -> int | None:
        """The annotation row of ``ann_id`` (None for an unknown id or a non-integer)."""
        if not _is_int(ann_id):
            return None
        pos = self._ann_index.get_indexer([int(ann_id)])[0]
        return None if pos < 0 else int(pos)

    def ann_rows(self, ann_ids: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`ann_row`: ``(M,)`` ids -> ``(M,)`` rows, -1 where unknown."""
        return self._ann_index.get_indexer(np.asarray(ann_ids)).astype(np.int64)

    def ann_row_of(self, rec: Any) -> int | None:
        """The annotation row a record names.

        Its ``ann_id`` when it has one (None when that id is unknown), else the first
        annotation of the frame it names (:meth:`frame_of`), else None.
        """
        if not isinstance(rec, dict):
            return None
        if rec.get("ann_id") is not None:
            return self.ann_row(rec["ann_id"])
        t = self.frame_of(rec)
        if t is None or self.first_ann[t] < 0:
            return None
        return int(self.first_ann[t])


def _video_frames(ds: Any) -> dict[tuple[Any, int], int]:
    """``(video key, frame_index) -> frame`` for every video frame of ``ds``."""
    images = ds.images
    keys: dict[int, list] = {}
    for v in ds.videos:
        name = PurePosixPath(str(v.get("file_name", v["id"])))
        keys[int(v["id"])] = list(dict.fromkeys([v["id"], str(name), name.name, name.stem]))
    out: dict[tuple[Any, int], int] = {}
    vid = images["video_id"].to_numpy(dtype=object)
    fr = images["frame_index"].to_numpy(dtype=object)
    has = ~(pd.isna(images["video_id"]).to_numpy() | pd.isna(images["frame_index"]).to_numpy())
    for t in np.flatnonzero(has).tolist():
        for key in keys.get(int(vid[t]), [int(vid[t])]):
            out[(key, int(fr[t]))] = t
    return out


def frame_fields(ds: Any, rows: np.ndarray, per: str = "annotation") -> list[dict]:
    """The fields that name each row's frame in the suite's files (the inverse of a lookup).

    Args:
        ds: The dataset.
        rows: Annotation rows (``per="annotation"``) or image rows (``per="image"``).
        per: What ``rows`` index.

    Returns:
        One dict per row: ``file_name``, ``image_id``, ``ann_id`` (None for image rows) and, for
        a video frame, ``video`` (the video's ``file_name``) and ``frame_index`` (else None).

    Raises:
        ValueError: ``per`` is neither ``annotation`` nor ``image``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if per == "annotation":
        table = ds.frame_table()
        ann_ids = table["ann_id"].to_numpy()[rows].tolist()
    elif per == "image":
        table = ds.images.rename(columns={"id": "image_id"})
        ann_ids = [None] * len(rows)
    else:
        raise ValueError(f"Expected 'per' to be 'annotation' or 'image', but got {per!r}.")
    video_name = {v["id"]: v["file_name"] for v in ds.videos}
    fn = table["file_name"].to_numpy(dtype=object)[rows]
    img = table["image_id"].to_numpy()[rows]
    vid = table["video_id"].to_numpy(dtype=object)[rows]
    fidx = table["frame_index"].to_numpy(dtype=object)[rows]
    out = []
    for i in range(len(rows)):
        has_video = not _is_na(vid[i])
        out.append(
            {
                "file_name": fn[i],
                "image_id": int(img[i]),
                "ann_id": None if ann_ids[i] is None else int(ann_ids[i]),
                "video": video_name.get(int(vid[i])) if has_video else None,
                "frame_index": int(fidx[i]) if has_video and not _is_na(fidx[i]) else None,
            }
        )
    return out
