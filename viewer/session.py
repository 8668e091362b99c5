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
import pandas as pd

from toolkit import geometry, layout
from toolkit.dataset import Dataset
from toolkit.errors import SaveConflictError
from toolkit.locate import Locator
from viewer.findings import Findings, Proposal
from viewer.interpolate import (
    WRISTS,
    bent_slope,
    carry_stick,
    interpolate_stick,
    key_slopes,
    smooth_track,
    stick_angle,
    wrap_angle,
)
from viewer.review import ReviewList

STICK = np.array([layout.GRIP, layout.TIP])
#: Provenance of points waiting for a person to accept them (Enter, A, Shift-A).
PENDING_SOURCES = (layout.CORRECTED, layout.INTERPOLATED)
#: Provenance a validate proposal never overwrites (a person's work).
PERSON_SOURCES = (layout.HUMAN, layout.INTERPOLATED)
#: "Copy the previous stick" looks back at most this many frames for one of the same person.
COPY_LOOKBACK = 10
#: Stick length between keyframes: interpolated, or the subject's estimate.
LENGTH_MODES = ("interpolate", "subject")


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
        self.lookup = Locator.build(ds)
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
        self.track, self.frame_time = _tracks(ds, self.lookup)
        #: track code -> (frame, row) of the keyframe waiting for its partner (key I).
        self.pending_key: dict[int, tuple[int, int]] = {}
        #: (track code, first time, last time) of each interpolation made (for A).
        self.interp_spans: list[tuple[int, float, float]] = []
        self.length_mode = "interpolate"

    @classmethod
    def open(cls, path: str | Path, queue: str | Path | None = None) -> EditSession:
        """Load ``path`` (replaying an unfolded journal) and open it for review."""
        return cls(Dataset.load(path), queue)

    # ------------------------------------------------------------------ frames and flags
    def ann_rows(self, t: int) -> np.ndarray:
        """Annotation rows of frame ``t`` (dataset order)."""
        return self._ann_order[self._ann_start[t] : self._ann_start[t + 1]]

    def image_id(self, t: int) -> int:
        """The image id of frame ``t``."""
        return int(self.ds.images["id"].iat[t])

    def frame_name(self, t: int) -> str:
        """The file name of frame ``t`` (virtual for video frames)."""
        return str(self.ds.images["file_name"].iat[t])

    def stance(self, t: int) -> str | None:
        """The stance label of frame ``t``, or None."""
        v = self.ds.images["stance"].iat[t]
        return None if v is None or v != v else str(v)

    def corrected_frames(self) -> np.ndarray:
        """Frames with an automatic correction or an interpolated stick not yet accepted.

        Returns ``(T,)`` bool; edited frames are not pending either.
        """
        out = np.zeros(self.n_frames, bool)
        pending = np.isin(self.ds.source, PENDING_SOURCES).any(1)
        frames = self.lookup.ann_frame[pending]
        out[frames[frames >= 0]] = True
        return out

    def proposal_frames(self) -> np.ndarray:
        """``(T,)`` bool: frames with a validate proposal that can still be applied."""
        out = np.zeros(self.n_frames, bool)
        for t in self.findings.proposals:
            out[t] = bool(self._open_proposals(t))
        return out

    def pending_frames(self) -> np.ndarray:
        """``(T,)`` bool: frames with anything an accept would change."""
        return self.corrected_frames() | self.proposal_frames()

    def _open_proposals(self, t: int) -> list[Proposal]:
        """Frame ``t``'s proposals whose points no person has set since.

        See :meth:`accept_frames`.
        """
        out = []
        for p in self.findings.proposals.get(t, []):
            if (
                p.row < len(self.ds.source)
                and not np.isin(self.ds.source[p.row, p.idx], PERSON_SOURCES).all()
            ):
                out.append(p)
        return out

    def flagged_frames(self) -> np.ndarray:
        """``(T,)`` bool: frames with a finding (error/warning) or a pending correction."""
        return self.findings.flagged | self.corrected_frames()

    def is_flagged(self, t: int) -> bool:
        """Whether frame ``t`` is flagged.

        This is :meth:`flagged_frames` for one frame, without scanning the whole dataset on every
        frame step.
        """
        if self.findings.flagged[t]:
            return True
        return bool(np.isin(self.ds.source[self.ann_rows(t)], PENDING_SOURCES).any())

    def point_flags(self, t: int) -> np.ndarray:
        """``(A, 19)`` bool: the frame's points named by a finding."""
        return self.findings.point_flags[self.ann_rows(t)]

    def frame_findings(self, t: int) -> list[dict]:
        """The frame's findings, plus a line per annotation with a pending correction."""
        out = list(self.findings.by_frame.get(t, []))
        for row in self.ann_rows(t):
            for code, name, what in (
                (layout.CORRECTED, "corrected", "automatic correction to review"),
                (layout.INTERPOLATED, "interpolated", "stick interpolated between keyframes"),
            ):
                pts = np.flatnonzero(self.ds.source[row] == code)
                if len(pts):
                    out.append(
                        {
                            "code": name,
                            "severity": "info",
                            "message": f"{what}: Enter accepts it, A the whole range",
                            "keypoints": [layout.KEYPOINT_NAMES[k] for k in pts],
                            "_row": int(row),
                        }
                    )
        for p in self._open_proposals(t):
            out.append(
                {
                    "code": "proposal",
                    "severity": "info",
                    "message": f"{p.code}: fix proposed by {p.method}; Enter applies it",
                    "keypoints": [layout.KEYPOINT_NAMES[k] for k in p.idx],
                    "value": p.confidence if np.isfinite(p.confidence) else None,
                    "_row": p.row,
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
        """The first flagged frame, or 0 when none is flagged."""
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
        self, t: int, label: str, parts: list[tuple], source: str = "human"
    ) -> Edit | None:
        """Several point changes as one undoable step; unchanged points are skipped.

        Args:
            t: The frame the step belongs to (undo goes back there).
            label: What it did.
            parts: ``(row, idx, xyv)`` or ``(row, idx, xyv, source)`` per annotation.
            source: Provenance of parts that name none.
        """
        edit = Edit(t, label)
        for part in parts:
            row, idx, xyv = part[:3]
            code = layout.SOURCE_CODE[part[3] if len(part) > 3 else source]
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
            self.ds.set_points(self._ann_id(row), idx, after, source=layout.SOURCES[code])
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
        """Accept what frame ``t`` proposes (see :meth:`accept_frames`)."""
        return self.accept_frames([t], t, "accepted the proposed fix")

    def accept_frames(self, frames, t: int, label: str) -> Edit | None:
        """Accept every proposed fix on ``frames``, as one undoable step.

        * ``corrected`` and ``interpolated`` points become ``human`` (same coordinates), so they
          count as reviewed;
        * the validate proposals of the frames' findings are applied as ``human`` edits, except
          on points a person set since (``human`` or ``interpolated``): a proposal never
          overwrites a person's work.

        Args:
            frames: The frames.
            t: The frame the step belongs to (undo goes back there).
            label: What it did, for the status line.
        """
        frames = np.unique(np.asarray(list(frames), dtype=np.int64))
        frames = frames[(frames >= 0) & (frames < self.n_frames)]
        if not len(frames):
            return None
        # Pending points of all the frames at once (vectorised), then the few proposals.
        want: dict[int, dict[int, np.ndarray]] = {}
        rows = np.concatenate([self.ann_rows(int(f)) for f in frames])
        if len(rows):
            pend = np.isin(self.ds.source[rows], PENDING_SOURCES)
            for a, k in zip(*np.nonzero(pend), strict=True):
                row = int(rows[a])
                want.setdefault(row, {})[int(k)] = self.ds.keypoints[row, k]
        for f in frames.tolist():
            for p in self._open_proposals(f):
                src = self.ds.source[p.row, p.idx]
                for k, xy, s in zip(p.idx.tolist(), p.xy, src, strict=True):
                    if s in PERSON_SOURCES:
                        continue
                    v = self.ds.keypoints[p.row, k, 2]
                    want.setdefault(p.row, {})[k] = np.array([xy[0], xy[1], v if v > 0 else 2])
        parts = []
        for row, pts in want.items():
            idx = np.array(sorted(pts), np.int64)
            parts.append((row, idx, np.stack([pts[k] for k in idx.tolist()])))
        n = len({int(self.lookup.ann_frame[r]) for r in want})
        return self.apply_points(t, f"{label} ({n} frame{'s' if n != 1 else ''})", parts)

    def accept_range(self, t: int) -> Edit | None:
        """Accept the proposed fixes of the range around ``t``.

        The range is the frames of every interpolation (between its outer keyframes, keyframes added
        inside it included) that ``t`` lies in, else the run of pending frames around ``t``
        (:meth:`pending_run`).
        """
        run = self.interpolation_range(t)
        if not len(run):
            run = self.pending_run(t)
        if not len(run):
            return None
        return self.accept_frames(run, t, "accepted the range")

    def interpolation_range(self, t: int) -> np.ndarray:
        """Frames with pending points inside the interpolations that frame ``t`` lies in.

        Outer keyframes included; empty when it lies in none.
        """
        pending = self.corrected_frames()
        out: set[int] = set()
        for row in self.ann_rows(t):
            code = int(self.track[row])
            now = self.frame_time[self.lookup.ann_frame[row]]
            spans = [(a, b) for c, a, b in self.interp_spans if c == code and a <= now <= b]
            if not spans:
                continue
            rows = self.track_rows(code)
            times = self.frame_time[self.lookup.ann_frame[rows]]
            inside = np.zeros(len(rows), bool)
            for a, b in spans:
                inside |= (times >= a) & (times <= b)
            frames = self.lookup.ann_frame[rows[inside]]
            out.update(int(f) for f in frames if pending[f])
        return np.array(sorted(out), np.int64)

    def pending_run(self, t: int) -> np.ndarray:
        """The consecutive frames of ``t``'s video around ``t`` that have something to accept.

        When ``t`` itself has nothing pending (e.g. the second keyframe of an interpolation),
        the runs just before and just after it are taken. Frames outside a video form no run
        (just ``t``, if pending).
        """
        pending = self.pending_frames()
        vid = self._frame_video()
        if not np.isfinite(vid[t]):
            return np.array([t] if pending[t] else [], np.int64)
        same = np.flatnonzero(vid == vid[t])
        order = same[np.argsort(self.frame_time[same], kind="stable")]
        pos = int(np.flatnonzero(order == t)[0])
        flags = pending[order]
        lo = hi = pos
        if flags[pos]:
            while lo > 0 and flags[lo - 1]:
                lo -= 1
            while hi < len(order) - 1 and flags[hi + 1]:
                hi += 1
            return order[lo : hi + 1]
        out = []
        j = pos - 1
        while j >= 0 and flags[j]:
            out.append(order[j])
            j -= 1
        j = pos + 1
        while j < len(order) and flags[j]:
            out.append(order[j])
            j += 1
        return np.sort(np.asarray(out, np.int64))

    def _frame_video(self) -> np.ndarray:
        return self.ds.images["video_id"].to_numpy(dtype=np.float64, na_value=np.nan)

    # ------------------------------------------------------------------ keyframes
    def weapon_side(self, row: int) -> int:
        """The weapon side of annotation ``row``.

        It is :func:`toolkit.geometry.weapon_side` with the row's track (person in its video) as the
        group, so a row without a grip takes the person's usual hand.
        """
        rows = self.track_rows(int(self.track[row]))
        if not len(rows):
            rows = np.array([row])
        side = geometry.weapon_side(self.ds.keypoints[rows], groups=self.track[rows])
        return int(side[np.flatnonzero(rows == row)[0]])

    def track_rows(self, code: int) -> np.ndarray:
        """Rows of track ``code`` (one person in one video) in time order; empty for -1."""
        if code < 0:
            return np.zeros(0, np.int64)
        rows = np.flatnonzero(self.track == code)
        times = self.frame_time[self.lookup.ann_frame[rows]]
        return rows[np.argsort(times, kind="stable")]

    def set_keyframe(self, t: int, row: int) -> tuple[Edit | None, str]:
        """Key I: make ``row``'s stick on frame ``t`` a keyframe.

        The second keyframe of the same person fills the frames between the two
        (:meth:`interpolate`).

        The stick as it is becomes ``human``. Pressing it again on the waiting keyframe's frame
        cancels the wait. On a frame inside an interpolated stretch (e.g. after dragging a tip
        the interpolation got wrong) it adds a keyframe there and re-fills both sides.

        Returns:
            The undo step (None when nothing changed) and a status message.
        """
        code = int(self.track[row])
        if code < 0:
            return None, "Keyframes work within a video (this frame is a still image)."
        if not np.isfinite(self.ds.keypoints[row, STICK, :2]).all():
            return None, "Set grip and tip on this frame first (G / T, or drag them)."
        waiting = self.pending_key.get(code)
        if waiting is not None and waiting[1] == row:
            del self.pending_key[code]
            return None, f"Keyframe on frame {t + 1} no longer waits for a partner."
        bounds = self._interpolated_bounds(row) if waiting is None else None
        if bounds is not None:  # a keyframe added inside an interpolation: re-fill both sides
            edit = self.interpolate(bounds[0], bounds[1], t, extra_keys=[row])
            return edit, (edit.label if edit else "Nothing changed") + " (re-filled around it)"
        if waiting is None or not (0 <= waiting[1] < len(self.ds.keypoints)):
            self.pending_key[code] = (t, row)
            edit = self.apply_points(
                t, "keyframe", [(row, STICK, self.ds.keypoints[row, STICK])], "human"
            )
            return edit, (
                f"Keyframe on frame {t + 1}: press I on another frame of this person to fill "
                "the frames between."
            )
        del self.pending_key[code]
        edit = self.interpolate(waiting[1], row, t)
        if edit is None:
            return None, "Nothing to interpolate between these keyframes."
        return edit, edit.label + ": check them, A accepts the range"

    def _interpolated_bounds(self, row: int) -> tuple[int, int] | None:
        """The keyframes around ``row`` when it lies in an interpolated stretch of its track.

        That is: interpolated frames next to it, then keyframes with a whole stick on both sides.
        """
        rows = self.track_rows(int(self.track[row]))
        pos = int(np.flatnonzero(rows == row)[0])
        src = self.ds.source[rows][:, STICK]
        interp = (src == layout.INTERPOLATED).any(1)
        key = (src == layout.HUMAN).all(1) & np.isfinite(self.ds.keypoints[rows][:, STICK, :2]).all(
            (1, 2)
        )
        found, seen_any = [], bool(interp[pos])
        for step in (-1, 1):
            j = pos + step
            while 0 <= j < len(rows) and interp[j]:
                j, seen_any = j + step, True
            if not (0 <= j < len(rows) and key[j]):
                return None
            found.append(int(rows[j]))
        return (found[0], found[1]) if seen_any else None

    def interpolate(
        self,
        row0: int,
        row1: int,
        t: int,
        length: str | None = None,
        extra_keys: list[int] | None = None,
    ) -> Edit | None:
        """Fill the stick of every frame of the same person between two keyframes, as one step.

        The two keyframes' sticks become ``human``; the frames between get an interpolated
        stick (:func:`viewer.interpolate.interpolate_stick`) with provenance ``interpolated``,
        until accepted. A frame between them whose stick a person already set (``human``
        grip or tip) is kept, and acts as a keyframe too when it has both. Frames where the person cannot be told
        apart (two annotations of the track) are skipped.

        Args:
            row0: Annotation row of one keyframe.
            row1: Annotation row of the other (same track).
            t: The frame the undo step belongs to.
            length: ``"interpolate"`` or ``"subject"`` (default: :attr:`length_mode`).
            extra_keys: Rows between them that become keyframes too (their stick as it is).

        Raises:
            ValueError: The rows are not of one track, or ``length`` is unknown.
        """
        length = length or self.length_mode
        if length not in LENGTH_MODES:
            raise ValueError(f"Expected 'length' to be one of {LENGTH_MODES}, but got {length!r}.")
        code = int(self.track[row0])
        if code < 0 or int(self.track[row1]) != code:
            raise ValueError(
                "Expected two keyframes of the same person in one video, but got annotations "
                f"{self._ann_id(row0)} and {self._ann_id(row1)}."
            )
        kp = self.ds.keypoints
        rows = self.track_rows(code)
        times = self.frame_time[self.lookup.ann_frame[rows]]
        ta, tb = sorted(
            (
                self.frame_time[self.lookup.ann_frame[row0]],
                self.frame_time[self.lookup.ann_frame[row1]],
            )
        )
        inside = (times > ta) & (times < tb)
        # Frames with two rows of this track are ambiguous: left alone.
        counts = pd.Series(times[inside]).value_counts()
        ambiguous = set(counts.index[counts.to_numpy() > 1].tolist())
        mids = [r for r, tm in zip(rows[inside], times[inside], strict=True) if tm not in ambiguous]
        mids = np.asarray(mids, np.int64)
        # A frame between whose grip or tip a person set is never touched; with both points
        # there it is a keyframe too.
        human = (self.ds.source[mids][:, STICK] == layout.HUMAN).any(1)
        human |= np.isin(mids, np.asarray(extra_keys or [], np.int64))
        whole = np.isfinite(kp[mids][:, STICK, :2]).all((1, 2))
        keys = sorted(
            {int(row0), int(row1), *mids[human & whole].tolist()},
            key=lambda r: self.frame_time[self.lookup.ann_frame[r]],
        )
        fill = mids[~human]
        side = self._pair_side(keys)
        lengths = self.subject_stick_px(fill) if length == "subject" else None
        ends = [row0, row1, *[r for r in (extra_keys or []) if r in set(mids.tolist())]]
        parts = [(r, STICK, kp[r, STICK].copy(), "human") for r in ends]
        ftimes = self.frame_time[self.lookup.ann_frame[fill]] if len(fill) else np.zeros(0)
        pose = self._smoothed_pose(rows, times, side, np.asarray([*keys, *fill.tolist()]))
        at = pd.Index(rows).get_indexer
        ktimes = self.frame_time[self.lookup.ann_frame[np.asarray(keys)]]
        kangles = stick_angle(kp[np.asarray(keys)])
        outside = stick_angle(kp[rows])
        slopes = key_slopes(
            ktimes,
            kangles,
            (times[times < ktimes[0]], outside[times < ktimes[0]]),
            (times[times > ktimes[-1]], outside[times > ktimes[-1]]),
        )
        for i, (a, b) in enumerate(zip(keys[:-1], keys[1:], strict=True)):
            t0, t1 = ktimes[i], ktimes[i + 1]
            sel = (ftimes > t0) & (ftimes < t1)
            if not sel.any():
                continue
            seg = fill[sel]
            alpha = (ftimes[sel] - t0) / (t1 - t0)
            turn = float(wrap_angle(kangles[i + 1] - kangles[i]))
            bend = (
                bent_slope(slopes[i], t1 - t0, turn),
                bent_slope(slopes[i + 1], t1 - t0, turn),
            )
            out = interpolate_stick(
                pose[at([a])[0]],
                pose[at([b])[0]],
                pose[at(seg)],
                alpha,
                side,
                None if lengths is None else lengths[sel],
                bend,
            )
            for r, gt in zip(seg.tolist(), out, strict=True):
                v = kp[r, STICK, 2]
                xyv = np.column_stack([gt, np.where(v > 0, v, 2)])
                parts.append((r, STICK, xyv, "interpolated"))
        n = len(parts) - len(ends)
        if n <= 0:
            return self.apply_points(t, "keyframes", parts)
        f0, f1 = sorted(int(self.lookup.ann_frame[r]) + 1 for r in (row0, row1))  # as shown
        self.interp_spans.append((code, float(ta), float(tb)))
        return self.apply_points(
            t, f"interpolated the stick on {n} frame{'s' if n != 1 else ''} ({f0}-{f1})", parts
        )

    def _smoothed_pose(
        self, rows: np.ndarray, times: np.ndarray, side: int, at_rows: np.ndarray
    ) -> np.ndarray:
        """``rows``' keypoints with the weapon wrist smoothed over time at ``at_rows``.

        The wrist of each row in ``at_rows`` becomes :func:`viewer.interpolate.smooth_track` of
        the track's wrist (``rows`` at ``times``), where that is known; the grip of an
        interpolated stick follows it.

        Returns:
            ``(len(rows), 19, 3)``, a copy.
        """
        pose = self.ds.keypoints[rows].copy()
        if side not in (0, 1) or not len(at_rows):
            return pose
        w = WRISTS[side]
        pos = pd.Index(rows).get_indexer(at_rows)
        smooth = smooth_track(times, pose[:, w, :2], times[pos])
        ok = np.isfinite(smooth).all(1)
        pose[pos[ok], w, :2] = smooth[ok]
        return pose

    def _pair_side(self, keys: list[int]) -> int:
        """One weapon side for an interpolation: the keyframes' own, when they agree."""
        sides = {self.weapon_side(r) for r in (keys[0], keys[-1])} - {geometry.UNKNOWN}
        return sides.pop() if len(sides) == 1 else geometry.UNKNOWN

    def subject_stick_px(self, rows: np.ndarray) -> np.ndarray:
        """``(len(rows),)`` the subject's estimated stick length in pixels at each row.

        :func:`toolkit.stick.stats.subject_stick_length` (torso sizes, per subject and video,
        robust to drifting labels) over the rows whose stick is not a pending proposal, times
        the row's torso size (:func:`toolkit.geometry.body_scale`). NaN where unknown.
        """
        from toolkit.stick import stats

        rows = np.asarray(rows, np.int64)
        if not len(rows):
            return np.zeros(0)
        kp = self.ds.keypoints
        g_codes, g_labels, _, _ = stats.group_codes(self.ds)
        scale = geometry.body_scale(kp)
        with np.errstate(invalid="ignore", divide="ignore"):
            length = geometry.stick_length(kp) / scale
        usable = np.isfinite(length) & ~np.isin(self.ds.source[:, STICK], PENDING_SOURCES).any(1)
        level = stats.subject_stick_length(
            length, g_labels[g_codes], usable, coded=(g_codes, g_labels)
        )
        return np.asarray(level * scale, np.float64)[rows]

    def copy_previous_stick(self, t: int, row: int) -> tuple[Edit | None, str]:
        """Key C: the same person's stick on the previous frame, carried by the wrist.

        The weapon wrist carries it; it looks at most :data:`COPY_LOOKBACK` frames back; the result
        is a ``human`` edit.
        """
        code = int(self.track[row])
        if code < 0:
            return None, "Copying the stick works within a video (this frame is a still image)."
        rows = self.track_rows(code)
        times = self.frame_time[self.lookup.ann_frame[rows]]
        now = self.frame_time[self.lookup.ann_frame[row]]
        kp = self.ds.keypoints
        ok = (times < now) & (times >= now - COPY_LOOKBACK)
        ok &= np.isfinite(kp[rows][:, STICK, :2]).all((1, 2))
        if not ok.any():
            return None, f"No stick of this person in the {COPY_LOOKBACK} frames before."
        prev = int(rows[np.flatnonzero(ok)[-1]])
        side = self.weapon_side(prev)
        gt = carry_stick(kp[prev], kp[row], side)
        v = kp[row, STICK, 2]
        edit = self.apply_points(
            t,
            "copied the stick from the previous frame",
            [(row, STICK, np.column_stack([gt, np.where(v > 0, v, 2)]))],
        )
        back = int(now - times[np.flatnonzero(ok)[-1]])
        return edit, (
            f"copied the stick from {back} frame{'s' if back != 1 else ''} back"
            if edit is not None
            else "The stick already is where the previous frame's would go."
        )

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
        """Redo the last undone edit (journalled); None when there is none."""
        if not self._redo:
            return None
        edit = self._redo.pop()
        for ch in edit.changes:
            self._restore(ch, before=False)
        self._undo.append(edit)
        return edit

    def _restore(self, ch: PointsChange | FieldChange, before: bool) -> None:
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
        """Whether there is an edit to undo."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """Whether there is an undone edit to redo."""
        return bool(self._redo)

    # ------------------------------------------------------------------ review list
    def _review_done(self, t: int) -> bool:
        extra = self.ds.images["extra"].iat[t]
        return bool(extra and extra.get("review_done"))

    def _set_review_done(self, t: int, done: bool) -> None:
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
        except SaveConflictError as exc:
            self.conflict = str(exc)
            return False, f"NOT SAVED: {exc}"
        except OSError as exc:
            return False, f"NOT SAVED: {exc} (edits are safe in the journal)"
        self.conflict = None
        self.unsaved = 0
        return True, f"saved {self.ds.path / 'dataset.json'}"

    def reload(self) -> None:
        """Re-read the dataset from disk, replaying this session's journalled edits onto it.

        This is the merge after a save conflict. The undo history is dropped.
        """
        path = self.ds.path
        self.__init__(Dataset.load(path), self.review.path)


def _tracks(ds, lookup: Locator) -> tuple[np.ndarray, np.ndarray]:
    """Per annotation row, a track code (one person in one video), and per frame its time.

    A person is the annotation's ``track_id`` when it has one, else the image's ``subject``
    (one person per subject and video), else the video alone (a one-person clip). Annotations of
    frames outside a video get -1 (still images have no neighbours in time).

    Returns:
        ``(N,)`` int track codes and ``(T,)`` float frame times (``frame_index``, NaN for
        still images).
    """
    img = ds.images
    vid = img["video_id"].to_numpy(dtype=np.float64, na_value=np.nan)
    times = img["frame_index"].to_numpy(dtype=np.float64, na_value=np.nan)
    times = np.where(np.isfinite(vid), times, np.nan)
    frame = lookup.ann_frame
    n = len(frame)
    if not n:
        return np.zeros(0, np.int64), times
    ok = frame >= 0
    fr = np.where(ok, frame, 0)
    track = ds.annotations["track_id"].to_numpy(dtype=np.float64, na_value=np.nan)
    v_codes, _ = pd.factorize(vid[fr], use_na_sentinel=True)
    s_codes, _ = pd.factorize(img["subject"].to_numpy(dtype=object)[fr], use_na_sentinel=True)
    t_codes, _ = pd.factorize(track, use_na_sentinel=True)
    # who: the track when known (>= 1), else the subject (<= -2), else nobody in particular (-1)
    who = np.where(t_codes >= 0, t_codes + 1, np.where(s_codes >= 0, -2 - s_codes, -1))
    codes, _ = pd.factorize(pd.MultiIndex.from_arrays([v_codes, who]))
    codes = np.asarray(codes, np.int64)
    codes[~ok | (v_codes < 0) | ~np.isfinite(times[fr])] = -1
    return codes, times


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
    """Keep the stick rigid.

    A tip moved alone rotates about the grip at the old length; a grip moved alone carries the tip
    with it.

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
