"""Where a finding or a queue item points: frame lookups and the ``validate`` findings file.

The viewer does not run any check itself: it reads what ``toolkit validate`` stored in
``DATASET/validation.json`` (``{"findings": [{code, severity, file_name | video + frame_index,
ann_id, keypoints, value, threshold, message, proposal?}, ...]}``) and maps each entry onto a frame
of the viewer. The file is read defensively: a missing or unreadable file means "no findings", and
a malformed ``proposal`` is ignored (with one warning) instead of failing.

A finding may carry a proposed fix, ``"proposal": {"keypoints": [[kp_index, x, y], ...],
"method": "<name>", "confidence": <0..1>}`` (``kp_index`` 17 = grip, 18 = tip; ``x, y`` in image
pixels) for the annotation ``ann_id``; :attr:`Findings.proposals` holds them by frame, for the
viewer's accept actions to apply.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from toolkit import layout

FINDINGS_FILE = "validation.json"
#: Severities that make a frame "flagged" (``info`` findings are listed but do not flag).
FLAG_SEVERITIES = ("error", "warning")


@dataclass
class FrameLookup:
    """Maps the ways files name a frame onto the viewer's frame index (= row of ``ds.images``).

    Attributes:
        by_image_id: image id -> frame.
        by_file_name: image ``file_name`` -> frame.
        by_video_frame: ``(video key, frame_index)`` -> frame, where the video key is the video's
            id, its ``file_name`` or its stem (all three are accepted).
        ann_frame: ``(N,)`` frame of each annotation row.
        ann_ids: ``(N,)`` annotation ids.
    """

    by_image_id: dict[int, int]
    by_file_name: dict[str, int]
    by_video_frame: dict[tuple[Any, int], int]
    ann_frame: np.ndarray
    ann_ids: np.ndarray
    _ann_row: dict[int, int] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, ds) -> FrameLookup:
        images = ds.images
        ids = images["id"].to_numpy(dtype=np.int64)
        by_id = dict(zip(ids.tolist(), range(len(ids)), strict=True))
        by_name = dict(zip(images["file_name"].tolist(), range(len(ids)), strict=True))
        keys: dict[int, list] = {}
        for v in ds.videos:
            name = str(v.get("file_name", v["id"]))
            keys[v["id"]] = [v["id"], name, Path(name).stem, Path(name).name]
        by_vf: dict[tuple[Any, int], int] = {}
        vid = images["video_id"].to_numpy(dtype=object)
        fr = images["frame_index"].to_numpy(dtype=object)
        has = ~(pd.isna(images["video_id"]).to_numpy() | pd.isna(images["frame_index"]).to_numpy())
        for t in np.flatnonzero(has).tolist():
            for key in keys.get(int(vid[t]), [int(vid[t])]):
                by_vf[(key, int(fr[t]))] = t
        img_ids = ds.annotations["image_id"].to_numpy(dtype=np.int64)
        ann_frame = pd.Index(ids).get_indexer(img_ids).astype(np.int64)
        ann_ids = ds.annotations["id"].to_numpy(dtype=np.int64)
        return cls(
            by_id,
            by_name,
            by_vf,
            ann_frame,
            ann_ids,
            dict(zip(ann_ids.tolist(), range(len(ann_ids)), strict=True)),
        )

    def frame_of(self, rec: dict) -> int | None:
        """The frame a record names (``image_id``, ``file_name``, ``video`` + ``frame_index``
        or ``ann_id``), or None when it names none of the dataset's frames.
        """
        if not isinstance(rec, dict):
            return None
        iid = rec.get("image_id")
        if isinstance(iid, int) and iid in self.by_image_id:
            return self.by_image_id[iid]
        fn = rec.get("file_name")
        if isinstance(fn, str) and fn in self.by_file_name:
            return self.by_file_name[fn]
        video, fidx = rec.get("video"), rec.get("frame_index")
        if video is not None and isinstance(fidx, int | float) and np.isfinite(fidx):
            t = self.by_video_frame.get((video, int(fidx)))
            if t is None and isinstance(video, str):
                t = self.by_video_frame.get((Path(video).stem, int(fidx)))
            if t is not None:
                return t
        row = self.ann_row(rec.get("ann_id"))
        return None if row is None else int(self.ann_frame[row])

    def ann_row(self, ann_id: Any) -> int | None:
        if isinstance(ann_id, int) and not isinstance(ann_id, bool):
            return self._ann_row.get(ann_id)
        return None


def read_json(path: Path) -> Any:
    """Parse a JSON file; None (with a warning) when it is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        warnings.warn(f"{path}: ignored, not readable JSON ({exc}).", stacklevel=2)
        return None


def _entries(doc: Any, key: str) -> list[dict]:
    if isinstance(doc, dict):
        doc = doc.get(key)
    if not isinstance(doc, list):
        return []
    return [e for e in doc if isinstance(e, dict)]


