"""The ``validate`` findings of a dataset, by viewer frame, and their proposed fixes.

The viewer does not run any check itself: it reads what ``toolkit validate`` stored in
``DATASET/validation.json`` (``{"findings": [{code, severity, file_name | video + frame_index,
ann_id, keypoints, value, threshold, message, proposal?}, ...]}``) through the suite's one reader
of that file, :func:`toolkit.report.read_findings_file` (a missing or unreadable file means "no
findings"), and maps each entry onto a frame of the viewer with :class:`toolkit.locate.Locator`
(the suite's one "record -> frame / annotation" lookup; a viewer frame is a row of
``ds.images``). A malformed ``proposal`` is ignored
(with one warning) instead of failing.

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

from toolkit import layout
from toolkit.locate import Locator
from toolkit.report import read_findings_file

#: Severities that make a frame "flagged" (``info`` findings are listed but do not flag).
FLAG_SEVERITIES = ("error", "warning")


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
        """No findings, for ``n_frames`` frames and ``n_ann`` annotations."""
        return cls({}, np.zeros(n_frames, bool), np.zeros((n_ann, layout.NUM_KEYPOINTS), bool))

    @classmethod
    def load(cls, ds, lookup: Locator) -> Findings:
        """The dataset's ``validation.json`` findings by frame; empty when there is none."""
        out = cls.empty(len(ds.images), len(ds))
        if ds.path is None:
            return out
        records, path = read_findings_file(ds.path)
        out.source = path
        bad = 0
        for rec in records:
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
