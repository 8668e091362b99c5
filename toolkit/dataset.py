"""The dataset: COCO keypoints JSON on disk, arrays and a pandas table in memory.

On disk a dataset is a directory::

    DATASET/
      dataset.json     COCO keypoints JSON (pycocotools loads it) + our documented extensions
      journal.jsonl    edits appended (and fsynced) before they are acknowledged; folded on save

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
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from toolkit import layout
from toolkit.errors import InputError
from toolkit.fileio import atomic_write_bytes, safe_relpath

FORMAT_VERSION = 1
DATASET_FILE = "dataset.json"
JOURNAL_FILE = "journal.jsonl"
LOCK_FILE = ".journal.lock"

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
#: One letter per provenance code in the on-disk ``keypoint_source`` string.
SOURCE_LETTERS = "ichp"
# Keys we model explicitly; anything else on an image/annotation is kept in ``extra`` and
# written back unchanged (so a COCO file round-trips exactly: ``segmentation``, ``coco_url`` …).
# ``area`` and ``iscrowd`` are hidden annotation columns (NaN/NA: derive from the bbox / 0).
_IMAGE_KEYS = set(IMAGE_COLUMNS)
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
    shortest round-trip form, NaN as ``null``. One vectorised ``orjson`` call encodes the whole
    array; this is what makes saving 100k annotations fast.
    """
    a = np.ascontiguousarray(a, dtype=np.float64)
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
def _gc_paused() -> Iterator[None]:
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
    _stamp: tuple[int, int] | None = field(default=None, repr=False)

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
            raise KeyError(f"No annotation with id {ann_id}.")
        return int(rows[0])

    def image_row(self, image_id: int) -> int:
        """Row index of an image id."""
        rows = np.flatnonzero(self.images["id"].to_numpy() == image_id)
        if not len(rows):
            raise KeyError(f"No image with id {image_id}.")
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
        raise KeyError(f"No video with id {video_id}.")

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
        if journal:
            self._journal(op)
        self._apply(op)

    def set_image_field(self, image_id: int, name: str, value: Any, journal: bool = True) -> None:
        """Set ``stance``, ``subject`` or a review field of one image; journalled first."""
        if name not in ("stance", "subject") and not name.startswith("review"):
            raise ValueError(
                f"Expected 'name' to be 'stance', 'subject' or 'review*', but got {name!r}."
            )
        op = {"op": "set_image", "image": int(image_id), "field": name, "value": value}
        if journal:
            self._journal(op)
        self._apply(op)

    def _apply(self, op: dict) -> None:
        if op["op"] == "set_points":
            row = self.ann_row(op["ann"])
            idx = np.asarray(op["idx"], dtype=int)
            vals = np.array([[np.nan if v is None else v for v in r] for r in op["xyv"]], float)
            missing = (vals[:, 2] <= 0) | ~np.isfinite(vals[:, :2]).all(1)
            vals[missing, :2] = np.nan
            vals[missing, 2] = 0
            self.keypoints[row, idx] = vals
            self.source[row, idx] = layout.SOURCE_CODE[op["source"]]
        elif op["op"] == "set_image":
            row = self.image_row(op["image"])
            if op["field"] in ("stance", "subject"):
                self.images.at[self.images.index[row], op["field"]] = op["value"]
            else:
                extra = dict(self.images.at[self.images.index[row], "extra"] or {})
                extra[op["field"]] = op["value"]
                self.images.at[self.images.index[row], "extra"] = extra
        else:
            raise ValueError(f"Expected a journal 'op' of set_points/set_image, got {op['op']!r}.")

    def _journal(self, op: dict) -> None:
        """Append one edit to ``journal.jsonl`` and fsync before returning (the acknowledgement).

        The file is opened per append (not kept open): another process's :meth:`save` replaces
        the journal by rename, and a cached handle would keep writing to the unlinked file.
        """
        if self.path is None:
            return
        line = orjson.dumps({**op, "t": time.time()}) + b"\n"
        with _journal_lock(self.path), open(self.path / JOURNAL_FILE, "ab") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        """Kept for API compatibility: the journal is opened per append, nothing stays open."""
        return None

    # ------------------------------------------------------------------ persistence
    def coco_records(
        self, *, extensions: bool = True, num_keypoints: int = layout.NUM_KEYPOINTS
    ) -> tuple[list[dict], list[dict]]:
        """The ``images`` and ``annotations`` records as written to disk.

        Big numeric lists (``keypoints``, ``bbox`` …) are ``orjson.Fragment`` objects (already
        encoded JSON); serialise the records with ``orjson``.

        Args:
            extensions: Include the suite's extensions (``keypoints_raw``, ``keypoint_source``,
                ``keypoint_scores``; ``stance``/``subject`` even when null). Plain COCO without.
            num_keypoints: 19, or 17 to drop the stick (a plain COCO-17 file).
        """
        k = num_keypoints
        if k not in (layout.NUM_BODY, layout.NUM_KEYPOINTS):
            raise ValueError(f"Expected 'num_keypoints' to be 17 or 19, but got {k!r}.")
        images = _table_records(
            self.images, IMAGE_COLUMNS, keep_null=("stance", "subject") if extensions else ()
        )
        n = len(self)
        if not n:
            return images, []
        kp = _kpts_to_disk(self.keypoints[:, :k])
        # Machine- or human-made points are rounded to 1/1000 px; imported ones stay exact.
        made = np.repeat(self.source[:, :k] != layout.IMPORTED, 3, axis=1)
        kp = np.where(made, np.round(kp, 3), kp)
        kp_rows = json_rows(kp)
        vis = (kp[:, 2::3] > 0).sum(1).tolist()
        bb = np.asarray(self.bboxes, np.float64)
        bb_ok = np.isfinite(bb).all(1)
        bb_rows = json_rows(np.where(bb_ok[:, None], bb, 0.0))
        area = np.where(bb_ok, np.round(bb[:, 2] * bb[:, 3], 2), 0.0)
        has_area = bb_ok.copy()
        if "area" in self.annotations:  # the source's own area (e.g. of a segmentation) wins
            src_area = self.annotations["area"].to_numpy(np.float64)
            area = np.where(np.isfinite(src_area), src_area, area)
            has_area |= np.isfinite(src_area)
        area = _numbers(area)
        has_area = has_area.tolist()
        iscrowd = (
            _column_values(self.annotations["iscrowd"])
            if "iscrowd" in self.annotations
            else [None] * n
        )
        bb_ok = bb_ok.tolist()
        ann = self.annotations
        ids = ann["id"].to_numpy().tolist()
        img_ids = ann["image_id"].to_numpy().tolist()
        cats = ann["category_id"].to_numpy().tolist()
        ann_score = _column_values(ann["score"])
        track = _column_values(ann["track_id"])
        extras = ann["extra"].to_numpy()
        preds = ann["predictions"].to_numpy()
        raw_rows = src_str = sc_rows = None
        if extensions:
            raw = self.keypoints_raw[:, :k]
            now = self.keypoints[:, :k]
            same = ((raw == now) | (np.isnan(raw) & np.isnan(now))).all((1, 2))
            raw_rows = [None] * n
            for i, row in zip(
                np.flatnonzero(~same).tolist(), json_rows(_kpts_to_disk(raw[~same])), strict=True
            ):
                raw_rows[i] = row
            letters = np.frombuffer(SOURCE_LETTERS.encode(), np.uint8)[self.source[:, :k]]
            flat = letters.tobytes().decode("ascii")
            src_str = [flat[i * k : (i + 1) * k] for i in range(n)]
            sc = np.round(self.scores[:, :k].astype(np.float64), 4)
            has = np.isfinite(sc).any(1)
            sc_rows = [None] * n
            for i, row in zip(np.flatnonzero(has).tolist(), json_rows(sc[has]), strict=True):
                sc_rows[i] = row
        out = []
        for i in range(n):
            rec: dict[str, Any] = {
                "id": ids[i],
                "image_id": img_ids[i],
                "category_id": cats[i],
                "keypoints": kp_rows[i],
                "num_keypoints": vis[i],
            }
            if bb_ok[i]:
                rec["bbox"] = bb_rows[i]
            if has_area[i]:
                rec["area"] = area[i]
            rec["iscrowd"] = 0 if iscrowd[i] is None else int(iscrowd[i])
            if extensions:
                if raw_rows[i] is not None:
                    rec["keypoints_raw"] = raw_rows[i]
                rec["keypoint_source"] = src_str[i]
                if sc_rows[i] is not None:
                    rec["keypoint_scores"] = sc_rows[i]
            if ann_score[i] is not None:
                rec["score"] = ann_score[i]
            if track[i] is not None:
                rec["track_id"] = int(track[i])
            p = preds[i]
            if p is not None and not (isinstance(p, float) and np.isnan(p)):
                rec["predictions"] = p
            if extras[i]:
                rec.update(extras[i])
            out.append(rec)
        return images, out

    def _document(self) -> dict:
        images, anns = self.coco_records()
        doc: dict[str, Any] = {
            "version": FORMAT_VERSION,
            **{k: v for k, v in self.meta.items() if k != "version"},
            "media_root": self.media_root,
            "categories": self.coco_categories(),
            "images": images,
            "annotations": anns,
            "videos": self.videos,
        }
        if self.taxonomy:
            doc["taxonomy"] = self.taxonomy
        return doc

    def to_bytes(self) -> bytes:
        """``dataset.json`` as bytes (what :meth:`save` writes)."""
        with _gc_paused():
            return orjson.dumps(self._document(), option=orjson.OPT_SERIALIZE_NUMPY)

    def to_coco(self) -> dict:
        """The full ``dataset.json`` document (COCO keypoints + extensions) as plain Python."""
        return orjson.loads(self.to_bytes())

    def save(self, path: str | Path | None = None, *, force: bool = False) -> Path:
        """Write ``dataset.json`` atomically and fold (empty) the journal.

        Args:
            path: Dataset directory; defaults to where it was loaded from.
            force: Overwrite even if ``dataset.json`` changed on disk since it was loaded.

        Raises:
            RuntimeError: The file on disk changed since load (someone else saved), unless
                ``force``.
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("Expected a 'path' to save to, but the dataset has none.")
        target.mkdir(parents=True, exist_ok=True)
        ds_file = target / DATASET_FILE
        if (
            not force
            and target == self.path
            and self._stamp is not None
            and ds_file.exists()
            and _stamp(ds_file) != self._stamp
        ):
            raise RuntimeError(
                f"{ds_file} changed on disk since it was loaded (another program saved it). "
                "Your edits are safe in the journal; reload to merge them, or save with force."
            )
        with _journal_lock(target):
            if target == self.path:
                # Fold what the journal holds *now*, in acknowledgement order: edits another
                # process appended since we loaded are applied too instead of being truncated
                # away. Every op sets absolute values, so re-applying our own is harmless.
                self._replay()
            atomic_write_bytes(ds_file, self.to_bytes())
            # dataset.json now holds every edit, so empty the journal. A crash between the
            # rename and this truncate only replays edits that are already applied.
            jpath = target / JOURNAL_FILE
            if jpath.exists():
                atomic_write_bytes(jpath, b"")
        self.path = target
        self._stamp = _stamp(ds_file)
        return target

    @classmethod
    def load(cls, path: str | Path, *, replay: bool = True, validate: bool = True) -> Dataset:
        """Load a dataset directory (or its ``dataset.json``), validating it and replaying edits.

        Raises:
            FileNotFoundError: No ``dataset.json`` there.
            InputError: The document breaks the schema (the message names the field and line).
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
        stamp = _stamp(ds_file)
        raw_bytes = ds_file.read_bytes()
        with _gc_paused():
            try:
                doc = orjson.loads(raw_bytes)
            except orjson.JSONDecodeError as exc:
                raise InputError(
                    f"Expected valid JSON, but parsing failed: {exc.msg}",
                    ds_file,
                    getattr(exc, "lineno", None),
                ) from None
            from toolkit.schema import annotation_arrays, validate_dataset

            if validate:
                arrays = validate_dataset(doc, ds_file, raw=raw_bytes)
            else:
                arrays = annotation_arrays(doc.get("annotations") or [], ds_file, raw=raw_bytes)
            ds = cls.from_coco(doc, source_file=ds_file, arrays=arrays)
        ds.path = path
        ds._stamp = stamp
        if replay:
            ds._replay()
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
        from toolkit.schema import annotation_arrays

        anns = doc.get("annotations") or []
        images = doc.get("images") or []
        if arrays is None:
            arrays = annotation_arrays(anns, source_file)
        kp = _kpts_from_disk(arrays["keypoints"])
        raw = kp.copy()
        has_raw = arrays["has_raw"]
        if has_raw.any():
            raw[has_raw] = _kpts_from_disk(arrays["keypoints_raw"])
        meta = {
            key: v
            for key, v in doc.items()
            if key
            not in (
                "images",
                "annotations",
                "categories",
                "videos",
                "media_root",
                "taxonomy",
                "version",
            )
        }
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
        """Apply an unfolded journal (edits acknowledged but not yet saved). Returns the count."""
        jpath = self.path / JOURNAL_FILE if self.path else None
        if jpath is None or not jpath.exists():
            return 0
        lines = jpath.read_bytes().splitlines()
        count = 0
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                op = orjson.loads(line)
            except orjson.JSONDecodeError:
                # Only the last line can be torn (a crash mid-append, before the fsync returned,
                # so it was never acknowledged): skip it; anything earlier is corruption.
                if lineno == len(lines):
                    break
                raise InputError(
                    "Expected a JSON edit on every journal line.", jpath, lineno
                ) from None
            self._apply(op)
            count += 1
        self._replayed = count
        return count

    def pending_edits(self) -> int:
        """Number of journalled edits not yet folded into ``dataset.json``."""
        jpath = self.path / JOURNAL_FILE if self.path else None
        if jpath is None or not jpath.exists():
            return 0
        return sum(1 for line in jpath.read_bytes().splitlines() if line.strip())

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


# ---------------------------------------------------------------------- helpers
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


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size)


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
    from toolkit.schema import Columns

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
    from toolkit.schema import Columns

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
