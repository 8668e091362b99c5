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
"""

from __future__ import annotations

import copy
import os
import time
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

IMAGE_COLUMNS = ("id", "file_name", "width", "height", "stance", "subject", "video_id",
                 "frame_index")
ANNOTATION_COLUMNS = ("id", "image_id", "category_id", "score", "track_id")
# Keys we model explicitly; anything else on an image/annotation is kept in ``extra`` and
# written back unchanged (so a COCO file round-trips exactly).
_IMAGE_KEYS = set(IMAGE_COLUMNS)
_ANN_KEYS = {"id", "image_id", "category_id", "score", "track_id", "keypoints", "keypoints_raw",
             "keypoint_source", "keypoint_scores", "bbox", "num_keypoints", "area", "iscrowd",
             "predictions"}


def _kpts_from_disk(flat: np.ndarray) -> np.ndarray:
    """``(N, K*3)`` COCO values -> ``(N, K, 3)`` with NaN coordinates where ``v == 0``."""
    k = np.asarray(flat, dtype=np.float64).reshape(len(flat), -1, 3).copy()
    missing = k[..., 2] <= 0
    k[missing, 0:2] = np.nan
    k[missing, 2] = 0
    return k


def _kpts_to_disk(k: np.ndarray) -> np.ndarray:
    """``(N, K, 3)`` in memory -> ``(N, K*3)`` COCO values (missing points as ``0, 0, 0``)."""
    out = np.array(k, dtype=np.float64, copy=True)
    missing = (out[..., 2] <= 0) | ~np.isfinite(out[..., 0]) | ~np.isfinite(out[..., 1])
    out[missing] = 0.0
    return out.reshape(len(out), -1)


def _round(a: np.ndarray, ndigits: int = 3) -> np.ndarray:
    """Round for writing; integral values stay integral in JSON (``142`` not ``142.0``)."""
    return np.round(a, ndigits)


def _to_json_numbers(a: np.ndarray) -> list:
    """Floats that are whole numbers become ints, so COCO ground truth round-trips exactly."""
    a = _round(a)
    if a.size and np.all(a == np.floor(a)):
        return a.astype(np.int64).tolist()
    out = a.tolist()
    if a.ndim == 1:
        return [int(x) if x == int(x) else x for x in out]
    return [[int(x) if x == int(x) else x for x in row] for row in out]


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
    path: Path | None = None
    _stamp: tuple[int, int] | None = field(default=None, repr=False)
    _journal_fh: Any = field(default=None, repr=False)

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
    ) -> Dataset:
        """Build a dataset from plain records and a keypoint array (what importers do).

        Args:
            images: Dicts with at least ``id``, ``file_name``, ``width``, ``height``.
            annotations: Dicts with at least ``id``, ``image_id``; one per row of ``keypoints``.
            keypoints: ``(N, 19, 3)`` with NaN x/y for missing points (or ``v == 0``).
            scores: ``(N, 19)`` confidences, default NaN.
            source: ``(N, 19)`` codes, or one code for all points.
            bboxes: ``(N, 4)``; derived from the visible points when omitted.
        """
        kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, layout.NUM_KEYPOINTS, 3).copy()
        n = len(kp)
        if len(annotations) != n:
            raise ValueError(f"Expected one annotation per keypoint row ({n}), "
                             f"but got {len(annotations)}.")
        missing = (kp[..., 2] <= 0) | ~np.isfinite(kp[..., :2]).all(-1)
        kp[missing, :2] = np.nan
        kp[missing, 2] = 0
        src = np.broadcast_to(np.asarray(source, dtype=np.uint8), (n, layout.NUM_KEYPOINTS)).copy()
        sc = (np.full((n, layout.NUM_KEYPOINTS), np.nan, np.float32) if scores is None
              else np.asarray(scores, np.float32).reshape(n, layout.NUM_KEYPOINTS))
        bb = boxes_from_keypoints(kp) if bboxes is None else np.asarray(bboxes, np.float64)
        return cls(
            images=_images_table(images),
            annotations=_annotations_table(annotations),
            keypoints=kp,
            keypoints_raw=kp.copy(),
            scores=sc,
            source=src,
            bboxes=bb.reshape(n, 4),
            videos=list(videos or []),
            media_root=str(media_root),
            taxonomy=taxonomy,
            meta=dict(meta or {}),
        )

    # ------------------------------------------------------------------ basic views
    def __len__(self) -> int:
        return len(self.keypoints)

    def __repr__(self) -> str:
        where = f", path='{self.path}'" if self.path else ""
        return (f"Dataset(n_images={len(self.images)}, n_annotations={len(self)}, "
                f"n_videos={len(self.videos)}{where})")

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
            raise ValueError(f"Expected 'source' to be one of {layout.SOURCES}, but got {source!r}.")
        op = {"op": "set_points", "ann": int(ann_id), "idx": idx.tolist(),
              "xyv": [[None if not np.isfinite(v) else float(v) for v in r] for r in vals],
              "source": source}
        if journal:
            self._journal(op)
        self._apply(op)

    def set_image_field(self, image_id: int, name: str, value: Any, journal: bool = True) -> None:
        """Set ``stance``, ``subject`` or a review field of one image; journalled first."""
        if name not in ("stance", "subject") and not name.startswith("review"):
            raise ValueError(f"Expected 'name' to be 'stance', 'subject' or 'review*', "
                             f"but got {name!r}.")
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
        """Append one edit to ``journal.jsonl`` and fsync before returning (the acknowledgement)."""
        if self.path is None:
            return
        if self._journal_fh is None:
            self._journal_fh = open(self.path / JOURNAL_FILE, "ab")  # noqa: SIM115
        op = {**op, "t": time.time()}
        self._journal_fh.write(orjson.dumps(op) + b"\n")
        self._journal_fh.flush()
        os.fsync(self._journal_fh.fileno())

    def close(self) -> None:
        """Close the journal file handle (edits already on disk stay there)."""
        if self._journal_fh is not None:
            self._journal_fh.close()
            self._journal_fh = None

    # ------------------------------------------------------------------ persistence
    def to_coco(self) -> dict:
        """The full ``dataset.json`` document (COCO keypoints + extensions)."""
        img_records = _table_records(self.images, IMAGE_COLUMNS)
        ann_records = []
        kp = _kpts_to_disk(self.keypoints)
        raw = _kpts_to_disk(self.keypoints_raw)
        vis = (self.keypoints[..., 2] > 0).sum(1)
        kp_l = _to_json_numbers(kp)
        raw_l = _to_json_numbers(raw)
        bbox_l = _to_json_numbers(np.nan_to_num(self.bboxes, nan=0.0))
        src_names = np.array(layout.SOURCES)[self.source].tolist()
        has_scores = np.isfinite(self.scores).any(1)
        scores_l = np.round(np.nan_to_num(self.scores, nan=0.0).astype(np.float64), 4).tolist()
        ann = self.annotations
        ids = ann["id"].to_numpy()
        img_ids = ann["image_id"].to_numpy()
        cats = ann["category_id"].to_numpy()
        ann_score = ann["score"].to_numpy()
        track = ann["track_id"].to_numpy()
        extras = ann["extra"].to_numpy()
        preds = ann["predictions"].to_numpy()
        for i in range(len(ann)):
            rec: dict[str, Any] = {
                "id": int(ids[i]),
                "image_id": int(img_ids[i]),
                "category_id": int(cats[i]),
                "keypoints": kp_l[i],
                "num_keypoints": int(vis[i]),
                "bbox": bbox_l[i],
                "area": float(round(bbox_l[i][2] * bbox_l[i][3], 3)),
                "iscrowd": 0,
                "keypoints_raw": raw_l[i],
                "keypoint_source": src_names[i],
            }
            if has_scores[i]:
                rec["keypoint_scores"] = scores_l[i]
            if np.isfinite(ann_score[i]):
                rec["score"] = float(ann_score[i])
            if track[i] is not pd.NA and track[i] is not None and not pd.isna(track[i]):
                rec["track_id"] = int(track[i])
            if preds[i] is not None and not (isinstance(preds[i], float) and np.isnan(preds[i])):
                rec["predictions"] = preds[i]
            if extras[i]:
                rec.update(extras[i])
            ann_records.append(rec)
        doc: dict[str, Any] = {
            "version": FORMAT_VERSION,
            **{k: v for k, v in self.meta.items() if k not in ("version",)},
            "media_root": self.media_root,
            "categories": [self.skeleton.coco_category()],
            "images": img_records,
            "annotations": ann_records,
            "videos": self.videos,
        }
        if self.taxonomy:
            doc["taxonomy"] = self.taxonomy
        return doc

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
        if (not force and target == self.path and self._stamp is not None
                and ds_file.exists() and _stamp(ds_file) != self._stamp):
            raise RuntimeError(
                f"{ds_file} changed on disk since it was loaded (another program saved it). "
                "Your edits are safe in the journal; reload to merge them, or save with force.")
        data = orjson.dumps(self.to_coco(), option=orjson.OPT_SERIALIZE_NUMPY)
        atomic_write_bytes(ds_file, data)
        # The journal is folded: dataset.json now holds every edit, so truncate it. A crash
        # between the rename and this truncate replays edits that are already applied, which is
        # harmless because every op sets absolute values.
        self.close()
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
            InputError: The document breaks the schema (the message names the field).
        """
        path = Path(path)
        if path.is_file() and path.name == DATASET_FILE:
            path = path.parent
        ds_file = path / DATASET_FILE
        if not ds_file.exists():
            raise FileNotFoundError(
                f"Expected a dataset directory with '{DATASET_FILE}', but {path} has none "
                "(create one with `toolkit import SRC --out DATASET`).")
        raw_bytes = ds_file.read_bytes()
        try:
            doc = orjson.loads(raw_bytes)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"Expected valid JSON, but parsing failed: {exc}", ds_file) from None
        if validate:
            from toolkit.schema import validate_dataset

            validate_dataset(doc, ds_file)
        ds = cls.from_coco(doc, source_file=ds_file)
        ds.path = path
        ds._stamp = _stamp(ds_file)
        if replay:
            ds._replay()
        return ds

    @classmethod
    def from_coco(cls, doc: dict, source_file: str | Path | None = None) -> Dataset:
        """Build from a parsed ``dataset.json`` document (already validated)."""
        anns = doc.get("annotations", [])
        images = doc.get("images", [])
        n = len(anns)
        k = layout.NUM_KEYPOINTS
        if n:
            kp = _kpts_from_disk(np.array([a["keypoints"] for a in anns], dtype=np.float64))
            raw = _kpts_from_disk(np.array([a.get("keypoints_raw", a["keypoints"]) for a in anns],
                                           dtype=np.float64))
            src_names = np.array([a.get("keypoint_source") or ["imported"] * k for a in anns])
            order = np.argsort(np.array(layout.SOURCES))
            src = order[np.searchsorted(np.array(layout.SOURCES)[order], src_names)]
            src = src.astype(np.uint8)
            scores = np.array([a.get("keypoint_scores") or [np.nan] * k for a in anns],
                              dtype=np.float32)
            bboxes = np.array([a.get("bbox") or [np.nan] * 4 for a in anns], dtype=np.float64)
        else:
            kp = np.zeros((0, k, 3))
            raw = kp.copy()
            src = np.zeros((0, k), np.uint8)
            scores = np.zeros((0, k), np.float32)
            bboxes = np.zeros((0, 4))
        meta = {key: v for key, v in doc.items()
                if key not in ("images", "annotations", "categories", "videos", "media_root",
                               "taxonomy", "version")}
        return cls(
            images=_images_table(images),
            annotations=_annotations_table(anns),
            keypoints=kp,
            keypoints_raw=raw,
            scores=scores,
            source=src,
            bboxes=bboxes,
            videos=list(doc.get("videos") or []),
            media_root=doc.get("media_root", "."),
            taxonomy=doc.get("taxonomy"),
            meta=meta,
        )

    def _replay(self) -> int:
        """Apply an unfolded journal (edits acknowledged but not yet saved). Returns the count."""
        jpath = self.path / JOURNAL_FILE if self.path else None
        if jpath is None or not jpath.exists():
            return 0
        count = 0
        for lineno, line in enumerate(jpath.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                op = orjson.loads(line)
            except orjson.JSONDecodeError:
                # Only the last line can be torn (a crash mid-append, before the fsync returned,
                # so it was never acknowledged): skip it; anything earlier is corruption.
                if lineno == len(jpath.read_bytes().splitlines()):
                    break
                raise InputError("Expected a JSON edit on every journal line.", jpath,
                                 lineno) from None
            self._apply(op)
            count += 1
        self.meta.pop("_replayed", None)
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
        new = copy.deepcopy(self.__class__(
            images=self.images, annotations=self.annotations, keypoints=self.keypoints,
            keypoints_raw=self.keypoints_raw, scores=self.scores, source=self.source,
            bboxes=self.bboxes, videos=self.videos, media_root=self.media_root,
            taxonomy=self.taxonomy, meta=self.meta, skeleton=self.skeleton))
        return new


# ---------------------------------------------------------------------- helpers
def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size)


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


