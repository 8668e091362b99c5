"""Stick correction: make the grip and tip keypoints agree with a rigid stick held in a hand.

Two methods, both vectorised over all annotations (the only Python loops run over videos, and
over image files for the optional image evidence):

``rigid`` (default, data-driven)
    1. **Swap**: when the tip sits at a wrist and the grip far from both, the two are swapped.
    2. **Grip at the hand**: the weapon hand is the wrist nearest the grip. A grip farther than
       ``grip_tolerance`` torso sizes from it is snapped to the wrist plus the data set's typical
       grip offset along the forearm (a robust median over clean-looking frames).
    3. **Stick length per subject (and per video)**: the projected length divided by the torso
       size, over frames that look clean; outliers above median + 3 MAD are dropped and a high
       quantile (0.9) of the rest is the subject's stick length. Never a constant.
    4. **Video**: per video, a Hampel filter on the stick's angle and length over time finds
       spikes and drift episodes; only those frames are repaired, with a Savitzky-Golay fit of
       the cleaned series (so clean frames are untouched and real motion is not lagged).
    5. **Too long** (longer than the subject's stick allows, which is impossible): the tip is
       pulled toward the grip along the stick to the subject length (or only flagged).
    6. **Single images**: no time axis, so use the image. The stick is a thin straight dark
       line; segments from the grip are scored by the mean thin-dark-line response along them
       (a black-hat filtered image), at angles around the labelled one and the stance's typical
       angle to the forearm (robust per-stance statistics). When the labelled segment is poorly
       supported and a nearby segment is clearly better, the best-supported segment's end becomes
       the tip. A short stick (foreshortening) that the image confirms is left alone.

``forearm-ratio`` (the methodology's rule, kept faithful so the benchmark can judge it)
    ``tip = grip + alpha * |forearm| * unit(direction)``, where ``direction`` is the labelled
    stick direction rotated (slerped) toward the forearm direction until it is at most
    ``max_deviation`` degrees from it. Its assumptions: the stick is ``alpha`` forearm lengths
    long (a real baston is ~2.5-3 forearm lengths, so ``alpha = 1.35`` makes it far too short),
    and the stick continues the forearm line (many stances hold it far from that line, and
    foreshortening of the forearm shortens the stick with it).

Non-destructive: the result is a new keypoint array; :func:`apply` writes it with provenance
``corrected``, points whose provenance is ``human`` are never touched, and
``keypoints_raw`` is never written. :func:`revert` restores the raw stick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit import geometry as geo
from toolkit import layout

METHODS = ("rigid", "forearm-ratio")
CORRECTION_LOG = "corrections.csv"

# Reason bits: one int per annotation, names resolved only when the log is written.
SWAP, GRIP_SNAP, TOO_LONG, TEMPORAL, IMAGE, TIP_FILLED, FOREARM_RATIO, STANCE = (
    1 << i for i in range(8)
)
REASONS: dict[int, str] = {
    SWAP: "swap",
    GRIP_SNAP: "grip_snap",
    TOO_LONG: "too_long",
    TEMPORAL: "temporal",
    IMAGE: "image_evidence",
    TIP_FILLED: "tip_filled",
    FOREARM_RATIO: "forearm_ratio",
    STANCE: "stance_angle",
}


@dataclass
class CorrectOptions:
    """Knobs of the correction methods (defaults are what ``toolkit correct`` uses).

    Attributes:
        method: ``rigid`` or ``forearm-ratio``.
        grip_tolerance: Grip-to-weapon-wrist distance (torso sizes) beyond which the grip is off.
        too_long_tolerance: Fraction over the subject's stick length that counts as too long.
        length_quantile: Quantile of clean-frame normalised lengths taken as the stick length.
        fix_grip: Snap an off grip (else only flag it).
        fix_too_long: Rescale a too-long stick (else only flag it).
        use_time: Use the temporal filter on video frames.
        use_images: Use image evidence on single images (needs the image files).
        hampel_window: Half-window (frames) of the Hampel filter.
        hampel_sigmas: Outlier threshold in robust standard deviations.
        stance_sigmas: Single images without image evidence: a stick-forearm angle farther than
            this many robust SDs from its stance's centre is rotated back to it.
        stance_min_deg: Floor (degrees) on that threshold.
        alpha: ``forearm-ratio``: stick length in forearm lengths.
        max_deviation: ``forearm-ratio``: largest allowed stick-forearm angle (degrees).
    """

    method: str = "rigid"
    grip_tolerance: float = 0.3
    too_long_tolerance: float = 0.12
    length_quantile: float = 0.9
    fix_grip: bool = True
    fix_too_long: bool = True
    use_time: bool = True
    use_images: bool = True
    hampel_window: int = 10
    hampel_sigmas: float = 3.0
    stance_sigmas: float = 4.0
    stance_min_deg: float = 35.0
    alpha: float = 1.35
    max_deviation: float = 20.0


@dataclass
class CorrectionResult:
    """What a correction would change; nothing is written until :func:`apply`.

    Attributes:
        keypoints: ``(N, 19, 3)`` corrected points (only grip and tip differ from the input).
        changed: ``(N, 2)`` bool, grip / tip changed.
        reasons: ``(N,)`` int bit set of :data:`REASONS` for changes.
        flags: ``(N,)`` int bit set of problems found but left as they are.
        stick_length: ``(N,)`` the subject's stick length in torso sizes used per row.
        method: The method name.
        notes: Remarks for the user (e.g. "images unavailable: image evidence skipped").
    """

    keypoints: np.ndarray
    changed: np.ndarray
    reasons: np.ndarray
    flags: np.ndarray
    stick_length: np.ndarray
    method: str
    notes: list[str] = field(default_factory=list)

    @property
    def n_changed(self) -> int:
        return int(self.changed.any(1).sum())

    def __repr__(self) -> str:
        return (
            f"CorrectionResult(method={self.method!r}, n={len(self.keypoints)}, "
            f"changed={self.n_changed}, flagged={int((self.flags > 0).sum())})"
        )


# ---------------------------------------------------------------------- statistics
def reason_names(bits: np.ndarray) -> np.ndarray:
    """``(N,)`` int bit sets -> ``(N,)`` strings like ``"swap;too_long"`` (vectorised)."""
    bits = np.asarray(bits, dtype=np.int64)
    out = np.full(len(bits), "", dtype=object)
    for bit, name in REASONS.items():
        has = (bits & bit) > 0
        out[has] = np.where(out[has] == "", name, out[has] + ";" + name)
    return out


def group_keys(ds) -> tuple[np.ndarray, np.ndarray]:
    """Per annotation: the stick-length group (subject, and video when any) and the stance.

    Returns:
        ``(N,)`` object arrays ``group`` and ``stance`` (``""`` when unknown).
    """
    g_codes, g_labels, st_codes, st_labels = group_codes(ds)
    return g_labels[g_codes], st_labels[st_codes]


def group_codes(ds) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`group_keys` as integer codes and their labels (no per-annotation strings).

    Returns:
        ``(group_codes (N,), group_labels (G,), stance_codes (N,), stance_labels (S,))`` with
        ``group_labels[group_codes]`` and ``stance_labels[stance_codes]`` equal to
        :func:`group_keys`; equal labels share one code.
    """
    # Per image first (images <= annotations), then one gather to the annotation rows; labels
    # are built for the distinct (subject, video) pairs only.
    img = ds.images
    row_of = pd.Index(img["id"].to_numpy()).get_indexer(ds.annotations["image_id"].to_numpy())
    s_codes, s_uniq = pd.factorize(img["subject"].to_numpy(dtype=object), use_na_sentinel=True)
    vid = img["video_id"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    v_codes, v_uniq = pd.factorize(vid, use_na_sentinel=True)
    pair = (s_codes + 1).astype(np.int64) * (len(v_uniq) + 1) + (v_codes + 1)
    p_codes, p_uniq = pd.factorize(pair)
    s_names = np.array(["?", *[str(x) for x in s_uniq]], dtype=object)
    v_names = np.array(["", *[f"|v{int(x)}" for x in v_uniq]], dtype=object)
    labels = s_names[p_uniq // (len(v_uniq) + 1)] + v_names[p_uniq % (len(v_uniq) + 1)]
    lab_codes, lab_uniq = pd.factorize(labels.astype(object))
    group = lab_codes[p_codes][row_of]
    st_codes, st_uniq = pd.factorize(img["stance"].to_numpy(dtype=object), use_na_sentinel=True)
    st_names = np.array(["", *[str(x) for x in st_uniq]], dtype=object)
    name_codes, name_uniq = pd.factorize(st_names)
    stance = name_codes[st_codes + 1][row_of]
    return (
        group,
        np.asarray(lab_uniq, dtype=object),
        stance,
        np.asarray(name_uniq, dtype=object),
    )


def _group_chunks(codes: np.ndarray) -> list[np.ndarray]:
    """Row indices of each group (ascending within a group), in the order of the codes.

    One stable sort (a radix sort on small integer codes), shared by every per-group statistic
    over the same keys.
    """
    if not len(codes):
        return []
    small = codes.min() >= np.iinfo(np.int16).min and codes.max() <= np.iinfo(np.int16).max
    order = np.argsort(codes.astype(np.int16) if small else codes, kind="stable")
    cuts = np.flatnonzero(np.diff(codes[order])) + 1
    return np.split(order, cuts)


def _per_group(
    values: np.ndarray, codes: np.ndarray, func, chunks: list[np.ndarray] | None = None
) -> np.ndarray:
    """``func`` over each group's finite values -> ``(n_groups,)`` (NaN for empty groups).

    One stable sort (or the ``chunks`` of :func:`_group_chunks`), then one call per group
    (groups are subjects, videos or stances: few).
    """
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    out = np.full(n_groups, np.nan)
    if not n_groups:
        return out
    for chunk in _group_chunks(codes) if chunks is None else chunks:  # one pass per group
        v = values[chunk]
        v = v[np.isfinite(v)]
        if len(v):
            out[codes[chunk[0]]] = func(v)
    return out


def robust_group_quantile(
    values: np.ndarray,
    keys: np.ndarray,
    usable: np.ndarray,
    quantile: float = 0.9,
    min_count: int = 5,
    cut: float = 1.3,
) -> tuple[np.ndarray, np.ndarray]:
    """A robust upper level of ``values`` per group, broadcast back to the rows.

    Values above ``cut`` times the group's 75th percentile are dropped first (a too-long label
    is at least 1.4 times the real length, while foreshortening only ever shortens), then the
    ``quantile`` of the rest is the level.

    Returns:
        ``(level (N,), count (N,))``: NaN level where the group has fewer than ``min_count``
        usable values.
    """
    k = pd.factorize(keys)[0]
    level, count = _robust_level(values, k, usable, quantile, min_count, cut)
    return level[k], count[k]


def _robust_level(
    values: np.ndarray,
    k: np.ndarray,
    usable: np.ndarray,
    quantile: float = 0.9,
    min_count: int = 5,
    cut: float = 1.3,
    chunks: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`robust_group_quantile` per group code ``k``: ``(level, count)`` per group."""
    v = np.where(usable & np.isfinite(values), values, np.nan)
    if not len(k):
        return np.zeros(0), np.zeros(0)
    chunks = _group_chunks(k) if chunks is None else chunks
    q75 = _per_group(v, k, lambda x: np.quantile(x, 0.75), chunks)[k]
    with np.errstate(invalid="ignore"):
        kept = np.where(v <= cut * q75, v, np.nan)
    level = _per_group(kept, k, lambda x: np.quantile(x, quantile), chunks)
    count = np.bincount(k, weights=np.isfinite(kept), minlength=k.max() + 1)
    level[count < min_count] = np.nan
    return level, count


def subject_stick_length(
    length: np.ndarray,
    group: np.ndarray,
    usable: np.ndarray,
    quantile: float = 0.9,
    min_count: int = 5,
    band: float = 1.25,
    coded: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """``(N,)`` the stick length (torso sizes) per subject and video, robustly.

    ``coded``: ``(codes, labels)`` of ``group`` when known (see :func:`group_codes`).

    1. Levels per video (``subject|vN`` groups) and per subject (all of the subject's frames)
       with :func:`robust_group_quantile`.
    2. The data set's level ``D``: the median of the subjects' levels (the stick-to-torso ratio
       varies little between adults holding the same kind of stick).
    3. A group level above ``band * D`` is not trusted (a long drift episode of too-long labels
       can fill a video's upper quartile); the subject's level stands in, then ``D``.
    4. The larger of the trusted video and subject levels is used (a video that keeps the stick
       pointing at the camera underestimates the length; only shortening is legitimate), and
       never less than ``D / band``.
    """
    # Keys are factorised once; subjects are derived from the distinct groups only.
    if coded is None:
        g_codes, g_uniq = pd.factorize(np.asarray(group, dtype=object))
    else:
        g_codes, g_uniq = coded
    s_of_g, s_uniq = pd.factorize(np.array([str(g).split("|v")[0] for g in g_uniq], dtype=object))
    s_codes = s_of_g[g_codes]
    g_level, _ = _robust_level(length, g_codes, usable, quantile, min_count)
    s_level, _ = _robust_level(length, s_codes, usable, quantile, min_count)
    per_group, per_subject = g_level[g_codes], s_level[s_codes]
    o_level, _ = _robust_level(length, np.zeros(len(length), np.int64), usable, quantile, 1)
    overall = o_level[np.zeros(len(length), np.int64)]
    # One level per subject that has one (as ``groupby(subject).first().dropna()``).
    present = np.bincount(s_codes, minlength=len(s_uniq)) > 0 if len(s_codes) else []
    levels = pd.Series(s_level[present]).dropna()
    fin = overall[np.isfinite(overall)]
    d = float(levels.median()) if len(levels) else (float(fin.max()) if len(fin) else np.nan)
    if not np.isfinite(d):
        return np.full(len(length), np.nan)
    with np.errstate(invalid="ignore"):
        g = np.where(per_group <= band * d, per_group, np.nan)
        sj = np.where(per_subject <= band * d, per_subject, np.nan)
    out = np.fmax(g, sj)
    out = np.where(np.isfinite(out), out, d)
    return np.maximum(out, d / band)


def circular_group_stats(
    angles_deg: np.ndarray,
    keys: np.ndarray,
    usable: np.ndarray,
    min_count: int = 5,
    codes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: robust centre and spread (degrees) of an angle within its group.

    The centre is the circular mean refined by a median of the wrapped residuals; the spread is
    1.4826 * the median absolute residual. Rows of groups with fewer than ``min_count`` usable
    values get NaN.

    ``codes``: integer codes of ``keys`` when known (equal keys, equal codes).

    Returns:
        ``(centre, spread, count)``, each ``(N,)``.
    """
    a = np.where(usable & np.isfinite(angles_deg), angles_deg, np.nan)
    k = pd.factorize(keys)[0] if codes is None else np.asarray(codes)
    if not len(k):
        z = np.zeros(0)
        return z, z, z
    rad = np.radians(a)
    ok = np.isfinite(rad)
    count = np.bincount(k, weights=ok, minlength=k.max() + 1)
    sc = np.bincount(k, weights=np.where(ok, np.cos(rad), 0.0), minlength=k.max() + 1)
    ss = np.bincount(k, weights=np.where(ok, np.sin(rad), 0.0), minlength=k.max() + 1)
    centre = np.degrees(np.arctan2(ss, sc))[k]
    chunks = _group_chunks(k)
    med = _per_group(geo.wrap_degrees(a - centre), k, np.median, chunks)[k]
    centre = geo.wrap_degrees(centre + med)
    spread = 1.4826 * _per_group(np.abs(geo.wrap_degrees(a - centre)), k, np.median, chunks)[k]
    count = count[k]
    bad = count < min_count
    centre[bad] = np.nan
    spread[bad] = np.nan
    return centre, spread, count


@dataclass
class StickStats:
    """Per-annotation geometry and data-set statistics shared by correction and validation.

    Attributes:
        side: ``(N,)`` weapon side (0 left, 1 right, -1 unknown).
        wrist: ``(N, 2)`` weapon wrist.
        forearm: ``(N, 2)`` weapon forearm vector (wrist - elbow).
        scale: ``(N,)`` torso size (px).
        grip_dist: ``(N,)`` grip to weapon wrist, in torso sizes.
        length: ``(N,)`` stick length in torso sizes.
        subject_length: ``(N,)`` the subject's estimated stick length in torso sizes.
        rel_angle: ``(N,)`` stick angle relative to the forearm (degrees).
        stance_angle: ``(N,)`` robust per-stance centre of ``rel_angle``.
        stance_spread: ``(N,)`` robust per-stance spread of ``rel_angle``.
        stance_count: ``(N,)`` usable frames behind the stance statistics.
        grip_offset: Typical grip position beyond the wrist, along the forearm (torso sizes).
        swapped: ``(N,)`` grip and tip look swapped.
        clean: ``(N,)`` the frame looks clean (used for the statistics).
    """

    side: np.ndarray
    wrist: np.ndarray
    forearm: np.ndarray
    scale: np.ndarray
    grip_dist: np.ndarray
    length: np.ndarray
    subject_length: np.ndarray
    rel_angle: np.ndarray
    stance_angle: np.ndarray
    stance_spread: np.ndarray
    stance_count: np.ndarray
    grip_offset: float
    swapped: np.ndarray
    clean: np.ndarray


def detect_swap(
    kp: np.ndarray | geo.Points, tolerance: float, scale: np.ndarray | None = None
) -> np.ndarray:
    """``(N,)`` True where the tip is at a wrist and the grip is not (grip and tip swapped).

    Geometry alone cannot tell a swap from a grip pushed away from the hand while the stick
    points at the camera (its tip then also sits near the hand); :func:`confirm_swap` asks the
    image.
    """
    p = geo.as_points(kp)
    s = geo.body_scale(p) if scale is None else scale
    near = []
    for k in (layout.GRIP, layout.TIP):
        d = [p.dist(w, k) for w in (layout.L_WRIST, layout.R_WRIST)]
        d = [np.where(np.isfinite(x), x, np.inf) for x in d]
        with np.errstate(invalid="ignore"):
            near.append(np.minimum(d[0], d[1]) / s)
    dg, dt = near
    with np.errstate(invalid="ignore"):
        return (dt < tolerance) & (dg > tolerance) & (dt < 0.5 * dg)


def stick_stats(
    kp: np.ndarray | geo.Points,
    group: np.ndarray,
    stance: np.ndarray,
    opts: CorrectOptions | None = None,
    scale: np.ndarray | None = None,
    codes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> StickStats:
    """Compute :class:`StickStats` for ``kp`` (vectorised; ``scale`` = body scale if known).

    ``kp`` may be a :class:`toolkit.geometry.Points` (its cached columns are reused);
    ``codes``: :func:`group_codes` of the data set, to group without hashing strings again.
    """
    opts = opts or CorrectOptions()
    p = geo.as_points(kp)
    side = geo.weapon_side(p)
    wx, wy = p.pick(np.where(side >= 0, layout.L_WRIST + side, -1))
    ex, ey = p.pick(np.where(side >= 0, layout.L_ELBOW + side, -1))
    fx, fy = wx - ex, wy - ey
    wrist = np.stack([wx, wy], 1)
    forearm = np.stack([fx, fy], 1)
    scale = geo.body_scale(p) if scale is None else scale
    gx, gy = p.xy(layout.GRIP)
    tx, ty = p.xy(layout.TIP)
    # Distances from the shared cache (the weapon side's wrist per row; NaN when unknown).
    left, right = side == 0, side == 1
    with np.errstate(invalid="ignore", divide="ignore"):
        g_w = np.where(left, p.dist(layout.L_WRIST, layout.GRIP), np.nan)
        grip_dist = np.where(right, p.dist(layout.R_WRIST, layout.GRIP), g_w) / scale
        length = p.dist(layout.TIP, layout.GRIP) / scale
    swapped = detect_swap(p, opts.grip_tolerance, scale)
    with np.errstate(invalid="ignore"):
        clean = (grip_dist <= opts.grip_tolerance) & ~swapped & np.isfinite(length)
    subject_length = subject_stick_length(
        length, group, clean, opts.length_quantile, coded=None if codes is None else codes[:2]
    )
    rel = geo.angle_between_xy(fx, fy, tx - gx, ty - gy)
    with np.errstate(invalid="ignore"):
        usable = clean & (length <= subject_length * (1 + opts.too_long_tolerance))
        # Strongly foreshortened sticks have unreliable directions: keep them out of the angle
        # statistics.
        usable &= length >= 0.6 * subject_length
    st_centre, st_spread, st_count = circular_group_stats(
        rel, stance, usable, codes=None if codes is None else codes[2]
    )
    fn = np.where(right, p.dist(layout.R_WRIST, layout.R_ELBOW), np.nan)
    fn = np.where(left, p.dist(layout.L_WRIST, layout.L_ELBOW), fn)
    with np.errstate(invalid="ignore", divide="ignore"):
        ux = np.where(fn > 0, fx / fn, np.nan)
        uy = np.where(fn > 0, fy / fn, np.nan)
        along = geo.dot_xy(gx - wx, gy - wy, ux, uy) / scale
    with np.errstate(invalid="ignore"):
        g_ok = clean & np.isfinite(along)
    grip_offset = float(np.median(along[g_ok])) if g_ok.any() else 0.0
    return StickStats(
        side=side,
        wrist=wrist,
        forearm=forearm,
        scale=scale,
        grip_dist=grip_dist,
        length=length,
        subject_length=subject_length,
        rel_angle=rel,
        stance_angle=st_centre,
        stance_spread=st_spread,
        stance_count=st_count,
        grip_offset=grip_offset,
        swapped=swapped,
        clean=clean,
    )


# ---------------------------------------------------------------------- temporal
def hampel(
    x: np.ndarray,
    half_window: int = 10,
    n_sigmas: float = 3.0,
    min_scale: float = 0.0,
    iterations: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Iterated Hampel filter: points farther than ``n_sigmas`` robust SDs from the rolling median.

    A drift episode of several frames biases the rolling median toward itself, so the filter is
    iterated: flagged samples are left out and the median and MAD are recomputed from the rest,
    which lets the flags grow over the whole episode.

    Args:
        x: ``(T,)`` series (NaN allowed: ignored, never flagged).
        half_window: Frames on each side.
        n_sigmas: Threshold in robust standard deviations (1.4826 * rolling MAD).
        min_scale: Floor on the robust SD (so a perfectly still series does not flag noise).
        iterations: Passes (1 = the classic filter).

    Returns:
        ``(outlier mask, rolling median of the inliers)``.
    """
    x = np.asarray(x, dtype=np.float64)
    w = 2 * half_window + 1
    out = np.zeros(len(x), bool)
    med = x.copy()
    for _ in range(max(1, iterations)):
        s = pd.Series(np.where(out, np.nan, x))
        med = s.rolling(w, center=True, min_periods=1).median().to_numpy()
        mad = (s - med).abs().rolling(w, center=True, min_periods=1).median().to_numpy()
        sd = np.maximum(1.4826 * np.nan_to_num(mad, nan=0.0), min_scale)
        with np.errstate(invalid="ignore"):
            new = (np.abs(x - med) > n_sigmas * sd) & np.isfinite(x)
        if np.array_equal(new, out):
            break
        out = new
    return out, med


def _fill_savgol(
    t: np.ndarray, x: np.ndarray, bad: np.ndarray, window: int = 9, order: int = 2
) -> np.ndarray:
    """Values for the ``bad`` samples: interpolate the good ones, then a Savitzky-Golay fit.

    Only the returned values at ``bad`` positions are meant to be used; good samples keep their
    own values, so real motion is never smoothed away or lagged.
    """
    from scipy.signal import savgol_filter

    good = ~bad & np.isfinite(x)
    if good.sum() < 2:
        return x.copy()
    filled = np.interp(t, t[good], x[good])
    if len(filled) >= window:
        filled = savgol_filter(filled, window, order, mode="interp")
    return filled


def temporal_repair(
    kp: np.ndarray,
    stats: StickStats,
    video: np.ndarray,
    frame: np.ndarray,
    editable_tip: np.ndarray,
    opts: CorrectOptions,
) -> tuple[np.ndarray, np.ndarray]:
    """Repair tip spikes and drift episodes in each video (angle and length over time).

    Returns:
        ``(new tip (N, 2), repaired mask (N,))``.
    """
    xy = geo._xy(kp, [layout.GRIP, layout.TIP])
    grip, tip = xy[:, 0], xy[:, 1]
    new_tip = tip.copy()
    repaired = np.zeros(len(kp), bool)
    vec = tip - grip
    length_px = geo.norm(vec)
    ang = geo.angle(vec)
    for vid in pd.unique(video[np.isfinite(video)]):
        rows = np.flatnonzero(video == vid)
        rows = rows[np.argsort(frame[rows], kind="stable")]
        if len(rows) < 5:
            continue
        t = frame[rows].astype(np.float64)
        a = ang[rows].copy()
        ok = np.isfinite(a)
        if ok.sum() < 5:
            continue
        a[ok] = np.degrees(np.unwrap(np.radians(a[ok])))
        ln = length_px[rows]
        med_len = np.nanmedian(ln)
        # Floors: a few degrees / a few % of the stick, so label jitter on a still stick is not
        # taken for an outlier.
        out_a, _ = hampel(a, opts.hampel_window, opts.hampel_sigmas, min_scale=3.0)
        out_l, _ = hampel(
            ln,
            opts.hampel_window,
            opts.hampel_sigmas,
            min_scale=0.04 * med_len if np.isfinite(med_len) else 0.0,
        )
        missing = ~np.isfinite(tip[rows]).all(1) & np.isfinite(grip[rows]).all(1)
        bad = out_a | out_l | missing
        if not bad.any() or (~bad & ok).sum() < 3:
            continue
        a_fit = _fill_savgol(t, a, bad)
        l_fit = _fill_savgol(t, ln, bad)
        theta = np.radians(a_fit)
        cand = grip[rows] + l_fit[:, None] * np.stack([np.cos(theta), np.sin(theta)], 1)
        use = bad & editable_tip[rows] & np.isfinite(cand).all(1)
        new_tip[rows[use]] = cand[use]
        repaired[rows[use]] = True
    return new_tip, repaired


# ---------------------------------------------------------------------- image evidence
def line_response(gray: np.ndarray, width: int = 9) -> np.ndarray:
    """Thin-dark-line response of a grayscale image (morphological black-hat), float32."""
    import cv2

    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width))
    bh = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, k)
    return cv2.GaussianBlur(bh.astype(np.float32), (3, 3), 0)


def _sample(resp: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``resp`` at ``(..., 2)`` points (0 outside the image)."""
    h, w = resp.shape
    x, y = pts[..., 0], pts[..., 1]
    inside = (x >= 0) & (y >= 0) & (x <= w - 1) & (y <= h - 1)
    x = np.clip(np.nan_to_num(x), 0, w - 1.001)
    y = np.clip(np.nan_to_num(y), 0, h - 1.001)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    v = (
        resp[y0, x0] * (1 - fx) * (1 - fy)
        + resp[y0, x0 + 1] * fx * (1 - fy)
        + resp[y0 + 1, x0] * (1 - fx) * fy
        + resp[y0 + 1, x0 + 1] * fx * fy
    )
    return np.where(inside, v, 0.0)


def stick_from_image(
    resp: np.ndarray,
    grip: np.ndarray,
    tip: np.ndarray,
    max_len: np.ndarray,
    prior_angle: np.ndarray | None = None,
    span: float = 75.0,
    step: float = 1.5,
    min_response: float = 12.0,
) -> dict[str, np.ndarray]:
    """Search segments from each grip for the best-supported stick in one image.

    Args:
        resp: Line-response image (:func:`line_response`).
        grip: ``(M, 2)`` grip points.
        tip: ``(M, 2)`` labelled tips (NaN when missing).
        max_len: ``(M,)`` longest plausible stick in pixels.
        prior_angle: ``(M,)`` another direction to search around (e.g. the stance's typical one).
        span: Search ``+-span`` degrees around the labelled (and prior) direction.
        step: Angle step in degrees.
        min_response: Floor of the "on the line" threshold (black-hat units, 0..255).

    Returns:
        Dict of ``(M,)`` ``label_score`` (mean response along the labelled segment),
        ``best_score`` = ``level`` (mean response along the best segment), ``best_angle``, and
        ``best_tip`` ``(M, 2)`` (the best segment's end; NaN when no line was found).
    """
    m = len(grip)
    lab_vec = tip - grip
    lab_ang = geo.angle(lab_vec)
    offs = np.arange(-span, span + 1e-9, step)
    centres = [lab_ang]
    if prior_angle is not None:
        centres.append(prior_angle)
    cand = np.concatenate([c[:, None] + offs[None, :] for c in centres], 1)  # (M, A)
    no_dir = ~np.isfinite(cand)
    cand = np.where(no_dir, np.linspace(-180, 180, cand.shape[1], endpoint=False)[None], cand)
    n_r = 64
    reach = np.where(np.isfinite(max_len), np.maximum(max_len, 8.0), 0.0)
    r = np.linspace(0.0, 1.0, n_r)[None, :] * (reach[:, None] - 3.0) + 3.0  # (M, R) pixels
    th = np.radians(cand)
    dirs = np.stack([np.cos(th), np.sin(th)], -1)  # (M, A, 2)
    pts = grip[:, None, None, :] + dirs[:, :, None, :] * r[:, None, :, None]  # (M, A, R, 2)
    samp = _sample(resp, pts)  # (M, A, R)
    # "On the line" means well above the background's response (most rays miss the stick, so
    # the median sample is background).
    tau = np.maximum(min_response, 4.0 * np.median(samp.reshape(m, -1), 1))  # (M,)
    on = np.where(samp >= tau[:, None, None], 1.0, -1.0)
    # Along each ray the stick ends where the cumulative on-the-line evidence peaks: a short gap
    # (the stick crossing a dark limb) is bridged, the open background past the real end is not.
    # The ray whose peak is highest is the stick (ties: the higher mean response).
    cum = np.cumsum(on, -1)
    end = np.argmax(cum, -1)  # (M, A)
    peak = np.take_along_axis(cum, end[..., None], -1)[..., 0]
    csum = np.cumsum(samp, -1)
    mean_run = np.take_along_axis(csum, end[..., None], -1)[..., 0] / (end + 1)
    score = peak + mean_run / (1.0 + mean_run.max(1, keepdims=True))
    best = np.argmax(score, 1)
    rows = np.arange(m)
    best_ang = cand[rows, best]
    best_end = end[rows, best]
    ok = peak[rows, best] > 0
    best_len = np.where(ok, r[rows, best_end], np.nan)
    level = np.where(ok, mean_run[rows, best], 0.0)
    best_ang, best_len = _refine(resp, grip, best_ang, best_len, level, step)
    bt = np.radians(best_ang)
    best_tip = grip + best_len[:, None] * np.stack([np.cos(bt), np.sin(bt)], 1)
    lab_len = geo.norm(lab_vec)
    lab_pts = grip[:, None, :] + lab_vec[:, None, :] * np.linspace(0.08, 1.0, n_r)[None, :, None]
    lab_score = _sample(resp, lab_pts).mean(1)
    lab_score = np.where(np.isfinite(lab_len), lab_score, np.nan)
    # Thinness of the part of the best segment past the labelled tip: the stick is a thin line,
    # so its centre responds far more than rays 5 px to either side; a dark limb lying along
    # the same direction responds about as much beside its axis.
    u = np.stack([np.cos(bt), np.sin(bt)], 1)
    nrm = np.stack([-u[:, 1], u[:, 0]], 1)
    t0 = np.where(np.isfinite(lab_len), np.minimum(lab_len, best_len), 0.0)
    t1 = np.where(np.isfinite(best_len), best_len, 0.0)
    tt = t0[:, None] + (t1 - t0)[:, None] * np.linspace(0.1, 0.9, 12)[None, :]
    axis = grip[:, None, :] + u[:, None, :] * tt[..., None]
    centre = _sample(resp, axis).mean(1)
    side = np.maximum(
        _sample(resp, axis + 5 * nrm[:, None, :]).mean(1),
        _sample(resp, axis - 5 * nrm[:, None, :]).mean(1),
    )
    ext_thin = np.where(t1 - t0 > 2, centre / np.maximum(side, 1.0), np.nan)
    h, w = resp.shape
    # Where the line runs out of the picture, its visible end is not the stick's end.
    at_border = (
        (best_tip[:, 0] < 3)
        | (best_tip[:, 1] < 3)
        | (best_tip[:, 0] > w - 4)
        | (best_tip[:, 1] > h - 4)
    )
    return {
        "label_score": lab_score,
        "best_score": level,
        "best_tip": best_tip,
        "best_angle": best_ang,
        "level": level,
        "at_border": at_border.astype(float),
        "ext_thin": ext_thin,
    }


def _refine(
    resp: np.ndarray,
    grip: np.ndarray,
    ang: np.ndarray,
    length: np.ndarray,
    level: np.ndarray,
    step: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-step angle (best mean response within +-step) and sub-pixel end (last point along
    the ray, near the coarse end, where the response is still half the line's level)."""
    m = len(grip)
    if not m:
        return ang, length
    ok = np.isfinite(length) & (length > 4)
    L = np.where(ok, length, 10.0)
    offs = np.linspace(-step, step, 13)
    a = ang[:, None] + offs[None, :]  # (M, 13)
    t = np.linspace(0.15, 0.9, 24)
    th = np.radians(a)
    d = np.stack([np.cos(th), np.sin(th)], -1)  # (M, 13, 2)
    pts = grip[:, None, None, :] + d[:, :, None, :] * (
        t[None, None, :, None] * L[:, None, None, None]
    )
    best = np.argmax(_sample(resp, pts).mean(-1), 1)
    new_ang = a[np.arange(m), best]
    th = np.radians(new_ang)
    u = np.stack([np.cos(th), np.sin(th)], -1)  # (M, 2)
    rr = L[:, None] + np.arange(-8.0, 8.01, 0.5)[None, :]  # (M, 33)
    prof = _sample(resp, grip[:, None, :] + u[:, None, :] * rr[..., None])
    above = prof >= 0.5 * level[:, None]
    # Last sample above half level (the profile is on the line before the end).
    idx = np.where(above.any(1), above.shape[1] - 1 - np.argmax(above[:, ::-1], 1), 16)
    new_len = rr[np.arange(m), idx]
    return np.where(ok, new_ang, ang), np.where(ok, new_len, length)


def _frames(ds, rows: np.ndarray, color: bool = False):
    """Yield ``(rows of one image, pixels)`` for annotation ``rows`` (grayscale, or BGR).

    Image files are read with OpenCV; video frames through :class:`toolkit.io.video.VideoReader`
    in frame order (skipped, with no evidence, when that module or the file is unavailable).
    """
    import cv2

    ft = ds.frame_table()
    img_ids = ft["image_id"].to_numpy()
    vid = ft["video_id"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    frame = ft["frame_index"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    names = ft["file_name"].to_numpy(dtype=object)
    is_vid = np.isfinite(vid[rows]) & np.isfinite(frame[rows])
    still = rows[~is_vid]
    order = still[np.argsort(img_ids[still], kind="stable")]
    cuts = np.flatnonzero(np.diff(img_ids[order])) + 1
    for chunk in np.split(order, cuts) if len(order) else []:  # one iteration per image file
        try:
            path = ds.image_path(names[chunk[0]])
        except Exception:  # noqa: BLE001 - a bad name just means no image evidence
            continue
        flag = cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE
        img = cv2.imread(str(path), flag) if path.is_file() else None
        if img is not None:
            yield chunk, img
    vrows = rows[is_vid]
    if not len(vrows):
        return
    try:
        from toolkit.io.video import VideoReader
    except ImportError:  # the video module is optional here
        return
    for v in pd.unique(vid[vrows]):  # one iteration per video
        r = vrows[vid[vrows] == v]
        r = r[np.argsort(frame[r], kind="stable")]
        try:
            reader = VideoReader(ds.video_path(int(v)))
        except Exception:  # noqa: BLE001 - missing/corrupt video: no evidence for it
            continue
        with reader:
            cuts = np.flatnonzero(np.diff(frame[r])) + 1
            for chunk in np.split(r, cuts):  # one iteration per frame
                try:
                    rgb = reader[int(frame[chunk[0]])]
                except Exception:  # noqa: BLE001
                    continue
                code = cv2.COLOR_RGB2BGR if color else cv2.COLOR_RGB2GRAY
                yield chunk, cv2.cvtColor(np.ascontiguousarray(rgb), code)


def image_evidence(
    ds, kp: np.ndarray, rows: np.ndarray, max_len: np.ndarray, prior_angle: np.ndarray | None = None
) -> tuple[dict, int]:
    """Run :func:`stick_from_image` for the given rows, one image (or video frame) at a time.

    Returns:
        ``(dict of (N,)/(N, 2) arrays with NaN where no image was read, n_images_read)``.
    """
    n = len(kp)
    out = {
        "label_score": np.full(n, np.nan),
        "best_score": np.full(n, np.nan),
        "best_tip": np.full((n, 2), np.nan),
        "best_angle": np.full(n, np.nan),
        "level": np.full(n, np.nan),
        "at_border": np.zeros(n),
        "ext_thin": np.full(n, np.nan),
    }
    if not len(rows):
        return out, 0
    xy = geo._xy(kp)
    n_read = 0
    for chunk, gray in _frames(ds, np.asarray(rows)):
        n_read += 1
        resp = line_response(gray)
        res = stick_from_image(
            resp,
            xy[chunk, layout.GRIP],
            xy[chunk, layout.TIP],
            max_len[chunk],
            None if prior_angle is None else prior_angle[chunk],
        )
        for k, v in res.items():
            out[k][chunk] = v
    return out, n_read


def confirm_swap(ds, kp: np.ndarray, candidates: np.ndarray, level: float = 8.0) -> np.ndarray:
    """``(N,)`` False where the image shows no stick along a swap candidate's labelled segment.

    A swapped label still lies on the stick (only its ends are exchanged); a grip pushed off the
    hand does not. Rows without a readable image stay True (geometry decides alone).
    """
    rows = np.flatnonzero(candidates)
    xy = geo._xy(kp)
    length = geo.norm(xy[:, layout.TIP] - xy[:, layout.GRIP])
    ev, n_read = image_evidence(ds, kp, rows, length)
    score = ev["label_score"]
    return ~(np.isfinite(score) & (score < level))


# ---------------------------------------------------------------------- methods
def _editable(ds_source: np.ndarray) -> np.ndarray:
    """``(N, 2)`` grip/tip may be changed (not human)."""
    return ds_source[:, [layout.GRIP, layout.TIP]] != layout.HUMAN


def correct(ds, options: CorrectOptions | None = None, **kwargs) -> CorrectionResult:
    """Compute a correction of the stick points of ``ds`` (the dataset is not modified).

    Args:
        ds: The dataset.
        options: :class:`CorrectOptions`; keyword arguments override its fields.

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
    if opts.method == "forearm-ratio":
        return _forearm_ratio(ds, opts)
    return _rigid(ds, opts)


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


_RIGID_KEYPOINTS = (
    layout.L_SHOULDER,
    layout.R_SHOULDER,
    layout.L_ELBOW,
    layout.R_ELBOW,
    layout.L_WRIST,
    layout.R_WRIST,
    layout.L_HIP,
    layout.R_HIP,
    layout.GRIP,
    layout.TIP,
)


def _rigid(ds, opts: CorrectOptions) -> CorrectionResult:
    kp = ds.keypoints.copy()
    n = len(kp)
    notes: list[str] = []
    edit = _editable(ds.source)
    reasons = np.zeros(n, np.int64)
    flags = np.zeros(n, np.int64)
    codes = group_codes(ds)
    group, stance = codes[1][codes[0]], codes[3][codes[2]]
    video, frame = _video_frame(ds)
    # Keypoint columns read once (only those the rules use); the stick's columns are re-read
    # after each edit below.
    pts = geo.Points(kp, _RIGID_KEYPOINTS, keep_raw=False)

    # 1. swaps (only when a person has touched neither point)
    scale = geo.body_scale(pts)  # body points only: unchanged by the stick fixes below
    swapped = detect_swap(pts, opts.grip_tolerance, scale) & edit.all(1)
    if opts.use_images and swapped.any():
        swapped &= confirm_swap(ds, kp, swapped)
    g, t = kp[swapped, layout.GRIP].copy(), kp[swapped, layout.TIP].copy()
    kp[swapped, layout.GRIP], kp[swapped, layout.TIP] = t, g
    reasons[swapped] |= SWAP
    pts.forget(layout.GRIP, layout.TIP)

    # 2. statistics on the swap-fixed points, then the grip at the weapon hand
    st = stick_stats(pts, group, stance, opts, scale, codes)
    u_fore = geo.unit(st.forearm)
    snap_to = st.wrist + st.grip_offset * st.scale[:, None] * np.nan_to_num(u_fore)
    with np.errstate(invalid="ignore"):
        off = st.grip_dist > opts.grip_tolerance
    off &= np.isfinite(snap_to).all(1)
    if opts.fix_grip:
        fix = off & edit[:, 0]
        kp[fix, layout.GRIP, :2] = snap_to[fix]
        kp[fix, layout.GRIP, 2] = np.maximum(kp[fix, layout.GRIP, 2], 1)
        reasons[fix] |= GRIP_SNAP
        flags[off & ~edit[:, 0]] |= GRIP_SNAP
    else:
        flags[off] |= GRIP_SNAP
    pts.forget(layout.GRIP)

    grip, tip = geo.point(pts, layout.GRIP), geo.point(pts, layout.TIP)
    L = st.subject_length  # torso sizes
    L_px = L * st.scale

    is_video = np.isfinite(video)
    has_grip = np.isfinite(grip).all(1) & edit[:, 1]

    # 3. the image's opinion (image files and video frames), guided by the stance's typical
    #    stick-forearm angle
    n_read = 0
    judged = np.zeros(n, bool)
    if opts.use_images and has_grip.any():
        prior = geo.angle(st.forearm) + st.stance_angle
        ev, n_read = image_evidence(ds, kp, np.flatnonzero(has_grip), 1.3 * L_px, prior)
        if n_read == 0:
            notes.append("no image or video file could be read: image evidence skipped")
        else:
            new_tip, use, judged = decide_image_tip(tip, grip, ev, L_px)
            use &= has_grip
            missing = use & ~(kp[:, layout.TIP, 2] > 0)
            kp[use, layout.TIP, :2] = new_tip[use]
            kp[missing, layout.TIP, 2] = 1
            reasons[use] |= IMAGE
            reasons[missing] |= TIP_FILLED
            pts.forget(layout.TIP)
            tip = geo.point(pts, layout.TIP)

    # 4. video: Hampel + Savitzky-Golay on angle and length over time, for the frames the image
    #    could not judge (no frame, or no visible line)
    if opts.use_time and is_video.any():
        new_tip, rep = temporal_repair(kp, st, video, frame, edit[:, 1] & ~judged, opts)
        rep &= is_video
        was_missing = ~(kp[:, layout.TIP, 2] > 0)
        kp[rep, layout.TIP, :2] = new_tip[rep]
        reasons[rep] |= TEMPORAL
        kp[rep & was_missing, layout.TIP, 2] = 1
        reasons[rep & was_missing] |= TIP_FILLED
        pts.forget(layout.TIP)
        tip = geo.point(pts, layout.TIP)

    # 4b. single images the image could not judge: the stance's typical angle to the forearm
    single = ~is_video & has_grip & ~judged
    if single.any():
        rel = geo.angle_between_xy(
            st.forearm[:, 0], st.forearm[:, 1], tip[:, 0] - grip[:, 0], tip[:, 1] - grip[:, 1]
        )
        dev = geo.wrap_degrees(rel - st.stance_angle)
        with np.errstate(invalid="ignore"):
            rot = single & (
                np.abs(dev) > np.maximum(opts.stance_sigmas * st.stance_spread, opts.stance_min_deg)
            )
        kp[rot, layout.TIP, :2] = grip[rot] + geo.rotate(tip[rot] - grip[rot], -dev[rot])
        reasons[rot] |= STANCE
        pts.forget(layout.TIP)
        tip = geo.point(pts, layout.TIP)

    # 5. too long for the subject's stick: pull the tip in along the stick
    vec = tip - grip
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.hypot(tip[:, 0] - grip[:, 0], tip[:, 1] - grip[:, 1]) / L_px
        # Where the image showed the stick, it has the last word unless the result is far
        # too long (the line may run on into a dark limb or background).
        tol = np.where(judged, max(0.3, opts.too_long_tolerance), opts.too_long_tolerance)
        too_long = ratio > 1 + tol
    if opts.fix_too_long:
        fix = too_long & edit[:, 1]
        kp[fix, layout.TIP, :2] = grip[fix] + geo.unit(vec[fix]) * L_px[fix, None]
        reasons[fix] |= TOO_LONG
        flags[too_long & ~edit[:, 1]] |= TOO_LONG
    else:
        flags[too_long] |= TOO_LONG

    # Every edit above set a reason bit, so only those rows can differ from the input.
    touched = np.flatnonzero(reasons)
    before = ds.keypoints[touched][:, [layout.GRIP, layout.TIP]]
    after = kp[touched][:, [layout.GRIP, layout.TIP]]
    changed = np.zeros((n, 2), bool)
    changed[touched] = ~(np.isclose(before, after, atol=1e-6, equal_nan=True).all(-1))
    changed &= edit
    # Never touch human points, whatever the steps above did.
    keep = ~edit[touched]
    kp[touched[:, None], [layout.GRIP, layout.TIP]] = np.where(keep[..., None], before, after)
    reasons[~changed.any(1)] = 0
    return CorrectionResult(
        keypoints=kp,
        changed=changed,
        reasons=reasons,
        flags=flags,
        stick_length=L,
        method=opts.method,
        notes=notes,
    )


def _video_frame(ds) -> tuple[np.ndarray, np.ndarray]:
    """Per annotation: ``(video_id, frame_index)`` as floats (NaN for single images)."""
    img = ds.images
    index = pd.Index(img["id"].to_numpy())
    ann_img = ds.annotations["image_id"].to_numpy()
    if not index.is_unique:  # not a valid data set; keep the historical lookup
        ft = img.set_index("id").loc[ann_img]
        cols = [ft["video_id"], ft["frame_index"]]
    else:
        row_of = index.get_indexer(ann_img)
        if (row_of < 0).any():
            raise KeyError(f"Annotations refer to unknown image ids: {ann_img[row_of < 0][:5]}")
        cols = [img["video_id"], img["frame_index"]]
    out = [c.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan) for c in cols]
    if index.is_unique:
        out = [o[row_of] for o in out]
    return out[0], out[1]


def decide_image_tip(
    tip: np.ndarray,
    grip: np.ndarray,
    ev: dict,
    L_px: np.ndarray,
    min_gain: float = 1.6,
    min_move: float = 0.12,
    level: float = 8.0,
    same_dir_deg: float = 6.0,
    min_thin: float = 1.8,
    extend: float = 1.25,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the image clearly prefers another segment, its end becomes the tip.

    Three cases move the tip to the best-supported segment's end, all only where the image
    shows a clear line (mean black-hat response ``level`` or more):

    * another direction is clearly better supported (``min_gain`` times the labelled segment's
      support) and its end is more than ``min_move`` stick lengths away (wrong angle, too long);
    * the same direction (within ``same_dir_deg``, up to 15 deg for short labels) but the
      visible line runs on ``extend`` times past the labelled tip, by more than ``min_move``
      stick lengths, not beyond the subject's stick, as a thin line (centre response
      ``min_thin`` times the response 5 px beside it; a dark limb along the stick is not thin),
      from a label at least 0.1 stick lengths long (too short; a foreshortened stick that the
      image shows short stays short);
    * the same direction but the visible line ends ``extend`` times before the labelled tip
      (too long), unless it ends at the picture's border (the stick leaves the frame);
    * the tip is missing.

    Returns:
        ``(candidate tips (N, 2), use mask (N,), judged (N,))``: ``judged`` is where the image
        showed a clear line (its opinion counts, whether or not it moved the tip).
    """
    lab, best, cand = ev["label_score"], ev["best_score"], ev["best_tip"]
    with np.errstate(invalid="ignore", divide="ignore"):
        strong = (ev["level"] >= level) & np.isfinite(cand).all(1) & np.isfinite(grip).all(1)
        # The labelled segment itself lies on a clear line: the image confirms it.
        on_line = ev["label_score"] >= 2 * level
        gain = best / np.maximum(lab, 1e-3)
        move = geo.distance(cand, tip) / L_px
        lab_len = geo.distance(tip, grip)
        best_len = geo.distance(cand, grip)
        # A short label's direction is uncertain (a few pixels of jitter swing it).
        dir_tol = np.clip(np.degrees(np.arctan2(4.0, lab_len)), same_dir_deg, 15.0)
        same_dir = np.abs(geo.wrap_degrees(ev["best_angle"] - geo.angle(tip - grip))) <= dir_tol
        other = (gain > min_gain) & (move > min_move)
        # Extending needs a label with a direction (not a dot: the stick pointing at the camera)
        # and a thin line beyond its tip (not a dark limb lying along the stick).
        thin = ev.get("ext_thin", np.full(len(tip), np.inf)) >= min_thin
        longer = (
            same_dir
            & (best_len > extend * lab_len)
            & (move > min_move)
            & (best_len <= 1.25 * L_px)
            & (lab_len >= 0.1 * L_px)
            & thin
        )
        shorter = (
            same_dir
            & (best_len * extend < lab_len)
            & (move > min_move)
            & ~(ev.get("at_border", np.zeros(len(tip))) > 0)
        )
        missing = ~np.isfinite(tip).all(1)
    use = strong & (other | longer | shorter | missing)
    return cand, use, strong | on_line


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

    from toolkit.fileio import atomic_write_text

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
    from toolkit.dataset import Dataset

    ds = Dataset.load(dataset_dir)
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
