"""The editing session behind the viewer: frames, flags, edits, undo/redo and saving.

No Qt and no napari here, so every rule (what is flagged, what an edit writes, how undo restores
provenance, what a save conflict does) is testable on its own. :mod:`viewer.app` connects it to
the layers.

Every edit goes through :meth:`Dataset.set_points` / :meth:`Dataset.set_image_field`, which
append the edit to ``journal.jsonl`` and fsync it before returning: when a method here returns,
the edit survives a crash. :meth:`EditSession.save` folds the journal into ``dataset.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import layout
from toolkit.dataset import Dataset
from viewer.findings import Findings, FrameLookup
from viewer.review import ReviewList

STICK = np.array([layout.GRIP, layout.TIP])


@dataclass
class PointsChange:
    """Keypoints of one annotation before and after an edit.

    Attributes:
        row: Annotation row.
        idx: ``(k,)`` keypoint indices.
        before: ``(k, 3)`` x, y, v before.
        before_src: ``(k,)`` provenance codes before.
        after: ``(k, 3)`` after.
        after_src: ``(k,)`` provenance codes after.
    """

    row: int
    idx: np.ndarray
    before: np.ndarray
    before_src: np.ndarray
    after: np.ndarray
    after_src: np.ndarray


@dataclass
class FieldChange:
    """An image field before and after an edit."""

    frame: int
    name: str
    before: Any
    after: Any


@dataclass
class Edit:
    """One undoable step (several changes applied together).

    Attributes:
        frame: The frame it happened on (undo and redo go back there).
        label: What it did, for the status line.
        changes: The changes, applied in order (undone in reverse).
    """

    frame: int
    label: str
    changes: list[PointsChange | FieldChange] = field(default_factory=list)


class EditSession:
    """A dataset opened for review.

    Args:
        ds: A dataset loaded from a directory (edits are journalled there).
        queue: A review-queue file, or None to list the flagged frames instead.

    Raises:
        ValueError: The dataset has no images.

    Attributes:
        ds: The dataset.
        lookup: Frame lookups (frame ``t`` = ``ds.images`` row ``t``).
        findings: The validate findings, by frame.
        review: The review list shown in the dock.
        n_frames: Number of frames.
        unsaved: Edits journalled since the last save (replayed ones included).
        conflict: The message of the last refused save, None when saving is possible.
    """

    def __init__(self, ds: Dataset, queue: str | Path | None = None):
        if not len(ds.images):
            raise ValueError(f"Expected a dataset with images to review, but {ds.path} has none.")
        self.ds = ds
        self.lookup = FrameLookup.build(ds)
        self.n_frames = len(ds.images)
        ann_frame = self.lookup.ann_frame
        order = np.argsort(ann_frame, kind="stable")
        self._ann_order = order
        self._ann_start = np.searchsorted(ann_frame[order], np.arange(self.n_frames + 1))
        self.findings = Findings.load(ds, self.lookup)
        if queue is not None:
            self.review = ReviewList.from_queue(queue, self.lookup)
        else:
            self.review = ReviewList.from_findings(
                self.findings, self._review_done, self._set_review_done
            )
        self._undo: list[Edit] = []
        self._redo: list[Edit] = []
        self.unsaved = ds.pending_edits()
        self.conflict: str | None = None
        self.stances = list(ds.stances)  # computed once: sorting all labels per frame is slow

    @classmethod
    def open(cls, path: str | Path, queue: str | Path | None = None) -> EditSession:
        """Load ``path`` (replaying an unfolded journal) and open it for review."""
        return cls(Dataset.load(path), queue)

    # ------------------------------------------------------------------ frames and flags
    def ann_rows(self, t: int) -> np.ndarray:
        """Annotation rows of frame ``t`` (dataset order)."""
        return self._ann_order[self._ann_start[t] : self._ann_start[t + 1]]

    def image_id(self, t: int) -> int:
        return int(self.ds.images["id"].iat[t])

    def frame_name(self, t: int) -> str:
        return str(self.ds.images["file_name"].iat[t])

    def stance(self, t: int) -> str | None:
        v = self.ds.images["stance"].iat[t]
        return None if v is None or v != v else str(v)

    def corrected_frames(self) -> np.ndarray:
        """``(T,)`` bool: frames with an automatic correction not yet accepted or edited."""
        out = np.zeros(self.n_frames, bool)
        pending = (self.ds.source == layout.CORRECTED).any(1)
        frames = self.lookup.ann_frame[pending]
        out[frames[frames >= 0]] = True
        return out

    def flagged_frames(self) -> np.ndarray:
        """``(T,)`` bool: frames with a finding (error/warning) or a pending correction."""
        return self.findings.flagged | self.corrected_frames()

    def point_flags(self, t: int) -> np.ndarray:
        """``(A, 19)`` bool: the frame's points named by a finding."""
        return self.findings.point_flags[self.ann_rows(t)]

    def frame_findings(self, t: int) -> list[dict]:
        """The frame's findings, plus a line per annotation with a pending correction."""
        out = list(self.findings.by_frame.get(t, []))
        for row in self.ann_rows(t):
            pts = np.flatnonzero(self.ds.source[row] == layout.CORRECTED)
            if len(pts):
                out.append(
                    {
                        "code": "corrected",
                        "severity": "info",
                        "message": "automatic correction to review: Enter accepts it",
                        "keypoints": [layout.KEYPOINT_NAMES[k] for k in pts],
                        "_row": int(row),
                    }
                )
        return out

    def next_flagged(self, t: int, step: int = 1) -> int | None:
        """The next (``step=1``) or previous (``-1``) flagged frame after ``t``, or None."""
        flagged = np.flatnonzero(self.flagged_frames())
        if step > 0:
            later = flagged[flagged > t]
            return int(later[0]) if len(later) else None
        earlier = flagged[flagged < t]
        return int(earlier[-1]) if len(earlier) else None

    def first_flagged(self) -> int:
        flagged = np.flatnonzero(self.flagged_frames())
        return int(flagged[0]) if len(flagged) else 0

    def predictions(self, t: int) -> list[str]:
        """One line per annotation of the frame with model ``predictions``."""
        out = []
        preds = self.ds.annotations["predictions"].to_numpy()
        for row in self.ann_rows(t):
            p = preds[row]
            if p is None or (isinstance(p, float) and p != p):
                continue
            out.append(describe_prediction(p))
        return out

    # ------------------------------------------------------------------ edits
    def set_points(
        self, t: int, row: int, idx, xyv: np.ndarray, label: str, source: str = "human"
    ) -> Edit | None:
        """Set keypoints ``idx`` of annotation ``row`` (journalled); returns the undo step."""
        return self.apply_points(t, label, [(row, idx, xyv)], source)

    def apply_points(
        self, t: int, label: str, parts: list[tuple[int, Any, np.ndarray]], source: str = "human"
    ) -> Edit | None:
        """Several point changes as one undoable step; unchanged points are skipped."""
        edit = Edit(t, label)
        code = layout.SOURCE_CODE[source]
        for row, idx, xyv in parts:
            idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
            after = np.asarray(xyv, dtype=np.float64).reshape(len(idx), 3).copy()
            missing = (after[:, 2] <= 0) | ~np.isfinite(after[:, :2]).all(1)
            after[missing, :2] = np.nan
            after[missing, 2] = 0
            before = self.ds.keypoints[row, idx].copy()
            before_src = self.ds.source[row, idx].copy()
            same = (
                np.isclose(before, after, atol=1e-6) | (np.isnan(before) & np.isnan(after))
            ).all(1) & (before_src == code)
            if same.all():
                continue
            idx, after, before, before_src = (
                idx[~same],
                after[~same],
                before[~same],
                before_src[~same],
            )
            self._reopen_journal()
            self.ds.set_points(self._ann_id(row), idx, after, source=source)
            self.unsaved += 1
            edit.changes.append(
                PointsChange(
                    int(row), idx, before, before_src, after, np.full(len(idx), code, np.uint8)
                )
            )
        return self._push(edit)

    def move_points(
        self, t: int, row: int, idx, xy: np.ndarray, label: str = "move"
    ) -> Edit | None:
        """Move points to ``xy`` (``(k, 2)``), keeping their visibility flag (2 if missing)."""
        idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        v = self.ds.keypoints[row, idx, 2]
        xyv = np.column_stack([np.asarray(xy, float).reshape(-1, 2), np.where(v > 0, v, 2)])
        return self.set_points(t, row, idx, xyv, label)

    def mark_missing(self, t: int, pairs: list[tuple[int, int]]) -> Edit | None:
        """Mark ``(row, keypoint)`` pairs missing (x = y = NaN, v = 0)."""
        parts = [(row, [k], np.array([[np.nan, np.nan, 0.0]])) for row, k in pairs]
        names = ", ".join(layout.KEYPOINT_NAMES[k] for _, k in pairs)
        return self.apply_points(t, f"marked {names} missing", parts)

    def accept_correction(self, t: int) -> Edit | None:
        """Keep the automatic correction of frame ``t``: its ``corrected`` points become
        ``human`` (same coordinates), so they count as reviewed."""
        parts = []
        for row in self.ann_rows(t):
            idx = np.flatnonzero(self.ds.source[row] == layout.CORRECTED)
            if len(idx):
                parts.append((int(row), idx, self.ds.keypoints[row, idx]))
        return self.apply_points(t, "accepted the automatic correction", parts)

    def revert_stick(self, t: int) -> Edit | None:
        """Put grip and tip back where the import had them (a human decision: ``human``)."""
        parts = [(int(row), STICK, self.ds.keypoints_raw[row, STICK]) for row in self.ann_rows(t)]
        return self.apply_points(t, "reverted the stick to the import", parts)

    def set_stance(self, t: int, value: str | None) -> Edit | None:
        """Set the frame's stance label (None clears it)."""
        before = self.stance(t)
        value = value or None
        if before == value:
            return None
        self._reopen_journal()
        self.ds.set_image_field(self.image_id(t), "stance", value)
        self.unsaved += 1
        if value is not None and value not in self.stances:
            self.stances.append(value)
        return self._push(Edit(t, f"stance = {value}", [FieldChange(t, "stance", before, value)]))

    def cycle_stance(self, t: int, step: int) -> Edit | None:
        """Step the frame's stance through ``ds.stances`` (wrapping)."""
        names = self.stances
        if not names:
            return None
        cur = self.stance(t)
        i = names.index(cur) + step if cur in names else (0 if step > 0 else -1)
        return self.set_stance(t, names[i % len(names)])

    def _reopen_journal(self) -> None:
        """Append to the journal by path, not through a handle kept open: another program
        that saved the dataset replaced ``journal.jsonl`` (atomic rename), and an old handle
        would write into the unlinked file, losing the edit."""
        self.ds.close()

    def _push(self, edit: Edit) -> Edit | None:
        if not edit.changes:
            return None
        self._undo.append(edit)
        self._redo.clear()
        return edit

    def _ann_id(self, row: int) -> int:
        return int(self.lookup.ann_ids[row])

    # ------------------------------------------------------------------ undo / redo
    def undo(self) -> Edit | None:
        """Undo the last step (restoring coordinates and provenance); returns it."""
        if not self._undo:
            return None
        edit = self._undo.pop()
        for ch in reversed(edit.changes):
            self._restore(ch, before=True)
        self._redo.append(edit)
        return edit

    def redo(self) -> Edit | None:
        if not self._redo:
            return None
        edit = self._redo.pop()
        for ch in edit.changes:
            self._restore(ch, before=False)
        self._undo.append(edit)
        return edit

    def _restore(self, ch: PointsChange | FieldChange, before: bool) -> None:
        self._reopen_journal()
        if isinstance(ch, FieldChange):
            self.ds.set_image_field(
                self.image_id(ch.frame), ch.name, ch.before if before else ch.after
            )
        else:
            vals, src = (ch.before, ch.before_src) if before else (ch.after, ch.after_src)
            for code in np.unique(src):  # set_points takes one provenance per call
                sel = src == code
                self.ds.set_points(
                    self._ann_id(ch.row), ch.idx[sel], vals[sel], source=layout.SOURCES[int(code)]
                )
        self.unsaved += 1

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    # ------------------------------------------------------------------ review list
    def _review_done(self, t: int) -> bool:
        extra = self.ds.images["extra"].iat[t]
        return bool(extra and extra.get("review_done"))

    def _set_review_done(self, t: int, done: bool) -> None:
        self._reopen_journal()
        self.ds.set_image_field(self.image_id(t), "review_done", bool(done))
        self.unsaved += 1

    # ------------------------------------------------------------------ saving
    def save(self, force: bool = False) -> tuple[bool, str]:
        """Fold the journal into ``dataset.json``.

        Returns:
            ``(ok, message)``. A dataset changed on disk since it was loaded is not
            overwritten (unless ``force``): ``ok`` is False and :attr:`conflict` holds why.
        """
        try:
            self.ds.save(force=force)
        except RuntimeError as exc:
            self.conflict = str(exc)
            return False, f"NOT SAVED: {exc}"
        except OSError as exc:
            return False, f"NOT SAVED: {exc} (edits are safe in the journal)"
        self.conflict = None
        self.unsaved = 0
        return True, f"saved {self.ds.path / 'dataset.json'}"

    def reload(self) -> None:
        """Re-read the dataset from disk, replaying this session's journalled edits onto it
        (the merge after a save conflict). The undo history is dropped."""
        path = self.ds.path
        self.ds.close()
        self.__init__(Dataset.load(path), self.review.path)