def _images_table(images: list[dict]) -> pd.DataFrame:
    cols: dict[str, list] = {c: [] for c in IMAGE_COLUMNS}
    extra = []
    for im in images:
        for c in IMAGE_COLUMNS:
            cols[c].append(im.get(c))
        extra.append({k: v for k, v in im.items() if k not in _IMAGE_KEYS} or None)
    df = pd.DataFrame({
        "id": pd.array(cols["id"], dtype="int64"),
        "file_name": pd.array(cols["file_name"], dtype="object"),
        "width": pd.array(cols["width"], dtype="Int64"),
        "height": pd.array(cols["height"], dtype="Int64"),
        "stance": pd.array(cols["stance"], dtype="object"),
        "subject": pd.array(cols["subject"], dtype="object"),
        "video_id": pd.array(cols["video_id"], dtype="Int64"),
        "frame_index": pd.array(cols["frame_index"], dtype="Int64"),
    })
    df["extra"] = pd.array(extra, dtype="object")
    return df


def _annotations_table(anns: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame({
        "id": pd.array([a["id"] for a in anns], dtype="int64"),
        "image_id": pd.array([a["image_id"] for a in anns], dtype="int64"),
        "category_id": pd.array([a.get("category_id", 1) for a in anns], dtype="int64"),
        "score": pd.array([a.get("score", np.nan) for a in anns], dtype="float64"),
        "track_id": pd.array([a.get("track_id") for a in anns], dtype="Int64"),
    })
    df["extra"] = pd.array([{k: v for k, v in a.items() if k not in _ANN_KEYS} or None
                            for a in anns], dtype="object")
    df["predictions"] = pd.array([a.get("predictions") for a in anns], dtype="object")
    return df


def _table_records(df: pd.DataFrame, columns: tuple[str, ...]) -> list[dict]:
    """Rows as dicts, dropping null optional fields and merging ``extra`` back in."""
    out = []
    data = {c: df[c].to_numpy(dtype=object) for c in columns}
    extras = df["extra"].to_numpy()
    for i in range(len(df)):
        rec = {}
        for c in columns:
            v = data[c][i]
            if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
                if c in ("stance", "subject"):
                    rec[c] = None
                continue
            rec[c] = int(v) if isinstance(v, (np.integer, int)) and c != "file_name" else v
        if extras[i]:
            rec.update(extras[i])
        out.append(rec)
    return out