def keypoint_indices(value: Any) -> list[int]:
    """Keypoint names or indices (list, or a comma-separated string) -> valid indices."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [v for v in value.split(",") if v]
    if not isinstance(value, list | tuple):
        value = [value]
    out = []
    for v in value:
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < layout.NUM_KEYPOINTS:
            out.append(v)
        elif isinstance(v, str) and v in layout.KEYPOINT_NAMES:
            out.append(layout.KEYPOINT_NAMES.index(v))
    return out


@dataclass
class Proposal:
    """A fix proposed by ``toolkit validate`` for some keypoints of one annotation.

    Attributes:
        row: The annotation row.
        idx: ``(k,)`` keypoint indices.
        xy: ``(k, 2)`` proposed ``x, y`` in image pixels.
        method: How it was found (as the file says).
        confidence: The file's confidence in 0..1 (NaN when absent).
        code: The code of the finding it came with.
    """

    row: int
    idx: np.ndarray
    xy: np.ndarray
    method: str
    confidence: float
    code: str


def parse_proposal(rec: dict, row: int | None) -> Proposal | None:
    """The ``proposal`` of a finding record, or None when it has none or it is malformed."""
    prop = rec.get("proposal")
    if prop is None or row is None:
        return None
    pts = prop.get("keypoints") if isinstance(prop, dict) else None
    if not isinstance(pts, list) or not pts:
        return None
    idx, xy = [], []
    for p in pts:
        if not (isinstance(p, list | tuple) and len(p) == 3):
            return None
        k, x, y = p
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < layout.NUM_KEYPOINTS:
            return None
        if not all(isinstance(v, int | float) and np.isfinite(v) for v in (x, y)):
            return None
        idx.append(k)
        xy.append((float(x), float(y)))
    conf = prop.get("confidence")
    return Proposal(
        row=int(row),
        idx=np.asarray(idx, np.int64),
        xy=np.asarray(xy, np.float64),
        method=str(prop.get("method", "?")),
        confidence=float(conf) if isinstance(conf, int | float) else float("nan"),
        code=str(rec.get("code", "finding")),
    )


@dataclass
class Findings:
    """The validate findings of one dataset, grouped by frame.

    Attributes:
        by_frame: frame -> list of finding dicts (as stored, plus ``_row`` = the annotation row
            or None).
        flagged: ``(T,)`` bool, frames with an ``error`` or ``warning`` finding.
        point_flags: ``(N, 19)`` bool, keypoints named by such a finding.
        source: The file they came from (None when there was none).
        proposals: frame -> the fixes proposed for it (:class:`Proposal`).
    """

    by_frame: dict[int, list[dict]]
    flagged: np.ndarray
    point_flags: np.ndarray
    source: Path | None = None
    proposals: dict[int, list[Proposal]] = field(default_factory=dict)

    @classmethod
    def empty(cls, n_frames: int, n_ann: int) -> Findings:
        return cls({}, np.zeros(n_frames, bool), np.zeros((n_ann, layout.NUM_KEYPOINTS), bool))

    @classmethod
    def load(cls, ds, lookup: FrameLookup, path: str | Path | None = None) -> Findings:
        """Read ``path`` (default ``DATASET/validation.json``); empty when there is none."""
        n_frames, n_ann = len(ds.images), len(ds)
        if path is None:
            if ds.path is None:
                return cls.empty(n_frames, n_ann)
            path = Path(ds.path) / FINDINGS_FILE
        path = Path(path)
        out = cls.empty(n_frames, n_ann)
        doc = read_json(path)
        if doc is None:
            return out
        out.source = path
        bad = 0
        for rec in _entries(doc, "findings"):
            t = lookup.frame_of(rec)
            if t is None:
                continue  # data-set level, or a frame this dataset does not have
            row = lookup.ann_row(rec.get("ann_id"))
            if row is None:  # no ann_id: the frame's only annotation, if it has one
                rows = np.flatnonzero(lookup.ann_frame == t)
                row = int(rows[0]) if len(rows) == 1 else None
            out.by_frame.setdefault(t, []).append({**rec, "_row": row})
            if rec.get("proposal") is not None:
                prop = parse_proposal(rec, row)
                if prop is None:
                    bad += 1
                else:
                    out.proposals.setdefault(t, []).append(prop)
            if str(rec.get("severity", "warning")) in FLAG_SEVERITIES:
                out.flagged[t] = True
                kps = keypoint_indices(rec.get("keypoints"))
                if kps:
                    rows = [row] if row is not None else np.flatnonzero(lookup.ann_frame == t)
                    out.point_flags[np.ix_(np.asarray(rows, int), kps)] = True
        if bad:
            warnings.warn(
                f"{path}: ignored {bad} malformed 'proposal' field(s); expected "
                "{'keypoints': [[kp_index, x, y], ...], 'method': ..., 'confidence': ...} "
                "with an ann_id naming an annotation.",
                stacklevel=2,
            )
        return out


def describe(rec: dict) -> str:
    """One line for a finding: ``code: value (threshold) [severity] keypoints``."""
    parts = [str(rec.get("code", "finding"))]
    value, thr = rec.get("value"), rec.get("threshold")
    if isinstance(value, int | float):
        parts.append(f"= {value:.3g}")
    if isinstance(thr, int | float):
        parts.append(f"(threshold {thr:.3g})")
    parts.append(f"[{rec.get('severity', '?')}]")
    kps = rec.get("keypoints")
    if kps:
        parts.append(",".join(kps) if isinstance(kps, list) else str(kps))
    return " ".join(parts)
