"""One judgement of every stick, shared by ``toolkit validate`` and ``toolkit correct``.

:func:`assess` looks at each annotation's grip and tip with the evidence the data set offers and
returns, per row, what is wrong (a :class:`Check` per kind, with a severity that says how sure it
is), a proposed fix, and whether that fix is *decisive*. ``validate`` reports the checks and
stores the proposals with its findings (the viewer applies one with Enter); ``correct`` applies
only the decisive fixes. First do no harm: a point moves only on

* **time** (video): the track's own course says the tip left it (Hampel outliers of the stick's
  angle and length, floors from the track's frame-to-frame changes), and the image does not
  confirm the label (where it sees the stick along most of an episode's labels, the course is
  what is wrong: a real fast swing); or the image's line carries on, frame by frame, the stick
  a neighbouring frame confirms, while the label has left it;
* **impossible geometry**: a stick far longer than the subject's stick (a projection can only
  shorten a stick), by more than the data set's own spread allows; a grip past twice the data
  set's grip tolerance of a confident, plausible wrist (the hand holds the stick), put back at
  the wrist where the stick from there to the tip is no longer than the subject's;
* **a swap seen both in the geometry and in the image**: the tip at a confident wrist, the grip
  far from both, and the image showing the stick between them;
* **a short stick seen both in the geometry and in the image** (a still, no frames beside): the
  label shorter than the subject's own stick beyond the data set's tolerance, and the image's
  line running on past its tip, thin and as strong as along the label; the tip moves out to
  the line's end, never past the subject's stick.

Everything else (a grip off within that tolerance, an unusual angle, the image preferring another
segment, a missing tip) is flagged with a proposal and left for a person. Thresholds are the data
set's robust statistics (medians, MADs, high quantiles per subject) with anatomical floors, never
constants fitted to one renderer; where the evidence is thin (few frames, no visible sticks,
uncertain wrists) the checks abstain or say "uncertain" rather than "error".
"""

from __future__ import annotations

import concurrent.futures
import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from toolkit import geometry as geo
from toolkit import layout
from toolkit.stick import image as img_ev
from toolkit.stick import stats, temporal

# Reason bits for fixes (the correction log) and proposals.
SWAP, TOO_LONG, TEMPORAL, IMAGE, GRIP, TIP_FILLED = (1 << i for i in range(6))
REASONS: dict[int, str] = {
    SWAP: "swap",
    TOO_LONG: "too_long",
    TEMPORAL: "temporal",
    IMAGE: "image_evidence",
    GRIP: "grip_snap",
    TIP_FILLED: "tip_filled",
}
_KEYS = (
    layout.L_SHOULDER, layout.R_SHOULDER, layout.L_ELBOW, layout.R_ELBOW, layout.L_WRIST,
    layout.R_WRIST, layout.L_HIP, layout.R_HIP, layout.GRIP, layout.TIP,
)  # fmt: skip
#: Anatomical prior of the forearm (elbow-wrist) length in torso sizes, used only when a data set
#: has too few measurable forearms to calibrate its own.
FOREARM_PRIOR = 0.55
#: A grip within this many forearm lengths of the wrist is in the fist (anatomy, not a fit).
GRIP_IN_FIST = 0.3


@dataclass
class AssessOptions:
    """What :func:`assess` may look at, and how much evidence it needs.

    Attributes:
        use_images: Read images / video frames for image evidence.
        use_time: Use the time axis of videos.
        min_group: Fewest usable rows behind a per-subject (or per-stance) statistic.
        wrist_confidence: A wrist score below this is uncertain (detector confidences).
        hampel_window: Half-window (frames) of the temporal filter.
        hampel_sigmas: Its threshold in robust SDs.
    """

    use_images: bool = True
    use_time: bool = True
    min_group: int = 5
    wrist_confidence: float = 0.5
    hampel_window: int = 10
    hampel_sigmas: float = 3.0


@dataclass
class Check:
    """One kind of finding over all rows.

    Attributes:
        code: ``stick.too_long`` etc.
        mask: ``(N,)`` rows with the finding.
        severity: ``(N,)`` ``error`` / ``warning`` / ``info`` (read where ``mask``).
        value, threshold: ``(N,)`` measured value and the threshold it broke.
        keypoints: ``(N,)`` comma-joined keypoint names (or one string for all rows).
        message: What it means.
    """

    code: str
    mask: np.ndarray
    severity: np.ndarray
    value: np.ndarray
    threshold: np.ndarray | float
    keypoints: np.ndarray | str
    message: str


@dataclass
class StickAssessment:
    """The outcome of :func:`assess`.

    Attributes:
        has_stick: The data set carries sticks (else only ``dataset_findings``).
        dataset_findings: Data-set-level findings: ``{code, severity, message, value,
            threshold, keypoints}``.
        build_checks: Builds the per-row checks, read as :attr:`checks` (None: none).
        proposal: ``(N, 2, 2)`` proposed grip and tip (NaN where no change is proposed).
        proposal_reason: ``(N,)`` reason bits of the proposal.
        proposal_confidence: ``(N,)`` 0..1.
        decisive: ``(N, 2)`` grip / tip proposals that ``correct`` applies on its own.
        side: ``(N,)`` weapon side.
        subject_length: ``(N,)`` the subject's stick length (torso sizes).
        summary: Calibration facts (thresholds used, image visibility, counts).
        notes: Remarks for the user.
    """

    has_stick: bool
    dataset_findings: list[dict]
    build_checks: Callable[[], list[Check]] | None
    proposal: np.ndarray
    proposal_reason: np.ndarray
    proposal_confidence: np.ndarray
    decisive: np.ndarray
    side: np.ndarray
    subject_length: np.ndarray
    summary: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _checks: list[Check] | None = field(default=None, init=False, repr=False)

    @property
    def checks(self) -> list[Check]:
        """Per-row checks, built on the first read (``correct`` reads none)."""
        if self._checks is None:
            self._checks = self.build_checks() if self.build_checks is not None else []
            self.build_checks = None  # nor keep what building them needed
        return self._checks

    def check(self, code: str) -> Check | None:
        """The check named ``code`` (None when it did not run)."""
        return next((c for c in self.checks if c.code == code), None)

    def flagged(self) -> np.ndarray:
        """``(N,)`` rows with a warning or an error among the stick checks."""
        out = np.zeros(len(self.side), bool)
        for c in self.checks:
            out |= c.mask & (c.severity != "info")
        return out


def reason_names(bits: np.ndarray, names: dict[int, str] | None = None) -> np.ndarray:
    """``(N,)`` reason bit sets -> ``"swap;too_long"`` strings (vectorised).

    Args:
        bits: Reason bit sets.
        names: Bit -> name (default :data:`REASONS`; ``correct`` adds its own methods' bits).
    """
    bits = np.asarray(bits, dtype=np.int64)
    out = np.full(len(bits), "", dtype=object)
    for bit, name in (REASONS if names is None else names).items():
        has = (bits & bit) > 0
        out[has] = np.where(out[has] == "", name, out[has] + ";" + name)
    return out


def _same(n: int, value: str) -> np.ndarray:
    """``(n,)`` object array holding ``value`` in every row: a read-only view of one element."""
    one = np.empty(1, dtype=object)
    one[0] = value
    return np.broadcast_to(one, (n,))


