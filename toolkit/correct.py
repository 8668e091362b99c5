"""Stick correction that first does no harm.

Two methods, both vectorised over all annotations:

``rigid`` (default)
    Runs the one stick judgement, :func:`toolkit.stick.assess` (shared with ``toolkit
    validate``), and applies only its **decisive** fixes:

    * **time** (video): a tip that leaves its track's course (Hampel outliers of the stick's
      angle and length, with floors calibrated on the track itself) is put back on the course,
      unless the image confirms the label (a fast swing);
    * **impossible geometry**: a stick longer than the subject's stick can look, by more than
      the data set's own spread allows, is pulled in along its direction (to where the image
      shows the line end, when it does; else to the subject's stick length); a grip past
      twice the data set's grip tolerance of a confident, plausible wrist goes back to the
      wrist at the data set's usual offset, where the stick from there to the labelled tip is
      no longer than the subject's;
    * **swaps** seen both in the geometry (the tip at a confident wrist, the grip far from both)
      and in the image (a line between them);
    * **short sticks** on a still seen both in the geometry (shorter than the subject's own
      stick beyond the data set's tolerance) and in the image (the line runs on past the tip):
      the tip moves out to the line's end, never past the subject's stick.

    Everything else (a grip off within that tolerance, an unusual angle, a line in the image
    elsewhere, a missing tip) is left as it is and reported as *proposed*: ``toolkit validate``
    stores the proposal with its finding and the viewer applies it with Enter. A stick is never
    invented, and a point a person placed (provenance ``human`` or ``interpolated``) is never
    touched.

``forearm-ratio`` (the methodology's rule, kept faithful so the benchmark can judge it)
    ``tip = grip + alpha * |forearm| * unit(direction)``, where ``direction`` is the labelled
    stick direction rotated (slerped) toward the forearm direction until it is at most
    ``max_deviation`` degrees from it. Its assumptions: the stick is ``alpha`` forearm lengths
    long (a real baston is ~2.5-3 forearm lengths, so ``alpha = 1.35`` makes it far too short),
    and the stick continues the forearm line (many stances hold it far from that line, and
    foreshortening of the forearm shortens the stick with it).

Non-destructive: the result is a new keypoint array; :func:`apply` writes it with provenance
``corrected``, and ``keypoints_raw`` is never written. :func:`revert` restores the raw stick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit import geometry as geo
from toolkit import layout
from toolkit.dataset import Dataset
from toolkit.fileio import atomic_write_text
from toolkit.stick import assessment as stick_assess
from toolkit.stick.assessment import REASONS as _STICK_REASONS

METHODS = ("rigid", "forearm-ratio")
CORRECTION_LOG = "corrections.csv"

#: Reason bits: those of :mod:`toolkit.stick.assessment`, plus the methodology's rule.
FOREARM_RATIO = 1 << 8
REASONS: dict[int, str] = {**_STICK_REASONS, FOREARM_RATIO: "forearm_ratio"}
SWAP, TOO_LONG, TEMPORAL, IMAGE, GRIP_SNAP, TIP_FILLED = (
    stick_assess.SWAP,
    stick_assess.TOO_LONG,
    stick_assess.TEMPORAL,
    stick_assess.IMAGE,
    stick_assess.GRIP,
    stick_assess.TIP_FILLED,
)


@dataclass
class CorrectOptions:
    """Knobs of the correction methods (defaults are what ``toolkit correct`` uses).

    Attributes:
        method: ``rigid`` or ``forearm-ratio``.
        use_time: Use the time axis of videos.
        use_images: Read images / video frames (image evidence; swaps need it to be decisive).
        apply: ``decisive`` (default: time, impossible geometry, swaps seen twice) or ``none``
            (report only; ``--flag-only``).
        alpha: ``forearm-ratio``: stick length in forearm lengths.
        max_deviation: ``forearm-ratio``: largest allowed stick-forearm angle (degrees).
    """

    method: str = "rigid"
    use_time: bool = True
    use_images: bool = True
    apply: str = "decisive"
    alpha: float = 1.35
    max_deviation: float = 20.0


@dataclass
class CorrectionResult:
    """What a correction would change; nothing is written until :func:`apply`.

    Attributes:
        keypoints: ``(N, 19, 3)`` corrected points (only grip and tip differ from the input).
        changed: ``(N, 2)`` bool, grip / tip changed.
        reasons: ``(N,)`` int bit set of :data:`REASONS` for changes.
        flags: ``(N,)`` reason bits of fixes proposed but not applied (left for a person).
        stick_length: ``(N,)`` the subject's stick length in torso sizes used per row.
        method: The method name.
        notes: Remarks for the user (e.g. "images unavailable: image evidence skipped").
        assessment: The :class:`toolkit.stick.assessment.StickAssessment` behind a ``rigid`` run.
    """

    keypoints: np.ndarray
    changed: np.ndarray
    reasons: np.ndarray
    flags: np.ndarray
    stick_length: np.ndarray
    method: str
    notes: list[str] = field(default_factory=list)
    assessment: object | None = None

    @property
    def n_changed(self) -> int:
        """Annotations with a changed grip or tip."""
        return int(self.changed.any(1).sum())

    def __repr__(self) -> str:
        return (
            f"CorrectionResult(method={self.method!r}, n={len(self.keypoints)}, "
            f"changed={self.n_changed}, proposed={int((self.flags > 0).sum())})"
        )


def reason_names(bits: np.ndarray) -> np.ndarray:
    """``(N,)`` int bit sets -> ``(N,)`` strings like ``"swap;too_long"`` (vectorised)."""
    return stick_assess.reason_names(bits, REASONS)


def _editable(ds_source: np.ndarray) -> np.ndarray:
    """``(N, 2)`` grip/tip may be changed (not placed by a person)."""
    src = ds_source[:, [layout.GRIP, layout.TIP]]
    return (src != layout.HUMAN) & (src != layout.INTERPOLATED)


def correct(ds, options: CorrectOptions | None = None, **kwargs) -> CorrectionResult:
    """Compute a correction of the stick points of ``ds`` (the dataset is not modified).

    Args:
        ds: The dataset.
        options: :class:`CorrectOptions`.
        **kwargs: Fields of :class:`CorrectOptions` that override ``options``.

    Returns:
        A :class:`CorrectionResult`.
    """
    opts = options or CorrectOptions()
    if kwargs:
        opts = CorrectOptions(**{**opts.__dict__, **kwargs})
    if opts.method not in METHODS:
        raise ValueError(
            f"Expected 'method' to be one of {list(METHODS)}, but got {opts.method!r}."
        )
    if opts.apply not in ("decisive", "none"):
        raise ValueError(f"Expected 'apply' to be decisive or none, but got {opts.apply!r}.")
    if opts.method == "forearm-ratio":
        return _forearm_ratio(ds, opts)
    return _rigid(ds, opts)


def _rigid(ds, opts: CorrectOptions) -> CorrectionResult:
    a = stick_assess.assess(
        ds, stick_assess.AssessOptions(use_images=opts.use_images, use_time=opts.use_time)
    )
    kp = ds.keypoints.copy()
    n = len(kp)
    edit = _editable(ds.source)
    apply_mask = a.decisive & edit if opts.apply == "decisive" else np.zeros((n, 2), bool)
    for j, k in enumerate((layout.GRIP, layout.TIP)):
        p = a.proposal[:, j]
        rows = apply_mask[:, j] & np.isfinite(p[:, 0]) & np.isfinite(p[:, 1])  # .all(1)
        kp[rows, k, :2] = a.proposal[rows, j]
        kp[rows, k, 2] = np.where(kp[rows, k, 2] > 0, kp[rows, k, 2], 1)
        apply_mask[:, j] = rows
    # Compared only where a fix was applied (elsewhere nothing changed).
    cand = np.flatnonzero(apply_mask[:, 0] | apply_mask[:, 1])
    stick = np.array([[layout.GRIP, layout.TIP]])  # only the two stick points of those rows
    before = ds.keypoints[cand[:, None], stick, :2]
    after = kp[cand[:, None], stick, :2]
    changed = np.zeros((n, 2), bool)
    changed[cand] = apply_mask[cand] & ~np.isclose(before, after, atol=1e-6, equal_nan=True).all(-1)
    any_changed = changed[:, 0] | changed[:, 1]
    reasons = np.where(any_changed, a.proposal_reason, 0)
    flags = np.where(~any_changed, a.proposal_reason, 0)
    notes = list(a.notes) + [f["message"] for f in a.dataset_findings]
    if flags.any():
        notes.append(
            f"{int((flags > 0).sum())} annotations have a proposed fix that is not decisive: "
            "run `toolkit validate` and review them in the viewer (Enter accepts)"
        )
    return CorrectionResult(
        keypoints=kp,
        changed=changed,
        reasons=reasons.astype(np.int64),
        flags=flags.astype(np.int64),
        stick_length=a.subject_length,
        method=opts.method,
        notes=notes,
        assessment=a,
    )


def _forearm_ratio(ds, opts: CorrectOptions) -> CorrectionResult:
    kp = ds.keypoints.copy()
    n = len(kp)
    edit = _editable(ds.source)
    xy = geo._xy(kp)
    side = geo.weapon_side(kp)
    fore = geo.forearm_vector(kp, side)
    grip, tip = xy[:, layout.GRIP], xy[:, layout.TIP]
    d = tip - grip
    dev = geo.angle_between(fore, d)
    with np.errstate(invalid="ignore"):
        over = np.abs(dev) > opts.max_deviation
    # Slerp toward the forearm by just enough to bring the deviation down to max_deviation.
    new_dev = np.where(over, np.sign(dev) * opts.max_deviation, dev)
    fore_ang = geo.angle(fore)
    # A missing tip has no direction: the rule then continues the forearm line.
    new_dev = np.where(np.isfinite(new_dev), new_dev, 0.0)
    th = np.radians(fore_ang + new_dev)
    length = opts.alpha * geo.norm(fore)
    new_tip = grip + length[:, None] * np.stack([np.cos(th), np.sin(th)], 1)
    ok = np.isfinite(new_tip).all(1) & edit[:, 1]
    moved = ok & ~(np.isclose(new_tip, tip, atol=1e-6).all(1))
    kp[moved, layout.TIP, :2] = new_tip[moved]
    was_missing = moved & ~(ds.keypoints[:, layout.TIP, 2] > 0)
    kp[moved, layout.TIP, 2] = np.where(was_missing[moved], 1, ds.keypoints[moved, layout.TIP, 2])
    changed = np.zeros((n, 2), bool)
    changed[:, 1] = moved
    reasons = np.where(moved, FOREARM_RATIO, 0) | np.where(was_missing, TIP_FILLED, 0)
    return CorrectionResult(
        keypoints=kp,
        changed=changed,
        reasons=reasons.astype(np.int64),
        flags=np.zeros(n, np.int64),
        stick_length=np.full(n, np.nan),
        method=opts.method,
    )


# ---------------------------------------------------------------------- applying
def apply(ds, result: CorrectionResult) -> int:
    """Write a correction into ``ds`` in place (provenance ``corrected``); returns rows changed.

    ``keypoints_raw`` and ``human`` points are never written.
    """
    ch = result.changed & _editable(ds.source)
    for j, k in enumerate((layout.GRIP, layout.TIP)):
        rows = ch[:, j]
        ds.keypoints[rows, k] = result.keypoints[rows, k]
        ds.source[rows, k] = layout.CORRECTED
    return int(ch.any(1).sum())


def revert(ds) -> np.ndarray:
    """Restore the raw stick (grip, tip) for every non-human point; returns ``(N, 2)`` changed."""
    edit = _editable(ds.source)
    changed = np.zeros_like(edit)
    for j, k in enumerate((layout.GRIP, layout.TIP)):
        now, raw = ds.keypoints[:, k], ds.keypoints_raw[:, k]
        diff = ~(np.isclose(now, raw, equal_nan=True).all(-1)) | (
            ds.source[:, k] == layout.CORRECTED
        )
        rows = edit[:, j] & diff
        ds.keypoints[rows, k] = raw[rows]
        ds.source[rows, k] = layout.IMPORTED
        changed[:, j] = rows
    return changed


def change_log(
    ds,
    before: np.ndarray,
    after: np.ndarray,
    changed: np.ndarray,
    reasons: np.ndarray | str,
    method: str,
) -> pd.DataFrame:
    """One row per changed point: ids, frame, keypoint, before/after x/y/v and the reason."""
    rows, cols = np.nonzero(changed)
    kps = np.array([layout.GRIP, layout.TIP])[cols]
    ft = ds.frame_table()
    rs = reasons if isinstance(reasons, str) else reason_names(np.asarray(reasons)[rows])
    b = before[rows, kps]
    a = after[rows, kps]
    vid = ft["video_id"].to_numpy(dtype=object)[rows]
    fr = ft["frame_index"].to_numpy(dtype=object)[rows]
    return pd.DataFrame(
        {
            "ann_id": ft["ann_id"].to_numpy()[rows],
            "image_id": ft["image_id"].to_numpy()[rows],
            "file_name": ft["file_name"].to_numpy(dtype=object)[rows],
            "video_id": pd.array(vid, dtype="Int64"),
            "frame_index": pd.array(fr, dtype="Int64"),
            "keypoint": np.array(layout.KEYPOINT_NAMES, dtype=object)[kps],
            "before_x": b[:, 0],
            "before_y": b[:, 1],
            "before_v": b[:, 2],
            "after_x": a[:, 0],
            "after_y": a[:, 1],
            "after_v": a[:, 2],
            "reason": rs,
            "method": method,
        }
    )


def append_log(dataset_dir: str | Path, log: pd.DataFrame) -> Path:
    """Append ``log`` to ``DATASET/corrections.csv`` (atomically rewritten, with a timestamp)."""
    import datetime

    path = Path(dataset_dir) / CORRECTION_LOG
    log = log.copy()
    log.insert(0, "time", datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    if path.exists() and path.stat().st_size:
        old = pd.read_csv(path, dtype={"file_name": object, "reason": object})
        log = pd.concat([old, log], ignore_index=True)
    atomic_write_text(path, log.to_csv(index=False, float_format="%.3f"))
    return path


def run(
    dataset_dir: str | Path,
    options: CorrectOptions | None = None,
    *,
    dry_run: bool = False,
    revert_stick: bool = False,
) -> tuple[pd.DataFrame, CorrectionResult | None]:
    """Load, correct (or revert), log and save a dataset directory: what ``toolkit correct`` does.

    Returns:
        ``(change log, result)``; nothing is written when ``dry_run``.
    """
    ds = Dataset.load(dataset_dir)
    opts = options or CorrectOptions()
    if not revert_stick and opts.method == "rigid" and opts.use_images and len(ds):
        ds.require_media("toolkit correct's image evidence (--no-images skips it)")
    before = ds.keypoints.copy()
    if revert_stick:
        work = ds.copy() if dry_run else ds
        changed = revert(work)
        log = change_log(ds, before, work.keypoints, changed, "revert", "revert")
        result = None
    else:
        result = correct(ds, options)
        log = change_log(
            ds, before, result.keypoints, result.changed, result.reasons, result.method
        )
        if not dry_run:
            apply(ds, result)
    if not dry_run and len(log):
        ds.save()
        append_log(dataset_dir, log)
    return log, result
