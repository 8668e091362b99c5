"""The dataset: COCO keypoints JSON on disk, arrays and a pandas table in memory.

On disk a dataset is a directory::

    DATASET/
      dataset.json     COCO keypoints JSON (pycocotools loads it) + our documented extensions
      journal.jsonl    edits appended (and fsynced) before they are acknowledged; folded on save
      .journal.lock    the advisory lock every append and save takes

Nothing acknowledged is lost (see :meth:`Dataset.save` and ``docs/DEVNOTES.md``):

* every journal line checks itself (``{"c": crc32, "n": length, "e": edit}``); a torn last line
  is skipped with a warning and cut off before the next append; journals written before lines
  had checksums still load;
* a save compares ``dataset.json`` with the version this object loaded (compare-and-swap under
  the lock) and, when another program saved or journalled meanwhile, merges instead of
  overwriting: their file and every journalled edit, then this object's unjournalled changes;
* ``dataset.json`` records its ``revision`` and which journal edits it holds, so a crash between
  the save and the journal reset never applies an edit twice;
* ``media_root`` must stay inside the allowed roots (:func:`media_root_problem`) and image and
  video names inside ``media_root``; :meth:`Dataset.require_media` and ``toolkit relink`` handle
  datasets that moved away from their media.

In memory (:class:`Dataset`):

* ``images``: a pandas table, one row per image or video frame (``id``, ``file_name``,
  ``width``, ``height``, ``stance``, ``subject``, ``video_id``, ``frame_index``).
* ``annotations``: a pandas table, one row per person (``id``, ``image_id``, ``category_id``,
  ``score``, ``track_id``); row ``i`` belongs to ``keypoints[i]``.
* ``keypoints`` / ``keypoints_raw``: ``(N, 19, 3)`` float64 arrays of ``x, y, v`` in pixels. ``v``
  is the COCO visibility flag (0 missing, 1 labelled but occluded, 2 visible). **A missing point
  has ``x = y = NaN`` in memory** (COCO writes ``0, 0, 0``; the conversion happens only in
  :func:`_kpts_to_disk` / :func:`_kpts_from_disk`), so geometry never mistakes it for the origin.
* ``scores``: ``(N, 19)`` float32 keypoint confidences in 0..1, NaN where the source had none.
* ``source``: ``(N, 19)`` uint8 provenance codes (:data:`toolkit.layout.SOURCES`).
* ``bboxes``: ``(N, 4)`` float64 ``x, y, w, h``.

Image ``file_name`` and video ``file_name`` are relative to ``media_root`` (a top-level field:
absolute, or relative to the dataset directory) and may not escape it. A video frame's
``file_name`` is virtual, ``<video stem>/<frame_index:06d>.jpg``: it is the name the frame gets
when exported to YOLO; the pixels come from the video.

The on-disk encoding is compact so that 100k annotations load and save in well under 2 s
(``schemas/dataset.schema.json`` documents every field):

* numbers are written exactly (shortest round-trip form; whole numbers as integers), so an
  imported COCO file round-trips bit for bit; points that are not ``imported`` are rounded to
  3 decimals (1/1000 px) when written;
* ``keypoint_source`` is a 19-letter string, one letter per keypoint (``i`` imported,
  ``c`` corrected, ``h`` human, ``p`` predicted); the list-of-names form is also read;
* ``keypoints_raw`` is omitted when it equals ``keypoints`` (nothing changed since import);
* ``keypoint_scores`` is omitted when no score is known, ``null`` for an unknown one.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import gc
import math
import os
import re
import time
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import orjson
import pandas as pd

from toolkit import layout
from toolkit.errors import InputError, MediaError, SaveConflictError, UnknownIdError
from toolkit.fileio import (
    atomic_write_bytes,
    name_length_problem,
    remove_stale,
    safe_relpath,
    staged_name,
)
from toolkit.schema import Columns, annotation_arrays, validate_dataset

FORMAT_VERSION = 1
DATASET_FILE = "dataset.json"
JOURNAL_FILE = "journal.jsonl"
LOCK_FILE = ".journal.lock"
#: Largest keypoint coordinate accepted (pixels): anything beyond is a broken file, not a photo.
COORD_LIMIT = 1e6

IMAGE_COLUMNS = (
    "id",
    "file_name",
    "width",
    "height",
    "stance",
    "subject",
    "video_id",
    "frame_index",
)
ANNOTATION_COLUMNS = ("id", "image_id", "category_id", "score", "track_id")
#: Edits per ``set_images`` journal record (:meth:`Dataset.set_image_fields`): one checked line
#: each, well under the 64 KiB tail that the torn-line check reads.
BATCH_EDITS = 256
# Keys we model explicitly; anything else on an image/annotation is kept in ``extra`` and
# written back unchanged (so a COCO file round-trips exactly: ``segmentation``, ``coco_url`` …).
# ``area`` and ``iscrowd`` are hidden annotation columns (NaN/NA: derive from the bbox / 0).
_IMAGE_KEYS = set(IMAGE_COLUMNS)
# Top-level keys of dataset.json that are modelled (everything else is kept in ``meta``).
_DOCUMENT_KEYS = frozenset(
    (
        "images",
        "annotations",
        "categories",
        "videos",
        "media_root",
        "taxonomy",
        "version",
        "revision",
        "journal",
    )
)
_MODELLED_TOP = _DOCUMENT_KEYS
# What a save merges (see Dataset._merge) and what adopting a merged result copies.
_STATE_FIELDS = (
    "images",
    "annotations",
    "keypoints",
    "keypoints_raw",
    "scores",
    "source",
    "bboxes",
    "videos",
    "media_root",
    "taxonomy",
    "meta",
    "skeleton",
    "categories",
)
_ANN_KEYS = {
    "id",
    "image_id",
    "category_id",
    "score",
    "track_id",
    "keypoints",
    "keypoints_raw",
    "keypoint_source",
    "keypoint_scores",
    "bbox",
    "num_keypoints",
    "predictions",
    "area",
    "iscrowd",
}


def _kpts_from_disk(flat: np.ndarray) -> np.ndarray:
    """``(N, K*3)`` COCO values -> ``(N, K, 3)`` with NaN coordinates where ``v == 0``."""
    flat = np.asarray(flat, dtype=np.float64)
    k = flat.reshape(len(flat), flat.shape[-1] // 3 if flat.ndim == 2 else -1, 3).copy()
    missing = k[..., 2] <= 0
    k[missing, 0:2] = np.nan
    k[missing, 2] = 0
    return k


def _kpts_to_disk(k: np.ndarray) -> np.ndarray:
    """``(N, K, 3)`` in memory -> ``(N, K*3)`` COCO values (missing points as ``0, 0, 0``)."""
    out = np.array(k, dtype=np.float64, copy=True)
    missing = (out[..., 2] <= 0) | ~np.isfinite(out[..., 0]) | ~np.isfinite(out[..., 1])
    out[missing] = 0.0
    return out.reshape(len(out), out.shape[1] * 3)


def json_rows(a: np.ndarray) -> list[orjson.Fragment]:
    """Each row of a 2-D float array as a pre-encoded JSON list (``orjson.Fragment``).

    Whole numbers are written as integers (``142`` not ``142.0``), other values in their
    shortest round-trip form (of float32 for a float32 array), NaN as ``null``. One vectorised ``orjson`` call encodes the whole
    array; this is what makes saving 100k annotations fast.
    """
    a = np.ascontiguousarray(a, dtype=np.float32 if a.dtype == np.float32 else np.float64)
    if not len(a):
        return []
    b = orjson.dumps(a, option=orjson.OPT_SERIALIZE_NUMPY)
    # orjson writes integral floats as "142.0"; only a number can end in ".0" before , or ].
    b = b.replace(b".0,", b",").replace(b".0]", b"]")
    return [orjson.Fragment(b"[" + r + b"]") for r in b[2:-2].split(b"],[")]


def _numbers(a: np.ndarray) -> list:
    """A 1-D float array as Python numbers, whole values as ``int`` (see :func:`json_rows`)."""
    return orjson.loads(
        orjson.dumps(np.ascontiguousarray(a, np.float64), option=orjson.OPT_SERIALIZE_NUMPY)
        .replace(b".0,", b",")
        .replace(b".0]", b"]")
    )


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while millions of small lists are built (it would rescan them all)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass
class Dataset:
    """A keypoint dataset: arrays for points, tables for everything else.

    Attributes:
        images: One row per image or video frame (see :data:`IMAGE_COLUMNS`), plus ``extra``
            (dict of fields we do not model, written back unchanged).
        annotations: One row per person; row ``i`` describes ``keypoints[i]``. Columns
            :data:`ANNOTATION_COLUMNS` plus ``extra`` and ``predictions`` (dict or None).
        keypoints: ``(N, 19, 3)`` current points (x, y, visibility; NaN x/y when missing).
        keypoints_raw: ``(N, 19, 3)`` points as imported; never overwritten.
        scores: ``(N, 19)`` keypoint confidences (NaN when unknown).
        source: ``(N, 19)`` provenance codes, indices into :data:`toolkit.layout.SOURCES`.
        bboxes: ``(N, 4)`` person boxes ``x, y, w, h`` in pixels (NaN when unknown).
        videos: The top-level ``videos`` list (``id``, ``file_name``, ``fps``, ``frame_count``,
            ``width``, ``height``).
        media_root: Where image and video ``file_name``s are resolved (absolute, or relative to
            the dataset directory).
        taxonomy: Optional ``{"stances": [{"name", "family", "chamber"}, ...]}``.
        meta: Other top-level fields (``info``, ``licenses``, ``import`` report …), kept as is.
        categories: The COCO ``categories`` (their ``keypoints``/``skeleton`` are always the
            19-point layout on disk; a source's own 17-point names/skeleton are kept in
            ``source_keypoints``/``source_skeleton`` when they differ from COCO's). None means
            one ``person`` category with id 1.
        path: The dataset directory this was loaded from or saved to.
        revision: How many times ``dataset.json`` was saved (increases by one per save).
    """

    images: pd.DataFrame
    annotations: pd.DataFrame
    keypoints: np.ndarray
    keypoints_raw: np.ndarray
    scores: np.ndarray
    source: np.ndarray
    bboxes: np.ndarray
    videos: list[dict] = field(default_factory=list)
    media_root: str = "."
    taxonomy: dict | None = None
    meta: dict = field(default_factory=dict)
    skeleton: layout.Skeleton = layout.ARNIS
    categories: list[dict] | None = None
    path: Path | None = None
    revision: int = 0
    _stamp: tuple[int, ...] | None = field(default=None, repr=False)
    # Save bookkeeping (see ``save``): the state as loaded/last saved, this object's journalled
    # edits since then, the journal (id, entries seen) and dataset.json's fold marker.
    _base: Dataset | None = field(default=None, repr=False)
    _ops: list[dict] = field(default_factory=list, repr=False)
    _jid: str | None = field(default=None, repr=False)
    _jpos: int = field(default=0, repr=False)
    _marker: dict | None = field(default=None, repr=False)
    _writer: str = field(default_factory=lambda: os.urandom(6).hex(), repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_records(
        cls,
        images: list[dict],
        annotations: list[dict],
        keypoints: np.ndarray,
        *,
        scores: np.ndarray | None = None,
        source: np.ndarray | int = layout.IMPORTED,
        bboxes: np.ndarray | None = None,
        videos: list[dict] | None = None,
        media_root: str | Path = ".",
        taxonomy: dict | None = None,
        meta: dict | None = None,
        categories: list[dict] | None = None,
        keypoints_raw: np.ndarray | None = None,
    ) -> Dataset:
        """Build a dataset from plain records and a keypoint array (what importers do).

        Args:
            images: Dicts with at least ``id``, ``file_name``, ``width``, ``height``; other
                keys are kept in ``extra``.
            annotations: Dicts with at least ``id``, ``image_id``; one per row of ``keypoints``;
                other keys (``area``, ``iscrowd``, ``segmentation`` …) are kept in ``extra``.
            keypoints: ``(N, 19, 3)`` with NaN x/y for missing points (or ``v == 0``).
            scores: ``(N, 19)`` confidences, default NaN.
            source: ``(N, 19)`` codes, or one code for all points.
            bboxes: ``(N, 4)``; derived from the visible points when omitted (rounded to 0.01).
            videos: The top-level ``videos`` list (see the class attributes).
            media_root: Where image and video ``file_name``s are resolved.
            taxonomy: The stance taxonomy, or None.
            meta: Other top-level fields, kept as is.
            categories: COCO categories (see the class attributes); default one ``person``.
            keypoints_raw: ``(N, 19, 3)`` as imported, when it differs from ``keypoints``.
        """
        kp = _clean_kpts(keypoints)
        n = len(kp)
        if len(annotations) != n:
            raise ValueError(
                f"Expected one annotation per keypoint row ({n}), but got {len(annotations)}."
            )
        raw = kp.copy() if keypoints_raw is None else _clean_kpts(keypoints_raw)
        src = np.broadcast_to(np.asarray(source, dtype=np.uint8), (n, layout.NUM_KEYPOINTS)).copy()
        sc = (
            np.full((n, layout.NUM_KEYPOINTS), np.nan, np.float32)
            if scores is None
            else np.asarray(scores, np.float32).reshape(n, layout.NUM_KEYPOINTS).copy()
        )
        bb = (
            np.round(boxes_from_keypoints(kp), 2)
            if bboxes is None
            else np.asarray(bboxes, np.float64).copy()
        )
        return cls(
            images=_images_table(images),
            annotations=_annotations_table(annotations),
            keypoints=kp,
            keypoints_raw=raw,
            scores=sc,
            source=src,
            bboxes=bb.reshape(n, 4),
            videos=list(videos or []),
            media_root=str(media_root),
            taxonomy=taxonomy,
            meta=dict(meta or {}),
            categories=copy.deepcopy(categories) if categories else None,
        )

    # ------------------------------------------------------------------ basic views
    def __len__(self) -> int:
        return len(self.keypoints)

    def __repr__(self) -> str:
        where = f", path='{self.path}'" if self.path else ""
        return (
            f"Dataset(n_images={len(self.images)}, n_annotations={len(self)}, "
            f"n_videos={len(self.videos)}{where})"
        )

    @property
    def stances(self) -> list[str]:
        """Stance names: the taxonomy's order when there is one, else sorted labels."""
        if self.taxonomy and self.taxonomy.get("stances"):
            return [s["name"] for s in self.taxonomy["stances"]]
        return sorted(self.images["stance"].dropna().unique().tolist())

    def frame_table(self) -> pd.DataFrame:
        """One row per annotation joined with its image's fields (row ``i`` ↔ ``keypoints[i]``)."""
        img = self.images.drop(columns=["extra"]).rename(columns={"id": "image_id"})
        ann = self.annotations[list(ANNOTATION_COLUMNS)].rename(columns={"id": "ann_id"})
        out = ann.merge(img, on="image_id", how="left", sort=False)
        out.index = self.annotations.index
        return out

    def ann_row(self, ann_id: int) -> int:
        """Row index of an annotation id."""
        rows = np.flatnonzero(self.annotations["id"].to_numpy() == ann_id)
        if not len(rows):
            raise UnknownIdError(f"No annotation with id {ann_id}.")
        return int(rows[0])

    def image_row(self, image_id: int) -> int:
        """Row index of an image id."""
        rows = np.flatnonzero(self.images["id"].to_numpy() == image_id)
        if not len(rows):
            raise UnknownIdError(f"No image with id {image_id}.")
        return int(rows[0])

    def media_path(self) -> Path:
        """The resolved media root."""
        root = Path(self.media_root)
        if not root.is_absolute() and self.path is not None:
            root = self.path / root
        return root

    def image_path(self, file_name: str) -> Path:
        """Absolute path of an image ``file_name`` (checked not to escape the media root)."""
        return self.media_path() / safe_relpath(file_name)

    def video_path(self, video_id: int) -> Path:
        """Absolute path of a video by id."""
        for v in self.videos:
            if v["id"] == video_id:
                return self.media_path() / safe_relpath(v["file_name"], "videos[].file_name")
        raise UnknownIdError(f"No video with id {video_id}.")

    def check_media_root(self, *, allow_outside: bool = False) -> None:
        """Refuse a media root outside the dataset's allowed roots (see :func:`media_root_problem`).

        Args:
            allow_outside: The explicit opt-out (also ``TOOLKIT_ALLOW_ANY_MEDIA_ROOT=1``).

        Raises:
            MediaError: Naming ``dataset.json`` and the resolved folder (exit 2 in the CLI).
        """
        if allow_outside or os.environ.get(ALLOW_ANY_MEDIA_ENV) == "1":
            return
        problem = media_root_problem(self.media_root, self.path)
        if problem is not None:
            where = self.path / DATASET_FILE if self.path is not None else None
            raise MediaError(
                f"Expected 'media_root' to be a media folder, but {self.media_root!r} {problem}. "
                f"Point it at the folder that holds the images with `toolkit relink "
                f"{self.path or 'DATASET'} --media DIR` (or set {ALLOW_ANY_MEDIA_ENV}=1 to "
                "allow any folder).",
                where,
            )

    def missing_media(self, limit: int | None = None) -> list[Path]:
        """Media files (still images and videos) that do not exist under the media root.

        Video frames are checked through their video. A file whose real path (after symlinks)
        leaves the media root counts as missing unless ``TOOLKIT_ALLOW_ANY_MEDIA_ROOT=1``.

        Args:
            limit: Stop after this many (None: all).
        """
        root = self.media_path()
        allow = os.environ.get(ALLOW_ANY_MEDIA_ENV) == "1"
        real_root = os.path.realpath(root)
        out: list[Path] = []
        names = [
            safe_relpath(v["file_name"], "videos[].file_name")
            for v in self.videos
            if isinstance(v, dict) and "file_name" in v
        ]
        still = self.images["video_id"].isna().to_numpy() if len(self.images) else []
        names += [safe_relpath(n) for n in self.images["file_name"].to_numpy()[still]]
        for name in names:
            p = root / name
            if not p.is_file():
                out.append(p)
            elif not allow:
                real = os.path.realpath(p)
                if os.path.commonpath([real, real_root]) != real_root:
                    out.append(p)  # a symlink out of the media root: never followed
            if limit is not None and len(out) >= limit:
                break
        return out

    def require_media(self, command: str = "this command") -> None:
        """Fail clearly when the media a command needs is not where the dataset says.

        Call it at the start of commands that read pixels (export to YOLO, correct with image
        evidence, detect, the viewer). It checks the media root is allowed and every still image
        and video exists (a moved or copied dataset loses its media).

        Raises:
            MediaError: Naming the missing files, the media root and the relink command.
        """
        self.check_media_root()
        root = self.media_path()
        missing = self.missing_media(limit=None)
        if not missing:
            return
        where = self.path / DATASET_FILE if self.path is not None else None
        total = len(self.videos) + int(self.images["video_id"].isna().sum())
        what = "the media folder does not exist" if not root.is_dir() else "files are missing"
        shown = ", ".join(str(p) for p in missing[:3])
        raise MediaError(
            f"Expected the dataset's media under {root}, but {what}: {len(missing)} of {total} "
            f"(e.g. {shown}). {command[:1].upper() + command[1:]} needs them. If the dataset or "
            f"its media moved, run `toolkit relink {self.path or 'DATASET'} --media DIR` with "
            "the folder that holds them.",
            where,
        )

    def media_candidates(self) -> list[Path]:
        """Folders next to the dataset where a moved dataset's media may be (for relink)."""
        if self.path is None:
            return []
        here = Path(os.path.abspath(self.path))
        old = PurePosixPath(str(self.media_root).replace("\\", "/")).name
        names = [n for n in (old, "images", "media") if n and n not in (".", "..")]
        out: list[Path] = []
        for base in (here, here.parent):
            for cand in [base / n for n in names] + [base]:
                if cand not in out and cand.is_dir():
                    out.append(cand)
        return out

    def relink(
        self,
        media: str | Path | None = None,
        *,
        allow_outside: bool = False,
        dry_run: bool = False,
    ) -> Path:
        """Point ``media_root`` at the folder that holds the media now, and save.

        Every still image and video must exist under the new folder (else nothing changes).
        The new root is stored relative to the dataset (like an import does) and written with
        :meth:`save`, so journalled edits are kept and concurrent saves are merged.

        Args:
            media: The folder; None searches next to the dataset (:meth:`media_candidates`).
            allow_outside: Accept a folder outside the allowed roots (see
                :func:`media_root_problem`).
            dry_run: Check only; do not save.

        Returns:
            The resolved media folder.

        Raises:
            MediaError: Files missing under ``media`` (the message names some), no candidate
                holds them all, or the folder is outside the allowed roots.
        """
        if self.path is None:
            raise ValueError("Expected a dataset loaded from a directory, but it has no path.")
        candidates = [Path(media)] if media is not None else self.media_candidates()
        if media is not None and not Path(media).is_dir():
            raise MediaError(f"Expected '--media' to be a folder, but {media} is not one.")
        old_root = self.media_root
        here = Path(os.path.abspath(self.path))
        best: tuple[int, Path, list[Path]] | None = None
        for cand in candidates:
            real = Path(os.path.realpath(cand))
            try:
                rel = os.path.relpath(real, os.path.realpath(here))
            except ValueError:  # another drive (Windows)
                rel = str(real)
            self.media_root = rel
            try:
                if not allow_outside:
                    self.check_media_root()
                missing = self.missing_media()
            except InputError:
                self.media_root = old_root
                if media is not None:
                    raise
                continue
            if not missing:
                if not dry_run:
                    self.save()
                else:
                    self.media_root = old_root
                return real
            if best is None or len(missing) < best[0]:
                best = (len(missing), real, missing)
            self.media_root = old_root
        self.media_root = old_root
        total = len(self.videos) + int(self.images["video_id"].isna().sum())
        if best is None:
            looked = ", ".join(str(c) for c in candidates) or "(no folder next to the dataset)"
            raise MediaError(
                f"Expected the media next to the dataset, but none of these folders holds it: "
                f"{looked}. Name the folder: toolkit relink {self.path} --media DIR",
                self.path / DATASET_FILE,
            )
        n, where, missing = best
        shown = ", ".join(
            os.path.relpath(os.path.abspath(p), os.path.abspath(where)) for p in missing[:3]
        )
        raise MediaError(
            f"Expected every media file under {where}, but {n} of {total} are missing "
            f"(e.g. {shown}); media_root was not changed.",
            self.path / DATASET_FILE,
        )

    def coco_categories(self) -> list[dict]:
        """The categories as written to ``dataset.json`` (19-point names and skeleton)."""
        base = self.skeleton.coco_category()
        if not self.categories:
            return [base]
        return [
            {**c, "keypoints": base["keypoints"], "skeleton": base["skeleton"]}
            for c in self.categories
        ]

    # ------------------------------------------------------------------ edits (journalled)
    def set_points(
        self,
        ann_id: int,
        kp_index: list[int] | np.ndarray,
        xyv: np.ndarray,
        source: str = "human",
        journal: bool = True,
    ) -> None:
        """Set some keypoints of one annotation; journalled first when the dataset has a path.

        Args:
            ann_id: Annotation id.
            kp_index: Keypoint indices (e.g. ``[17, 18]`` for grip and tip).
            xyv: ``(len(kp_index), 3)``; a NaN x/y or ``v == 0`` marks the point missing.
            source: Provenance name for the new points.
            journal: False for a bulk (machine) edit: it reaches disk with :meth:`save`, which
                merges it with what other programs saved meanwhile.
        """
        idx = np.atleast_1d(np.asarray(kp_index, dtype=int))
        vals = np.asarray(xyv, dtype=np.float64).reshape(len(idx), 3)
        if source not in layout.SOURCE_CODE:
            raise ValueError(
                f"Expected 'source' to be one of {layout.SOURCES}, but got {source!r}."
            )
        op = {
            "op": "set_points",
            "ann": int(ann_id),
            "idx": idx.tolist(),
            "xyv": [[None if not np.isfinite(v) else float(v) for v in r] for r in vals],
            "source": source,
        }
        if (problem := _op_problem(op)) is not None:
            raise ValueError(problem)
        self.ann_row(op["ann"])  # unknown id: KeyError before anything is journalled
        if journal:
            self._journal(op)
        self._apply(op)

    def set_image_field(self, image_id: int, name: str, value: Any, journal: bool = True) -> None:
        """Set ``stance``, ``subject`` or a review field of one image; journalled first.

        Args:
            image_id: Image id.
            name: ``stance``, ``subject`` or a ``review*`` field.
            value: The new value (a string or None for ``stance``/``subject``).
            journal: False for a bulk edit that reaches disk with :meth:`save`.
        """
        if (problem := _image_edit_problem(image_id, name, value, strict=False)) is not None:
            raise ValueError(problem)
        op = {"op": "set_image", "image": int(image_id), "field": name, "value": value}
        self.image_row(op["image"])
        if journal:
            self._journal(op)
        self._apply(op)

    def set_image_fields(self, edits: Iterable[tuple[int, str, Any]], journal: bool = True) -> int:
        """Set many image fields at once (e.g. ``toolkit label``), journalled first.

        All edits are checked before anything is written; then they are appended to the journal
        as ``set_images`` records of at most :data:`BATCH_EDITS` edits each (every record is
        one checked line: a crash keeps it whole or drops it whole) with ONE fsync for all of
        them, and only then applied. When this returns, every edit is acknowledged, exactly as
        if :meth:`set_image_field` had been called for each (later edits of a cell win).

        Args:
            edits: ``(image_id, name, value)`` triples, as :meth:`set_image_field` takes them.
            journal: False for a bulk edit that reaches disk with :meth:`save`.

        Returns:
            The number of edits.

        Raises:
            ValueError: A field name or value :meth:`set_image_field` would refuse.
            UnknownIdError: An image id the dataset does not have (nothing is written).
        """
        items = []
        for image_id, name, value in edits:
            if (problem := _image_edit_problem(image_id, name, value, strict=False)) is not None:
                raise ValueError(problem)
            items.append([int(image_id), name, value])
        if not items:
            return 0
        rows = _first_rows(self.images["id"].to_numpy())
        unknown = next((i for i, _, _ in items if i not in rows), None)
        if unknown is not None:
            raise UnknownIdError(f"No image with id {unknown}.")
        ops = [
            {"op": "set_images", "edits": items[at : at + BATCH_EDITS]}
            for at in range(0, len(items), BATCH_EDITS)
        ]
        if journal:
            self._journal(*ops)
        for op in ops:
            self._apply(op)
        return len(items)

    def _apply(self, op: dict) -> None:
        """Apply one journal edit (an unknown id: ``UnknownIdError``, nothing changed)."""
        kind = op["op"]
        if kind == "set_points":
            self._apply_points(op)
        elif kind == "set_image":
            row = self.image_row(op["image"])
            self._set_image_cells({(op["field"], row): op["value"]})
        elif kind == "set_images":
            self._apply_images(op["edits"])
        else:
            raise ValueError(
                f"Expected a journal 'op' of set_points/set_image/set_images, got {kind!r}."
            )

    def _apply_points(self, op: dict) -> None:
        row = self.ann_row(op["ann"])
        idx = np.asarray(op["idx"], dtype=int)
        vals = np.array([[np.nan if v is None else v for v in r] for r in op["xyv"]], float)
        missing = (vals[:, 2] <= 0) | ~np.isfinite(vals[:, :2]).all(1)
        vals[missing, :2] = np.nan
        vals[missing, 2] = 0
        self.keypoints[row, idx] = vals
        self.source[row, idx] = layout.SOURCE_CODE[op["source"]]

    def _apply_images(self, edits: list) -> int:
        """Apply a ``set_images`` record's edits in order.

        Returns:
            How many edits named an id this dataset lacks (skipped).
        """
        rows = _first_rows(self.images["id"].to_numpy())
        cells: dict[tuple[str, int], Any] = {}
        unknown = 0
        for image_id, name, value in edits:
            row = rows.get(image_id)
            if row is None:
                unknown += 1
                continue
            cells.pop((name, row), None)  # keep the order of last writes
            cells[(name, row)] = value
        self._set_image_cells(cells)
        return unknown

    def _set_image_cells(self, cells: dict[tuple[str, int], Any]) -> None:
        """Write ``(field, image row) -> value`` cells.

        ``stance``/``subject`` go to their columns; review fields to a new ``extra`` dict per
        row (never mutated in place: the save merge compares cells).
        """
        index = self.images.index
        by_field: dict[str, tuple[list[int], list[Any]]] = {}
        extras: dict[int, dict] = {}
        for (name, row), value in cells.items():
            if name in ("stance", "subject"):
                rows, values = by_field.setdefault(name, ([], []))
                rows.append(row)
                values.append(value)
            else:
                if row not in extras:
                    extras[row] = dict(self.images.at[index[row], "extra"] or {})
                extras[row][name] = value
        for name, (rows, values) in by_field.items():
            col = self.images.columns.get_loc(name)
            self.images.iloc[rows, col] = pd.Series(values, index=index[rows], dtype=object)
        for row, extra in extras.items():
            self.images.at[index[row], "extra"] = extra

    def _apply_all(self, ops: list[dict], jpath: Path | None = None) -> int:
        """Apply journalled ops in order; edits naming an id this dataset lacks are skipped.

        A warning names how many were skipped.

        Returns:
            How many edits were applied (a ``set_images`` record counts each of its edits).
        """
        unknown = applied = 0
        for op in ops:
            if op["op"] == "set_images":
                missed = self._apply_images(op["edits"])
                unknown += missed
                applied += len(op["edits"]) - missed
                continue
            try:
                self._apply(op)
                applied += 1
            except KeyError:
                unknown += 1
        if unknown:
            warnings.warn(
                f"{jpath or JOURNAL_FILE}: {unknown} journalled edits name an annotation or "
                "image this dataset does not have (it was replaced after they were made); "
                "they were skipped.",
                stacklevel=3,
            )
        return applied

    def _journal(self, *ops: dict) -> None:
        """Append edits to ``journal.jsonl`` and fsync once before returning (the acknowledgement).

        The file is opened per append (not kept open): another process's :meth:`save` replaces
        the journal by rename, and a cached handle would keep writing to the unlinked file. Each
        line carries its length and CRC-32; a torn last line (a crash mid-append) is cut off
        before the new lines are written, so it can never swallow the next edit.
        """
        if self.path is None:
            return
        now = time.time()
        entries = [{**op, "w": self._writer, "t": now} for op in ops]
        with _journal_lock(self.path):
            append_journal(self.path / JOURNAL_FILE, entries)
        self._ops.extend(entries)

    # ------------------------------------------------------------------ persistence
    def coco_records(
        self, *, extensions: bool | str = True, num_keypoints: int = layout.NUM_KEYPOINTS
    ) -> tuple[list[dict], list[dict]]:
        """The ``images`` and ``annotations`` records as written to disk.

        Big numeric lists (``keypoints``, ``bbox`` …) are ``orjson.Fragment`` objects (already
        encoded JSON); serialise the records with ``orjson``.

        Args:
            extensions: Include the suite's extensions (``keypoints_raw``, ``keypoint_source``,
                ``keypoint_scores``; ``stance``/``subject`` even when null). Plain COCO without.
                ``"auto"``: ``keypoint_source`` and ``keypoint_scores`` only where they carry
                information (a source other than imported, known scores), so a COCO export of
                an untouched import stays plain COCO and a re-import keeps provenance and scores.
            num_keypoints: 19, or 17 to drop the stick (a plain COCO-17 file).
        """
        k = num_keypoints
        if k not in (layout.NUM_BODY, layout.NUM_KEYPOINTS):
            raise ValueError(f"Expected 'num_keypoints' to be 17 or 19, but got {k!r}.")
        full = extensions is True
        images = _table_records(
            self.images, IMAGE_COLUMNS, keep_null=("stance", "subject") if full else ()
        )
        if not len(self):
            return images, []
        columns = self._annotation_columns(k)
        if extensions:
            columns.update(self._extension_columns(k, full))
        return images, _annotation_records(columns, len(self), bool(extensions))

    def _annotation_columns(self, k: int) -> dict[str, list]:
        """The plain COCO fields of every annotation, column by column (lists of length N)."""
        kp = _kpts_to_disk(self.keypoints[:, :k])
        # Machine- or human-made points are rounded to 1/1000 px; imported ones stay exact.
        made = np.repeat(self.source[:, :k] != layout.IMPORTED, 3, axis=1)
        kp = np.where(made, np.round(kp, 3), kp)
        bb = np.asarray(self.bboxes, np.float64)
        bb_ok = np.isfinite(bb).all(1)
        area = np.where(bb_ok, np.round(bb[:, 2] * bb[:, 3], 2), 0.0)
        has_area = bb_ok.copy()
        ann = self.annotations
        if "area" in ann:  # the source's own area (e.g. of a segmentation) wins
            src_area = ann["area"].to_numpy(np.float64)
            area = np.where(np.isfinite(src_area), src_area, area)
            has_area |= np.isfinite(src_area)
        n = len(self)
        return {
            "keypoints": json_rows(kp),
            "num_keypoints": (kp[:, 2::3] > 0).sum(1).tolist(),
            "bbox": json_rows(np.where(bb_ok[:, None], bb, 0.0)),
            "bbox_ok": bb_ok.tolist(),
            "area": _numbers(area),
            "has_area": has_area.tolist(),
            "iscrowd": _column_values(ann["iscrowd"]) if "iscrowd" in ann else [None] * n,
            "id": ann["id"].to_numpy().tolist(),
            "image_id": ann["image_id"].to_numpy().tolist(),
            "category_id": ann["category_id"].to_numpy().tolist(),
            "score": _column_values(ann["score"]),
            "track_id": _column_values(ann["track_id"]),
            "extra": ann["extra"].to_numpy().tolist(),
            "predictions": ann["predictions"].to_numpy().tolist(),
        }

    def _extension_columns(self, k: int, full: bool) -> dict[str, list]:
        """The suite's extensions per annotation (None where a row does not write one).

        Args:
            k: Keypoints written (17 or 19).
            full: Every extension (``extensions=True``); else only provenance and scores where
                they carry information (``extensions="auto"``).
        """
        n = len(self)
        raw = self.keypoints_raw[:, :k]
        now = self.keypoints[:, :k]
        same = ((raw == now) | (np.isnan(raw) & np.isnan(now))).all((1, 2))
        raw_rows: list = [None] * n
        if full:
            changed = np.flatnonzero(~same).tolist()
            for i, row in zip(changed, json_rows(_kpts_to_disk(raw[~same])), strict=True):
                raw_rows[i] = row
        letters = np.frombuffer(layout.SOURCE_LETTERS.encode(), np.uint8)[self.source[:, :k]]
        flat = letters.tobytes().decode("ascii")
        src_str: list = [flat[i * k : (i + 1) * k] for i in range(n)]
        if not full:
            plain = (self.source[:, :k] == layout.IMPORTED).all(1)
            src_str = [None if p else s for p, s in zip(plain.tolist(), src_str, strict=True)]
        # Scores are float32: written in float32's shortest form, so they come back exactly.
        sc = np.ascontiguousarray(self.scores[:, :k], dtype=np.float32)
        has = np.isfinite(sc).any(1)
        sc_rows: list = [None] * n
        for i, row in zip(np.flatnonzero(has).tolist(), json_rows(sc[has]), strict=True):
            sc_rows[i] = row
        return {"keypoints_raw": raw_rows, "keypoint_source": src_str, "keypoint_scores": sc_rows}

    def _document(self) -> dict:
        images, anns = self.coco_records()
        doc: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "revision": int(self.revision),
            **{k: v for k, v in self.meta.items() if k not in _MODELLED_TOP},
            "media_root": self.media_root,
            "categories": self.coco_categories(),
            "images": images,
            "annotations": anns,
            "videos": self.videos,
        }
        if self._marker is not None:
            doc["journal"] = self._marker
        if self.taxonomy:
            doc["taxonomy"] = self.taxonomy
        return doc

    def to_bytes(self) -> bytes:
        """``dataset.json`` as bytes (what :meth:`save` writes)."""
        with gc_paused():
            return orjson.dumps(self._document(), option=orjson.OPT_SERIALIZE_NUMPY)

    def to_coco(self) -> dict:
        """The full ``dataset.json`` document (COCO keypoints + extensions) as plain Python."""
        return orjson.loads(self.to_bytes())

    def save(self, path: str | Path | None = None, *, force: bool = False) -> Path:
        """Write ``dataset.json`` atomically, folding in every edit other programs made meanwhile.

        Everything happens under the dataset's lock (``.journal.lock``):

        1. compare-and-swap: is ``dataset.json`` still the file this object loaded or last saved
           (inode, size, mtime)? Are there journalled edits by other programs?
        2. if nothing happened elsewhere, write this object as it is; otherwise merge: start from
           what is on disk plus every journalled edit (in acknowledgement order), then apply this
           object's unjournalled changes (bulk edits: ``toolkit correct``, ``trainer score``)
           cell by cell. Where another program changed the same cell, its (acknowledged) value
           is kept and a warning counts the cells;
        3. write atomically, recording the journal's id and how many of its edits are folded
           (so a crash before the journal is reset never applies them twice), then start a new
           journal. This object then holds the merged state.

        Args:
            path: Dataset directory; defaults to where it was loaded from. Another directory is
                written as a copy (replacing any dataset there).
            force: Overwrite what other programs saved (their journalled edits are still
                folded in, after this object's state).

        Raises:
            SaveConflictError: The two versions cannot be merged (one side added or removed
                annotations or images). Journalled edits stay in the journal.
            InputError: The first save of a new dataset would write something
                :meth:`load` refuses (the importers' last line of defence).
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("Expected a 'path' to save to, but the dataset has none.")
        same = self.path is not None and _same_dir(target, self.path)
        target.mkdir(parents=True, exist_ok=True)
        ds_file = target / DATASET_FILE
        jpath = target / JOURNAL_FILE
        if not same:
            data = self._checked_bytes(target, first=not ds_file.exists())
            with _journal_lock(target):
                atomic_write_bytes(ds_file, data)
                new_id = reset_journal(jpath)
                stamp = _stamp(ds_file)
            self._after_save(target, new_id, stamp)
            return target
        with _journal_lock(target):
            remove_stale(target, DATASET_FILE)
            journal = read_journal(jpath)
            changed = not ds_file.exists() or _stamp(ds_file) != self._stamp
            if changed and not force and ds_file.exists():
                fresh = Dataset.load(target, replay=False, allow_outside_media=True)
                new_ops = journal.after(fresh._marker)
                result = self._merge(fresh, new_ops, ds_file)
                revision = max(self.revision, fresh.revision)
            else:
                new_ops = journal.after_position(self._jid, self._jpos)
                foreign = [op for op in new_ops if op.get("w") != self._writer]
                if force:
                    self._apply_all(foreign, jpath)
                    result = self
                elif foreign:
                    theirs = self._base._clone() if self._base is not None else self._clone()
                    result = self._merge(theirs, new_ops, ds_file)
                else:
                    result = self
                revision = self.revision
            result.revision = revision + 1
            result._marker = {"id": journal.id, "folded": len(journal.entries)}
            atomic_write_bytes(ds_file, result.to_bytes())
            new_id = reset_journal(jpath)
            stamp = _stamp(ds_file)
        if result is not self:
            self._adopt(result)
        self._after_save(target, new_id, stamp)
        return target

    def _checked_bytes(self, target: Path, first: bool) -> bytes:
        """The bytes to write; for a new dataset, validated exactly as :meth:`load` would."""
        self.revision += 1
        self._marker = None
        data = self.to_bytes()
        if not first:
            return data

        shown = staged_name(target / DATASET_FILE)
        try:
            validate_dataset(orjson.loads(data), shown, raw=data)
            probe = copy.copy(self)
            probe.path = target
            probe.check_media_root()
        except InputError as exc:
            self.revision -= 1
            raise InputError(
                f"Refusing to write a dataset that would not load: {exc.reason}",
                staged_name(exc.path) if exc.path is not None else shown,
                exc.line,
            ) from None
        return data

    def _after_save(self, target: Path, journal_id: str, stamp: tuple) -> None:
        self.path = target
        self._stamp = stamp
        self._jid = journal_id
        self._jpos = 0
        self._ops = []
        self._base = self._clone()

    def _clone(self) -> Dataset:
        """A copy of the editable state (arrays copied, tables copied, small fields deep)."""
        return Dataset(
            images=self.images.copy(deep=True),
            annotations=self.annotations.copy(deep=True),
            keypoints=self.keypoints.copy(),
            keypoints_raw=self.keypoints_raw.copy(),
            scores=self.scores.copy(),
            source=self.source.copy(),
            bboxes=self.bboxes.copy(),
            videos=copy.deepcopy(self.videos),
            media_root=self.media_root,
            taxonomy=copy.deepcopy(self.taxonomy),
            meta=copy.deepcopy(self.meta),
            skeleton=self.skeleton,
            categories=copy.deepcopy(self.categories),
            revision=self.revision,
        )

    def _adopt(self, other: Dataset) -> None:
        for name in _STATE_FIELDS + ("revision", "_marker"):
            setattr(self, name, getattr(other, name))

    def _merge(self, theirs: Dataset, new_ops: list[dict], ds_file: Path) -> Dataset:
        """Three-way merge: ``theirs`` (disk) + journal, then this object's unjournalled changes.

        ``base`` is the state this object loaded (or last saved); ``shadow`` is ``base`` plus
        this object's own journalled edits, so ``self - shadow`` is exactly what this object
        changed without journalling. Those cells go onto ``theirs`` unless another program
        changed the same cell (then its acknowledged value stays).
        """
        theirs._apply_all(new_ops, ds_file.parent / JOURNAL_FILE)
        base = self._base if self._base is not None else theirs._clone()
        shadow = base._clone()
        shadow._apply_all(self._ops)
        if not _same_rows(self, shadow):
            raise SaveConflictError(
                f"{ds_file.name} changed on disk since it was loaded (another program saved it) "
                "while this program added or removed annotations or images, so the two cannot "
                "be merged. Journalled edits are safe in the journal: reload the dataset and "
                "redo the change.",
                ds_file,
            )
        if not _same_rows(theirs, shadow):
            if _differs(self, shadow):
                raise SaveConflictError(
                    f"{ds_file.name} changed on disk since it was loaded: another program added "
                    "or removed annotations or images, so this program's unjournalled changes "
                    "cannot be placed. Journalled edits are safe in the journal: reload the "
                    "dataset and redo the change.",
                    ds_file,
                )
            return theirs
        conflicts = _merge_into(theirs, self, shadow)
        if conflicts:
            warnings.warn(
                f"{ds_file}: {conflicts} values changed here were also changed by another "
                "program since this one loaded the dataset; the other program's (saved or "
                "journalled) values were kept.",
                stacklevel=3,
            )
        return theirs

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        replay: bool = True,
        validate: bool = True,
        allow_outside_media: bool = False,
    ) -> Dataset:
        """Load a dataset directory (or its ``dataset.json``), validating it and replaying edits.

        Args:
            path: The dataset directory or its ``dataset.json``.
            replay: Apply journalled edits not yet folded into ``dataset.json``.
            validate: Check the document against the schema (skip only for files we just
                wrote).
            allow_outside_media: Accept a ``media_root`` outside the allowed roots (see
                :func:`media_root_problem`); ``TOOLKIT_ALLOW_ANY_MEDIA_ROOT=1`` does the same.

        Raises:
            FileNotFoundError: No ``dataset.json`` there.
            InputError: The document breaks the schema (the message names the field and line),
                or a journal line other than a torn last one is corrupt.
            MediaError: ``media_root`` is outside the allowed roots.
        """
        path = Path(path)
        if path.is_file() and path.name == DATASET_FILE:
            path = path.parent
        ds_file = path / DATASET_FILE
        if not ds_file.exists():
            raise FileNotFoundError(
                f"Expected a dataset directory with '{DATASET_FILE}', but {path} has none "
                "(create one with `toolkit import SRC --out DATASET`)."
            )
        # dataset.json and the journal are read as one consistent pair without taking the lock
        # (read-only datasets load too): a save in between changes the file, so read again.
        for _ in range(5):
            stamp = _stamp(ds_file)
            raw_bytes = ds_file.read_bytes()
            journal = read_journal(path / JOURNAL_FILE, warn=False)
            if _stamp(ds_file) == stamp:
                break
        with gc_paused():
            try:
                doc = orjson.loads(raw_bytes)
            except orjson.JSONDecodeError as exc:
                raise InputError(
                    f"Expected valid JSON, but parsing failed: {exc.msg}",
                    ds_file,
                    getattr(exc, "lineno", None),
                ) from None
            if validate:
                arrays = validate_dataset(doc, ds_file, raw=raw_bytes)
            else:
                arrays = annotation_arrays(doc.get("annotations") or [], ds_file, raw=raw_bytes)
            ds = cls.from_coco(doc, source_file=ds_file, arrays=arrays)
        ds.path = path
        ds._stamp = stamp
        ds.revision = doc.get("revision", 0)
        ds._marker = doc.get("journal")
        if validate:
            ds.check_media_root(allow_outside=allow_outside_media)
        if replay and (journal.torn or journal.salvaged):
            read_journal(path / JOURNAL_FILE)  # the same verdict, now with its warnings
        ds._jid = journal.id
        if replay:
            ds._apply_all(journal.after(ds._marker), path / JOURNAL_FILE)
            ds._jpos = len(journal.entries)
        else:
            ds._jpos = journal.folded_count(ds._marker)
        ds._base = ds._clone()
        return ds

    @classmethod
    def from_coco(
        cls,
        doc: dict,
        source_file: str | Path | None = None,
        arrays: dict[str, np.ndarray] | None = None,
    ) -> Dataset:
        """Build from a parsed ``dataset.json`` document (already validated).

        Args:
            doc: The parsed document.
            source_file: Named in error messages.
            arrays: The numeric columns :func:`toolkit.schema.validate_dataset` returned (saves
                converting them twice).
        """
        anns = doc.get("annotations") or []
        images = doc.get("images") or []
        if arrays is None:
            arrays = annotation_arrays(anns, source_file)
        kp = _kpts_from_disk(arrays["keypoints"])
        raw = kp.copy()
        has_raw = arrays["has_raw"]
        if has_raw.any():
            raw[has_raw] = _kpts_from_disk(arrays["keypoints_raw"])
        meta = {key: v for key, v in doc.items() if key not in _DOCUMENT_KEYS}
        cats = doc.get("categories") or None
        if cats:
            cats = [
                {k: v for k, v in c.items() if k not in ("keypoints", "skeleton")} for c in cats
            ]
        return cls(
            images=_images_table(images, arrays.get("image_columns")),
            annotations=_annotations_table(anns, arrays.get("columns")),
            keypoints=kp,
            keypoints_raw=raw,
            scores=arrays["keypoint_scores"],
            source=arrays["keypoint_source"],
            bboxes=arrays["bbox"],
            videos=list(doc.get("videos") or []),
            media_root=doc.get("media_root", "."),
            taxonomy=doc.get("taxonomy"),
            meta=meta,
            categories=cats,
        )

    def _replay(self) -> int:
        """Apply journalled edits not yet folded (and not yet applied here). Returns the count."""
        if self.path is None:
            return 0
        journal = read_journal(self.path / JOURNAL_FILE)
        ops = journal.after_position(self._jid, self._jpos)
        if self._jid != journal.id:
            ops = journal.after(self._marker)
        count = self._apply_all(ops, self.path / JOURNAL_FILE)
        self._jid, self._jpos = journal.id, len(journal.entries)
        return count

    def pending_edits(self) -> int:
        """Number of journalled edits not yet folded into ``dataset.json``."""
        if self.path is None:
            return 0
        journal = read_journal(self.path / JOURNAL_FILE, warn=False)
        return sum(_edit_count(op) for op in journal.after(self._marker))

    def copy(self) -> Dataset:
        """A deep copy detached from its directory (no journal)."""
        new = copy.deepcopy(
            self.__class__(
                images=self.images,
                annotations=self.annotations,
                keypoints=self.keypoints,
                keypoints_raw=self.keypoints_raw,
                scores=self.scores,
                source=self.source,
                bboxes=self.bboxes,
                videos=self.videos,
                media_root=self.media_root,
                taxonomy=self.taxonomy,
                meta=self.meta,
                skeleton=self.skeleton,
                categories=self.categories,
            )
        )
        return new


# ---------------------------------------------------------------------- the journal
_ENVELOPE = re.compile(rb'^\{"c":"([0-9a-f]{8})","n":(\d+),"e":')
_SALVAGE_STARTS = (b'{"c":"', b'{"op"')
JOURNAL_VERSION = 2


def encode_entry(op: dict) -> bytes:
    """One self-checking journal line: ``{"c": crc32, "n": length, "e": edit}``.

    ``c`` and ``n`` cover the exact bytes of ``e`` as written, so a torn or damaged line is
    detected without trusting the JSON parser. The line is still JSON (``jq`` reads it).
    """
    body = orjson.dumps(op)
    return b'{"c":"%08x","n":%d,"e":' % (zlib.crc32(body), len(body)) + body + b"}\n"


def _decode_line(line: bytes) -> dict | None:
    """The edit on one journal line, or None when the line does not check out."""
    line = line.rstrip(b"\r\t ")
    m = _ENVELOPE.match(line)
    if m:
        n, end = int(m[2]), m.end()
        body = line[end : end + n]
        if len(body) != n or line[end + n :] != b"}" or zlib.crc32(body) != int(m[1], 16):
            return None
        try:
            op = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        return op if isinstance(op, dict) else None
    if line.startswith(b'{"c":'):
        return None  # an envelope that does not check out
    try:  # a journal written before lines carried checksums
        op = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return op if isinstance(op, dict) and "op" in op else None


def _salvage(line: bytes) -> dict | None:
    """A complete edit glued after a torn fragment (old journals appended after a torn line)."""
    starts = sorted(i for tag in _SALVAGE_STARTS for i in _find_all(line, tag) if i > 0)
    for i in starts:
        op = _decode_line(line[i:])
        if op is not None:
            return op
    return None


def _find_all(data: bytes, tag: bytes) -> Iterator[int]:
    i = data.find(tag)
    while i >= 0:
        yield i
        i = data.find(tag, i + 1)


def _op_problem(op: Any) -> str | None:
    """Why ``op`` is not a well-formed edit (None when it is)."""
    if not isinstance(op, dict):
        return "Expected a journal edit to be an object."
    kind = op.get("op")
    if kind == "set_points":
        return _points_op_problem(op)
    if kind == "set_image":
        return _image_edit_problem(op.get("image"), op.get("field"), op.get("value"))
    if kind == "set_images":
        edits = op.get("edits")
        if type(edits) is not list or not edits:
            return "Expected 'edits' to be a list of [image, field, value]."
        for e in edits:
            if type(e) is not list or len(e) != 3:
                return f"Expected each edit to be [image, field, value], but got {e!r}."
            if (problem := _image_edit_problem(*e)) is not None:
                return problem
        return None
    return f"Expected a journal 'op' of set_points/set_image/set_images, but got {kind!r}."


def _points_op_problem(op: dict) -> str | None:
    """Why a ``set_points`` edit is malformed (None when it is fine)."""
    ann, idx, xyv, src = op.get("ann"), op.get("idx"), op.get("xyv"), op.get("source")
    if type(ann) is not int:
        return f"Expected 'ann' to be an annotation id, but got {ann!r}."
    if (
        type(idx) is not list
        or not idx
        or not all(type(i) is int and 0 <= i < layout.NUM_KEYPOINTS for i in idx)
    ):
        return f"Expected 'idx' to be keypoint indices 0..18, but got {idx!r}."
    if (
        type(xyv) is not list
        or len(xyv) != len(idx)
        or not all(
            type(r) is list
            and len(r) == 3
            and all(v is None or (type(v) in (int, float) and math.isfinite(v)) for v in r)
            for r in xyv
        )
    ):
        return "Expected 'xyv' to hold one [x, y, v] (numbers or null) per index."
    for r in xyv:
        x, y, v = r
        if v is not None and v > 0 and v not in (1, 2):
            return f"Expected each visibility to be 0, 1 or 2, but got {v!r}."
        if v and any(c is not None and abs(c) > COORD_LIMIT for c in (x, y)):
            return f"Expected coordinates within +-{COORD_LIMIT:g} px, but got {r!r}."
    if src not in layout.SOURCE_CODE:
        return f"Expected 'source' to be one of {list(layout.SOURCES)}, but got {src!r}."
    return None


def _image_edit_problem(image: Any, name: Any, value: Any, strict: bool = True) -> str | None:
    """Why an image-field edit is malformed (None when it is fine).

    Args:
        image: The image id (``strict``: a JSON int; else any integer, e.g. numpy's).
        name: ``stance``, ``subject`` or a ``review*`` field.
        value: A string or None for ``stance``/``subject``; anything JSON for a review field.
        strict: Check a journal line (the id a JSON int); False: an API call's field and value
            only (its id is converted with ``int``).
    """
    if strict and type(image) is not int:
        return f"Expected 'image' to be an image id, but got {image!r}."
    if not isinstance(name, str) or not (
        name in ("stance", "subject") or name.startswith("review")
    ):
        return f"Expected 'field' to be 'stance', 'subject' or 'review*', but got {name!r}."
    if name in ("stance", "subject") and value is not None and not isinstance(value, str):
        return f"Expected '{name}' to be a string or None, but got {value!r}."
    return None


def _edit_count(op: dict) -> int:
    """How many edits a journal record holds (a ``set_images`` record holds several)."""
    return len(op["edits"]) if op.get("op") == "set_images" else 1


def _first_rows(ids: np.ndarray) -> dict[int, int]:
    """``id -> row`` of its first occurrence (what :meth:`Dataset.image_row` finds)."""
    ids = ids.tolist()
    return dict(zip(reversed(ids), range(len(ids) - 1, -1, -1), strict=True))


@dataclass
class JournalState:
    """What ``journal.jsonl`` holds.

    Attributes:
        id: The journal's id (from its first line; ``""`` for a journal without one).
        entries: The edits, in acknowledgement order.
        torn: Line numbers of a torn tail that was skipped.
        salvaged: Lines whose torn prefix was dropped to keep the complete edit after it.
    """

    id: str = ""
    entries: list[dict] = field(default_factory=list)
    torn: list[int] = field(default_factory=list)
    salvaged: list[int] = field(default_factory=list)

    def folded_count(self, marker: dict | None) -> int:
        """How many leading entries ``dataset.json``'s journal ``marker`` says are folded."""
        if isinstance(marker, dict) and marker.get("id") == self.id:
            folded = marker.get("folded")
            if type(folded) is int and folded > 0:
                return min(folded, len(self.entries))
        return 0

    def after(self, marker: dict | None) -> list[dict]:
        """The entries not folded into a ``dataset.json`` carrying ``marker``."""
        return self.entries[self.folded_count(marker) :]

    def after_position(self, journal_id: str | None, position: int) -> list[dict]:
        """The entries after ``position`` when the journal is still ``journal_id`` (else all)."""
        if journal_id == self.id:
            return self.entries[position:]
        return list(self.entries)


def read_journal(jpath: Path, *, warn: bool = True) -> JournalState:
    """Parse ``journal.jsonl``: checked edits, a torn tail skipped (with a warning).

    Raises:
        InputError: A corrupt line followed by valid edits (not a torn tail), or a checked line
            that is not a well-formed edit; the message names the line.
    """
    state = JournalState()
    try:
        data = jpath.read_bytes()
    except FileNotFoundError:
        return state
    bad: list[int] = []
    first = True
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        op = _decode_line(line)
        if op is None and (op := _salvage(line)) is not None:
            state.salvaged.append(lineno)
        if op is None:
            bad.append(lineno)
            continue
        if bad:
            raise InputError(
                f"Expected a journal edit on every line, but line {bad[0]} is corrupt and edits "
                "follow it (this is not a torn last line). Move journal.jsonl aside to load "
                "the dataset without its unsaved edits.",
                jpath,
                bad[0],
            )
        if op.get("op") == "begin":
            if first:
                state.id = str(op.get("id", ""))
            first = False
            continue
        first = False
        problem = _op_problem(op)
        if problem is not None:
            raise InputError(problem, jpath, lineno)
        state.entries.append(op)
    state.torn = bad
    if warn and bad:
        warnings.warn(
            f"{jpath}:{bad[0]}: the last journal line is torn (a crash or a full disk while it "
            "was written, so it was never acknowledged); it was skipped.",
            stacklevel=3,
        )
    if warn and state.salvaged:
        warnings.warn(
            f"{jpath}:{state.salvaged[0]}: a torn fragment before an edit was skipped "
            f"({len(state.salvaged)} lines); the edits after it were kept.",
            stacklevel=3,
        )
    return state


def _new_journal_id() -> str:
    return os.urandom(8).hex()


def reset_journal(jpath: Path) -> str:
    """Replace the journal by an empty one with a new id (atomically). Returns the id."""
    jid = _new_journal_id()
    atomic_write_bytes(jpath, encode_entry({"op": "begin", "id": jid, "v": JOURNAL_VERSION}))
    return jid


def _tail_cut(fh: Any, size: int) -> int | None:
    """Offset to cut a torn or damaged last line at (None: the tail is sound)."""
    start = max(0, size - (1 << 16))
    fh.seek(start)
    tail = fh.read()
    if not tail.endswith(b"\n"):
        nl = tail.rfind(b"\n")
        if nl < 0:
            return 0 if start == 0 else None
        return start + nl + 1
    body = tail[:-1]
    nl = body.rfind(b"\n")
    if nl < 0 and start > 0:
        return None  # a last line over 64 KiB: not ours to judge
    last = body[nl + 1 :]
    if not last.strip() or _decode_line(last) is not None or _salvage(last) is not None:
        return None
    return start + nl + 1


def append_journal(jpath: Path, entries: list[dict]) -> None:
    """Append edits to ``jpath`` and fsync (call under :func:`_journal_lock`).

    A new journal starts with its id line. A torn last line is cut off first (with a warning),
    so the new edit starts on a line of its own.
    """
    with open(jpath, "a+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        head = b""
        cut = _tail_cut(fh, size) if size else 0
        if cut is not None and cut < size:
            fh.truncate(cut)
            warnings.warn(
                f"{jpath}: cut a torn last line ({size - cut} bytes, never acknowledged) before "
                "appending.",
                stacklevel=4,
            )
        if cut == 0:
            head = encode_entry({"op": "begin", "id": _new_journal_id(), "v": JOURNAL_VERSION})
        fh.write(head + b"".join(encode_entry(e) for e in entries))
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def _journal_lock(directory: Path) -> Iterator[None]:
    """Serialise journal appends and saves across processes (an advisory ``flock``)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _stamp(path: Path) -> tuple[int, int, int]:
    """What identifies one version of a file: an atomic replace changes the inode."""
    st = path.stat()
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(os.path.abspath(a)) == Path(os.path.abspath(b))


# ---------------------------------------------------------------------- merging saves
def _nan_eq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f":
        return (a == b) | (np.isnan(a) & np.isnan(b))
    return a == b


def _same_rows(a: Dataset, b: Dataset) -> bool:
    return (
        len(a) == len(b)
        and np.array_equal(a.annotations["id"].to_numpy(), b.annotations["id"].to_numpy())
        and np.array_equal(a.images["id"].to_numpy(), b.images["id"].to_numpy())
    )


def _point_diff(a: Dataset, b: Dataset) -> np.ndarray:
    """``(N, 19)``: which points differ (position, visibility, provenance, score or raw)."""
    d = ~_nan_eq(a.keypoints, b.keypoints).all(-1)
    d |= ~_nan_eq(a.keypoints_raw, b.keypoints_raw).all(-1)
    d |= a.source != b.source
    d |= ~_nan_eq(a.scores, b.scores)
    return d


def _same_value(x: Any, y: Any) -> bool:
    if x is y:
        return True
    try:
        r = x == y
    except Exception:  # noqa: BLE001 - objects that refuse to compare are different
        return False
    return r is True or (isinstance(r, np.bool_) and bool(r))


def _cell_diff(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Which cells of two aligned columns differ (missing equals missing)."""
    na_a, na_b = a.isna().to_numpy(), b.isna().to_numpy()
    if a.dtype != object and b.dtype != object:
        with np.errstate(invalid="ignore"):
            eq = a.to_numpy(dtype=float, na_value=np.nan) == b.to_numpy(
                dtype=float, na_value=np.nan
            )
    else:
        va, vb = a.to_numpy(dtype=object), b.to_numpy(dtype=object)
        eq = np.fromiter(map(_same_value, va, vb), bool, len(va))
    return ~(eq | (na_a & na_b))


def _set_cells(df: pd.DataFrame, col: str, take: np.ndarray, src: pd.Series) -> None:
    if df[col].dtype == object or src.dtype != df[col].dtype:
        arr = df[col].to_numpy(dtype=object).copy()
        arr[take] = src.to_numpy(dtype=object)[take]
        df[col] = pd.Series(arr, index=df.index, dtype=object)
    else:
        arr = df[col].array.copy()
        arr[take] = src.array[take]
        df[col] = arr


def _merge_into(theirs: Dataset, ours: Dataset, shadow: Dataset) -> int:
    """Put ``ours - shadow`` onto ``theirs`` where ``theirs`` did not change. Returns clashes."""
    clashes = 0
    mine = _point_diff(ours, shadow)
    if mine.any():
        other = _point_diff(theirs, shadow)
        clashes += int((mine & other & _point_diff(ours, theirs)).sum())
        take = mine & ~other
        for name in ("keypoints", "keypoints_raw", "scores", "source"):
            getattr(theirs, name)[take] = getattr(ours, name)[take]
    mine = ~_nan_eq(ours.bboxes, shadow.bboxes).all(1)
    if mine.any():
        other = ~_nan_eq(theirs.bboxes, shadow.bboxes).all(1)
        clashes += int((mine & other & ~_nan_eq(ours.bboxes, theirs.bboxes).all(1)).sum())
        theirs.bboxes[mine & ~other] = ours.bboxes[mine & ~other]
    for table in ("images", "annotations"):
        o, s, t = getattr(ours, table), getattr(shadow, table), getattr(theirs, table)
        for col in o.columns:
            if col not in s.columns or col not in t.columns:
                continue
            mine = _cell_diff(o[col], s[col])
            if not mine.any():
                continue
            other = _cell_diff(t[col], s[col])
            clashes += int((mine & other & _cell_diff(o[col], t[col])).sum())
            if (mine & ~other).any():
                _set_cells(t, col, mine & ~other, o[col])
    for name in ("videos", "media_root", "taxonomy", "meta", "categories", "skeleton"):
        mine_v, base_v, their_v = getattr(ours, name), getattr(shadow, name), getattr(theirs, name)
        if _same_value(mine_v, base_v):
            continue
        if not _same_value(their_v, base_v) and not _same_value(their_v, mine_v):
            clashes += 1
        else:
            setattr(theirs, name, copy.deepcopy(mine_v))
    return clashes


def _differs(a: Dataset, b: Dataset) -> bool:
    """Whether ``a`` holds any change relative to ``b`` (same rows)."""
    if _point_diff(a, b).any() or not _nan_eq(a.bboxes, b.bboxes).all():
        return True
    for t in ("images", "annotations"):
        ta, tb = getattr(a, t), getattr(b, t)
        if any(_cell_diff(ta[c], tb[c]).any() for c in ta.columns if c in tb.columns):
            return True
    return any(
        not _same_value(getattr(a, n), getattr(b, n))
        for n in ("videos", "media_root", "taxonomy", "meta", "categories")
    )


# ---------------------------------------------------------------------- media roots
#: Set to ``1`` to accept any ``media_root`` (the explicit opt-out of the allowed-roots rule).
ALLOW_ANY_MEDIA_ENV = "TOOLKIT_ALLOW_ANY_MEDIA_ROOT"
_SYSTEM_DIRS = (
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/usr",
    "/run",
    "/var/lib",
    "/var/log",
    "/var/run",
    "/var/spool",
    "/var/mail",
    "/var/cache",
    "/var/backups",
    "/snap",
    "/private/etc",
    "/private/var/db",
    "/System",
    "/Library",
)


def _home() -> Path | None:
    try:
        return Path(os.path.realpath(Path.home()))
    except (RuntimeError, KeyError, OSError):
        return None


def media_root_problem(media_root: Any, dataset_dir: str | Path | None) -> str | None:
    """Why ``media_root`` is outside a dataset's allowed roots (None when it is allowed).

    Allowed: the dataset directory and anything inside it, and any ordinary folder the user
    chose at import or relink. Never allowed (without the explicit opt-out): the file-system
    root, ``/home``, the home directory itself and its hidden folders (``~/.ssh`` …), and
    system folders (``/etc``, ``/proc``, ``/usr`` …). The check resolves symlinks, so a link
    to ``/etc`` is refused too.
    """
    if not isinstance(media_root, str) or not media_root.strip() or "\x00" in media_root:
        return "is not a folder name"
    if (problem := name_length_problem(media_root)) is not None:
        return f"is not a usable path (expected {problem})"
    root = Path(media_root)
    if not root.is_absolute():
        root = (Path(dataset_dir) if dataset_dir is not None else Path.cwd()) / root
    try:
        real = Path(os.path.realpath(root))
    except (OSError, ValueError):
        return "cannot be resolved to a folder"
    if dataset_dir is not None:
        inside = Path(os.path.realpath(dataset_dir))
        if real == inside or inside in real.parents:
            return None
    if real == Path(real.anchor):
        return f"resolves to the file-system root {real}"
    if str(real) in ("/home", "/Users"):
        return f"resolves to {real}, the folder of every user's home"
    home = _home()
    if home is not None and real == home:
        return f"resolves to the home directory {real} itself (name a folder inside it)"
    for d in _SYSTEM_DIRS:
        p = Path(d)
        if real == p or p in real.parents:
            return f"resolves to {real}, inside the system folder {d}"
    if home is not None and home in real.parents:
        first = real.relative_to(home).parts[0]
        if first.startswith("."):
            return f"resolves to {real}, inside the hidden folder {home / first}"
    return None


# ---------------------------------------------------------------------- helpers
def _clean_kpts(keypoints: np.ndarray) -> np.ndarray:
    """``(N, 19, 3)`` float64 copy with missing points (``v <= 0`` or non-finite) as NaN, v 0."""
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, layout.NUM_KEYPOINTS, 3).copy()
    missing = (kp[..., 2] <= 0) | ~np.isfinite(kp[..., :2]).all(-1)
    kp[missing, :2] = np.nan
    kp[missing, 2] = 0
    return kp


def boxes_from_keypoints(kp: np.ndarray, pad: float = 0.05) -> np.ndarray:
    """``(N, 4)`` ``x, y, w, h`` boxes around the visible points (NaN rows when none)."""
    xy = kp[..., :2]
    with np.errstate(all="ignore"), warnings_off():
        lo = np.nanmin(xy, axis=1)
        hi = np.nanmax(xy, axis=1)
    wh = hi - lo
    lo = lo - pad * wh
    wh = wh * (1 + 2 * pad)
    return np.concatenate([lo, wh], axis=1)


class warnings_off:
    """Silence 'All-NaN slice' RuntimeWarnings inside a block."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


_EXTENSION_KEYS = ("keypoints_raw", "keypoint_source", "keypoint_scores")


def _annotation_records(c: dict[str, list], n: int, extensions: bool) -> list[dict]:
    """Assemble the ``annotations`` records from their columns.

    The columns are :meth:`Dataset._annotation_columns` (and the extension columns); the keys
    keep the order ``dataset.json`` has always had.
    """
    ids, img_ids, cats, kps, vis = (
        c["id"],
        c["image_id"],
        c["category_id"],
        c["keypoints"],
        c["num_keypoints"],
    )
    bb_ok, bbox, has_area, area, iscrowd = (
        c["bbox_ok"],
        c["bbox"],
        c["has_area"],
        c["area"],
        c["iscrowd"],
    )
    ext = [(key, c[key]) for key in _EXTENSION_KEYS] if extensions else []
    score, track, preds, extras = c["score"], c["track_id"], c["predictions"], c["extra"]
    out = []
    for i in range(n):
        rec: dict[str, Any] = {
            "id": ids[i],
            "image_id": img_ids[i],
            "category_id": cats[i],
            "keypoints": kps[i],
            "num_keypoints": vis[i],
        }
        if bb_ok[i]:
            rec["bbox"] = bbox[i]
        if has_area[i]:
            rec["area"] = area[i]
        rec["iscrowd"] = 0 if iscrowd[i] is None else int(iscrowd[i])
        for key, values in ext:
            if values[i] is not None:
                rec[key] = values[i]
        if score[i] is not None:
            rec["score"] = score[i]
        if track[i] is not None:
            rec["track_id"] = int(track[i])
        p = preds[i]
        if p is not None and not (isinstance(p, float) and np.isnan(p)):
            rec["predictions"] = p
        if extras[i]:
            rec.update(extras[i])
        out.append(rec)
    return out


def _extras(records: list[dict], known: set[str]) -> list[dict | None]:
    return [
        None if r.keys() <= known else {k: v for k, v in r.items() if k not in known}
        for r in records
    ]


def _int_array(values: list) -> pd.api.extensions.ExtensionArray:
    """A nullable ``Int64`` array (fast paths for all-null and no-null columns)."""
    n = len(values)
    nulls = values.count(None)
    if nulls == n:
        return pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool))
    if not nulls:
        return pd.arrays.IntegerArray(np.array(values, dtype=np.int64), np.zeros(n, bool))
    return pd.array(values, dtype="Int64")


def _getter(cols: Any):
    def get(_records: list, key: str, default: Any = None) -> list:
        return cols.full(key, default)

    return get


def _obj(values: list) -> pd.Series:
    """An ``object`` column (pandas 3 would infer ``str`` and turn ``None`` into NaN)."""
    return pd.Series(np.fromiter(values, dtype=object, count=len(values)), dtype=object)


def _images_table(images: list[dict], cols: Any = None) -> pd.DataFrame:

    cols = cols or Columns(images)
    _get_all = _getter(cols)
    df = pd.DataFrame(
        {
            "id": np.array(_get_all(images, "id"), dtype=np.int64),
            "file_name": _obj(_get_all(images, "file_name")),
            "width": _int_array(_get_all(images, "width")),
            "height": _int_array(_get_all(images, "height")),
            "stance": _obj(_get_all(images, "stance")),
            "subject": _obj(_get_all(images, "subject")),
            "video_id": _int_array(_get_all(images, "video_id")),
            "frame_index": _int_array(_get_all(images, "frame_index")),
        }
    )
    df["extra"] = _obj(_extras(images, _IMAGE_KEYS))
    return df


def _annotations_table(anns: list[dict], cols: Any = None) -> pd.DataFrame:

    cols = cols or Columns(anns)
    _get_all = _getter(cols)
    df = pd.DataFrame(
        {
            "id": np.array(_get_all(anns, "id"), dtype=np.int64),
            "image_id": np.array(_get_all(anns, "image_id"), dtype=np.int64),
            "category_id": np.array(_get_all(anns, "category_id", 1), dtype=np.int64),
            "score": np.array(_get_all(anns, "score", np.nan), dtype=np.float64),
            "track_id": _int_array(_get_all(anns, "track_id")),
            "area": np.array(_get_all(anns, "area", np.nan), dtype=np.float64),
            "iscrowd": _int_array(_get_all(anns, "iscrowd")),
        }
    )
    df["extra"] = _obj(_extras(anns, _ANN_KEYS))
    df["predictions"] = _obj(_get_all(anns, "predictions"))
    return df


def _column_values(s: pd.Series) -> list:
    """A column as Python values with every kind of missing (NaN, NA, None) as ``None``."""
    vals = s.to_numpy(dtype=object)
    na = pd.isna(vals)
    if na.any():
        vals = vals.copy()
        vals[na] = None
    return vals.tolist()


def _table_records(
    df: pd.DataFrame, columns: tuple[str, ...], keep_null: tuple[str, ...] = ()
) -> list[dict]:
    """Rows as dicts, dropping null fields (except ``keep_null``) and merging ``extra`` back."""
    cols = [c for c in columns if c in df.columns]
    data = [_column_values(df[c]) for c in cols]
    extras = df["extra"].to_numpy()
    out = []
    for i, row in enumerate(zip(*data, strict=True)):
        rec = {c: v for c, v in zip(cols, row, strict=True) if v is not None or c in keep_null}
        if extras[i]:
            rec.update(extras[i])
        out.append(rec)
    return out
