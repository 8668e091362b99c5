"""Anatomical-validity checks: every finding a reason code, a severity, a place and a number.

A finding says *what* (``code`` = ``category.check``, e.g. ``stick.too_long``), *how bad*
(``severity``: ``error`` | ``warning`` | ``info``), *where* (``file_name``, or ``video`` and
``frame_index`` for video frames; ``ann_id``; the keypoint names) and *by how much* (the measured
``value`` and the ``threshold`` it broke). Findings are collected in one pandas table; every check
is a vectorised operation over all annotations (the temporal checks loop over videos only, the
image evidence over image files only).

Categories and checks:

* ``structure``: ``schema``, ``few_keypoints``, ``visibility``, ``out_of_image``,
  ``missing_points``, ``low_confidence``, ``duplicate_image``, ``duplicate_pose``,
  ``class_balance``, ``unlabelled``, ``subjects_per_class``.
* ``anatomy``: ``bone_length`` (against the data set's own robust statistics, normalised by
  torso size), ``symmetry`` (left/right bone ratio), ``joint_angle`` (elbow/knee folded beyond the
  human range), ``lr_swap`` (left/right labels exchanged).
* ``stick``: ``missing`` (once per data set when the data has no stick at all, e.g. COCO-17),
  ``grip_missing``, ``tip_missing``, ``too_long`` (against the subject's estimated stick length),
  ``grip_far`` (from the weapon wrist), ``grip_wrist_disagree`` (an uncertain wrist),
  ``grip_off_line`` (the image's stick starts at the wrist, not the grip), ``swap``,
  ``forearm_angle`` (atypical for the stance), ``image_mismatch`` (the image shows the stick
  elsewhere), ``image_ends_early`` / ``image_runs_on`` (the image's stick ends before / runs on
  past the labelled tip), ``image_line_stops`` (a clear line along the label's inner part, none
  along its last stretch). The judgement is :func:`toolkit.stick.assessment.assess`.
* ``temporal`` (video only): ``jump`` (a keypoint spikes away for one frame), ``drift`` (stick
  angle/length outliers over several frames).
* ``plausibility``: ``vae`` (high reconstruction error of a small beta-VAE on normalised poses).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import copy
import gc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toolkit import geometry as geo
from toolkit import layout, plausibility
from toolkit.dataset import DATASET_FILE, Dataset, gc_paused
from toolkit.errors import InputError
from toolkit.schema import validate_dataset
from toolkit.stick import AssessOptions, assess
from toolkit.stick.assessment import reason_names
from toolkit.stick.stats import (
    _group_chunks,
    group_codes,
    image_column_codes,
    median_of,
    nanmedian_of,
    nanquantile_of,
    sharing_group_codes,
)

SEVERITIES = ("info", "warning", "error")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
FINDINGS_FILE = "validation.json"
REPORT_VERSION = 1
FINDING_COLUMNS = (
    "code",
    "category",
    "severity",
    "row",
    "ann_id",
    "image_id",
    "file_name",
    "video",
    "frame_index",
    "keypoints",
    "value",
    "threshold",
    "message",
    "proposal",
)

#: Bones with a left and a right twin (checked for symmetry).
SYMMETRIC_BONES: tuple[tuple[str, tuple[int, int], tuple[int, int]], ...] = (
    ("upper_arm", (layout.L_SHOULDER, layout.L_ELBOW), (layout.R_SHOULDER, layout.R_ELBOW)),
    ("forearm", (layout.L_ELBOW, layout.L_WRIST), (layout.R_ELBOW, layout.R_WRIST)),
    ("thigh", (layout.L_HIP, layout.L_KNEE), (layout.R_HIP, layout.R_KNEE)),
    ("shin", (layout.L_KNEE, layout.L_ANKLE), (layout.R_KNEE, layout.R_ANKLE)),
)
#: Joints whose interior angle is checked: (name, a, b, c) with the angle at b.
JOINTS: tuple[tuple[str, int, int, int], ...] = (
    ("left_elbow", layout.L_SHOULDER, layout.L_ELBOW, layout.L_WRIST),
    ("right_elbow", layout.R_SHOULDER, layout.R_ELBOW, layout.R_WRIST),
    ("left_knee", layout.L_HIP, layout.L_KNEE, layout.L_ANKLE),
    ("right_knee", layout.R_HIP, layout.R_KNEE, layout.R_ANKLE),
)
NAMES = np.array(layout.KEYPOINT_NAMES, dtype=object)


@dataclass
class ValidateOptions:
    """Thresholds of the checks (defaults are what ``toolkit validate`` uses).

    Attributes:
        min_body_points: Fewer labelled body points than this is ``structure.few_keypoints``.
        low_confidence: Keypoint scores below this are ``structure.low_confidence``.
        low_confidence_anatomy: Anatomy checks ignore points scored below this.
        out_of_image_px: Tolerance outside the image border (pixels).
        balance_ratio: Largest/smallest stance count above this is ``structure.class_balance``.
        min_subjects: Fewer subjects per stance than this is ``structure.subjects_per_class``.
        bone_mads: Bone ratio above median + this many robust SDs is ``anatomy.bone_length``.
        symmetry_ratio: Left/right bone length ratio above this is ``anatomy.symmetry`` ...
        symmetry_long: ... when the longer bone is also this many times its data-set median.
        min_joint_angle: Interior elbow/knee angle below this (degrees) is ``anatomy.joint_angle``.
        use_time: Judge the stick's course over time in videos.
        jump_sigmas: ``temporal.jump``: spike size in robust SDs of the video's motion.
        jump_min: ... and at least this many torso sizes.
        use_images: Read image files for ``stick.image_mismatch``.
        use_vae: Train/score the plausibility VAE (needs torch).
        vae_mads: ``plausibility.vae``: error above median + this many robust SDs.
        vae_epochs: Training epochs of the VAE.
        seed: Random seed of the VAE.
    """

    min_body_points: int = 5
    low_confidence: float = 0.3
    low_confidence_anatomy: float = 0.5
    out_of_image_px: float = 2.0
    balance_ratio: float = 3.0
    min_subjects: int = 2
    bone_mads: float = 6.0
    symmetry_ratio: float = 2.5
    symmetry_long: float = 1.4
    min_joint_angle: float = 12.0
    jump_sigmas: float = 6.0
    jump_min: float = 0.25
    use_images: bool = True
    use_time: bool = True
    use_vae: bool = True
    vae_mads: float = 6.0
    vae_epochs: int = 60
    seed: int = 0


@dataclass
class Report:
    """The outcome of :func:`validate`.

    Attributes:
        findings: One row per finding (:data:`FINDING_COLUMNS`); ``row`` is the annotation row
            (-1 for data-set-level findings).
        summary: Counts per code and severity, data-set facts, notes.
        measures: Per-check measured values over all annotations (for the report's histograms):
            name -> ``(values (N,), threshold or None)``.
    """

    findings: pd.DataFrame
    summary: dict
    measures: dict[str, tuple[np.ndarray, float | None]] = field(default_factory=dict)

    def worst_severity(self) -> str | None:
        """The most severe finding's severity (None without findings)."""
        if not len(self.findings):
            return None
        return SEVERITIES[int(self.findings["severity"].map(SEVERITY_RANK).max())]

    def fails(self, fail_on: str = "error") -> bool:
        """True when a finding reaches ``fail_on`` (``error`` | ``warning`` | ``never``)."""
        if fail_on == "never":
            return False
        if fail_on not in SEVERITY_RANK:
            raise ValueError(
                f"Expected 'fail_on' to be one of error, warning, never, but got {fail_on!r}."
            )
        worst = self.worst_severity()
        return worst is not None and SEVERITY_RANK[worst] >= SEVERITY_RANK[fail_on]

    def to_dict(self) -> dict:
        """The JSON document: ``{"version", "summary", "findings": [...]}``."""
        return {
            "version": REPORT_VERSION,
            "summary": self.summary,
            "findings": findings_records(self.findings),
        }

    def __repr__(self) -> str:
        c = self.summary.get("by_severity", {})
        return (
            f"Report(findings={len(self.findings)}, errors={c.get('error', 0)}, "
            f"warnings={c.get('warning', 0)}, infos={c.get('info', 0)})"
        )


# ---------------------------------------------------------------------- finding collector
class _Collector:
    """Builds the findings table chunk by chunk, one vectorised chunk per check."""

    def __init__(self, ds, ft: pd.DataFrame | None = None):
        ft = ds.frame_table() if ft is None else ft
        self.ft = ft
        self.n = len(ds)
        self.ann_id = ft["ann_id"].to_numpy(np.int64)
        self.image_id = ft["image_id"].to_numpy(np.int64)
        self.file_name = ft["file_name"].to_numpy(dtype=object)
        vid = ft["video_id"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        self.video_id = vid
        names = {v["id"]: Path(str(v.get("file_name", v["id"]))).stem for v in ds.videos}
        self.video = np.empty(self.n, dtype=object)  # None everywhere (no Python list)
        has = np.isfinite(vid)
        if has.any():
            self.video[has] = (
                pd.Series(vid[has].astype(np.int64))
                .map(lambda i: names.get(i, str(i)))
                .to_numpy(dtype=object)
            )
        self.frame = ft["frame_index"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        self.chunks: list[pd.DataFrame] = []
        # ``(code, severity, rows)`` of each chunk (row -1: data-set level), for the summary.
        self.parts: list[tuple[str, str, np.ndarray]] = []

    def rows(
        self,
        mask: np.ndarray,
        code: str,
        severity: str,
        value: Any,
        threshold: Any,
        keypoints: Any,
        message: str,
        proposal: np.ndarray | None = None,
    ) -> int:
        """Add one finding per True row of ``mask``.

        ``value``/``keypoints`` may be per row; ``proposal``: ``(N,)`` object array of proposed
        fixes (dict or None).
        """
        return self.rows_at(
            np.flatnonzero(mask), code, severity, value, threshold, keypoints, message, proposal
        )

    def rows_at(
        self,
        idx: np.ndarray,
        code: str,
        severity: str,
        value: Any,
        threshold: Any,
        keypoints: Any,
        message: str,
        proposal: np.ndarray | None = None,
    ) -> int:
        """:meth:`rows` for the ascending row indices ``idx`` (the True rows of a mask)."""
        if not len(idx):
            return 0
        val = self._per_row(value, idx)
        thr = self._per_row(threshold, idx)
        if (
            isinstance(keypoints, np.ndarray)
            and keypoints.dtype == object
            and len(keypoints) == self.n
        ):
            kps = keypoints[idx]
        else:
            kps = np.array(
                [",".join(keypoints) if not isinstance(keypoints, str) else keypoints] * len(idx),
                dtype=object,
            )
        self.chunks.append(
            pd.DataFrame(
                {
                    "code": code,
                    "category": code.split(".")[0],
                    "severity": severity,
                    "row": idx,
                    "ann_id": self.ann_id[idx],
                    "image_id": self.image_id[idx],
                    "file_name": self.file_name[idx],
                    "video": self.video[idx],
                    "frame_index": self.frame[idx],
                    "keypoints": kps,
                    "value": val,
                    "threshold": thr,
                    "message": message,
                    "proposal": (
                        proposal[idx] if proposal is not None else np.full(len(idx), None)
                    ),
                }
            )
        )
        self.parts.append((code, severity, idx))
        return len(idx)

    def _per_row(self, value: Any, idx: np.ndarray) -> np.ndarray:
        """``value`` (a scalar, None or an ``(N,)``-broadcastable array) at rows ``idx`` as float64.

        Gathered first, converted after: only the flagged rows are converted.
        """
        if not np.ndim(value):
            return np.full(len(idx), np.nan if value is None else float(value))
        v = np.asarray(value)
        v = v[idx] if v.shape == (self.n,) else np.broadcast_to(v, (self.n,))[idx]
        return v.astype(np.float64)

    def dataset(
        self,
        code: str,
        severity: str,
        message: str,
        value: float | None = None,
        threshold: float | None = None,
        keypoints: str = "",
    ) -> None:
        """Add one data-set-level finding (no image)."""
        self.chunks.append(
            pd.DataFrame(
                {
                    "code": [code],
                    "category": [code.split(".")[0]],
                    "severity": [severity],
                    "row": [-1],
                    "ann_id": [-1],
                    "image_id": [-1],
                    "file_name": [None],
                    "video": [None],
                    "frame_index": [np.nan],
                    "keypoints": [keypoints],
                    "value": [np.nan if value is None else float(value)],
                    "threshold": [np.nan if threshold is None else float(threshold)],
                    "message": [message],
                    "proposal": [None],
                }
            )
        )
        self.parts.append((code, severity, np.array([-1])))

    def fork(self) -> _Collector:
        """A collector of the same frame table with no findings yet (for a check on a thread)."""
        child = copy.copy(self)
        child.chunks, child.parts = [], []
        return child

    def join(self, child: _Collector) -> None:
        """Append the findings of ``child`` (a :meth:`fork`) after this collector's."""
        self.chunks.extend(child.chunks)
        self.parts.extend(child.parts)

    def table(self) -> pd.DataFrame:
        if not self.chunks:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in FINDING_COLUMNS})
        df = pd.concat(self.chunks, ignore_index=True)
        return df[list(FINDING_COLUMNS)]


def _names_where(mask: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
    """``(N, K)`` bool -> ``(N,)`` comma-joined names of the True columns (vectorised by column)."""
    mask = np.asarray(mask, dtype=bool)
    return _names_of_bits(_pack_bits([mask[:, j] for j in range(mask.shape[1])]), cols)


def _column_nanmedian(rows: list[np.ndarray], n: int) -> np.ndarray:
    """``np.nanmedian(np.array(rows).T, 0)``, NaN everywhere when no value is finite.

    Computed row by row on the contiguous rows where numpy would take the same 1-D path
    (n >= 600).
    """
    if not any(np.isfinite(r).any() for r in rows):
        return np.full(len(rows), np.nan)
    if n < 600:  # numpy's small-axis path
        return np.nanmedian(np.array(rows).reshape(len(rows), n).T, 0)
    return np.array([np.nanmedian(r) for r in rows])


def _median_and_mad(rows: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """``_column_nanmedian(rows)`` and ``_column_nanmedian([|r - median|])``, the same values.

    From n >= 600 each row's non-NaN values are copied once; the median partitions that copy
    in place, and the absolute deviations overwrite it for the second median.
    """
    if n < 600 or not any(np.isfinite(r).any() for r in rows):
        med = _column_nanmedian(rows, n)
        with np.errstate(invalid="ignore"):
            return med, _column_nanmedian(
                [np.abs(r - m) for r, m in zip(rows, med, strict=True)], n
            )
    pairs = [_median_mad_1d(r) for r in rows]
    med = np.array([p[0] for p in pairs], dtype=np.float64)
    if not np.isfinite(med).any():  # no finite deviation anywhere (as the helper's guard)
        return med, np.full(len(rows), np.nan)
    return med, np.array([p[1] for p in pairs], dtype=np.float64)


def _median_mad_1d(x: np.ndarray) -> tuple[float, float]:
    """``(np.nanmedian(x), np.nanmedian(np.abs(x - that median)))`` of a 1-D array.

    (A 1-D ``nanmedian`` takes this path at every size; the 2-D one differs below 600 rows.)
    """
    return _median_mad_of_values(x[~np.isnan(x)])  # the copy both medians partition


def _median_mad_of_values(f: np.ndarray) -> tuple[float, float]:
    """:func:`_median_mad_1d` of ``f``, the non-NaN values (``f`` is overwritten)."""
    if not len(f):
        return np.nan, np.nan
    m = median_of(f, overwrite_input=True)
    with np.errstate(invalid="ignore"):
        np.subtract(f, m, out=f)
        np.abs(f, out=f)
    if np.isfinite(m):  # finite or infinite deviations, never NaN
        return m, median_of(f, overwrite_input=True)
    return m, np.nanmedian(f)


def _count(columns: list[np.ndarray], n: int) -> np.ndarray:
    """``(N,)`` int64 number of True values across ``K`` bool columns."""
    small = len(columns) < np.iinfo(np.int16).max  # counted in a narrow type, then widened
    out = np.zeros(n, np.int16 if small else np.int64)
    for col in columns:  # loops over keypoints, not annotations
        out += col
    return out.astype(np.int64)


def _pack_bits(columns: list[np.ndarray]) -> np.ndarray:
    """``K`` bool columns ``(N,)`` -> ``(N,)`` int64 with bit ``j`` set where column ``j`` is."""
    bits = np.zeros(len(columns[0]) if columns else 0, np.int64)
    for j, col in enumerate(columns):  # loops over keypoints (<= 19), not annotations
        bits |= col.astype(np.int64) << j
    return bits


def _keypoint_rows(c, masks, code, severity, value, threshold, message) -> None:
    """One finding per row where any of the per-keypoint ``masks`` holds, naming those keypoints."""
    # Packed and named at the rows where any mask holds only (the same bits and names there).
    hit = masks[0].copy() if masks else np.zeros(c.n, bool)
    for m in masks[1:]:  # loops over keypoints, not annotations
        hit |= m
    idx = np.flatnonzero(hit)
    names = np.empty(c.n, dtype=object)
    names[idx] = _names_of_bits(_pack_bits([m[idx] for m in masks]))
    c.rows_at(idx, code, severity, value, threshold, names, message)


def _names_of_bits(bits: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
    """``(N,)`` bit sets of :func:`_pack_bits` -> comma-joined names (``cols[j]`` for bit ``j``).

    The strings are built once per distinct combination among the flagged rows, then gathered.
    """
    n_bits = int(bits.max()).bit_length() if len(bits) else 0
    cols = np.arange(n_bits) if cols is None else np.asarray(cols)
    mask = bits
    out = np.full(len(mask), "", dtype=object)
    rows = np.flatnonzero(mask)
    if len(rows):
        uniq, inv = _unique_small(mask[rows])
        names = [",".join(NAMES[cols[j]] for j in range(len(cols)) if b >> j & 1) for b in uniq]
        out[rows] = np.array(names, dtype=object)[inv]
    return out


def _unique_small(vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(vals, return_inverse=True)`` of non-negative ints (bit sets).

    Over a small range of values, a mark per value replaces the sort: the same sorted distinct
    values and inverse.
    """
    top = int(vals.max())
    if vals.min() < 0 or top > 4 * len(vals) + 4096:
        return np.unique(vals, return_inverse=True)
    present = np.zeros(top + 1, bool)
    present[vals] = True
    uniq = np.flatnonzero(present).astype(vals.dtype)
    return uniq, (np.cumsum(present) - 1)[vals]


# ---------------------------------------------------------------------- checks
def check_structure(
    ds,
    c: _Collector,
    o: ValidateOptions,
    summary: dict,
    measures: dict,
    pts: geo.Points | None = None,
) -> None:
    """Structure checks (schema, counts, visibility, image bounds, duplicates, labels)."""
    pts = geo.Points(ds.keypoints) if pts is None else pts
    stored = check_stored_points(ds, c, o, pts)
    check_structure_rest(ds, c, o, summary, measures, pts, stored)


def check_stored_points(ds, c: _Collector, o: ValidateOptions, pts: geo.Points) -> tuple:
    """The checks on the points as stored; then their rows become ``pts``' masked columns.

    Returns:
        What :func:`check_structure_rest` reports: ``(bad_v, outside, worst)`` of
        :func:`_stored_point_checks`.
    """
    stored = _stored_point_checks(pts, c.ft, o.out_of_image_px, ds.keypoints.shape[1])
    pts.mask_raw()
    return stored


def check_structure_rest(
    ds,
    c: _Collector,
    o: ValidateOptions,
    summary: dict,
    measures: dict,
    pts: geo.Points,
    stored: tuple,
) -> None:
    """The structure checks on the masked columns (after :func:`check_stored_points`)."""
    kp = ds.keypoints
    bad_v, outside, worst = stored
    # Per keypoint column: labelled (v > 0 and x finite, as the masked x of ``pts``).
    body_present = [np.isfinite(pts.xy(k)[0]) for k in range(layout.NUM_BODY)]
    n_body = _count(body_present, len(kp))
    measures["structure.labelled_body_points"] = (n_body.astype(float), float(o.min_body_points))
    c.rows(
        n_body < o.min_body_points,
        "structure.few_keypoints",
        "warning",
        n_body,
        o.min_body_points,
        "",
        "Fewer labelled body keypoints than needed for the checks.",
    )
    _keypoint_rows(
        c, bad_v, "structure.visibility", "error", _count(bad_v, len(kp)), 0,
        "Visibility flags must be 0, 1 or 2.",
    )  # fmt: skip
    ft = c.ft
    tol = o.out_of_image_px
    _keypoint_rows(
        c, outside, "structure.out_of_image", "error", worst, tol,
        "Keypoints lie outside the image (value: pixels beyond the border).",
    )  # fmt: skip
    # Body points missing: information (occlusion is normal), only where some are labelled.
    enough = n_body >= o.min_body_points
    miss = [~b & enough for b in body_present]
    _keypoint_rows(
        c, miss, "structure.missing_points", "info", _count(miss, len(kp)), 0,
        "Body keypoints not labelled (occluded or skipped).",
    )  # fmt: skip
    sc = ds.scores
    if np.isfinite(sc).any():
        with np.errstate(invalid="ignore"):
            low = (sc < o.low_confidence) & (kp[..., 2] > 0)
        c.rows(
            low.any(1),
            "structure.low_confidence",
            "info",
            np.nanmin(np.where(low, sc, np.inf), 1),
            o.low_confidence,
            _names_where(low),
            "Keypoints with a low detector confidence.",
        )
    # Duplicates: the same image file twice, or an identical pose on two different images.
    img_dup = _duplicated_first(ds.images["file_name"].to_numpy(dtype=object))
    dup_rows = ft["image_id"].isin(ds.images.loc[img_dup, "id"]).to_numpy()
    c.rows(
        dup_rows,
        "structure.duplicate_image",
        "error",
        1,
        0,
        "",
        "The same image file appears under several image ids.",
    )
    has_pose = n_body >= o.min_body_points
    if has_pose.any():
        h_pose = _pose_keys(kp)
        img = ft["image_id"].to_numpy()
        # The first image of each distinct key (``groupby(h).transform("first")``).
        first = _first_equal_row(h_pose)
        dpose = has_pose & ((img[np.maximum(first, 0)] != img) | (first < 0))
        c.rows(
            dpose,
            "structure.duplicate_pose",
            "warning",
            1,
            0,
            "",
            "An identical pose is labelled on another image (copied label or duplicate frame).",
        )
    _check_classes(ds, c, o, summary)


def _duplicated_first(values: np.ndarray) -> np.ndarray:
    """``(N,)`` ``pd.Series(values).duplicated(keep="first")`` of an object array, as numpy.

    Equal values have equal hashes, so only the rows whose hash repeats (usually none) and the
    missing values (NaN is not equal to itself, but pandas counts missing values as equal) can
    be duplicates: pandas marks those, in row order; one sort of the hashes finds them, far
    cheaper than pandas' hash table over every row.
    """
    try:
        h = np.fromiter(map(hash, values), np.int64, len(values))
    except TypeError:  # an unhashable value: pandas' own path
        return pd.Series(values, dtype=object).duplicated(keep="first").to_numpy()
    s = np.sort(h)
    repeated = s[1:][s[1:] == s[:-1]]
    strings = pd.api.types.infer_dtype(values, skipna=False) == "string"  # then none missing
    cand = np.zeros(len(values), bool) if strings else pd.isna(values)
    if len(repeated):
        cand |= np.isin(h, repeated)
    out = np.zeros(len(values), bool)
    rows = np.flatnonzero(cand)
    if len(rows):
        out[rows] = pd.Series(values[rows], dtype=object).duplicated(keep="first").to_numpy()
    return out


def _stored_point_checks(
    pts: geo.Points, ft: pd.DataFrame, tol: float, n_kp: int
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Checks on the points as stored (:meth:`toolkit.geometry.Points.raw`, not masked).

    Returns:
        ``(bad_v, outside, worst)``: per keypoint, the rows with a visibility flag other than
        0, 1, 2 and the rows with the point outside the image (beyond ``tol`` pixels); per row,
        the largest distance beyond the border (``-inf`` where no point is outside).
    """
    bad_v = []
    for k in range(n_kp):  # loops over keypoints, not annotations
        vk = pts.raw(k)[2]
        bad_v.append((vk != 0) & (vk != 1) & (vk != 2))
    w = ft["width"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    h = ft["height"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    outside = []
    worst = np.full(len(pts), -np.inf)
    w_tol, h_tol = w + tol, h + tol
    with np.errstate(invalid="ignore"):
        for k in range(n_kp):  # loops over keypoints, not annotations
            x, y = pts.raw(k)[:2]
            out_k = (x < -tol) | (y < -tol) | (x > w_tol) | (y > h_tol)
            r = np.flatnonzero(out_k)  # the distance beyond the border, where outside only
            xr, yr = x[r], y[r]
            dist = np.maximum(np.maximum(-xr, -yr), np.maximum(xr - w[r], yr - h[r]))
            worst[r] = np.maximum(worst[r], dist)
            outside.append(out_k)
    return bad_v, outside, worst


def _pose_keys(kp: np.ndarray, block: int = 8192) -> np.ndarray:
    """``(N,)`` a key per pose: equal for equal coordinates rounded to 0.1 px (NaN as -1).

    A random projection of the rounded coordinates is a collision-free key in practice and far
    cheaper than hashing 38 columns. Blocks of rows keep the rounded copy in cache (no 300 MB
    temporary); whole rows are copied (a contiguous copy, far cheaper than gathering the x/y
    columns) and the visibility columns weigh zero. Each row's key is one dot product of that
    row alone (``vecdot``: the same sum wherever the row sits, and no threaded matrix product
    that splits the rows between threads).
    """
    n_kp = kp.shape[1]
    xy_cols = [kp.shape[2] * k + c for k in range(n_kp) for c in (0, 1)]
    flat = np.ascontiguousarray(kp).reshape(len(kp), -1)
    weights = np.zeros(flat.shape[1])
    weights[xy_cols] = np.random.default_rng(0).uniform(1.0, 2.0, len(xy_cols))
    h_pose = np.empty(len(kp))
    big = np.finfo(np.float64).max
    buf = np.empty((min(len(kp), block), flat.shape[1]))  # one block buffer, reused
    for start in range(0, len(kp), block):  # blocks of rows, not annotations
        rounded = buf[: len(flat[start : start + block])]
        np.copyto(rounded, flat[start : start + block])
        if not np.isfinite(rounded).all():  # np.nan_to_num(nan=-1.0), in place
            rounded[np.isnan(rounded)] = -1.0
            rounded[rounded == np.inf] = big
            rounded[rounded == -np.inf] = -big
        np.round(rounded, 1, out=rounded)
        np.vecdot(rounded, weights, out=h_pose[start : start + len(rounded)])
    return h_pose


def _first_equal_row(h: np.ndarray) -> np.ndarray:
    """``(N,)`` the first row holding the same value of ``h`` (itself when unique; -1 for NaN).

    As ``pd.factorize(h)`` and each code's first row, without hashing every row: one sort finds
    the values that repeat (usually none), and only their rows are factorised (in row order,
    so a code's first row is where the running maximum of the codes grows).
    """
    first = np.arange(len(h))
    s = np.sort(h)  # NaN last, and never equal to itself
    repeated = s[1:][s[1:] == s[:-1]]
    if len(repeated):
        rows = np.flatnonzero(np.isin(h, repeated))
        codes, _ = pd.factorize(h[rows])
        new = codes > np.maximum.accumulate(np.r_[-1, codes[:-1]])
        first[rows] = rows[np.flatnonzero(new)][codes]
    first[np.isnan(h)] = -1
    return first


def _check_classes(ds, c: _Collector, o: ValidateOptions, summary: dict) -> None:
    """Class balance and subjects per class (data-set level).

    The stance and subject columns are factorised once each; counts come from ``bincount``
    (as ``value_counts`` and ``groupby().nunique()``, without their per-call hashing).
    """
    stance = ds.images["stance"]
    st_codes, st_uniq = image_column_codes(ds, "stance")
    labelled = st_codes >= 0
    # ``dropna().value_counts()``: keys in order of first appearance, then a stable sort by
    # count, descending.
    counts = pd.Series(
        np.bincount(st_codes[labelled], minlength=len(st_uniq)).astype(np.int64),
        index=pd.Index(st_uniq, dtype=object),
        name="count",
    ).sort_values(ascending=False, kind="stable")
    if ds.taxonomy and ds.taxonomy.get("stances"):
        counts = counts.reindex([s["name"] for s in ds.taxonomy["stances"]], fill_value=0)
    summary["stances"] = {str(k): int(v) for k, v in counts.items()}
    n_unlab = int(len(st_codes) - labelled.sum())
    if n_unlab:
        c.dataset(
            "structure.unlabelled",
            "info",
            f"{n_unlab} of {len(stance)} images have no stance label.",
            value=n_unlab,
            threshold=0,
        )
    if len(counts) >= 2:
        lo, hi = int(counts.min()), int(counts.max())
        ratio = hi / max(lo, 1) if lo else float("inf")
        if ratio > o.balance_ratio:
            c.dataset(
                "structure.class_balance",
                "warning",
                f"Stance counts range from {lo} ({counts.idxmin()}) to {hi} ({counts.idxmax()}).",
                value=min(ratio, 1e9),
                threshold=o.balance_ratio,
            )
    per = _subjects_per_stance(ds, st_codes, st_uniq)
    if per is not None:
        summary["subjects_per_stance"] = {str(k): int(v) for k, v in per.items()}
        for name, k in per[per < o.min_subjects].items():  # loops over stances
            c.dataset(
                "structure.subjects_per_class",
                "warning",
                f"Stance '{name}' has {k} subject(s): subject-independent "
                "cross-validation cannot hold it out.",
                value=k,
                threshold=o.min_subjects,
            )


def _subjects_per_stance(ds, st_codes: np.ndarray, st_uniq) -> pd.Series | None:
    """``groupby("stance")["subject"].nunique()`` over the rows with a stance.

    None without subjects. From the stance codes (``-1`` = none) and one factorisation of the
    subjects: the distinct (stance, subject) pairs are counted per stance, and the stances sorted
    as ``groupby`` does.
    """
    labelled = st_codes >= 0
    if not labelled.any():
        return None
    sub_codes, _ = image_column_codes(ds, "subject")
    both = labelled & (sub_codes >= 0)
    if not both.any():
        return None
    if not all(isinstance(x, str) for x in st_uniq):  # mixed labels: groupby's own ordering
        subj = ds.images.loc[labelled, ["stance", "subject"]]
        return subj.groupby("stance")["subject"].nunique()
    n_sub = int(sub_codes.max()) + 1
    key = st_codes[both].astype(np.int64) * n_sub + sub_codes[both]
    if len(st_uniq) * n_sub <= 4 * len(key):  # dense: a mark per possible pair, no sort
        seen = np.zeros(len(st_uniq) * n_sub, bool)
        seen[key] = True
        pairs = np.flatnonzero(seen)
    else:
        pairs = np.unique(key)
    per = np.bincount(pairs // n_sub, minlength=len(st_uniq)).astype(np.int64)
    order = np.argsort(np.asarray(st_uniq, dtype=object), kind="stable")  # str labels: sorted
    return pd.Series(per[order], index=pd.Index(np.asarray(st_uniq, dtype=object)[order]))


def _certain_columns(sc: np.ndarray | None, n: int, low: float) -> list[np.ndarray]:
    """Per body keypoint, ``(N,)`` ``~(scores[:, k] < low)`` (all True without scores).

    Compared in float64 (as on converted scores), block by block into contiguous columns: one
    pass over the scores instead of a strided read per keypoint.
    """
    if sc is None or not len(sc):
        return [np.ones(n, bool) for _ in range(layout.NUM_BODY)]
    low = np.float64(low)
    out = np.empty((layout.NUM_BODY, len(sc)), bool)
    for start in range(0, len(sc), 8192):  # blocks of rows, not annotations
        part = sc[start : start + 8192, : layout.NUM_BODY]
        np.less(part, low, out=out[:, start : start + len(part)].T)
    np.logical_not(out, out=out)
    return list(out)


def check_anatomy(
    ds,
    c: _Collector,
    o: ValidateOptions,
    summary: dict,
    measures: dict,
    scale: np.ndarray,
    pts: geo.Points | None = None,
) -> None:
    """Anatomy checks against the data set's own robust statistics (bones, angles, sides)."""
    kp = ds.keypoints
    pts = geo.Points(kp) if pts is None else pts
    n = len(kp)
    edges = layout.COCO_SKELETON
    # Uncertain points (a detector's low confidence) count as uncertain: no anatomy finding
    # rests on them.
    certain = _certain_columns(getattr(ds, "scores", None), n, o.low_confidence_anatomy)
    # One contiguous (N,) row per bone, from the shared distance cache.
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = [pts.dist(a, b) / scale for a, b in edges]
    med, mad = _median_and_mad(ratio, n)
    mad = mad * 1.4826
    upper = med + o.bone_mads * np.maximum(mad, 0.05 * med)
    # A robust level needs rows behind it: with fewer than 30 measurements of a bone, its
    # length is not judged.
    counts = np.array([np.isfinite(r).sum() for r in ratio])
    upper = np.where(counts >= 30, upper, np.inf)
    over_any = np.zeros(n, bool)
    with np.errstate(invalid="ignore"):
        for j, (a, b) in enumerate(edges):  # loops over bones, not annotations
            over_any |= (ratio[j] > upper[j]) & certain[a] & certain[b]
    # For the flagged rows only: the bone furthest over its limit (the first on ties, as
    # ``nanargmax``); value, threshold and names are only read at those rows.
    idx = np.flatnonzero(over_any)
    sub = np.array([r[idx] for r in ratio]).reshape(len(edges), len(idx))
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = np.where(sub > upper[:, None], sub / upper[:, None], -np.inf)
    worst = np.zeros(n, np.int64)
    worst[idx] = np.argmax(excess, 0) if len(idx) else 0
    edge_names = np.array([f"{NAMES[a]},{NAMES[b]}" for a, b in edges], dtype=object)
    kps = edge_names[worst]
    val = np.zeros(n)
    val[idx] = sub[worst[idx], np.arange(len(idx))]
    thr = upper[worst]
    c.rows(
        over_any,
        "anatomy.bone_length",
        "warning",
        val,
        thr,
        kps,
        "A bone is far longer (relative to the torso) than in the rest of the data set.",
    )
    summary["bone_ratio_median"] = {
        f"{NAMES[a]}-{NAMES[b]}": _r(m) for (a, b), m in zip(layout.COCO_SKELETON, med, strict=True)
    }

    # Left/right symmetry.
    # In 2D one side can be foreshortened at will, so a large ratio alone proves nothing: it
    # counts only when the longer bone is also longer than usual for the data set.
    def length(a: int, b: int) -> np.ndarray:
        """Distance a-b (cached: the bones' distances are reused, hypot ignores the sign)."""
        return pts.dist(a, b)

    bone_row = {frozenset(e): j for j, e in enumerate(edges)}

    def rel_length(a: int, b: int) -> np.ndarray:
        """Distance a-b / torso: the bone's row of ``ratio`` when it is a skeleton bone."""
        j = bone_row.get(frozenset((a, b)))
        if j is not None:
            return ratio[j]
        with np.errstate(invalid="ignore", divide="ignore"):
            return length(a, b) / scale

    for name, (la, lb), (ra, rb) in SYMMETRIC_BONES:  # four bone pairs
        lft = length(la, lb)
        rgt = length(ra, rb)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.maximum(lft, rgt) / np.minimum(lft, rgt)
            longer = np.maximum(lft, rgt) / scale
            both = [rel_length(la, lb), rel_length(ra, rb)]
            has = np.isfinite(both[0]).any() or np.isfinite(both[1]).any()
            # The non-NaN values of the concatenation, in its order (no concatenated copy).
            f = np.concatenate([x[~np.isnan(x)] for x in both])
            typical, spread = _median_mad_of_values(f) if has else (np.nan, np.nan)
            spread = 1.4826 * spread
            # Longer than usual by the data set's own spread too, not only by a fixed factor.
            big = (r > o.symmetry_ratio) & (longer > max(o.symmetry_long * typical,
                                                        typical + 4 * spread))  # fmt: skip
            big &= certain[la] & certain[lb] & certain[ra] & certain[rb]
        measures[f"anatomy.symmetry.{name}"] = (r, o.symmetry_ratio)
        c.rows(
            big,
            "anatomy.symmetry",
            "warning",
            r,
            o.symmetry_ratio,
            f"{NAMES[la]},{NAMES[lb]},{NAMES[ra]},{NAMES[rb]}",
            f"Left and right {name.replace('_', ' ')} lengths differ more than the body allows.",
        )
    for name, a, b, cc in JOINTS:
        ang = geo.joint_angle(pts, a, b, cc)
        measures[f"anatomy.joint_angle.{name}"] = (ang, o.min_joint_angle)
        # In 2D a folded joint is impossible only when both bones lie in the image plane: a bone
        # tilted toward the camera can make any 2D angle. Judge the joint only where both bones
        # show at least 90 % of their full length (the data set's 90th percentile) and their
        # points are confident.
        seen = certain[a] & certain[b] & certain[cc]
        for u, v in ((a, b), (b, cc)):
            with np.errstate(invalid="ignore", divide="ignore"):
                r_uv = rel_length(u, v)
                full = nanquantile_of(r_uv, 0.9) if np.isfinite(r_uv).any() else np.nan
                seen &= r_uv >= 0.9 * full
        with np.errstate(invalid="ignore"):
            bad = (ang < o.min_joint_angle) & seen
        c.rows(
            bad,
            "anatomy.joint_angle",
            "warning",
            ang,
            o.min_joint_angle,
            f"{NAMES[a]},{NAMES[b]},{NAMES[cc]}",
            f"The {name.replace('_', ' ')} is folded beyond the human range.",
        )
    # Left/right swaps: shoulder and hip lines pointing opposite ways, or crossed arm chains.
    (lsx, lsy), (rsx, rsy) = pts.xy(layout.L_SHOULDER), pts.xy(layout.R_SHOULDER)
    (lhx, lhy), (rhx, rhy) = pts.xy(layout.L_HIP), pts.xy(layout.R_HIP)
    shx, shy, hpx, hpy = lsx - rsx, lsy - rsy, lhx - rhx, lhy - rhy
    # hypot(shx, shy) and hypot(hpx, hpy): the cached distances (skeleton bones).
    n_sh = length(layout.L_SHOULDER, layout.R_SHOULDER)
    n_hp = length(layout.L_HIP, layout.R_HIP)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = geo.dot_xy(shx, shy, hpx, hpy) / (n_sh * n_hp)
        wide = (n_sh > 0.3 * scale) & (n_hp > 0.2 * scale)
        swap_torso = wide & (cos < -0.5)
    c.rows(
        swap_torso,
        "anatomy.lr_swap",
        "warning",
        cos,
        -0.5,
        "left_shoulder,right_shoulder,left_hip,right_hip",
        "The shoulder and hip lines point opposite ways: left/right labels swapped.",
    )
    for name, (ej, wj) in (
        ("wrists", ((layout.L_ELBOW, layout.R_ELBOW), (layout.L_WRIST, layout.R_WRIST))),
        ("ankles", ((layout.L_KNEE, layout.R_KNEE), (layout.L_ANKLE, layout.R_ANKLE))),
    ):
        with np.errstate(invalid="ignore", divide="ignore"):
            straight = length(wj[0], ej[0]) + length(wj[1], ej[1])
            crossed = length(wj[0], ej[1]) + length(wj[1], ej[0])
            r = straight / crossed
            bad = (r > 2.5) & (length(ej[0], ej[1]) > 0.3 * scale)
        c.rows(
            bad,
            "anatomy.lr_swap",
            "warning",
            r,
            2.5,
            f"{NAMES[wj[0]]},{NAMES[wj[1]]}",
            f"The {name} sit at the opposite side's joints: left/right labels swapped.",
        )


def check_stick(
    ds,
    c: _Collector,
    o: ValidateOptions,
    summary: dict,
    measures: dict,
    pts: geo.Points | None = None,
) -> object:
    """Stick checks from the one stick judgement (:func:`toolkit.stick.assess`).

    ``pts``: the keypoint columns already read (reused by the judgement).

    Returns:
        The :class:`toolkit.stick.StickAssessment` (``has_stick`` False when the data set
        carries no stick: then one data-set-level finding and nothing per frame).
    """
    a = assess(ds, AssessOptions(use_images=o.use_images, use_time=o.use_time), points=pts)
    for f in a.dataset_findings:
        c.dataset(f["code"], f["severity"], f["message"], f["value"], f["threshold"],
                  f["keypoints"])  # fmt: skip
    summary["notes"].extend(a.notes)
    summary["stick_missing_fraction"] = _r(1 - a.summary.get("stick_tip_fraction", 0.0))
    summary["stick_calibration"] = {
        k: v for k, v in a.summary.items() if k not in ("stick_tip_fraction",)
    }
    if not a.has_stick:
        return a
    proposals = _proposals(a, len(ds))
    for chk in a.checks:
        # The severity is read at the flagged rows only (an object array over all rows compares
        # slowly), then each severity's rows in ascending order, as the per-severity masks.
        idx = np.flatnonzero(chk.mask)
        sev_at = np.broadcast_to(np.asarray(chk.severity), np.shape(chk.mask))[idx]
        for sev in SEVERITIES:
            c.rows_at(idx[sev_at == sev], chk.code, sev, chk.value, chk.threshold,
                      chk.keypoints, chk.message, proposal=proposals)  # fmt: skip
    for name in ("stick.too_long", "stick.grip_far"):
        chk = a.check(name)
        if chk is not None:
            thr = np.asarray(chk.threshold, dtype=np.float64)
            measures[name] = (
                np.asarray(chk.value, dtype=np.float64),
                float(nanmedian_of(thr)) if thr.ndim else float(thr),
            )
    codes = group_codes(ds)
    by_group = [
        (str(codes[1][codes[0][chunk[0]]]), _r(_first_valid(a.subject_length[chunk])))
        for chunk in _group_chunks(codes[0])  # loops over groups
    ]
    summary["stick_length_by_group"] = dict(sorted(by_group, key=lambda kv: kv[0]))
    return a


def _proposals(a, n: int) -> np.ndarray:
    """``(n,)`` object array: the proposed fix of each row (a dict), None where there is none.

    Proposals ride with the findings of their rows (plain lists: one dict per proposed row):
    ``{"keypoints": [[k, x, y], ...], "method", "confidence", "decisive"}`` with the grip and the
    tip that have a finite proposal, coordinates rounded to 2 decimals and the confidence to 3.
    The lists are built per kind of row (grip and tip, grip only, tip only), column-wise.
    """
    proposals = np.empty(n, dtype=object)  # None everywhere
    rows = np.flatnonzero(a.proposal_reason > 0)
    if not len(rows):
        return proposals
    pr = np.round(a.proposal[rows], 2)
    fin = np.isfinite(pr).all(-1)
    # The names of each distinct reason set (a handful), gathered to the rows.
    uniq, inv = _unique_small(a.proposal_reason[rows])
    methods = reason_names(uniq)[inv]
    conf = np.round(a.proposal_confidence[rows], 3)
    dec = a.decisive[rows].any(1)
    with _built_untraced():  # many small acyclic containers: the cyclic collector would rescan them
        _fill_proposals(proposals, rows, pr, fin, methods, conf, dec)
    return proposals


@contextlib.contextmanager
def _built_untraced() -> Iterator[None]:
    """:func:`toolkit.dataset.gc_paused`; the containers built meanwhile skip the young generation.

    On the first allocation after the pause the collector would walk every container built in
    it (its young generation), then again when they age; they are acyclic and live on in the
    findings. ``gc.freeze`` then ``gc.unfreeze`` moves the tracked objects to the oldest
    generation (two list splices, no walk); skipped when the process has frozen objects of its
    own (``unfreeze`` would release them).
    """
    own = gc.get_freeze_count() == 0
    with gc_paused():
        yield
        if own:
            gc.freeze()
            gc.unfreeze()


def _fill_proposals(proposals, rows, pr, fin, methods, conf, dec) -> None:
    """Write the proposal dicts of :func:`_proposals` at ``rows`` (column-wise per kind of row)."""
    gk, tk = layout.GRIP, layout.TIP
    both, grip_only, tip_only = (
        fin[:, 0] & fin[:, 1],
        fin[:, 0] & ~fin[:, 1],
        ~fin[:, 0] & fin[:, 1],
    )
    for kind, sel in enumerate((both, grip_only, tip_only)):  # three kinds of rows
        j = np.flatnonzero(sel)
        if not len(j):
            continue
        gx, gy, tx, ty = pr[j].reshape(len(j), 4).T.tolist()
        rest = (methods[j].tolist(), conf[j].tolist(), dec[j].tolist())
        if kind == 0:
            recs = [
                {
                    "keypoints": [[gk, a, b], [tk, c, d]],
                    "method": m,
                    "confidence": cf,
                    "decisive": e,
                }
                for a, b, c, d, m, cf, e in zip(gx, gy, tx, ty, *rest, strict=True)
            ]
        elif kind == 1:
            recs = [
                {"keypoints": [[gk, a, b]], "method": m, "confidence": cf, "decisive": e}
                for a, b, m, cf, e in zip(gx, gy, *rest, strict=True)
            ]
        else:
            recs = [
                {"keypoints": [[tk, c, d]], "method": m, "confidence": cf, "decisive": e}
                for c, d, m, cf, e in zip(tx, ty, *rest, strict=True)
            ]
        out = np.empty(len(j), dtype=object)
        out[:] = recs
        proposals[rows[j]] = out


def _first_valid(x: np.ndarray) -> float:
    """The first non-NaN value (as ``groupby().first()``), NaN when there is none."""
    ok = np.flatnonzero(~np.isnan(x))
    return float(x[ok[0]]) if len(ok) else np.nan


def check_temporal(ds, c: _Collector, o: ValidateOptions, scale: np.ndarray) -> None:
    """Video checks on the body: one-frame spikes of any keypoint.

    The stick's course over time is judged by :func:`check_stick`.
    """
    video = c.video_id
    frame = c.frame
    isv = np.isfinite(video) & np.isfinite(frame)
    if not isv.any():
        return
    kp = ds.keypoints
    order = np.flatnonzero(isv)
    order = order[np.lexsort((frame[order], video[order]))]
    xy = geo._xy(kp)[order]  # (M, 19, 2)
    v = video[order]
    f = frame[order]
    s = scale[order]
    same_prev = np.r_[False, (v[1:] == v[:-1]) & (f[1:] - f[:-1] <= 2)]
    same_next = np.r_[same_prev[1:], False]
    prev = np.roll(xy, 1, 0)
    nxt = np.roll(xy, -1, 0)
    d_prev = geo.norm(xy - prev) / s[:, None]
    d_next = geo.norm(xy - nxt) / s[:, None]
    d_skip = geo.norm(prev - nxt) / s[:, None]
    inner = same_prev & same_next
    step = np.where(same_prev[:, None], d_prev, np.nan)
    # Robust motion level per video and keypoint.
    med = pd.DataFrame(step).groupby(v).transform("median").to_numpy()
    mad = pd.DataFrame(np.abs(step - med)).groupby(v).transform("median").to_numpy() * 1.4826
    thr = np.maximum(med + o.jump_sigmas * mad, o.jump_min)
    with np.errstate(invalid="ignore"):
        spike = inner[:, None] & (np.minimum(d_prev, d_next) > thr) & (d_skip < 0.5 * thr)
    # Body points only (the stick's course is judged by the stick checks), and not the points
    # a detector itself called uncertain.
    spike[:, layout.NUM_BODY :] = False
    sc = getattr(ds, "scores", None)
    if sc is not None and len(sc):
        with np.errstate(invalid="ignore"):
            spike &= ~(np.asarray(sc, np.float64)[order] < o.low_confidence_anatomy)
    worst = np.nanmax(np.where(spike, np.minimum(d_prev, d_next), -np.inf), 1)
    mask = np.zeros(len(kp), bool)
    mask[order] = spike.any(1)
    val = np.full(len(kp), np.nan)
    val[order] = worst
    thr_row = np.full(len(kp), np.nan)
    thr_row[order] = np.nanmin(np.where(spike, thr, np.inf), 1)
    names = np.full(len(kp), "", dtype=object)
    names[order] = _names_where(spike)
    c.rows(
        mask,
        "temporal.jump",
        "warning",
        val,
        thr_row,
        names,
        "A keypoint jumps away for one frame and back (value: torso sizes).",
    )


def check_plausibility(
    ds, c: _Collector, o: ValidateOptions, summary: dict, measures: dict
) -> None:
    """The beta-VAE plausibility check (``plausibility.vae``), when enabled."""
    res = plausibility.score(ds.keypoints, epochs=o.vae_epochs, seed=o.seed)
    err = res.errors
    finite = np.isfinite(err)
    if finite.sum() < 10:
        summary["notes"].append("plausibility: fewer than 10 scorable poses, VAE check skipped.")
        return
    med = float(np.median(err[finite]))
    mad = float(np.median(np.abs(err[finite] - med)) * 1.4826)
    thr = med + o.vae_mads * max(mad, 1e-6)
    measures["plausibility.vae"] = (err, thr)
    summary["plausibility"] = {
        "median_error": _r(med),
        "threshold": _r(thr),
        "train_seconds": _r(res.seconds),
        "model": repr(res.model),
    }
    with np.errstate(invalid="ignore"):
        c.rows(
            err > thr,
            "plausibility.vae",
            "warning",
            err,
            thr,
            "",
            "The pose reconstructs poorly under a beta-VAE trained on this data set "
            "(value: reconstruction error).",
        )


def _check_body(
    ds,
    c: _Collector,
    o: ValidateOptions,
    summary: dict,
    measures: dict,
    pts: geo.Points,
    stored: tuple,
) -> np.ndarray:
    """The structure checks after :func:`check_stored_points`, then the anatomy checks.

    Returns:
        The body scale (torso sizes, :func:`toolkit.geometry.body_scale`).
    """
    check_structure_rest(ds, c, o, summary, measures, pts, stored)
    scale = geo.body_scale(pts)
    measures["anatomy.torso_px"] = (scale, None)
    check_anatomy(ds, c, o, summary, measures, scale, pts)
    return scale


# ---------------------------------------------------------------------- entry points
def validate(ds, options: ValidateOptions | None = None, **kwargs) -> Report:
    """Run every check on ``ds`` and return a :class:`Report`."""
    o = options or ValidateOptions()
    if kwargs:
        o = ValidateOptions(**{**o.__dict__, **kwargs})
    c = _Collector(ds)  # the frame table, built once for every check
    summary: dict[str, Any] = {
        "n_images": int(len(ds.images)),
        "n_annotations": int(len(ds)),
        "n_videos": int(len(ds.videos)),
        "notes": [],
    }
    measures: dict = {"anatomy.torso_px": None}  # the first measure (set below)
    # Keypoint columns read once, shared by every check.
    pts = geo.Points(ds.keypoints)
    with sharing_group_codes(ds):  # the checks share the subject/stance codes (ds unchanged)
        # The structure checks turn the raw rows into the masked columns: the later checks
        # read those and the distances only.
        stored = check_stored_points(ds, c, o, pts)
        # The stick judgement and the other checks read the masked columns only: the structure
        # and anatomy checks run on a second thread (numpy releases the GIL) while the stick is
        # judged here (the long part, with images: Ctrl-C stops it at once). The stick's
        # findings, summary and measures are its own and join after the others, in the order
        # of a run on one thread.
        stick_c, stick_summary, stick_measures = c.fork(), {"notes": []}, {}
        with concurrent.futures.ThreadPoolExecutor(1, "validate-body") as pool:
            run = contextvars.copy_context().run  # the shared group codes are a context variable
            body = pool.submit(run, _check_body, ds, c, o, summary, measures, pts, stored)
            check_stick(ds, stick_c, o, stick_summary, stick_measures, pts)
            scale = body.result()
        c.join(stick_c)
        summary["notes"].extend(stick_summary.pop("notes"))
        summary.update(stick_summary)
        measures.update(stick_measures)
        del pts
    check_temporal(ds, c, o, scale)
    if o.use_vae:
        check_plausibility(ds, c, o, summary, measures)
    else:
        summary["notes"].append("plausibility: VAE check disabled (--no-vae).")
    findings = c.table()
    _summarise(c.parts, summary)
    return Report(findings=findings, summary=summary, measures=measures)


def validate_dir(
    path: str | Path, options: ValidateOptions | None = None, **kwargs
) -> tuple[Report, Any]:
    """Load and validate a dataset directory; a schema failure is a ``structure.schema`` error.

    Returns:
        ``(report, dataset or None)``.
    """
    import orjson

    path = Path(path)
    ds_file = path / DATASET_FILE if path.is_dir() else path
    if not ds_file.exists():
        raise FileNotFoundError(
            f"Expected a dataset directory with '{DATASET_FILE}', but {path} has none "
            "(create one with `toolkit import SRC --out DATASET`)."
        )
    try:
        doc = orjson.loads(ds_file.read_bytes())
        validate_dataset(doc, ds_file)
    except (InputError, orjson.JSONDecodeError) as exc:
        findings = pd.DataFrame(
            [
                {
                    "code": "structure.schema",
                    "category": "structure",
                    "severity": "error",
                    "row": -1,
                    "ann_id": -1,
                    "image_id": -1,
                    "file_name": None,
                    "video": None,
                    "frame_index": np.nan,
                    "keypoints": "",
                    "value": np.nan,
                    "threshold": np.nan,
                    "message": str(exc),
                }
            ]
        )
        summary = {
            "n_images": 0,
            "n_annotations": 0,
            "n_videos": 0,
            "notes": ["the dataset breaks its schema: no further checks ran"],
        }
        _summarise([("structure.schema", "error", np.array([-1]))], summary)
        return Report(findings=findings, summary=summary), None
    ds = Dataset.load(ds_file.parent, validate=False)
    o = options or ValidateOptions()
    if kwargs.get("use_images", o.use_images) and len(ds):
        ds.require_media("toolkit validate's image evidence (--no-images skips it)")
    return validate(ds, options, **kwargs), ds


def _summarise(parts: list[tuple[str, str, np.ndarray]], summary: dict) -> None:
    """Counts of the findings, from their chunks: ``(code, severity, rows)`` each.

    Every finding of a chunk has its code and severity (``rows``: one per finding, -1 for a
    data-set-level one), so the counts come per chunk, with no pass over the table's strings.
    """
    summary["n_findings"] = int(sum(len(rows) for _, _, rows in parts))
    summary["by_severity"] = {
        s: int(sum(len(rows) for _, sev, rows in parts if sev == s)) for s in SEVERITIES
    }
    counts: dict[str, int] = {}
    worst: dict[str, int] = {}
    for code, sev, rows in parts:  # loops over chunks (one or a few per check)
        counts[code] = counts.get(code, 0) + len(rows)
        worst[code] = max(worst.get(code, -1), SEVERITY_RANK.get(sev, -1))
    order = sorted(counts)  # by code, as sort_index()
    summary["by_code"] = {str(k): int(counts[k]) for k in order}
    summary["severity_by_code"] = {str(k): SEVERITIES[worst[k]] for k in order}
    frame = [rows for _, _, rows in parts]
    errors = [rows for _, sev, rows in parts if sev == "error"]
    for key, rows in (("annotations_with_findings", frame), ("annotations_with_errors", errors)):
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        summary[key] = _n_distinct(r[r >= 0])


def _n_distinct(rows: np.ndarray) -> int:
    """Number of distinct non-negative row indices (a mark per row, no sort or hash)."""
    if not len(rows):
        return 0
    rows = rows.astype(np.int64)
    seen = np.zeros(int(rows.max()) + 1, bool)
    seen[rows] = True
    return int(seen.sum())


def findings_records(findings: pd.DataFrame) -> list[dict]:
    """Findings as JSON-ready dicts (``keypoints`` as a list, missing fields as null)."""
    if not len(findings):
        return []
    df = findings.copy()
    out = []
    cols = {c: df[c].to_numpy(dtype=object) for c in FINDING_COLUMNS if c in df}
    for i in range(len(df)):  # serialisation only
        rec = {}
        for k in ("code", "category", "severity", "message"):
            rec[k] = str(cols[k][i])
        for k in ("ann_id", "image_id"):
            v = int(cols[k][i])
            rec[k] = None if v < 0 else v
        fn = cols["file_name"][i]
        rec["file_name"] = None if fn is None or (isinstance(fn, float)) else str(fn)
        vd = cols["video"][i]
        rec["video"] = None if vd is None or isinstance(vd, float) else str(vd)
        fr = cols["frame_index"][i]
        rec["frame_index"] = None if fr is None or not np.isfinite(fr) else int(fr)
        kps = cols["keypoints"][i]
        rec["keypoints"] = [k for k in str(kps).split(",") if k] if kps else []
        for k in ("value", "threshold"):
            v = cols[k][i]
            rec[k] = None if v is None or not np.isfinite(v) else _r(v)
        prop = cols["proposal"][i] if "proposal" in cols else None
        if isinstance(prop, dict):
            rec["proposal"] = prop
        out.append(rec)
    return out


def _r(x: Any, nd: int = 4) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return round(x, nd) if np.isfinite(x) else None


def flagged_rows(
    findings: pd.DataFrame,
    n: int,
    categories: tuple[str, ...] = ("stick", "temporal"),
    min_severity: str = "warning",
) -> np.ndarray:
    """``(n,)`` bool: annotation rows with a finding in ``categories`` at ``min_severity``+."""
    rank = findings["severity"].map(SEVERITY_RANK).to_numpy()
    sel = findings["category"].isin(categories).to_numpy() & (rank >= SEVERITY_RANK[min_severity])
    rows = findings["row"].to_numpy()[sel]
    out = np.zeros(n, bool)
    out[rows[rows >= 0].astype(int)] = True
    return out