def describe_prediction(p: Any) -> str:
    """A model prediction record -> ``label (confidence)``, read defensively."""
    if not isinstance(p, dict):
        return str(p)[:80]
    label = next((p[k] for k in ("stance", "label", "class", "name", "pred") if k in p), None)
    conf = next((p[k] for k in ("confidence", "score", "prob", "p") if k in p), None)
    if isinstance(label, dict):  # e.g. {"stance": {"name": ..., "confidence": ...}}
        return describe_prediction(label)
    if label is None:
        probs = p.get("probs") or p.get("probabilities")
        if isinstance(probs, dict) and probs:
            label, conf = max(probs.items(), key=lambda kv: kv[1])
    if label is None:
        return ", ".join(f"{k}: {v}" for k, v in list(p.items())[:4])[:100]
    return f"{label} ({conf:.2f})" if isinstance(conf, int | float) else str(label)


def rigid_adjust(old: np.ndarray, new: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """Keep the stick rigid: a tip moved alone rotates about the grip at the old length; a grip
    moved alone carries the tip with it.

    Args:
        old: ``(19, 2)`` positions before the move.
        new: ``(19, 2)`` positions after it.
        moved: ``(19,)`` bool, which points the user moved.

    Returns:
        ``(19, 2)`` adjusted positions (``new`` unchanged when the stick was incomplete).
    """
    out = np.array(new, dtype=np.float64, copy=True)
    g, tip = layout.GRIP, layout.TIP
    if not (np.isfinite(old[g]).all() and np.isfinite(old[tip]).all()):
        return out
    if moved[tip] and not moved[g]:
        length = float(np.linalg.norm(old[tip] - old[g]))
        d = out[tip] - old[g]
        n = float(np.linalg.norm(d))
        out[tip] = old[g] + d / n * length if n > 1e-9 else old[tip]
    elif moved[g] and not moved[tip]:
        out[tip] = old[tip] + (out[g] - old[g])
    return out