def _robust_sd(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    if len(x) < 3:
        return np.nan
    return float(1.4826 * stats.median_of(np.abs(x - stats.median_of(x)), overwrite_input=True))


def _group_level(values: np.ndarray, codes: np.ndarray, usable: np.ndarray, q: float, k: int):
    """Per-row high quantile ``q`` of ``values`` in its group (NaN below ``k`` usable rows)."""
    if not len(values):
        return np.zeros(0)
    level, _ = stats._robust_level(values, codes, usable, q, k)
    return level[codes]


def _grip_threshold(
    d_grip: np.ndarray, wconf: np.ndarray, base: np.ndarray, min_group: int
) -> np.ndarray:
    """``(N,)`` grip-to-wrist distance (forearms) beyond which a grip is far, per row.

    A detector's wrist is noisier the lower its confidence, so the data set's own spread of the
    grip-wrist distance is measured per confidence band (quartiles of the wrist scores when they
    vary): median + 3.5 robust SDs of the band, never under the anatomical floor of half a forearm
    (the grip sits in the fist). Errors only ever push a grip away, so the spread is read from
    the lower half of the distribution (``(median - q25) / 0.6745``), which they do not reach.
    """
    n = len(d_grip)
    out = np.full(n, 0.75)
    if base.sum() < min_group:
        return out

    def level(m: np.ndarray) -> float:
        x = d_grip[m]
        med = stats.median_of(x)
        q25 = stats.quantile_of(x, 0.25, overwrite_input=True)  # x: a fresh gather
        return max(0.5, float(med + 3.5 * (med - q25) / 0.6745))

    # A threshold read off few rows is itself uncertain: widen it by 1/sqrt(n).
    overall = level(base) * (1 + 1 / np.sqrt(base.sum()))
    out[:] = overall
    c = wconf[base]
    if base.sum() >= 8 * min_group and np.ptp(c) > 0.05:
        edges = np.unique(
            [stats.quantile_of(c, q, overwrite_input=True) for q in (0.25, 0.5, 0.75)]
        )
        band = np.digitize(wconf, edges)
        for b in np.unique(band):  # at most four bands
            m = base & (band == b)
            if m.sum() >= 2 * min_group:
                out[band == b] = level(m) * (1 + 1 / np.sqrt(m.sum()))
    return out


def _picked_dist(
    pts: geo.Points, side: np.ndarray, left: tuple[int, int], vec: np.ndarray | None = None
) -> np.ndarray:
    """``(N,)`` the weapon side's distance ``left`` (the right twin is ``+1`` on both points).

    From the cached distances of both sides when they are there (or ``vec`` is None): hypot
    ignores signs, so these are the values of ``norm(vec)`` for the picked points. Otherwise
    ``norm(vec)`` (one distance, not two).
    """
    a, b = left
    right = (a if a == layout.GRIP else a + 1, b if b == layout.GRIP else b + 1)
    if vec is not None and not (pts.has_dist(a, b) and pts.has_dist(*right)):
        return geo.norm(vec)
    out = np.where(side == 1, pts.dist(*right), pts.dist(a, b))
    out[side < 0] = np.nan
    return out


def _swapped_hands(ds, side, groups, d_tip_w, thr_g, fore_px, length_px, eligible, o):
    """``(N,)`` the label's grip at the subject's other hand and its tip at the usual one.

    The weapon hand is the wrist nearest the grip, so a swapped label whose tip end lies at the
    other hand "moves" the stick to that hand, and the grip sits at its wrist. The subject's
    usual hand (held in over 4 of 5 of its rows; ``groups``: the subject, and the video, as
    integer codes; a subject who switches hands has none) tells: the tip sits within half the
    grip tolerance of the usual hand's confident, plausible wrist, on a stick longer than 1.5
    forearms (a short one ends at both hands).
    """
    usual = geo.usual_side(side, groups, share=0.8)  # a habit: 4 frames in 5 in that hand
    with np.errstate(invalid="ignore"):
        # The tip at a wrist on a long stick, the grip at the hand that is not the usual one.
        off = (
            eligible & (side >= 0) & (usual >= 0) & (side != usual) & (d_tip_w < 0.5 * thr_g)
            & (length_px > 1.5 * fore_px)
        )  # fmt: skip
    r = np.flatnonzero(off)  # few rows: the rest is read there only
    if not len(r):
        return off
    u, kp, f = usual[r], ds.keypoints, fore_px[r]

    def at(k):  # (len(r), 2) points k (per row) of rows r, NaN where not labelled (v <= 0)
        p = kp[r, k]
        return np.where(p[:, 2:3] > 0, p[:, :2], np.nan)

    wr, el, tp = at(layout.L_WRIST + u), at(layout.L_ELBOW + u), at(np.full(len(r), layout.TIP))
    with np.errstate(invalid="ignore", divide="ignore"):
        d_tip_u = geo.norm(tp - wr) / f
        reach = geo.norm(wr - el) / f  # the usual forearm, in forearms
        conf = _wrist_confidence(ds, np.where(off, usual, -1))[r]
        off[r] = (d_tip_u <= d_tip_w[r] + 1e-9) & (conf >= o.wrist_confidence) & (reach < 1.6)
    return off


def _course_measures(fit_tip, fit_vec, grip, tip, length_px, L_px):
    """``(d_flip, len_fit, t_move)`` of the label against the track's course, ``(N,)`` each.

    The reversed label's angle to the course (degrees), the label's length over the course's,
    and the tip's distance from the course's tip (in stick lengths). NaN where the course has
    no tip (both coordinates NaN: every term is NaN there), so only the rows with one are
    computed, with the same element-wise operations.
    """
    n = len(grip)
    out = [np.full(n, np.nan) for _ in range(3)]
    r = np.flatnonzero(~(np.isnan(fit_tip[:, 0]) & np.isnan(fit_tip[:, 1])))
    if not len(r):
        return tuple(out)
    g, t, fv = grip[r], tip[r], fit_vec[r]
    with np.errstate(invalid="ignore", divide="ignore"):
        out[0][r] = np.abs(geo.wrap_degrees(geo.angle(g - t) - geo.angle(fv)))
        out[1][r] = length_px[r] / geo.norm(fv)
        lr = L_px[r]
        out[2][r] = geo.norm(fit_tip[r] - t) / np.where(np.isfinite(lr), lr, length_px[r])
    return tuple(out)


def _at_rows(conf, m: np.ndarray, n: int) -> np.ndarray:
    """A proposal's confidence at rows ``m``: ``conf`` broadcast to ``n`` rows, or ``conf(m)``."""
    return conf(m) if callable(conf) else np.broadcast_to(conf, (n,))[m]


def _weapon_side(ds, pts: geo.Points, g_codes: np.ndarray) -> np.ndarray:
    """``(N,)`` weapon side (:func:`toolkit.geometry.weapon_side`, the one hand rule).

    The wrist nearest the grip, else the subject's usual hand (the group's where no subject is
    known), else unknown.
    """
    side = geo.weapon_side(pts)
    if (side == geo.UNKNOWN).any():  # the subject's usual hand, only where the grip does not tell
        subj = (
            ds.images.set_index("id")["subject"]
            .reindex(ds.annotations["image_id"])
            .to_numpy(dtype=object)
        )
        side = geo.weapon_side(pts, groups=subj if pd.notna(subj).any() else g_codes)
    return side


def _codes_and_frames(ds) -> tuple:
    """``(stats.group_codes(ds), stats.video_frame(ds))``."""
    return stats.group_codes(ds), stats.video_frame(ds)


def _wrist_confidence(ds, side: np.ndarray) -> np.ndarray:
    """``(N,)`` the weapon wrist's confidence: its score, else 1 if visible (v 2), 0.6 if v 1."""
    kp = ds.keypoints
    n = len(kp)
    idx = np.where(side >= 0, layout.L_WRIST + side, layout.L_WRIST)
    rows = np.arange(n)
    v = kp[rows, idx, 2]
    conf = np.where(v >= 2, 1.0, np.where(v > 0, 0.6, 0.0))
    scores = getattr(ds, "scores", None)
    if scores is not None and len(scores):
        s = np.asarray(scores)[rows, idx].astype(np.float64)  # index first: (N,), not (N, 19)
        conf = np.where(np.isfinite(s), s, conf)
    return np.where(side >= 0, conf, 0.0)


def assess(
    ds, options: AssessOptions | None = None, *, points: geo.Points | None = None
) -> StickAssessment:
    """Judge every stick in ``ds`` (see the module docstring). Nothing is written.

    Args:
        ds: The data set.
        options: :class:`AssessOptions`.
        points: The :class:`toolkit.geometry.Points` of ``ds.keypoints`` when the caller has
            them (``validate``): their columns and distances are reused, not read again.
    """
    o = options or AssessOptions()
    kp = ds.keypoints
    n = len(kp)
    # The group codes factorise the image table's strings (holding the GIL) while the columns
    # below are read in numpy (releasing it): on a second thread, the two overlap.
    pool = concurrent.futures.ThreadPoolExecutor(1, "stick-codes")
    codes = pool.submit(contextvars.copy_context().run, _codes_and_frames, ds)
    pool.shutdown(wait=False)
    # Only the points the stick judgement reads (a block transpose of 10 of the 19 columns).
    shared = points is not None and points.kp is kp
    pts = points if shared else geo.Points(kp, _KEYS, keep_raw=False)
    gx, gy = pts.xy(layout.GRIP)
    tx, ty = pts.xy(layout.TIP)
    grip = np.stack([gx, gy], 1)
    tip = np.stack([tx, ty], 1)
    g_ok = np.isfinite(gx) & np.isfinite(gy)  # np.isfinite(grip).all(1), column-wise
    t_ok = np.isfinite(tx) & np.isfinite(ty)
    length_px = pts.dist(layout.GRIP, layout.TIP)  # hypot ignores signs: norm(tip - grip)
    # A "stick" a pixel or two long is no stick (e.g. a tip filled at the grip).
    with np.errstate(invalid="ignore"):
        t_ok &= ~(g_ok & (length_px < 2.0))
    proposal = np.full((n, 2, 2), np.nan)
    p_reason = np.zeros(n, np.int64)
    p_conf = np.zeros(n)
    decisive = np.zeros((n, 2), bool)
    summary: dict = {}
    notes: list[str] = []
    ds_findings: list[dict] = []
    empty = StickAssessment(
        False, ds_findings, None, proposal, p_reason, p_conf, decisive,
        np.full(n, geo.UNKNOWN), np.full(n, np.nan), summary, notes,
    )  # fmt: skip
    frac_tip = float(t_ok.mean()) if n else 0.0
    summary["stick_tip_fraction"] = round(frac_tip, 4)
    if n == 0 or frac_tip < 0.05:
        any_grip = bool(g_ok.any())
        ds_findings.append(
            {
                "code": "stick.missing",
                "severity": "info",
                "message": (
                    f"{int((~t_ok).sum())} of {n} annotations have no stick tip"
                    + (" (grips only: a body detector's guess at the wrist?)" if any_grip else "")
                    + ": this data set carries no stick, so no per-frame stick checks ran."
                ),
                "value": 1 - frac_tip,
                "threshold": 0.95,
                "keypoints": "stick_grip,stick_tip",
            }
        )
        return empty

    src_g, src_t = ds.source[:, layout.GRIP], ds.source[:, layout.TIP]  # only these two columns
    edit_g = (src_g != layout.HUMAN) & (src_g != layout.INTERPOLATED)
    edit_t = (src_t != layout.HUMAN) & (src_t != layout.INTERPOLATED)
    (g_codes, g_labels, st_codes, st_labels), (video, frame) = codes.result()
    side = _weapon_side(ds, pts, g_codes)
    scale = geo.body_scale(pts)
    wx, wy = pts.pick(np.where(side >= 0, layout.L_WRIST + side, -1))
    ex, ey = pts.pick(np.where(side >= 0, layout.L_ELBOW + side, -1))
    wrist = np.stack([wx, wy], 1)
    elbow = np.stack([ex, ey], 1)
    fore_len = _picked_dist(pts, side, (layout.L_ELBOW, layout.L_WRIST), wrist - elbow)
    with np.errstate(invalid="ignore", divide="ignore"):
        fore_ratio = fore_len / scale
    # The forearm reference: the upper quartile of each subject's forearm/torso ratio (the
    # unforeshortened forearms; higher quantiles follow a detector's wrist noise), else the data
    # set's, else the anatomical prior.
    usable_f = np.isfinite(fore_ratio) & (fore_ratio > 0)
    f_level = _group_level(fore_ratio, g_codes, usable_f, 0.75, o.min_group)
    ds_f = (
        float(stats.quantile_of(fore_ratio[usable_f], 0.75, overwrite_input=True))
        if usable_f.sum() >= o.min_group
        else FOREARM_PRIOR
    )
    f_level = np.where(np.isfinite(f_level), f_level, ds_f)
    fore_px = f_level * scale
    wconf = _wrist_confidence(ds, side)
    with np.errstate(invalid="ignore", divide="ignore"):
        # A wrist far past the forearm's reach. A subject seen mostly with the forearm towards
        # the camera has a level below its true forearm: its reach is at least the prior's.
        plausible = ~(fore_ratio > 1.6 * np.fmax(f_level, FOREARM_PRIOR))
    confident = (wconf >= o.wrist_confidence) & plausible & np.isfinite(wx) & np.isfinite(wy)
    summary["forearm_torso_ratio"] = round(ds_f, 4)

    # ------------------------------------------------------------------ grip vs wrist
    with np.errstate(invalid="ignore", divide="ignore"):
        # The weapon wrist's distance to the grip, as weapon_side measured it (norm(grip - wrist)).
        d_grip = _picked_dist(pts, side, (layout.L_WRIST, layout.GRIP)) / fore_px
        # Tip near either wrist (for swaps).
        d_tip_w = (
            np.fmin(pts.dist(layout.TIP, layout.L_WRIST), pts.dist(layout.TIP, layout.R_WRIST))
            / fore_px
        )
    base = confident & np.isfinite(d_grip)
    thr_g = _grip_threshold(d_grip, wconf, base, o.min_group)
    thr_g_err = np.maximum(1.0, 2 * thr_g)
    summary["grip_far_threshold_forearms"] = (
        round(float(stats.nanmedian_of(thr_g)), 3) if n else None
    )
    with np.errstate(invalid="ignore"):
        # The tip at a wrist and the grip away from both; or, whatever the wrist's noise, the
        # grip two of the data set's grip tolerances away while the tip is within one.
        swap = (
            g_ok & t_ok & (d_tip_w < 0.5 * d_grip)
            & (((d_tip_w < 0.5 * thr_g) & (d_grip > thr_g) & confident)
               | ((d_grip > np.maximum(1.5, 2 * thr_g)) & (d_tip_w < thr_g)))
        )  # fmt: skip
        swap_hand = _swapped_hands(
            ds, side, g_codes, d_tip_w, thr_g, fore_px, length_px, g_ok & t_ok & ~swap, o
        )
        swap |= swap_hand
        far = g_ok & (d_grip > thr_g) & ~swap
    # Off grips: back to the wrist at the data set's usual offset along the forearm.
    u_fore = geo.unit(wrist - elbow, fore_len)
    with np.errstate(invalid="ignore"):
        along = geo.dot_xy(gx - wx, gy - wy, u_fore[:, 0], u_fore[:, 1]) / fore_px
    ok_al = base & ~far & ~swap & np.isfinite(along)
    off = (
        float(stats.median_of(along[ok_al], overwrite_input=True))
        if ok_al.sum() >= o.min_group
        else 0.0
    )
    snap = wrist + off * fore_px[:, None] * np.nan_to_num(u_fore)
    # ------------------------------------------------------------------ length
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio_t = length_px / scale
    clean_like = g_ok & t_ok & ~swap & ~far
    # A first estimate of the subjects' sticks: how far out the image is searched, and the
    # data set's tolerance of a label's length (the spread of all clean-looking labels).
    first = _length_levels(ratio_t, clean_like, (g_codes, g_labels), o.min_group)
    tol_w, tol_e = first[2:]
    L_px = first[0] * scale

    # ------------------------------------------------------------------ image evidence
    # From the tip, the image's line back to the hand is scored where a grip could be off it: a
    # confident wrist the grip is not already far from, and a window of the wrist's own noise.
    with np.errstate(invalid="ignore"):
        fan_rows = confident & ~far & ~swap & t_ok & (d_grip > 0.1)
    window = np.where(fan_rows, thr_g * fore_px, np.nan)
    ev, vis = _read_image_evidence(
        ds, o, grip, tip, L_px, elbow, g_ok, clean_like, summary, notes, (wrist, window)
    )
    usable_img = ev is not None and vis["usable"]
    # The line along the label stops early (and the label's outer part is off it).
    stops_early, outer_off = _stops_early(ev, t_ok, usable_img)

    # ------------------------------------------------------------------ time
    tr = temporal.track_codes(ds, video) if o.use_time else np.full(n, -1)
    in_track = (tr >= 0).any()  # without tracks the tips are not read
    tim = temporal.tip_outliers(
        grip, np.where(t_ok[:, None], tip, np.nan) if in_track else tip, tr, frame,
        o.hampel_window, o.hampel_sigmas, wrist=wrist,
    )  # fmt: skip

    # ------------------------------------------------------------------ length
    # The subject's stick is the upper end of its labelled lengths; a label the image sees end
    # early, or that leaves its track's course, may be a too-long error and is no evidence of
    # it (a long drift fills a video's upper decile: its own length is no reference for it).
    length_rows = clean_like & ~tim["outlier"] & ~outer_off
    subj_len, own_len = _refined_length(
        ratio_t, clean_like, length_rows, first, (g_codes, g_labels), o.min_group
    )
    L_px = subj_len * scale
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = ratio_t / subj_len
    summary["too_long_threshold"] = round(1 + tol_w, 3)
    summary["too_long_error_threshold"] = round(1 + tol_e, 3)
    length_known = np.isfinite(subj_len)
    if not length_known.any():
        notes.append("too few clean-looking sticks to estimate stick lengths: length not judged")
    # The length is judged wherever the grip is not known to be off: a grip far from an
    # uncertain wrist may well be right (the wrist is the doubt), though no fix of its length
    # is applied on that word.
    sure_grip = clean_like | (g_ok & t_ok & ~swap & far & ~confident)
    with np.errstate(invalid="ignore"):
        too_long = sure_grip & length_known & (ratio > 1 + tol_w)
        impossible = too_long & clean_like & (ratio > 1 + tol_e)
        # Over the subject's stick by half the tolerance (1.5 robust SDs of the labels' spread
        # about it): a longish label, where the image's word that it ends early is a warning.
        longish = ratio > 1 + 0.5 * tol_w

    if usable_img:
        z_lab, z_best = ev["z_label"], ev["z_best"]
        strong = max(6.0, 0.5 * float(vis["median_z"]))
        confirmed = z_lab >= 3.0
        with np.errstate(invalid="ignore"):
            lab_ang = geo.angle(tip - grip)
            d_ang = np.abs(geo.wrap_degrees(ev["best_angle"] - lab_ang))
            # Another direction stands out of the fan, starting at the grip (not a line passing
            # through it), while the label does not.
            other = (
                t_ok & (z_lab < 1.5) & (z_best >= strong) & (ev["z_opposite"] < 2.0)
                & (d_ang > 12.0) & np.isfinite(ev["best_end"])
            )  # fmt: skip
            judged_end = ev["label_len"] >= img_ev.MIN_LABEL_PX
            # Of a label over the subject's stick, the outer part need only keep under a quarter
            # of the inner part's support: the line fades before the labelled tip.
            ends_early = stops_early & (
                (ev["z_outer"] < 0.5)
                | ((ratio > 1.05) & (ev["z_outer"] < LABEL_SHARE * ev["z_inner"]))
            )
            # The line runs on, thin, well past the labelled tip (not past the subject's stick),
            # at about the label's own strength (the same stick, not a faint texture beyond it).
            runs_on = (
                t_ok & judged_end & (ev["z_inner"] >= 3.0) & confirmed
                & np.isfinite(ev["label_end"]) & (ev["label_end"] > 1.25 * ev["label_len"])
                & (ev["label_end"] - ev["label_len"] > img_ev.END_PRECISION) & (ev["thin"] >= 1.5)
                & (ev["z_beyond"] >= 3.0) & (ev["beyond_rel"] >= img_ev.SAME_LINE)
                & ~(ev["label_end"] > 1.15 * L_px) & ~ev["at_border"]
            )  # fmt: skip
            shows_tip = (
                g_ok & ~t_ok & (z_best >= strong) & (ev["z_opposite"] < 2.0)
                & np.isfinite(ev["best_end"])
            )  # fmt: skip
            # A clear line along the label's inner part, none along its last stretch (colour
            # against the sides, any polarity): the label runs past the stick's end. Or the
            # ridge stops early, and the last stretch is another object: its colour changes
            # along it and its line is a fifth of the inner part's at most.
            line_stops = (
                t_ok & (ev["t_outer"] < img_ev.LINE_T_RATIO * ev["t_inner"])
                & (((ev["t_inner"] > img_ev.LINE_T_CLEAR) & (ev["t_outer"] < img_ev.LINE_T_NONE))
                   | (stops_early & (ev["colour_change"] > img_ev.COLOUR_CHANGE_OTHER)))
            )  # fmt: skip
        grip_line = _grip_off_line(
            ds, ev, snap, tip, elbow, confident & ~far & ~swap & t_ok, d_grip, thr_g
        ) | _grip_off_tip_line(ev, strong, fore_px)
    else:
        confirmed = other = ends_early = runs_on = shows_tip = np.zeros(n, bool)
        grip_line = confirmed
        line_stops = confirmed

    # ------------------------------------------------------------------ time: swaps, episodes
    # A swap seen in time: the label left the course, and the label turned end for end lies on
    # it (the image cannot see a swap: both labels cover the same pixels).
    fit_vec = tim["fit_tip"] - grip
    d_flip, len_fit, t_move = _course_measures(tim["fit_tip"], fit_vec, grip, tip, length_px, L_px)
    with np.errstate(invalid="ignore"):
        # A confident wrist holds the labelled grip and the tip is out of the hand: the ends
        # are where a held stick's are, and a swap would put the grip a stick away from it.
        held = confident & (d_grip <= thr_g) & (d_tip_w > thr_g)
        time_swap = (
            tim["outlier"] & g_ok & t_ok & (d_flip < 20.0) & (len_fit > 0.8)
            & (len_fit < 1.25) & ~held
        )  # fmt: skip
    # Or the label's ends cross those of the frames on both sides (a track too fast for a
    # course still never turns a held stick end for end in a frame).
    turned_by = temporal.turned_runs(grip, tip, tr, frame)  # (tracks only with use_time)
    turned_run = np.isfinite(turned_by) & ~held & ~time_swap
    time_swap |= turned_run
    turn = 180.0 - d_flip  # degrees between the label and the course
    with np.errstate(invalid="ignore"):
        turned = turn > 2 * temporal.STEP_ANGLE  # the course turns off the label
    on_line = _on_line(ev, confirmed, usable_img) | _seen_turned(
        ev, strong if usable_img else np.inf, turned
    )
    with np.errstate(invalid="ignore"):
        big = t_move > 0.1
    # A grip drifting off the hand: the frames beside a run of far grips whose grip stays beyond
    # the track's usual distance from its confident wrist are the run's ramps.
    far_ramp = temporal.extend_runs(far & confident, d_grip, confident & g_ok & ~swap, tr, frame)
    # A label whose grip is off the hand leaves the course because of its grip: the tip, very
    # likely right, is not time's to move.
    cand_t = tim["outlier"] & ~swap & ~time_swap & big & ~(far & confident) & ~far_ramp
    long_sure = too_long & clean_like & ~far_ramp  # nor is a length its grip explains
    t_out = _episode_veto(cand_t, on_line, tim["weak"], tr, frame, turned)

    # ------------------------------------------------------------------ proposals
    def propose(mask, g_new, t_new, bit, conf, dec_g=None, dec_t=None):
        m = mask & (p_reason == 0)  # the first (most decisive) proposal of a row wins
        if g_new is not None:
            proposal[m, 0] = g_new[m]
        if t_new is not None:
            proposal[m, 1] = t_new[m]
        p_reason[m] |= bit
        p_conf[m] = _at_rows(conf, m, n)
        if dec_g is not None:
            decisive[m, 0] = dec_g[m]
        if dec_t is not None:
            decisive[m, 1] = dec_t[m]

    # Swaps: decisive with a confident wrist and the image showing the stick between them.
    swap_seen = np.zeros(n, bool)
    if usable_img:
        cand = np.flatnonzero(swap & confident)
        swap_seen = img_ev.segment_confirms(ds, tip, grip, cand, elbow)
    # A short (foreshortened) stick is not swapped on the geometry's word: a grip slipped off the
    # hand toward the camera puts the labels where a swap would (the tip at the wrist, the grip a
    # stick's length away), and swapping them would move a correct tip.
    with np.errstate(invalid="ignore"):
        long_enough = np.where(np.isfinite(L_px), length_px >= 0.5 * L_px, length_px > 2 * fore_px)
    swap_seen &= long_enough & ~swap_hand  # (which end the hand holds is the subject's habit)
    # Time sees a swap on its own (the geometry may agree or, for a short stick, not tell).
    # (Per-row confidences as functions of the proposed rows: computed there only.)
    propose(
        time_swap, tip, grip, SWAP | TEMPORAL, lambda m: np.where(swap[m], 0.95, 0.9), time_swap,
        time_swap,
    )  # fmt: skip
    propose(
        swap, tip, grip, SWAP, lambda m: np.where(swap_seen[m], 0.95, 0.7), swap_seen, swap_seen
    )
    # A grip past the error tolerance of a confident, plausible wrist (twice the spread of the
    # data set's own grip-wrist distances, at least a forearm) is impossible geometry: the hand
    # holds the stick. The grip goes back to the wrist at the usual offset, where the stick from
    # there to the labelled tip is no longer than the subject's (else the nearest wrist need
    # not be the hand that holds it, and the fix is only proposed, below).
    with np.errstate(invalid="ignore"):
        grip_impossible = far & confident & (d_grip > thr_g_err)
        r_g = np.flatnonzero(grip_impossible)  # few rows: the new length is read there only
        grip_impossible[r_g] = geo.distance(tip[r_g], snap[r_g]) <= (1 + tol_w) * L_px[r_g]
    propose(grip_impossible, snap, None, GRIP, 0.9, grip_impossible)
    # Time: outliers of a reliable track. Where the image also shows the stick on another line
    # from the grip (two witnesses that the label is off), the image's line is the fix: the
    # track's course is interpolated over the episode, the image sees the stick itself.
    if usable_img:
        bt = np.radians(ev["best_angle"])
        bdir = np.stack([np.cos(bt), np.sin(bt)], 1)
        blen = np.where(ev["at_border"], length_px, ev["best_end"])
        blen = np.where(np.isfinite(L_px), np.fmin(blen, 1.1 * L_px), blen)
        # The two witnesses must agree with each other: the image's line is nearer the track's
        # course than the label is (else the image saw another line, a limb, on the other side,
        # and the course alone speaks).
        with np.errstate(invalid="ignore"):
            course = geo.angle(fit_vec)
            agree = np.abs(geo.wrap_degrees(ev["best_angle"] - course)) < np.abs(
                geo.wrap_degrees(geo.angle(tip - grip) - course)
            )
        both = t_out & other & agree
        propose(both, None, grip + bdir * blen[:, None], TEMPORAL | IMAGE, 0.95, None, both)
    # The image's line carries on, frame by frame, the stick a neighbouring frame's image
    # confirms, and the label has left it: two witnesses (the image, and the frames beside), so
    # the tip turns onto the line (its length stays the label's).
    chain, chain_tip = _image_chain(
        ev, strong if usable_img else np.inf, t_ok & ~swap & ~time_swap & ~too_long & ~far,
        grip, tip, length_px, tr, frame,
    )  # fmt: skip
    propose(chain, None, chain_tip, TEMPORAL | IMAGE, 0.9, None, chain)
    # The image's line runs on past the label in neighbouring frames of a track, to about the
    # same length: the stick seen twice, and a label that falls short of it in both (a drift).
    # The tip moves out along the label to where the line ends.
    seen_short, run_tip = _seen_short(ev, runs_on, grip, tip, tr, frame)
    propose(seen_short, None, run_tip, TEMPORAL | IMAGE, 0.85, None, seen_short)
    # A still has no frames beside: there the second witness is the subject's own stick. The
    # line runs on past a label shorter than it beyond the data set's tolerance of a label's
    # length; the tip moves out along the label to the line's end, never past the subject's
    # stick (a projection only shortens a stick).
    still_short, still_tip = _still_short(
        ev, runs_on & clean_like & own_len & (tr < 0), ratio, tol_w, grip, tip, L_px
    )
    propose(still_short, None, still_tip, IMAGE, 0.8, None, still_short)
    # The image's line ends early here and in a neighbouring frame, and the label is longer than
    # the track's usual stick (its upper quartile) beyond the data set's tolerance: two
    # witnesses of a long drift (a warning; the line's end is proposed).
    long_drift, drift_fix, drift_tip = _seen_long(
        ev, ends_early, outer_off, np.where(length_rows, length_px, np.nan), grip, tip,
        1 + tol_w, tr, frame, ~other & ~far & ~swap,
    )  # fmt: skip
    # Where such a run lasts three frames and its line ends at the track's usual length, the
    # image, the frames beside and the track's clean-looking frames agree: the tip moves to the
    # line's end. (Where the label is longer than the subject's stick, the length rule below
    # speaks: the subject's stick is a steadier reference than one frame's line, which can end
    # where something hides the stick.)
    drift_fix &= ~too_long
    propose(drift_fix, None, drift_tip, TOO_LONG | TEMPORAL | IMAGE, 0.85, None, drift_fix)
    # A course more than a right angle off the label is no drift of the label (an error that
    # large is a swap, judged on its own) but the course failing across a fast swing: its fix
    # is proposed, not applied.
    with np.errstate(invalid="ignore"):
        strong_t = t_out & ~tim["weak"] & ~(turn > 90.0)
    propose(strong_t, None, tim["fit_tip"], TEMPORAL,
            lambda m: np.clip(tim["deviation"][m] / 3, 0.5, 0.95), None, strong_t)  # fmt: skip
    # Impossible length: pull the tip in along the stick (to the image's end of the line when
    # the image shows it, else the subject's length).
    with np.errstate(invalid="ignore"):
        img_len = ev["label_end"] if usable_img else np.full(n, np.nan)
        use_img_len = np.isfinite(img_len) & (img_len > 0.5 * L_px) & (img_len < 1.05 * L_px)
    # Never more than 15 % inside the subject's stick (the smallest error worth a person's time):
    # a line can fade, or pass behind something, before the stick ends, and a pull to there would
    # trade a too-long tip for a too-short one.
    new_len = np.where(
        use_img_len, np.fmax(img_len, np.exp(-temporal.STEP_LOG_LENGTH) * L_px), L_px
    )
    # Read only where the stick is too long (every proposal below that uses it).
    pulled = np.full((n, 2), np.nan)
    r = np.flatnonzero(too_long)
    g_r = grip[r]
    pulled[r] = g_r + geo.unit(tip[r] - g_r, length_px[r]) * new_len[r, None]
    # Applied only against the subject's own length (a stand-in level says nothing of its reach).
    propose(impossible, None, pulled, TOO_LONG, 0.9, None, impossible & long_sure & own_len)
    # Longer than the subject's stick and the image's line ending before the labelled tip: two
    # independent witnesses, so the tip moves to where the line ends (at most 15 % inside the
    # subject's stick, as above).
    seen_long = long_sure & ends_early & use_img_len
    propose(seen_long, None, pulled, TOO_LONG | IMAGE, 0.85, None, seen_long)
    # Longer than the subject's stick beyond the data set's spread: the pull along the label is
    # monotone toward the truth (a projection only shortens a stick, so the true tip lies at or
    # inside the subject's length), so it is applied too, where the subject's length rests on
    # enough sticks (a subject seen in few frames may never have shown its stick in full), and
    # is the subject's own (where the data set's level stands in for one out of its band, the
    # subject's build may differ: its stick is not known to be shorter).
    well_known = own_len & (
        stats.subject_support(length_rows, coded=(g_codes, g_labels)) >= 4 * o.min_group
    )
    propose(too_long, None, pulled, TOO_LONG, 0.75, None, long_sure & well_known)
    # A ramp episode (one step opens it, the label ramps back) rests on a line through its
    # flanks: its fix is proposed, not applied.
    propose(t_out, None, tim["fit_tip"], TEMPORAL, 0.6)
    # The image: other direction / line ends early / runs on / shows a missing tip.
    if usable_img:
        propose(other, None, grip + bdir * blen[:, None], IMAGE, 0.6)
        udir = geo.unit(tip - grip)
        propose(ends_early | long_drift, None, grip + udir * ev["label_end"][:, None], IMAGE, 0.6)
        propose(runs_on, None, grip + udir * ev["label_end"][:, None], IMAGE, 0.5)
        # Where the label runs past the stick's end, the tip proposed is where the ridge's line
        # ends, if it ends before the last stretch (the part with no line).
        with np.errstate(invalid="ignore"):
            stops_at = (ev["label_end"] >= 0.3 * ev["label_len"]) & (
                ev["label_end"] < img_ev.OUTER_PART[0] * ev["label_len"]
            )
        propose(line_stops & stops_at, None, grip + udir * ev["label_end"][:, None], IMAGE, 0.5)
        propose(shows_tip, None, grip + bdir * blen[:, None], IMAGE | TIP_FILLED, 0.5)
    # Missing tips inside a reliable track: the neighbours' course (never applied alone).
    propose(tim["missing"] & ~t_ok, None, tim["fit_tip"], TEMPORAL | TIP_FILLED, 0.5)
    propose((far & confident) | far_ramp, snap, None, GRIP, 0.6)
    propose(grip_line, snap, None, GRIP, 0.7)
    decisive[:, 0] &= edit_g
    decisive[:, 1] &= edit_t

    # ------------------------------------------------------------------ checks
    # Built when first read (``validate`` reads them, ``correct`` does not): the findings'
    # severities, values and the forearm angle's per-stance statistics cost a fifth of a run.
    def build_checks() -> list[Check]:
        checks: list[Check] = []
        right = (side == 1).astype(np.intp)
        grip_wrist = np.array(["stick_grip,left_wrist", "stick_grip,right_wrist"], object)[right]
        tip_wrist = np.array(["stick_tip,left_wrist", "stick_tip,right_wrist"], object)[right]
        sev = _same(n, "warning")

        def add(code, mask, severity, value, threshold, keypoints, message):
            checks.append(Check(code, mask, severity, value, threshold, keypoints, message))

        add(
            "stick.tip_missing", g_ok & ~t_ok, _same(n, "error"), 1.0, 0.0,
            "stick_tip", "The grip is labelled but the tip is missing.",
        )  # fmt: skip
        add(
            "stick.grip_missing", ~g_ok & t_ok, _same(n, "error"), 1.0, 0.0,
            "stick_grip", "The tip is labelled but the grip is missing.",
        )  # fmt: skip
        add(
            "stick.swap", swap | time_swap,
            np.where((confident & ~swap_hand) | time_swap, "error", "warning"),
            np.where(swap, d_grip, np.where(turned_run, turned_by, d_flip)),
            np.where(swap, thr_g, 20.0),
            "stick_grip,stick_tip",
            "Grip and tip look swapped: the tip sits at the hand and the grip away from it, or the "
            "tip at the subject's usual hand and the grip at the other (value: grip to wrist, "
            "forearm lengths), or, in video, the label turned end for end lies on "
            "the track's course or on the frame before (value: degrees between them).",
        )  # fmt: skip
        add(
            "stick.grip_far", (far & confident) | far_ramp,
            np.where(d_grip > thr_g_err, "error", "warning"), d_grip, thr_g,
            grip_wrist,
            "The grip is far from a confident weapon wrist, or (video) beside frames where it is "
            "and still beyond the track's usual distance (value: forearm lengths).",
        )  # fmt: skip
        add(
            "stick.grip_off_line", grip_line, sev, d_grip, GRIP_IN_FIST, grip_wrist,
            "The stick's line in the image runs from the weapon wrist to the tip and passes by the "
            "labelled grip: the grip looks off the hand (value: grip to wrist, forearm lengths).",
        )  # fmt: skip
        add(
            "stick.grip_wrist_disagree", far & ~confident, _same(n, "info"), d_grip,
            thr_g, grip_wrist,
            "The grip and the weapon wrist disagree, and the wrist is uncertain (low confidence "
            "or implausible): either may be off (value: forearm lengths).",
        )  # fmt: skip
        add(
            "stick.too_long", too_long, np.where(impossible, "error", "warning"), ratio,
            1 + tol_w, "stick_grip,stick_tip",
            "The stick is longer than the subject's stick can look (value: length / the "
            "subject's estimated stick length).",
        )  # fmt: skip
        # The angle to the forearm, judged per stance (foreshortening and real variety make angles
        # alone weak evidence).
        rel = geo.angle_between_xy(wx - ex, wy - ey, tx - gx, ty - gy)
        with np.errstate(invalid="ignore"):
            usable_a = clean_like & ~too_long & (ratio >= 0.6)
        centre, spread, _ = stats.circular_group_stats(
            rel, st_codes, usable_a, min_count=max(o.min_group, 10), codes=st_codes
        )
        dev = np.abs(geo.wrap_degrees(rel - centre))
        thr_a = np.maximum(4 * spread, 35.0)
        with np.errstate(invalid="ignore"):
            atyp = clean_like & (ratio >= 0.45) & (dev > thr_a) & ~too_long
        # The image alone cannot tell a wrong label from a stick it does not show (hidden, faint)
        # beside another line: its findings are warnings only where the geometry agrees, and
        # information (with the proposed fix attached) otherwise.
        if usable_img:
            with np.errstate(invalid="ignore"):
                shortish = ratio < 0.9
            # A line from the grip as strong as the data set's typical labelled stick, with the
            # label on nothing, on a still image (in video, the track's course speaks for it).
            with np.errstate(invalid="ignore"):
                clear = (z_best >= float(vis["median_z"])) & (z_lab < 0.5) & ~tim["judged"]
            add(
                "stick.image_mismatch", (other | chain) & ~too_long & ~far,
                np.where(atyp | clear | chain, "warning", "info"), d_ang, 12.0,
                "stick_grip,stick_tip",
                "The labelled stick is not on a line in the image, and another line starts at the "
                "grip; in video, a warning where that line carries on the stick of the frames "
                "beside (value: degrees between them).",
            )  # fmt: skip
            add(
                "stick.image_ends_early", (ends_early | long_drift) & ~too_long & ~far & ~other,
                np.where(longish | long_drift, "warning", "info"),
                ev["label_len"] / ev["label_end"], 1.3, "stick_tip",
                "The stick's line ends before the labelled tip: too long? A warning for a longish "
                "stick, or where a neighbouring frame sees the line end at the same length and the "
                "label is longer than the track's usual stick, and on the frames beside that the "
                "drift ramps through (value: labelled / visible length).",
            )  # fmt: skip
            add(
                "stick.image_line_stops", line_stops & ~too_long & ~far & ~other,
                _same(n, "warning"), ev["t_outer"], img_ev.LINE_T_NONE, "stick_tip",
                "The stick's line is clear along the label's inner part and absent from its last "
                "stretch, or it stops early and the last stretch changes colour (another object): "
                "the label runs past the stick's end (value: the last stretch's line t statistic).",
            )  # fmt: skip
            add(
                "stick.image_runs_on", runs_on & ~far,
                np.where(shortish | seen_short, "warning", "info"),
                ev["label_end"] / ev["label_len"], 1.25, "stick_tip",
                "The stick's line runs on past the labelled tip: too short? A warning for a "
                "shortish stick, or where a neighbouring frame sees the line run on to the same "
                "length (value: visible / labelled length).",
            )  # fmt: skip
        add(
            "stick.forearm_angle", atyp & ~(other & usable_img), _same(n, "info"), dev,
            thr_a, tip_wrist,
            "The stick's angle to the forearm is unusual for this stance (value: degrees from the "
            "stance's typical angle).",
        )  # fmt: skip
        # Time.
        runs = _run_sum(t_out, tr, frame)  # frames in each row's episode
        add(
            "temporal.drift", t_out & (runs >= 3), sev, runs, 3, "stick_grip,stick_tip",
            "The stick's angle or length leaves the track's course for several frames (value: "
            "frames in the episode).",
        )  # fmt: skip
        add(
            "temporal.jump", t_out & (runs < 3), sev, tim["deviation"], 1.0, "stick_grip,stick_tip",
            "The stick's angle or length jumps for a frame or two (value: deviation from the "
            "track's rolling median in units of the threshold).",
        )  # fmt: skip
        return checks

    summary["proposals"] = int((p_reason > 0).sum())
    summary["decisive"] = int((decisive[:, 0] | decisive[:, 1]).sum())
    return StickAssessment(
        True, ds_findings, build_checks, proposal, p_reason, p_conf, decisive, side, subj_len,
        summary, notes,
    )  # fmt: skip


def _length_levels(ratio_t, usable, coded, min_group):
    """The subjects' stick lengths and the data set's tolerance of a label's length.

    Returns:
        ``(subject length (N,) torso sizes, whether it is the subject's own (N,), warning
        tolerance, error tolerance)``: the tolerances are the spread of the usable labels about
        their subject's length (robust SD of the ratio within 20 % of it, times 3, within
        0.15-0.3; the error's twice that, at least 0.35).
    """
    subj_len, own_len = stats.subject_stick_length(
        ratio_t, None, usable, 0.9, min_group, coded=coded, with_own=True
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = ratio_t / subj_len
        band = usable & (ratio > 0.8) & (ratio < 1.2)
    s_r = _robust_sd(ratio[band]) if band.sum() >= min_group else np.nan
    tol_w = min(0.3, max(0.15, 3 * s_r)) if np.isfinite(s_r) else 0.2
    return subj_len, own_len, tol_w, max(0.35, 2 * tol_w)


def _refined_length(ratio_t, clean_like, length_rows, first, coded, min_group):
    """The subjects' stick lengths over ``length_rows`` (``_length_levels``' first two).

    ``first``: ``_length_levels`` over ``clean_like``, returned as it is where no row was left
    out; a group (subject or video) left with fewer than ``min_group`` rows keeps its first
    estimate (a subject whose stick the image always sees end early, say a hand hiding it, is
    not thereby measured by the other subjects').
    """
    if not (clean_like & ~length_rows).any():
        return first[:2]
    subj_len, own = _length_levels(ratio_t, length_rows, coded, min_group)[:2]
    codes = coded[0]
    left = np.bincount(codes, weights=length_rows, minlength=len(coded[1]))[codes] < min_group
    keep = left & first[1]
    return np.where(keep, first[0], subj_len), own | keep


def _stops_early(ev: dict | None, t_ok: np.ndarray, usable: bool):
    """Rows whose line along the label stops well before the labelled tip, and the outer-off ones.

    Returns ``(stops early, and the label's outer part off the line)``: the second, under
    ``LABEL_SHARE`` of the inner part's support. Where a label ends is judged on labels long
    enough, by more than the image's precision of a line's end; the line along the inner part is
    clear, ends inside the label's last 30 %, and not at the picture's border. Nothing without
    usable image evidence.
    """
    if not usable:
        return np.zeros(len(t_ok), bool), np.zeros(len(t_ok), bool)
    with np.errstate(invalid="ignore"):
        stops = (
            t_ok & (ev["label_len"] >= img_ev.MIN_LABEL_PX) & (ev["z_inner"] >= 3.0)
            & np.isfinite(ev["label_end"]) & (ev["label_end"] >= 0.3 * ev["label_len"])
            & (ev["label_end"] * 1.3 < ev["label_len"]) & ~ev["at_border"]
            & (ev["label_len"] - ev["label_end"] > img_ev.END_PRECISION)
        )  # fmt: skip
        return stops, stops & (ev["z_outer"] < LABEL_SHARE * ev["z_inner"])


def _read_image_evidence(
    ds, o, grip, tip, L_px, elbow, g_ok, clean_like, summary, notes, tip_fan=None
):
    """Image evidence for every row with a grip, and whether the data set's images show sticks.

    ``tip_fan``: ``(wrist, window)`` for :func:`image.tip_fan` (rows with a NaN window skipped).

    Returns:
        ``(evidence dict or None, visibility dict)``; the calibration goes into ``summary`` and
        the reasons for abstaining into ``notes``.
    """
    ev = None
    vis = {"usable": False}
    if not o.use_images:
        return ev, vis
    rows = np.flatnonzero(g_ok)
    reach = np.where(np.isfinite(L_px), 1.3 * L_px, np.nan)
    try:
        wrist, window = tip_fan if tip_fan is not None else (None, None)
        ev, n_read = img_ev.image_evidence(ds, grip, tip, reach, elbow, rows, wrist, window)
    except Exception as exc:  # noqa: BLE001 - evidence is optional; say why it is missing
        notes.append(f"image evidence skipped: {exc}")
        n_read = 0
    summary["images_read"] = n_read
    if n_read == 0:
        notes.append("no image or video frame could be read: image evidence skipped")
        return None, vis
    vis = img_ev.visibility(ev["z_label"][clean_like])
    summary["image_visibility"] = {
        k: (round(v, 3) if isinstance(v, float) and np.isfinite(v) else v) for k, v in vis.items()
    }
    if not vis["usable"]:
        mz = vis.get("median_z")
        notes.append(
            "image evidence abstains: "
            + (
                f"too few labelled sticks ({vis['n']}) to calibrate it on"
                if vis["n"] < 8
                else f"the labelled sticks do not stand out in these images (median z {mz:.2f})"
            )
        )
    return ev, vis


def _on_line(ev, confirmed: np.ndarray, usable_img: bool) -> np.ndarray:
    """``(N,)`` the image speaks for the label: it lies on a line out to its far end.

    A too-long label lies on the stick for most of its length, so its mean support alone
    (``confirmed``) would vouch for it; the line must also cover the label's outer part and run
    to at least 90 % of it (or out of the picture). The image places a line's end no finer than
    its widest ridge filter (two sigmas), so a short label needs only reach that close. A
    line that changes colour along the label (:func:`image.line_t`'s ``colour_change``) is two
    objects in line, not the stick running on.
    """
    if not usable_img:
        return confirmed
    with np.errstate(invalid="ignore"):
        short = ev["label_len"] - np.fmax(0.1 * ev["label_len"], img_ev.END_PRECISION)
        reach = (ev["label_end"] >= short) | ev["at_border"]
        # The line along the last stretch is another object (a bar in line with the stick):
        # its colour is not the colour of the stick seen clearly along the inner part.
        other_object = (ev["t_inner"] > img_ev.LINE_T_CLEAR) & (
            ev["colour_change"] > img_ev.COLOUR_CHANGE_OTHER
        )
        return confirmed & (ev["z_outer"] >= 3.0) & reach & ~other_object


def _grip_off_line(ds, ev, snap, tip, elbow, eligible, d_grip, thr_g) -> np.ndarray:
    """``(N,)`` grips off the hand, seen in the image.

    The label's outer part lies on a line, its inner part does not, and the segment from the
    snapped grip (at the weapon wrist) to the same tip stands out clearly more than the label. A
    clean stick hidden near the hand fails the last test (both segments lose the same hidden
    part), so the check needs the line to start at the wrist. The
    snapped grip is only as good as the wrist: the grip must be off by at least half of the
    grip tolerance of its wrist-confidence band (the data set's own wrist noise), and out of the
    fist.
    """
    z_in, z_out, z_lab = ev["z_inner"], ev["z_outer"], ev["z_label"]
    with np.errstate(invalid="ignore"):
        off = d_grip > np.maximum(GRIP_IN_FIST, 0.5 * thr_g)
        cand = eligible & off & (z_out >= 3.0) & (z_in <= 0.25 * z_out)
        z_alt = img_ev.segment_z(ds, snap, tip, np.flatnonzero(cand), elbow)
        return cand & (z_alt >= 3.0) & (z_alt >= z_lab + 0.25 * z_out)


def _seen_turned(ev, strong: float, turned: np.ndarray) -> np.ndarray:
    """``(N,)`` the image sees the stick along a label the track's course turns away from.

    The label lies on a line at the data set's ``strong`` level while the course points more
    than two angle steps away: the stick is where the label is, and the course (interpolated
    over a real fast swing, say) is not.
    """
    if ev is None:
        return np.zeros(len(turned), bool)
    with np.errstate(invalid="ignore"):
        return (ev["z_label"] >= strong) & turned


def _episode_veto(
    cand: np.ndarray,
    on_line: np.ndarray,
    ramp: np.ndarray,
    track: np.ndarray,
    frame: np.ndarray,
    turned: np.ndarray | None = None,
) -> np.ndarray:
    """``(N,)`` time outliers ``cand`` the image does not speak for (``on_line``).

    An episode is one event, and where most of its frames say one thing the image speaks for
    it as a whole:

    * a run of outliers whose course turns off the labels (``turned``: say, a course
      interpolated across a real fast swing) where the image speaks for most of the run: for
      all of it;
    * a ramp episode (``ramp``: a label lengthening for several frames) where the image speaks
      for most of its frames: for all of them (the stick lengthened, and the label with it);
      where it speaks for fewer than half of its outliers: for none of them (a line beside or
      beyond the stick, in line with the label, can support a few of the episode's labels).

    Other departures in length are judged frame by frame (a line can run on past a too-long
    label).
    """
    out = cand & ~on_line
    if not (cand & on_line).any():
        return out
    if turned is not None:
        c = cand & turned
        n_c = _run_sum(c, track, frame)
        out &= ~(c & (n_c >= 3) & (2 * _run_sum(c, track, frame, on_line) > n_c))
    if not (cand & ramp & on_line).any():
        return out
    n_ep = _run_sum(ramp, track, frame)
    out &= ~(ramp & (n_ep >= 3) & (2 * _run_sum(ramp, track, frame, on_line) > n_ep))
    n_run = _run_sum(cand, track, frame)
    n_free = _run_sum(cand, track, frame, out)
    return out | (cand & ramp & (n_run >= 3) & (2 * n_free > n_run))


#: A label off the image's line carries under this share of the line's own support (a label a
#: few degrees off still covers the stick near the grip, so its support is judged against the
#: line's, not against zero).
LABEL_SHARE = 0.25


def _image_chain(ev, strong: float, eligible, grip, tip, length_px, track, frame):
    """Rows of :func:`toolkit.stick.temporal.image_chains`, and their tips turned onto the line.

    The walk follows the image's lines at the data set's ``strong`` level from the grip (a line
    through the grip counts: a stick held short of its end runs on behind the hand); it is
    anchored where the label lies on such a line (within ``STEP_ANGLE`` of it), and the
    ``eligible`` frames whose label lies more than ``STEP_ANGLE`` off the line, with under
    ``LABEL_SHARE`` of its support, are its chain. The tip keeps the label's length: only its
    direction has two witnesses.
    """
    n = len(grip)
    if ev is None or not np.isfinite(strong):
        return np.zeros(n, bool), np.full((n, 2), np.nan)
    lab = geo.angle(tip - grip)
    with np.errstate(invalid="ignore"):
        d_ang = np.abs(geo.wrap_degrees(ev["best_angle"] - lab))
        line = (ev["z_best"] >= strong) & np.isfinite(ev["best_end"])
        off = (
            eligible & line & (d_ang > temporal.STEP_ANGLE)
            & (ev["z_label"] < LABEL_SHARE * ev["z_best"])
        )  # fmt: skip
        anchor = (ev["z_label"] >= strong) & (d_ang <= temporal.STEP_ANGLE)
    chain = temporal.image_chains(off, line, anchor, ev["best_angle"], lab, track, frame)
    th = np.radians(np.where(chain, ev["best_angle"], np.nan))
    return chain, grip + np.stack([np.cos(th), np.sin(th)], 1) * length_px[:, None]


def _seen_short(ev, runs_on, grip, tip, track, frame):
    """Rows where the image's line runs on past the label here and in a neighbouring frame.

    The two frames' lines end at about the same length (:func:`toolkit.stick.temporal.
    seen_again`). Returns the rows and their tips moved out along the label to the line's end.
    """
    n = len(grip)
    if ev is None or not runs_on.any():
        return np.zeros(n, bool), np.full((n, 2), np.nan)
    seen = runs_on & temporal.seen_again(runs_on, ev["label_end"], track, frame)
    return seen, grip + geo.unit(tip - grip) * ev["label_end"][:, None]


def _still_short(ev, runs_on, ratio, tol_w, grip, tip, L_px):
    """Rows of ``runs_on`` whose label is shorter than ``1 - tol_w`` subject sticks.

    Returns:
        ``(rows, their tips)``: each tip moved out along its label to the image's line end, or
        to the subject's stick (``L_px``) where the line runs on past it.
    """
    n = len(grip)
    with np.errstate(invalid="ignore"):
        rows = runs_on & (ratio < 1 - tol_w)
    if ev is None or not rows.any():
        return np.zeros(n, bool), np.full((n, 2), np.nan)
    out = np.full((n, 2), np.nan)
    r = np.flatnonzero(rows)
    g_r = grip[r]
    out[r] = g_r + geo.unit(tip[r] - g_r) * np.fmin(ev["label_end"][r], L_px[r])[:, None]
    return rows, out


def _seen_long(ev, ends_early, outer_off, usual_len, grip, tip, factor, track, frame, eligible):
    """Rows whose image's line ends early here and in a neighbouring frame of their track.

    The two lines end at about the same length (:func:`toolkit.stick.temporal.seen_again`), and
    the label is longer than ``factor`` times its track's upper quartile of ``usual_len`` (the
    labelled lengths of the frames that look clean, NaN elsewhere: the track's stick seen
    unforeshortened; a track that holds its stick towards the camera for a while has a lower
    median). A drift ramps in and out: the ``eligible`` frames beside such a run whose line also
    stops early with the label's last stretch off it (``outer_off``, :func:`_stops_early`) and
    whose label is still longer than ``factor`` times the track's median and than the line's
    end, carry it on.

    Returns:
        ``(rows, the fixable ones, their tips at the line's end)``: fixable where the rows' run
        lasts three frames or more and the line ends within one length step
        (:data:`toolkit.stick.temporal.STEP_LOG_LENGTH`) of the track's upper quartile.
    """
    n = len(grip)
    none = np.zeros(n, bool)
    in_track = track >= 0
    if ev is None or not (ends_early & in_track).any():
        return none, none, np.full((n, 2), np.nan)
    length_px = geo.norm(tip - grip)
    seen = ends_early & temporal.seen_again(ends_early, ev["label_end"], track, frame)
    usual = np.full((n, 2), np.nan)
    usual[in_track] = (
        pd.Series(usual_len[in_track])
        .groupby(track[in_track])
        .quantile([0.75, 0.5])
        .unstack()
        .reindex(track[in_track])
        .to_numpy()
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        run = seen & (length_px > factor * usual[:, 0])
        ramp = (
            eligible & outer_off & (length_px > factor * usual[:, 1])
            & (ev["label_len"] > factor * ev["label_end"])
        )  # fmt: skip
        out = run | temporal.walk_out(run, ramp, track, frame)
        at_usual = np.abs(np.log(ev["label_end"] / usual[:, 0])) < temporal.STEP_LOG_LENGTH
    fix = out & at_usual & (_run_sum(out, track, frame) >= 3)
    return out, fix, grip + geo.unit(tip - grip) * ev["label_end"][:, None]


def _grip_off_tip_line(ev: dict, strong: float, fore_px: np.ndarray) -> np.ndarray:
    """``(N,)`` grips off the stick's line, seen from the tip (:func:`image.tip_fan`).

    From the labelled tip, a strong line (the data set's ``strong`` level) runs back to the
    weapon wrist (its line passes within 0.15 forearm of it), the labelled grip lies off that
    line (by a quarter forearm or more: out of the fist), and the ray from the tip through the
    labelled grip is weak on both polarities (under a quarter of the line's z). The tip is then
    right and the grip is not on the stick.
    """
    if "tip_z_best" not in ev:
        return np.zeros(len(fore_px), bool)
    with np.errstate(invalid="ignore"):
        return (
            (ev["tip_z_best"] >= strong) & (ev["tip_z_label"] < 0.25 * ev["tip_z_best"])
            & (ev["tip_off_grip"] >= 0.25 * fore_px) & (ev["tip_off_wrist"] < 0.15 * fore_px)
        )  # fmt: skip


def _run_sum(
    mask: np.ndarray, track: np.ndarray, frame: np.ndarray, values: np.ndarray | None = None
) -> np.ndarray:
    """``(N,)`` per run of consecutive True rows (same track): the sum of ``values`` over it.

    ``values`` defaults to ones (the run's length); rows outside every run, and rows not in a
    track, get 0.
    """
    n = len(mask)
    out = np.zeros(n)
    rows = np.flatnonzero(track >= 0)
    if not len(rows):
        return out
    order = rows[np.lexsort((frame[rows], track[rows]))]
    m = mask[order]
    t = track[order]
    brk = np.r_[True, (t[1:] != t[:-1]) | ~m[1:] | ~m[:-1]]
    run_id = np.cumsum(brk)
    v = m.astype(int) if values is None else np.where(m, values[order], 0).astype(int)
    out[order] = pd.Series(v).groupby(run_id).transform("sum").to_numpy()
    return out
